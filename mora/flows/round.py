"""One dataset round, as the paper tells it: prompts, candidates, judges, decision, review, shards."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from prefect import flow, get_run_logger
from prefect.utilities.annotations import quote

from mora.config import load_config
from mora.round.state import WITHOUT_VIDEO, RoundState
from mora.tasks.dataset import publish_dataset
from mora.tasks.round import make_sets, report, routing_policy, send_to_review, write_prompts


@flow(name="dataset-round")
def dataset_round(config_path: str = "configs/tiny.yaml", overrides: dict[str, str] | None = None) -> dict:
    """Run (or resume) the round a config describes; a finished round returns its summary at once."""
    start = time.perf_counter()
    config = load_config(config_path, overrides)
    state = RoundState(config)
    log = get_run_logger()
    if state.complete:
        if not state.published:  # it stopped between complete.json and the card: publish now
            log.info("round %s is complete but was not published; writing the dataset card and report", config.round_id)
            state.mark_published(publish_dataset(config.shards.root, config.shards.dataset))
        log.info("round %s is complete already; nothing to do", config.round_id)
        return state.summary()
    started_at = datetime.fromisoformat(state.started_at(datetime.now(UTC).isoformat()))
    prompts = write_prompts(config, state)
    # who decides a set: the paper's agreement rule, or the judges' measured reliability (review.routing)
    policy = routing_policy(config, state)
    # generation and judging stream through runtime.engine (local, or Ray actors); shards roll as sets finish
    shards = make_sets(config, state, prompts, started_at, policy)
    # every row but its video (those stay in the shards); quoted: Prefect need not walk every row's fields
    rows = quote(state.load_rows(prompts, columns=WITHOUT_VIDEO))
    # the no-human-review ablation: disagreements stay undecided and are never trained on
    pending = send_to_review(config, rows, shards) if config.self_train.review != "off" else 0
    summary = report(config, state, rows, shards, pending, time.perf_counter() - start, policy)
    # the dataset card and the iteration report; a rerun publishes if this never ran
    state.mark_published(publish_dataset(config.shards.root, config.shards.dataset))
    return summary
