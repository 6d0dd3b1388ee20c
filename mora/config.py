"""Typed round configuration, loaded from YAML presets and validated at the edge."""

from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mora.review.settings import ReviewConfig


class ConfigError(ValueError):
    """A one-line message that names the field and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # .inf or .nan is never a setting


class ModelRef(_Strict):
    """A model as a local folder or a hub id; a revision pins hub ids."""

    id: str = Field(min_length=1)
    revision: str | None = None

    def describe(self) -> str:
        return f"{self.id}@{self.revision}" if self.revision else self.id


class RayStage(_Strict):
    """One stage's long-lived Ray workers (actors): how many, and what each reserves on its node."""

    workers: int = Field(1, ge=1, le=4096)
    cpus: float = Field(1.0, ge=0, description="CPUs reserved per worker (its torch threads are the round's: "
                                                "runtime.threads)")
    gpus: float = Field(0.0, ge=0, description="GPUs per worker; a fraction packs several workers on one GPU")
    resources: dict[str, float] = Field(default_factory=dict, description="custom Ray resources, e.g. {node_a: 1}")


class RayConfig(_Strict):
    address: str = Field("", description="empty: start a local Ray instance for the run; 'auto' or "
                                          "'ray://HOST:10001': join a running cluster")
    generators: RayStage = RayStage()
    judges: RayStage = RayStage()
    num_cpus: int | None = Field(None, ge=1, description="a local instance only: CPUs it offers; default "
                                                         "enough for every worker")
    max_restarts: int = Field(2, ge=0, le=100, description="restarts of a worker whose process died; one out of "
                                                           "restarts that finished a set is replaced by a fresh "
                                                           "worker, one that never did leaves the pool")
    placement_timeout_s: float = Field(600.0, gt=0, description="a joined cluster: how long workers may wait "
                                                                "for room (an autoscaler adding nodes) before "
                                                                "the round stops in one line")
    runtime_env: dict = Field(default_factory=dict, description="Ray runtime environment of the workers, e.g. "
                                                                "{env_vars: {HF_HOME: /models}}")

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        if v and v != "auto" and not v.startswith("ray://") and ":" not in v:
            raise ValueError("must be empty (a local instance), 'auto', 'ray://HOST:10001' or HOST:6379")
        return v


class RuntimeConfig(_Strict):
    device: str = Field("cpu", description="torch device, e.g. cpu, cuda, cuda:1")
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    cpu_offload: bool = False
    threads: int | None = Field(None, ge=1, description="torch intra-op threads of every engine and worker; None: "
                                                        "the driver's default, recorded at the round's first start")
    engine: Literal["local", "ray"] = Field(
        "local", description="local: every set in this process, one after another; ray: generators and judges "
                             "in long-lived Ray workers, streaming (runtime.ray)")
    ray: RayConfig = RayConfig()
    lease_s: float = Field(900.0, gt=0, description="a claimed set is free again this long after its driver "
                                                    "stopped renewing the claim (a dead flow run)")


class PromptServer(_Strict):
    """An OpenAI-compatible server (GPT-4o's API, vLLM serving Llama 3, ...) that serves the prompt agent."""

    base_url: str = Field(pattern=r"^https?://", description="e.g. http://127.0.0.1:8000/v1 or "
                                                             "https://api.openai.com/v1")
    served_model: str | None = Field(None, description="the name the server knows the model by (e.g. gpt-4o); "
                                                       "default prompts.model.id")
    api_key_env: str | None = Field("MORA_PROMPT_API_KEY", description="environment variable holding the key")
    timeout_s: float = Field(120.0, gt=0)
    retries: int = Field(2, ge=0, le=10, description="extra tries on a transport error or a 5xx answer")


class PromptConfig(_Strict):
    source: Literal["llm", "synthesizer"] = "llm"
    count: int = Field(16, ge=1, le=10_000)
    seeds: list[str] = Field(default_factory=lambda: ["a red fox runs through a snowy forest at dawn"], min_length=1)
    model: ModelRef | None = None
    enhance: bool = True
    max_new_tokens: int = Field(64, ge=8, le=2048)
    temperature: float = Field(0.9, gt=0, le=2)
    backend: Literal["transformers", "openai"] = Field(
        "transformers", description="in-process transformers, or an OpenAI-compatible server (prompts.server)")
    server: PromptServer | None = None

    @field_validator("seeds")
    @classmethod
    def _no_blank_seed(cls, v: list[str]) -> list[str]:
        blank = [i for i, seed in enumerate(v) if not seed.strip()]
        if blank:
            raise ValueError(f"seed prompt {blank[0]} is empty; give every seed some words, or remove it")
        return v

    @model_validator(mode="after")
    def _llm_needs_model(self) -> PromptConfig:
        if (self.source == "llm" or self.enhance) and self.model is None:
            raise ValueError("prompts.model is required when source is 'llm' or enhance is true")
        if self.backend == "openai" and self.server is None:
            raise ValueError("backend 'openai' needs server.base_url, e.g. http://127.0.0.1:8000/v1")
        if self.backend == "transformers" and self.server is not None:
            raise ValueError("server is only read by backend 'openai'; remove it or set backend: openai")
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
    video_batch: int | None = Field(
        None, ge=1, le=16, description="candidates one image-to-video call animates; null: all of a prompt's at "
                                       "once. Lower it to bound the activation memory of the batched call "
                                       "(Stable Video Diffusion at 1024x576x25: ~7.7 GiB per candidate, "
                                       "bench/real_size.py)")
    checkpoint: str | None = Field(
        None, description="a self-modulated fine-tuning checkpoint folder (mora train); the agents load their "
                          "base models, then its weights and modulation embeddings")

    @field_validator("height", "width")
    @classmethod
    def _even(cls, v: int) -> int:
        if v % 16:
            raise ValueError(f"must be a multiple of 16 (got {v})")
        return v


class ProcedureConfig(_Strict):
    """How the single-video procedures work: the paper's way by default, our alternatives as options."""

    chaining: Literal["last-frame", "clip"] = Field(
        "last-frame", description="long videos and extend: each segment from the previous one's last frame (the "
                                  "paper), or from its last generation.context_frames frames through the connect "
                                  "agent")
    image_to_video: Literal["text-to-image", "direct"] = Field(
        "text-to-image", description="the user's image and text go through the text-to-image agent (its img2img "
                                     "form) before animation (the paper), or the image is animated as it is")
    image_strength: float = Field(0.5, gt=0, le=1, description="image-to-video through the text-to-image agent: "
                                                               "how far its frame may move from the user's image")
    digital_world: Literal["suffix", "restyle"] = Field(
        "suffix", description="append digital_world_suffix to the image-to-video prompt (the paper), or restyle "
                              "the first frame with the image-to-image agent")
    digital_world_suffix: str = Field("In digital world style", min_length=1)


class ServerBreaker(_Strict):
    """A circuit breaker per judge server: one that stops answering gets no requests until it answers again."""

    misses: int = Field(3, ge=1, le=1000, description="requests in a row without an answer in time (request "
                                                       "deadline missed, connection failed, HTTP 5xx) that mark "
                                                       "the server down")
    cool_off_s: float = Field(120.0, gt=0, description="a down server gets no requests; then a one-token request "
                                                       "probes it in the background, and one answered in time "
                                                       "brings it back")


class JudgeServer(_Strict):
    """An OpenAI-compatible server (vLLM in production) that serves the judge's model."""

    base_url: str | list[str] = Field(description="e.g. http://127.0.0.1:8000/v1, or a list: one server per GPU "
                                                  "or node, requests go round-robin")
    max_in_flight: int = Field(8, ge=1, le=1024, description="requests this worker keeps in flight at once "
                                                            "across the servers (vLLM batches them)")
    served_model: str | None = Field(None, description="the name the server knows the model by; default model.id")
    api_key_env: str | None = Field("MORA_JUDGE_API_KEY", description="environment variable holding the key")
    timeout_s: float = Field(120.0, gt=0, description="longest wait for any single read from the server")
    deadline_s: float = Field(300.0, gt=0, description="total seconds for one request, however slowly the "
                                                       "server sends; past it the judge abstains on the set")
    budget_s: float = Field(900.0, gt=0, description="total seconds for one candidate set, every order and "
                                                     "retry included; past it the judge abstains on the set")
    round_budget_s: float | None = Field(1800.0, gt=0, description="per round and judge worker: seconds its sets "
                                                                  "may wait on servers that bring no answer; past "
                                                                  "it the judge abstains at once on the rest of the "
                                                                  "round; null: no limit")
    breaker: ServerBreaker = ServerBreaker()
    retries: int = Field(2, ge=0, le=10, description="extra tries on a transport error or a 5xx answer, or, with "
                                                     "several servers, on a missed deadline (on another server)")
    top_logprobs: int = Field(20, ge=4, le=20, description="label-scores: answer tokens the server reports")
    constrained: bool = Field(False, description="free-text: vLLM structured outputs restrict the answer "
                                                 "to the valid rankings")

    @field_validator("base_url")
    @classmethod
    def _urls(cls, v: str | list[str]) -> str | list[str]:
        urls = [v] if isinstance(v, str) else v
        if not urls or any(not u.startswith(("http://", "https://")) for u in urls):
            raise ValueError("needs one or more URLs starting with http:// or https://")
        return v

    @property
    def urls(self) -> list[str]:
        return [self.base_url] if isinstance(self.base_url, str) else list(self.base_url)


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

    @field_validator("root")
    @classmethod
    def _a_folder(cls, v: Path) -> Path:
        if v.exists() and not v.is_dir():
            raise ValueError("is a file, not a folder; pass a folder for the shards (it is created if missing)")
        inside = next((p for p in v.parents if p.exists()), None)  # FILE/sub: `exists` is False for it
        if inside is not None and not inside.is_dir():
            raise ValueError(f"lies inside {str(inside)!r}, which is a file; pass a folder for the shards")
        return v


class ModulationConfig(_Strict):
    enabled: bool = Field(True, description="false: the no-modulation ablation (plain prompt embeddings; "
                                            "objective per-agent: fixed equal loss shares)")
    init: Literal["token", "random"] = Field(
        "token", description="token: the text encoder's embedding of a special token; random: the ablation")
    token: str = Field("<mora-{agent}>", min_length=1, description="special token text; {agent} is the role")
    tokens: int = Field(1, ge=1, le=64, description="embedding length appended to the prompt embedding")
    from_start: bool = Field(
        True, description="self-train: the first iteration generates with the embeddings fine-tuning starts from "
                          "(a start checkpoint), so the agents are conditioned as the paper says from the start and "
                          "every iteration differs from the one before only by what it learned; false: the base "
                          "models alone until the first checkpoint")


class LoraSettings(_Strict):
    rank: int = Field(16, ge=1, le=1024)
    alpha: float | None = Field(None, gt=0, description="LoRA alpha; default the rank (scale 1)")
    target_modules: list[str] = Field(default_factory=lambda: ["to_q", "to_k", "to_v", "to_out.0"], min_length=1)


class TrainingConfig(_Strict):
    """Self-modulated fine-tuning; defaults are the paper's settings."""

    objective: Literal["paper", "per-agent", "preference"] = Field(
        "paper", description="paper: one loss between the chain's final output and the target video; per-agent: "
                             "each agent's own loss, weighted by its share of the modulation factors; preference: "
                             "Diffusion-DPO on each agent, each accepted set's winner against its other passing "
                             "candidates, against a reference (training.preference_reference)")
    preference_beta: float = Field(5000.0, gt=0, description="objective preference: DPO's beta on the mean "
                                                             "squared velocity error (Diffusion-DPO's SD 1.5 value)")
    preference_reference: Literal["start", "iteration"] = Field(
        "start", description="objective preference, the reference the agents' errors are compared with: start: "
                             "the agents as the loop started (the base weights and initial embeddings), one anchor "
                             "for every iteration, as DPO holds a policy to its starting model; iteration: the "
                             "agents as this iteration started, so iterations compound (bench/loop_learns.py, 4 "
                             "iterations: the control drifted +0.030 in one run, against +0.013 on average over "
                             "three runs with start)")
    pairs: Literal["winner", "consensus"] = Field(
        "winner", description="objective preference, the pairs of an accepted set: winner: its winner against each "
                              "other passing candidate (the paper's top-1); consensus: those, and every pair of the "
                              "other candidates that all its judges order the same way (mora/datasets/pairs.py: the "
                              "winner against the rest rewards spread as well as the taste)")
    handoff: Literal["sampled", "estimate"] = Field(
        "sampled", description="the first frame handed to the image-to-video agent: sampled by the text-to-image "
                               "agent as at generation (the candidate's seed, steps and guidance); estimate: a "
                               "one-step estimate from its noised target frame")
    first_frame: Literal["estimate", "handed"] = Field(
        "estimate", description="objective paper, frame 0 of the chain's output in the loss: the text-to-image "
                                "agent's estimate of the target's first frame from its noised latent (what it learns "
                                "the selected frames from); handed: the frame handed on, which the sampled hand-off "
                                "makes from the candidate's own seed, so the agent learns nothing from the selection")
    handoff_grad_steps: int = Field(1, ge=1, le=200, description="sampled hand-off: the last sampling steps "
                                                                 "that carry gradient")
    caption_dropout: float = Field(0.0, ge=0, lt=1, description="objectives paper and per-agent: the share of "
                                   "examples trained on the empty prompt (the unconditional prediction guidance "
                                   "subtracts at generation), drawn per example")
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
    processes: int = Field(1, ge=1, le=1024, description="data-parallel processes started by accelerate launch "
                                                          "(gloo on CPU, one GPU each on CUDA); batch_size is the "
                                                          "global batch, shared among them")

    @model_validator(mode="after")
    def _a_share_for_every_process(self) -> TrainingConfig:
        if self.batch_size < self.processes:
            raise ValueError(f"training.batch_size ({self.batch_size}) is smaller than training.processes "
                             f"({self.processes}): every process needs an example per step; set "
                             f"training.batch_size={self.processes} or fewer processes")
        if self.caption_dropout and self.objective == "preference":
            raise ValueError("training.caption_dropout applies to objectives paper and per-agent; the preference "
                             "objective compares both candidates under their prompt; set it to 0 or change "
                             "training.objective")
        return self


class CaptionerRef(_Strict):
    """A multimodal model that writes captions (Video-Text Integration)."""

    family: Literal["qwen2-vl", "llava-onevision"]
    model: ModelRef


EVAL_TASKS = ("text-to-video", "image-to-video", "extend", "video-to-video-edit", "connect", "digital-world")


class EvalConfig(_Strict):
    """``mora eval``: the models behind each metric (see the README's metric table) and the evaluation set.

    ``auto`` picks VBench's own component (RAFT, MUSIQ) where its package imports and its weights are
    given, else the weight-free stand-in; every run records which one ran. Naming the real one makes
    its absence a one-line error instead."""

    set: str = Field("v1", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="versioned evaluation set")
    tasks: list[Literal[EVAL_TASKS]] = Field(default_factory=lambda: list(EVAL_TASKS), min_length=1)
    items_per_task: int = Field(8, ge=1, le=1000, description="first N items of each task's set")
    duration_s: float | None = Field(12.0, gt=0, le=600, description="seconds each made video is chained to, "
                                     "as mora make --duration does (the paper shows ~12 s); null: one segment")
    frames: Annotated[int, Field(ge=2, le=4096)] | Literal["all"] = Field(
        "all", description="frames the per-frame model metrics read: all (VBench reads every frame) or N spread "
                           "over the video (faster; not VBench's)")
    seed: int = Field(0, ge=0)
    object_encoder: ModelRef = Field(ModelRef(id="facebook/dinov2-base"),
                                     description="object consistency: DINO features (VBench: DINO ViT-B/16)")
    clip: ModelRef = Field(ModelRef(id="openai/clip-vit-base-patch32"),
                           description="background consistency and appearance style (VBench: CLIP ViT-B/32)")
    aesthetic_clip: ModelRef = Field(ModelRef(id="openai/clip-vit-large-patch14"),
                                     description="image features the aesthetic predictor reads (CLIP ViT-L/14)")
    aesthetic_predictor: Literal["linear", "mlp"] = Field(
        "linear", description="linear: VBench's LAION head (sa_0_4_vit_l_14_linear.pth); mlp: LAION's improved "
                              "predictor (not VBench's)")
    aesthetic_head: ModelRef = Field(ModelRef(id="sa_0_4_vit_l_14_linear.pth"),
                                     description="the predictor's weights: a .pth file, a folder or a hub repo "
                                                 "holding one (the linear head is on GitHub, not the hub)")
    dynamic_degree: Literal["auto", "raft", "farneback"] = Field(
        "auto", description="raft: torchvision's raft_large (VBench's RAFT); farneback: the weight-free stand-in")
    raft: ModelRef | None = Field(None, description="raft_large state dict (.pth file, folder or hub repo); "
                                                    "torchvision's Raft_Large_Weights.C_T_V1 is the original "
                                                    "raft-things weights VBench reads")
    imaging_quality: Literal["auto", "musiq", "proxy"] = Field(
        "auto", description="musiq: pyiqa's MUSIQ (VBench's); proxy: the weight-free stand-in")
    musiq: ModelRef | None = Field(None, description="MUSIQ weights for pyiqa (VBench: musiq_spaq_ckpt-358bb6af.pth)")
    video_encoder: ModelRef = Field(ModelRef(id="microsoft/xclip-base-patch32"),
                                    description="temporal style and extended-video consistency (paper: ViCLIP)")
    text_embedder: ModelRef = Field(ModelRef(id="google-bert/bert-base-uncased"),
                                    description="Video-Text Integration: caption embeddings")
    image_captioner: CaptionerRef = CaptionerRef(
        family="llava-onevision", model=ModelRef(id="llava-hf/llava-onevision-qwen2-0.5b-ov-hf"))
    video_captioner: CaptionerRef = CaptionerRef(family="qwen2-vl", model=ModelRef(id="Qwen/Qwen2-VL-2B-Instruct"))
    caption_tokens: int = Field(48, ge=4, le=512)


class SelfTrainConfig(_Strict):
    iterations: int = Field(2, ge=1, le=1000, description="rounds of generate, curate, fine-tune (the paper: 6)")
    review: Literal["wait", "skip", "off"] = Field(
        "skip", description="wait: for reviewers before fine-tuning; skip: fine-tune on what is decided now; "
                            "off: the no-human-review ablation (disagreements are dropped, never reviewed)")
    review_timeout_s: float = Field(3600.0, gt=0)
    review_poll_s: float = Field(30.0, gt=0)
    evaluate: bool = Field(False, description="run mora eval on each new checkpoint (per-iteration curves)")

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
    review: ReviewConfig = ReviewConfig()
    shards: ShardConfig = ShardConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    procedures: ProcedureConfig = ProcedureConfig()
    training: TrainingConfig = TrainingConfig()
    self_train: SelfTrainConfig = SelfTrainConfig()
    eval: EvalConfig = EvalConfig()

    @model_validator(mode="after")
    def _distinct_judges(self) -> RoundConfig:
        if self.judges[0].name == self.judges[1].name:
            raise ValueError("judges: the two judges need different names")
        return self

    def fingerprint(self) -> str:
        """Identifies what a round makes: the same config resumes the same round.

        Training, evaluation and single-video procedure settings make no candidates, so they are left
        out, and so are the engine and its workers (every engine makes the same rows) and the review
        routing (a round freezes its routing policy when it starts, ``mora.review.routing``); so are fields
        still at the value rounds had before the field existed, which keeps those rounds' ids.
        """
        data = self.model_dump(mode="json", exclude={"shards": {"root"}, "training": True, "self_train": True,
                                                     "eval": True, "procedures": True, "review": True,
                                                     "runtime": {"engine", "ray", "lease_s"}})
        for section, key, before in _ADDED_LATER:
            if data[section][key] == before:
                del data[section][key]
        for server in (judge["server"] for judge in data["judges"] if judge.get("server")):
            for key, before in _SERVER_ADDED_LATER:
                if server[key] == before:
                    del server[key]
        return hashlib.sha256(json.dumps(data, separators=(",", ":")).encode()).hexdigest()[:10]

    @property
    def round_id(self) -> str:
        if self.iteration == "next":
            raise ConfigError("iteration 'next' is resolved when the config is loaded; use load_config")
        return f"{self.shards.dataset}-it{self.iteration:03d}-{self.fingerprint()}"


# (section, field, value that behaves as before the field existed)
_ADDED_LATER = (("generation", "checkpoint", None), ("prompts", "backend", "transformers"),
                ("prompts", "server", None), ("generation", "video_batch", None))
_SERVER_ADDED_LATER = (("round_budget_s", 1800.0), ("breaker", ServerBreaker().model_dump(mode="json")))


def _set_dotted(data: dict, dotted: str, raw: str) -> None:
    """``a.b.0.c=value``: mappings by key, lists by index; the value is parsed as YAML. A section the YAML
    leaves out starts from its defaults, so ``eval.image_captioner.model.id=DIR`` keeps the default family."""
    keys = dotted.split(".")
    node, cls = data, RoundConfig
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
            field = getattr(cls, "model_fields", {}).get(key) if isinstance(node, dict) else None
            if isinstance(node, dict) and key not in node:  # a section the YAML leaves out: its defaults first
                default = field.get_default(call_default_factory=True) if field else None
                node[key] = default.model_dump() if isinstance(default, BaseModel) else {}
            node = node[index]
            cls = field.annotation if field and isinstance(field.annotation, type) else None


def _first_error(err: ValidationError) -> dict:
    """An unknown key first: a misspelled field also shows up as the field it replaced going missing."""
    errors = err.errors()
    extra = [e for e in errors if e["type"] == "extra_forbidden"]
    if not extra:
        return errors[0]
    first = dict(extra[0])
    missing = [e["loc"][-1] for e in errors if e["type"] == "missing" and e["loc"][:-1] == first["loc"][:-1]]
    close = difflib.get_close_matches(str(first["loc"][-1]), [str(m) for m in missing], n=1)
    first["msg"] = f"unknown field '{first['loc'][-1]}'" + (f" (did you mean '{close[0]}'?)" if close else "")
    return first


def _one_line(err: ValidationError, source: str) -> str:
    first = _first_error(err)
    field = ".".join(str(p) for p in first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    more = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""
    if not field:  # a rule between sections: its message names the fields
        return f"config: {msg}{more}; fix it in {source} or override with --set FIELD=VALUE"
    got = f" (got {first['input']!r})" if first["type"] not in ("missing", "extra_forbidden") and not isinstance(
        first.get("input"), dict) and "(got " not in msg else ""
    target = f"{field}.FIELD" if isinstance(first.get("input"), dict) and first["type"] == "value_error" else field
    return f"config field '{field}': {msg}{got}{more}; fix it in {source} or override with --set {target}=VALUE"


def load_config(path: str | Path, overrides: dict[str, str] | None = None, resolve: bool = True) -> RoundConfig:
    """Read a YAML preset, apply ``field.path=value`` overrides, and validate.

    ``iteration: next`` becomes a number here (see ``mora.round.history.next_iteration``), unless
    ``resolve`` is false: the self-training loop applies its own rule.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config '{path}' is a folder; pass a YAML preset file such as configs/tiny.yaml")
    if not path.is_file():
        raise ConfigError(f"config file '{path}' not found; pass an existing YAML preset such as configs/tiny.yaml")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError:
        raise ConfigError(f"config file '{path}' is not UTF-8 text; pass a YAML preset such as configs/tiny.yaml"
                          ) from None
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
