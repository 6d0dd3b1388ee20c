"""The data-free training loop: for each iteration, a round, (reviews), fine-tuning, and the next
round generates with the checkpoint it produced."""

from __future__ import annotations

from prefect import flow, get_run_logger

from mora.config import load_config
from mora.flows.round import dataset_round
from mora.tasks.dataset import publish_dataset
from mora.tasks.training import fine_tune, record_trends, wait_for_reviews


@flow(name="self-train")
def self_train(config_path: str = "configs/tiny.yaml", overrides: dict[str, str] | None = None,
               review_url: str | None = None) -> dict:
    """Iterations ``config.iteration .. + self_train.iterations - 1``; re-running resumes where it stopped."""
    log = get_run_logger()
    overrides = dict(overrides or {})
    config = load_config(config_path, overrides)
    checkpoint = config.generation.checkpoint
    records: list[dict] = []
    figure, rounds = None, []
    for k in range(config.iteration, config.iteration + config.self_train.iterations):
        at_k = overrides | {"iteration": str(k), "generation.checkpoint": checkpoint or ""}
        cfg = load_config(config_path, at_k)
        log.info("iteration %d: generating with %s", k, checkpoint or "the base models")
        summary = dataset_round(config_path, at_k)
        rounds.append(summary["round_id"])
        if cfg.self_train.review == "wait" and summary["pending_reviews"]:
            wait_for_reviews(cfg, review_url)
        trained = fine_tune(cfg)
        records, figure = record_trends(cfg, k, trained, records)
        publish_dataset(cfg.shards.root, cfg.shards.dataset)  # card and report with the new checkpoint
        checkpoint = trained["checkpoint"] or checkpoint
    return {"rounds": rounds, "checkpoint": checkpoint, "iterations": records, "figure": figure}
