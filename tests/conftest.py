"""Shared fixtures: tiny models (built once), an isolated Prefect home, small round configs."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Prefect reads its settings at import time: isolate its database before anything imports it.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="mora-prefect-")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"  # its console handler outlives pytest's captured streams
os.environ.pop("PREFECT_API_URL", None)

REPO = Path(__file__).resolve().parents[1]
BUILT = REPO / ".mora" / "models" / "tiny"


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Path:
    """The tiny models `make test` built, or a fresh build when tests run on their own."""
    if (BUILT / ".complete").exists():
        return BUILT
    from mora.models.tiny import make_tiny

    out = tmp_path_factory.mktemp("tiny")
    make_tiny(out)
    return out


@pytest.fixture
def tiny_config_file(tiny_models, tmp_path) -> Path:
    """configs/tiny.yaml pointed at the tiny models and a temporary shard root."""
    text = (REPO / "configs" / "tiny.yaml").read_text().replace(".mora/models/tiny", str(tiny_models))
    text = text.replace("root: mora-data", f"root: {tmp_path / 'data'}")
    path = tmp_path / "tiny.yaml"
    path.write_text(text)
    return path

