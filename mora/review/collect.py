"""Finished reviews become training rows of their iteration.

Rule with several annotators: a choice wins when more than half of the submitted (not cancelled)
annotations name it; otherwise the set stays pending until more people review it. A chosen
candidate makes the set accepted with that candidate selected; reject_all discards the set. The
set's rows are rewritten in their shard (atomically) with the decision source ``human``, the
reviewers (the accounts that submitted), their reason, time spent, full order where the project asks
for one, and when they submitted; the record moves to ``done``. A skipped task (a cancelled
annotation) is no vote. Collecting again changes nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from mora.datasets.shards import locate_shard, rewrite_sets
from mora.judges.verdict import ACCEPTED, DISCARDED
from mora.review.labeling import CHOICE, RANKING, REASON, REJECT_ALL
from mora.review.pending import close_record, records
from mora.review.push import client_for, server_call
from mora.review.server import Connection


@dataclass
class Verdict:
    choice: str  # candidate_K or reject_all
    reviewers: list[str]
    reasons: list[str]
    lead_time_s: float
    annotations: int
    reviewed_at: datetime | None = None  # the last agreeing annotation's own time
    ranking: list[int] | None = None  # full order, best first, when the project asks for one


@dataclass
class CollectResult:
    accepted: list[str] = field(default_factory=list)
    discarded: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)


def _value(annotation: dict, name: str) -> list[str]:
    for item in annotation.get("result") or []:
        if item.get("from_name") == name:
            value = item.get("value") or {}
            return list(value.get("choices") or value.get("text") or [])
    return []


def _ranking(annotation: dict) -> list[int] | None:
    """The Ranker's order (candidate indices, best first), or None when the reviewer gave none."""
    for item in annotation.get("result") or []:
        if item.get("from_name") == RANKING:
            order = next(iter(((item.get("value") or {}).get("ranker") or {}).values()), None)
            return [int(str(c).removeprefix("candidate_")) for c in order] if order else None
    return None


def _consistent(ranking: list[int] | None, choice: str) -> bool:
    """A ranking that puts the chosen candidate first. Label Studio submits an untouched Ranker in the order
    shown, so an order that contradicts the choice is no ranking at all."""
    return bool(ranking) and (choice == REJECT_ALL or choice == f"candidate_{ranking[0]}")


def _when(annotation: dict) -> datetime | None:
    stamp = annotation.get("updated_at") or annotation.get("created_at")
    if isinstance(stamp, str):
        stamp = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return stamp.astimezone(UTC) if stamp else None


def majority(annotations: list[dict], reviewer_names: dict[int, str]) -> Verdict | None:
    """The choice of more than half the submitted annotations, or None (the set keeps waiting)."""
    submitted = [a for a in annotations if not a.get("was_cancelled") and _value(a, CHOICE)]
    votes = Counter(_value(a, CHOICE)[0] for a in submitted)
    if not votes:
        return None
    choice, count = votes.most_common(1)[0]
    if count * 2 <= len(submitted):
        return None
    agreeing = [a for a in submitted if _value(a, CHOICE)[0] == choice]
    times = [t for t in map(_when, agreeing) if t is not None]
    return Verdict(choice=choice,
                   reviewers=[reviewer_names.get(a.get("completed_by"), str(a.get("completed_by"))) for a in agreeing],
                   reasons=[t for a in agreeing for t in _value(a, REASON) if t.strip()],
                   lead_time_s=float(sum(a.get("lead_time") or 0.0 for a in agreeing)), annotations=len(submitted),
                   reviewed_at=max(times) if times else None,
                   ranking=next((r for r in map(_ranking, agreeing) if _consistent(r, choice)), None))


def decided_rows(rows: list[dict], verdict: Verdict, task_id: int) -> list[dict]:
    """The set's rows with the people's decision in place of the judges'."""
    winner = None if verdict.choice == REJECT_ALL else int(verdict.choice.removeprefix("candidate_"))
    reason = "; ".join(verdict.reasons) or None
    review = {"reviewers": verdict.reviewers, "choice": verdict.choice, "reason": reason,
              "lead_time_s": verdict.lead_time_s, "annotations": verdict.annotations, "task_id": task_id,
              "reviewed_at": verdict.reviewed_at, "ranking": verdict.ranking}
    said = f"reviewers chose {verdict.choice}" if winner is not None else "reviewers rejected every candidate"
    return [row | {"decision": ACCEPTED if winner is not None else DISCARDED, "decision_source": "human",
                   "decision_reason": said + (f": {reason}" if reason else ""),
                   "selected": row["candidate_index"] == winner, "review": review} for row in rows]


def collect(conn: Connection, root: Path, dataset: str) -> CollectResult:
    client, result = client_for(conn), CollectResult()
    names: dict[int, str] = {}
    for user in server_call("listing users", client.users.list):
        names[user.id] = user.email or user.username
    pushed = records(root, dataset, "pushed")
    decided: dict[str, tuple[dict, Verdict]] = {}
    for record in pushed:
        annotations = server_call("listing annotations", client.annotations.list, id=record["task_id"])
        verdict = majority([a.model_dump() if hasattr(a, "model_dump") else dict(a) for a in annotations], names)
        if verdict is None:
            result.waiting.append(record["set_id"])
        else:
            decided[record["set_id"]] = (record, verdict)
    by_shard: dict[str, dict] = {}
    for set_id, (record, verdict) in decided.items():
        for shard in record["shards"]:
            by_shard.setdefault(shard, {})[set_id] = partial(decided_rows, verdict=verdict, task_id=record["task_id"])
    for shard, replace in by_shard.items():
        rewrite_sets(locate_shard(root, dataset, shard), replace)
    for set_id, (record, verdict) in decided.items():
        outcome = DISCARDED if verdict.choice == REJECT_ALL else ACCEPTED
        close_record(root, dataset, record | {"status": outcome, "choice": verdict.choice,
                                              "reviewers": verdict.reviewers})
        (result.discarded if outcome == DISCARDED else result.accepted).append(set_id)
    return result
