"""Preference pairs for DPO-style training, from decided candidate sets.

A set accepted by the judges or by people gives its winner against each other candidate that passed
the gates (a winner and three passing losers: three pairs). When a reviewer gave a full order of the
candidates (a ``ranking`` in the review), every (better, worse) pair of that order among passing
candidates is used instead. ``weight`` is 1 / (pairs from the set), so each decided set weighs the
same in a weighted loss however many losers it had. Discarded and undecided sets give no pairs.

Written streaming: one set's videos and one row group of pairs in memory at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import combinations
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mora.atomic import write_atomic, write_json_atomic
from mora.datasets.sets import META, CandidateSetRows, stream_sets
from mora.judges.verdict import ACCEPTED

PAIR_SCHEMA = pa.schema([
    ("pair_id", pa.string()),  # SET_ID:cCHOSEN>cREJECTED
    ("set_id", pa.string()),
    ("round_id", pa.string()),
    ("iteration", pa.int32()),
    ("prompt", pa.string()),
    ("enhanced_prompt", pa.string()),
    ("chosen_index", pa.int8()),
    ("rejected_index", pa.int8()),
    ("chosen_video", pa.binary()),  # mp4 bytes, as in the shards
    ("rejected_video", pa.binary()),
    ("fps", pa.float32()),
    ("decision_source", pa.string()),  # judges | human
    ("order_source", pa.string()),  # winner (winner against each loser) | reviewer_ranking
    ("criterion", pa.string()),
    ("weight", pa.float64()),
])
FORMATS = ("parquet", "videodpo")
ROW_GROUP = 64


def set_pairs(candidate_set: CandidateSetRows) -> tuple[list[tuple[int, int]], str]:
    """(chosen, rejected) candidate pairs of one set, and where their order comes from."""
    first = candidate_set.first
    winner = candidate_set.winner
    if first["decision"] != ACCEPTED or winner is None:
        return [], ""
    passing = set(candidate_set.passing) | {winner}
    ranking = (first["review"] or {}).get("ranking")  # best first: indices or candidate_K names
    if ranking:
        order = [c for c in (int(str(r).removeprefix("candidate_")) for r in ranking) if c in passing]
        return list(combinations(order, 2)), "reviewer_ranking"
    return [(winner, c) for c in sorted(passing) if c != winner], "winner"


def iter_pairs(root: Path, dataset: str, iterations: list[int] | None = None) -> Iterator[dict]:
    """Pair rows in ``PAIR_SCHEMA``, set by set."""
    for s in stream_sets(root, dataset, iterations, META + ["video", "fps"], batch_rows=8):
        pairs, source = set_pairs(s)
        by_index = {r["candidate_index"]: r for r in s.rows}
        for chosen, rejected in pairs:
            first = s.first
            yield {"pair_id": f"{s.set_id}:c{chosen}>c{rejected}", "set_id": s.set_id, "round_id": first["round_id"],
                   "iteration": s.iteration, "prompt": first["prompt"], "enhanced_prompt": first["enhanced_prompt"],
                   "chosen_index": chosen, "rejected_index": rejected, "chosen_video": by_index[chosen]["video"],
                   "rejected_video": by_index[rejected]["video"], "fps": first["fps"],
                   "decision_source": first["decision_source"], "order_source": source,
                   "criterion": first["criterion"], "weight": 1.0 / len(pairs)}


def write_pairs(root: Path, dataset: str, out: Path, iterations: list[int] | None = None) -> int:
    """The pairs as one Parquet file (written atomically); the number of pairs."""
    count = 0

    def write(tmp: Path) -> None:
        nonlocal count
        with pq.ParquetWriter(tmp, PAIR_SCHEMA, compression="zstd") as writer:
            batch: list[dict] = []
            for pair in iter_pairs(root, dataset, iterations):
                batch.append(pair)
                if len(batch) == ROW_GROUP:
                    writer.write_table(pa.Table.from_pylist(batch, schema=PAIR_SCHEMA))
                    count, batch = count + len(batch), []
            if batch:
                writer.write_table(pa.Table.from_pylist(batch, schema=PAIR_SCHEMA))
                count += len(batch)

    write_atomic(Path(out), write)
    return count


def video_name(set_id: str, candidate: int) -> str:
    return f"{set_id.replace('/', '__')}__c{candidate}.mp4"


def write_videodpo(root: Path, dataset: str, out: Path, iterations: list[int] | None = None) -> int:
    """VideoDPO-style layout: ``out`` (a JSON list of {prompt, chosen, rejected, ...} with paths
    relative to it) and ``videos/`` beside it, each candidate's mp4 written once."""
    out = Path(out)
    videos = out.parent / "videos"
    items = []
    for pair in iter_pairs(root, dataset, iterations):
        paths = {}
        for side in ("chosen", "rejected"):
            name = video_name(pair["set_id"], pair[f"{side}_index"])
            if not (videos / name).exists():
                data = pair[f"{side}_video"]
                write_atomic(videos / name, lambda tmp, data=data: tmp.write_bytes(data))
            paths[side] = f"videos/{name}"
        items.append({"prompt": pair["enhanced_prompt"] or pair["prompt"], "chosen": paths["chosen"],
                      "rejected": paths["rejected"], "weight": pair["weight"], "pair_id": pair["pair_id"],
                      "original_prompt": pair["prompt"], "decision_source": pair["decision_source"],
                      "criterion": pair["criterion"], "iteration": pair["iteration"]})
    write_json_atomic(out, items)
    return len(items)

