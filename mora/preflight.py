"""Checks before a run starts: every model folder, hub id and the device, each a one-line ConfigError.

A model that cannot load otherwise fails minutes into a started Prefect run, after the tracebacks of
the engine (or after a minute of hub retries on an offline machine). Nothing here downloads: a hub id
is checked against the local Hugging Face cache only when offline mode is on, since only then can
the cache alone say it will not load. A round's judge servers are asked one tiny request each
(``check_judge_servers``) before it plans its prompts.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from mora.config import ConfigError, ModelRef, RoundConfig

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
_MODEL_FILES = ("model_index.json", "config.json")  # a diffusers pipeline, or a transformers model


def offline() -> bool:
    return any(os.environ.get(k, "").lower() in ("1", "true", "yes", "on") for k in ("HF_HUB_OFFLINE",
                                                                                    "TRANSFORMERS_OFFLINE"))


def model_refs(config: RoundConfig) -> dict[str, ModelRef]:
    """Every model the config loads in process, by the field that names it."""
    gen = config.generation
    refs = {"prompts.model.id": config.prompts.model, "generation.text_to_image.id": gen.text_to_image,
            "generation.image_to_video.id": gen.image_to_video, "generation.image_to_image.id": gen.image_to_image,
            "generation.connect.id": gen.connect}
    refs |= {f"judges.{i}.model.id": j.model for i, j in enumerate(config.judges) if j.backend == "transformers"}
    return {field: ref for field, ref in refs.items() if ref is not None}


def check_model(field: str, ref: ModelRef) -> None:
    path = Path(ref.id).expanduser()
    if path.exists():
        if not path.is_dir() or not any((path / f).is_file() for f in _MODEL_FILES):
            raise ConfigError(f"config field '{field}': '{ref.id}' is not a model folder (no model_index.json or "
                              "config.json in it); point it at a saved model folder or a hub id")
        return
    if ref.id.startswith((".", "/", "~")) or not _HUB_ID.fullmatch(ref.id):
        raise ConfigError(f"config field '{field}': no model folder at '{ref.id}'; fix the path "
                          "(tiny models: mora models make-tiny .mora/models/tiny)")
    if offline():
        from huggingface_hub import try_to_load_from_cache

        if not any(isinstance(try_to_load_from_cache(ref.id, f, revision=ref.revision), str) for f in _MODEL_FILES):
            raise ConfigError(f"config field '{field}': '{ref.describe()}' is neither a local folder nor in the "
                              "Hugging Face cache, and offline mode (HF_HUB_OFFLINE) forbids downloading it; "
                              "point it at a local model folder")


def check_device(device: str) -> None:
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(f"config field 'runtime.device': '{device}' is not a torch device; use cpu, cuda or "
                          "cuda:N") from None
    if dev.type == "cpu":
        return
    backend = getattr(torch, dev.type, None) if dev.type != "mps" else torch.backends.mps
    count = torch.cuda.device_count() if dev.type == "cuda" else int(bool(backend and backend.is_available()))
    if count == 0:
        raise ConfigError(f"config field 'runtime.device': '{device}' is not available on this machine (torch "
                          f"sees no {dev.type} device); use runtime.device=cpu")
    if dev.index is not None and dev.index >= count:
        raise ConfigError(f"config field 'runtime.device': '{device}' does not exist (this machine has {count} "
                          f"{dev.type} device(s)); use {dev.type}:0")


def preflight(config: RoundConfig) -> None:
    """Raise the first problem that would stop the run after it started; nothing is loaded."""
    check_device(config.runtime.device)
    for field, ref in model_refs(config).items():
        check_model(field, ref)
    r = config.runtime
    if r.engine == "ray" and not r.ray.address:  # a local instance this run starts: its one node is known
        from mora.round.placement import local_node, unplaceable

        why = unplaceable(r.ray, [local_node(r.ray)])
        if why:
            raise ConfigError(f"config field 'runtime.ray': {why}")
    checkpoint = config.generation.checkpoint
    if checkpoint and not Path(checkpoint).is_dir():
        raise ConfigError(f"config field 'generation.checkpoint': no checkpoint folder at '{checkpoint}'; "
                          "pass a folder written by mora train, or remove the field")


def check_judge_servers(config: RoundConfig) -> None:
    """Every judge server probed as the round's judges will probe it (once per process: the local engine
    reuses the connection): one that refuses, fails or answers no chat completion is a one-line error."""
    from mora.judges.http import OpenAIJudge

    for i, judge in enumerate(config.judges):
        if judge.backend == "openai":
            OpenAIJudge.connect(judge, f"judges.{i}")
