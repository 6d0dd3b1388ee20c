"""Pending review records: candidate sets the judges could not settle, waiting for people.

One JSON file per set under ``ROOT/_state/DATASET/reviews/pending/``; the Label Studio side pushes
them out and moves them on. Writing a record that exists already changes nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from mora.atomic import write_json_atomic
from mora.judges.verdict import NEEDS_REVIEW


def reviews_dir(root: Path, dataset: str) -> Path:
    return Path(root) / "_state" / dataset / "reviews" / "pending"


def record_pending(root: Path, dataset: str, iteration: int, rows: list[dict], shard_paths: list[Path]) -> list[Path]:
    """A record for every set that needs review; existing records are left as they are."""
    out, written = reviews_dir(root, dataset), []
    by_set: dict[str, list[dict]] = {}
    for row in rows:
        if row["decision"] == NEEDS_REVIEW:
            by_set.setdefault(row["set_id"], []).append(row)
    for set_id, cands in by_set.items():
        path = out / (set_id.replace("/", "__") + ".json")
        if path.exists():
            continue
        first = cands[0]
        write_json_atomic(path, {
            "set_id": set_id, "round_id": first["round_id"], "iteration": iteration,
            "status": "pending", "prompt": first["prompt"], "enhanced_prompt": first["enhanced_prompt"],
            "criterion": first["criterion"], "reason": first["decision_reason"],
            "candidates": [c["candidate_index"] for c in cands],
            "judges": [{"judge": j["judge"], "ranking": j["ranking"], "abstained": j["abstained"]}
                       for j in first["judges"]],
            "shards": [str(p) for p in shard_paths], "created_at": datetime.now(UTC).isoformat(),
        })
        written.append(path)
    return written


def pending_counts(root: Path) -> dict[tuple[str, int], int]:
    """Pending sets per (dataset, iteration)."""
    counts: dict[tuple[str, int], int] = {}
    for path in Path(root).glob("_state/*/reviews/pending/*.json"):
        record = json.loads(path.read_text())
        if record.get("status") == "pending":
            key = (path.parents[2].name, int(record["iteration"]))
            counts[key] = counts.get(key, 0) + 1
    return counts
