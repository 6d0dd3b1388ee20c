"""Writing and reading the iteration shards."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from mora.atomic import write_atomic
from mora.datasets.schema import SCHEMA


def iteration_dir(root: Path, dataset: str, iteration: int) -> Path:
    return Path(root) / dataset / f"iteration={iteration}"


def shard_files(root: Path, dataset: str, iteration: int) -> list[Path]:
    return sorted(iteration_dir(root, dataset, iteration).glob("part-*.parquet"))


def shard_iterations(root: Path, dataset: str) -> list[int]:
    """Iterations that have shards on disk."""
    found = {p.parent.name.removeprefix("iteration=") for p in iteration_dir(root, dataset, 0).parent.glob(
        "iteration=*/part-*.parquet")}
    return sorted(int(k) for k in found if k.isdigit())


def write_parquet(table: pa.Table, path: Path) -> Path:
    """Readers never see half a shard: see ``mora.atomic``."""
    return write_atomic(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))


def to_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def write_shards(rows: list[dict], root: Path, dataset: str, iteration: int, round_id: str,
                 max_rows: int) -> list[Path]:
    """Deterministic part names per round: writing the same round again replaces, never duplicates."""
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


def open_dataset(root: Path, dataset: str) -> ds.Dataset:
    return ds.dataset(Path(root) / dataset, format="parquet", partitioning="hive")


def read_rows(root: Path, dataset: str, columns: list[str] | None = None) -> pd.DataFrame:
    return open_dataset(root, dataset).to_table(columns=columns).to_pandas()


def inspect(root: Path) -> pd.DataFrame:
    """Candidate and set counts per dataset, iteration and decision."""
    root = Path(root)
    frames = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        if not any(folder.glob("iteration=*/*.parquet")):
            continue
        df = read_rows(root, folder.name, ["iteration", "set_id", "decision", "selected"])
        df.insert(0, "dataset", folder.name)
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["dataset", "iteration", "decision", "sets", "candidates", "selected"])
    df = pd.concat(frames)
    return (df.groupby(["dataset", "iteration", "decision"], as_index=False)
              .agg(sets=("set_id", "nunique"), candidates=("set_id", "size"), selected=("selected", "sum")))
