"""The steps of a dataset round as plain functions: prompts, candidates, judges, decision, rows.

Prefect tasks wrap these one to one (``mora/tasks/round.py``); tests and benchmarks call them directly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from mora.agents.image_to_video import ImageToVideoAgent
from mora.agents.prompt import load_prompt_agent
from mora.agents.prompt_writer import PromptWriter
from mora.agents.text_to_image import TextToImageAgent
from mora.config import ConfigError, RoundConfig
from mora.datasets.schema import SCHEMA_VERSION
from mora.judges import CandidateSet, Judge, gates, load_judge
from mora.judges.criteria import Criterion, draw_criterion
from mora.judges.gates import GateMetrics
from mora.judges.verdict import ACCEPTED, Decision, JudgeRanking, decide
from mora.media import decode, encode_mp4
from mora.procedures.text_to_video import PROCEDURE, Candidate, text_to_video
from mora.prompts.novelty import PromptPool
from mora.prompts.synthesizer import synthesize_prompts
from mora.round.state import PlannedPrompt
from mora.seeds import derive_seed
from mora.training.checkpoint import read_lineage

MAX_SYNTHESIS_DRAWS = 8


def round_seed(config: RoundConfig, *parts) -> int:
    """Every seed of a round names its iteration: iteration k never repeats iteration k-1's draws."""
    return derive_seed(config.seed, "iteration", config.iteration, *parts)


@dataclass
class RoundAgents:
    """Every model a round needs, loaded once per worker process (see ``mora.agents.loading``)."""

    prompt: PromptWriter | None
    text_to_image: TextToImageAgent | None
    image_to_video: ImageToVideoAgent | None
    judges: list[Judge]

    @classmethod
    def load(cls, config: RoundConfig, parts: frozenset[str] = frozenset({"prompt", "generation", "judges"})
             ) -> RoundAgents:
        """The agents of ``parts``; a stage worker loads only what its stage uses (None or [] for the rest)."""
        rt, p, gen = config.runtime, config.prompts, config.generation
        prompt = load_prompt_agent(p, rt) if "prompt" in parts else None  # in process, or over HTTP
        generation = "generation" in parts
        return cls(prompt=prompt,
                   text_to_image=TextToImageAgent.from_pretrained(gen.text_to_image, rt, gen.checkpoint)
                   if generation else None,
                   image_to_video=ImageToVideoAgent.from_pretrained(gen.image_to_video, rt, gen.checkpoint)
                   if generation else None,
                   judges=[load_judge(j, rt, f"judges.{i}") for i, j in enumerate(config.judges)]
                   if "judges" in parts else [])


def plan_prompts(config: RoundConfig, agent: PromptWriter | None, earlier: Iterable[str] = ()) -> list[PlannedPrompt]:
    """New prompts: the LLM's, topped up by the synthesizer, none repeating ``earlier`` (the prompts of
    the dataset's earlier iterations) or each other; then enhanced."""
    p = config.prompts
    pool = PromptPool(earlier)
    prompts: list[tuple[str, str]] = []
    if p.source == "llm":
        invented = agent.invent(p.seeds, p.count, round_seed(config, "invent"))
        prompts = [(text, "llm") for text in pool.new(invented)]
    for attempt in range(MAX_SYNTHESIS_DRAWS):
        if len(prompts) >= p.count:
            break
        extra = synthesize_prompts(min(p.count * 2, 2000), round_seed(config, "synthesize", attempt))
        prompts += [(text, "synthesizer") for text in pool.new(extra)]
    if len(prompts) < p.count:
        raise ConfigError(f"prompts.count: only {len(prompts)} prompts are new to dataset "
                          f"'{config.shards.dataset}' after {MAX_SYNTHESIS_DRAWS} draws; lower prompts.count "
                          "or start a new dataset (shards.dataset)")
    prompts = prompts[: p.count]
    enhanced: list[str | None] = [None] * len(prompts)
    if p.enhance:
        enhanced = agent.enhance([t for t, _ in prompts], round_seed(config, "enhance"))
    by = p.model.describe() if p.model else "none"
    return [PlannedPrompt(index=i, prompt=t, source=s, enhanced=e or t, enhanced_by=by if e else "none")
            for i, ((t, s), e) in enumerate(zip(prompts, enhanced, strict=True))]


def make_candidates(config: RoundConfig, agents: RoundAgents, planned: PlannedPrompt) -> list[Candidate]:
    seeds = [round_seed(config, "candidate", planned.index, j) for j in range(config.generation.candidates)]
    return text_to_video(agents.text_to_image, agents.image_to_video, planned.enhanced, seeds, config.generation)


def encode_candidates(config: RoundConfig, candidates: list[Candidate]) -> list[bytes]:
    return [encode_mp4(c.frames, config.generation.fps) for c in candidates]


def set_criterion(config: RoundConfig, planned: PlannedPrompt) -> tuple[Criterion, int]:
    seed = round_seed(config, "criterion", planned.index)
    return draw_criterion(seed), seed


def judge_set(config: RoundConfig, agents: RoundAgents, planned: PlannedPrompt, videos: list[bytes],
              criterion: Criterion) -> tuple[list[JudgeRanking], list[GateMetrics], list[list[str]]]:
    """Gates, then both judges, on the stored videos decoded back: they see exactly what trainers get."""
    order_seed = round_seed(config, "orders", planned.index)
    decoded = [decode(v)[0] for v in videos]  # once per set, shared by the gates and the judges
    metrics = [gates.measure(clip) for clip in decoded]
    failures = [gates.check(m, config.gates) for m in metrics]
    shown = CandidateSet(prompt=planned.enhanced, criterion=criterion, clips=decoded, videos=videos)
    return [judge.rank(shown, order_seed) for judge in agents.judges], metrics, failures


def set_rows(config: RoundConfig, planned: PlannedPrompt, candidates: list[Candidate], videos: list[bytes],
             criterion: Criterion, criterion_seed: int, rankings: list[JudgeRanking], metrics: list[GateMetrics],
             failures: list[list[str]], decision: Decision, started_at: datetime) -> list[dict]:
    """One row per candidate, in the shard schema."""
    gen = config.generation
    models = [{"role": "text_to_image", "model_id": gen.text_to_image.id, "revision": gen.text_to_image.revision},
              {"role": "image_to_video", "model_id": gen.image_to_video.id, "revision": gen.image_to_video.revision}]
    if gen.checkpoint:  # the fine-tuned weights over those base models, by checkpoint id
        models.append({"role": "checkpoint", "model_id": gen.checkpoint,
                       "revision": read_lineage(gen.checkpoint)["checkpoint_id"]})
    if config.prompts.model:
        models.append({"role": "prompt", "model_id": config.prompts.model.id,
                       "revision": config.prompts.model.revision})
    now = datetime.now(UTC)
    return [{
        "schema_version": SCHEMA_VERSION, "round_id": config.round_id,
        "set_id": f"{config.round_id}/{planned.set_id}", "prompt_index": planned.index, "prompt": planned.prompt,
        "prompt_source": planned.source, "enhanced_prompt": planned.enhanced, "enhanced_by": planned.enhanced_by,
        "procedure": PROCEDURE, "candidate_index": c.index, "seed": c.seed, "video": video,
        "num_frames": int(c.frames.shape[0]), "fps": gen.fps, "width": int(c.frames.shape[2]),
        "height": int(c.frames.shape[1]), "generator_models": models, "gate_metrics": metrics[c.index].to_row(),
        "gate_failures": failures[c.index], "criterion": criterion.key,
        "criterion_seed": criterion_seed, "judges": [r.to_row() for r in rankings],
        "decision": decision.decision, "decision_source": "judges", "decision_reason": decision.reason,
        "selected": decision.decision == ACCEPTED and decision.winner == c.index,
        "review": None, "routing": None,  # routing: set by the round's policy (mora.review.routing)
        "generation_seconds": c.seconds, "created_at": now, "round_started_at": started_at,
    } for c, video in zip(candidates, videos, strict=True)]


def decide_set(config: RoundConfig, agents: RoundAgents, planned: PlannedPrompt, candidates: list[Candidate],
               videos: list[bytes], started_at: datetime) -> tuple[list[dict], Decision, Criterion]:
    """A criterion, the gates and both judges, the decision, and the set's rows."""
    criterion, criterion_seed = set_criterion(config, planned)
    rankings, metrics, failures = judge_set(config, agents, planned, videos, criterion)
    decision = decide(rankings, [not f for f in failures])
    rows = set_rows(config, planned, candidates, videos, criterion, criterion_seed, rankings, metrics, failures,
                    decision, started_at)
    return rows, decision, criterion


def make_set(config: RoundConfig, agents: RoundAgents, planned: PlannedPrompt, started_at: datetime) -> list[dict]:
    """The whole story for one prompt, without Prefect: candidates, gates, judges, decision, rows."""
    candidates = make_candidates(config, agents, planned)
    return decide_set(config, agents, planned, candidates, encode_candidates(config, candidates), started_at)[0]
