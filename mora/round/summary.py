"""What a round produced, as numbers a person reads first."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from mora.judges.verdict import ACCEPTED, DISCARDED, NEEDS_REVIEW


def summarize(round_id: str, rows: list[dict], shard_paths: list[Path], pending: int, seconds: float,
              routing: str | None = None) -> dict:
    """``routing``: the policy's one line (the rule, or why reliability fell back to agreement)."""
    sets: dict[str, dict] = {}
    for row in rows:
        sets.setdefault(row["set_id"], row)
    decisions = Counter(r["decision"] for r in sets.values())
    judged = [r for r in sets.values() if not any(j["abstained"] for j in r["judges"])]
    agree = sum(len({j["ranking"][0] for j in r["judges"]}) == 1 for r in judged)
    routed = [r["routing"] for r in sets.values() if r.get("routing")]
    audited = sum(bool(r["audited"]) and r["decision"] == ACCEPTED for r in routed)
    return {
        "round_id": round_id,
        "prompts": len(sets),
        "candidates": len(rows),
        ACCEPTED: decisions.get(ACCEPTED, 0),
        NEEDS_REVIEW: decisions.get(NEEDS_REVIEW, 0),
        DISCARDED: decisions.get(DISCARDED, 0),
        "judge_agreement": round(agree / len(judged), 3) if judged else None,
        "pending_reviews": pending,
        "accepted_by_reliability": sum(r["decision_source"] == "judges-reliability" and r["decision"] == ACCEPTED
                                       for r in sets.values()),
        "audited": audited,  # accepted by the judges, decided by people too
        "review_load": round((decisions.get(NEEDS_REVIEW, 0) + audited) / len(sets), 3) if sets else None,
        "routing": routing or "agreement (the paper's rule)",
        "shards": [str(p) for p in shard_paths],
        "seconds": round(seconds, 2),
    }


def summary_markdown(summary: dict) -> str:
    lines = [f"# Dataset round `{summary['round_id']}`", "", "| what | count |", "|---|---|"]
    for key in ("prompts", "candidates", ACCEPTED, NEEDS_REVIEW, DISCARDED, "judge_agreement", "pending_reviews",
                "accepted_by_reliability", "audited", "review_load", "seconds"):
        lines.append(f"| {key} | {summary.get(key)} |")
    lines += ["", f"Routing: {summary.get('routing')}"]
    lines += ["", "Shards:"] + [f"- `{p}`" for p in summary["shards"]]
    if summary.get("contact_sheets"):
        lines += ["", "Contact sheets (every set: prompt, candidates, winner in green, gated in red):"]
        lines += [f"- [{Path(p).name}]({Path(p).resolve().as_uri()})" for p in summary["contact_sheets"]]
    return "\n".join(lines)
