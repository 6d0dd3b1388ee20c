"""The six procedures as Prefect flows: thin wrappers over ``mora.procedures``, writing an mp4 and its
JSON sidecar. Models load once per worker process and are reused by later runs.

``interactive=True`` pauses the run at every stage for a person's answer (Prefect's UI shows a form;
``resume_flow_run(id, run_input={...})`` answers from code). That needs a Prefect server, since the
answer comes from another process; without one the run stops at the start with how to get one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from prefect import flow, get_run_logger
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput

from mora.config import ConfigError, load_config
from mora.procedures.connect import connect_videos
from mora.procedures.extend import extend
from mora.procedures.single import digital_world, edit_video, image_to_video, text_to_video
from mora.procedures.toolbox import Approver, Made, Toolbox, write_made

_toolboxes: dict[tuple, Toolbox] = {}


def _tools(config_path: str, overrides: dict[str, str] | None) -> Toolbox:
    key = (config_path, tuple(sorted((overrides or {}).items())))
    if key not in _toolboxes:
        _toolboxes[key] = Toolbox(load_config(config_path, overrides))
    return _toolboxes[key]


class StageReview(RunInput):
    """A person's answer about one stage: accept it, regenerate it, or adjust it by an instruction."""

    action: Literal["accept", "regenerate", "adjust"] = "accept"
    instruction: str | None = None


def paused_for_people(interactive: bool) -> Approver | None:
    if not interactive:
        return None
    if not os.environ.get("PREFECT_API_URL"):
        raise ConfigError("interactive flows wait for a person through a Prefect server; start one (prefect server "
                          "start) and set PREFECT_API_URL, or use `mora make ... --interactive` in a terminal")

    def ask(stage: str, path: Path) -> tuple[str, str | None]:
        get_run_logger().info("stage %s is ready for review: %s", stage, path)
        answer = pause_flow_run(wait_for_input=StageReview.with_initial_data(
            description=f"**{stage}**: {path}. Accept, regenerate, or adjust with an instruction."),
            timeout=24 * 3600, poll_interval=2, key=f"{stage}-{path.stem}")
        return answer.action, answer.instruction

    return ask


def _written(made: Made, out: str) -> dict:
    video, sidecar = write_made(made, Path(out))
    get_run_logger().info("%s: %d frames at %.1f fps -> %s", made.record["procedure"], len(made.frames), made.fps,
                          video)
    return {"video": str(video), "sidecar": str(sidecar)}


@flow(name="make-text-to-video")
def make_text_to_video(prompt: str, out: str, seed: int = 0, duration_s: float | None = None,
                       chaining: str | None = None, config_path: str = "configs/tiny.yaml",
                       overrides: dict[str, str] | None = None, interactive: bool = False) -> dict:
    tools, approver = _tools(config_path, overrides), paused_for_people(interactive)
    return _written(text_to_video(tools, prompt, seed, duration_s, chaining, approver), out)


@flow(name="make-image-to-video")
def make_image_to_video(image: str, prompt: str, out: str, seed: int = 0, config_path: str = "configs/tiny.yaml",
                        overrides: dict[str, str] | None = None, interactive: bool = False,
                        duration_s: float | None = None) -> dict:
    tools, approver = _tools(config_path, overrides), paused_for_people(interactive)
    return _written(image_to_video(tools, Path(image), prompt, seed, approver, duration_s=duration_s), out)


@flow(name="make-extend")
def make_extend(video: str, prompt: str, out: str, seed: int = 0, segments: int = 1, chaining: str | None = None,
                config_path: str = "configs/tiny.yaml", overrides: dict[str, str] | None = None,
                duration_s: float | None = None) -> dict:
    return _written(extend(_tools(config_path, overrides), Path(video), prompt, seed, segments, chaining, duration_s),
                    out)


@flow(name="make-edit")
def make_edit(video: str, instruction: str, out: str, seed: int = 0, prompt: str | None = None,
              config_path: str = "configs/tiny.yaml", overrides: dict[str, str] | None = None,
              interactive: bool = False, duration_s: float | None = None) -> dict:
    tools, approver = _tools(config_path, overrides), paused_for_people(interactive)
    return _written(edit_video(tools, Path(video), instruction, seed, prompt, approver, duration_s=duration_s), out)


@flow(name="make-connect")
def make_connect(first: str, second: str, prompt: str, out: str, seed: int = 0,
                 config_path: str = "configs/tiny.yaml", overrides: dict[str, str] | None = None) -> dict:
    return _written(connect_videos(_tools(config_path, overrides), Path(first), Path(second), prompt, seed), out)


@flow(name="make-digital-world")
def make_digital_world(out: str, prompt: str | None = None, image: str | None = None, seed: int = 0,
                       config_path: str = "configs/tiny.yaml", overrides: dict[str, str] | None = None,
                       interactive: bool = False, duration_s: float | None = None) -> dict:
    tools, approver = _tools(config_path, overrides), paused_for_people(interactive)
    return _written(digital_world(tools, seed, prompt=prompt, image=Path(image) if image else None,
                                  approver=approver, duration_s=duration_s), out)
