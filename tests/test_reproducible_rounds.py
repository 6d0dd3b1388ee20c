"""The same round twice gives the same bytes: every candidate video, compared byte for byte, once as a
plain flow run and once through `mora round` while another process keeps a CPU busy."""

import os
import subprocess
import sys

import pandas as pd
import pytest

from mora.config import load_config
from mora.datasets.shards import data_dir
from mora.flows.round import dataset_round
from tests.conftest import REPO, write_tiny_config

pytestmark = pytest.mark.slow
OVERRIDES = {"prompts.count": "4"}  # the default round's settings, fewer prompts: 16 candidate videos

BURN = "import time\nend = time.monotonic() + 900\nwhile time.monotonic() < end:\n    sum(i * i for i in range(10000))"


def _videos(root) -> dict[tuple[str, int], bytes]:
    df = pd.read_parquet(data_dir(root, "tiny"), columns=["set_id", "candidate_index", "video"])
    return {(r.set_id, r.candidate_index): r.video for r in df.itertuples()}


def test_the_same_round_twice_gives_the_same_video_bytes_even_under_load(tiny_models, tmp_path):
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    first_cfg = write_tiny_config(tiny_models, tmp_path / "first")
    second_cfg = write_tiny_config(tiny_models, tmp_path / "second")
    dataset_round(str(first_cfg), OVERRIDES)
    burner = subprocess.Popen([sys.executable, "-c", BURN])  # CPU load from another process
    try:
        out = subprocess.run([sys.executable, "-m", "mora.cli", "round", "--config", str(second_cfg),
                              *[f"--set={k}={v}" for k, v in OVERRIDES.items()]], cwd=REPO, capture_output=True,
                             text=True, timeout=1200, env={**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")})
    finally:
        burner.kill()
        burner.wait()
    assert out.returncode == 0, out.stderr[-3000:]
    first = _videos(load_config(first_cfg, OVERRIDES).shards.root)
    second = _videos(load_config(second_cfg, OVERRIDES).shards.root)
    assert len(first) == 16 and first.keys() == second.keys()
    differing = sorted(key for key in first if first[key] != second[key])
    assert differing == [], f"{len(differing)} of {len(first)} videos differ: {differing[:4]}"
