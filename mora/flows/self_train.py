"""The data-free training loop: for each iteration, a round, (reviews), fine-tuning, and the next
round generates with the checkpoint it produced."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.context import FlowRunContext
from prefect.flow_runs import suspend_flow_run

from mora.config import RoundConfig, load_config
from mora.flows.round import dataset_round
from mora.review.waits import end_wait, start_wait
from mora.round.history import newest_checkpoint, next_iteration
from mora.tasks.dataset import publish_dataset
from mora.tasks.evaluation import evaluate_checkpoint, evaluation_reports
from mora.tasks.training import fine_tune, record_trends, review_status, start_agents, wait_for_reviews
from mora.training.trainer import checkpoint_root

SUSPEND_GRACE_S = 3600  # past the review deadline, a run review-sync never resumed fails instead of waiting on


def starting_point(config: RoundConfig) -> tuple[int, str | None]:
    """The first iteration to run and the checkpoint it generates with; ``iteration: next`` continues the
    dataset's loop (an iteration is finished once its fine-tuning is)."""
    if config.iteration != "next":
        return config.iteration, config.generation.checkpoint
    checkpoints = checkpoint_root(config)
    k = next_iteration(config.shards.root, config.shards.dataset, checkpoints)
    previous = newest_checkpoint(checkpoints, before=k)
    return k, str(previous) if previous else config.generation.checkpoint


def wait_for_reviewers(config: RoundConfig, url: str | None) -> None:
    """A deployed run suspends (its worker is free) until review-sync resumes it; a run in a terminal waits."""
    log, run = get_run_logger(), FlowRunContext.get().flow_run
    if run.deployment_id is None:
        wait_for_reviews(config, url)
        return
    s = config.shards
    if review_status(config, url) == 0:
        end_wait(s.root, s.dataset, config.iteration)
        return
    wait = start_wait(s.root, s.dataset, config.iteration, str(run.id), config.self_train.review_timeout_s)
    if wait.overdue:
        log.info("iteration %d: review deadline passed; fine-tuning on what is decided", config.iteration)
        end_wait(s.root, s.dataset, config.iteration)
        return
    log.info("iteration %d: suspended until reviewers decide (review-sync resumes this run; deadline %s)",
             config.iteration, wait.deadline)
    suspend_flow_run(timeout=int(wait.seconds_left()) + SUSPEND_GRACE_S,
                     key=f"reviews-iteration-{config.iteration}-{wait.suspensions}")


@flow(name="self-train")
def self_train(config_path: str = "configs/tiny.yaml", overrides: dict[str, str] | None = None,
               review_url: str | None = None) -> dict:
    """``self_train.iterations`` iterations from ``iteration`` (a number, or next); re-running resumes."""
    log = get_run_logger()
    overrides = dict(overrides or {})
    first, checkpoint = starting_point(load_config(config_path, overrides, resolve=False))
    config = load_config(config_path, overrides | {"iteration": str(first)})
    checkpoint = checkpoint or start_agents(config)
    records: list[dict] = []
    figure, rounds = None, []
    for k in range(first, first + config.self_train.iterations):
        at_k = overrides | {"iteration": str(k), "generation.checkpoint": checkpoint or ""}
        cfg = load_config(config_path, at_k)
        log.info("iteration %d: generating with %s", k, checkpoint or "the base models")
        summary = dataset_round(config_path, at_k)
        rounds.append(summary["round_id"])
        if cfg.self_train.review == "wait" and summary["pending_reviews"]:
            wait_for_reviewers(cfg, review_url)
        trained = fine_tune(cfg)
        records, figure = record_trends(cfg, k, trained, records)
        publish_dataset(cfg.shards.root, cfg.shards.dataset)  # card and report with the new checkpoint
        checkpoint = trained["checkpoint"] or checkpoint
        if cfg.self_train.evaluate:  # the paper's metrics per iteration (its Figures 3-4)
            evaluate_checkpoint(cfg, checkpoint, iteration=k, release_after=True)
            evaluation_reports(cfg)
    return {"rounds": rounds, "checkpoint": checkpoint, "iterations": records, "figure": figure}
