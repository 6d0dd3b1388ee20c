"""Candidate sets streamed from the shards: the unit that pairs, judge checks and counts work on.

A set's rows are contiguous in its round's shards (``write_shards`` slices one ordered table, and a
human decision rewrites rows in place), though a set may straddle two parts. Reading the files of an
iteration in name order a record batch at a time, and emitting a set when the next one starts, keeps
at most one set (four videos) plus one batch in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.dataset as ds

from mora.datasets.schema import SCHEMA
from mora.datasets.shards import iteration_of, shard_files

META = ["round_id", "set_id", "prompt_index", "prompt", "enhanced_prompt", "candidate_index", "criterion", "judges",
        "decision", "decision_source", "selected", "gate_failures", "review", "generator_models", "routing"]
HUMAN = "human"


@dataclass
class CandidateSetRows:
    iteration: int
    rows: list[dict]  # ordered by candidate_index

    @property
    def first(self) -> dict:
        return self.rows[0]

    @property
    def set_id(self) -> str:
        return self.first["set_id"]

    @property
    def winner(self) -> int | None:
        """The selected candidate (accepted sets only)."""
        return next((r["candidate_index"] for r in self.rows if r["selected"]), None)

    @property
    def passing(self) -> list[int]:
        """Candidates that passed every hard gate: the only ones that could win."""
        return [r["candidate_index"] for r in self.rows if not r["gate_failures"]]

    @property
    def people_decided(self) -> bool:
        return self.first["decision_source"] == HUMAN and self.first["review"] is not None


def stream_sets(root: Path, dataset: str, iterations: list[int] | None = None, columns: list[str] | None = None,
                batch_rows: int = 64) -> Iterator[CandidateSetRows]:
    """Every set of the dataset (or of ``iterations``), in iteration and shard order; ``columns``
    defaults to everything but the video (add ``"video"`` to get the bytes)."""
    columns = columns or META
    needed = list(dict.fromkeys(["set_id", "candidate_index", *columns]))
    current: list[dict] = []
    iteration = None
    for path in shard_files(root, dataset, iterations):
        if current and iteration_of(path) != iteration:
            yield CandidateSetRows(iteration, sorted(current, key=lambda r: r["candidate_index"]))
            current = []
        iteration = iteration_of(path)
        # read with the current schema: what a file written at an earlier version lacks reads as null
        scanner = ds.dataset(path, format="parquet", schema=SCHEMA).scanner(columns=needed, batch_size=batch_rows,
                                                                              use_threads=False)
        for batch in scanner.to_batches():
            for row in batch.to_pylist():
                if current and row["set_id"] != current[0]["set_id"]:
                    yield CandidateSetRows(iteration, sorted(current, key=lambda r: r["candidate_index"]))
                    current = []
                current.append(row)
    if current:
        yield CandidateSetRows(iteration, sorted(current, key=lambda r: r["candidate_index"]))
