"""Judges and people as annotators of measured, unequal reliability: a one-coin Dawid–Skene model.

Each candidate set is an item whose hidden class is its best candidate. The annotators are each judge
under each criterion, split by the judge's own confidence (its margin at or below its median, or above),
and each reviewer. A judge's label is its best-ranked candidate that passed the gates (what the round acts
on); a reviewer's, the candidate people chose. crowd-kit's ``OneCoinDawidSkene`` fits one accuracy per
annotator by EM over every set, labelled by people or not. Our glue shrinks each accuracy toward its
judge x criterion, its judge and chance (``SHRINK`` pseudo-sets each), so a cell seen on three sets does
not speak with the weight of one seen on three hundred.

Per set it gives P(best = k) from the judges' picks, and the probability that people choose k:
``q P(best = k) + (1 - q)(1 - P(best = k)) / (K - 1)``, q being people's own measured accuracy. Audited
sets are held out of the fit: they certify the routing threshold (``mora.review.routing``), and a score
they had shaped would certify itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mora.datasets.agreement import judge_pick

LEVELS = ("low", "high")  # a judge's confidence: at or below its median margin, or above
SHRINK = 4.0  # pseudo-sets pulling a cell's accuracy toward the level above it
REVIEWER = "reviewer:"


@dataclass(frozen=True)
class SetEvidence:
    """What the model reads of one set: the judges' picks and confidences, and people's choice."""

    set_id: str
    iteration: int
    criterion: str
    passing: tuple[int, ...]  # candidates that passed every hard gate
    picks: dict[str, int]  # judge -> its best passing candidate; abstaining judges are absent
    confidence: dict[str, float]  # judge -> margin between its best and second score
    people: int | None = None  # the candidate people chose; None: undecided, or they rejected every one
    rejected: bool = False  # people rejected every candidate
    reviewers: tuple[str, ...] = ()
    routing: dict | None = None  # the shard's routing struct (null before schema 4)
    decision: str = ""  # the set's decision now, and who made it
    decision_source: str = ""
    selected: int | None = None  # the winner now

    @property
    def audited(self) -> bool:
        return bool(self.routing and self.routing.get("audited"))

    @property
    def decided(self) -> bool:
        return self.people is not None or self.rejected

    @classmethod
    def from_rows(cls, rows: list[dict], iteration: int) -> SetEvidence:
        first = rows[0]
        passing = tuple(r["candidate_index"] for r in rows if not r["gate_failures"])
        picks, confidence = {}, {}
        for judge in first["judges"] or []:
            pick = judge_pick(judge, list(passing))
            if pick is not None:
                picks[judge["judge"]], confidence[judge["judge"]] = pick, float(judge["confidence"] or 0.0)
        review = first.get("review") if first["decision_source"] == "human" else None
        choice = (review or {}).get("choice") or ""
        people = int(choice.removeprefix("candidate_")) if choice.startswith("candidate_") else None
        return cls(set_id=first["set_id"], iteration=iteration, criterion=first["criterion"], passing=passing,
                   picks=picks, confidence=confidence, people=people, rejected=bool(review) and people is None,
                   reviewers=tuple((review or {}).get("reviewers") or ()) if people is not None else (),
                   routing=first.get("routing"), decision=first["decision"], decision_source=first["decision_source"],
                   selected=next((r["candidate_index"] for r in rows if r["selected"]), None))


@dataclass
class ReliabilityModel:
    """Fitted accuracies (``fit``); ``to_dict``/``from_dict`` carry it through JSON and round state."""

    candidates: int = 4
    cuts: dict[str, float] = field(default_factory=dict)  # judge -> its median confidence
    annotators: dict[str, dict] = field(default_factory=dict)  # key -> {correct, seen, skill}
    judge_criteria: dict[str, float] = field(default_factory=dict)  # "judge|criterion" -> shrunk accuracy
    judges: dict[str, float] = field(default_factory=dict)  # judge -> shrunk accuracy
    people: float = 1.0  # people's accuracy against the best candidate (1 until measured)
    sets: int = 0  # sets fitted
    decisions: int = 0  # of them, decided by people with a chosen candidate

    @property
    def chance(self) -> float:
        return 1.0 / self.candidates

    def level(self, judge: str, confidence: float) -> str:
        return LEVELS[confidence > self.cuts.get(judge, math.inf)]

    def skill(self, judge: str, criterion: str, confidence: float) -> float:
        """The judge's accuracy under ``criterion`` at this confidence, from the closest level measured."""
        cell = self.annotators.get(annotator(judge, criterion, self.level(judge, confidence)))
        if cell is not None:
            return cell["skill"]
        return self.judge_criteria.get(f"{judge}|{criterion}", self.judges.get(judge, self.chance))

    def best(self, evidence: SetEvidence) -> dict[int, float]:
        """P(best = k) for each passing candidate, from the judges' picks (uniform before them)."""
        log = dict.fromkeys(evidence.passing, 0.0)
        for judge, pick in evidence.picks.items():
            s = _clip(self.skill(judge, evidence.criterion, evidence.confidence.get(judge, 0.0)))
            wrong = math.log((1 - s) / (self.candidates - 1))
            for k in log:
                log[k] += math.log(s) if k == pick else wrong
        top = max(log.values(), default=0.0)
        weights = {k: math.exp(v - top) for k, v in log.items()}
        total = sum(weights.values())
        return {k: w / total for k, w in weights.items()}

    def people_choice(self, evidence: SetEvidence) -> dict[int, float]:
        """The probability that people choose each passing candidate."""
        q, spread = self.people, self.candidates - 1
        return {k: q * p + (1 - q) * (1 - p) / spread for k, p in self.best(evidence).items()}

    def uncertainty(self, judge: str, criterion: str) -> float:
        """Width of the 95% interval of the judge's accuracy under ``criterion`` (about 0.95 unmeasured)."""
        correct, seen = self.counts(f"{judge}|{criterion}|")
        low, high = jeffreys(correct, seen)
        return high - low

    def counts(self, prefix: str) -> tuple[float, int]:
        cells = [c for key, c in self.annotators.items() if key.startswith(prefix)]
        return sum(c["correct"] for c in cells), sum(c["seen"] for c in cells)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ReliabilityModel:
        return cls(**data)


def dataset_evidence(root: Path, dataset: str) -> list[SetEvidence]:
    """Every set of the dataset as the model reads it (no video is read)."""
    from mora.datasets.sets import stream_sets

    return [SetEvidence.from_rows(s.rows, s.iteration) for s in stream_sets(root, dataset)]


def model_path(root: Path, dataset: str) -> Path:
    """Where the model fitted at the last publish (after every round and collect) is kept."""
    return Path(root) / "_state" / dataset / "reviews" / "reliability.json"


def load_model(root: Path, dataset: str) -> ReliabilityModel | None:
    import json

    path = model_path(root, dataset)
    try:
        return ReliabilityModel.from_dict(json.loads(path.read_text(encoding="utf-8"))["model"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # none yet (or unreadable): the next publish writes it again


def annotator(judge: str, criterion: str, level: str) -> str:
    return f"{judge}|{criterion}|{level}"


def _clip(skill: float) -> float:
    return min(max(skill, 0.005), 0.995)


def jeffreys(correct: float, seen: int) -> tuple[float, float]:
    """A 95% interval for an accuracy from (possibly fractional) counts: Jeffreys' Beta(1/2, 1/2) prior."""
    from scipy.stats import beta

    a, b = correct + 0.5, max(seen - correct, 0.0) + 0.5
    return float(beta.ppf(0.025, a, b)), float(beta.ppf(0.975, a, b))


def fit(sets: Iterable[SetEvidence], candidates: int = 4) -> ReliabilityModel:
    """The model over every set that was not audited (``SetEvidence.audited``)."""
    pool = [s for s in sets if not s.audited]
    margins: dict[str, list[float]] = {}
    for s in pool:
        for judge, value in s.confidence.items():
            margins.setdefault(judge, []).append(value)
    cuts = {judge: _median(values) for judge, values in margins.items()}
    model = ReliabilityModel(candidates=candidates, cuts=cuts, sets=len(pool),
                             decisions=sum(s.people is not None for s in pool))
    labels = []
    for s in pool:
        labels += [(s.set_id, annotator(j, s.criterion, model.level(j, s.confidence[j])), pick)
                   for j, pick in s.picks.items()]
        labels += [(s.set_id, REVIEWER + name, s.people) for name in s.reviewers]
    if not model.decisions or len({label for *_, label in labels}) < 2:
        return model  # two judges alone cannot be told apart, nor can one label: accuracies stay at chance
    correct, seen = _dawid_skene(labels)
    model.annotators = {key: {"correct": correct[key], "seen": seen[key], "skill": 0.0} for key in seen}
    _shrink(model)
    return model


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _dawid_skene(labels: list[tuple[str, str, int]]) -> tuple[dict[str, float], dict[str, int]]:
    """Per annotator: the expected number of its labels that are the hidden best, and how many it gave."""
    import warnings

    import pandas as pd
    from crowdkit.aggregation import OneCoinDawidSkene

    frame = pd.DataFrame(labels, columns=["task", "worker", "label"])
    with warnings.catch_warnings():  # crowd-kit 1.4.2 uses pandas keywords pandas 3 deprecates; not ours to change
        warnings.filterwarnings("ignore", module="crowdkit")
        probas = OneCoinDawidSkene(n_iter=100, tol=1e-6).fit(frame).probas_
    rows = probas.index.get_indexer(frame["task"])
    cols = probas.columns.get_indexer(frame["label"])
    frame["right"] = probas.to_numpy()[rows, cols]
    grouped = frame.groupby("worker")
    return grouped["right"].sum().to_dict(), grouped.size().to_dict()


def _shrink(model: ReliabilityModel) -> None:
    """Accuracies toward the level above: cell -> judge x criterion -> judge -> chance; people pooled."""
    def pull(correct: float, seen: float, toward: float) -> float:
        return (correct + SHRINK * toward) / (seen + SHRINK)

    judges = {key.split("|", 1)[0] for key in model.annotators if not key.startswith(REVIEWER)}
    for judge in judges:
        model.judges[judge] = pull(*model.counts(f"{judge}|"), model.chance)
    for key in model.annotators:
        if not key.startswith(REVIEWER):
            judge, criterion, _ = key.split("|")
            model.judge_criteria[f"{judge}|{criterion}"] = pull(*model.counts(f"{judge}|{criterion}|"),
                                                                model.judges[judge])
    people_correct, people_seen = model.counts(REVIEWER)
    if people_seen:
        model.people = people_correct / people_seen
    for key, cell in model.annotators.items():
        if key.startswith(REVIEWER):
            cell["skill"] = pull(cell["correct"], cell["seen"], model.people)
        else:
            judge, criterion, _ = key.split("|")
            cell["skill"] = pull(cell["correct"], cell["seen"], model.judge_criteria[f"{judge}|{criterion}"])


def reliability_table(model: ReliabilityModel) -> list[dict]:
    """Per judge x criterion (both confidence levels together) and per reviewer: sets, accuracy against
    the best candidate as the model measures it, and its 95% interval."""
    groups: dict[tuple[str, str], tuple[float, int]] = {}
    for key in model.annotators:
        if key.startswith(REVIEWER):
            groups[("people", key.removeprefix(REVIEWER))] = model.counts(key)
        else:
            judge, criterion, _ = key.split("|")
            groups[(judge, criterion)] = model.counts(f"{judge}|{criterion}|")
    table = []
    for (who, what), (correct, seen) in sorted(groups.items(), key=lambda kv: (kv[0][0] == "people", kv[0])):
        low, high = jeffreys(correct, seen)
        table.append({"annotator": who, "criterion_or_reviewer": what, "sets": seen,
                      "accuracy": round(correct / seen, 4), "low": round(low, 4), "high": round(high, 4)})
    return table
