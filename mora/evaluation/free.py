"""Weight-free metrics: pure functions of ``[T, H, W, 3]`` uint8 frames.

Motion smoothness and dynamic degree follow VBench's formulas with a weight-free estimator where
VBench runs a network (AMT interpolation; RAFT flow where torchvision is missing): OpenCV Farneback
optical flow. Imaging quality is a weight-free stand-in for MUSIQ where pyiqa does not import.
"""

from __future__ import annotations

import cv2
import numpy as np


def _gray(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dense optical flow from frame ``a`` to frame ``b`` ([H, W, 2] pixels): ``a(x) ~ b(x + flow(x))``."""
    return cv2.calcOpticalFlowFarneback(_gray(a), _gray(b), None, 0.5, 3, 9, 3, 5, 1.1, 0)


def _warp(frame: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """``frame`` sampled at ``x + offset(x)``, edges replicated."""
    h, w = offset.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(frame, xs + offset[..., 0], ys + offset[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def interpolate(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The frame halfway between ``a`` and ``b``, by warping both half-way along the flow between them."""
    f = flow(a, b)
    mid = 0.5 * _warp(a, -0.5 * f).astype(np.float32) + 0.5 * _warp(b, 0.5 * f).astype(np.float32)
    return np.clip(mid + 0.5, 0, 255).astype(np.uint8)


def motion_smoothness(frames: np.ndarray) -> float:
    """VBench's score, (255 - mean |interpolated - real|) / 255: every odd frame is dropped, re-made
    from its neighbours and compared with the real one. Motion a smooth interpolation predicts scores
    near 1; jitter scores lower."""
    if len(frames) < 3:
        return 1.0
    diffs = [np.abs(interpolate(frames[i - 1], frames[i + 1]).astype(np.float32) - frames[i]).mean()
             for i in range(1, len(frames) - 1, 2)]
    return float((255.0 - np.mean(diffs)) / 255.0)


def sample_at(frames: np.ndarray, fps: float, target_fps: float = 8.0) -> np.ndarray:
    """Every ``round(fps / target_fps)``-th frame, as VBench reads videos for dynamic degree."""
    return frames[::max(1, round(fps / target_fps))]


def flow_peaks(frames: np.ndarray, estimate=flow) -> list[float]:
    """Per consecutive pair: the mean of the largest 5% flow magnitudes (VBench's per-pair motion);
    ``estimate(a, b)`` gives the flow (Farneback here, RAFT where it runs)."""
    out = []
    for a, b in zip(frames[:-1], frames[1:], strict=True):
        rad = np.linalg.norm(estimate(a, b), axis=-1).ravel()
        top = max(1, int(rad.size * 0.05))
        out.append(float(np.sort(rad)[-top:].mean()))
    return out


def is_dynamic(frames: np.ndarray, fps: float, estimate=flow) -> bool:
    """VBench's dynamic degree for one video: moving when at least round(4 * T / 16) frame pairs have
    peak flow above max(1, 8 / fps) * 6 * min(H, W) / 256 pixels (T, the frames read at about 8 fps)."""
    frames = sample_at(frames, fps)
    threshold = max(1.0, 8.0 / fps) * 6.0 * min(frames.shape[1:3]) / 256.0
    needed = max(1, round(4 * len(frames) / 16.0))
    return sum(peak > threshold for peak in flow_peaks(frames, estimate)) >= needed


def noise_sigma(gray: np.ndarray, flat: np.ndarray | None = None) -> float:
    """Immerkaer's fast estimate of additive Gaussian noise (grey levels), over ``flat`` pixels when given
    (edges answer the same filter, so they are left out)."""
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float64)
    response = np.abs(cv2.filter2D(gray.astype(np.float64), -1, kernel))[1:-1, 1:-1]
    if flat is not None and flat[1:-1, 1:-1].sum() >= 16:
        response = response[flat[1:-1, 1:-1]]
    return float(np.sqrt(np.pi / 2) * response.mean() / 6)


def imaging_quality(frames: np.ndarray) -> float:
    """Weight-free proxy for MUSIQ in [0, 1]: gradient energy of the denoised frame (blur lowers it),
    times a penalty for the noise measured in its flat parts, averaged over frames."""
    scores = []
    for frame in frames:
        gray = _gray(frame)
        smooth = cv2.medianBlur(gray, 3).astype(np.float64)
        grad = np.hypot(cv2.Sobel(smooth, cv2.CV_64F, 1, 0), cv2.Sobel(smooth, cv2.CV_64F, 0, 1))
        energy = float(np.sqrt((grad ** 2).mean()))
        sigma = noise_sigma(gray, grad < 24)
        scores.append(energy / (energy + 60.0) / (1.0 + sigma / 8.0))
    return float(np.mean(scores))


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    x, y = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    x, y = x - x.mean(), y - y.mean()
    denom = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / denom) if denom > 0 else 1.0 if np.array_equal(a, b) else 0.0


def transition_coherence(before: np.ndarray, transition: np.ndarray, after: np.ndarray) -> float:
    """The paper's temporal coherence for connected videos: the mean Pearson correlation of the
    transition with the clip before it (its last frame against the transition's first) and the clip
    after it (the transition's last frame against its first)."""
    if len(transition) == 0:
        return _corr(before[-1], after[0])
    return (_corr(before[-1], transition[0]) + _corr(transition[-1], after[0])) / 2


def video_length(frames: np.ndarray, fps: float) -> float:
    """Seconds."""
    return len(frames) / fps if fps > 0 else 0.0
