"""Simulated judges and reviewers of known reliability, for ``bench/routing.py`` and the tests.

A set has a hidden best candidate. Each judge picks it with its accuracy under the set's criterion, and
otherwise a wrong one; under a criterion with ``shared`` > 0 two wrong judges fall for the same decoy
with that probability (errors that agree, which a model assuming independent judges overrates). A
judge's confidence is higher when it is right (``Beta(4, 2)`` against ``Beta(2, 4)``). A reviewer picks
the best with their own accuracy. Sets come out as shard rows (the paper's decision made by
``mora.judges.verdict.decide``), so routing and collecting run the production code on them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, fields

from mora.judges.verdict import JudgeRanking, decide

JUDGES = ("llava-onevision", "qwen2-vl")


@dataclass(frozen=True)
class Scenario:
    name: str
    criteria: dict[str, tuple[float, float]]  # criterion -> each judge's accuracy
    shared: dict[str, float] = field(default_factory=dict)  # criterion -> P(two wrong judges share a decoy)
    reviewers: dict[str, float] = field(default_factory=lambda: {"ann@x": 0.98, "bob@x": 0.96, "cy@x": 0.94})
    candidates: int = 4


@dataclass
class SimulatedSet:
    rows: list[dict]
    best: int
    people: int  # what the reviewer drawn for it would choose
    reviewer: str
    draw: float = 0.0  # the set's audit coin, when a replay needs one


def _ranking(pick: int, candidates: int, rng: random.Random) -> list[int]:
    rest = [c for c in range(candidates) if c != pick]
    rng.shuffle(rest)
    return [pick, *rest]


def simulate_set(scenario: Scenario, set_id: str, rng: random.Random) -> SimulatedSet:
    k = scenario.candidates
    criterion = rng.choice(sorted(scenario.criteria))
    best = rng.randrange(k)
    decoy = rng.choice([c for c in range(k) if c != best])
    rankings, wrong_before = [], False
    for judge, accuracy in zip(JUDGES, scenario.criteria[criterion], strict=True):
        right = rng.random() < accuracy
        if right:
            pick = best
        elif wrong_before and rng.random() < scenario.shared.get(criterion, 0.0):
            pick = decoy
        else:
            pick = rng.choice([c for c in range(k) if c != best])
            if not wrong_before:
                decoy = pick  # the first wrong judge's pick is the decoy a second wrong judge may share
        wrong_before = wrong_before or not right
        confidence = rng.betavariate(4, 2) if right else rng.betavariate(2, 4)
        ranking = _ranking(pick, k, rng)
        scores = [0.0] * k
        for place, c in enumerate(ranking):
            scores[c] = 1.0 - place * 0.1
        scores[pick] = scores[ranking[1]] + confidence
        rankings.append(JudgeRanking(judge=judge, model=judge, ranking=ranking, scores=scores,
                                     confidence=confidence, method="simulated", backend="simulated"))
    decision = decide(rankings)
    reviewer = rng.choice(sorted(scenario.reviewers))
    people = best if rng.random() < scenario.reviewers[reviewer] else rng.choice([c for c in range(k) if c != best])
    # the rows' judges as JudgeRanking.to_row gives them, without its deep copies (the simulation's hot spot);
    # one list for the set's rows, as a shard read gives them
    judges = [{f.name: getattr(r, f.name) for f in fields(r)} for r in rankings]
    rows = [{"set_id": set_id, "candidate_index": c, "gate_failures": [], "criterion": criterion, "judges": judges,
             "decision": decision.decision, "decision_source": "judges", "decision_reason": decision.reason,
             "selected": decision.decision == "accepted" and decision.winner == c, "review": None, "routing": None}
            for c in range(k)]
    return SimulatedSet(rows, best, people, reviewer)


def people_decide(rows: list[dict], choice: int | None, reviewer: str) -> list[dict]:
    """The set's rows as a collect leaves them once ``reviewer`` chose ``choice`` (None: rejected all)."""
    from mora.review.collect import Verdict, decided_rows

    verdict = Verdict(choice="reject_all" if choice is None else f"candidate_{choice}", reviewers=[reviewer],
                      reasons=[], lead_time_s=1.0, annotations=1)
    return decided_rows(rows, verdict, task_id=0)
