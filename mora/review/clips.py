"""The copy of a candidate video that reviewers watch: big enough to see, long enough to compare.

Label Studio draws a video at its natural size and stops at its end. Small clips (the tiny models make
64 px ones) are enlarged by a whole factor with nearest-neighbour pixels, so nothing is invented or
smoothed away, and short clips are repeated back to back so the four synchronised players loop a few
times per press of play. The shard keeps the original; only the review copy changes.
"""

from __future__ import annotations

import math

import numpy as np

from mora.media import decode, encode_mp4

MIN_SIDE = 256  # pixels on the short side of what reviewers see
MIN_SECONDS = 6.0  # a short clip repeats until it lasts at least this long


def review_plan(width: int, height: int, frames: int, fps: float) -> tuple[int, int]:
    """(scale, repeats): the whole enlargement factor and how many times the clip plays in a row."""
    scale = max(1, math.ceil(MIN_SIDE / max(1, min(width, height))))
    repeats = max(1, math.ceil(MIN_SECONDS * fps / max(1, frames))) if fps > 0 else 1
    return scale, repeats


def review_clip(data: bytes) -> bytes:
    """The mp4 reviewers watch; the original bytes when it is already big and long enough."""
    frames, fps = decode(data)
    scale, repeats = review_plan(frames.shape[2], frames.shape[1], len(frames), fps)
    if scale == 1 and repeats == 1:
        return data
    big = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    return encode_mp4(np.concatenate([big] * repeats), fps)

