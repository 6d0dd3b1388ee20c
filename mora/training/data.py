"""Training examples streamed from the iteration shards, for plain PyTorch and the trainer.

Rows are read a record batch at a time (never a whole shard of videos in memory), filtered by
decision, and decoded with PyAV into ``[T, C, H, W]`` float frames in [-1, 1], the range diffusion
VAEs expect. With several DataLoader workers each worker reads its own share of the shard files, so
no example is seen twice in an epoch.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import torch
from torch.utils.data import IterableDataset, get_worker_info

from mora.datasets import shards
from mora.datasets.shards import dataset_dir, iteration_of
from mora.media import decode
from mora.procedures.inputs import fit_frames

CHOICES = ("selected", "accepted", "all")
COLUMNS = ["set_id", "round_id", "prompt", "enhanced_prompt", "candidate_index", "seed", "video", "fps", "decision",
           "decision_source", "selected"]


class ShardError(ValueError):
    """One line: which shards or options are wrong and what to pass."""


def shard_files(root: Path, dataset: str, iterations: list[int] | None = None) -> list[Path]:
    folder = dataset_dir(root, dataset)
    if not folder.is_dir():
        raise ShardError(f"no dataset '{dataset}' under {root}; run a round first or pass the shard root")
    found = shards.shard_files(root, dataset, iterations)
    if not found:
        which = f" for iterations {iterations}" if iterations else ""
        raise ShardError(f"no shards in {folder}{which}; run a round for them first")
    return found


def clip_frames(video: bytes, height: int, width: int, num_frames: int | None) -> torch.Tensor:
    """``[T, C, H, W]`` in [-1, 1], ``num_frames`` evenly spaced ones when the clip has more."""
    frames, _ = decode(video)
    if num_frames and len(frames) > num_frames:
        frames = frames[np.linspace(0, len(frames) - 1, num_frames).round().astype(int)]
    frames = fit_frames(frames, width, height)
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1.0


class ShardVideoDataset(IterableDataset):
    """``{"prompt", "frames", "first_frame", "set_id", "iteration", ...}`` per chosen candidate.

    ``choose``: ``selected`` (the winner of every accepted set, the default), ``accepted`` (every
    candidate of accepted sets), or ``all``. ``num_frames`` keeps that many evenly spaced frames.
    """

    def __init__(self, root: Path, dataset: str, iterations: list[int] | None = None, choose: str = "selected",
                 height: int = 64, width: int = 64, num_frames: int | None = None, batch_rows: int = 16,
                 sources: tuple[str, ...] | None = None):
        """``sources``: keep only sets decided by these (``judges``, ``human``); None keeps both."""
        if choose not in CHOICES:
            raise ShardError(f"choose '{choose}' is unknown; use one of {', '.join(CHOICES)}")
        self.files = shard_files(root, dataset, iterations)
        self.choose, self.height, self.width, self.num_frames = choose, height, width, num_frames
        self.batch_rows, self.sources = batch_rows, sources

    def _filter(self):
        chosen = None
        if self.choose == "selected":
            chosen = ds.field("selected") == True  # noqa: E712 - a pyarrow expression, not a comparison
        elif self.choose == "accepted":
            chosen = ds.field("decision") == "accepted"
        if self.sources is not None:
            by = ds.field("decision_source").isin(list(self.sources))
            chosen = by if chosen is None else chosen & by
        return chosen

    def count(self) -> int:
        """How many examples an epoch yields, counted without decoding a video."""
        return sum(ds.dataset(path, format="parquet").count_rows(filter=self._filter()) for path in self.files)

    def _mine(self) -> list[Path]:
        info = get_worker_info()
        return self.files if info is None else self.files[info.id::info.num_workers]

    def example(self, row: dict, iteration: int) -> dict:
        video = clip_frames(row["video"], self.height, self.width, self.num_frames)
        return {"prompt": row["enhanced_prompt"] or row["prompt"], "frames": video, "first_frame": video[0],
                "fps": float(row["fps"]), "set_id": row["set_id"], "round_id": row["round_id"],
                "candidate_index": int(row["candidate_index"]), "seed": int(row["seed"]),
                "decision_source": row["decision_source"],
                "iteration": iteration}

    def rows(self) -> Iterator[tuple[dict, int]]:
        """``(row, iteration)`` per chosen candidate, video undecoded (a process decodes only its share)."""
        for path in self._mine():
            iteration = iteration_of(path)
            scanner = ds.dataset(path, format="parquet").scanner(columns=COLUMNS, filter=self._filter(),
                                                                 batch_size=self.batch_rows)
            for batch in scanner.to_batches():
                for row in batch.to_pylist():
                    yield row, iteration

    def __iter__(self) -> Iterator[dict]:
        for row, iteration in self.rows():
            yield self.example(row, iteration)


def collate(examples: list[dict]) -> dict:
    """Tensors (frames) stacked: same size and length within a batch; everything else as lists."""
    out = {key: [e[key] for e in examples] for key in examples[0]}
    return {key: torch.stack(v) if isinstance(v[0], torch.Tensor) else v for key, v in out.items()}
