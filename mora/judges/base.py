"""The judge interface: a candidate set in, a full ranking or an explicit abstention out.

Backends answer one question per presentation order (``ask``); this class shows every order, maps
positions back to candidates, averages, and records each order's ranking. Whatever goes wrong inside
a backend for one set becomes an abstention with its reason, so a round never stops on a judge.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from mora.config import JudgeConfig
from mora.judges.asking import presentation_orders
from mora.judges.criteria import Criterion
from mora.judges.verdict import JudgeRanking, abstain

log = logging.getLogger(__name__)


class Abstain(Exception):  # noqa: N818 - it is what the judge does, not an error
    """Raised by a backend when its answer for one order is not a clean ranking."""


@dataclass
class CandidateSet:
    prompt: str
    criterion: Criterion
    clips: list[np.ndarray]  # decoded candidates, T x H x W x 3 uint8, as stored in the shard
    videos: list[bytes] | None = None  # the stored mp4s, for servers that take video input


@dataclass
class OrderAnswer:
    scores: np.ndarray  # per shown position, higher is better
    answer: str | None = None  # the model's words, for free text


class Judge:
    """Subclasses set ``backend`` and implement ``ask``."""

    backend = ""

    def __init__(self, config: JudgeConfig):
        self.config = config

    @property
    def model_id(self) -> str:
        return self.config.model.describe()

    def ask(self, candidates: CandidateSet, order: list[int]) -> OrderAnswer:
        raise NotImplementedError

    def ask_all(self, candidates: CandidateSet, orders: list[list[int]]) -> list[OrderAnswer]:
        """Every order's answer; backends that can batch the orders override this."""
        return [self.ask(candidates, order) for order in orders]

    def _abstain(self, n: int, reason: str, per_order: list[dict], start: float) -> JudgeRanking:
        out = abstain(self.config.name, self.model_id, n, reason)
        out.per_order, out.method, out.backend = per_order, self.config.method, self.backend
        out.seconds = time.perf_counter() - start
        return out

    def rank(self, candidates: CandidateSet, seed: int) -> JudgeRanking:
        """Every candidate ranked, averaged over presentation orders; an abstention instead of a guess."""
        n, start = len(candidates.clips), time.perf_counter()
        scores, per_order = np.zeros(n), []
        orders = presentation_orders(n, self.config.orders, seed)
        try:
            answers = self.ask_all(candidates, orders)
        except Abstain as exc:
            return self._abstain(n, str(exc), per_order, start)
        except Exception as exc:  # a judge must never stop the round: people decide this set
            log.warning("judge %s failed on a set: %r", self.config.name, exc)
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            return self._abstain(n, f"judge failed: {type(exc).__name__}: {first}", per_order, start)
        for order, got in zip(orders, answers, strict=True):
            if got.scores.shape != (n,) or not np.all(np.isfinite(got.scores)):
                return self._abstain(n, "the judge's scores are not finite", per_order, start)
            by_candidate = np.empty(n)
            by_candidate[order] = got.scores
            scores += by_candidate
            per_order.append({"order": order, "ranking": np.argsort(-by_candidate, kind="stable").tolist(),
                              "answer": got.answer})
        scores /= len(per_order)
        ranking = np.argsort(-scores, kind="stable").tolist()
        if n > 1 and scores[ranking[0]] - scores[ranking[1]] < 1e-9:
            why = (f"no preference: candidates {ranking[0]} and {ranking[1]} tie for best over {len(per_order)} "
                   "orders (answers follow positions, not content)")
            return self._abstain(n, why, per_order, start)
        return JudgeRanking(judge=self.config.name, model=self.model_id, ranking=ranking,
                            scores=scores.round(6).tolist(), confidence=float(scores[ranking[0]] - scores[ranking[1]]),
                            per_order=per_order, method=self.config.method, backend=self.backend,
                            seconds=time.perf_counter() - start)
