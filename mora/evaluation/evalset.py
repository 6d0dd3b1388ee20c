"""The fixed, versioned evaluation sets: texts in ``sets/VERSION.json``; the images and videos the other
procedures start from are made once per preset by the project's own agents (base models, no
checkpoint) and stored, so every iteration and every system is measured on the same inputs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from mora.atomic import write_atomic, write_json_atomic
from mora.config import EVAL_TASKS, ConfigError, RoundConfig

SETS_DIR = Path(__file__).parent / "sets"


def available() -> list[str]:
    return sorted(p.stem for p in SETS_DIR.glob("*.json"))


def set_path(version: str) -> Path:
    path = SETS_DIR / f"{version}.json"
    if not path.is_file():
        raise ConfigError(f"config field 'eval.set': '{version}' is not a released evaluation set; use one of "
                          f"{', '.join(available())}")
    return path


def load_set(version: str) -> dict:
    spec = json.loads(set_path(version).read_text())
    missing = [t for t in EVAL_TASKS if not spec.get(t)]
    if missing:
        raise ConfigError(f"evaluation set '{version}' has no items for {', '.join(missing)}")
    return spec


def texts(spec: dict) -> list[str]:
    """Every text of a set (prompts, image and video prompts, instructions)."""
    return [v for task in EVAL_TASKS for item in spec[task] for v in item.values()]


def base_config(config: RoundConfig) -> RoundConfig:
    """The preset without a checkpoint: set inputs come from the base agents."""
    return config.model_copy(update={"generation": config.generation.model_copy(update={"checkpoint": None})})


def made_by(config: RoundConfig) -> dict:
    """The settings that decide what the agents make (not which prompts a round writes, nor the checkpoint)."""
    return base_config(config).model_dump(mode="json", include={
        "generation": True, "prompts": {"model", "enhance", "max_new_tokens", "temperature"}})


def inputs_dir(config: RoundConfig) -> Path:
    """Where a set's inputs for this preset live: they depend on the set and on what makes them."""
    digest = hashlib.sha256(set_path(config.eval.set).read_bytes()
                            + json.dumps([made_by(config), config.eval.seed], sort_keys=True).encode()).hexdigest()[:10]
    return Path(config.shards.root) / "_eval" / "sets" / f"{config.eval.set}-{digest}"


def needed(task: str, index: int) -> dict[str, str]:
    """Input files of one item, by role."""
    stem = f"{task}-{index:03d}"
    return {"image-to-video": {"image": f"{stem}.png"}, "extend": {"video": f"{stem}.mp4"},
            "video-to-video-edit": {"video": f"{stem}.mp4"},
            "connect": {"first": f"{stem}-first.mp4", "second": f"{stem}-second.mp4"}}.get(task, {})


def materialize(config: RoundConfig, tasks: list[str], count: int, log=print) -> Path:
    """Make every missing input of the first ``count`` items of ``tasks``; existing files are kept."""
    from mora.procedures.single import text_to_video
    from mora.procedures.toolbox import Toolbox, write_made

    spec, folder = load_set(config.eval.set), inputs_dir(config)
    tools: Toolbox | None = None
    for task in tasks:
        for i, item in enumerate(spec[task][:count]):
            for role, name in needed(task, i).items():
                path = folder / name
                if path.exists():
                    continue
                tools = tools or Toolbox(base_config(config))
                seed = config.eval.seed + i
                log(f"evaluation set {config.eval.set}: making {name}")
                if role == "image":
                    image = tools.first_frame(item["image_prompt"], seed)
                    write_atomic(path, lambda tmp, im=image: im.save(tmp, format="PNG"))
                else:
                    prompt = item[f"{role}_prompt"] if role in ("first", "second") else item["video_prompt"]
                    write_made(text_to_video(tools, prompt, seed), path)
    files = sorted(p for p in folder.glob("*") if p.suffix in (".png", ".mp4")) if folder.is_dir() else []
    if not files:
        return folder
    write_json_atomic(folder / "manifest.json", {"set": config.eval.set, "files": {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:16] for p in files}})
    return folder
