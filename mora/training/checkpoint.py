"""Checkpoints of self-modulated fine-tuning, in the formats the agents load.

A checkpoint is a folder: ``lineage.json`` (where it came from), one subfolder per agent holding its
trained weights (a diffusers LoRA file, or ``transformer/`` from ``save_pretrained`` for full
fine-tuning) and its ``modulation.safetensors``, and ``training_state.pt`` to resume from. It is
written under a temporary name and renamed, so a crash never leaves half a checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import torch

from mora.agents.modulation import FILE as MODULATION_FILE
from mora.agents.modulation import Modulation
from mora.config import ConfigError, ModelRef

LINEAGE = "lineage.json"
STATE = "training_state.pt"
LORA_FILE = "pytorch_lora_weights.safetensors"


class CheckpointError(ValueError):
    """One line: what is wrong with a checkpoint and what to do."""


def param_hash(named: Iterable[tuple[str, torch.Tensor]]) -> str:
    """sha256 over names and float32 values, in name order: equal hashes mean equal weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(named, key=lambda item: item[0]):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def lora_state(transformer) -> dict[str, torch.Tensor]:
    from peft.utils import get_peft_model_state_dict

    return get_peft_model_state_dict(transformer)


def trained_state(transformer, mode: str) -> dict[str, torch.Tensor]:
    """What fine-tuning changes in an agent: its LoRA weights, or every transformer weight."""
    return lora_state(transformer) if mode == "lora" else dict(transformer.state_dict())


def agent_hashes(transformer, mode: str, modulation: Modulation | None) -> dict[str, str | None]:
    return {"weights": param_hash(trained_state(transformer, mode).items()),
            "modulation": param_hash([("embedding", modulation.embedding)]) if modulation is not None else None}


def save_agent(folder: Path, pipe, mode: str, modulation: Modulation | None, role: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if mode == "lora":
        config = pipe.transformer.peft_config["default"].to_dict()
        type(pipe).save_lora_weights(folder, transformer_lora_layers=lora_state(pipe.transformer),
                                     transformer_lora_adapter_metadata=config)
    else:
        pipe.transformer.save_pretrained(folder / "transformer")
    if modulation is not None:
        modulation.save(folder, role=role)


def write_checkpoint(path: Path, write) -> Path:
    """``write(tmp_folder)`` fills a temporary folder, which then becomes ``path`` in one rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)
    return path


_lineages: dict[tuple[str, int], dict] = {}


def read_lineage(path: str | Path, field: str = "generation.checkpoint") -> dict:
    """The checkpoint's lineage, parsed once per version of the file (agents and rows ask per set)."""
    lineage = Path(path) / LINEAGE
    if not lineage.is_file():
        raise CheckpointError(f"{field}: '{path}' is not a mora checkpoint (no {LINEAGE}); "
                              "pass a folder written by `mora train` or `mora self-train`")
    key = (str(lineage.resolve()), lineage.stat().st_mtime_ns)
    if key not in _lineages:
        _lineages[key] = json.loads(lineage.read_text())
    return _lineages[key]


def same_model(recorded: dict, ref: ModelRef) -> bool:
    if recorded.get("revision") != ref.revision:
        return False
    a, b = Path(recorded["id"]), Path(ref.id)
    if a.is_dir() and b.is_dir():
        return a.resolve() == b.resolve()
    return recorded["id"] == ref.id


def check_base(lineage: dict, role: str, ref: ModelRef, path: str | Path) -> None:
    recorded = lineage["base_models"][role]
    if not same_model(recorded, ref):
        raise ConfigError(f"generation.checkpoint '{path}' was trained from {role} model '{recorded['id']}', "
                          f"but generation.{role} is '{ref.describe()}'; point generation.{role} at that model "
                          "or drop the checkpoint")


def load_modulation(path: str | Path, role: str) -> Modulation | None:
    folder = Path(path) / role
    return Modulation.load(folder) if (folder / MODULATION_FILE).is_file() else None


def has_weights(lineage: dict) -> bool:
    """False for a start checkpoint (``mora.training.start``): modulation embeddings over the base weights."""
    return lineage.get("weights", True)


def apply_weights(pipe, path: str | Path, role: str, lineage: dict) -> None:
    """Merge the checkpoint's weights for ``role`` into a freshly loaded base pipeline."""
    if not has_weights(lineage):
        return
    folder = Path(path) / role
    if lineage["mode"] == "lora":
        pipe.load_lora_weights(folder, weight_name=LORA_FILE, adapter_name="mora")
        pipe.fuse_lora(components=["transformer"], adapter_names=["mora"])
        pipe.unload_lora_weights()
    else:
        cls = type(pipe.transformer)
        tuned = cls.from_pretrained(folder / "transformer", dtype=pipe.transformer.dtype)
        pipe.transformer.load_state_dict(tuned.state_dict())


def load_lora_into(transformer, pipe_cls, path: str | Path, role: str) -> None:
    """Continue training a checkpoint's adapter: its LoRA weights into ``transformer``'s adapter."""
    from peft.utils import set_peft_model_state_dict

    state = pipe_cls.lora_state_dict(Path(path) / role, weight_name=LORA_FILE)
    state = state[0] if isinstance(state, tuple) else state
    prefix = "transformer."
    state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    result = set_peft_model_state_dict(transformer, state, adapter_name="default")
    if getattr(result, "unexpected_keys", None):
        raise CheckpointError(f"generation.checkpoint '{path}': its {role} adapter does not fit this model "
                              f"({len(result.unexpected_keys)} unknown weights); check training.lora")
