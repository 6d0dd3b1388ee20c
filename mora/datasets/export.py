"""Shards exported as WebDataset-style tar files: ``KEY.mp4`` and ``KEY.json`` per sample.

Training stacks that read WebDataset (``webdataset``, ``litdata``, NeMo, ...) group a tar's members
by the key before the first dot, so keys hold no dots: ``ROUNDID__pNNNNN__cK``. The JSON carries
every column of the row but the video, plus the iteration. Rows are read a record batch at a time
and each tar is written under a hidden name and renamed when full (``max_samples`` or
``max_bytes``), so memory stays at one batch of videos whatever the dataset's size.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow.dataset as ds

from mora.atomic import write_atomic
from mora.datasets.shards import iteration_of, shard_files

CHOICES = ("selected", "accepted", "all")


def row_filter(choose: str):
    if choose == "selected":
        return ds.field("selected") == True  # noqa: E712 - a pyarrow expression, not a comparison
    return ds.field("decision") == "accepted" if choose == "accepted" else None


def sample_key(row: dict) -> str:
    return f"{row['set_id'].replace('/', '__')}__c{row['candidate_index']}".replace(".", "_")


def iter_samples(root: Path, dataset: str, iterations: list[int] | None = None, choose: str = "selected",
                 batch_rows: int = 16) -> Iterator[tuple[str, bytes, dict]]:
    """(key, mp4 bytes, metadata) per chosen row, in iteration and shard order."""
    for path in shard_files(root, dataset, iterations):
        scanner = ds.dataset(path, format="parquet").scanner(filter=row_filter(choose), batch_size=batch_rows,
                                                             use_threads=False)
        for batch in scanner.to_batches():
            for row in batch.to_pylist():
                video = row.pop("video")
                yield sample_key(row), video, row | {"iteration": iteration_of(path)}


def _add(tar: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), mtime, 0o644
    tar.addfile(info, io.BytesIO(data))


def export_webdataset(root: Path, dataset: str, out: Path, iterations: list[int] | None = None,
                      choose: str = "selected", max_samples: int = 1000, max_bytes: int = 1 << 30) -> list[Path]:
    """Tar shards ``out/DATASET-NNNNNN.tar``; the paths written (none when no row is chosen). Tars of
    an earlier export to the same folder that this one did not rewrite are removed."""
    samples = iter_samples(root, dataset, iterations, choose)
    pending = next(samples, None)
    paths: list[Path] = []
    while pending is not None:
        def write(tmp: Path) -> None:
            nonlocal pending
            count = size = 0
            with tarfile.open(tmp, "w") as tar:
                while pending is not None and count < max_samples and (
                        not count or size + len(pending[1]) <= max_bytes):
                    key, video, meta = pending
                    mtime = meta["created_at"].timestamp() if meta.get("created_at") else 0
                    _add(tar, f"{key}.mp4", video, mtime)
                    _add(tar, f"{key}.json", json.dumps(meta, default=str, ensure_ascii=False).encode(), mtime)
                    count, size = count + 1, size + len(video)
                    pending = next(samples, None)

        paths.append(write_atomic(Path(out) / f"{dataset}-{len(paths):06d}.tar", write))
    for stale in set(Path(out).glob(f"{dataset}-[0-9][0-9][0-9][0-9][0-9][0-9].tar")) - set(paths):
        stale.unlink()  # a larger earlier export's tail: the folder matches the shards now
    return paths
