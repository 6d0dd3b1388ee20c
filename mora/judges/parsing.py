"""A strict reader for written rankings: a clean ordering of every candidate, or a reason why not.

The answer must be the letters alone, best first, joined by '>' or ',' (spaces allowed, a final
period tolerated). Anything else (prose, another language, a partial list, a repeated or unknown
letter, instructions addressed to us) is not guessed at: the caller abstains and people decide.
"""

from __future__ import annotations

import re

from mora.judges.asking import LABELS

_SEPARATOR = re.compile(r"\s*[>,]\s*")


class Unparseable(ValueError):
    """The answer is not a clean ranking; the message says why, for the abstention record."""


def _shown(text: str) -> str:
    return repr(text[:40] + ("…" if len(text) > 40 else ""))


def parse_ranking(text: str, n: int) -> list[int]:
    """Positions best first (0 is the first candidate shown) from an answer like ``B > D > A > C``."""
    answer = text.strip().removesuffix(".").strip()
    if not answer:
        raise Unparseable("empty answer")
    longest = 4 * n  # 'A > B > ...': one letter and three separator characters each
    if len(answer) > longest:
        raise Unparseable(f"answer is {len(answer)} characters, a ranking of {n} needs at most {longest}: "
                          f"{_shown(answer)}")
    parts = _SEPARATOR.split(answer)
    if not all(re.fullmatch(r"[A-Z]", p) for p in parts):
        raise Unparseable(f"answer is not letters joined by '>': {_shown(answer)}")
    allowed = LABELS[:n]
    positions = []
    for letter in parts:
        if letter not in allowed:
            raise Unparseable(f"answer names candidate {letter}, but only {allowed[0]}-{allowed[-1]} were shown")
        if LABELS.index(letter) in positions:
            raise Unparseable(f"answer names candidate {letter} twice")
        positions.append(LABELS.index(letter))
    if len(positions) != n:
        missing = ", ".join(a for a in allowed if LABELS.index(a) not in positions)
        raise Unparseable(f"answer ranks {len(positions)} of {n} candidates and leaves out {missing}")
    return positions


def borda(positions: list[int], n: int) -> list[float]:
    """Per-position scores in [0, 1] from a ranking: best 1, worst 0, evenly spaced."""
    scores = [0.0] * n
    for place, pos in enumerate(positions):
        scores[pos] = (n - 1 - place) / (n - 1) if n > 1 else 1.0
    return scores
