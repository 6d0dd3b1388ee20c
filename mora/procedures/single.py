"""Procedures 1, 2, 4 and 6 for one video: text-to-video (chained to a duration), image-to-video,
video-to-video editing and digital-world style. The round's candidate generation is in
``text_to_video.py``. Each follows the paper by default; ``procedures:`` in the preset picks our
alternatives (clip chaining, animating the user's image directly, restyling for digital worlds)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from mora.config import ConfigError
from mora.procedures.extend import chain_to, segments_to_reach
from mora.procedures.inputs import InputError, fit_frames, load_image, load_video
from mora.procedures.toolbox import Approver, Made, Toolbox, file_digest, show_image, show_video, staged

# procedures.digital_world: restyle (our option): the image-to-image agent's instruction
DIGITAL_WORLD = ("in the style of a voxel video game world, blocky cubes, pixelated textures, "
                 "bright flat lighting, like Minecraft")


def _animate_stage(tools: Toolbox, image: Image.Image, prompt: str, seed: int, approver: Approver | None,
                   workdir: Path, log: list[dict]) -> tuple[np.ndarray, int]:
    def make(s: int, instruction: str | None) -> np.ndarray:
        return tools.animate(image, f"{prompt}, {instruction}" if instruction else prompt, s)

    return staged("video", make, seed, approver, show_video(tools.gen.fps), workdir, log)


def _image_stage(tools: Toolbox, stage: str, make_image, seed: int, approver: Approver | None, workdir: Path,
                 log: list[dict]) -> tuple[Image.Image, int]:
    current: dict[str, Image.Image] = {}

    def make(s: int, instruction: str | None) -> Image.Image:  # adjust edits what the person saw
        current["image"] = tools.edit(current["image"], instruction, s) if instruction else make_image(s)
        return current["image"]

    return staged(stage, make, seed, approver, show_image, workdir, log)


def text_to_video(tools: Toolbox, prompt: str, seed: int, duration_s: float | None = None,
                  chaining: str | None = None, approver: Approver | None = None, workdir: Path | None = None) -> Made:
    """Prompt (enhanced) -> first frame -> animation, then more segments until ``duration_s`` (the paper
    shows about 12 s), each from the last frame of the one before unless ``chaining`` says clip."""
    g, log = tools.gen, []
    chaining = chaining or tools.config.procedures.chaining
    if not prompt.strip():
        raise InputError("the prompt is empty; pass --prompt with a few words saying what the video shows")
    segments_to_reach(g, g.num_frames, duration_s, chaining)  # a bad duration is refused before any model loads
    tools.begin()
    workdir = workdir or Path(tempfile.mkdtemp(prefix="mora-stages-"))
    enhanced = tools.enhance(prompt, seed)
    image, image_seed = _image_stage(tools, "first-frame", lambda s: tools.first_frame(enhanced, s), seed, approver,
                                     workdir, log)
    frames, video_seed = _animate_stage(tools, image, enhanced, seed, approver, workdir, log)
    frames, chained = chain_to(tools, frames, enhanced, video_seed + 1, duration_s, chaining)
    return Made(frames, g.fps, tools.record(
        "text-to-video", prompt=prompt, enhanced_prompt=enhanced, seeds={"first_frame": image_seed,
                                                                         "video": video_seed},
        **chained, stages=log))


def image_to_video(tools: Toolbox, image: Path, prompt: str, seed: int, approver: Approver | None = None,
                   workdir: Path | None = None, how: str | None = None, duration_s: float | None = None,
                   chaining: str | None = None) -> Made:
    """The user's image and text through the text-to-image agent (its img2img form), then animated
    (the paper's way); ``how="direct"`` animates the image as it is. ``duration_s`` chains segments
    as text-to-video does."""
    tools.begin()
    g, log = tools.gen, []
    how = how or tools.config.procedures.image_to_video
    workdir = workdir or Path(tempfile.mkdtemp(prefix="mora-stages-"))
    picture = load_image(image, g.width, g.height)
    seeds = {}
    if how == "text-to-image":
        picture, seeds["first_frame"] = _image_stage(tools, "first-frame",
                                                     lambda s: tools.first_frame_from(picture, prompt, s), seed,
                                                     approver, workdir, log)
    frames, seeds["video"] = _animate_stage(tools, picture, prompt, seed, approver, workdir, log)
    frames, chained = chain_to(tools, frames, prompt, seeds["video"] + 1, duration_s,
                               chaining or tools.config.procedures.chaining)
    return Made(frames, g.fps, tools.record("image-to-video", inputs={"image": str(image),
                                                                      "sha256": file_digest(image)},
                                            prompt=prompt, image_to_video=how, seeds=seeds, **chained, stages=log))


def edit_video(tools: Toolbox, video: Path, instruction: str, seed: int, prompt: str | None = None,
               approver: Approver | None = None, workdir: Path | None = None, duration_s: float | None = None,
               chaining: str | None = None) -> Made:
    """The first frame edited by instruction, then animated again: the paper's video-to-video editing.
    ``duration_s`` chains segments as text-to-video does."""
    tools.begin()
    g, log = tools.gen, []
    workdir = workdir or Path(tempfile.mkdtemp(prefix="mora-stages-"))
    frames, _ = load_video(video)
    source = Image.fromarray(fit_frames(frames[:1], g.width, g.height)[0])
    edited, edit_seed = _image_stage(tools, "edited-frame", lambda s: tools.edit(source, instruction, s), seed,
                                     approver, workdir, log)
    clip, video_seed = _animate_stage(tools, edited, prompt or instruction, seed, approver, workdir, log)
    change = float(np.abs(np.asarray(edited, np.float64) - np.asarray(source, np.float64)).mean())
    clip, chained = chain_to(tools, clip, prompt or instruction, video_seed + 1, duration_s,
                             chaining or tools.config.procedures.chaining)
    return Made(clip, g.fps, tools.record("video-to-video-edit", inputs={"video": str(video),
                                                                         "sha256": file_digest(video)},
                                          instruction=instruction, prompt=prompt or instruction,
                                          seeds={"edit": edit_seed, "video": video_seed},
                                          first_frame_change=round(change, 3), **chained, stages=log))


def digital_world(tools: Toolbox, seed: int, prompt: str | None = None, image: Path | None = None,
                  style: str | None = None, approver: Approver | None = None, workdir: Path | None = None,
                  how: str | None = None, duration_s: float | None = None, chaining: str | None = None) -> Made:
    """A scene (from a prompt or an image) as a digital world: by default the paper's way, the
    image-to-video agent's prompt ends in "In digital world style"; ``how="restyle"`` restyles the
    first frame with the image-to-image agent before animating it."""
    tools.begin()
    g, log, p = tools.gen, [], tools.config.procedures
    how = how or p.digital_world
    workdir = workdir or Path(tempfile.mkdtemp(prefix="mora-stages-"))
    if image is None and not (prompt and prompt.strip()):
        raise InputError("digital-world needs a prompt or an image; pass --prompt TEXT or --image FILE")
    base = (load_image(image, g.width, g.height) if image else None)
    scene = prompt or "the scene"
    if how == "suffix":
        style = style or p.digital_world_suffix
        from mora.agents.image_to_video import IMAGE_ONLY

        if tools.image_to_video.family in IMAGE_ONLY:
            raise ConfigError(f"procedures.digital_world: suffix needs an image-to-video agent that reads text, and "
                              f"{tools.image_to_video.family} does not; set procedures.digital_world=restyle")
        seeds = {}
        if base is None:
            base, seeds["first_frame"] = _image_stage(tools, "first-frame", lambda s: tools.first_frame(scene, s),
                                                      seed, approver, workdir, log)
        animate_prompt = f"{scene.rstrip(' .')}. {style}"
        clip, seeds["video"] = _animate_stage(tools, base, animate_prompt, seed, approver, workdir, log)
    else:
        style = style or DIGITAL_WORLD

        def restyle(s: int) -> Image.Image:
            return tools.edit(base if base is not None else tools.first_frame(scene, s), f"{scene}, {style}", s)

        styled, style_seed = _image_stage(tools, "styled-frame", restyle, seed, approver, workdir, log)
        animate_prompt = f"{scene}, {style}"
        clip, video_seed = _animate_stage(tools, styled, animate_prompt, seed, approver, workdir, log)
        seeds = {"style": style_seed, "video": video_seed}
    clip, chained = chain_to(tools, clip, animate_prompt, seeds["video"] + 1, duration_s, chaining or p.chaining)
    inputs = {"image": str(image), "sha256": file_digest(image)} if image else {}
    return Made(clip, g.fps, tools.record("digital-world", inputs=inputs, prompt=prompt, digital_world=how,
                                          style=style, seeds=seeds, **chained, stages=log))
