"""Procedure 3, extend a video, and the chaining that long text-to-video uses.

``last-frame`` (the paper's way, the default): each segment is the image-to-video agent animating
the previous segment's last frame. Users of the public demo report that this loses motion and
accumulates colour and sharpness errors segment after segment, so ``clip`` chaining (our option)
conditions each new segment on the last ``context_frames`` frames through the connect agent
(LTX-Video conditions on a clip). ``drift`` measures both; ``bench/drift.py`` compares them.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from mora.config import GenerationConfig
from mora.procedures.inputs import InputError, fit_frames, load_video
from mora.procedures.toolbox import Made, Toolbox, file_digest

CHAININGS = ("last-frame", "clip")
SEGMENT_AGENT = {"last-frame": "image_to_video", "clip": "connect"}
# Segments one call chains at most. Each continues from the one before, so colour and sharpness drift
# grow with every segment (the paper shows about 12 s and notes degradation beyond), and every frame
# stays in memory until the mp4 is written: 64 is minutes of video at any preset, and a bound on both.
MAX_SEGMENTS = 64
WHY_BOUND = ("each segment continues from the one before, so drift grows with every one (the paper stops near "
             "12 s), and every frame stays in memory until the mp4 is written")


def check_segments(segments: int) -> int:
    """``segments`` to add, refused in one line when it is not 1 to ``MAX_SEGMENTS``."""
    if segments < 1:
        raise InputError(f"--segments {segments}: pass 1 or more")
    if segments > MAX_SEGMENTS:
        raise InputError(f"--segments {segments} is more than the {MAX_SEGMENTS} one call chains ({WHY_BOUND}); "
                         f"pass {MAX_SEGMENTS} or fewer, and extend the result again if you need more")
    return segments


def segments_for(duration_s: float | None, num_frames: int, fps: float, per_segment: int) -> int:
    """Segments after the first clip of ``num_frames`` to reach ``duration_s`` seconds (each adds
    ``per_segment`` frames), refused in one line when it is no length or needs more than ``MAX_SEGMENTS``."""
    if duration_s is None:
        return 0
    if not math.isfinite(duration_s) or duration_s <= 0:
        raise InputError(f"--duration {duration_s:g} is not a length; pass a positive number of seconds (the paper "
                         "shows about 12)")
    per_segment = max(per_segment, 1)
    segments = max(0, math.ceil((duration_s * fps - num_frames) / per_segment))
    if segments > MAX_SEGMENTS:
        longest = (num_frames + MAX_SEGMENTS * per_segment) / fps
        raise InputError(f"--duration {duration_s:g} s needs {segments} chained segments at this preset, more than "
                         f"the {MAX_SEGMENTS} one video chains ({WHY_BOUND}); pass --duration {math.floor(longest)} "
                         "or less")
    return segments


def extend_frames(tools: Toolbox, frames: np.ndarray, prompt: str, seed: int, segments: int,
                  chaining: str = "last-frame") -> tuple[np.ndarray, list[int]]:
    """``frames`` followed by ``segments`` new segments; also the frame index where each segment starts."""
    g = tools.gen
    if chaining not in CHAININGS:
        raise InputError(f"chaining '{chaining}' is unknown; use one of {', '.join(CHAININGS)}")
    need = g.context_frames if chaining == "clip" else 1
    if len(frames) < max(need, 2):
        raise InputError(f"the video has {len(frames)} frames; extending it with {chaining} chaining needs at "
                         f"least {max(need, 2)} (set generation.context_frames lower, or use last-frame chaining)")
    out, starts = [frames], [0]
    for k in range(segments):
        tail = np.concatenate(out)[-need:]
        starts.append(sum(len(o) for o in out))
        if chaining == "last-frame":
            seg = tools.animate(Image.fromarray(tail[-1]), prompt, seed + k)
            out.append(seg[1:])  # its first frame repeats the one it started from
        else:
            context = [Image.fromarray(f) for f in tail]
            seg = tools.timed("connect", tools.connect.continue_clip, context, prompt, seed + k, g.num_frames,
                              g.height, g.width, g.video_steps, g.video_guidance, g.fps)
            out.append(seg[len(context):])  # its first frames re-create the context
    return np.concatenate(out), starts


def segments_to_reach(gen: GenerationConfig, have: int, duration_s: float | None, chaining: str) -> int:
    """How many more segments make a video of ``have`` frames last ``duration_s`` seconds (0 without one),
    refused in one line past ``MAX_SEGMENTS``."""
    return segments_for(duration_s, have, gen.fps, gen.num_frames - (gen.context_frames if chaining == "clip" else 1))


def chain_to(tools: Toolbox, frames: np.ndarray, prompt: str, seed: int, duration_s: float | None,
             chaining: str) -> tuple[np.ndarray, dict]:
    """``frames`` chained to ``duration_s`` seconds (the paper's long videos), and the record's fields for it."""
    segments = segments_to_reach(tools.gen, len(frames), duration_s, chaining)
    if not segments:
        return frames, {"duration_s": duration_s, "chaining": None, "segment_agent": None, "segment_starts": [0],
                        "drift": None}
    frames, starts = extend_frames(tools, frames, prompt, seed, segments, chaining)
    return frames, {"duration_s": duration_s, "chaining": chaining, "segment_agent": SEGMENT_AGENT[chaining],
                    "segment_starts": starts, "drift": drift(frames, starts)}


def drift(frames: np.ndarray, starts: list[int]) -> list[dict]:
    """Per segment: mean colour distance from the first segment (0-441) and sharpness relative to it."""
    bounds = [*starts, len(frames)]
    segments = [frames[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]

    def sharpness(clip):
        return float(np.mean([cv2.Laplacian(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var() for f in clip]))

    colour0, sharp0 = segments[0].reshape(-1, 3).mean(0), sharpness(segments[0]) or 1e-9
    return [{"segment": i, "frames": len(seg),
             "colour_drift": round(float(np.linalg.norm(seg.reshape(-1, 3).mean(0) - colour0)), 3),
             "sharpness_ratio": round(sharpness(seg) / sharp0, 4)} for i, seg in enumerate(segments)]


def extend(tools: Toolbox, video: Path, prompt: str, seed: int, segments: int = 1, chaining: str | None = None,
           duration_s: float | None = None) -> Made:
    """``segments`` new segments after the video; with ``duration_s``, as many as make it last that long
    (at least one)."""
    check_segments(segments)
    tools.begin()
    chaining = chaining or tools.config.procedures.chaining
    frames, _ = load_video(video)
    g = tools.gen
    frames = fit_frames(frames, g.width, g.height)
    if duration_s:
        segments = max(1, segments_to_reach(g, len(frames), duration_s, chaining))
    out, starts = extend_frames(tools, frames, prompt, seed, segments, chaining)
    return Made(out, g.fps, tools.record("extend", inputs={"video": str(video), "sha256": file_digest(video)},
                                         prompt=prompt, seeds=[seed + k for k in range(segments)], chaining=chaining,
                                         duration_s=duration_s, segment_agent=SEGMENT_AGENT[chaining],
                                         segment_starts=starts, drift=drift(out, starts)))
