"""Synthetic colour scenes: what tiny models are taught on when a claim needs content.

A scene is a clip of a tinted field with a gradient, a few soft blobs that drift, a global brightness
drift and some noise: varied in brightness, saturation and layout, cheap to draw, reproducible from a
numpy generator. ``adjusted`` moves one clip's brightness and saturation by random amounts, which is
how the judges' teacher makes candidate sets that differ in a property by small and large steps.
"""

from __future__ import annotations

import colorsys

import numpy as np

LUMA = np.array([0.299, 0.587, 0.114])


def _colour(rng: np.random.Generator, value: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(rng.random(), rng.random(), rng.uniform(*value)))


def scene(rng: np.random.Generator, side: int = 64, frames: int = 9) -> np.ndarray:
    """One clip as floats in [0, 1], ``[T, H, W, 3]``."""
    yy, xx = np.mgrid[0:side, 0:side] / side
    base = _colour(rng, (0.05, 1.0))
    angle, amplitude = rng.uniform(0, 2 * np.pi), rng.uniform(0, 0.6)
    gradient = (np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5))[..., None] * amplitude * rng.uniform(-1, 1, 3)
    blobs = [(rng.random(2), rng.uniform(0.05, 0.3), _colour(rng), rng.uniform(-0.3, 0.3, 2))
             for _ in range(rng.integers(0, 4))]
    drift, noise = rng.uniform(-0.3, 0.3), rng.uniform(0, 0.08)
    out = np.empty((frames, side, side, 3))
    for t in range(frames):
        f = t / max(frames - 1, 1)
        image = (base + gradient) * (1 + drift * f)
        for (cx, cy), radius, colour, (vx, vy) in blobs:
            mask = np.exp(-((xx - cx - vx * f) ** 2 + (yy - cy - vy * f) ** 2) / (2 * radius**2))[..., None]
            image = image * (1 - mask) + colour * mask
        out[t] = image + rng.normal(0, noise, image.shape)
    return np.clip(out, 0, 1)


def to_uint8(clip: np.ndarray) -> np.ndarray:
    return (np.clip(clip, 0, 1) * 255 + 0.5).astype(np.uint8)


def adjusted(clip: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    """``clip`` with its saturation and brightness moved by random factors of typical size ``scale``."""
    grey = (clip @ LUMA)[..., None]
    clip = grey + np.exp(rng.normal(0, scale)) * (clip - grey)
    return to_uint8(clip * np.exp(rng.normal(0, scale)) + rng.normal(0, scale / 3))


def candidate_set(rng: np.random.Generator, count: int = 4, side: int = 64, frames: int = 9) -> list[np.ndarray]:
    """``count`` uint8 clips that differ in brightness and saturation by steps from tiny to large: half the
    time variants of one scene (only the properties differ), otherwise different scenes."""
    scale = float(np.exp(rng.uniform(np.log(0.01), np.log(0.5))))
    if rng.random() < 0.5:
        shared = scene(rng, side, frames)
        return [adjusted(shared, rng, scale) for _ in range(count)]
    return [adjusted(scene(rng, side, frames), rng, scale) for _ in range(count)]
