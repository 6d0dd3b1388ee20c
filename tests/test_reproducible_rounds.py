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
from mora.procedures.toolbox import file_digest
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


def _digests(folder) -> dict[str, str]:
    return {str(p.relative_to(folder)): file_digest(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_two_builds_of_the_tiny_models_are_the_same_bytes(tmp_path):
    """Tokenizer trainers number pieces in hash-map order, which changes from process to process: two
    builds gave other token ids, so a fresh clone and CI made other videos from the same round."""
    logs = {name: (tmp_path / f"{name}.log").open("w") for name in ("a", "b")}  # files: a pipe could fill
    builds = {name: subprocess.Popen([sys.executable, "-m", "mora.cli", "models", "make-tiny", str(tmp_path / name)],
                                     cwd=REPO, stdout=log, stderr=log) for name, log in logs.items()}
    for name, build in builds.items():
        code = build.wait(timeout=1800)  # a bound: two builds side by side on a busy machine
        logs[name].close()
        assert code == 0, (tmp_path / f"{name}.log").read_text()[-2000:]
    first, second = _digests(tmp_path / "a"), _digests(tmp_path / "b")
    assert any(name.endswith("tokenizer.json") for name in first) and len(first) > 100
    assert first.keys() == second.keys() and {n for n in first if first[n] != second[n]} == set()
