"""When two prompts are the same prompt: exact repeats and near repeats (case, punctuation, spacing,
word order, filler words), so each iteration's prompts are new to the dataset."""

from __future__ import annotations

import re
from collections.abc import Iterable

_FILLER = frozenset("a an the of in on at to and with its his her their is are".split())


def prompt_keys(text: str) -> tuple[str, frozenset[str]]:
    """The normalised text, and its content words regardless of order."""
    words = re.sub(r"[^a-z0-9]+", " ", text.casefold()).split()
    return " ".join(words), frozenset(w for w in words if w not in _FILLER)


class PromptPool:
    """Prompts seen so far; ``add`` keeps a prompt only if it repeats none of them."""

    def __init__(self, seen: Iterable[str] = ()):
        self._texts: set[str] = set()
        self._words: set[frozenset[str]] = set()
        for text in seen:
            self.add(text)

    def add(self, text: str) -> bool:
        exact, words = prompt_keys(text)
        if not exact or exact in self._texts or words in self._words:
            return False
        self._texts.add(exact)
        self._words.add(words)
        return True

    def new(self, texts: Iterable[str]) -> list[str]:
        """The texts that repeat nothing seen, in order (each then counts as seen)."""
        return [t for t in texts if self.add(t)]
