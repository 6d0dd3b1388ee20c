"""What a judge says about a candidate set, and what the round decides from two of them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

ACCEPTED, NEEDS_REVIEW, DISCARDED = "accepted", "needs_review", "discarded"


@dataclass
class JudgeRanking:
    judge: str
    model: str
    ranking: list[int]  # candidate indices, best first; empty when abstained
    scores: list[float]  # per candidate index, higher is better
    confidence: float  # margin between the best and the second score
    per_order: list[dict] = field(default_factory=list)  # {"order", "ranking", "answer"} per shown order
    method: str = ""  # label-scores | free-text
    backend: str = ""  # transformers | openai
    abstained: bool = False
    reason: str | None = None
    seconds: float = 0.0

    @property
    def top(self) -> int | None:
        return None if self.abstained or not self.ranking else self.ranking[0]

    def to_row(self) -> dict:
        return asdict(self)


def abstain(judge: str, model: str, n: int, reason: str) -> JudgeRanking:
    return JudgeRanking(judge=judge, model=model, ranking=[], scores=[0.0] * n, confidence=0.0,
                        abstained=True, reason=reason)


@dataclass
class Decision:
    decision: str
    winner: int | None
    reason: str


def decide(rankings: list[JudgeRanking], passed: list[bool] | None = None) -> Decision:
    """Same top-1 from every judge: accepted. Any abstention or disagreement: human review.

    Candidates that failed a hard quality gate cannot win: each judge's pick is its best-ranked
    candidate that passed. When none passed, the set is discarded.
    """
    n = len(rankings[0].scores)
    passed = passed if passed is not None else [True] * n
    if not any(passed):
        return Decision(DISCARDED, None, "every candidate failed a quality gate")
    abstained = [r for r in rankings if r.abstained]
    if abstained:
        return Decision(NEEDS_REVIEW, None, f"judge {abstained[0].judge} abstained: {abstained[0].reason}")
    picks = {r.judge: next(c for c in r.ranking if passed[c]) for r in rankings}
    if len(set(picks.values())) == 1:
        return Decision(ACCEPTED, next(iter(picks.values())), "judges agree on the best candidate")
    said = ", ".join(f"{judge} picks {pick}" for judge, pick in picks.items())
    return Decision(NEEDS_REVIEW, None, f"judges disagree ({said})")
