"""Judges checked against people: how often each judge's pick was the candidate people chose.

Only sets people decided count. A judge's pick is its best-ranked candidate that passed the gates
(what the round acts on). Sets people rejected outright have no right pick: they are counted apart
(``rejected_all``), as are the judge's abstentions; neither enters the rate. Each rate carries a 95%
Wilson score interval, which stays inside [0, 1] and is honest for the handful of sets an
iteration has.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from mora.datasets.sets import CandidateSetRows

Z95 = 1.959963984540054
LEVELS = ("all", "criterion", "iteration")
COLUMNS = ["judge", "by", "value", "sets", "matches", "rate", "low", "high", "rejected_all", "abstained"]


def wilson(matches: int, n: int, z: float = Z95) -> tuple[float | None, float | None]:
    """The Wilson score interval of ``matches`` successes in ``n`` trials; (None, None) when n is 0."""
    if n == 0:
        return None, None
    p = matches / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def person_pick(candidate_set: CandidateSetRows) -> int | None:
    """The candidate people chose, or None when they rejected every candidate."""
    choice = candidate_set.first["review"]["choice"]
    return int(choice.removeprefix("candidate_")) if choice.startswith("candidate_") else None


def judge_pick(judge: dict, passing: list[int]) -> int | None:
    if judge["abstained"] or not judge["ranking"]:
        return None
    return next((c for c in judge["ranking"] if c in passing), None)


def outcomes(sets: Iterable[CandidateSetRows]) -> list[dict]:
    """One record per (person-decided set, judge): ``outcome`` is match, miss, rejected_all or abstained."""
    out = []
    for s in sets:
        if not s.people_decided:
            continue
        pick = person_pick(s)
        for judge in s.first["judges"]:
            mine = judge_pick(judge, s.passing)
            outcome = ("abstained" if mine is None else "rejected_all" if pick is None
                       else "match" if mine == pick else "miss")
            out.append({"judge": judge["judge"], "criterion": s.first["criterion"], "iteration": s.iteration,
                        "set_id": s.set_id, "outcome": outcome})
    return out


def agreement_table(records: list[dict]) -> list[dict]:
    """Per judge: over all sets, then per criterion, then per iteration; counts, rate and 95% interval."""
    groups: dict[tuple, list[str]] = {}
    for r in records:
        for level in LEVELS:
            value = "all" if level == "all" else str(r[level])
            groups.setdefault((r["judge"], level, value), []).append(r["outcome"])
    table = []
    for (judge, level, value), seen in sorted(groups.items(), key=lambda kv: _order(kv[0])):
        matches, misses = seen.count("match"), seen.count("miss")
        n = matches + misses
        low, high = wilson(matches, n)
        table.append({"judge": judge, "by": level, "value": value, "sets": n, "matches": matches,
                      "rate": round(matches / n, 4) if n else None,
                      "low": None if low is None else round(low, 4), "high": None if high is None else round(high, 4),
                      "rejected_all": seen.count("rejected_all"), "abstained": seen.count("abstained")})
    return table


def _order(key: tuple) -> tuple:
    judge, level, value = key
    return judge, LEVELS.index(level), int(value) if level == "iteration" else value


def agreement_markdown(table: list[dict]) -> str:
    """The table for people: the round's Prefect artifact, the dataset card and the CLI's source."""
    if not table:
        return "No set has been decided by people yet, so no judge can be checked against them."
    lines = ["| judge | by | value | matches / sets | rate | 95% interval | people rejected all | abstained |",
             "|---|---|---|---|---|---|---|---|"]
    for r in table:
        rate = "–" if r["rate"] is None else f"{r['rate']:.2f}"
        interval = "–" if r["low"] is None else f"{r['low']:.2f}–{r['high']:.2f}"
        lines.append(f"| {r['judge']} | {r['by']} | {r['value']} | {r['matches']} / {r['sets']} | {rate} | "
                     f"{interval} | {r['rejected_all']} | {r['abstained']} |")
    return "\n".join(lines)
