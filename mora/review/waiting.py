"""Waiting for reviewers, for loops that must not fine-tune before people have decided."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from mora.review.collect import collect
from mora.review.pending import pending_counts
from mora.review.push import push
from mora.review.server import connect


def wait_until_decided(root: Path, dataset: str, iteration: int, timeout_s: float, poll_s: float,
                       url: str | None = None, log: Callable[[str], None] = print) -> int:
    """Push and collect until no set of the iteration awaits review, or the timeout; the sets still waiting."""
    root = Path(root)
    deadline = time.monotonic() + timeout_s
    while True:
        conn = connect(root, url=url)
        push(conn, root, dataset)
        collect(conn, root, dataset)
        waiting = pending_counts(root).get((dataset, iteration), 0)
        left = deadline - time.monotonic()
        if waiting == 0 or left <= 0:
            return waiting
        log(f"iteration {iteration}: {waiting} sets await review; next look in {min(poll_s, left):.0f} s")
        time.sleep(min(poll_s, left))
