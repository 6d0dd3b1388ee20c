"""Random weights written tensor by tensor, so a model of any size needs only one tensor's memory.

The model is built on the meta device (its parameters have shapes and no storage; buffers are real),
then each tensor of its state dict is read in slices from a pool of seeded normal draws (at its own offset)
and appended to a safetensors file whose header was written first. The files are named and split as ``save_pretrained``
names and splits them (``model-00001-of-00004.safetensors`` + ``model.safetensors.index.json``, or
``diffusion_pytorch_model...``), in the published checkpoint's number of shards, and transformers
models are written under the names their published checkpoints use (the library's own reversal of its
load-time renaming). Values: norm weights 1, biases 0, matrices and convolutions normal with std
1/sqrt(fan-in), other vectors normal with std 0.02: random, but with activations of ordinary size.
"""

from __future__ import annotations

import functools
import json
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from mora.models.real.catalogue import Weights

SAFETENSORS_DTYPES = {torch.bfloat16: "BF16", torch.float16: "F16", torch.float32: "F32", torch.float64: "F64",
                      torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
                      torch.uint8: "U8", torch.bool: "BOOL"}
SLICE = 1 << 22  # elements written at once
POOL = 1 << 24   # standard normal draws shared by every tensor of a build


def model_class(spec: Weights):
    import diffusers
    import transformers

    if spec.library == "transformers":
        if spec.cls == "StableDiffusionSafetyChecker":
            from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker

            return StableDiffusionSafetyChecker
        return getattr(transformers, spec.cls)
    return getattr(diffusers, spec.cls)


def config_of(spec: Weights):
    """The transformers config object (``None`` for diffusers models, whose config is their constructor)."""
    if spec.library != "transformers":
        return None
    cls = model_class(spec)
    return cls.config_class(**spec.config)


def meta_model(spec: Weights, **overrides) -> torch.nn.Module:
    """The model with parameters on the meta device and real buffers (``overrides`` change config fields)."""
    from accelerate import init_empty_weights

    cls = model_class(spec)
    with init_empty_weights(include_buffers=False):
        if spec.library != "transformers":
            return cls(**{**spec.config, **overrides})
        model = cls(cls.config_class(**{**spec.config, **overrides}))
    # accelerate re-creates every parameter assigned inside its context, so post_init's tying (T5's
    # encoder.embed_tokens and shared) is lost there: tie outside it
    model.tie_weights()
    return model


@dataclass
class Entry:
    name: str            # the name in the file
    shape: tuple[int, ...]
    dtype: torch.dtype
    rule: str            # ones | zeros | normal | buffer
    std: float = 0.0
    value: torch.Tensor | None = None  # buffers: their real values

    @property
    def nbytes(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n * torch.empty((), dtype=self.dtype).element_size()


def _rule(module: torch.nn.Module, leaf: str, tensor: torch.Tensor) -> tuple[str, float]:
    if "norm" in type(module).__name__.lower() or leaf in ("gamma", "beta"):
        return ("zeros", 0.0) if leaf in ("bias", "beta") else ("ones", 0.0)
    if leaf.endswith("bias"):
        return "zeros", 0.0
    if tensor.dim() >= 2:
        fan_in = tensor.numel() // tensor.shape[0]
        return "normal", fan_in ** -0.5
    return "normal", 0.02


def entries(model: torch.nn.Module, dtype: torch.dtype, library: str) -> list[Entry]:
    """Every tensor the checkpoint holds, under its checkpoint name, with how to fill it."""
    state = model.state_dict(keep_vars=True)
    buffers = {id(b) for _, b in model.named_buffers()}
    how: dict[int, tuple[str, float]] = {}
    for name, tensor in state.items():
        owner, _, leaf = name.rpartition(".")
        how[id(tensor)] = ("buffer", 0.0) if id(tensor) in buffers else _rule(model.get_submodule(owner), leaf,
                                                                              tensor)
    if library == "transformers":
        from transformers.core_model_loading import revert_weight_conversion
        from transformers.modeling_utils import remove_tied_weights_from_state_dict

        state = revert_weight_conversion(model, remove_tied_weights_from_state_dict(state, model))
    out = []
    for name, tensor in state.items():
        rule, std = how[id(tensor)]
        kind = dtype if tensor.is_floating_point() else tensor.dtype
        out.append(Entry(name, tuple(tensor.shape), kind, rule, std,
                         tensor.detach().to(kind) if rule == "buffer" else None))
    return out


def _seed(name: str, seed: int) -> int:
    return zlib.crc32(name.encode()) ^ (seed * 0x9E3779B1 & 0xFFFFFFFF)


@functools.lru_cache(maxsize=8)
def _pool(seed: int, std: float, dtype: torch.dtype) -> torch.Tensor:
    """2^24 normal draws with this std, in the target dtype; tensors read them from their own seeded offsets.

    Drawing every value afresh made a 7B model take tens of minutes on two shared cores; a pool read from a
    different place by every tensor is random enough for weights nobody trains, and is written without a copy.
    """
    draws = torch.randn(POOL, generator=torch.Generator().manual_seed(seed))
    return (draws * std).to(dtype)


@functools.lru_cache(maxsize=4)
def _constant(value: float, dtype: torch.dtype) -> torch.Tensor:
    return torch.full((SLICE,), value, dtype=dtype)


def _slices(entry: Entry, seed: int) -> Iterator[torch.Tensor]:
    """The tensor's values in slices, each as raw bytes in the target dtype."""
    if entry.rule == "buffer":
        yield entry.value.contiguous().reshape(-1).view(torch.uint8)
        return
    total = entry.nbytes // torch.empty((), dtype=entry.dtype).element_size()
    start = _seed(entry.name, seed) % POOL
    for done in range(0, total, SLICE):
        n = min(SLICE, total - done)
        if entry.rule in ("ones", "zeros"):
            part = _constant(1.0 if entry.rule == "ones" else 0.0, entry.dtype)[:n]
        else:
            pool = _pool(seed, round(entry.std, 6), entry.dtype)
            idx = (start + done) % POOL
            part = pool[idx:idx + n] if idx + n <= POOL else torch.cat([pool[idx:], pool[:idx + n - POOL]])
        yield part.view(torch.uint8)


def write_safetensors(path: Path, items: list[Entry], seed: int) -> None:
    """One safetensors file: the header, then each tensor's bytes in order (no tensor is held whole)."""
    header: dict = {"__metadata__": {"format": "pt"}}
    offset = 0
    for e in items:
        header[e.name] = {"dtype": SAFETENSORS_DTYPES[e.dtype], "shape": list(e.shape),
                          "data_offsets": [offset, offset + e.nbytes]}
        offset += e.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for e in items:
            written = 0
            for part in _slices(e, seed):
                f.write(part.numpy().data)
                written += part.numel()
            if written != e.nbytes:
                raise RuntimeError(f"{e.name}: wrote {written} bytes, expected {e.nbytes}")
    tmp.rename(path)


def split(items: list[Entry], shards: int) -> list[list[Entry]]:
    """``shards`` runs of consecutive tensors of about equal bytes (save_pretrained fills shards in order)."""
    total = sum(e.nbytes for e in items)
    target = total / shards
    out: list[list[Entry]] = [[]]
    size = 0
    for e in items:
        if out[-1] and size + e.nbytes / 2 > target * len(out) and len(out) < shards:
            out.append([])
        out[-1].append(e)
        size += e.nbytes
    return [s for s in out if s]


def write_weights(out: Path, spec: Weights, dtype: torch.dtype, seed: int = 0, **overrides) -> int:
    """``config.json`` and the weights of ``spec`` under ``out``; returns the bytes written."""
    model = meta_model(spec, **overrides)
    out.mkdir(parents=True, exist_ok=True)
    if spec.library == "transformers":
        model.config.dtype = dtype
        model.config.architectures = [type(model).__name__]
        model.config.save_pretrained(out)
        stem = "model"
    else:
        model.save_config(out)
        stem = "diffusion_pytorch_model"
    items = entries(model, dtype, spec.library)
    del model
    parts = split(items, spec.shards)
    if len(parts) == 1:
        write_safetensors(out / f"{stem}.safetensors", parts[0], seed)
    else:
        weight_map = {}
        for i, part in enumerate(parts, start=1):
            name = f"{stem}-{i:05d}-of-{len(parts):05d}.safetensors"
            write_safetensors(out / name, part, seed)
            weight_map |= {e.name: name for e in part}
        index = {"metadata": {"total_size": sum(e.nbytes for e in items)}, "weight_map": weight_map}
        (out / f"{stem}.safetensors.index.json").write_text(json.dumps(index, indent=2))
    return sum(e.nbytes for e in items)


def parameter_count(spec: Weights, **overrides) -> int:
    """Weights in the checkpoint (parameters and saved buffers), counted on the meta device."""
    model = meta_model(spec, **overrides)
    return sum(e.nbytes // torch.empty((), dtype=e.dtype).element_size()
               for e in entries(model, torch.bfloat16, spec.library) if e.dtype.is_floating_point)
