"""The text-to-image agent: the first frame of every candidate."""

from __future__ import annotations

import torch
from PIL import Image

from mora.agents.loading import load_tuned_pipeline, pipe_as
from mora.agents.modulation import Modulation, sd3_conditioning
from mora.config import ModelRef, RuntimeConfig


def generators(seeds: list[int], device: str = "cpu") -> list[torch.Generator]:
    """One generator per candidate, so a batched call keeps each candidate's own seed."""
    return [torch.Generator(device=device).manual_seed(s) for s in seeds]


class TextToImageAgent:
    """Any diffusers text-to-image pipeline (SD3, SD3.5, SDXL, FLUX) behind ``first_frame``."""

    def __init__(self, pipe, ref: ModelRef, modulation: Modulation | None = None, checkpoint: str | None = None):
        self.pipe, self.ref, self.modulation, self.checkpoint = pipe, ref, modulation, checkpoint
        self._img2img = None

    @classmethod
    def from_pretrained(cls, ref: ModelRef, runtime: RuntimeConfig, checkpoint: str | None = None) -> TextToImageAgent:
        """``checkpoint``: a self-modulated fine-tuning checkpoint to apply over the base model."""
        pipe, modulation = load_tuned_pipeline(ref, runtime, checkpoint, "text_to_image")
        return cls(pipe, ref, modulation, checkpoint)

    def _text(self, prompt: str, count: int, guidance: float) -> dict:
        if self.modulation is None:
            return {"prompt": prompt, "num_images_per_prompt": count}
        with torch.no_grad():  # the prompt embedding with the agent's modulation tokens after it
            return sd3_conditioning(self.pipe, [prompt] * count, self.modulation, guidance > 1)

    def first_frame(self, prompt: str, seeds: list[int], height: int, width: int, steps: int,
                    guidance: float) -> list[Image.Image]:
        """One image per seed, in one batched call."""
        return self.pipe(**self._text(prompt, len(seeds), guidance), height=height, width=width,
                         num_inference_steps=steps, guidance_scale=guidance, generator=generators(seeds)).images

    def first_frame_from(self, images: list[Image.Image], prompt: str, seeds: list[int], steps: int,
                         guidance: float, strength: float) -> list[Image.Image]:
        """One frame per (image, seed) from the user's image and text: the same weights (and modulation)
        in their img2img form, ``strength`` saying how far the frame may move from the image."""
        if self._img2img is None:
            from diffusers import AutoPipelineForImage2Image

            self._img2img = pipe_as(AutoPipelineForImage2Image, self.pipe)
            self._img2img.set_progress_bar_config(disable=True)
        text = self._text(prompt, len(images), guidance) if self.modulation else {"prompt": [prompt] * len(images)}
        out = self._img2img(**text, image=images, strength=strength, num_inference_steps=steps,
                            guidance_scale=guidance, generator=generators(seeds)).images
        return [img.resize(src.size) if img.size != src.size else img for img, src in zip(out, images, strict=True)]
