"""Data parallelism for fine-tuning: each process takes its share of every global batch.

``accelerate launch`` starts the processes (torchrun underneath) and accelerate's ``PartialState``
owns the process group (gloo on CPU, NCCL on GPUs). The trained parameters live in two diffusers
pipelines and the modulation embeddings, not in one ``nn.Module``, and the sampled hand-off runs the
text-to-image transformer several times per step, so DDP's per-module hooks do not fit; instead the
gradients are summed once per optimizer step, in buckets. Every example draws its noise from a
generator seeded by its position in the global batch, and each process divides its summed loss by
the global batch size, so N processes compute what one process does, up to the order of additions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

BUCKET_BYTES = 64 << 20  # gradients summed this many bytes at a time (one flat copy per bucket)


@dataclass(frozen=True)
class Ranks:
    """This process's place among the fine-tuning processes (rank 0 of 1 when there is one)."""

    rank: int = 0
    world: int = 1
    device: torch.device | None = None  # None: the config's runtime.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    def owns(self, position: int) -> bool:
        """Positions in a global batch are dealt out in turn: 0, N, 2N… to rank 0, and so on."""
        return position % self.world == self.rank

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Summed over the processes, in place (a no-op for one process)."""
        if self.world > 1:
            torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
        return tensor

    def wait(self) -> None:
        """Every process reaches this point before any goes on (checkpoints are written by rank 0)."""
        if self.world > 1:
            torch.distributed.barrier()

    @classmethod
    def from_environment(cls, device: str) -> Ranks:
        """Under ``accelerate launch``: this process's rank and device; otherwise the single process."""
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return cls()
        from accelerate import PartialState

        on_gpu = device.startswith("cuda")
        state = PartialState(cpu=not on_gpu)
        return cls(state.process_index, state.num_processes, state.device if on_gpu else torch.device(device))


def sum_gradients(params: list[torch.nn.Parameter], ranks: Ranks) -> None:
    """Every process ends with the sum of all processes' gradients. A parameter no process has a gradient
    for keeps none, as in one process (AdamW then leaves it alone, weight decay included); one that only
    some processes have counts as zeros on the others."""
    if ranks.world == 1:
        return
    device = params[0].device if params else None
    anywhere = ranks.sum(torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=device))
    bucket: list[torch.nn.Parameter] = []
    size = 0
    for p, found in zip(params, anywhere.tolist(), strict=True):
        if not found:
            continue
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        bucket.append(p)
        size += p.numel() * p.element_size()
        if size >= BUCKET_BYTES:
            _sum_bucket(bucket, ranks)
            bucket, size = [], 0
    if bucket:
        _sum_bucket(bucket, ranks)


def _sum_bucket(params: list[torch.nn.Parameter], ranks: Ranks) -> None:
    flat = ranks.sum(torch.cat([p.grad.reshape(-1) for p in params]))
    offset = 0
    for p in params:
        n = p.grad.numel()
        p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
        offset += n
