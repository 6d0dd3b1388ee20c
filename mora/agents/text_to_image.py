"""The text-to-image agent: the first frame of every candidate."""

from __future__ import annotations

import torch
from PIL import Image

from mora.agents.loading import load_tuned_pipeline
from mora.agents.modulation import Modulation, sd3_conditioning
from mora.config import ModelRef, RuntimeConfig


def generators(seeds: list[int], device: str = "cpu") -> list[torch.Generator]:
    """One generator per candidate, so a batched call keeps each candidate's own seed."""
    return [torch.Generator(device=device).manual_seed(s) for s in seeds]


class TextToImageAgent:
    """Any diffusers text-to-image pipeline (SD3, SD3.5, SDXL, FLUX) behind ``first_frame``."""

    def __init__(self, pipe, ref: ModelRef, modulation: Modulation | None = None):
        self.pipe, self.ref, self.modulation = pipe, ref, modulation

    @classmethod
    def from_pretrained(cls, ref: ModelRef, runtime: RuntimeConfig, checkpoint: str | None = None) -> TextToImageAgent:
        """``checkpoint``: a self-modulated fine-tuning checkpoint to apply over the base model."""
        pipe, modulation = load_tuned_pipeline(ref, runtime, checkpoint, "text_to_image")
        return cls(pipe, ref, modulation)

    def first_frame(self, prompt: str, seeds: list[int], height: int, width: int, steps: int,
                    guidance: float) -> list[Image.Image]:
        """One image per seed, in one batched call."""
        text = {"prompt": prompt, "num_images_per_prompt": len(seeds)}
        if self.modulation is not None:  # the prompt embedding with the agent's modulation tokens after it
            with torch.no_grad():
                text = sd3_conditioning(self.pipe, [prompt] * len(seeds), self.modulation, guidance > 1)
        return self.pipe(**text, height=height, width=width, num_inference_steps=steps, guidance_scale=guidance,
                         generator=generators(seeds)).images
