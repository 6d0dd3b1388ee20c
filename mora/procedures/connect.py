"""Procedure 5, connect two videos: a generated transition from the last frame of the first to the
first frame of the second. Output = first video + transition + second video."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from mora.procedures.inputs import InputError, fit_frames, load_video
from mora.procedures.toolbox import Made, Toolbox, file_digest


def connect_videos(tools: Toolbox, first: Path, second: Path, prompt: str, seed: int) -> Made:
    tools.begin()
    g = tools.gen
    a, _ = load_video(first)
    b, _ = load_video(second)
    if a.shape[1:3] != b.shape[1:3]:
        raise InputError(f"videos to connect differ in size ({first}: {a.shape[2]}x{a.shape[1]}, {second}: "
                         f"{b.shape[2]}x{b.shape[1]}); resize one to match the other first")
    a, b = fit_frames(a, g.width, g.height), fit_frames(b, g.width, g.height)
    bridge = tools.timed("connect", tools.connect.between, Image.fromarray(a[-1]), Image.fromarray(b[0]), prompt,
                         seed, g.num_frames, g.height, g.width, g.video_steps, g.video_guidance, g.fps)
    transition = bridge[1:-1]  # its ends are the two frames it joins
    return Made(np.concatenate([a, transition, b]), g.fps, tools.record(
        "connect", inputs={"first": str(first), "first_sha256": file_digest(first), "second": str(second),
                           "second_sha256": file_digest(second)},
        prompt=prompt, seeds={"transition": seed},
        parts={"first_frames": len(a), "transition_frames": len(transition), "second_frames": len(b)}))
