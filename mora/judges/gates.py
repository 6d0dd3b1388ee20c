"""Weight-free quality gates, run before judging: a candidate that fails a hard gate cannot win.

Each gate is a pure function of the frames that returns pass, or fail with its reason (datatrove's
filter shape). The metrics are stored per candidate in the shard whatever the outcome.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from mora.config import GateConfig


@dataclass
class GateMetrics:
    motion: float  # mean optical-flow magnitude, pixels per frame
    flicker: float  # mean absolute jump of frame brightness between frames, 0..255
    dark_fraction: float  # share of frames that are nearly black
    bright_fraction: float  # share of frames that are nearly white
    sharpness: float  # mean variance of the Laplacian

    def to_row(self) -> dict:
        return asdict(self)


def measure(frames: np.ndarray) -> GateMetrics:
    """Metrics of ``[T, H, W, 3]`` uint8 frames."""
    gray = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])
    means = gray.reshape(len(gray), -1).mean(axis=1)
    pairs = zip(gray[:-1], gray[1:], strict=True)
    flows = [cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 2, 9, 3, 5, 1.1, 0) for a, b in pairs]
    motion = float(np.mean([np.linalg.norm(f, axis=-1).mean() for f in flows])) if flows else 0.0
    return GateMetrics(
        motion=round(motion, 4),
        flicker=round(float(np.abs(np.diff(means)).mean()) if len(means) > 1 else 0.0, 4),
        dark_fraction=round(float((means < 16).mean()), 4),
        bright_fraction=round(float((means > 239).mean()), 4),
        sharpness=round(float(np.mean([cv2.Laplacian(g, cv2.CV_64F).var() for g in gray])), 4),
    )


def check(metrics: GateMetrics, gates: GateConfig) -> list[str]:
    """The hard gates a candidate fails, as reasons; empty means it passed."""
    failures = []
    if metrics.motion < gates.min_motion:
        failures.append(f"static: motion {metrics.motion:.3f} < {gates.min_motion}")
    if metrics.flicker > gates.max_flicker:
        failures.append(f"flicker: {metrics.flicker:.1f} > {gates.max_flicker}")
    if metrics.dark_fraction > gates.max_dark_fraction:
        failures.append(f"black frames: {metrics.dark_fraction:.0%} > {gates.max_dark_fraction:.0%}")
    if metrics.bright_fraction > gates.max_bright_fraction:
        failures.append(f"blown-out frames: {metrics.bright_fraction:.0%} > {gates.max_bright_fraction:.0%}")
    if metrics.sharpness < gates.min_sharpness:
        failures.append(f"blur: sharpness {metrics.sharpness:.1f} < {gates.min_sharpness}")
    return failures
