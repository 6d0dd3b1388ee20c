"""What every procedure shares: the agents (loaded on first use, once per process), the record of
what was used, the human-in-the-loop stages, and writing the mp4 with its JSON sidecar."""

from __future__ import annotations

import hashlib
import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image

from mora.atomic import write_atomic, write_json_atomic
from mora.config import ConfigError, ModelRef, RoundConfig
from mora.media import encode_mp4

MAX_TRIES = 3  # per interactive stage; the third result is kept
# (stage, file showing it) -> ("accept" | "regenerate" | "adjust", instruction for adjust)
Approver = Callable[[str, Path], tuple[str, str | None]]


@dataclass
class Made:
    frames: np.ndarray  # [T, H, W, 3] uint8
    fps: float
    record: dict = field(default_factory=dict)


class Toolbox:
    """The preset's agents for procedures; a missing one is a config error naming its field."""

    def __init__(self, config: RoundConfig):
        self.config, self.gen, self.runtime = config, config.generation, config.runtime
        self.models: dict[str, ModelRef] = {}
        self.timings: dict[str, float] = {}
        self._agents: dict[str, object] = {}

    def begin(self) -> None:
        """A new procedure: its record lists only the models and time it used."""
        self.models, self.timings = {}, {}

    def _ref(self, role: str, ref: ModelRef | None) -> ModelRef:
        if ref is None:
            raise ConfigError(f"config field 'generation.{role}' is not set; this procedure needs it "
                              f"(see configs/tiny.yaml for an example)")
        self.models[role] = ref
        return ref

    def _agent(self, role: str, cls_path: str, ref: ModelRef | None, **tuned):
        ref = self._ref(role, ref)
        if role not in self._agents:
            module, name = cls_path.rsplit(".", 1)
            cls = getattr(importlib.import_module(module), name)
            self._agents[role] = cls.from_pretrained(ref, self.runtime, **tuned)
        return self._agents[role]

    @property
    def text_to_image(self):
        return self._agent("text_to_image", "mora.agents.text_to_image.TextToImageAgent", self.gen.text_to_image,
                           checkpoint=self.gen.checkpoint)

    @property
    def image_to_video(self):
        return self._agent("image_to_video", "mora.agents.image_to_video.ImageToVideoAgent", self.gen.image_to_video,
                           checkpoint=self.gen.checkpoint)

    @property
    def image_to_image(self):
        return self._agent("image_to_image", "mora.agents.image_to_image.ImageToImageAgent", self.gen.image_to_image)

    @property
    def connect(self):
        """With a checkpoint, the connect agent carries the tuned image-to-video weights and modulation
        wherever it is the model they were trained from (LTX-Video for both, as in configs/tiny.yaml)."""
        return self._agent("connect", "mora.agents.connect.ConnectAgent", self.gen.connect,
                           checkpoint=self.gen.checkpoint)

    def tuned(self) -> list[str]:
        """The agents this procedure used that carry the checkpoint's weights."""
        return [role for role, agent in self._agents.items()
                if role in self.models and getattr(agent, "checkpoint", None)]

    def enhance(self, prompt: str, seed: int) -> str:
        """The prompt agent's richer version when the preset enables it, else the prompt itself."""
        p = self.config.prompts
        if not (p.enhance and p.model):
            return prompt
        from mora.agents.prompt import load_prompt_agent

        self._ref("prompt", p.model)
        return load_prompt_agent(p, self.runtime).enhance([prompt], seed)[0] or prompt

    def timed(self, stage: str, fn: Callable, *args, **kwargs):
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        self.timings[stage] = round(self.timings.get(stage, 0.0) + time.perf_counter() - start, 4)
        return out

    # the calls procedures make, with the preset's sizes and steps
    def first_frame(self, prompt: str, seed: int) -> Image.Image:
        g = self.gen
        return self.timed("text_to_image", self.text_to_image.first_frame, prompt, [seed], g.height, g.width,
                          g.image_steps, g.image_guidance)[0]

    def first_frame_from(self, image: Image.Image, prompt: str, seed: int) -> Image.Image:
        """The text-to-image agent's frame from the user's image and text (its img2img form)."""
        g = self.gen
        return self.timed("text_to_image", self.text_to_image.first_frame_from, [image], prompt, [seed],
                          g.image_steps, g.image_guidance, self.config.procedures.image_strength)[0]

    def edit(self, image: Image.Image, instruction: str, seed: int) -> Image.Image:
        g = self.gen
        return self.timed("image_to_image", self.image_to_image.edit, [image], instruction, [seed], g.image_steps,
                          g.image_guidance, g.edit_strength)[0]

    def animate(self, image: Image.Image, prompt: str, seed: int) -> np.ndarray:
        g = self.gen
        return self.timed("image_to_video", self.image_to_video.animate, [image], prompt, [seed], g.num_frames,
                          g.height, g.width, g.video_steps, g.video_guidance, g.fps)[0]

    def record(self, procedure: str, **fields) -> dict:
        g = self.gen
        return {"procedure": procedure, "created_at": datetime.now(UTC).isoformat(),
                "models": {role: {"id": ref.id, "revision": ref.revision} for role, ref in self.models.items()},
                "checkpoint": g.checkpoint if self.tuned() else None, "tuned_agents": self.tuned(),
                "size": {"height": g.height, "width": g.width, "num_frames_per_segment": g.num_frames, "fps": g.fps},
                "steps": {"image": g.image_steps, "video": g.video_steps},
                "guidance": {"image": g.image_guidance, "video": g.video_guidance}, "edit_strength": g.edit_strength,
                "runtime": {"device": self.runtime.device, "dtype": self.runtime.dtype},
                "timings_s": dict(self.timings), **fields}


def staged(stage: str, make: Callable[[int, str | None], object], seed: int, approver: Approver | None,
           show: Callable[[object, Path], None], workdir: Path, log: list[dict]):
    """One stage, shown to a person when there is one: accept, regenerate (next seed) or adjust."""
    result, instruction = make(seed, None), None
    for attempt in range(1, MAX_TRIES + 1):
        if approver is None:
            break
        path = workdir / f"{stage}-try{attempt}{'.png' if isinstance(result, Image.Image) else '.mp4'}"
        show(result, path)
        action, instruction = approver(stage, path)
        log.append({"stage": stage, "try": attempt, "seed": seed, "action": action, "instruction": instruction})
        if action == "accept" or attempt == MAX_TRIES:
            break
        if action == "regenerate":
            seed += 1
        result = make(seed, instruction if action == "adjust" else None)
    return result, seed


def show_image(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def show_video(fps: float) -> Callable[[np.ndarray, Path], None]:
    def show(clip: np.ndarray, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode_mp4(clip, fps))

    return show


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def write_made(made: Made, out: Path) -> tuple[Path, Path]:
    """The mp4 and ``<name>.json`` beside it, each written atomically."""
    out = Path(out)
    if out.suffix.lower() != ".mp4":
        raise ConfigError(f"output '{out}' must end in .mp4")
    data = encode_mp4(made.frames, made.fps)
    video = write_atomic(out, lambda tmp: Path(tmp).write_bytes(data))
    frames, height, width = (int(v) for v in made.frames.shape[:3])
    sidecar = out.with_suffix(".json")
    write_json_atomic(sidecar, made.record | {"output": {"path": str(out), "frames": frames, "height": height,
                                                          "width": width, "fps": made.fps,
                                                          "sha256": hashlib.sha256(data).hexdigest()}})
    return video, sidecar
