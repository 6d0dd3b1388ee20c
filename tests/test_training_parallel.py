"""Gradients summed across two real gloo processes (torch.distributed), without models."""

from __future__ import annotations

import json
import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mora.training.parallel import Ranks, sum_gradients
from tests.conftest import free_port


def _rank(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        only_rank0, both, nowhere = (torch.nn.Parameter(torch.zeros(3)) for _ in range(3))
        if rank == 0:  # rank 1 had no example for this one (a short last batch)
            only_rank0.grad = torch.tensor([1.0, 2.0, 3.0])
        both.grad = torch.full((3,), float(rank + 1))
        sum_gradients([only_rank0, both, nowhere], Ranks(rank, 2))
        with open(f"{out}.{rank}", "w") as f:
            json.dump({"only_rank0": only_rank0.grad.tolist(), "both": both.grad.tolist(),
                       "nowhere": None if nowhere.grad is None else nowhere.grad.tolist()}, f)
    finally:
        dist.destroy_process_group()


def test_every_process_ends_with_the_summed_gradients_and_none_stays_none(tmp_path):
    out = str(tmp_path / "grads")
    mp.spawn(_rank, args=(free_port(), out), nprocs=2, join=True)
    for rank in (0, 1):
        grads = json.loads((tmp_path / f"grads.{rank}").read_text())
        assert grads["only_rank0"] == [1.0, 2.0, 3.0]  # counted as zeros where it was missing
        assert grads["both"] == [3.0, 3.0, 3.0]
        assert grads["nowhere"] is None  # as in one process: AdamW leaves it alone, weight decay included
