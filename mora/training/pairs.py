"""Preference pairs (``mora dataset pairs``) as PyTorch examples, for DPO-style fine-tuning.

Like ``ShardVideoDataset``: the Parquet file is read a record batch at a time (never every video in
memory), several DataLoader workers split its row groups between them, and both videos are decoded
with PyAV into ``[T, C, H, W]`` float frames in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from torch.utils.data import IterableDataset, get_worker_info

from mora.media import decode
from mora.procedures.inputs import fit_frames
from mora.training.data import ShardError


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
        frames, _ = decode(video)
        if self.num_frames and len(frames) > self.num_frames:
            frames = frames[np.linspace(0, len(frames) - 1, self.num_frames).round().astype(int)]
        frames = fit_frames(frames, self.width, self.height)
        return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1.0

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
