"""A judge that ranks by the model's probability of each candidate's label as the answer.

One forward pass per presentation order gives a full ranking: nothing is generated, so nothing can
fail to parse. Showing the candidates in several orders and averaging cancels position bias.
"""

from __future__ import annotations

import math
import random
import string
import time

import numpy as np
import torch
from PIL import Image

from mora.agents.loading import cached, torch_dtype
from mora.config import JudgeConfig, RuntimeConfig
from mora.judges.criteria import Criterion
from mora.judges.processors import load_processor
from mora.judges.verdict import JudgeRanking, abstain

LABELS = string.ascii_uppercase


def presentation_orders(n: int, count: int, seed: int) -> list[list[int]]:
    """The identity, its reverse, then distinct shuffles: each candidate visits several positions."""
    orders = [list(range(n)), list(range(n))[::-1]][:count]
    rng = random.Random(seed)
    while len(orders) < min(count, math.factorial(n)):
        order = rng.sample(range(n), n)
        if order not in orders:
            orders.append(order)
    return orders


def judge_messages(prompt: str, criterion: Criterion, frames: list[list[Image.Image]], order: list[int]) -> list:
    n = len(order)
    content = [{"type": "text", "text": (
        f"You are judging {n} candidate videos generated for the prompt: \"{prompt}\". Each candidate is shown "
        f"as {len(frames[0])} frames in time order. Criterion: {criterion.description}.")}]
    for pos, cand in enumerate(order):
        content.append({"type": "text", "text": f"\nCandidate {LABELS[pos]}:"})
        content.extend({"type": "image"} for _ in frames[cand])
    content.append({"type": "text",
                    "text": "\nWhich candidate is best under the criterion? Answer with the letter only."})
    return [{"role": "user", "content": content}]


class LabelScoringJudge:
    """In-process transformers judge (Qwen2-VL, Qwen2.5-VL, LLaVA-OneVision), CPU or GPU."""

    def __init__(self, config: JudgeConfig, model, processor):
        self.config, self.model, self.processor = config, model, processor
        tok = processor.tokenizer
        self.label_ids = []
        for label in LABELS:
            ids = tok.encode(label, add_special_tokens=False)
            self.label_ids.append(ids[0] if len(ids) == 1 else None)

    @classmethod
    def from_pretrained(cls, config: JudgeConfig, runtime: RuntimeConfig) -> LabelScoringJudge:
        def load():
            from transformers import AutoModelForImageTextToText

            model = AutoModelForImageTextToText.from_pretrained(config.model.id, revision=config.model.revision,
                                                                dtype=torch_dtype(runtime))
            return model.to(runtime.device).eval(), load_processor(config.model.id, config.model.revision)

        model, processor = cached("judge", config.model, runtime, load)
        return cls(config, model, processor)

    def _inputs(self, messages: list, images: list[Image.Image]):
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        packed = [images] if self.config.family == "llava-onevision" else images
        return self.processor(text=[text], images=packed, return_tensors="pt").to(self.model.device)

    @torch.inference_mode()
    def _label_probs(self, messages: list, images: list[Image.Image], n: int) -> np.ndarray:
        logits = self.model(**self._inputs(messages, images)).logits[0, -1].float()
        picked = logits[torch.tensor(self.label_ids[:n])]
        return torch.softmax(picked, dim=-1).cpu().numpy()

    def rank(self, prompt: str, criterion: Criterion, frames: list[list[Image.Image]], seed: int) -> JudgeRanking:
        """Rank every candidate; an explicit abstention instead of a guess when the answer is unusable."""
        name, model_id, n = self.config.name, self.config.model.describe(), len(frames)
        start = time.perf_counter()
        if any(i is None for i in self.label_ids[:n]):
            return abstain(name, model_id, n, "candidate labels are not single tokens for this tokenizer")
        scores = np.zeros(n)
        per_order = []
        for order in presentation_orders(n, self.config.orders, seed):
            shown = [img for cand in order for img in frames[cand]]
            probs = self._label_probs(judge_messages(prompt, criterion, frames, order), shown, n)
            if not np.all(np.isfinite(probs)):
                return abstain(name, model_id, n, "the model's answer probabilities are not finite")
            by_candidate = np.empty(n)
            by_candidate[order] = probs
            scores += by_candidate
            per_order.append({"order": order, "ranking": np.argsort(-by_candidate, kind="stable").tolist()})
        scores /= len(per_order)
        ranking = np.argsort(-scores, kind="stable").tolist()
        return JudgeRanking(judge=name, model=model_id, ranking=ranking, scores=scores.round(6).tolist(),
                            confidence=float(scores[ranking[0]] - scores[ranking[1]]), per_order=per_order,
                            seconds=time.perf_counter() - start)
