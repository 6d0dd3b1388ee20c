"""Thin Prefect tasks over review push and collect; each connects itself, so the token never becomes a
Prefect parameter."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from mora.review import collect as collecting
from mora.review import push as pushing
from mora.review.server import connect
from mora.review.waits import due_waits


@task(name="push-reviews", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=30)
def push_reviews(root: Path, dataset: str, url: str | None = None) -> int:
    result = pushing.push(connect(root, url=url), root, dataset)
    get_run_logger().info("%s: %d sets pushed to review, %d found there already, %d open tasks reordered by the "
                          "refitted reliability model", dataset, len(result.pushed), len(result.found),
                          result.reprioritized)
    for line in result.removed + [f"set aside {set_id}: {reason}" for set_id, reason in result.failed]:
        get_run_logger().warning("%s: %s", dataset, line)
    return len(result.pushed)


@task(name="collect-reviews", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=30)
def collect_reviews(root: Path, dataset: str, url: str | None = None) -> dict:
    result = collecting.collect(connect(root, url=url), root, dataset)
    get_run_logger().info("%s: %d accepted, %d discarded by reviewers, %d still waiting", dataset,
                          len(result.accepted), len(result.discarded), len(result.waiting))
    return {"accepted": len(result.accepted), "discarded": len(result.discarded), "waiting": len(result.waiting)}


@task(name="resume-waiting-loops", cache_policy=NO_CACHE)
def resume_waiting_loops(root: Path, dataset: str) -> list[str]:
    """Self-train runs suspended for reviewers, resumed once their iteration is decided or overdue."""
    from prefect.exceptions import NotPausedError, ObjectNotFound
    from prefect.flow_runs import resume_flow_run

    log, resumed = get_run_logger(), []
    for wait in due_waits(root, dataset):
        why = "its deadline passed" if wait.overdue else "reviewers decided every set"
        try:
            resume_flow_run(UUID(wait.flow_run_id))
        except (NotPausedError, ObjectNotFound, ValueError):
            continue  # not suspended (running, finished, or unknown to this server): it ends the wait itself
        log.info("resumed self-train run %s: iteration %d, %s", wait.flow_run_id, wait.iteration, why)
        resumed.append(wait.flow_run_id)
    return resumed
