"""Thin Prefect tasks over the plain round steps; models load once per worker inside them."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from mora.atomic import write_json_atomic
from mora.config import RoundConfig
from mora.datasets.contact_sheet import write_contact_sheets
from mora.review.pending import record_pending
from mora.review.reliability import dataset_evidence
from mora.review.routing import RoutingPolicy, build_policy, policy_markdown
from mora.round import driver, steps
from mora.round.history import earlier_prompts
from mora.round.stages import JudgedSet, effective_threads
from mora.round.state import PlannedPrompt, RoundState
from mora.round.summary import summarize, summary_markdown


@task(name="write-prompts", cache_policy=NO_CACHE)
def write_prompts(config: RoundConfig, state: RoundState) -> list[PlannedPrompt]:
    planned = state.load_prompts()
    if planned is None:
        earlier = earlier_prompts(config.shards.root, config.shards.dataset, config.iteration)
        planned = steps.plan_prompts(config, steps.RoundAgents.load(config, frozenset({"prompt"})).prompt, earlier)
        state.save_prompts(planned)
    sources = {s: sum(p.source == s for p in planned) for s in {p.source for p in planned}}
    get_run_logger().info("%d prompts (%s)", len(planned), ", ".join(f"{k}: {v}" for k, v in sorted(sources.items())))
    return planned


@task(name="routing-policy", cache_policy=NO_CACHE)
def routing_policy(config: RoundConfig, state: RoundState) -> RoutingPolicy:
    """The rule this round routes by, from every set people have decided so far; frozen in the round's state
    when it starts, so a resumed round routes as it began."""
    log, path = get_run_logger(), state.dir / "routing.json"
    if path.exists():
        policy = RoutingPolicy.from_dict(json.loads(path.read_text()))
    else:
        review = config.review
        if config.self_train.review == "off":  # the no-human-review ablation: nobody would audit
            review = review.model_copy(update={"audit_share": 0.0})
        evidence = dataset_evidence(config.shards.root, config.shards.dataset)
        policy = build_policy(review, evidence, config.generation.candidates)
        write_json_atomic(path, policy.to_dict())
    (log.warning if policy.requested != policy.rule else log.info)("routing: %s", policy.note)
    create_markdown_artifact(policy_markdown(policy), key="routing", description=config.round_id)
    return policy


@task(name="make-sets", cache_policy=NO_CACHE)
def make_sets(config: RoundConfig, state: RoundState, prompts: list[PlannedPrompt], started_at: datetime,
              policy: RoutingPolicy | None = None) -> list[Path]:
    """Every unfinished set through the configured engine, staged and rolled into shards as it finishes."""
    log = get_run_logger()
    done = state.done_count()
    here = effective_threads(config.runtime)
    threads = state.threads(here)
    log.info("%d of %d sets to make on the %s engine with %d torch threads%s", len(prompts) - done, len(prompts),
             config.runtime.engine, threads,
             f" (the count this round started with; here it would be {here})" if threads != here else "")

    def on_set(judged: JudgedSet) -> None:
        log.info("%s: %s (%s; criterion %s; made by %s)", judged.planned.set_id, judged.decision, judged.reason,
                 judged.criterion, judged.made_by.get("worker", "?"))

    paths = driver.make_sets(config, state, prompts, started_at, on_set=on_set, on_wait=log.warning, policy=policy)
    log.info("shards: %s", ", ".join(map(str, paths)))
    return paths


@task(name="send-to-review", cache_policy=NO_CACHE)
def send_to_review(config: RoundConfig, rows: list[dict], shards: list[Path]) -> int:
    written = record_pending(config.shards.root, config.shards.dataset, config.iteration, rows, shards)
    get_run_logger().info("%d candidate sets await human review", len(written))
    return len(written)


@task(name="report", cache_policy=NO_CACHE)
def report(config: RoundConfig, state: RoundState, rows: list[dict], shards: list[Path], pending: int,
           seconds: float, policy: RoutingPolicy | None = None) -> dict:
    folder = Path(config.shards.root) / "_reports" / config.shards.dataset / f"iteration={config.iteration}"
    sheets = write_contact_sheets(rows, folder, config.round_id, video=state.video)  # videos read page by page
    summary = summarize(config.round_id, rows, shards, pending, seconds, policy.note if policy else None)
    summary["contact_sheets"] = list(map(str, sheets))
    create_markdown_artifact(summary_markdown(summary), key="round-summary", description=config.round_id)
    create_table_artifact([{"what": k, "value": str(v)} for k, v in summary.items() if k != "shards"],
                          key="round-counts", description=config.round_id)
    state.mark_complete(summary)
    return summary
