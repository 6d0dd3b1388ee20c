"""Thin Prefect tasks over the plain round steps; models load once per worker inside them."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from mora.config import RoundConfig
from mora.datasets.contact_sheet import write_contact_sheets
from mora.review.pending import record_pending
from mora.round import driver, steps
from mora.round.history import earlier_prompts
from mora.round.stages import JudgedSet
from mora.round.state import PlannedPrompt, RoundState
from mora.round.summary import summarize, summary_markdown


@task(name="write-prompts", cache_policy=NO_CACHE)
def write_prompts(config: RoundConfig, state: RoundState) -> list[PlannedPrompt]:
    planned = state.load_prompts()
    if planned is None:
        earlier = earlier_prompts(config.shards.root, config.shards.dataset, config.iteration)
        planned = steps.plan_and_release(config, earlier)
        state.save_prompts(planned)
    sources = {s: sum(p.source == s for p in planned) for s in {p.source for p in planned}}
    get_run_logger().info("%d prompts (%s)", len(planned), ", ".join(f"{k}: {v}" for k, v in sorted(sources.items())))
    return planned


@task(name="make-sets", cache_policy=NO_CACHE)
def make_sets(config: RoundConfig, state: RoundState, prompts: list[PlannedPrompt], started_at: datetime
              ) -> list[Path]:
    """Every unfinished set through the configured engine, staged and rolled into shards as it finishes."""
    log = get_run_logger()
    done = state.done_count()
    log.info("%d of %d sets to make on the %s engine", len(prompts) - done, len(prompts), config.runtime.engine)

    def on_set(judged: JudgedSet) -> None:
        log.info("%s: %s (%s; criterion %s; made by %s)", judged.planned.set_id, judged.decision, judged.reason,
                 judged.criterion, judged.made_by.get("worker", "?"))

    paths = driver.make_sets(config, state, prompts, started_at, on_set=on_set)
    log.info("shards: %s", ", ".join(map(str, paths)))
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
    sheets = write_contact_sheets(rows, folder, config.round_id, video=state.video)  # videos read page by page
    summary = summarize(config.round_id, rows, shards, pending, seconds) | {"contact_sheets": list(map(str, sheets))}
    create_markdown_artifact(summary_markdown(summary), key="round-summary", description=config.round_id)
    create_table_artifact([{"what": k, "value": str(v)} for k, v in summary.items() if k != "shards"],
                          key="round-counts", description=config.round_id)
    state.mark_complete(summary)
    return summary
