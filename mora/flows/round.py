"""One dataset round, as the paper tells it: prompts, candidates, judges, decision, review, shards."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from prefect import flow, get_run_logger
from prefect.utilities.annotations import quote

from mora.config import load_config
from mora.round.state import RoundState
from mora.tasks.dataset import publish_dataset
from mora.tasks.round import (
    judge_candidates,
    make_candidates,
    report,
    send_to_review,
    write_iteration_shards,
    write_prompts,
)


@flow(name="dataset-round")
def dataset_round(config_path: str = "configs/tiny.yaml", overrides: dict[str, str] | None = None) -> dict:
    """Run (or resume) the round a config describes; a finished round returns its summary at once."""
    start = time.perf_counter()
    config = load_config(config_path, overrides)
    state = RoundState(config)
    log = get_run_logger()
    if state.complete:
        log.info("round %s is complete already; nothing to do", config.round_id)
        return state.summary()
    started_at = datetime.fromisoformat(state.started_at(datetime.now(UTC).isoformat()))
    prompts = write_prompts(config, state)
    for planned in prompts:
        if state.has_set(planned.set_id):
            continue
        candidates, videos = make_candidates(config, planned)
        judge_candidates(config, state, planned, candidates, videos, started_at)
    rows = quote(state.load_rows(prompts))  # quoted: Prefect need not walk every row's fields
    shards = write_iteration_shards(config, rows)
    # the no-human-review ablation: disagreements stay undecided and are never trained on
    pending = send_to_review(config, rows, shards) if config.self_train.review != "off" else 0
    summary = report(config, state, rows, shards, pending, time.perf_counter() - start)
    publish_dataset(config.shards.root, config.shards.dataset)  # the dataset card and the iteration report
    return summary
