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
    per_order: list[dict] = field(default_factory=list)  # {"order": shown order, "ranking": ranking}
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


def decide(rankings: list[JudgeRanking]) -> Decision:
    """Same top-1 from every judge: accepted. Any abstention or disagreement: human review."""
    abstained = [r for r in rankings if r.abstained]
    if abstained:
        return Decision(NEEDS_REVIEW, None, f"judge {abstained[0].judge} abstained: {abstained[0].reason}")
    tops = {r.top for r in rankings}
    if len(tops) == 1:
        return Decision(ACCEPTED, rankings[0].top, "judges agree on the best candidate")
    picks = ", ".join(f"{r.judge} picks {r.top}" for r in rankings)
    return Decision(NEEDS_REVIEW, None, f"judges disagree ({picks})")
