"""Evaluate one system (the preset's agents with a checkpoint, or the base models) on the set: every
task's items go through the procedures' public functions (chained to ``eval.duration_s`` as ``mora
make --duration`` chains them), then every metric of the task.

Each item's scores are stored beside its video as soon as they exist, so an interrupted evaluation
resumes where it stopped, and a finished one is read back rather than made again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image

from mora.atomic import write_json_atomic
from mora.config import RoundConfig
from mora.evaluation import evalset
from mora.evaluation.implementations import fallbacks, labels
from mora.evaluation.metrics import Sample, Scorer, task_metrics

DIGITAL_WORLD_TEXT = "{prompt}, in digital world style"


def reports_dir(config: RoundConfig) -> Path:
    return Path(config.shards.root) / "_reports" / config.shards.dataset / "eval"


def with_checkpoint(config: RoundConfig, checkpoint: str | None) -> RoundConfig:
    return config.model_copy(update={"generation": config.generation.model_copy(update={"checkpoint": checkpoint})})


def describe(checkpoint: str | None, preset: str = "") -> dict:
    """Label, kind, iteration and id of a checkpoint from its lineage; the base models are iteration 0,
    labelled by the preset they come from (two presets' base runs in one dataset stay apart)."""
    if checkpoint is None:
        return {"label": f"base-{preset}" if preset else "base", "kind": "base", "iteration": 0,
                "checkpoint_id": None}
    from mora.training.checkpoint import read_lineage

    lineage = read_lineage(checkpoint)
    return {"label": f"it{lineage['iteration']}-{lineage['checkpoint_id'][:8]}", "kind": "checkpoint",
            "iteration": lineage["iteration"], "checkpoint_id": lineage["checkpoint_id"]}


def measured_by(config: RoundConfig, scorer: Scorer) -> list:
    """What a score depends on besides the video: the measuring settings and the implementations chosen
    (``auto`` picks RAFT on one machine and Farneback on another: their scores are not interchangeable)."""
    return [config.eval.model_dump(mode="json", exclude={"items_per_task", "tasks"}), labels(scorer.chosen)]


def scores_key(config: RoundConfig, checkpoint_id: str | None, scorer: Scorer) -> str:
    """What an item's stored scores depend on: the checkpoint, how videos are made, and how they are measured."""
    made = evalset.made_by(config)
    return hashlib.sha256(json.dumps([checkpoint_id, made, measured_by(config, scorer)], sort_keys=True
                                     ).encode()).hexdigest()[:12]


def latest_checkpoint(config: RoundConfig, dataset: str | None = None) -> str | None:
    """The final checkpoint of the highest iteration that ``dataset`` (default the preset's) has trained."""
    from mora.round.history import newest_checkpoint
    from mora.training.trainer import checkpoint_root

    shards = config.shards.model_copy(update={"dataset": dataset or config.shards.dataset})
    newest = newest_checkpoint(checkpoint_root(config.model_copy(update={"shards": shards})))
    return str(newest) if newest else None


def make_sample(tools, task: str, item: dict, index: int, seed: int, inputs: Path, duration_s: float | None = None):
    """``(Made, Sample)``: the task's procedure run on one item of the set; every procedure that makes its
    own length is chained to ``duration_s`` (connect's length is its two inputs and the transition)."""
    from mora.procedures.connect import connect_videos
    from mora.procedures.extend import extend
    from mora.procedures.single import digital_world, edit_video, image_to_video, text_to_video

    files = {role: inputs / name for role, name in evalset.needed(task, index).items()}
    if task == "text-to-video":
        made = text_to_video(tools, prompt=item["prompt"], seed=seed, duration_s=duration_s)
        return made, Sample(task, made.frames, made.fps, item["prompt"])
    if task == "image-to-video":
        made = image_to_video(tools, image=files["image"], prompt=item["prompt"], seed=seed, duration_s=duration_s)
        return made, Sample(task, made.frames, made.fps, item["prompt"], image=Image.open(files["image"]).copy())
    if task == "extend":
        made = extend(tools, video=files["video"], prompt=item["prompt"], seed=seed, duration_s=duration_s)
        start = made.record["segment_starts"][1]
        return made, Sample(task, made.frames, made.fps, item["prompt"], source=made.frames[:start],
                            parts={"extension": made.frames[start:]})
    if task == "video-to-video-edit":
        made = edit_video(tools, video=files["video"], instruction=item["instruction"], seed=seed,
                          duration_s=duration_s)
        return made, Sample(task, made.frames, made.fps, item["instruction"])
    if task == "connect":
        made = connect_videos(tools, first=files["first"], second=files["second"], prompt=item["prompt"], seed=seed)
        a, t = made.record["parts"]["first_frames"], made.record["parts"]["transition_frames"]
        parts = {"first": made.frames[:a], "transition": made.frames[a:a + t], "second": made.frames[a + t:]}
        return made, Sample(task, made.frames, made.fps, item["prompt"], parts=parts)
    if task == "digital-world":
        made = digital_world(tools, seed=seed, prompt=item["prompt"], duration_s=duration_s)
        return made, Sample(task, made.frames, made.fps, DIGITAL_WORLD_TEXT.format(prompt=item["prompt"]))
    raise KeyError(task)


def evaluate_system(config: RoundConfig, checkpoint: str | None, label: str | None = None,
                    iteration: int | None = None, ablation: str | None = None, preset: str = "",
                    log: Callable[[str], None] = print) -> dict:
    """Every task of ``config.eval`` on ``checkpoint``; the run record is written to the reports folder."""
    from mora.procedures.toolbox import Toolbox, write_made

    ev, about = config.eval, describe(checkpoint, preset)
    label = label or (f"{ablation}-{about['label']}" if ablation else about["label"])
    scorer = Scorer(ev, config.runtime)
    scorer.prepare(ev.tasks)
    inputs = evalset.materialize(config, ev.tasks, ev.items_per_task, log)
    spec = evalset.load_set(ev.set)
    folder = reports_dir(config) / "videos" / label
    tools = Toolbox(with_checkpoint(config, checkpoint))
    items, key = [], scores_key(config, about["checkpoint_id"], scorer)
    for task in ev.tasks:
        for i, item in enumerate(spec[task][:ev.items_per_task]):
            done = folder / f"{task}-{i:03d}.scores.json"
            if done.exists() and json.loads(done.read_text()).get("key") == key:
                items.append(json.loads(done.read_text()))
                continue
            made, sample = make_sample(tools, task, item, i, ev.seed + i, inputs, ev.duration_s)
            write_made(made, folder / f"{task}-{i:03d}.mp4")
            record = {"task": task, "item": i, "key": key, **scorer.score(sample)}
            write_json_atomic(done, record)
            items.append(record)
            log(f"{label}: {task} #{i}: {describe_scores(record)}")
    return write_run(config, scorer, items, key, label=label, kind=about["kind"], checkpoint=checkpoint,
                     checkpoint_id=about["checkpoint_id"], ablation=ablation, preset=preset or None,
                     iteration=about["iteration"] if iteration is None else iteration, set=ev.set,
                     prompts=f"set {ev.set}", inputs=str(inputs))


def describe_scores(record: dict) -> str:
    quality = record.get("video_quality")
    said = f"video quality {quality:.4f}" if quality is not None else "video quality missing"
    return said + "".join(f"; {m} missing: {why}" for m, why in record.get("missing", {}).items()
                          if m != "video_quality")


def write_run(config: RoundConfig, scorer: Scorer, items: list[dict], key: str, **about) -> dict:
    """The run record ``runs/LABEL.json``: the summary per task, which implementation measured each
    metric, and seconds per video; tasks evaluated earlier under the same key are kept."""
    path = reports_dir(config) / "runs" / f"{about['label']}.json"
    earlier = json.loads(path.read_text()) if path.exists() else {}
    kept = earlier.get("summary", {}) if earlier.get("key") == key else {}  # tasks evaluated before, same settings
    run = {**about, "key": key, "dataset": config.shards.dataset, "created_at": datetime.now(UTC).isoformat(),
           "summary": kept | summarize(items), "implementations": labels(scorer.chosen),
           "fallbacks": fallbacks(scorer.chosen),
           "seconds_per_video": {m: round(float(np.mean(s)), 5) for m, s in scorer.seconds.items()}}
    write_json_atomic(path, run)
    return run


def summarize(items: list[dict]) -> dict[str, dict]:
    """Per task, the mean of each metric over the items that have it (None when none has), how many
    items, and per missing metric how many items lack it and why."""
    out: dict[str, dict] = {}
    for task in dict.fromkeys(r["task"] for r in items):
        rows = [r for r in items if r["task"] == task]
        summary: dict = {}
        for m in task_metrics(task):
            values = [r[m] for r in rows if r.get(m) is not None]
            summary[m] = round(float(np.mean(values)), 4) if values else None
        summary["items"] = len(rows)
        missing = {m: sorted({r["missing"][m] for r in rows if m in r.get("missing", {})}) for m in task_metrics(task)}
        summary["missing"] = {m: {"items": sum(m in r.get("missing", {}) for r in rows), "reasons": why}
                              for m, why in missing.items() if why}
        out[task] = summary
    return out
