"""The prompt agent: invents new prompts from seeds and turns short prompts into detailed, visual ones."""

from __future__ import annotations

import re

import torch

from mora.agents.loading import cached, torch_dtype
from mora.config import ModelRef, RuntimeConfig
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


class PromptAgent:
    """A chat LLM loaded once; ``invent`` and ``enhance`` are batched generate calls."""

    def __init__(self, model, tokenizer, ref: ModelRef, max_new_tokens: int = 64, temperature: float = 0.9):
        self.model, self.tokenizer, self.ref = model, tokenizer, ref
        self.max_new_tokens, self.temperature = max_new_tokens, temperature
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "left"

    @classmethod
    def from_pretrained(cls, ref: ModelRef, runtime: RuntimeConfig, **kwargs) -> PromptAgent:
        def load():
            from transformers import AutoModelForCausalLM, AutoTokenizer

            tok = AutoTokenizer.from_pretrained(ref.id, revision=ref.revision)
            model = AutoModelForCausalLM.from_pretrained(ref.id, revision=ref.revision, dtype=torch_dtype(runtime))
            return model.to(runtime.device).eval(), tok

        model, tok = cached("prompt", ref, runtime, load)
        return cls(model, tok, ref, **kwargs)

    @torch.inference_mode()
    def _chat(self, messages: list[str], seed: int) -> list[str]:
        texts = [self.tokenizer.apply_chat_template([{"role": "user", "content": m}], tokenize=False,
                                                   add_generation_prompt=True) for m in messages]
        batch = self.tokenizer(texts, return_tensors="pt", padding=True).to(self.model.device)
        torch.manual_seed(seed)
        out = self.model.generate(**batch, do_sample=True, temperature=self.temperature, top_p=0.95,
                                  max_new_tokens=self.max_new_tokens, pad_token_id=self.tokenizer.pad_token_id)
        return self.tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)

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
