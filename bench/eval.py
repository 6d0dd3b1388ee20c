"""Evaluation cost: seconds per evaluated video for each metric, on the tiny models.

Synthetic videos (a texture panning one pixel per frame) of each task's shape go through
``mora.evaluation.metrics.Scorer``, the code ``mora eval`` runs; models load before timing starts (the
first video of each task is a warm-up). Model-backed numbers on tiny random weights measure the
plumbing (pre-processing, one forward pass, pooling), not what a real DINOv2 or Qwen2-VL costs; the
weight-free metrics cost what they will cost at this frame size. Last line: ``total_s_per_video=X``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def video(frames: int, size: int) -> np.ndarray:
    import cv2

    texture = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 255, (size * 2, size * 2, 3), dtype=np.uint8),
                               (5, 5), 1.5)
    return np.stack([texture[size // 2:size // 2 + size, t:t + size] for t in range(frames)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default=str(REPO / "configs" / "tiny.yaml"))
    parser.add_argument("--videos", type=int, default=4, help="timed videos per task (after one warm-up)")
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()

    import os

    os.chdir(REPO)  # the preset's model folders are relative to the repository
    from PIL import Image
    from rich.console import Console
    from rich.table import Table

    from mora.config import EVAL_TASKS, load_config
    from mora.evaluation.metrics import Sample, Scorer

    cfg = load_config(args.config)
    clip = video(args.frames, args.size)
    extra = {"image-to-video": {"image": Image.fromarray(clip[0])},
             "extend": {"source": clip[: args.frames // 2], "parts": {"extension": clip[args.frames // 2:]}},
             "connect": {"parts": {"first": clip[:6], "transition": clip[6:-6], "second": clip[-6:]}}}
    warm = Scorer(cfg.eval, cfg.runtime)
    timed = Scorer(cfg.eval, cfg.runtime)
    for task in EVAL_TASKS:
        sample = Sample(task, clip, 8.0, "a heron lifts off from a pond", **extra.get(task, {}))
        warm.score(sample)  # loads every model this task needs
        for _ in range(args.videos):
            timed.score(sample)

    table = Table(title=f"seconds per evaluated video ({args.frames} frames of {args.size}x{args.size}, "
                        f"eval.frames={cfg.eval.frames} for the per-frame model metrics; tiny models, CPU)")
    for col in ("metric", "ours", "median s", "max s", "videos"):
        table.add_column(col, justify="left" if col in ("metric", "ours") else "right")
    total = 0.0
    for name, seconds in timed.seconds.items():
        median = statistics.median(seconds)
        total += median
        table.add_row(name, timed.chosen[name].label[:60], f"{median:.4f}", f"{max(seconds):.4f}", str(len(seconds)))
    Console(width=140).print(table)
    print(f"total_s_per_video={total:.3f}")


if __name__ == "__main__":
    main()
