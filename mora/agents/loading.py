"""Loading models once per worker process.

Every agent and judge goes through ``from_pretrained`` with a local folder or a hub id, the same
call for tiny and real weights. The cache keys on what was asked for, so a second prompt in the same
worker reuses the loaded model instead of loading it again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import torch

from mora.config import ModelRef, RuntimeConfig

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

_cache: dict[tuple, Any] = {}
_lock = threading.RLock()


class ModelLoadError(RuntimeError):
    pass


def torch_dtype(runtime: RuntimeConfig) -> torch.dtype:
    return DTYPES[runtime.dtype]


def once(key: tuple, load: Callable[[], Any]) -> Any:
    """The value ``load()`` gave for ``key`` earlier in this process, or a fresh one."""
    with _lock:
        if key not in _cache:
            _cache[key] = load()
        return _cache[key]


def cached(kind: str, ref: ModelRef, runtime: RuntimeConfig, load: Callable[[], Any]) -> Any:
    """Load once per (kind, model, revision, device, dtype) in this process."""

    def guarded():
        if runtime.threads:
            torch.set_num_threads(runtime.threads)
        try:
            return load()
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            raise ModelLoadError(
                f"{kind} model '{ref.describe()}' could not be loaded ({first[:200]}); "
                "point the config at a local model folder or a reachable hub id "
                "(tiny ones: mora models make-tiny .mora/models/tiny)"
            ) from None

    return once((kind, ref.id, ref.revision, runtime.device, runtime.dtype, runtime.cpu_offload), guarded)


def loaded_count() -> int:
    return len(_cache)


def load_diffusion_pipeline(ref: ModelRef, runtime: RuntimeConfig):
    """Any diffusers pipeline; its class comes from the folder's model_index.json."""

    def load():
        from diffusers import DiffusionPipeline

        pipe = DiffusionPipeline.from_pretrained(ref.id, revision=ref.revision, dtype=torch_dtype(runtime))
        if runtime.cpu_offload:
            pipe.enable_model_cpu_offload(device=runtime.device)
        else:
            pipe.to(runtime.device)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    return cached("diffusion", ref, runtime, load)


def load_pipeline_as(kind: str, ref: ModelRef, runtime: RuntimeConfig, convert: Callable[[Any], Any]):
    """The cached pipeline in another form (diffusers' ``from_pipe`` shares its weights), cached too."""

    def load():
        pipe = convert(load_diffusion_pipeline(ref, runtime))
        pipe.set_progress_bar_config(disable=True)
        return pipe

    return once((kind, ref.id, ref.revision, runtime.device, runtime.dtype, runtime.cpu_offload), load)
