"""Self-modulated fine-tuning of the agents on one iteration's curated videos.

The trainer loads its own copies of the text-to-image and image-to-video agents (the round's cached
ones stay untouched), continues from the checkpoint that made the iteration's data when there is
one, trains the chain end to end, and writes a checkpoint every ``checkpoint_every`` steps. The same
config and shards resume an interrupted run from its last checkpoint; a finished run is returned as is.
"""

from __future__ import annotations

import gc
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

import torch

from mora.agents.image_to_video import IMAGE_TO_VIDEO_FORMS, image_to_video_form
from mora.agents.loading import fresh_pipeline
from mora.agents.modulation import TRAINABLE, Modulation, family, initial_modulation
from mora.config import ConfigError, ModelRef, RoundConfig
from mora.seeds import derive_seed
from mora.training import checkpoint as ckpt
from mora.training.chain import ROLES, Sampling, SelfModulatedChain
from mora.training.data import ShardVideoDataset, collate
from mora.training.pairs import ShardPairDataset
from mora.training.parallel import Ranks, sum_gradients
from mora.training.preference import PreferenceLoss, Reference

StepCallback = Callable[[dict, int], None]
CACHE_BYTES = 1 << 30  # an iteration's decoded clips up to this size stay in memory between epochs


@dataclass
class TrainResult:
    checkpoint: Path | None  # the final checkpoint; None when there was nothing to train on
    checkpoints: list[Path] = field(default_factory=list)
    examples: int = 0
    steps: list[dict] = field(default_factory=list)
    skipped: str | None = None
    resumed_at: int = 0


def precision(config: RoundConfig) -> torch.dtype | None:
    """bf16 for the frozen weights and autocast where the device supports it; None means float32."""
    mode, device = config.training.mixed_precision, config.runtime.device
    if mode == "bf16" or (mode == "auto" and device.startswith("cuda") and torch.cuda.is_available()
                          and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return None


def checkpoint_root(config: RoundConfig) -> Path:
    return Path(config.training.output or Path(config.shards.root) / "_checkpoints" / config.shards.dataset)


def _model_class(ref: ModelRef) -> str | None:
    index = Path(ref.id) / "model_index.json"
    return json.loads(index.read_text()).get("_class_name") if index.is_file() else None


def check_trainable(config: RoundConfig) -> None:
    """Refuse, in one line and before loading anything, a chain this trainer cannot train."""
    for role in ROLES:
        ref = getattr(config.generation, role)
        name = _model_class(ref)
        name = IMAGE_TO_VIDEO_FORMS.get(name, name) if role == "image_to_video" else name
        if name is not None and name not in TRAINABLE[role]:
            raise ConfigError(f"generation.{role} is a {name}; self-modulated fine-tuning trains "
                              f"{' or '.join(TRAINABLE[role])} for this agent; use a preset with one "
                              "(configs/tiny.yaml, configs/sd35-ltx-train.yaml)")


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


class SelfModulatedTrainer:
    """Fine-tunes the agents of ``config`` on iteration ``config.iteration``'s shards."""

    def __init__(self, config: RoundConfig, review: bool = True, ranks: Ranks | None = None):
        """``ranks``: this process's share of each batch when fine-tuning runs on several processes."""
        check_trainable(config)
        self.config, self.training, self.gen = config, config.training, config.generation
        self.parent = self.gen.checkpoint
        self.parent_lineage = ckpt.read_lineage(self.parent) if self.parent else None
        if self.parent_lineage:
            for role in ROLES:
                ckpt.check_base(self.parent_lineage, role, getattr(self.gen, role), self.parent)
            self._check_parent()
        self.num_frames = self.training.num_frames or self.gen.num_frames
        size, sources = (self.gen.height, self.gen.width, self.num_frames), None if review else ("judges",)
        if self.training.objective == "preference":  # each accepted set's pairs (training.pairs)
            self.data = ShardPairDataset(config.shards.root, config.shards.dataset, [config.iteration], *size,
                                         sources=sources, order=self.training.pairs)
        else:
            self.data = ShardVideoDataset(config.shards.root, config.shards.dataset, [config.iteration],
                                          self.training.choose, *size, sources=sources)
        self.dtype = precision(config)
        self.ranks = ranks or Ranks()
        self.device = self.ranks.device or torch.device(config.runtime.device)
        self.chain: SelfModulatedChain | None = None
        t = self.training
        self._from_start = t.objective == "preference" and t.preference_reference == "start"
        self.origin: dict[str, list[torch.Tensor]] = {}

    def _check_parent(self) -> None:
        parent, t = self.parent_lineage, self.training
        if parent["modulation"] != t.modulation.enabled:
            raise ConfigError(f"training.modulation.enabled is {t.modulation.enabled}, but generation.checkpoint "
                              f"{'has' if parent['modulation'] else 'has no'} modulation embeddings; match it or "
                              "start from the base models")
        if not ckpt.has_weights(parent):  # the start checkpoint: embeddings only, any mode and rank go on from it
            return
        if parent["mode"] != t.mode:
            raise ConfigError(f"training.mode is {t.mode}, but generation.checkpoint was trained with "
                              f"{parent['mode']}; set training.mode={parent['mode']} or start from the base models")
        if t.mode == "lora" and parent["training"]["lora"]["rank"] != t.lora.rank:
            raise ConfigError(f"training.lora.rank is {t.lora.rank}, but generation.checkpoint has rank "
                              f"{parent['training']['lora']['rank']}; set that rank or start from the base models")

    # ---- identity -------------------------------------------------------------------------------
    @cached_property
    def shard_digests(self) -> list[str]:
        """Each shard file's content hash, read once per trainer (shards hold the videos: large)."""
        return [_file_digest(f) for f in self.data.files]

    @cached_property
    def run_id(self) -> str:
        """Same config, shards and parent: the same run (resumed, or returned when finished)."""
        # not the process count: 1 or N processes train the same run (and resume each other's)
        what = {"training": self.training.model_dump(mode="json", exclude={"output", "processes"}),
                "shards": self.shard_digests, "review": self.data.sources,
                "parent": self.parent_lineage["checkpoint_id"] if self.parent_lineage else None,
                "base": {role: getattr(self.gen, role).model_dump() for role in ROLES},
                "size": [self.gen.height, self.gen.width, self.num_frames]}
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:10]

    def run_dir(self) -> Path:
        return checkpoint_root(self.config) / f"iteration={self.config.iteration}" / self.run_id

    # ---- models ---------------------------------------------------------------------------------
    def _modulation(self, pipe, role: str) -> Modulation | None:
        m = self.training.modulation
        if not m.enabled:
            return None
        if self.parent:
            loaded = ckpt.load_modulation(self.parent, role)
            if loaded is not None:
                return loaded
        return initial_modulation(pipe, role, m.init, m.token, m.tokens, self.training.seed)

    def _agent(self, role: str):
        from diffusers.training_utils import cast_training_params
        from peft import LoraConfig

        ref, t = getattr(self.gen, role), self.training
        pipe = fresh_pipeline(ref, self.config.runtime, dtype=torch.float32)
        pipe = image_to_video_form(pipe) if role == "image_to_video" else pipe
        if family(pipe) not in TRAINABLE[role]:
            raise ConfigError(f"generation.{role} is a {family(pipe)}; self-modulated fine-tuning trains "
                              f"{' or '.join(TRAINABLE[role])} for this agent")
        ratio = getattr(pipe, "vae_temporal_compression_ratio", 1)
        if role == "image_to_video" and (self.num_frames - 1) % ratio:
            good = (self.num_frames - 1) // ratio * ratio + 1
            raise ConfigError(f"training.num_frames is {self.num_frames}, but {family(pipe)} needs 1 + a multiple "
                              f"of {ratio} frames; set training.num_frames={good} (or generation.num_frames)")
        for module in pipe.components.values():
            if isinstance(module, torch.nn.Module):
                module.requires_grad_(False)
        transformer = pipe.transformer
        if t.mode == "lora":
            with torch.random.fork_rng(devices=[]):  # the same adapters every run of this config
                torch.manual_seed(derive_seed(t.seed, "lora", role))
                transformer.add_adapter(LoraConfig(r=t.lora.rank, lora_alpha=t.lora.alpha or t.lora.rank,
                                                   init_lora_weights="gaussian",
                                                   target_modules=t.lora.target_modules))
        else:
            transformer.requires_grad_(True)
        if self._from_start:  # the loop's starting weights, before the parent's: the preference reference
            self.origin[role] = [p.detach().clone() for p in transformer.parameters() if p.requires_grad]
        if self.parent and t.mode == "lora" and ckpt.has_weights(self.parent_lineage):
            ckpt.load_lora_into(transformer, type(pipe), self.parent, role)
        elif self.parent and t.mode == "full":
            ckpt.apply_weights(pipe, self.parent, role, self.parent_lineage)
        if t.gradient_checkpointing:
            transformer.enable_gradient_checkpointing()
        pipe.to(self.device) if self.dtype is None else pipe.to(self.device, self.dtype)
        if self.dtype is not None:  # trained weights stay float32; autocast computes in bf16
            cast_training_params(transformer, dtype=torch.float32)
            if t.mode == "full":
                transformer.to(torch.float32)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def setup(self) -> SelfModulatedChain:
        """Load both agents and their modulation; build the optimizer and the EMA. Once per trainer."""
        if self.chain is not None:
            return self.chain
        from diffusers.training_utils import EMAModel

        pipes = {role: self._agent(role) for role in ROLES}
        mods = {role: self._modulation(pipes[role], role) for role in ROLES}
        mods = {role: m.to(self.device) for role, m in mods.items() if m is not None}
        self.pipes = pipes
        t = self.training
        self.chain = SelfModulatedChain(pipes["text_to_image"], pipes["image_to_video"], mods or None, t.snr_gamma,
                                        t.objective, t.handoff, Sampling(self.gen.image_steps, self.gen.image_guidance,
                                                                         t.handoff_grad_steps), t.first_frame,
                                        t.caption_dropout)
        agent_params = [p for role in ROLES for p in pipes[role].transformer.parameters() if p.requires_grad]
        mod_params = list(self.chain.modulations.parameters())
        self.params = agent_params + mod_params
        groups = [{"params": agent_params, "weight_decay": self.training.weight_decay}]
        if mod_params:  # no decay on the modulation: its norm is the agent's learned factor
            groups.append({"params": mod_params, "weight_decay": 0.0})
        if t.objective == "preference":  # the reference: the agents as this iteration, or the loop, started
            start = None
            if self._from_start:
                m = t.modulation
                initial = [initial_modulation(pipes[role], role, m.init, m.token, m.tokens, t.seed)
                           for role in self.chain.modulations]
                start = [v for role in ROLES for v in self.origin[role]] + [
                    p.detach() for mod in initial for p in mod.parameters()]
            self.chain.preference = PreferenceLoss(t.preference_beta, Reference(self.params, start))
        self.optimizer = torch.optim.AdamW(groups, lr=self.training.learning_rate)
        decay = self.training.ema_decay
        self.ema = EMAModel(self.params, decay=decay, update_after_step=0) if decay else None
        self.initial_hashes = self.hashes()
        return self.chain

    def modulation(self, role: str) -> Modulation | None:
        mods = self.chain.modulations
        return mods[role] if role in mods else None

    def hashes(self) -> dict:
        return {role: ckpt.agent_hashes(self.pipes[role].transformer, self.training.mode, self.modulation(role))
                for role in ROLES}

    # ---- checkpoints ----------------------------------------------------------------------------
    def _latest(self) -> Path | None:
        found = sorted(self.run_dir().glob("step-*"), key=lambda p: p.name) if self.run_dir().is_dir() else []
        found = [p for p in found if (p / ckpt.STATE).is_file() and (p / ckpt.LINEAGE).is_file()]
        return found[-1] if found else None

    def _resume(self, path: Path) -> tuple[int, list[dict]]:
        state = torch.load(path / ckpt.STATE, map_location="cpu", weights_only=True)
        with torch.no_grad():
            for p, saved in zip(self.params, state["params"], strict=True):
                p.copy_(saved.to(p.device, p.dtype))
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
            self.ema.to(self.device)
        return int(state["step"]), list(state["steps"])

    def save(self, step: int, steps: list[dict]) -> Path:
        """A checkpoint at ``step``: exported weights (EMA when on), lineage and resumable state."""
        final = step == self.training.max_steps

        def write(tmp: Path) -> None:
            if self.ema is not None:
                self.ema.store(self.params)
                self.ema.copy_to(self.params)
            try:
                for role in ROLES:
                    ckpt.save_agent(tmp / role, self.pipes[role], self.training.mode, self.modulation(role), role)
                hashes = self.hashes()
            finally:
                if self.ema is not None:
                    self.ema.restore(self.params)
            torch.save({"step": step, "steps": steps, "params": [p.detach().cpu() for p in self.params],
                        "optimizer": self.optimizer.state_dict(),
                        "ema": self.ema.state_dict() if self.ema is not None else None}, tmp / ckpt.STATE)
            (tmp / ckpt.LINEAGE).write_text(json.dumps(self.lineage(step, final, steps, hashes),
                                                       indent=2, default=str))

        path = self.run_dir() / f"step-{step:05d}"
        if self.ranks.main:  # every process holds the same weights; one writes them
            ckpt.write_checkpoint(path, write)
        self.ranks.wait()
        return path

    def lineage(self, step: int, final: bool, steps: list[dict], hashes: dict) -> dict:
        parent = self.parent_lineage
        return {
            "checkpoint_id": f"{self.run_id}-step{step:05d}", "run_id": self.run_id,
            "iteration": self.config.iteration, "step": step, "final": final, "mode": self.training.mode,
            "modulation": self.training.modulation.enabled, "export": "ema" if self.ema is not None else "raw",
            "parent": {"path": str(self.parent), "checkpoint_id": parent["checkpoint_id"]} if parent else None,
            "base_models": {role: getattr(self.gen, role).model_dump() | {"pipeline": family(self.pipes[role])}
                            for role in ROLES},
            "shards": [{"path": str(f), "sha256": digest}
                       for f, digest in zip(self.data.files, self.shard_digests, strict=True)],
            "examples": self.examples, "choose": self.training.choose, "review": self.data.sources is None,
            "training": self.training.model_dump(mode="json"), "config": self.config.model_dump(mode="json"),
            "precision": str(self.dtype or torch.float32).removeprefix("torch."), "device": str(self.device),
            "processes": self.ranks.world,
            "initial_hashes": self.initial_hashes, "hashes": hashes, "steps": steps,
            "created_at": datetime.now(UTC).isoformat(),
        }

    # ---- training -------------------------------------------------------------------------------
    @cached_property
    def examples(self) -> int:
        """Examples per epoch, counted once from the shards (no video decoded)."""
        return self.data.count()

    def _epochs(self) -> Iterator[list[dict | None]]:
        """The examples of one epoch after another, in shard order. Only this process's share is decoded
        (None stands for another process's example); kept decoded when the share fits in ``CACHE_BYTES``."""
        size = self.examples * self.num_frames * 3 * self.gen.height * self.gen.width * 4 // self.ranks.world
        batch = self.training.batch_size

        def epoch() -> Iterator[dict | None]:
            for i, (row, iteration) in enumerate(self.data.rows()):
                yield self.data.example(row, iteration) if self.ranks.owns(i % batch) else None

        if size <= CACHE_BYTES:
            decoded = list(epoch())
            while True:
                yield decoded
        while True:
            yield epoch()

    def _batches(self, skip: int) -> Iterator[list[dict | None]]:
        """Global batches in shard order, epoch after epoch (the last batch of an epoch may be short)."""
        seen, size = 0, self.training.batch_size
        for epoch in self._epochs():
            chunk: list[dict | None] = []
            for example in epoch:
                chunk.append(example)
                if len(chunk) == size:
                    seen += 1
                    if seen > skip:
                        yield chunk
                    chunk = []
            if chunk:
                seen += 1
                if seen > skip:
                    yield chunk

    def step(self, batches: Iterator[list[dict | None]], step: int) -> dict:
        """One optimizer step over ``gradient_accumulation`` global batches, this process's share of each."""
        t, start = self.training, time.perf_counter()
        self.chain.train()
        accum = t.gradient_accumulation
        totals = torch.zeros(1 + len(ROLES), dtype=torch.float64, device=self.device)  # loss, then per agent
        for micro in range(accum):
            chunk = next(batches)
            mine = [(position, example) for position, example in enumerate(chunk) if example is not None]
            if not mine:  # a short last batch with fewer examples than processes
                continue
            # an example's draws depend on its place among the step's examples, not on which process has it;
            # (step, 0, place) are the draws steps of one batch had before, so those runs train as they did
            generators = [torch.Generator().manual_seed(derive_seed(t.seed, self.config.iteration, step, 0,
                                                                    micro * t.batch_size + position))
                          for position, _ in mine]
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.dtype is not None):
                out = self.chain(collate([example for _, example in mine]), generators)
            scale = len(chunk) * accum  # each example weighs 1 / (global batch x accumulation), as in one process
            (out.losses.sum() / scale).backward()
            totals[0] += out.losses.detach().double().sum() / scale
            for i, role in enumerate(ROLES, start=1):
                if role in out.agent_losses:  # per-agent: each agent's own loss
                    totals[i] += out.agent_losses[role].double().sum() / scale
        sum_gradients(self.params, self.ranks)
        totals = self.ranks.sum(totals).tolist()
        if t.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(self.params, t.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.step(self.params)
        factors = {r: float(f.detach()) for r, f in self.chain.factors().items()}
        agents = {role: totals[i] for i, role in enumerate(ROLES, start=1) if t.objective != "paper"}
        return {"step": step + 1, "loss": totals[0], **agents, "objective": t.objective, "factors": factors,
                "shares": {r: float(v.detach()) for r, v in self.chain.shares().items()},
                "seconds": time.perf_counter() - start}

    @property
    def _what(self) -> str:
        return "preference pairs" if self.training.objective == "preference" else f"{self.training.choose} videos"

    def train(self, on_step: StepCallback | None = None) -> TrainResult:
        examples = self.examples
        if examples == 0:
            return TrainResult(None, skipped=f"iteration {self.config.iteration} of '{self.config.shards.dataset}' "
                                             f"has no {self._what} yet; nothing to fine-tune")
        latest = self._latest()
        lineage = ckpt.read_lineage(latest) if latest is not None else None
        if lineage is not None and lineage["final"]:
            return TrainResult(latest, sorted(self.run_dir().glob("step-*")), examples, lineage["steps"],
                               resumed_at=lineage["step"])
        self.setup()
        start, steps = self._resume(latest) if latest is not None else (0, [])
        batches = self._batches(skip=start * self.training.gradient_accumulation)
        saved = sorted(self.run_dir().glob("step-*")) if start else []
        for step in range(start, self.training.max_steps):
            record = self.step(batches, step)
            steps.append(record)
            if on_step is not None:
                on_step(record, self.training.max_steps)
            if record["step"] % self.training.checkpoint_every == 0 or record["step"] == self.training.max_steps:
                saved.append(self.save(record["step"], steps))
        return TrainResult(saved[-1], saved, examples, steps, resumed_at=start)

    def close(self) -> None:
        """Free the trainer's models (before a round loads the tuned ones)."""
        self.chain = None
        self.pipes = {}
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
