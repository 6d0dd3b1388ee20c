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


def test_the_default_loop_accepts_reviews_and_trains_on_what_it_selects(project):
    """The tiny judges are random, so which sets they agree on is a fixed but arbitrary function of the
    pixels, and pixels differ in their last bits between CPUs (more so after a fine-tuning step). About a
    set in four is agreed; an iteration with none (about 1 in 100 at 16 sets) has nothing to fine-tune and
    the loop goes on with the weights it has. This checks the loop against what the judges decided."""
    out = self_train("configs/tiny.yaml", {"self_train.iterations": "2"})
    assert [r["iteration"] for r in out["iterations"]] == [1, 2]
    sets = {k: _iteration(project, k).drop_duplicates("set_id") for k in (1, 2)}
    decisions = pd.concat(sets.values()).decision
    assert (decisions == "accepted").sum() >= 1 and (decisions == "needs_review").sum() >= 1  # of 32 sets
    # the checkpoint id each iteration generates with: at first the start checkpoint (initial embeddings only)
    (start,) = (project / "mora-data" / "_checkpoints" / "tiny" / "start").iterdir()
    weights = ckpt.read_lineage(start)["checkpoint_id"]
    assert ckpt.read_lineage(start)["weights"] is False
    for record in out["iterations"]:
        k, rows = record["iteration"], sets[record["iteration"]]
        accepted = int((rows.decision == "accepted").sum())
        assert _iteration(project, k).selected.sum() == accepted
        roles = {m["role"]: m for m in rows.iloc[0]["generator_models"]}
        assert roles.get("checkpoint", {}).get("revision") == weights, f"iteration {k} generated with other weights"
        assert bool(record["trained"]) == (accepted > 0), f"iteration {k}: {accepted} accepted, {record}"
        if accepted:
            (lineage,) = [ckpt.read_lineage(p.parent) for p in (project / "mora-data" / "_checkpoints" / "tiny")
                          .glob(f"iteration={k}/*/step-00012/lineage.json")]
            assert lineage["checkpoint_id"] == record["checkpoint_id"]
            assert lineage["initial_hashes"] != lineage["hashes"]
            assert (lineage["parent"] or {}).get("checkpoint_id") == weights  # tuned on from the weights it used
            weights = lineage["checkpoint_id"]
    # the loop continues where it stopped: the next run starts at iteration 3 from the newest weights
    from mora.config import load_config
    from mora.flows.self_train import starting_point

    start, checkpoint = starting_point(load_config("configs/tiny.yaml", {"iteration": "next"}, resolve=False))
    assert start == 3 and (ckpt.read_lineage(checkpoint)["checkpoint_id"] if checkpoint else None) == weights
