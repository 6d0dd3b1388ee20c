"""Thin Prefect tasks over fine-tuning, waiting for reviewers and the per-iteration trends."""

from __future__ import annotations

import json
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from mora.agents.loading import GENERATION_KINDS, release
from mora.atomic import write_json_atomic
from mora.config import RoundConfig
from mora.review.collect import collect
from mora.review.pending import pending_counts
from mora.review.push import push
from mora.review.server import ReviewServerError, connect
from mora.review.waiting import wait_until_decided
from mora.round.history import mark_nothing_to_train
from mora.training import trends
from mora.training.chain import ROLES
from mora.training.checkpoint import read_lineage
from mora.training.launch import fine_tune as train_agents
from mora.training.start import start_checkpoint
from mora.training.trainer import checkpoint_root


@task(name="wait-for-reviews", cache_policy=NO_CACHE)
def wait_for_reviews(config: RoundConfig, url: str | None = None) -> int:
    """Fine-tuning waits until reviewers have decided every set of the iteration, or the timeout."""
    log, st = get_run_logger(), config.self_train
    waiting = wait_until_decided(config.shards.root, config.shards.dataset, config.iteration, st.review_timeout_s,
                                 st.review_poll_s, url, log.info)
    log.info("iteration %d: %d sets still await review%s", config.iteration, waiting,
             " (timed out; fine-tuning on what is decided)" if waiting else "")
    return waiting


@task(name="review-status", cache_policy=NO_CACHE)
def review_status(config: RoundConfig, url: str | None = None) -> int:
    """Push and collect once (when a review server answers); the iteration's sets still under review."""
    log, s = get_run_logger(), config.shards
    try:
        conn = connect(s.root, url=url)
        push(conn, s.root, s.dataset)
        collect(conn, s.root, s.dataset)
    except ReviewServerError as exc:
        log.warning("reviews not synced: %s", exc)
    waiting = pending_counts(s.root).get((s.dataset, config.iteration), 0)
    log.info("iteration %d: %d sets await review", config.iteration, waiting)
    return waiting


@task(name="fine-tune", cache_policy=NO_CACHE)
def fine_tune(config: RoundConfig) -> dict:
    """Self-modulated fine-tuning on the iteration's shards; the round's models are released first."""
    log = get_run_logger()
    release(GENERATION_KINDS)
    if config.training.processes > 1:
        log.info("fine-tuning on %d processes through accelerate", config.training.processes)

    def on_step(record: dict, total: int) -> None:
        factors = ", ".join(f"{role} {f:.5f}" for role, f in record["factors"].items())
        parts = ", ".join(f"{role} {record[role]:.4f}" for role in ROLES if role in record)  # per-agent, preference
        log.info("step %d/%d: %s loss %.4f%s %s%.2fs", record["step"], total, record["objective"], record["loss"],
                 f" ({parts})" if parts else "", f"factors {factors}; " if factors else "", record["seconds"])

    result = train_agents(config, review=config.self_train.review != "off", on_step=on_step)
    if result.skipped:  # the loop goes on with the weights it has; `iteration: next` moves past this one
        log.warning("%s", result.skipped)
        mark_nothing_to_train(checkpoint_root(config), config.iteration, result.skipped)
    else:
        log.info("iteration %d: %d examples, checkpoint %s", config.iteration, result.examples, result.checkpoint)
    return {"checkpoint": str(result.checkpoint) if result.checkpoint else None, "examples": result.examples,
            "skipped": result.skipped, "resumed_at": result.resumed_at}


@task(name="start-agents", cache_policy=NO_CACHE)
def start_agents(config: RoundConfig) -> str | None:
    """The start checkpoint the loop's first iteration generates with (``mora.training.start``)."""
    path = start_checkpoint(config)
    if path is not None:
        get_run_logger().info("the agents start with their initial modulation embeddings: %s", path)
    return str(path) if path else None


@task(name="record-trends", cache_policy=NO_CACHE)
def record_trends(config: RoundConfig, iteration: int, trained: dict, records: list[dict]) -> tuple[list[dict], str]:
    """This iteration's figures appended; the PNG, the JSON and the Prefect artifacts rewritten."""
    s = config.shards
    lineage = read_lineage(trained["checkpoint"]) if trained["checkpoint"] and not trained["skipped"] else None
    record = trends.data_metrics(s.root, s.dataset, iteration) | trends.training_metrics(lineage, trained["skipped"])
    folder = Path(s.root) / "_reports" / s.dataset
    saved = folder / "self-train-trends.json"  # earlier runs of the loop (iteration: next continues them)
    earlier = json.loads(saved.read_text()) if saved.exists() and not records else records
    records = sorted([r for r in earlier if r["iteration"] != iteration] + [record], key=lambda r: r["iteration"])
    figure = trends.plot_trends(records, folder / "self-train-trends.png", f"self-training: {s.dataset}")
    write_json_atomic(folder / "self-train-trends.json", records)
    keys = ["iteration", "sets", "judge_agreement", "acceptance", "review_load", "selected", "gate_failure_rate",
            "motion_mean", "sharpness_mean", "loss_first", "loss_last", "factor_text_to_image",
            "factor_image_to_video", "checkpoint_id"]
    create_table_artifact([{k: r.get(k) for k in keys} for r in records], key="self-train-trends",
                          description=f"{s.dataset}: figures per iteration")
    create_markdown_artifact(f"# Self-training trends: {s.dataset}\n\nFigure: `{figure}`\n\n"
                             f"Figures per iteration: `{folder / 'self-train-trends.json'}`\n",
                             key="self-train-figure", description=s.dataset)
    return records, str(figure)
