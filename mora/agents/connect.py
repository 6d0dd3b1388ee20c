"""The connect agent: frames between given frames, or a continuation of a clip.

LTX-Video's condition pipeline takes images or whole clips at chosen frame positions, so one model
both bridges two videos (first frame of the gap = last of the first video, last = first of the
second) and extends a video from several of its last frames instead of one, which keeps long videos
from drifting. Wan's first+last-frame models bridge two videos too, but take no clip.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from mora.agents.loading import load_pipeline_as
from mora.agents.text_to_image import generators
from mora.config import ConfigError, ModelRef, RuntimeConfig
from mora.media import to_uint8

FIRST_LAST = {"WanImageToVideoPipeline"}  # bridge with image + last_image


class ConnectAgent:
    def __init__(self, pipe, ref: ModelRef):
        self.pipe, self.ref = pipe, ref
        self.family = type(pipe).__name__

    @classmethod
    def from_pretrained(cls, ref: ModelRef, runtime: RuntimeConfig) -> ConnectAgent:
        def conditioned(pipe):
            from diffusers import LTXConditionPipeline

            if type(pipe).__name__ in FIRST_LAST or isinstance(pipe, LTXConditionPipeline):
                return pipe
            return LTXConditionPipeline.from_pipe(pipe)

        return cls(load_pipeline_as("connect", ref, runtime, conditioned), ref)

    def _run(self, conditions: list, prompt: str, seed: int, num_frames: int, height: int, width: int,
             steps: int, guidance: float, fps: float) -> np.ndarray:
        out = self.pipe(conditions=conditions, prompt=prompt, height=height, width=width, num_frames=num_frames,
                        num_inference_steps=steps, guidance_scale=guidance, frame_rate=fps,
                        generator=generators([seed])[0], output_type="np").frames
        return to_uint8(np.asarray(out)[0])

    def between(self, first: Image.Image, last: Image.Image, prompt: str, seed: int, num_frames: int, height: int,
                width: int, steps: int, guidance: float, fps: float) -> np.ndarray:
        """``num_frames`` frames starting at ``first`` and ending at ``last``."""
        from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

        if self.family in FIRST_LAST:
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
