"""Does the loop learn? A property of the pixels measured on the fixed evaluation prompts, per checkpoint,
and how far it moved, with intervals.

Every checkpoint makes the same videos: fixed evaluation prompts (never training prompts), each with
the same seeds, through the public text-to-video procedure. So the videos of two checkpoints (or two arms
of an experiment) are pairs, and a change is measured item by item: the slope of the property over
iterations per (prompt, seed), then the mean over items with its standard error. Every item has a seed of
its own: with one seed list shared by every prompt, the tiny generator's brightness was set more by the
seed than by the prompt (seed means 0.233 to 0.280 where prompt means spread 0.017), so 24 prompts x 4
seeds were about 4 independent videos and their intervals far too narrow. Pure numpy apart from
``measure``, which makes the videos.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mora.config import ConfigError, RoundConfig
from mora.evaluation import evalset
from mora.evaluation.properties import property_function
from mora.models.taste import taste_name
from mora.seeds import derive_seed

Z95 = 1.959964


HELD_OUT_SEED = 20_261_206  # the evaluation's own draw; a round draws from seeds derived from its config


def evaluation_prompts(version: str = "v1") -> list[str]:
    """The text-to-video prompts of a released evaluation set."""
    return [item["prompt"] for item in evalset.load_set(version)["text-to-video"]]


def held_out_prompts(count: int) -> list[str]:
    """Prompts of the kind configs/tiny-learns.yaml trains on (its synthesizer's) at a seed of their own.

    The evaluation set's 8 prompts are another kind: on the tiny generator their first frames start darker
    (0.275) than the training prompts' (0.32), darker than the videos the "less" judges select (0.28), so a
    generator that learned the selected videos' look rose on them whichever way its judges pointed."""
    from mora.prompts.synthesizer import synthesize_prompts

    return synthesize_prompts(count, HELD_OUT_SEED)


def trained_on(root: Path, dataset: str, prompts: list[str]) -> int:
    """How many of ``prompts`` a dataset's rounds trained on (the evaluation must be on others: 0)."""
    import pyarrow.dataset as ds

    from mora.datasets.shards import shard_files

    seen = {row for path in shard_files(root, dataset)
            for row in ds.dataset(path, format="parquet").to_table(columns=["prompt"]).column("prompt").to_pylist()}
    return len(set(prompts) & seen)


def evaluation_items(prompts: list[str], per_prompt: int) -> list[tuple[str, int]]:
    """``(prompt, seed)`` per evaluation video, prompt-major, every seed its own draw."""
    return [(prompt, derive_seed(HELD_OUT_SEED, "evaluation", i, k)) for i, prompt in enumerate(prompts)
            for k in range(per_prompt)]


def measure(config: RoundConfig, checkpoint: str | None, name: str, items: list[tuple[str, int]],
            log: Callable[[str], None] | None = None) -> np.ndarray:
    """``[len(items)]``: the property of the video each (prompt, seed) makes with ``checkpoint`` (None: the
    base models). The agents are released afterwards."""
    from mora.agents.loading import GENERATION_KINDS, release
    from mora.evaluation.runner import with_checkpoint
    from mora.procedures.single import text_to_video
    from mora.procedures.toolbox import Toolbox

    prop = property_function(name)
    tools = Toolbox(with_checkpoint(config, checkpoint))
    values = []
    try:
        for i, (prompt, seed) in enumerate(items):
            values.append(prop(text_to_video(tools, prompt=prompt, seed=seed).frames))
            if log and (i + 1) % 8 == 0:
                log(f"evaluation video {i + 1}/{len(items)}")
    finally:
        release(GENERATION_KINDS)
    return np.array(values)


@dataclass(frozen=True)
class Estimate:
    mean: float
    half_width: float  # of the 95% interval
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    def covers(self, value: float) -> bool:
        return self.low <= value <= self.high


def estimate(values: np.ndarray) -> Estimate:
    """Mean and normal 95% interval of independent values."""
    values = np.asarray(values, dtype=np.float64)
    se = values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else math.inf
    return Estimate(float(values.mean()), Z95 * se, len(values))


def slopes(by_iteration: np.ndarray) -> np.ndarray:
    """``[iterations, items]`` -> each item's least-squares slope over the iterations (per iteration)."""
    values = np.asarray(by_iteration, dtype=np.float64)
    x = np.arange(len(values), dtype=np.float64)
    x -= x.mean()
    return (x[:, None] * (values - values.mean(axis=0))).sum(axis=0) / (x**2).sum()


def separation(more: np.ndarray, less: np.ndarray) -> tuple[float, Estimate]:
    """(slope of ``more`` - slope of ``less``) in units of its standard error, and the difference itself.

    Both are ``[iterations, items]`` measured on the same items (prompt and seed), so the difference is
    taken item by item and its standard error is that of a paired mean."""
    diff = slopes(more) - slopes(less)
    est = estimate(diff)
    se = est.half_width / Z95
    return (est.mean / se if se > 0 else math.inf), est


def arm_overrides(arm: str, prop: str, models: str | Path) -> dict[str, str]:
    """configs/tiny-learns.yaml for one arm of the experiment: judges taught to prefer ``arm`` (more or less)
    of ``prop``, or (``control``) the random tiny judges; each arm is a dataset of its own."""
    models = Path(models)
    if arm == "control":
        judges = [models / "llava-onevision", models / "qwen2-vl"]
    else:
        judges = [models / taste_name(family, prop, arm) for family in ("llava-onevision", "qwen2-vl")]
    out = {f"judges.{i}.model.id": str(path) for i, path in enumerate(judges)}
    for role, name in (("text_to_image", "sd3-colour"), ("image_to_video", "ltx-i2v-colour"),
                       ("image_to_image", "sd3-colour"), ("connect", "ltx-i2v-colour")):
        out[f"generation.{role}.id"] = str(models / name)
    return out | {"shards.dataset": f"learns-{prop}-{arm}"}


def check_models(prop: str, models: str | Path, arms: list[str]) -> None:
    """One line naming the command that builds what an experiment on ``prop`` needs, if anything is missing."""
    needed = {path for arm in arms for key, path in arm_overrides(arm, prop, models).items() if key.endswith(".id")}
    missing = sorted(p for p in needed if not (Path(p) / ".mora-tiny.json").exists())
    if missing:
        raise ConfigError(f"--property {prop}: {missing[0]} is not built; run `mora models make-tiny {models} "
                          f"--tastes {prop}`")


def planned_candidates(root: Path, dataset: str) -> dict[int, list[tuple]]:
    """Per iteration, every candidate's (prompt index, prompt, candidate index, seed): what an arm was asked
    to make, which must be the same in every arm."""
    import pyarrow.dataset as ds

    from mora.datasets.shards import iteration_of, shard_files

    out: dict[int, list[tuple]] = {}
    for path in shard_files(root, dataset):
        rows = ds.dataset(path, format="parquet").to_table(
            columns=["prompt_index", "prompt", "candidate_index", "seed"]).to_pylist()
        out.setdefault(iteration_of(path), []).extend(
            (r["prompt_index"], r["prompt"], r["candidate_index"], r["seed"]) for r in rows)
    return {k: sorted(v) for k, v in sorted(out.items())}


def checkpoint_after(config: RoundConfig, iteration: int) -> Path | None:
    """The weights the loop generates with after ``iteration`` (its checkpoint, or the newest before it when
    it had nothing to train; at first the start checkpoint, or None: the base models)."""
    from mora.round.history import newest_checkpoint
    from mora.training.start import existing_start
    from mora.training.trainer import checkpoint_root

    return newest_checkpoint(checkpoint_root(config), before=iteration + 1) or existing_start(config)
