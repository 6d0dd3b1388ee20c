"""Which sets people see: the paper's agreement rule, or routing by measured reliability with a stated
precision.

``agreement`` (the paper): both judges pick the same passing candidate -> accepted; otherwise review.
``reliability``: a set is accepted without people when the probability that people would choose its
likeliest candidate (``mora.review.reliability``) is at least a threshold certified on held-out human
decisions; otherwise it goes to review. The threshold comes from fixed-sequence testing, as in "Trust or
Escalate" (arXiv 2407.18370): thresholds are tested from strict to lax, each by an exact binomial test of
H0 "precision above it < target" at level 1 - confidence, and the last one rejected before the first
failure is used. Testing in a fixed order needs no multiplicity correction.

What is held out: every set is drawn for audit by a coin of ``review.audit_share`` before anyone judges it.
Audited sets never enter the model's fit; those people have decided are the calibration sample. The
grid of thresholds is read off the scores of the sets that were not audited, so nothing about the
calibration sample chooses what is tested. The guarantee: with probability >= confidence over the draw
of the audited sets, a new set from the same distribution, accepted at the certified threshold, is one
where people choose the accepted candidate with probability >= target (rejecting every candidate counts
as disagreeing). It holds while new sets are exchangeable with the audited ones (same generators,
judges, criteria mix and reviewers) and people decide audited sets whatever they contain. It is a
statement about accepted sets on average, not per criterion or per set. When nothing can be certified
the round falls back to ``agreement`` and says why.
"""

from __future__ import annotations

import bisect
import functools
import math
import random
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from mora.judges.verdict import ACCEPTED, DISCARDED, NEEDS_REVIEW
from mora.review.reliability import ReliabilityModel, SetEvidence, fit

if TYPE_CHECKING:
    from mora.review.settings import ReviewConfig

AGREEMENT, RELIABILITY = "agreement", "reliability"
SOURCE = {AGREEMENT: "judges", RELIABILITY: "judges-reliability"}
GRID_STEP = 0.02  # share of the non-audited sets' scores between two thresholds tested
AUDIT_WHY = "audit"


def needed(target: float, confidence: float) -> int:
    """The fewest calibration sets above a threshold that can certify ``target``: all of them agreeing."""
    return math.ceil(math.log(1 - confidence) / math.log(target))


@dataclass
class Certificate:
    target: float
    confidence: float
    calibration: int  # audited sets people decided, held out of the fit
    needed: int
    threshold: float | None = None
    accepted: int = 0  # calibration sets at or above the threshold
    misses: int = 0  # of them, sets where people chose another candidate or rejected all
    lower: float | None = None  # one-sided Clopper-Pearson bound on the precision above the threshold
    tested: int = 0  # thresholds tested in sequence

    @property
    def certified(self) -> bool:
        return self.threshold is not None

    def describe(self) -> str:
        goal = f"precision {self.target:g} at {self.confidence:.0%} confidence"
        if self.certified:
            return (f"threshold {self.threshold:.3f} certified for {goal}: {self.accepted} of {self.calibration} "
                    f"audited human decisions lie above it and {self.misses} of those disagree with people "
                    f"(precision >= {self.lower:.3f})")
        if self.calibration < self.needed:
            return (f"{self.calibration} audited human decisions; certifying {goal} needs at least {self.needed} "
                    "above a threshold, all agreeing with people")
        return f"no threshold certifies {goal} on {self.calibration} audited human decisions"


@functools.cache
def most_misses(n: int, target: float, confidence: float) -> int:
    """The most of ``n`` calibration sets above a threshold that may disagree with people while it still
    certifies (-1: none may, or ``n`` is too small)."""
    from scipy.stats import binom

    misses = int(binom.ppf(1 - confidence, n, 1 - target)) if n else -1
    while misses >= 0 and binom.cdf(misses, n, 1 - target) > 1 - confidence:
        misses -= 1
    return misses


def threshold_grid(pool_scores: list[float], calibration: int, target: float, confidence: float) -> list[float]:
    """Thresholds to test, in order, read off the scores of the sets outside the calibration sample.

    Candidates are the scores at every ``GRID_STEP`` share of those sets. The sequence starts where the
    test is likeliest to pass, by the model's own reckoning: about ``calibration x share`` calibration sets
    lie above a threshold (they are a random share of the same sets) and the model expects the mean of
    their scores to agree with people. From there it goes laxer, step by step. A model that overrates
    itself starts too lax and certifies nothing; it can never make the test lie.
    """
    from scipy.stats import binom

    if calibration < needed(target, confidence) or not pool_scores:
        return []
    ordered = sorted(pool_scores, reverse=True)
    descending = [-v for v in ordered]  # ascending, for bisect
    prefix = [0.0]
    for value in ordered:
        prefix.append(prefix[-1] + value)
    candidates: list[tuple[float, float]] = []  # (threshold, estimated power)
    steps = math.ceil(1 / GRID_STEP)
    for step in range(1, steps + 1):
        count = max(1, math.ceil(min(1.0, step * GRID_STEP) * len(ordered)))
        threshold = ordered[count - 1]
        if candidates and threshold >= candidates[-1][0]:
            continue
        above = bisect.bisect_right(descending, -threshold)  # scores >= threshold
        n = round(calibration * above / len(ordered))
        misses = most_misses(n, target, confidence)
        power = float(binom.cdf(misses, n, 1 - prefix[above] / above)) if misses >= 0 else 0.0
        candidates.append((threshold, power))
    start = max(range(len(candidates)), key=lambda i: candidates[i][1])
    return [threshold for threshold, _ in candidates[start:]] if candidates[start][1] > 0 else []


def certify(scores: list[float], matches: list[bool], grid: list[float], target: float,
            confidence: float) -> Certificate:
    """Fixed-sequence testing over ``grid`` (strictest first) on the calibration sets' scores and whether
    people chose the candidate the rule would accept."""
    from scipy.stats import beta

    delta = 1 - confidence
    cert = Certificate(target=target, confidence=confidence, calibration=len(scores), needed=needed(target, confidence))
    for threshold in grid:
        inside = [m for s, m in zip(scores, matches, strict=True) if s >= threshold]
        n, misses = len(inside), len(inside) - sum(inside)
        cert.tested += 1
        if misses > most_misses(n, target, confidence):  # the binomial test: P(Bin(n, 1 - target) <= misses) > delta
            break
        cert.threshold, cert.accepted, cert.misses = threshold, n, misses
    if cert.certified:
        n, misses = cert.accepted, cert.misses
        cert.lower = float(beta.ppf(delta, n - misses, misses + 1)) if misses < n else 0.0
    return cert


def likeliest(model: ReliabilityModel, evidence: SetEvidence) -> tuple[int | None, float | None]:
    """The candidate people most likely choose, and that probability (None, None: no passing candidate)."""
    people = model.people_choice(evidence)
    if not people:
        return None, None
    winner = max(people, key=lambda k: (people[k], -k))
    return winner, people[winner]


def calibration(model: ReliabilityModel, sets: list[SetEvidence]) -> tuple[list[float], list[bool]]:
    """Scores and outcomes of the audited sets people decided (rejecting every candidate is a miss)."""
    scores, matches = [], []
    for s in sets:
        if s.audited and s.decided:
            winner, probability = likeliest(model, s)
            if winner is not None:
                scores.append(probability)
                matches.append(s.people == winner)
    return scores, matches


def audit_draw(seed: int) -> float:
    """The set's audit coin, uniform in [0, 1): drawn from its seed, before anything about it is known."""
    return random.Random(seed).random()


@dataclass
class RoutingPolicy:
    """The rule a round routes by, frozen when the round starts (a resumed round routes as it began)."""

    requested: str  # what the config asked for
    rule: str  # what routes: reliability only when certified
    audit_share: float
    note: str  # one line for the round summary
    model: ReliabilityModel | None = None
    certificate: Certificate | None = None

    @property
    def threshold(self) -> float | None:
        return self.certificate.threshold if self.rule == RELIABILITY else None

    def route(self, rows: list[dict], iteration: int, draw: float) -> list[dict]:
        """The set's rows, decided by this rule (the paper's decision is in them already) and flagged for
        audit when ``draw`` falls below the audit share."""
        first = rows[0]
        evidence = SetEvidence.from_rows(rows, iteration)
        informed = self.model is not None and self.model.decisions > 0  # else every probability is chance
        winner, probability = likeliest(self.model, evidence) if informed else (None, None)
        decision, reason, why = first["decision"], first["decision_reason"], None
        if decision == DISCARDED:
            winner = probability = None
        elif self.rule == RELIABILITY:
            above = probability >= self.threshold
            decision = ACCEPTED if above else NEEDS_REVIEW
            said = (f"people choose candidate {winner} with probability {probability:.3f} by the judges' measured "
                    f"reliability; certified threshold {self.threshold:.3f}")
            reason = f"reliability: {said}" + ("" if above else f" ({first['decision_reason']})")
            why = None if above else f"below the certified threshold: {said}"
        else:
            agreed = next((r["candidate_index"] for r in rows if r["selected"]), None)
            if decision == ACCEPTED:
                winner = agreed
                probability = self.model.people_choice(evidence).get(winner) if informed else None
            else:
                why = reason
        audited = draw < self.audit_share and decision != DISCARDED
        if audited and decision == ACCEPTED:
            why = AUDIT_WHY
            reason += f"; audited: people decide it too (a random {self.audit_share:.0%} of sets)"
        routing = {"rule": self.rule, "decision": decision, "winner": winner, "probability": probability,
                   "threshold": self.threshold, "audited": audited, "why": why}
        source = SOURCE[self.rule] if decision != DISCARDED else first["decision_source"]
        return [row | {"decision": decision, "decision_source": source, "decision_reason": reason,
                       "selected": decision == ACCEPTED and row["candidate_index"] == winner, "routing": routing}
                for row in rows]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RoutingPolicy:
        model = ReliabilityModel.from_dict(data["model"]) if data.get("model") else None
        cert = Certificate(**data["certificate"]) if data.get("certificate") else None
        return cls(**(data | {"model": model, "certificate": cert}))


def build_policy(review: ReviewConfig, sets: list[SetEvidence], candidates: int = 4) -> RoutingPolicy:
    """The routing policy from every set decided so far: fit on the non-audited sets, certify on the
    audited ones people decided; ``agreement`` (with the reason) when nothing certifies."""
    model = fit(sets, candidates)
    if review.routing == AGREEMENT:
        return RoutingPolicy(AGREEMENT, AGREEMENT, review.audit_share, model=model,
                             note="agreement (the paper's rule): sets both judges agree on are accepted")
    scores, matches = calibration(model, sets)
    pool = [p for s in sets if not s.audited for p in [likeliest(model, s)[1]] if p is not None]
    grid = threshold_grid(pool, len(scores), review.target_precision, review.confidence)
    cert = certify(scores, matches, grid, review.target_precision, review.confidence)
    if cert.certified:
        note = f"reliability: {cert.describe()}"
        return RoutingPolicy(RELIABILITY, RELIABILITY, review.audit_share, note, model, cert)
    note = f"agreement (reliability requested, nothing certified: {cert.describe()})"
    return RoutingPolicy(RELIABILITY, AGREEMENT, review.audit_share, note, model, cert)


def policy_markdown(policy: RoutingPolicy) -> str:
    """The round's routing for people: the rule, why, and the certificate (the Prefect artifact ``routing``)."""
    lines = ["# Review routing", "", f"**{policy.rule}**: {policy.note}.", "",
             f"Audit: a random {policy.audit_share:.0%} of sets is decided by people even when the judges accepted it."]
    cert = policy.certificate
    if cert is not None:
        lines += ["", "| target | confidence | audited decisions | threshold | above it | disagreeing | precision >= |",
                  "|---|---|---|---|---|---|---|",
                  f"| {cert.target:g} | {cert.confidence:g} | {cert.calibration} | "
                  + (f"{cert.threshold:.3f} | {cert.accepted} | {cert.misses} | {cert.lower:.3f} |" if cert.certified
                     else "– | – | – | – |")]
    return "\n".join(lines)
