"""The image-to-image agent: edits a frame by instruction (video editing, digital-world style, and
the "adjust" answer of an interactive run)."""

from __future__ import annotations

from PIL import Image

from mora.agents.loading import load_pipeline_as, pipe_as
from mora.agents.text_to_image import generators
from mora.config import ModelRef, RuntimeConfig

INSTRUCTION_FAMILIES = {"StableDiffusionInstructPix2PixPipeline"}


class ImageToImageAgent:
    """InstructPix2Pix, or any text-to-image family in its img2img form (SD3, SD3.5, SDXL)."""

    def __init__(self, pipe, ref: ModelRef):
        self.pipe, self.ref = pipe, ref
        self.family = type(pipe).__name__

    @classmethod
    def from_pretrained(cls, ref: ModelRef, runtime: RuntimeConfig) -> ImageToImageAgent:
        def img2img(pipe):
            if type(pipe).__name__ in INSTRUCTION_FAMILIES or "Img2Img" in type(pipe).__name__:
                return pipe
            from diffusers import AutoPipelineForImage2Image

            return pipe_as(AutoPipelineForImage2Image, pipe)

        return cls(load_pipeline_as("image-to-image", ref, runtime, img2img), ref)

    def edit(self, images: list[Image.Image], instruction: str, seeds: list[int], steps: int, guidance: float,
             strength: float) -> list[Image.Image]:
        """One edited image per input image, in one batched call, each with its own seed."""
        kwargs = dict(prompt=[instruction] * len(images), image=images, num_inference_steps=steps,
                      guidance_scale=guidance, generator=generators(seeds))
        if self.family in INSTRUCTION_FAMILIES:
            kwargs["image_guidance_scale"] = 1.0 + 1.5 * strength  # closer to the input as strength falls
        else:
            kwargs["strength"] = strength
        out = self.pipe(**kwargs).images
        return [img.resize(src.size) if img.size != src.size else img for img, src in zip(out, images, strict=True)]
