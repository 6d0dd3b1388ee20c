"""Human review as a scheduled flow: push new pending sets, collect finished reviews, and resume the
self-training runs that were waiting for them. It never waits for people: sets nobody has decided yet
stay pending until a later run."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from mora.review.pending import pending_counts
from mora.review.server import ReviewServerError, connect
from mora.tasks.dataset import publish_dataset
from mora.tasks.review import collect_reviews as collect_task
from mora.tasks.review import push_reviews, resume_waiting_loops


@flow(name="collect-reviews")
def collect_reviews(root: str = "mora-data", dataset: str = "tiny", url: str | None = None) -> dict:
    """Connection: ``url`` (token from the environment or a Prefect Secret), else the local server."""
    root_path = Path(root)
    try:
        connect(root_path, url=url)
    except ReviewServerError as exc:  # nobody to talk to: nothing to sync, not a failure of this run
        get_run_logger().warning("no review server, nothing pushed or collected: %s", exc)
        counts = {"accepted": 0, "discarded": 0, "waiting": None, "pushed": 0, "server": False}
    else:
        pushed = push_reviews(root_path, dataset, url)
        counts = collect_task(root_path, dataset, url) | {"pushed": pushed, "server": True}
        publish_dataset(root_path, dataset)  # the dataset card and the iteration report
    waiting = sum(n for (name, _), n in pending_counts(root_path).items() if name == dataset)
    return counts | {"pending": waiting, "resumed": resume_waiting_loops(root_path, dataset)}
