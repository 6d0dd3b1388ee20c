"""Writing and reading the iteration shards.

Layout: ``ROOT/DATASET/README.md`` (the dataset card) beside ``ROOT/DATASET/data/iteration=K/``
(the shards). Parquet readers point at ``ROOT/DATASET/data``, which holds nothing but shards, so
``pd.read_parquet`` and ``pyarrow.dataset`` never meet the card. Every path goes through
``data_dir`` / ``iteration_dir``; roots written before the card (``ROOT/DATASET/iteration=K/``) are
moved into ``data/`` by ``migrate_layout``, which every reader and writer calls first.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from mora.atomic import remove_stale_temporaries, write_atomic
from mora.datasets.schema import SCHEMA, SCHEMA_VERSION

DATA = "data"


def dataset_dir(root: Path, dataset: str) -> Path:
    """The dataset's folder: its card and its ``data/`` folder."""
    return Path(root) / dataset


def data_dir(root: Path, dataset: str) -> Path:
    """The folder Parquet readers open: shards only, partitioned by ``iteration=K``."""
    return dataset_dir(root, dataset) / DATA


def iteration_dir(root: Path, dataset: str, iteration: int) -> Path:
    return data_dir(root, dataset) / f"iteration={iteration}"


def iteration_of(path: Path) -> int:
    """The iteration of a shard file, from its ``iteration=K`` folder."""
    return int(Path(path).parent.name.split("=", 1)[1])


def migrate_layout(root: Path, dataset: str) -> list[Path]:
    """Old roots (``DATASET/iteration=K/``) moved to ``DATASET/data/iteration=K/``, one rename per
    iteration; an iteration present in both layouts has its old shards moved file by file. A migrated
    root costs one directory listing."""
    folder, moved = dataset_dir(root, dataset), []
    for old in sorted(folder.glob("iteration=*")) if folder.is_dir() else []:
        new = data_dir(root, dataset) / old.name
        if not new.exists():
            new.parent.mkdir(parents=True, exist_ok=True)
            os.replace(old, new)
        else:
            for shard in old.glob("*.parquet"):
                os.replace(shard, new / shard.name)
            old.rmdir()
        moved.append(new)
    return moved


def locate_shard(root: Path, dataset: str, recorded: str | Path) -> Path:
    """A shard path recorded earlier (a review record), found where it lies now: under this root and
    layout, by its iteration and file name, so migrated or moved roots keep their records valid."""
    migrate_layout(root, dataset)
    return iteration_dir(root, dataset, iteration_of(recorded)) / Path(recorded).name


def shard_files(root: Path, dataset: str, iterations: list[int] | None = None) -> list[Path]:
    """The dataset's shard files in iteration and name order (all iterations when ``iterations`` is None)."""
    migrate_layout(root, dataset)
    found = sorted((p for p in data_dir(root, dataset).glob("iteration=*/part-*.parquet")
                    if p.parent.name.removeprefix("iteration=").isdigit()), key=lambda p: (iteration_of(p), p.name))
    return [f for f in found if not iterations or iteration_of(f) in iterations]


def shard_iterations(root: Path, dataset: str) -> list[int]:
    """Iterations that have shards on disk."""
    return sorted({iteration_of(f) for f in shard_files(root, dataset)})


def write_parquet(table: pa.Table, path: Path) -> Path:
    """Readers never see half a shard: see ``mora.atomic`` (which also cleans up after killed writers)."""
    remove_stale_temporaries(path.parent)
    return write_atomic(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))


def to_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def write_shards(rows: list[dict], root: Path, dataset: str, iteration: int, round_id: str,
                 max_rows: int) -> list[Path]:
    """Deterministic part names per round: writing the same round again replaces, never duplicates."""
    migrate_layout(root, dataset)
    out = iteration_dir(root, dataset, iteration)
    table = to_table(rows)
    paths = []
    for part, start in enumerate(range(0, max(len(rows), 1), max_rows)):
        paths.append(write_parquet(table.slice(start, max_rows), out / f"part-{round_id}-{part:05d}.parquet"))
    return paths


def read_shard(path: Path) -> list[dict]:
    return pq.read_table(path, schema=SCHEMA).to_pylist()


def rewrite_sets(path: Path, replace: dict[str, Callable[[list[dict]], list[dict]]]) -> bool:
    """The shard with some sets' rows replaced by ``replace[set_id](rows)`` (a human decision), read once
    and written atomically; False, and nothing written, when the shard holds none of those sets."""
    rows = read_shard(path)
    by_set: dict[str, list[dict]] = {}
    for row in rows:
        if row["set_id"] in replace:
            by_set.setdefault(row["set_id"], []).append(row)
    if not by_set:
        return False
    out = []
    for row in rows:
        set_id = row["set_id"]
        if set_id not in by_set:
            out.append(row)
        elif row is by_set[set_id][0]:
            out.extend(replace[set_id](by_set[set_id]))
    write_parquet(to_table(out), path)
    return True


def migrate_shards(root: Path, dataset: str) -> list[Path]:
    """Shards written at an earlier schema version rewritten at this one, one file at a time and atomically:
    what they lack (a column, a struct field) becomes null, ``schema_version`` becomes this version, every
    other value stays. mora reads older shards as they are; readers outside mora that open a whole root
    (pandas, ``datasets``) need one schema across its files. Returns the files rewritten."""
    rewritten = []
    for path in shard_files(root, dataset):
        if pq.read_schema(path).remove_metadata().equals(SCHEMA):
            continue
        table = pq.read_table(path, schema=SCHEMA)
        version = pa.array([SCHEMA_VERSION] * table.num_rows, type=SCHEMA.field("schema_version").type)
        write_parquet(table.set_column(SCHEMA.get_field_index("schema_version"), "schema_version", version), path)
        rewritten.append(path)
    return rewritten


def open_dataset(root: Path, dataset: str) -> ds.Dataset:
    migrate_layout(root, dataset)
    return ds.dataset(data_dir(root, dataset), format="parquet", partitioning="hive")


def read_rows(root: Path, dataset: str, columns: list[str] | None = None) -> pd.DataFrame:
    return open_dataset(root, dataset).to_table(columns=columns).to_pandas()


def inspect(root: Path) -> pd.DataFrame:
    """Candidate and set counts per dataset, iteration and decision."""
    root = Path(root)
    frames = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        if not shard_files(root, folder.name):
            continue
        df = read_rows(root, folder.name, ["iteration", "set_id", "decision", "selected"])
        df.insert(0, "dataset", folder.name)
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["dataset", "iteration", "decision", "sets", "candidates", "selected"])
    df = pd.concat(frames)
    return (df.groupby(["dataset", "iteration", "decision"], as_index=False)
              .agg(sets=("set_id", "nunique"), candidates=("set_id", "size"), selected=("selected", "sum")))
