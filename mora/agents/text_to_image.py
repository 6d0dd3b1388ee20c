"""The text-to-image agent: the first frame of every candidate."""

from __future__ import annotations

import torch
from PIL import Image

from mora.agents.loading import load_diffusion_pipeline
from mora.config import ModelRef, RuntimeConfig


def generators(seeds: list[int], device: str = "cpu") -> list[torch.Generator]:
    """One generator per candidate, so a batched call keeps each candidate's own seed."""
    return [torch.Generator(device=device).manual_seed(s) for s in seeds]


class TextToImageAgent:
    """Any diffusers text-to-image pipeline (SD3, SD3.5, SDXL, FLUX) behind ``first_frame``."""

    def __init__(self, pipe, ref: ModelRef):
        self.pipe, self.ref = pipe, ref

    @classmethod
    def from_pretrained(cls, ref: ModelRef, runtime: RuntimeConfig) -> TextToImageAgent:
        return cls(load_diffusion_pipeline(ref, runtime), ref)

    def first_frame(self, prompt: str, seeds: list[int], height: int, width: int, steps: int,
                    guidance: float) -> list[Image.Image]:
        """One image per seed, in one batched call."""
        return self.pipe(prompt=prompt, num_images_per_prompt=len(seeds), height=height, width=width,
                         num_inference_steps=steps, guidance_scale=guidance,
                         generator=generators(seeds)).images
