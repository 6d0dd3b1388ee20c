"""What every prompt agent does, whoever runs the model: invent new prompts from seeds and turn short
prompts into detailed, visual ones. The in-process agent and the served one differ only in ``_chat``."""

from __future__ import annotations

import re

from mora.prompts.novelty import PromptPool

INVENT = ("Write one new, detailed prompt for a short video, different from but in the spirit of: "
          "\"{seed}\". Answer with the prompt only, on one line.")
ENHANCE = ("Rewrite this video prompt as one detailed, visual description of the scene (subject, motion, "
           "setting, lighting, camera): \"{prompt}\". Answer with the description only, on one line.")

_SPACE = re.compile(r"\s+")


def clean_prompt(text: str, max_words: int = 120) -> str | None:
    """One tidy line, or None when the text is not a usable prompt (too short, mostly not words)."""
    text = _SPACE.sub(" ", text.replace("\n", " ")).strip().strip("\"'` ")
    text = re.sub(r"^(prompt|description)\s*:\s*", "", text, flags=re.IGNORECASE)
    words = text.split(" ")
    if len(words) < 3:
        return None
    letters = sum(ch.isalpha() for ch in text)
    if letters < 0.6 * len(text.replace(" ", "")):
        return None
    return " ".join(words[:max_words])


def dedupe(prompts: list[str]) -> list[str]:
    """Drops repeats and near repeats (see ``mora.prompts.novelty``)."""
    return PromptPool().new(prompts)


class PromptWriter:
    """``invent`` and ``enhance`` over ``_chat`` (one answer per message), which subclasses provide."""

    def _chat(self, messages: list[str], seed: int) -> list[str]:
        raise NotImplementedError

    def invent(self, seeds: list[str], count: int, seed: int) -> list[str]:
        """Up to ``count`` distinct usable prompts, asking for each seed in turn; fewer if the LLM fails."""
        asks = [INVENT.format(seed=seeds[i % len(seeds)]) for i in range(count)]
        found: list[str] = []
        for attempt in range(3):
            found = dedupe(found + [p for p in map(clean_prompt, self._chat(asks, seed + attempt)) if p])
            if len(found) >= count:
                break
        return found[:count]

    def enhance(self, prompts: list[str], seed: int) -> list[str | None]:
        """A detailed version of each prompt, or None where the LLM's answer is unusable."""
        return [clean_prompt(t) for t in self._chat([ENHANCE.format(prompt=p) for p in prompts], seed)]
