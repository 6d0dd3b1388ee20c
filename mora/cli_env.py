"""The environment the commands give Prefect before it is imported (it reads its settings then)."""

from __future__ import annotations

import os
from pathlib import Path


def prefect_defaults() -> None:
    """Prefect keeps its database under the project unless the user points it elsewhere."""
    os.environ.setdefault("PREFECT_HOME", str(Path(".mora/prefect").resolve()))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # the temporary server starts in ~4 s, but a busy machine can take longer than Prefect's 20 s default
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
