"""Thin Prefect tasks over the plain round steps; models load once per worker inside them."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from mora.config import RoundConfig
from mora.datasets.contact_sheet import write_contact_sheets
from mora.datasets.shards import write_shards
from mora.procedures.text_to_video import Candidate
from mora.review.pending import record_pending
from mora.round import steps
from mora.round.history import earlier_prompts
from mora.round.state import PlannedPrompt, RoundState
from mora.round.summary import summarize, summary_markdown


@task(name="write-prompts", cache_policy=NO_CACHE)
def write_prompts(config: RoundConfig, state: RoundState) -> list[PlannedPrompt]:
    planned = state.load_prompts()
    if planned is None:
        earlier = earlier_prompts(config.shards.root, config.shards.dataset, config.iteration)
        planned = steps.plan_prompts(config, steps.RoundAgents.load(config).prompt, earlier)
        state.save_prompts(planned)
    sources = {s: sum(p.source == s for p in planned) for s in {p.source for p in planned}}
    get_run_logger().info("%d prompts (%s)", len(planned), ", ".join(f"{k}: {v}" for k, v in sorted(sources.items())))
    return planned


@task(name="make-candidates", cache_policy=NO_CACHE, task_run_name="make-candidates-{planned.set_id}")
def make_candidates(config: RoundConfig, planned: PlannedPrompt) -> tuple[list[Candidate], list[bytes]]:
    candidates = steps.make_candidates(config, steps.RoundAgents.load(config), planned)
    return candidates, steps.encode_candidates(config, candidates)


@task(name="judge-candidates", cache_policy=NO_CACHE, task_run_name="judge-candidates-{planned.set_id}")
def judge_candidates(config: RoundConfig, state: RoundState, planned: PlannedPrompt, candidates: list[Candidate],
                     videos: list[bytes], started_at: datetime) -> str:
    rows, decision, criterion = steps.decide_set(config, steps.RoundAgents.load(config), planned, candidates,
                                                 videos, started_at)
    state.save_set(planned.set_id, rows)
    get_run_logger().info("%s: %s (%s; criterion %s)", planned.set_id, decision.decision, decision.reason,
                          criterion.key)
    return decision.decision


@task(name="write-shards", cache_policy=NO_CACHE)
def write_iteration_shards(config: RoundConfig, rows: list[dict]) -> list[Path]:
    s = config.shards
    paths = write_shards(rows, s.root, s.dataset, config.iteration, config.round_id, s.max_rows_per_shard)
    get_run_logger().info("wrote %d rows to %s", len(rows), ", ".join(map(str, paths)))
    return paths


@task(name="send-to-review", cache_policy=NO_CACHE)
def send_to_review(config: RoundConfig, rows: list[dict], shards: list[Path]) -> int:
    written = record_pending(config.shards.root, config.shards.dataset, config.iteration, rows, shards)
    get_run_logger().info("%d candidate sets await human review", len(written))
    return len(written)


@task(name="report", cache_policy=NO_CACHE)
def report(config: RoundConfig, state: RoundState, rows: list[dict], shards: list[Path], pending: int,
           seconds: float) -> dict:
    folder = Path(config.shards.root) / "_reports" / config.shards.dataset / f"iteration={config.iteration}"
    sheets = write_contact_sheets(rows, folder, config.round_id)
    summary = summarize(config.round_id, rows, shards, pending, seconds) | {"contact_sheets": list(map(str, sheets))}
    create_markdown_artifact(summary_markdown(summary), key="round-summary", description=config.round_id)
    create_table_artifact([{"what": k, "value": str(v)} for k, v in summary.items() if k != "shards"],
                          key="round-counts", description=config.round_id)
    state.mark_complete(summary)
    return summary
