"""The loop as a newcomer runs it, on the embedded default: scheduled rounds advance, and the default
self-training loop accepts sets, sends others to review, and trains a checkpoint per iteration."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mora.datasets.shards import iteration_dir
from mora.flows.round import dataset_round
from mora.flows.self_train import self_train
from mora.training import checkpoint as ckpt
from tests.conftest import REPO

pytestmark = pytest.mark.slow


@pytest.fixture
def project(tmp_path, tiny_models, monkeypatch) -> Path:
    """A working directory laid out like the repository after `make round`: presets, tiny models."""
    (tmp_path / "configs").symlink_to(REPO / "configs")
    (tmp_path / ".mora" / "models").mkdir(parents=True)
    (tmp_path / ".mora" / "models" / "tiny").symlink_to(tiny_models)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _iteration(project: Path, k: int) -> pd.DataFrame:
    return pd.read_parquet(iteration_dir(project / "mora-data", "tiny", k))


def test_the_nightly_rounds_own_parameters_make_iteration_one_then_two(project):
    deployments = yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
    nightly = next(d for d in deployments if d["name"] == "nightly-round")["parameters"]
    first, second = dataset_round(**nightly), dataset_round(**nightly)
    assert first["round_id"].startswith("tiny-it001-") and second["round_id"].startswith("tiny-it002-")
    one, two = _iteration(project, 1), _iteration(project, 2)
    assert len(one) == len(two) == 64
    assert not set(one.prompt) & set(two.prompt)
    digests = [{hashlib.sha256(v).hexdigest() for v in df.video} for df in (one, two)]
    assert len(digests[0]) == len(digests[1]) == 64 and not digests[0] & digests[1]
    assert dataset_round(**nightly)["round_id"].startswith("tiny-it003-")


def test_the_default_loop_accepts_reviews_and_trains_every_iteration(project):
    out = self_train("configs/tiny.yaml", {"self_train.iterations": "2"})
    first, second = out["iterations"]
    assert [first["iteration"], second["iteration"]] == [1, 2]
    for k, record in ((1, first), (2, second)):
        df = _iteration(project, k)
        sets = df.drop_duplicates("set_id")
        assert (sets.decision == "accepted").sum() >= 1, f"iteration {k}: no set accepted"
        assert df.selected.sum() == (sets.decision == "accepted").sum()
        assert record["trained"] and record["checkpoint_id"]
    assert (_iteration(project, 1).drop_duplicates("set_id").decision == "needs_review").sum() >= 1
    lineages = [ckpt.read_lineage(p.parent) for p in sorted(
        (project / "mora-data" / "_checkpoints" / "tiny").glob("iteration=*/*/step-00012/lineage.json"))]
    assert [lin["iteration"] for lin in lineages] == [1, 2]
    assert lineages[0]["hashes"] != lineages[1]["hashes"] and lineages[1]["parent"]["checkpoint_id"] == (
        lineages[0]["checkpoint_id"])
    assert lineages[0]["initial_hashes"] != lineages[0]["hashes"]
    # the loop continues where it stopped: the next run starts at iteration 3 from iteration 2's weights
    from mora.config import load_config
    from mora.flows.self_train import starting_point

    start, checkpoint = starting_point(load_config("configs/tiny.yaml", {"iteration": "next"}, resolve=False))
    assert start == 3 and ckpt.read_lineage(checkpoint)["checkpoint_id"] == lineages[1]["checkpoint_id"]
