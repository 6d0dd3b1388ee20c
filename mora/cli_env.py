"""The environment the commands give Prefect before it is imported (it reads its settings then)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def prefect_defaults(home: str | Path | None = None, log_level: str | None = None) -> None:
    """Prefect keeps its database under the project unless the user points it elsewhere (benchmarks give
    it a throwaway ``home`` and a quieter ``log_level``)."""
    os.environ.setdefault("PREFECT_HOME", str(Path(home or ".mora/prefect").resolve()))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if log_level:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", log_level)
    # the temporary server starts in ~4 s, but a busy machine can take longer than Prefect's 20 s default
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


@contextmanager
def flow_settings() -> Iterator[None]:
    """Flow runs from a terminal on Prefect's temporary server run without flow-run heartbeats.

    Heartbeats let a lasting server mark a run whose process died as crashed; the temporary server
    lives and dies with this process (``mora.lifeline``: even a ``kill -9`` of this process stops it),
    so nothing reads them, while Prefect joins its heartbeat thread in 1 s sleeps: every flow run
    ended up to a second late. Against a real server (PREFECT_API_URL) they stay on.
    """
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    if PREFECT_API_URL.value():
        yield
        return
    from mora.lifeline import tie_temporary_server

    tie_temporary_server()
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield
