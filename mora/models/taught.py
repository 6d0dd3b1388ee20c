"""Tiny judges (and a tiny prompt agent) taught to give one fixed answer, whatever they are shown.

Random weights never write a ranking, so the paths that read a model's words (free text, over HTTP
or in process) could only ever be seen abstaining. A tiny judge fine-tuned for a couple of seconds
to answer, say, ``B > D > A > C`` (or a hostile string) exercises those paths end to end with real
generation, and gives the benchmark a free-text answer of realistic length. The prompt agent's
random weights likewise never write a usable prompt; taught one, its answers can be checked.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from mora.config import JudgeConfig, ModelRef, RuntimeConfig
from mora.judges.base import CandidateSet
from mora.judges.criteria import CRITERIA
from mora.judges.local import TransformersJudge


def _teaching_inputs(judge: TransformersJudge, answer: str, rng: np.random.Generator):
    side = int(rng.choice([32, 64]))
    if rng.random() < 0.5:  # noise, or smooth colour fields like tiny generated videos
        clips = [rng.integers(0, 256, (4, side, side, 3), dtype=np.uint8) for _ in range(4)]
    else:
        ramps = [np.linspace(0.3, 1.0, side)[None, :, None] * rng.random(3) * 255 for _ in range(4)]
        clips = [np.broadcast_to(ramp, (4, side, side, 3)).astype(np.uint8) for ramp in ramps]
    cset = CandidateSet(prompt=f"scene {rng.integers(1000)}", criterion=CRITERIA[rng.integers(len(CRITERIA))],
                        clips=clips)
    inputs = judge._inputs(cset, rng.permutation(4).tolist())
    tok = judge.processor.tokenizer
    ids = torch.tensor([tok.encode(answer + tok.eos_token, add_special_tokens=False)])
    n_prompt = inputs["input_ids"].shape[1]
    for key, value in list(inputs.items()):  # per-token inputs grow with the answer (text: mask 1, type 0)
        if key != "input_ids" and value.dim() == 2 and value.shape[1] == n_prompt:
            fill = torch.ones_like(ids) if key == "attention_mask" else torch.zeros_like(ids)
            inputs[key] = torch.cat([value, fill.to(value.dtype)], dim=1)
    inputs["input_ids"] = torch.cat([inputs["input_ids"], ids], dim=1)
    labels = inputs["input_ids"].clone()
    labels[:, :n_prompt] = -100
    return inputs, labels


def teach_answer(source: Path, family: str, answer: str, out: Path, steps: int = 400, seed: int = 0) -> Path:
    """A copy of the tiny judge at ``source`` that answers ``answer`` to every judging question."""
    if (out / "config.json").exists():
        return out
    torch.manual_seed(seed)
    config = JudgeConfig(name="teacher", family=family, model=ModelRef(id=str(source)), video_input="frames")
    judge = TransformersJudge.from_pretrained(config, RuntimeConfig())
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(source)  # a private copy: the cached one stays untouched
    rng = np.random.default_rng(seed)
    batches = [_teaching_inputs(judge, answer, rng) for _ in range(12)]
    return _fit_and_save(model, batches, steps, source, out)


def teach_prompt(source: Path, answer: str, out: Path, steps: int = 300, seed: int = 0) -> Path:
    """A copy of the tiny prompt LLM at ``source`` that answers ``answer`` to every invent and enhance ask."""
    if (out / "config.json").exists():
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mora.agents.prompt_writer import ENHANCE, INVENT

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(source)
    model = AutoModelForCausalLM.from_pretrained(source)
    rng = np.random.default_rng(seed)
    words = ["fox", "boat", "castle", "storm", "city", "forest", "lake", "robot", "market", "desert"]
    batches = []
    for i in range(16):
        topic = " ".join(rng.choice(words, 3))
        ask = (INVENT.format(seed=topic) if i % 2 else ENHANCE.format(prompt=topic))
        text = tok.apply_chat_template([{"role": "user", "content": ask}], tokenize=False, add_generation_prompt=True)
        prompt = tok.encode(text, add_special_tokens=False)
        ids = torch.tensor([prompt + tok.encode(answer + tok.eos_token, add_special_tokens=False)])
        labels = ids.clone()
        labels[:, :len(prompt)] = -100
        batches.append(({"input_ids": ids}, labels))
    return _fit_and_save(model, batches, steps, source, out)


def _fit_and_save(model, batches: list[tuple[dict, torch.Tensor]], steps: int, source: Path, out: Path) -> Path:
    """``steps`` Adam steps over ``batches`` in turn, then the model saved as a copy of ``source`` at ``out``
    (written beside it and renamed, so a half-taught model never looks finished)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        inputs, labels = batches[step % len(batches)]
        model(**inputs, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp, ignore=shutil.ignore_patterns("*.safetensors", ".mora-tiny.json"))
    model.eval().save_pretrained(tmp)
    tmp.rename(out)
    return out
