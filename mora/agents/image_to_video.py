"""The image-to-video agent: animates first frames into candidate clips."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from mora.agents.loading import check_steps, load_tuned_pipeline, pipe_as
from mora.agents.modulation import Modulation, ltx_conditioning
from mora.agents.text_to_image import generators
from mora.config import ModelRef, RuntimeConfig
from mora.media import to_uint8

# Pipelines that take no text: they animate from the image alone.
IMAGE_ONLY = {"StableVideoDiffusionPipeline"}
# Pipelines that take one image per call (they repeat its embedding over the batch).
ONE_IMAGE = {"WanImageToVideoPipeline"}
# Text-to-video checkpoints whose weights also serve image-to-video (Lightricks/LTX-Video ships as LTXPipeline).
IMAGE_TO_VIDEO_FORMS = {"LTXPipeline": "LTXImageToVideoPipeline"}


def image_to_video_form(pipe):
    """The pipeline in its image-to-video form; diffusers' ``from_pipe`` shares the weights."""
    target = IMAGE_TO_VIDEO_FORMS.get(type(pipe).__name__)
    if target is None:
        return pipe
    import diffusers

    return pipe_as(getattr(diffusers, target), pipe)


class ImageToVideoAgent:
    """Any diffusers image-to-video pipeline (LTX-Video, Wan, Stable Video Diffusion)."""

    def __init__(self, pipe, ref: ModelRef, modulation: Modulation | None = None, checkpoint: str | None = None):
        self.pipe, self.ref, self.modulation, self.checkpoint = pipe, ref, modulation, checkpoint
        self.family = type(pipe).__name__

    @classmethod
    def from_pretrained(cls, ref: ModelRef, runtime: RuntimeConfig, checkpoint: str | None = None
                        ) -> ImageToVideoAgent:
        """``checkpoint``: a self-modulated fine-tuning checkpoint to apply over the base model."""
        pipe, modulation = load_tuned_pipeline(ref, runtime, checkpoint, "image_to_video", image_to_video_form)
        return cls(pipe, ref, modulation, checkpoint)

    def animate(self, images: list[Image.Image], prompt: str, seeds: list[int], num_frames: int, height: int,
                width: int, steps: int, guidance: float, fps: float) -> np.ndarray:
        """``[B, T, H, W, 3]`` uint8 frames, one clip per image, in one batched call."""
        check_steps(self.pipe, steps, "generation.video_steps")
        kwargs = dict(image=images, height=height, width=width, num_frames=num_frames, num_inference_steps=steps,
                      generator=generators(seeds), output_type="np")
        if self.family in IMAGE_ONLY:
            kwargs.update(max_guidance_scale=max(guidance, 1.0), fps=round(fps), motion_bucket_id=180,
                          noise_aug_strength=0.1, decode_chunk_size=8)
        else:
            kwargs.update(prompt=[prompt] * len(images), guidance_scale=guidance)
        if self.family.startswith("LTX"):
            kwargs["frame_rate"] = fps
        if self.modulation is not None:  # the prompt embedding with the agent's modulation tokens after it
            with torch.no_grad():
                kwargs |= ltx_conditioning(self.pipe, [prompt] * len(images), self.modulation, guidance > 1)
            del kwargs["prompt"]
        if self.family in ONE_IMAGE:  # one call per candidate, each with its own generator
            clips = [np.asarray(self.pipe(**kwargs | {"image": img, "prompt": prompt, "generator": gen}).frames)[0]
                     for img, gen in zip(images, kwargs["generator"], strict=True)]
            return to_uint8(np.stack(clips))
        frames = np.asarray(self.pipe(**kwargs).frames)
        return to_uint8(frames)
