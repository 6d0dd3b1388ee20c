"""Properties of a video that anyone can compute from its pixels: the tastes judges can be taught.

A taught judge (``mora.models.taste``) ranks candidates by one of these, the scripted reviewer
(``mora.review.scripted``) chooses by it, and ``bench/loop_learns.py`` measures whether the loop moves
the generator along it. One function per property, pure numpy on uint8 frames, so that the judges'
teacher, the reviewer, the benchmark and the tests all measure the same thing.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mora.config import ConfigError

LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, the weights of Y in the videos' YUV


def _pixels(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim not in (3, 4) or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [T, H, W, 3] or [H, W, 3], got {frames.dtype} {frames.shape}")
    return frames.reshape(-1, 3).astype(np.float64) / 255.0


def brightness(frames: np.ndarray) -> float:
    """Mean luma over every pixel of every frame, 0 (black) to 1 (white)."""
    return float((_pixels(frames) @ LUMA).mean())


def saturation(frames: np.ndarray) -> float:
    """Mean chroma, max - min of each pixel's channels: 0 (grey) to 1 (pure colour at full strength).

    Chroma rather than HSV's (max - min) / max, which divides by the pixel's value and so makes a
    near-black pixel with a little noise count as fully saturated."""
    rgb = _pixels(frames)
    return float((rgb.max(axis=1) - rgb.min(axis=1)).mean())


PROPERTIES: dict[str, Callable[[np.ndarray], float]] = {"brightness": brightness, "saturation": saturation}
DIRECTIONS = ("more", "less")


def property_function(name: str, field: str = "--property") -> Callable[[np.ndarray], float]:
    """The property called ``name``; an unknown name is one line naming the field and the choices."""
    if name not in PROPERTIES:
        raise ConfigError(f"{field}: '{name}' is not a property; use one of {', '.join(PROPERTIES)}")
    return PROPERTIES[name]


def preference(name: str, prefer: str) -> Callable[[np.ndarray], float]:
    """A score that is higher for what ``prefer`` (more or less of the property) likes."""
    measure = property_function(name)
    if prefer not in DIRECTIONS:
        raise ConfigError(f"prefer: '{prefer}' is not a direction; use more or less")
    sign = 1.0 if prefer == "more" else -1.0
    return lambda frames: sign * measure(frames)
