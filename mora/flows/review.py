"""Human review as a scheduled flow: push new pending sets, collect finished reviews. It never
waits for people: sets nobody has decided yet stay pending until a later run."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from mora.review.pending import pending_counts
from mora.review.server import connect
from mora.tasks.dataset import publish_dataset
from mora.tasks.review import collect_reviews as collect_task
from mora.tasks.review import push_reviews


@flow(name="collect-reviews")
def collect_reviews(root: str = "mora-data", dataset: str = "tiny", url: str | None = None) -> dict:
    """Connection: ``url`` (token from the environment or a Prefect Secret), else the local server."""
    connect(Path(root), url=url)  # fails fast, in one line, when there is no server to talk to
    pushed = push_reviews(Path(root), dataset, url)
    counts = collect_task(Path(root), dataset, url)
    publish_dataset(Path(root), dataset)  # the dataset card and the iteration report
    waiting = sum(n for (name, _), n in pending_counts(Path(root)).items() if name == dataset)
    return counts | {"pushed": pushed, "pending": waiting}
