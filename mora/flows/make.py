"""The six procedures as Prefect flows: thin wrappers over ``mora.procedures``, writing an mp4 and its
JSON sidecar. Models load once per worker process and are reused by later runs."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from mora.config import load_config
from mora.procedures.connect import connect_videos
from mora.procedures.extend import extend
from mora.procedures.single import digital_world, edit_video, image_to_video, text_to_video
from mora.procedures.toolbox import Made, Toolbox, write_made

_toolboxes: dict[tuple, Toolbox] = {}


def _tools(config_path: str, overrides: dict[str, str] | None) -> Toolbox:
    key = (config_path, tuple(sorted((overrides or {}).items())))
    if key not in _toolboxes:
        _toolboxes[key] = Toolbox(load_config(config_path, overrides))
    return _toolboxes[key]


def _written(made: Made, out: str) -> dict:
    video, sidecar = write_made(made, Path(out))
    get_run_logger().info("%s: %d frames at %.1f fps -> %s", made.record["procedure"], len(made.frames), made.fps,
                          video)
    return {"video": str(video), "sidecar": str(sidecar)}


@flow(name="make-text-to-video")
def make_text_to_video(prompt: str, out: str, seed: int = 0, duration_s: float | None = None,
                       chaining: str = "clip", config_path: str = "configs/tiny.yaml",
                       overrides: dict[str, str] | None = None) -> dict:
    return _written(text_to_video(_tools(config_path, overrides), prompt, seed, duration_s, chaining), out)


@flow(name="make-image-to-video")
def make_image_to_video(image: str, prompt: str, out: str, seed: int = 0, config_path: str = "configs/tiny.yaml",
                        overrides: dict[str, str] | None = None) -> dict:
    return _written(image_to_video(_tools(config_path, overrides), Path(image), prompt, seed), out)


@flow(name="make-extend")
def make_extend(video: str, prompt: str, out: str, seed: int = 0, segments: int = 1, chaining: str = "clip",
                config_path: str = "configs/tiny.yaml", overrides: dict[str, str] | None = None) -> dict:
    return _written(extend(_tools(config_path, overrides), Path(video), prompt, seed, segments, chaining), out)


@flow(name="make-edit")
def make_edit(video: str, instruction: str, out: str, seed: int = 0, prompt: str | None = None,
              config_path: str = "configs/tiny.yaml", overrides: dict[str, str] | None = None) -> dict:
    return _written(edit_video(_tools(config_path, overrides), Path(video), instruction, seed, prompt), out)


@flow(name="make-connect")
def make_connect(first: str, second: str, prompt: str, out: str, seed: int = 0,
                 config_path: str = "configs/tiny.yaml", overrides: dict[str, str] | None = None) -> dict:
    return _written(connect_videos(_tools(config_path, overrides), Path(first), Path(second), prompt, seed), out)


@flow(name="make-digital-world")
def make_digital_world(out: str, prompt: str | None = None, image: str | None = None, seed: int = 0,
                       config_path: str = "configs/tiny.yaml", overrides: dict[str, str] | None = None) -> dict:
    tools = _tools(config_path, overrides)
    return _written(digital_world(tools, seed, prompt=prompt, image=Path(image) if image else None), out)
