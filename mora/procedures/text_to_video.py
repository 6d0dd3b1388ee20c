"""Procedure 1, text-to-video: enhanced prompt -> first frame -> animation, for every candidate at once."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from mora.agents.image_to_video import ImageToVideoAgent
from mora.agents.text_to_image import TextToImageAgent
from mora.config import GenerationConfig

PROCEDURE = "text-to-video"


@dataclass
class Candidate:
    index: int
    seed: int
    frames: np.ndarray  # [T, H, W, 3] uint8
    seconds: float


def text_to_video(t2i: TextToImageAgent, i2v: ImageToVideoAgent, prompt: str, seeds: list[int],
                  gen: GenerationConfig) -> list[Candidate]:
    """One candidate per seed; both stages run batched over the candidates (animation in calls of at most
    ``gen.video_batch``)."""
    start = time.perf_counter()
    images = t2i.first_frame(prompt, seeds, height=gen.height, width=gen.width, steps=gen.image_steps,
                             guidance=gen.image_guidance)
    size = gen.video_batch or len(seeds)
    clips = np.concatenate([
        i2v.animate(images[i:i + size], prompt, seeds[i:i + size], num_frames=gen.num_frames, height=gen.height,
                    width=gen.width, steps=gen.video_steps, guidance=gen.video_guidance, fps=gen.fps)
        for i in range(0, len(seeds), size)])
    per = (time.perf_counter() - start) / len(seeds)
    return [Candidate(index=i, seed=s, frames=clips[i], seconds=per) for i, s in enumerate(seeds)]
