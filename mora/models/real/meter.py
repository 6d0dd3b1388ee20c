"""Counting a forward pass on the meta device: FLOPs, and the activation memory it holds at its peak.

Nothing is computed and nothing is allocated: tensors on the meta device have shapes only. FLOPs come from
``torch.utils.flop_counter.FlopCounterMode`` (matrix products and convolutions). Attention is counted as a
fused kernel (FlashAttention on an H100): its two products are counted, and its score matrix, which a
fused kernel never stores, is not held in memory. Activation memory is the largest total of tensors alive
at once during the pass (inference: nothing kept for a backward), weights not included.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F  # noqa: N812
from torch.multiprocessing.reductions import StorageWeakRef
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode


@dataclass
class Cost:
    flops: float = 0.0
    activation_peak: int = 0  # bytes
    calls: dict[str, float] = field(default_factory=dict)  # flops by what was called

    def add(self, name: str, other: Cost, times: float = 1.0) -> None:
        self.flops += other.flops * times
        self.activation_peak = max(self.activation_peak, other.activation_peak)
        self.calls[name] = self.calls.get(name, 0.0) + other.flops * times


class _FusedAttention(TorchFunctionMode):
    """scaled_dot_product_attention as one fused kernel: 4·B·H·Lq·Lk·D FLOPs, output allocated only."""

    def __init__(self):
        super().__init__()
        self.flops = 0.0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            q, k, v = (list(args[:3]) + [kwargs.get(n) for n in ("query", "key", "value")][len(args[:3]):])
            batch = q.shape[:-2].numel()
            self.flops += 2.0 * batch * q.shape[-2] * k.shape[-2] * (q.shape[-1] + v.shape[-1])
            return torch.empty(*q.shape[:-1], v.shape[-1], dtype=q.dtype, device=q.device)
        return func(*args, **kwargs)


class _LiveBytes(TorchDispatchMode):
    """The peak of the bytes held by tensors made during the pass (storages counted once, freed when dead)."""

    def __init__(self):
        super().__init__()
        self.live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.now = self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for key in [k for k, (ref, _) in self.live.items() if ref.expired()]:
            self.now -= self.live.pop(key)[1]
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                ref = StorageWeakRef(t.untyped_storage())
                if ref.cdata not in self.live:
                    size = t.untyped_storage().nbytes()
                    self.live[ref.cdata] = (ref, size)
                    self.now += size
        self.peak = max(self.peak, self.now)
        return out


def measure(run) -> Cost:
    """FLOPs and peak activation bytes of ``run()`` (a forward on meta tensors)."""
    attention, live = _FusedAttention(), _LiveBytes()
    with torch.inference_mode(), FlopCounterMode(display=False) as counter, live, attention:
        run()
    return Cost(flops=counter.get_total_flops() + attention.flops, activation_peak=live.peak)


def meta(*shape: int, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    return torch.empty(*shape, dtype=dtype, device="meta")


def weight_bytes(module: torch.nn.Module, dtype: torch.dtype = torch.bfloat16) -> int:
    size = torch.empty((), dtype=dtype).element_size()
    return sum(p.numel() * (size if p.is_floating_point() else p.element_size()) for p in module.parameters())
