"""Per iteration: the rule that routed its sets, the review load, and how often accepted sets agree with people.

Precision is measured on the audited sets: accepted ones drawn at random before judging and decided by
people all the same. A set agrees when people chose the candidate the rule accepted; rejecting every
candidate disagrees. With ``MIN_PPI`` audited decisions or more, prediction-powered inference adds the
other accepted sets (PPI++ for a mean, Angelopoulos, Duchi & Zrnic, arXiv 2311.01453): the reliability
model's predicted agreement over the unaudited sets, corrected by its error on the audited ones, with the
power-tuning weight that minimises the variance; a model that predicts badly is tuned away and the
interval is the audited sets' own. Below ``MIN_PPI`` (the interval is a normal approximation) it is the
audited sets' Wilson interval; with none, precision is not measured. (``ppi-python`` computes the same
interval but installs a top-level ``tests`` package that shadows ours, so the few lines live here.)
"""

from __future__ import annotations

from mora.datasets.agreement import Z95, wilson
from mora.judges.verdict import ACCEPTED, NEEDS_REVIEW
from mora.review.reliability import ReliabilityModel, SetEvidence

MIN_PPI = 30
COLUMNS = ["iteration", "rule", "sets", "to_people", "review_load", "accepted_auto", "audited", "audited_decided",
           "precision", "low", "high", "method"]


def routed(s: SetEvidence) -> tuple[str, str, int | None]:
    """(rule, decision, winner) as the set was routed before people saw it; sets written before routing
    existed were routed by agreement, and their decision then is the judges' one or a review."""
    if s.routing:
        return s.routing["rule"], s.routing["decision"], s.routing["winner"]
    if s.decision_source == "human":
        return "agreement", NEEDS_REVIEW, None
    return "agreement", s.decision, s.selected


def to_people(s: SetEvidence) -> bool:
    _, decision, _ = routed(s)
    return decision == NEEDS_REVIEW or (decision == ACCEPTED and s.audited)


def precision(labelled: list[tuple[float, float]], unlabelled: list[float]) -> tuple[float | None, float | None,
                                                                                      float | None, str]:
    """(estimate, low, high, method) from (agreed, predicted) of audited sets and predictions of the others."""
    n = len(labelled)
    if not n:
        return None, None, None, "not measured"
    agreed = sum(y for y, _ in labelled)
    if n < MIN_PPI or not unlabelled:
        low, high = wilson(round(agreed), n)
        return agreed / n, low, high, "audited (Wilson)"
    estimate, half = ppi_mean(labelled, unlabelled)
    return min(max(estimate, 0.0), 1.0), max(estimate - half, 0.0), min(estimate + half, 1.0), "PPI++"


def ppi_mean(labelled: list[tuple[float, float]], unlabelled: list[float], z: float = Z95) -> tuple[float, float]:
    """PPI++ estimate of a mean and its interval's half-width: ``mean(y - lam f) + lam mean(f~)``, the
    weight ``lam = cov(y, f) / ((1 + n / N) var(f, f~))`` clipped to [0, 1], its variance
    ``var(y - lam f) / n + lam^2 var(f~) / N`` (ppi-python's ``ppi_mean_ci`` with its defaults)."""
    import numpy as np

    y = np.array([a for a, _ in labelled], dtype=float)
    f = np.array([p for _, p in labelled], dtype=float)
    rest = np.array(unlabelled, dtype=float)
    n, big = len(y), len(rest)
    spread = np.var(np.concatenate([f, rest]), ddof=1)
    lam = float(np.clip(np.cov(y, f, ddof=0)[0, 1] / ((1 + n / big) * spread), 0, 1)) if spread > 0 else 0.0
    estimate = float(np.mean(y - lam * f) + lam * np.mean(rest))
    variance = np.var(y - lam * f) / n + lam ** 2 * np.var(rest) / big
    return estimate, float(z * np.sqrt(variance))


def routing_table(sets: list[SetEvidence], model: ReliabilityModel) -> list[dict]:
    """One row per iteration, then one for all of them."""
    by_iteration: dict[int, list[SetEvidence]] = {}
    for s in sets:
        by_iteration.setdefault(s.iteration, []).append(s)
    groups = [(str(k), by_iteration[k]) for k in sorted(by_iteration)]
    if len(groups) > 1:
        groups.append(("all", sets))
    return [_row(name, group, model) for name, group in groups]


def _row(name: str, sets: list[SetEvidence], model: ReliabilityModel) -> dict:
    rules, sent, labelled, unlabelled, audited = set(), 0, [], [], 0
    for s in sets:
        rule, decision, winner = routed(s)
        rules.add(rule)
        sent += to_people(s)
        if decision != ACCEPTED or winner is None:
            continue
        predicted = model.people_choice(s).get(winner, 0.0)
        if s.audited:
            audited += 1
            if s.decided:
                labelled.append((float(s.people == winner), predicted))
        else:
            unlabelled.append(predicted)
    estimate, low, high, method = precision(labelled, unlabelled)
    return {"iteration": name, "rule": "+".join(sorted(rules)), "sets": len(sets), "to_people": sent,
            "review_load": round(sent / len(sets), 3) if sets else None, "accepted_auto": audited + len(unlabelled),
            "audited": audited, "audited_decided": len(labelled), "precision": _round(estimate), "low": _round(low),
            "high": _round(high), "method": method}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
