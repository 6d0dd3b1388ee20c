"""Preference pairs for DPO-style training, from decided candidate sets.

A set accepted by the judges or by people gives its winner against each other candidate that passed
the gates (a winner and three passing losers: three pairs; ``order="winner"``, the paper's top-1). With
``order="consensus"`` it also gives every pair of the other candidates that every judge who ranked the set
orders the same way. Why: the winner against the rest always sets the best of four against typical
candidates, and a generator raises that margin as much by spreading out (more of both tails) as by moving
toward the taste: for a Gaussian, the winner-against-rest pairs push its log-spread up by
3 E[x_1^2] - E[x_2^2 + x_3^2 + x_4^2] > 0 (ordered draws, centred), while the full order's six pairs push it by
3 E[x_1^2] + E[x_2^2] - E[x_3^2] - 3 E[x_4^2] = 0 and move only its mean. When a reviewer gave a full
order of the candidates (a ``ranking`` in the review), every (better, worse) pair of that order among
passing candidates is used instead. ``weight`` is 1 / (pairs from the set), so each decided set weighs the
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
    ("order_source", pa.string()),  # winner (winner against each loser) | judges_consensus | reviewer_ranking
    ("criterion", pa.string()),
    ("weight", pa.float64()),
])
FORMATS = ("parquet", "videodpo")
ORDERS = ("winner", "consensus")
ROW_GROUP = 64


def judges_agree(judges: list[dict] | None, a: int, b: int) -> bool:
    """Every judge that ranked (did not abstain) puts ``a`` above ``b``; at least one did."""
    orders = [j["ranking"] for j in judges or [] if not j.get("abstained") and j.get("ranking")]
    return bool(orders) and all(a in o and b in o and o.index(a) < o.index(b) for o in orders)


def set_pairs(candidate_set: CandidateSetRows, order: str = "winner") -> tuple[list[tuple[int, int]], str]:
    """(chosen, rejected) candidate pairs of one set, and where their order comes from."""
    if order not in ORDERS:
        raise ValueError(f"pair order '{order}' is unknown; use one of {', '.join(ORDERS)}")
    first = candidate_set.first
    winner = candidate_set.winner
    if first["decision"] != ACCEPTED or winner is None:
        return [], ""
    passing = set(candidate_set.passing) | {winner}
    ranking = (first["review"] or {}).get("ranking")  # best first: indices or candidate_K names
    if ranking:
        ranked = [c for c in (int(str(r).removeprefix("candidate_")) for r in ranking) if c in passing]
        return list(combinations(ranked, 2)), "reviewer_ranking"
    pairs = [(winner, c) for c in sorted(passing) if c != winner]
    if order == "winner":
        return pairs, "winner"
    others = sorted(passing - {winner})
    agreed = [(a, b) for a in others for b in others if a != b and judges_agree(first.get("judges"), a, b)]
    return pairs + agreed, "judges_consensus"


def iter_pairs(root: Path, dataset: str, iterations: list[int] | None = None, order: str = "winner"
               ) -> Iterator[dict]:
    """Pair rows in ``PAIR_SCHEMA``, set by set."""
    for s in stream_sets(root, dataset, iterations, META + ["video", "fps"], batch_rows=8):
        pairs, source = set_pairs(s, order)
        by_index = {r["candidate_index"]: r for r in s.rows}
        for chosen, rejected in pairs:
            first = s.first
            yield {"pair_id": f"{s.set_id}:c{chosen}>c{rejected}", "set_id": s.set_id, "round_id": first["round_id"],
                   "iteration": s.iteration, "prompt": first["prompt"], "enhanced_prompt": first["enhanced_prompt"],
                   "chosen_index": chosen, "rejected_index": rejected, "chosen_video": by_index[chosen]["video"],
                   "rejected_video": by_index[rejected]["video"], "fps": first["fps"],
                   "decision_source": first["decision_source"], "order_source": source,
                   "criterion": first["criterion"], "weight": 1.0 / len(pairs)}


def write_pairs(root: Path, dataset: str, out: Path, iterations: list[int] | None = None, order: str = "winner"
                ) -> int:
    """The pairs as one Parquet file (written atomically); the number of pairs."""
    count = 0

    def write(tmp: Path) -> None:
        nonlocal count
        with pq.ParquetWriter(tmp, PAIR_SCHEMA, compression="zstd") as writer:
            batch: list[dict] = []
            for pair in iter_pairs(root, dataset, iterations, order):
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


def write_videodpo(root: Path, dataset: str, out: Path, iterations: list[int] | None = None, order: str = "winner"
                   ) -> int:
    """VideoDPO-style layout: ``out`` (a JSON list of {prompt, chosen, rejected, ...} with paths
    relative to it) and ``videos/`` beside it, each candidate's mp4 written once."""
    out = Path(out)
    videos = out.parent / "videos"
    items = []
    for pair in iter_pairs(root, dataset, iterations, order):
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

