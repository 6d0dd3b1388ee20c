"""Training examples streamed from real shards written by real rounds."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from mora.config import load_config
from mora.datasets.shards import data_dir
from mora.flows.round import dataset_round
from mora.media import decode
from mora.training.data import ShardError, ShardVideoDataset, collate
from tests.conftest import EVERY_SET_REVIEWED, write_tiny_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shards(tiny_models, tmp_path_factory):
    """Iteration 1: judges that agree (every set accepted). Iteration 2: the default, all in review."""
    config = write_tiny_config(tiny_models, tmp_path_factory.mktemp("train-data"))
    base = {"prompts.count": "3", "generation.num_frames": "9"}
    agree = {**base, "judges.1.model.id": str(tiny_models / "llava-onevision"), "judges.1.family": "llava-onevision"}
    dataset_round(str(config), agree)
    dataset_round(str(config), {**base, "iteration": "2"} | EVERY_SET_REVIEWED)
    cfg = load_config(config, base)
    return cfg.shards.root, cfg.shards.dataset


def test_selected_examples_are_the_winners_decoded_to_frames_in_minus_one_to_one(shards):
    root, dataset = shards
    examples = list(ShardVideoDataset(root, dataset))
    df = pd.read_parquet(data_dir(root, dataset))
    winners = df[df.selected].sort_values("set_id")
    assert len(examples) == len(winners) == 3
    by_set = {e["set_id"]: e for e in examples}
    for row in winners.itertuples():
        ex = by_set[row.set_id]
        assert ex["candidate_index"] == row.candidate_index and ex["prompt"] == row.enhanced_prompt
        assert ex["frames"].shape == (9, 3, 64, 64) and ex["iteration"] == 1
        assert -1.0 <= ex["frames"].min() and ex["frames"].max() <= 1.0
        frames, _ = decode(row.video)
        expected = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        assert torch.equal(ex["frames"], expected) and torch.equal(ex["first_frame"], expected[0])


def test_choosing_by_decision_and_iteration(shards):
    root, dataset = shards
    assert len(list(ShardVideoDataset(root, dataset, choose="accepted"))) == 12
    assert len(list(ShardVideoDataset(root, dataset, choose="all"))) == 24
    assert list(ShardVideoDataset(root, dataset, iterations=[2])) == []  # nothing accepted there yet
    assert {e["iteration"] for e in ShardVideoDataset(root, dataset, iterations=[2], choose="all")} == {2}
    short = next(iter(ShardVideoDataset(root, dataset, num_frames=4, height=32, width=48)))
    assert short["frames"].shape == (4, 3, 32, 48)


def test_workers_share_the_files_without_repeating_an_example(shards):
    root, dataset = shards
    # spawn: this test process runs Prefect's threads, which forked workers must not inherit
    loader = DataLoader(ShardVideoDataset(root, dataset, choose="all"), batch_size=4, num_workers=2,
                        collate_fn=collate, multiprocessing_context="spawn")
    batches = list(loader)
    seen = [(s, c) for b in batches for s, c in zip(b["set_id"], b["candidate_index"], strict=True)]
    assert len(seen) == 24 and len(set(seen)) == 24
    assert batches[0]["frames"].shape == (4, 9, 3, 64, 64) and batches[0]["first_frame"].shape == (4, 3, 64, 64)
    assert np.isfinite(batches[0]["frames"].numpy()).all()


def test_bad_choices_are_one_line_errors(shards, tmp_path):
    root, dataset = shards
    with pytest.raises(ShardError, match="no dataset 'nope'"):
        ShardVideoDataset(root, "nope")
    with pytest.raises(ShardError, match="no shards .* iterations \\[7\\]"):
        ShardVideoDataset(root, dataset, iterations=[7])
    with pytest.raises(ShardError, match="choose 'best' is unknown"):
        ShardVideoDataset(root, dataset, choose="best")
