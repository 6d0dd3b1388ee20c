"""Self-training runs that wait for reviewers without holding a worker.

A deployed self-train run whose iteration still has sets under review records a wait here and
suspends itself; ``review-sync`` resumes it once reviewers have decided the iteration, or once the
wait's deadline has passed (then it fine-tunes on what is decided). Records live beside the review
state: ``ROOT/_state/DATASET/reviews/waits/iteration=K.json``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mora.atomic import write_json_atomic
from mora.review.pending import pending_counts


@dataclass
class ReviewWait:
    dataset: str
    iteration: int
    flow_run_id: str
    deadline: str  # ISO time after which the loop goes on with what is decided
    suspensions: int = 0  # each suspension needs its own key: Prefect refuses a key it has seen

    @property
    def overdue(self) -> bool:
        return datetime.now(UTC) >= datetime.fromisoformat(self.deadline)

    def seconds_left(self) -> float:
        return max(0.0, (datetime.fromisoformat(self.deadline) - datetime.now(UTC)).total_seconds())


def waits_dir(root: Path, dataset: str) -> Path:
    return Path(root) / "_state" / dataset / "reviews" / "waits"


def _path(root: Path, dataset: str, iteration: int) -> Path:
    return waits_dir(root, dataset) / f"iteration={iteration}.json"


def start_wait(root: Path, dataset: str, iteration: int, flow_run_id: str, timeout_s: float) -> ReviewWait:
    """The wait of this run for this iteration, one more suspension counted; the first one sets the deadline."""
    path = _path(root, dataset, iteration)
    wait = ReviewWait(**json.loads(path.read_text())) if path.exists() else None
    if wait is None or wait.flow_run_id != flow_run_id:
        deadline = datetime.now(UTC) + timedelta(seconds=timeout_s)
        wait = ReviewWait(dataset, iteration, flow_run_id, deadline.isoformat())
    wait.suspensions += 1
    write_json_atomic(path, asdict(wait))
    return wait


def end_wait(root: Path, dataset: str, iteration: int) -> None:
    _path(root, dataset, iteration).unlink(missing_ok=True)


def due_waits(root: Path, dataset: str) -> list[ReviewWait]:
    """Waits whose iteration reviewers have decided, or whose deadline has passed."""
    pending = pending_counts(root)
    due = []
    for path in sorted(waits_dir(root, dataset).glob("iteration=*.json")):
        wait = ReviewWait(**json.loads(path.read_text()))
        if wait.overdue or not pending.get((dataset, wait.iteration), 0):
            due.append(wait)
    return due
