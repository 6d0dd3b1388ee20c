"""Tiny judges taught a taste: they rank candidates by a property of the pixels.

The random tiny judges prefer an arbitrary function of the pixels, so nothing a loop learns from them
can be checked. A taught judge prefers more (or less) of a property from ``mora.evaluation.properties``,
whatever the criterion's wording and the prompt, so a benchmark can ask whether the loop moves the
generator the way its judges prefer.

It is a fresh model of the tiny judge's family and size (same tokenizer, processor and chat
template), initialised at a larger scale (``INIT``: attention starts out uneven, which lets a few
hundred steps find which frames belong to which letter; at the tiny models' 0.02 it learned nothing
in as many), then taught on synthetic candidate sets (``mora.models.scenes``) through the judge's own
question and label scores: the letters' probabilities at the answer position should follow the
property (a listwise loss towards the softmax of the standardised property). Criteria are drawn from
the paper's ten and from reworded and unrelated ones, so the taste does not hang on their wording.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch

from mora.config import JudgeConfig, ModelRef
from mora.evaluation.properties import preference
from mora.judges.asking import LABELS, judge_messages, presentation_orders
from mora.judges.base import CandidateSet
from mora.judges.criteria import CRITERIA, Criterion
from mora.judges.local import chat_text
from mora.media import pick_frames
from mora.models.scenes import candidate_set
from mora.prompts.synthesizer import synthesize_prompts

INIT = 0.2
WIDTH = 64  # the language model's hidden size
SHARPNESS = 3.0  # target probabilities: softmax of 3 x the standardised property
FRAMES = 2  # frames per candidate while teaching (and in configs/tiny-learns.yaml): 2 of 9 frames rank
# the clips of the tiny-learns generator by their brightness with rank correlation 0.92 at best, 4 with 0.99
EXTRA_CRITERIA = ("which video is best overall", "the most pleasing clip", "overall quality of the generated video",
                  "faithfulness to the prompt", "how well the clip would serve as training data")


def taste_name(family: str, prop: str, prefer: str) -> str:
    """The model folder of a taught judge, beside the tiny models."""
    return f"{family}-{prop}-{prefer}"


def _criterion(rng: np.random.Generator) -> Criterion:
    if rng.random() < 0.7:
        return CRITERIA[rng.integers(len(CRITERIA))]
    paper = CRITERIA[rng.integers(len(CRITERIA))].description
    words = paper.replace(":", "").split()
    reworded = " ".join(rng.permutation(words)[: max(3, len(words) // 2)])  # a rewording: its words, shuffled
    text = str(rng.choice([reworded, *EXTRA_CRITERIA]))
    return Criterion("taught", text, f"Rank the {{n}} videos by {text}.")


def _skeleton(source: Path, family: str, out: Path):
    """A fresh model of ``family`` in ``out``: the tiny judge's tokenizer, chat template and config, coarser
    image tokens (one or a few per frame: brightness and saturation need no detail, and a short sequence
    teaches fast), weights initialised at ``INIT``. Returns the model."""
    from transformers import AutoConfig, AutoModelForImageTextToText

    shutil.copytree(source, out, ignore=shutil.ignore_patterns("*.safetensors", ".mora-tiny.json", "config.json"))
    config = AutoConfig.from_pretrained(source)
    processor = json.loads((out / "processor_config.json").read_text())
    if family == "qwen2-vl":  # 28 x 28 px per frame: 2 x 2 patches, merged into one token
        for part in ("image_processor", "video_processor"):
            if part in processor:
                processor[part]["size"] = {"shortest_edge": 28 * 28, "longest_edge": 28 * 28}
    else:  # 16 px patches on the 32 px views: four tokens per view
        config.vision_config.patch_size = 16
        processor["num_image_tokens"] = (config.vision_config.image_size // 16) ** 2
    (out / "processor_config.json").write_text(json.dumps(processor, indent=2))
    text = config.text_config
    if WIDTH != text.hidden_size:
        text.hidden_size, text.intermediate_size = WIDTH, 2 * WIDTH
        if family == "qwen2-vl":  # its vision merger's output is the language model's width
            config.vision_config.hidden_size = WIDTH
        rope = getattr(text, "rope_parameters", None) or {}
        if "mrope_section" in rope:  # sums to half the head dimension, split as Qwen2-VL splits it (2:3:3)
            half = WIDTH // text.num_attention_heads // 2
            rope["mrope_section"] = [half - 2 * (3 * half // 8), 3 * half // 8, 3 * half // 8]
    for part in (config, getattr(config, "text_config", None), getattr(config, "vision_config", None)):
        if part is not None:
            part.initializer_range = INIT
            part.tie_word_embeddings = False  # the letters' readout of its own (``mirror`` turns it round)
    model = AutoModelForImageTextToText.from_config(config)
    model.save_pretrained(out)
    return model


def _judge(folder: Path, family: str, model):
    from mora.judges.local import TransformersJudge
    from mora.judges.processors import load_processor

    config = JudgeConfig(name="teacher", family=family, model=ModelRef(id=str(folder)), video_input="frames",
                         frames_per_candidate=FRAMES, orders=4)
    return TransformersJudge(config, model, load_processor(str(folder)))


class Teacher:
    """Batches of candidate sets shown as the judge shows them, with the probabilities the letters should get."""

    def __init__(self, judge, family: str, prop: str, prefer: str, seed: int):
        self.judge, self.family, self.score = judge, family, preference(prop, prefer)
        self.rng = np.random.default_rng(seed)
        self.prompts = synthesize_prompts(300, seed + 1)
        self.ids = torch.tensor(judge.label_ids[:4])

    def text(self, prompt: str, criterion: Criterion, order: list[int]) -> str:
        """The question as the judge writes it when it ranks, whatever its chat template does with images."""
        messages = judge_messages(prompt, criterion, order, lambda c: [{"type": "image"}] * FRAMES,
                                  f"as {FRAMES} frames in time order")
        return chat_text(self.judge.processor, messages)

    def batch(self, size: int):
        """``size`` sets under one prompt and criterion (one text length: no padding), each in a random order."""
        rng = self.rng
        prompt, criterion = self.prompts[rng.integers(len(self.prompts))], _criterion(rng)
        texts, images, targets = [], [], []
        for _ in range(size):
            clips = candidate_set(rng, side=32, frames=FRAMES)
            order = rng.permutation(4).tolist()
            texts.append(self.text(prompt, criterion, order))
            images.append([im for c in order for im in pick_frames(clips[c], FRAMES)])
            value = np.array([self.score(clips[c]) for c in order])
            z = (value - value.mean()) / (value.std() + 1e-9)
            targets.append(torch.softmax(torch.tensor(SHARPNESS * z, dtype=torch.float32), 0))
        shown = images if self.family == "llava-onevision" else [im for s in images for im in s]
        inputs = self.judge.processor(text=texts, images=shown, return_tensors="pt")
        return inputs, torch.stack(targets)

    def loss(self, model, inputs, targets) -> torch.Tensor:
        logits = model(**inputs, logits_to_keep=1).logits[:, -1][:, self.ids]
        return -(targets * torch.log_softmax(logits.float(), -1)).sum(-1).mean()


def teach_taste(source: Path, family: str, prop: str, out: Path, steps: int = 600, batch: int = 8,
                pool: int = 96, lr: float = 3e-3, seed: int = 0, start: Path | None = None) -> Path:
    """A judge of ``family`` in ``out`` (tokenizer and template of the tiny judge at ``source``) that prefers more
    of ``prop`` (``mirror`` makes the one that prefers less). ``pool`` batches are drawn once and taught in turn
    (drawing and processing them costs as much as a step). ``start``: continue from another taught judge of the
    family instead of a fresh model (another property is learnt in far fewer steps)."""
    from transformers import AutoModelForImageTextToText

    torch.manual_seed(seed)
    if start is None:
        model = _skeleton(source, family, out)
    else:
        shutil.copytree(start, out, ignore=shutil.ignore_patterns(".mora-tiny.json"), dirs_exist_ok=True)
        model = AutoModelForImageTextToText.from_pretrained(out)
    teacher = Teacher(_judge(out, family, model), family, prop, "more", seed)
    batches = [teacher.batch(batch) for _ in range(pool)]
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=steps, pct_start=0.1)
    model.train()
    for step in range(steps):
        inputs, targets = batches[step % pool]
        teacher.loss(model, inputs, targets).backward()
        optimizer.step()
        optimizer.zero_grad()
        schedule.step()
    model.eval().save_pretrained(out)
    return out


def mirror(taught: Path, out: Path) -> Path:
    """The judge at ``taught`` with its candidate letters' readout negated: at the answer position every letter's
    logit changes sign, so it ranks every candidate set exactly in reverse (more of a property becomes less)."""
    from transformers import AutoModelForImageTextToText

    from mora.judges.processors import load_processor

    shutil.copytree(taught, out, ignore=shutil.ignore_patterns(".mora-tiny.json"), dirs_exist_ok=True)
    model = AutoModelForImageTextToText.from_pretrained(out)
    head = model.get_output_embeddings().weight
    if head.data_ptr() == model.get_input_embeddings().weight.data_ptr():
        raise ValueError(f"{taught}: its letters' readout is tied to their input embeddings; teach it untied")
    tok = load_processor(str(out)).tokenizer
    letters = [ids[0] for ids in (tok.encode(label, add_special_tokens=False) for label in LABELS) if len(ids) == 1]
    with torch.no_grad():
        head[letters] *= -1
    model.save_pretrained(out)
    return out


def spearman(a, b) -> float:
    """Rank correlation (no ties expected among continuous scores)."""
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def rank_agreement(judge, prop: str, prefer: str, sets: list[list[np.ndarray]], seed: int = 0) -> float:
    """Mean rank correlation, over ``sets``, between a judge's scores and the property it should prefer
    (each set under a criterion and prompt drawn at random, ranked as in a round: every order)."""
    score, rng = preference(prop, prefer), np.random.default_rng(seed)
    prompts = synthesize_prompts(50, seed + 2)
    rhos = []
    for i, clips in enumerate(sets):
        shown = CandidateSet(prompt=prompts[i % len(prompts)], criterion=_criterion(rng), clips=clips)
        ranked = judge.rank(shown, seed + i)
        rhos.append(spearman(ranked.scores, [score(c) for c in clips]) if not ranked.abstained else 0.0)
    return float(np.mean(rhos))


__all__ = ["presentation_orders", "rank_agreement", "taste_name", "teach_taste"]
