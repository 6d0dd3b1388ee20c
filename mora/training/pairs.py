"""Preference pairs (``mora dataset pairs``) as PyTorch examples, for DPO-style fine-tuning.

Like ``ShardVideoDataset``: the Parquet file is read a record batch at a time (never every video in
memory), several DataLoader workers split its row groups between them, and both videos are decoded
with PyAV into ``[T, C, H, W]`` float frames in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import torch
from torch.utils.data import IterableDataset, get_worker_info

from mora.datasets.pairs import iter_pairs, set_pairs
from mora.datasets.sets import stream_sets
from mora.training.data import ShardError, clip_frames, shard_files


class PreferencePairDataset(IterableDataset):
    """``{"prompt", "chosen", "rejected", "weight", "pair_id", ...}`` per pair; ``sources`` keeps only
    pairs decided by these (``judges``, ``human``)."""

    def __init__(self, path: Path, height: int = 64, width: int = 64, num_frames: int | None = None,
                 sources: tuple[str, ...] | None = None):
        path = Path(path)
        if not path.is_file():
            raise ShardError(f"no pairs file {path}; write one with `mora dataset pairs ROOT --out {path}`")
        self.path, self.height, self.width, self.num_frames, self.sources = path, height, width, num_frames, sources

    def __len__(self) -> int:
        if self.sources is None:
            return pq.ParquetFile(self.path).metadata.num_rows
        sources = pq.read_table(self.path, columns=["decision_source"]).column(0).to_pylist()
        return sum(s in self.sources for s in sources)

    def frames(self, video: bytes) -> torch.Tensor:
        return clip_frames(video, self.height, self.width, self.num_frames)

    def __iter__(self) -> Iterator[dict]:
        file = pq.ParquetFile(self.path)
        groups = list(range(file.num_row_groups))
        info = get_worker_info()
        for group in groups if info is None else groups[info.id::info.num_workers]:
            for row in file.read_row_group(group).to_pylist():
                if self.sources is not None and row["decision_source"] not in self.sources:
                    continue
                yield {"prompt": row["enhanced_prompt"] or row["prompt"], "chosen": self.frames(row["chosen_video"]),
                       "rejected": self.frames(row["rejected_video"]), "weight": float(row["weight"]),
                       "pair_id": row["pair_id"], "set_id": row["set_id"], "iteration": row["iteration"],
                       "decision_source": row["decision_source"], "criterion": row["criterion"]}


class ShardPairDataset:
    """The trainer's examples under ``training.objective: preference``: an iteration's pairs, read from its
    shards as ``mora dataset pairs`` writes them (no pairs file), decoded a pair at a time.

    Same interface as ``ShardVideoDataset`` (``files``, ``sources``, ``count``, ``rows``, ``example``)."""

    def __init__(self, root: Path, dataset: str, iterations: list[int], height: int = 64, width: int = 64,
                 num_frames: int | None = None, sources: tuple[str, ...] | None = None, order: str = "winner"):
        self.root, self.dataset, self.iterations, self.order = Path(root), dataset, iterations, order
        self.files = shard_files(root, dataset, iterations)
        self.height, self.width, self.num_frames, self.sources = height, width, num_frames, sources

    def _kept(self, source: str) -> bool:
        return self.sources is None or source in self.sources

    def count(self) -> int:
        """Pairs per epoch, counted without reading a video."""
        return sum(len(set_pairs(s, self.order)[0]) for s in stream_sets(self.root, self.dataset, self.iterations)
                   if self._kept(s.first["decision_source"]))

    def rows(self) -> Iterator[tuple[dict, int]]:
        for pair in iter_pairs(self.root, self.dataset, self.iterations, self.order):
            if self._kept(pair["decision_source"]):
                yield pair, pair["iteration"]

    def example(self, row: dict, iteration: int) -> dict:
        size = self.height, self.width, self.num_frames
        chosen = clip_frames(row["chosen_video"], *size)
        return {"prompt": row["enhanced_prompt"] or row["prompt"], "frames": chosen, "first_frame": chosen[0],
                "rejected": clip_frames(row["rejected_video"], *size), "weight": float(row["weight"]),
                "fps": float(row["fps"]), "set_id": row["set_id"], "round_id": row["round_id"],
                "candidate_index": int(row["chosen_index"]), "rejected_index": int(row["rejected_index"]),
                "decision_source": row["decision_source"], "iteration": iteration}
