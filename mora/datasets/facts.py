"""What a dataset holds, per iteration, in one pass over its shards (no video read): the numbers the
dataset card, the iteration report and ``mora dataset judges`` show, and the reliability model fitted
on them (``mora.review.reliability``: refitted at every publish, so after every round and every collect)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from mora.datasets.agreement import agreement_table, outcomes
from mora.datasets.sets import HUMAN, stream_sets
from mora.judges.verdict import ACCEPTED, DISCARDED, NEEDS_REVIEW
from mora.review.precision import routing_table
from mora.review.reliability import ReliabilityModel, SetEvidence, fit, reliability_table

COUNTS = ["iteration", "rounds", "sets", "candidates", "accepted_by_judges", "accepted_by_people",
          "discarded_by_gates", "discarded_by_people", "pending_review", "selected"]


@dataclass
class DatasetFacts:
    counts: list[dict] = field(default_factory=list)  # one row per iteration, COUNTS
    generators: list[dict] = field(default_factory=list)  # {iteration, role, model_id, revision}
    judges: list[dict] = field(default_factory=list)  # {judge, model, backend, method}
    criteria: list[dict] = field(default_factory=list)  # {iteration, criterion, sets}
    agreement: list[dict] = field(default_factory=list)  # mora.datasets.agreement.agreement_table
    routing: list[dict] = field(default_factory=list)  # mora.review.precision.routing_table
    reliability: list[dict] = field(default_factory=list)  # mora.review.reliability.reliability_table
    model: ReliabilityModel | None = None

    @property
    def iterations(self) -> list[int]:
        return [c["iteration"] for c in self.counts]


def _count(by_iteration: dict[int, dict], iteration: int) -> dict:
    return by_iteration.setdefault(iteration, dict.fromkeys(COUNTS, 0) | {"iteration": iteration, "rounds": set()})


def dataset_facts(root: Path, dataset: str) -> DatasetFacts:
    by_iteration: dict[int, dict] = {}
    generators: dict[tuple, dict] = {}
    judges: dict[tuple, dict] = {}
    criteria: Counter = Counter()
    decided: list[dict] = []
    evidence: list[SetEvidence] = []
    candidates = 0  # per set: the most any set has (the config's generation.candidates)
    for s in stream_sets(root, dataset):
        candidates = max(candidates, len(s.rows))
        decided.extend(outcomes([s]))
        evidence.append(SetEvidence.from_rows(s.rows, s.iteration))
        first, c = s.first, _count(by_iteration, s.iteration)
        c["rounds"].add(first["round_id"])
        c["sets"] += 1
        c["candidates"] += len(s.rows)
        c["selected"] += sum(bool(r["selected"]) for r in s.rows)
        human = first["decision_source"] == HUMAN
        if first["decision"] == ACCEPTED:
            c["accepted_by_people" if human else "accepted_by_judges"] += 1
        elif first["decision"] == DISCARDED:
            c["discarded_by_people" if human else "discarded_by_gates"] += 1
        elif first["decision"] == NEEDS_REVIEW:
            c["pending_review"] += 1
        criteria[(s.iteration, first["criterion"])] += 1
        for m in first["generator_models"] or []:
            key = (s.iteration, m["role"], m["model_id"], m["revision"])
            generators.setdefault(key, {"iteration": s.iteration} | m)
        for j in first["judges"] or []:
            judges.setdefault((j["judge"], j["model"], j["backend"], j["method"]),
                              {k: j[k] for k in ("judge", "model", "backend", "method")})
    counts = [by_iteration[k] | {"rounds": len(by_iteration[k]["rounds"])} for k in sorted(by_iteration)]
    model = fit(evidence, candidates or 4)
    return DatasetFacts(
        counts=counts, generators=[generators[k] for k in sorted(generators, key=lambda k: tuple(map(str, k)))],
        judges=list(judges.values()),
        criteria=[{"iteration": it, "criterion": cr, "sets": n} for (it, cr), n in sorted(criteria.items())],
        agreement=agreement_table(decided), routing=routing_table(evidence, model),
        reliability=reliability_table(model), model=model)
