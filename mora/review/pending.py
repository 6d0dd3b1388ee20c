"""Pending review records: candidate sets people decide (those the judges could not settle, and accepted
sets drawn for audit), waiting for people.

One JSON file per set under ``ROOT/_state/DATASET/reviews/pending/`` while people have not decided
(status ``pending``, then ``pushed`` once it is a Label Studio task), moved to ``reviews/done/`` with
the outcome once they have. Writing a record that exists already changes nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from mora.atomic import write_json_atomic
from mora.judges.verdict import ACCEPTED, NEEDS_REVIEW


def reviews_dir(root: Path, dataset: str) -> Path:
    return Path(root) / "_state" / dataset / "reviews" / "pending"


def for_people(row: dict) -> bool:
    """Sets people decide: those that need review, and accepted ones drawn for audit."""
    routing = row.get("routing") or {}
    return row["decision"] == NEEDS_REVIEW or (row["decision"] == ACCEPTED and bool(routing.get("audited")))


def record_pending(root: Path, dataset: str, iteration: int, rows: list[dict], shard_paths: list[Path]) -> list[Path]:
    """A record for every set people decide (``for_people``); existing records are left as they are."""
    out, written = reviews_dir(root, dataset), []
    by_set: dict[str, list[dict]] = {}
    for row in rows:
        if for_people(row):
            by_set.setdefault(row["set_id"], []).append(row)
    for set_id, cands in by_set.items():
        path = out / (set_id.replace("/", "__") + ".json")
        if path.exists() or record_path(root, dataset, set_id, done=True).exists():
            continue
        first = cands[0]
        routing = first.get("routing") or {}
        write_json_atomic(path, {
            "set_id": set_id, "round_id": first["round_id"], "iteration": iteration,
            "status": "pending", "prompt": first["prompt"], "enhanced_prompt": first["enhanced_prompt"],
            "criterion": first["criterion"], "reason": first["decision_reason"],
            "why": routing.get("why") or first["decision_reason"], "audit": first["decision"] == ACCEPTED,
            "rule": routing.get("rule") or "agreement", "winner": routing.get("winner"),
            "probability": routing.get("probability"),
            "candidates": [c["candidate_index"] for c in cands],
            "passing": [c["candidate_index"] for c in cands if not c["gate_failures"]],
            "judges": [{"judge": j["judge"], "ranking": j["ranking"], "abstained": j["abstained"],
                        "confidence": j["confidence"], "scores": j.get("scores"), "reason": j["reason"]}
                       for j in first["judges"]],
            "shards": [str(p) for p in shard_paths], "created_at": datetime.now(UTC).isoformat(),
        })
        written.append(path)
    return written


def record_path(root: Path, dataset: str, set_id: str, done: bool = False) -> Path:
    folder = reviews_dir(root, dataset).parent / ("done" if done else "pending")
    return folder / (set_id.replace("/", "__") + ".json")


def read_records(root: Path, dataset: str) -> tuple[list[dict], list[tuple[Path, str]]]:
    """Undecided review records, and the files that are not a readable record, each with the reason."""
    good, bad = [], []
    for path in sorted(reviews_dir(root, dataset).glob("*.json")):
        try:
            if path.is_symlink():
                raise ValueError("the record file is a symbolic link")
            record = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(record, dict) or not isinstance(record.get("set_id"), str) or not isinstance(
                    record.get("iteration"), int) or not isinstance(record.get("shards"), list):
                raise ValueError("the record lacks set_id, iteration or shards")
        except (OSError, ValueError) as exc:
            bad.append((path, f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}"))
            continue
        good.append(record)
    return good, bad


def records(root: Path, dataset: str, status: str | None = None) -> list[dict]:
    """Undecided review records of a dataset, oldest set first (unreadable files are skipped; a push sets
    them aside)."""
    return [r for r in read_records(root, dataset)[0] if status is None or r.get("status") == status]


def failed_dir(root: Path, dataset: str) -> Path:
    return reviews_dir(root, dataset).parent / "failed"


def set_aside(root: Path, dataset: str, path: Path, reason: str) -> Path:
    """A record that cannot reach reviewers moves to ``reviews/failed/`` with the reason; the rest go on."""
    try:
        content = json.loads(path.read_text(encoding="utf-8")) if not path.is_symlink() else None
    except (OSError, ValueError):
        content = None
    if content is None:
        content = path.read_text(encoding="utf-8", errors="replace")[:100_000] if path.is_file() and not \
            path.is_symlink() else None
    out = write_json_atomic(failed_dir(root, dataset) / path.name, {
        "reason": reason, "failed_at": datetime.now(UTC).isoformat(), "record": content})
    path.unlink(missing_ok=True)
    return out


def update_record(root: Path, dataset: str, record: dict) -> None:
    write_json_atomic(record_path(root, dataset, record["set_id"]), record)


def close_record(root: Path, dataset: str, record: dict) -> None:
    """Decided: the record moves to ``done`` (written there first, so a crash never loses it)."""
    write_json_atomic(record_path(root, dataset, record["set_id"], done=True), record)
    record_path(root, dataset, record["set_id"]).unlink(missing_ok=True)


def pending_counts(root: Path) -> dict[tuple[str, int], int]:
    """Pending sets per (dataset, iteration)."""
    counts: dict[tuple[str, int], int] = {}
    for path in Path(root).glob("_state/*/reviews/pending/*.json"):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            int(record["iteration"])
        except (OSError, ValueError, TypeError, KeyError):
            continue  # not a readable record: the next push sets it aside with the reason
        if record.get("status") in ("pending", "pushed"):
            key = (path.parents[2].name, int(record["iteration"]))
            counts[key] = counts.get(key, 0) + 1
    return counts
