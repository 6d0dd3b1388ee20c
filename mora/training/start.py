"""The start checkpoint: the agents as self-modulated fine-tuning starts them, before its first step.

The paper conditions every agent on its modulation embedding as well as its prompt. Without this the
first iteration generates with the base models alone and the embeddings first appear with iteration 1's
checkpoint, a step that every arm of ``bench/loop_learns.py`` took alike, whatever its judges preferred
(first-frame brightness +0.028 at a learning rate of 1e-12). The start checkpoint holds each agent's
initial embedding and no weights, so the loop generates with it from iteration 1 and the trainer goes on
from it; what changes between iterations is then only what fine-tuning learned.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import torch

from mora.agents.image_to_video import IMAGE_TO_VIDEO_FORMS
from mora.agents.modulation import initial_modulation
from mora.config import RoundConfig
from mora.training import checkpoint as ckpt
from mora.training.chain import ROLES
from mora.training.trainer import check_trainable, checkpoint_root


def start_id(config: RoundConfig) -> str:
    """What the initial embeddings depend on: the base models, the embedding settings and the seed."""
    m, gen = config.training.modulation, config.generation
    what = {"base": {role: getattr(gen, role).model_dump(mode="json") for role in ROLES},
            "modulation": m.model_dump(mode="json", include={"init", "token", "tokens"}),
            "seed": config.training.seed if m.init == "random" else None}
    return "start-" + hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:10]


def start_path(config: RoundConfig) -> Path:
    return checkpoint_root(config) / "start" / start_id(config)


def existing_start(config: RoundConfig) -> Path | None:
    path = start_path(config)
    return path if (path / ckpt.LINEAGE).is_file() else None


def start_checkpoint(config: RoundConfig) -> Path | None:
    """The start checkpoint of ``config``'s loop, written once (None when the loop starts from the base
    models: modulation off, or ``training.modulation.from_start`` false)."""
    m = config.training.modulation
    if not (m.enabled and m.from_start):
        return None
    found = existing_start(config)
    if found is not None:
        return found
    check_trainable(config)
    from diffusers import DiffusionPipeline

    def write(tmp: Path) -> None:
        hashes, pipelines = {}, {}
        for role in ROLES:
            ref = getattr(config.generation, role)
            # the text encoders are all the embeddings need; the denoiser and the VAE stay on disk
            pipe = DiffusionPipeline.from_pretrained(ref.id, revision=ref.revision, dtype=torch.float32,
                                                     transformer=None, vae=None)
            name = type(pipe).__name__
            pipelines[role] = IMAGE_TO_VIDEO_FORMS.get(name, name) if role == "image_to_video" else name
            modulation = initial_modulation(pipe, role, m.init, m.token, m.tokens, config.training.seed)
            (tmp / role).mkdir()
            modulation.save(tmp / role, role=role)
            hashes[role] = {"weights": None, "modulation": ckpt.param_hash([("embedding", modulation.embedding)])}
            del pipe
        cid = start_id(config)
        lineage = {"checkpoint_id": cid, "run_id": cid, "iteration": 0, "step": 0, "final": True,
                   "mode": config.training.mode, "modulation": True, "weights": False, "export": "initial",
                   "parent": None, "base_models": {role: getattr(config.generation, role).model_dump()
                                                   | {"pipeline": pipelines[role]} for role in ROLES},
                   "shards": [], "examples": 0, "training": config.training.model_dump(mode="json"),
                   "initial_hashes": hashes, "hashes": hashes, "steps": [],
                   "created_at": datetime.now(UTC).isoformat()}
        (tmp / ckpt.LINEAGE).write_text(json.dumps(lineage, indent=2, default=str))

    return ckpt.write_checkpoint(start_path(config), write)
