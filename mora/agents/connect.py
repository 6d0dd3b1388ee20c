"""The connect agent: frames between given frames, or a continuation of a clip.

LTX-Video's condition pipeline takes images or whole clips at chosen frame positions, so one model
both bridges two videos (first frame of the gap = last of the first video, last = first of the
second) and extends a video from several of its last frames instead of one, which keeps long videos
from drifting. Wan's first+last-frame models bridge two videos too, but take no clip.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mora.agents.image_to_video import image_to_video_form
from mora.agents.loading import check_steps, load_pipeline_as, load_tuned_pipeline, once, pipe_as
from mora.agents.modulation import Modulation, ltx_conditioning
from mora.agents.text_to_image import generators
from mora.config import ConfigError, ModelRef, RuntimeConfig
from mora.media import to_uint8

FIRST_LAST = {"WanImageToVideoPipeline"}  # bridge with image + last_image


def _conditioned(pipe):
    """The pipeline in its connect form. LTXConditionPipeline sets its own timesteps (a linear-quadratic
    schedule) and passes no ``mu``, so a scheduler that shifts dynamically (the published Lightricks/LTX-Video,
    0.9.0 and 0.9.1) stops it with a ValueError before the first step: the form gets its own scheduler that does
    not (the image-to-video form, which computes ``mu``, keeps the published one)."""
    from diffusers import LTXConditionPipeline

    if type(pipe).__name__ in FIRST_LAST:
        return pipe
    form = pipe if isinstance(pipe, LTXConditionPipeline) else pipe_as(LTXConditionPipeline, pipe)
    if form.scheduler.config.get("use_dynamic_shifting"):
        form.scheduler = type(form.scheduler).from_config(form.scheduler.config, use_dynamic_shifting=False)
    return form


def tunes_connect(checkpoint: str | None, ref: ModelRef) -> bool:
    """Whether a checkpoint's image-to-video weights were trained from this connect model."""
    if checkpoint is None:
        return False
    from mora.training.checkpoint import read_lineage, same_model

    return same_model(read_lineage(checkpoint)["base_models"]["image_to_video"], ref)


class ConnectAgent:
    def __init__(self, pipe, ref: ModelRef, modulation: Modulation | None = None, checkpoint: str | None = None):
        self.pipe, self.ref, self.modulation, self.checkpoint = pipe, ref, modulation, checkpoint
        self.family = type(pipe).__name__

    @classmethod
    def from_pretrained(cls, ref: ModelRef, runtime: RuntimeConfig, checkpoint: str | None = None) -> ConnectAgent:
        """``checkpoint``: its image-to-video weights and modulation are used where this is the model they
        were trained from (one LTX-Video model both animates and connects); otherwise the base model."""
        if not tunes_connect(checkpoint, ref):
            return cls(load_pipeline_as("connect", ref, runtime, _conditioned), ref)
        tuned, modulation = load_tuned_pipeline(ref, runtime, checkpoint, "image_to_video", image_to_video_form)
        key = ("connect-tuned", ref.id, ref.revision, runtime.device, runtime.dtype, runtime.cpu_offload,
               str(Path(checkpoint).resolve()))
        pipe = once(key, lambda: _conditioned(tuned))  # from_pipe: shares the tuned weights
        pipe.set_progress_bar_config(disable=True)
        return cls(pipe, ref, modulation, checkpoint)

    def _run(self, conditions: list, prompt: str, seed: int, num_frames: int, height: int, width: int,
             steps: int, guidance: float, fps: float) -> np.ndarray:
        check_steps(self.pipe, steps, "generation.video_steps")
        text = {"prompt": prompt}
        if self.modulation is not None:  # the prompt embedding with the agent's modulation tokens after it
            with torch.no_grad():
                text = ltx_conditioning(self.pipe, [prompt], self.modulation, guidance > 1)
        out = self.pipe(conditions=conditions, **text, height=height, width=width, num_frames=num_frames,
                        num_inference_steps=steps, guidance_scale=guidance, frame_rate=fps,
                        generator=generators([seed])[0], output_type="np").frames
        return to_uint8(np.asarray(out)[0])

    def between(self, first: Image.Image, last: Image.Image, prompt: str, seed: int, num_frames: int, height: int,
                width: int, steps: int, guidance: float, fps: float) -> np.ndarray:
        """``num_frames`` frames starting at ``first`` and ending at ``last``."""
        from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

        if self.family in FIRST_LAST:
            check_steps(self.pipe, steps, "generation.video_steps")
            out = self.pipe(image=first, last_image=last, prompt=prompt, height=height, width=width,
                            num_frames=num_frames, num_inference_steps=steps, guidance_scale=guidance,
                            generator=generators([seed])[0], output_type="np").frames
            return to_uint8(np.asarray(out)[0])

        conditions = [LTXVideoCondition(image=first, frame_index=0),
                      LTXVideoCondition(image=last, frame_index=num_frames - 1)]
        return self._run(conditions, prompt, seed, num_frames, height, width, steps, guidance, fps)

    def continue_clip(self, context: list[Image.Image], prompt: str, seed: int, num_frames: int, height: int,
                      width: int, steps: int, guidance: float, fps: float) -> np.ndarray:
        """``num_frames`` frames whose first ``len(context)`` continue the given clip."""
        from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

        if self.family in FIRST_LAST:
            raise ConfigError(f"config field 'generation.connect': {self.family} cannot condition on a clip; "
                              "use chaining last-frame, or an LTX-Video model for clip chaining")

        return self._run([LTXVideoCondition(video=context, frame_index=0)], prompt, seed, num_frames, height, width,
                         steps, guidance, fps)
