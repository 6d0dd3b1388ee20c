"""Loading models once per worker process.

Every agent and judge goes through ``from_pretrained`` with a local folder or a hub id, the same
call for tiny and real weights. The cache keys on what was asked for, so a second prompt in the same
worker reuses the loaded model instead of loading it again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from mora.config import ModelRef, RuntimeConfig

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

_cache: dict[tuple, Any] = {}
# What makes candidates (and what fine-tuning replaces); judges and the prompt model are other kinds.
GENERATION_KINDS = {"diffusion", "tuned", "image_to_video-form", "image-to-image", "connect", "connect-tuned"}
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


def cached(kind: str, ref: ModelRef, runtime: RuntimeConfig, load: Callable[[], Any], extra: tuple = ()) -> Any:
    """Load once per (kind, model, revision, device, dtype, extra) in this process."""

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

    return once((kind, ref.id, ref.revision, runtime.device, runtime.dtype, runtime.cpu_offload, *extra), guarded)


def loaded_count() -> int:
    return len(_cache)


def release(kinds: set[str]) -> int:
    """Drop this process's cached models of these kinds (before loading newer weights in their place)."""
    import gc

    with _lock:
        gone = [key for key in _cache if key[0] in kinds]
        for key in gone:
            del _cache[key]
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return len(gone)


def fresh_pipeline(ref: ModelRef, runtime: RuntimeConfig, dtype: torch.dtype | None = None):
    """A diffusers pipeline of its own (not the cached one); its class comes from model_index.json."""
    from diffusers import DiffusionPipeline

    return DiffusionPipeline.from_pretrained(ref.id, revision=ref.revision, dtype=dtype or torch_dtype(runtime))


def pipe_as(cls, pipe):
    """``cls.from_pipe(pipe)`` in the pipeline's own dtype: the pipeline in another form, sharing its weights.

    diffusers 0.42's ``from_pipe`` casts to float32 unless told a dtype, and the components are shared, so
    one img2img or image-to-video form turned a bfloat16 model (and the pipeline it came from) into float32:
    twice the memory, and on a GPU many times the time (bench/real_size.py: LTX-Video 14 -> 28 GB).
    """
    return cls.from_pipe(pipe, dtype=pipe.dtype)


def min_steps(pipe) -> int:
    """The fewest denoising steps the pipeline's scheduler can run: a flow-matching schedule stretched to end
    at ``shift_terminal`` (LTX-Video's published scheduler) divides by zero with one step."""
    return 2 if getattr(pipe.scheduler, "config", {}).get("shift_terminal") else 1


def check_steps(pipe, steps: int, field: str) -> None:
    """A clear error for a step count the scheduler cannot run (diffusers answers with an IndexError)."""
    need = min_steps(pipe)
    if steps < need:
        from mora.config import ConfigError

        raise ConfigError(f"config field '{field}': {type(pipe.scheduler).__name__} with shift_terminal "
                          f"{pipe.scheduler.config['shift_terminal']} needs at least {need} steps (got {steps}); "
                          f"set {field} to {need} or more")


def place(pipe, runtime: RuntimeConfig):
    if runtime.cpu_offload:
        pipe.enable_model_cpu_offload(device=runtime.device)
    else:
        pipe.to(runtime.device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def load_diffusion_pipeline(ref: ModelRef, runtime: RuntimeConfig):
    """Any diffusers pipeline, loaded once per process."""
    return cached("diffusion", ref, runtime, lambda: place(fresh_pipeline(ref, runtime), runtime))


def load_tuned_pipeline(ref: ModelRef, runtime: RuntimeConfig, checkpoint: str | None, role: str,
                        convert: Callable[[Any], Any] | None = None):
    """``(pipeline, modulation)``: the base model (``convert``-ed to the agent's form) with a fine-tuning
    checkpoint's weights merged, once per process."""
    if checkpoint is None:
        if convert is None:
            return load_diffusion_pipeline(ref, runtime), None
        return load_pipeline_as(f"{role}-form", ref, runtime, convert), None
    from mora.training.checkpoint import apply_weights, check_base, load_modulation, read_lineage

    lineage = read_lineage(checkpoint)
    check_base(lineage, role, ref, checkpoint)

    def load():
        pipe = fresh_pipeline(ref, runtime)
        pipe = convert(pipe) if convert is not None else pipe
        apply_weights(pipe, checkpoint, role, lineage)
        modulation = load_modulation(checkpoint, role)
        if modulation is not None:
            modulation.to(runtime.device)
        return place(pipe, runtime), modulation

    return cached("tuned", ref, runtime, load, extra=(role, str(Path(checkpoint).resolve()), lineage["checkpoint_id"]))


def load_pipeline_as(kind: str, ref: ModelRef, runtime: RuntimeConfig, convert: Callable[[Any], Any]):
    """The cached pipeline in another form (diffusers' ``from_pipe`` shares its weights), cached too."""

    def load():
        pipe = convert(load_diffusion_pipeline(ref, runtime))
        pipe.set_progress_bar_config(disable=True)
        return pipe

    return once((kind, ref.id, ref.revision, runtime.device, runtime.dtype, runtime.cpu_offload), load)
