"""What a judge is shown and asked: the same words for every backend and method.

Candidates are shown under letters in a presentation order, and the question asks for an ordering
of all of them, best first. Label scores read the probability of each letter as the answer's first
token (which candidate is best, for every candidate at once); free text reads the whole ordering.
"""

from __future__ import annotations

import math
import random
import string
from collections.abc import Callable

from mora.judges.criteria import Criterion

LABELS = string.ascii_uppercase


def presentation_orders(n: int, count: int, seed: int) -> list[list[int]]:
    """The identity, its reverse, then distinct shuffles: each candidate visits several positions.

    From ``n`` orders on, the first ``n`` are the identity's cyclic shifts (then the reverse's): every
    candidate is shown once in every position, so a preference for positions cancels out exactly.
    """
    forward, backward = list(range(n)), list(range(n))[::-1]
    if count >= n:
        orders = [forward[i:] + forward[:i] for i in range(n)]
        orders += [o for o in (backward[i:] + backward[:i] for i in range(n)) if o not in orders]
        orders = orders[:count]
    else:
        orders = [forward, backward][:count]
    rng = random.Random(seed)
    while len(orders) < min(count, math.factorial(n)):
        order = rng.sample(range(n), n)
        if order not in orders:
            orders.append(order)
    return orders


def answer_example(n: int) -> str:
    """A valid answer for ``n`` candidates: odd letters then even ones (B > D > A > C for four)."""
    return " > ".join(LABELS[i] for i in [*range(1, n, 2), *range(0, n, 2)])


def question(n: int, criterion: Criterion) -> str:
    """The paper's form: an instruction to rank the videos by the criterion; then how to answer."""
    return (f"\n{criterion.instruction(n)} Answer with the {n} letters only, best first, separated by ' > ', "
            f"for example: {answer_example(n)}")


def judge_messages(prompt: str, criterion: Criterion, order: list[int], media: Callable[[int], list[dict]],
                   shown_as: str) -> list[dict]:
    """A single user turn; ``media(candidate)`` gives the content items that show one candidate."""
    n = len(order)
    content = [{"type": "text", "text": (
        f"You are judging {n} candidate videos generated for the prompt: \"{prompt}\". Each candidate is shown "
        f"{shown_as}.")}]
    for pos, cand in enumerate(order):
        content.append({"type": "text", "text": f"\nCandidate {LABELS[pos]}:"})
        content.extend(media(cand))
    content.append({"type": "text", "text": question(n, criterion)})
    return [{"role": "user", "content": content}]
