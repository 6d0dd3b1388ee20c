"""Typed round configuration, loaded from YAML presets and validated at the edge."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(ValueError):
    """A one-line message that names the field and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelRef(_Strict):
    """A model as a local folder or a hub id; a revision pins hub ids."""

    id: str = Field(min_length=1)
    revision: str | None = None

    def describe(self) -> str:
        return f"{self.id}@{self.revision}" if self.revision else self.id


class RuntimeConfig(_Strict):
    device: str = Field("cpu", description="torch device, e.g. cpu, cuda, cuda:1")
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    cpu_offload: bool = False
    threads: int | None = Field(None, ge=1, description="torch intra-op threads; None keeps torch's default")


class PromptConfig(_Strict):
    source: Literal["llm", "synthesizer"] = "llm"
    count: int = Field(16, ge=1, le=10_000)
    seeds: list[str] = Field(default_factory=lambda: ["a red fox runs through a snowy forest at dawn"], min_length=1)
    model: ModelRef | None = None
    enhance: bool = True
    max_new_tokens: int = Field(64, ge=8, le=2048)
    temperature: float = Field(0.9, gt=0, le=2)

    @model_validator(mode="after")
    def _llm_needs_model(self) -> PromptConfig:
        if (self.source == "llm" or self.enhance) and self.model is None:
            raise ValueError("prompts.model is required when source is 'llm' or enhance is true")
        return self


class GenerationConfig(_Strict):
    text_to_image: ModelRef
    image_to_video: ModelRef
    image_to_image: ModelRef | None = Field(
        None, description="edits by instruction: InstructPix2Pix, or a text-to-image model in its img2img form")
    connect: ModelRef | None = Field(None, description="frames between given frames: an LTX-Video model")
    candidates: int = Field(4, ge=2, le=16, description="candidate videos per prompt (the paper uses 4)")
    height: int = Field(64, ge=16, le=4096)
    width: int = Field(64, ge=16, le=4096)
    num_frames: int = Field(17, ge=2, le=1024)
    fps: float = Field(8.0, gt=0, le=120)
    image_steps: int = Field(4, ge=1, le=200)
    video_steps: int = Field(4, ge=1, le=200)
    image_guidance: float = Field(5.0, ge=0)
    video_guidance: float = Field(3.0, ge=0)
    edit_strength: float = Field(0.6, gt=0, le=1, description="img2img: how far an edit may move from the image")
    context_frames: int = Field(5, ge=1, le=64, description="last frames that condition the next segment")
    checkpoint: str | None = Field(
        None, description="a self-modulated fine-tuning checkpoint folder (mora train); the agents load their "
                          "base models, then its weights and modulation embeddings")

    @field_validator("height", "width")
    @classmethod
    def _even(cls, v: int) -> int:
        if v % 16:
            raise ValueError(f"must be a multiple of 16 (got {v})")
        return v


class JudgeServer(_Strict):
    """An OpenAI-compatible server (vLLM in production) that serves the judge's model."""

    base_url: str = Field(pattern=r"^https?://", description="e.g. http://127.0.0.1:8000/v1")
    served_model: str | None = Field(None, description="the name the server knows the model by; default model.id")
    api_key_env: str | None = Field("MORA_JUDGE_API_KEY", description="environment variable holding the key")
    timeout_s: float = Field(120.0, gt=0)
    retries: int = Field(2, ge=0, le=10, description="extra tries on a transport error or a 5xx answer")
    top_logprobs: int = Field(20, ge=4, le=20, description="label-scores: answer tokens the server reports")
    constrained: bool = Field(False, description="free-text: vLLM structured outputs restrict the answer "
                                                 "to the valid rankings")


class JudgeConfig(_Strict):
    name: str = Field(min_length=1)
    family: Literal["qwen2-vl", "llava-onevision"]
    model: ModelRef
    backend: Literal["transformers", "openai"] = Field(
        "transformers", description="in-process transformers, or an OpenAI-compatible server (judges.N.server)")
    method: Literal["label-scores", "free-text"] = Field(
        "label-scores", description="rank by each candidate label's answer probability, or parse a written ranking")
    video_input: Literal["auto", "frames", "native"] = Field(
        "auto", description="native video input needs torchvision (in process); auto uses it where it imports")
    server: JudgeServer | None = None
    frames_per_candidate: int = Field(4, ge=1, le=64)
    orders: int = Field(2, ge=1, le=24, description="presentation orders per set, against position bias; from "
                                                    "the candidate count on, every candidate is shown in every "
                                                    "position, which cancels a preference for positions exactly")
    max_new_tokens: int = Field(24, ge=8, le=512, description="free-text: longest answer read")

    @model_validator(mode="after")
    def _server_for_openai(self) -> JudgeConfig:
        if self.backend == "openai" and self.server is None:
            raise ValueError("backend 'openai' needs server.base_url, e.g. http://127.0.0.1:8000/v1")
        if self.backend == "transformers" and self.server is not None:
            raise ValueError("server is only read by backend 'openai'; remove it or set backend: openai")
        return self


class GateConfig(_Strict):
    """Hard quality gates; set a threshold to its permissive end (0, or 255/1.0) to switch a gate off."""

    min_motion: float = Field(0.01, ge=0, description="mean optical-flow pixels per frame; below is static")
    max_flicker: float = Field(40.0, ge=0, le=255, description="mean brightness jump between frames")
    max_dark_fraction: float = Field(0.5, ge=0, le=1)
    max_bright_fraction: float = Field(0.5, ge=0, le=1)
    min_sharpness: float = Field(0.0, ge=0, description="variance of the Laplacian; 0 keeps blurry videos")


class ShardConfig(_Strict):
    root: Path = Path("mora-data")
    dataset: str = Field("default", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    max_rows_per_shard: int = Field(256, ge=4)


class ModulationConfig(_Strict):
    enabled: bool = Field(True, description="false: the no-modulation ablation (plain prompt embeddings, "
                                            "fixed equal loss shares)")
    init: Literal["token", "random"] = Field(
        "token", description="token: the text encoder's embedding of a special token; random: the ablation")
    token: str = Field("<mora-{agent}>", min_length=1, description="special token text; {agent} is the role")
    tokens: int = Field(1, ge=1, le=64, description="embedding length appended to the prompt embedding")


class LoraSettings(_Strict):
    rank: int = Field(16, ge=1, le=1024)
    alpha: float | None = Field(None, gt=0, description="LoRA alpha; default the rank (scale 1)")
    target_modules: list[str] = Field(default_factory=lambda: ["to_q", "to_k", "to_v", "to_out.0"], min_length=1)


class TrainingConfig(_Strict):
    """Self-modulated fine-tuning; defaults are the paper's settings."""

    mode: Literal["lora", "full"] = Field("lora", description="LoRA adapters (peft) or the full transformers")
    lora: LoraSettings = LoraSettings()
    modulation: ModulationConfig = ModulationConfig()
    learning_rate: float = Field(1e-5, gt=0, le=1)
    weight_decay: float = Field(1e-2, ge=0)
    batch_size: int = Field(4, ge=1, le=1024)
    gradient_accumulation: int = Field(1, ge=1, le=1024)
    max_steps: int = Field(12, ge=1, le=1_000_000, description="optimizer steps per iteration")
    checkpoint_every: int = Field(4, ge=1)
    gradient_checkpointing: bool = True
    mixed_precision: Literal["auto", "bf16", "no"] = Field(
        "auto", description="auto: bf16 where the device supports it (CUDA with bf16), float32 elsewhere")
    snr_gamma: float | None = Field(5.0, gt=0, description="min-SNR loss weighting; null switches it off")
    ema_decay: float | None = Field(0.999, gt=0, lt=1, description="EMA of the trained weights from step 0; "
                                                                    "null switches it off")
    max_grad_norm: float | None = Field(1.0, gt=0)
    choose: Literal["selected", "accepted"] = Field(
        "selected", description="selected: each accepted set's winner (the paper); accepted: all its candidates")
    num_frames: int | None = Field(None, ge=2, description="frames per training clip; default generation.num_frames")
    seed: int = Field(0, ge=0)
    output: Path | None = Field(None, description="checkpoint root; default SHARDS_ROOT/_checkpoints/DATASET")


class SelfTrainConfig(_Strict):
    iterations: int = Field(2, ge=1, le=1000, description="rounds of generate, curate, fine-tune (the paper: 6)")
    review: Literal["wait", "skip", "off"] = Field(
        "skip", description="wait: for reviewers before fine-tuning; skip: fine-tune on what is decided now; "
                            "off: the no-human-review ablation (disagreements are dropped, never reviewed)")
    review_timeout_s: float = Field(3600.0, gt=0)
    review_poll_s: float = Field(30.0, gt=0)

    @field_validator("review", mode="before")
    @classmethod
    def _yaml_off(cls, v):
        return "off" if v is False else v  # YAML reads a bare `off` as false


class RoundConfig(_Strict):
    iteration: Annotated[int, Field(ge=1)] | Literal["next"] = Field(
        1, description="the iteration this round makes; next: resume the newest unfinished iteration of the "
                       "dataset, else start the one after the newest finished one")
    seed: int = Field(0, ge=0)
    prompts: PromptConfig
    generation: GenerationConfig
    judges: list[JudgeConfig] = Field(min_length=2, max_length=2)
    gates: GateConfig = GateConfig()
    shards: ShardConfig = ShardConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    training: TrainingConfig = TrainingConfig()
    self_train: SelfTrainConfig = SelfTrainConfig()

    @model_validator(mode="after")
    def _distinct_judges(self) -> RoundConfig:
        if self.judges[0].name == self.judges[1].name:
            raise ValueError("judges: the two judges need different names")
        return self

    def fingerprint(self) -> str:
        """Identifies what a round makes: the same config resumes the same round.

        Training settings make no candidates, so they are left out; so is an unset checkpoint, which
        keeps the ids of rounds made before checkpoints existed.
        """
        data = self.model_dump(mode="json", exclude={"shards": {"root"}, "training": True, "self_train": True})
        if data["generation"]["checkpoint"] is None:
            del data["generation"]["checkpoint"]
        return hashlib.sha256(json.dumps(data, separators=(",", ":")).encode()).hexdigest()[:10]

    @property
    def round_id(self) -> str:
        if self.iteration == "next":
            raise ConfigError("iteration 'next' is resolved when the config is loaded; use load_config")
        return f"{self.shards.dataset}-it{self.iteration:03d}-{self.fingerprint()}"


def _set_dotted(data: dict, dotted: str, raw: str) -> None:
    """``a.b.0.c=value``: mappings by key, lists by index; the value is parsed as YAML."""
    keys = dotted.split(".")
    node = data
    for depth, key in enumerate(keys):
        last = depth == len(keys) - 1
        if isinstance(node, list) and key.isdigit() and int(key) < len(node):
            index: int | str = int(key)
        elif isinstance(node, dict):
            index = key
        else:
            raise ConfigError(f"override '{dotted}': '{'.'.join(keys[:depth]) or key}' has no field '{key}'; "
                              "use a field path like generation.fps or judges.0.orders")
        if last:
            node[index] = yaml.safe_load(raw) if raw != "" else None
        else:
            if isinstance(node, dict):
                node = node.setdefault(key, {})
            else:
                node = node[index]


def _one_line(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = first["msg"].removeprefix("Value error, ")
    more = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""
    got = f" (got {first['input']!r})" if first["type"] not in ("missing", "extra_forbidden") and not isinstance(
        first.get("input"), dict) else ""
    target = f"{field}.FIELD" if isinstance(first.get("input"), dict) and first["type"] == "value_error" else field
    return f"config field '{field}': {msg}{got}{more}; fix it in {source} or override with --set {target}=VALUE"


def load_config(path: str | Path, overrides: dict[str, str] | None = None, resolve: bool = True) -> RoundConfig:
    """Read a YAML preset, apply ``field.path=value`` overrides, and validate.

    ``iteration: next`` becomes a number here (see ``mora.round.history.next_iteration``), unless
    ``resolve`` is false: the self-training loop applies its own rule.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file '{path}' not found; pass an existing YAML preset such as configs/tiny.yaml")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(f"config file '{path}' is not valid YAML ({first}); fix its syntax") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{path}' must hold a mapping of fields; see configs/tiny.yaml")
    for dotted, raw in (overrides or {}).items():
        _set_dotted(data, dotted, raw)
    try:
        config = RoundConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_one_line(err, str(path))) from None
    if resolve and config.iteration == "next":
        from mora.round.history import next_iteration

        config = config.model_copy(update={"iteration": next_iteration(config.shards.root, config.shards.dataset)})
    return config


def command_overrides(pairs: list[str], iteration: int | str | None = None, root: Path | None = None) -> dict[str, str]:
    """``--set`` pairs plus the ``--iteration`` and ``--root`` shortcuts of the commands."""
    out = parse_overrides(pairs)
    if iteration is not None:
        out["iteration"] = str(iteration)
    if root is not None:
        out["shards.root"] = str(root)
    return out


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"override '{pair}' needs the form field.path=VALUE, e.g. prompts.count=8")
        key, value = pair.split("=", 1)
        out[key.strip()] = value.strip()
    return out
