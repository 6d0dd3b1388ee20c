"""Any folder of videos as a system row: another system's samples (Sora's, VideoCrafter's, SVD's) or
videos made elsewhere, measured by the same metrics and implementations as our checkpoints.

What each video should show comes from a prompt file (JSON: ``{"name.mp4": "a prompt"}``, or an object
per video with the sidecar's fields), else from its sidecar ``name.json`` (``mora make`` writes one),
else from ``name.txt``. Sidecar fields the tasks read: ``prompt`` (``instruction`` for edits);
``image`` (image-to-video: the input image, for Video-Text Integration); ``source`` (extend: the input
video) or ``source_frames`` (the first N frames are the input; ``mora make extend``'s
``segment_starts`` says the same); ``parts`` (connect: ``first_frames``, ``transition_frames``,
``second_frames``, as ``mora make connect`` writes them). A metric whose input is not given is missing
for that video, with the reason.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path

from mora.atomic import write_json_atomic
from mora.config import RoundConfig
from mora.evaluation.metrics import Sample, Scorer
from mora.evaluation.runner import DIGITAL_WORLD_TEXT, describe_scores, measured_by, reports_dir, write_run
from mora.procedures.inputs import InputError, load_image, load_video

VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv", ".avi", ".gif")
LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,79}$")
TEXT_FREE = ("connect",)  # tasks whose metrics read no text


def check_label(label: str, folder: Path) -> None:
    """A label names a file; it may not take the place of one of our own runs."""
    if not LABEL.match(label):
        raise InputError(f"--label '{label}' must be letters, digits, '.', '_', '+' or '-' (a file name), e.g. sora")
    stored = folder / "runs" / f"{label}.json"
    if stored.exists() and json.loads(stored.read_text()).get("kind", "checkpoint") != "outside":
        raise InputError(f"--label '{label}' already names one of this dataset's own runs; choose another label")


def videos_in(folder: Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"--videos '{folder}' is not a folder; pass a folder of videos")
    found = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
    if not found:
        raise InputError(f"--videos '{folder}' holds no video ({', '.join(VIDEO_SUFFIXES)})")
    return found


def read_prompt_file(path: Path | None) -> dict[str, dict]:
    if path is None:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"--prompts '{path}' cannot be read as JSON ({type(exc).__name__}); pass "
                         '{"video.mp4": "its prompt", ...}') from None
    if not isinstance(data, dict):
        raise InputError(f"--prompts '{path}' must map video file names to prompts: " '{"video.mp4": "its prompt"}')
    return {str(k): v if isinstance(v, dict) else {"prompt": str(v)} for k, v in data.items()}


def entry_for(video: Path, prompts: dict[str, dict]) -> dict:
    """What is known about one video: its sidecar or .txt, then the prompt file's entry over them."""
    entry: dict = {}
    sidecar, text = video.with_suffix(".json"), video.with_suffix(".txt")
    if sidecar.is_file():
        try:
            entry = json.loads(sidecar.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise InputError(f"sidecar '{sidecar}' is not JSON; fix it or remove it") from None
    elif text.is_file():
        entry = {"prompt": text.read_text(encoding="utf-8").strip()}
    return entry | prompts.get(video.name, prompts.get(video.stem, {}))


def _near(video: Path, name: str | None) -> Path | None:
    if not name:
        return None
    path = Path(name)
    return path if path.is_absolute() or path.exists() else video.parent / path


def sample_for(task: str, video: Path, entry: dict) -> Sample:
    frames, fps = load_video(video)
    prompt = entry.get("instruction") if task == "video-to-video-edit" else None
    prompt = prompt or entry.get("prompt") or ""
    if not prompt and task not in TEXT_FREE:
        raise InputError(f"video '{video.name}' has no prompt; give --prompts FILE (JSON: "
                         f'{{"{video.name}": "its prompt"}}) or a sidecar {video.stem}.json with "prompt", or '
                         f"{video.stem}.txt")
    text = DIGITAL_WORLD_TEXT.format(prompt=prompt) if task == "digital-world" else prompt
    sample = Sample(task, frames, fps, text)
    if task == "image-to-video":
        image = _near(video, entry.get("image") or entry.get("inputs", {}).get("image"))
        if image is not None:
            sample.image = load_image(image, frames.shape[2], frames.shape[1])
    if task == "extend":
        source = _near(video, entry.get("source"))
        cut = entry.get("source_frames")
        if cut is None and len(entry.get("segment_starts") or []) > 1:  # mora make extend: where the new part starts
            cut = entry["segment_starts"][1]
        if source is not None:
            sample.source = load_video(source)[0]
        elif cut:
            sample.source, sample.parts = frames[:cut], {"extension": frames[cut:]}
    if task == "connect" and entry.get("parts"):
        a, t = entry["parts"]["first_frames"], entry["parts"]["transition_frames"]
        sample.parts = {"first": frames[:a], "transition": frames[a:a + t], "second": frames[a + t:]}
    return sample


def evaluate_folder(config: RoundConfig, videos: Path, label: str, task: str, prompts: Path | None = None,
                    log: Callable[[str], None] = print) -> dict:
    """Every video of ``videos`` measured as the ``task``'s samples of a system called ``label``; the run
    record goes next to our checkpoints' so one table holds both."""
    folder = reports_dir(config)
    check_label(label, folder)
    files, given = videos_in(videos), read_prompt_file(prompts)
    entries = {v: entry_for(v, given) for v in files}
    samples = {v: sample_for(task, v, entries[v]) for v in files}  # every input checked before any model loads
    scorer = Scorer(config.eval, config.runtime)
    scorer.prepare([task])
    measured = measured_by(config, scorer)

    def key(*parts) -> str:
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]

    items = []
    for i, video in enumerate(files):
        done = folder / "videos" / label / f"{task}-{video.stem}.scores.json"
        mine = key(measured, task, hashlib.sha256(video.read_bytes()).hexdigest(), entries[video])
        if done.exists() and json.loads(done.read_text()).get("key") == mine:
            items.append(json.loads(done.read_text()))
            continue
        record = {"task": task, "item": i, "video": str(video), "key": mine, **scorer.score(samples[video])}
        write_json_atomic(done, record)
        items.append(record)
        log(f"{label}: {task} {video.name}: {describe_scores(record)}")
    return write_run(config, scorer, items, key(measured), label=label, kind="outside", checkpoint=None,
                     checkpoint_id=None, ablation=None, preset=None, iteration=None, set=None,
                     prompts=f"own ({len(files)} videos)", source=str(Path(videos).resolve()))
