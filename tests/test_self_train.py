"""The data-free training loop as a real Prefect flow: round, fine-tune, next round on the new weights."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from PIL import Image
from prefect.artifacts import Artifact
from typer.testing import CliRunner

from mora.agents.image_to_video import ImageToVideoAgent
from mora.agents.loading import fresh_pipeline
from mora.agents.text_to_image import TextToImageAgent
from mora.cli import app
from mora.config import load_config
from mora.datasets.shards import iteration_dir
from mora.flows.round import dataset_round
from mora.flows.self_train import self_train, starting_point
from mora.review.pending import reviews_dir
from mora.training import checkpoint as ckpt
from tests.conftest import EVERY_SET_REVIEWED

pytestmark = pytest.mark.slow


def transformer_hash(pipe) -> str:
    return ckpt.param_hash(pipe.transformer.state_dict().items())


def test_two_iterations_and_iteration_two_generates_with_iteration_one_weights(tiny_config_file, tiny_models):
    agree = {"prompts.count": "2", "generation.num_frames": "9", "judges.1.family": "llava-onevision",
             "judges.1.model.id": str(tiny_models / "llava-onevision"), "self_train.iterations": "2"}
    out = self_train(str(tiny_config_file), agree)
    first, second = out["iterations"]
    assert [r["iteration"] for r in out["iterations"]] == [1, 2]
    assert first["trained"] and second["trained"] and first["selected"] == 2
    first_path = _checkpoint_of(tiny_config_file, agree, 1)
    lineage_1 = ckpt.read_lineage(first_path)
    lineage_2 = ckpt.read_lineage(out["checkpoint"])
    assert lineage_1["checkpoint_id"] == first["checkpoint_id"]
    assert lineage_2["checkpoint_id"] == second["checkpoint_id"] != first["checkpoint_id"]

    # iteration 2's round generated with iteration 1's checkpoint, and says so in its rows
    df = pd.read_parquet(iteration_dir(tiny_config_file.parent / "data", "tiny", 2))
    roles = {m["role"]: m for m in df.iloc[0]["generator_models"]}
    assert roles["checkpoint"]["revision"] == lineage_1["checkpoint_id"]
    assert roles["checkpoint"]["model_id"] == str(first_path)

    # the weights iteration 2 generated with are iteration 1's: the round's own (cached) agents, hashed
    cfg_2 = load_config(tiny_config_file, agree | {"iteration": "2", "generation.checkpoint": str(first_path)})
    g, rt = cfg_2.generation, cfg_2.runtime
    used_t2i = TextToImageAgent.from_pretrained(g.text_to_image, rt, g.checkpoint)
    used_i2v = ImageToVideoAgent.from_pretrained(g.image_to_video, rt, g.checkpoint)
    for role, used in (("text_to_image", used_t2i), ("image_to_video", used_i2v)):
        base = fresh_pipeline(getattr(g, role), rt)
        assert transformer_hash(used.pipe) != transformer_hash(base)
        ckpt.apply_weights(base, first_path, role, lineage_1)  # an independent load of iteration 1
        assert transformer_hash(used.pipe) == transformer_hash(base)
        assert ckpt.param_hash([("embedding", used.modulation.embedding)]) == lineage_1["hashes"][role]["modulation"]
    # and iteration 2's fine-tuning continued from exactly those weights
    assert lineage_2["parent"]["checkpoint_id"] == lineage_1["checkpoint_id"]
    assert lineage_2["initial_hashes"] == lineage_1["hashes"]
    assert lineage_2["hashes"] != lineage_1["hashes"]

    # figures per iteration: PNG, JSON and Prefect artifacts
    figure = Image.open(out["figure"])
    assert figure.size[0] > 800
    records = json.loads((tiny_config_file.parent / "data" / "_reports" / "tiny" / "self-train-trends.json")
                         .read_text())
    assert [r["iteration"] for r in records] == [1, 2]
    card = (tiny_config_file.parent / "data" / "tiny" / "README.md").read_text()  # the lineage in the card
    assert f"| 2 | {lineage_1['checkpoint_id']} | {lineage_2['checkpoint_id']} | {lineage_1['checkpoint_id']} |" in card
    table = Artifact.get("self-train-trends")
    assert table is not None and "judge_agreement" in str(table.data)

    # running it again finds every round and checkpoint done: nothing is made or trained twice
    before = sorted(p.name for p in (tiny_config_file.parent / "data" / "_checkpoints").rglob("step-*"))
    again = self_train(str(tiny_config_file), agree)
    assert again["checkpoint"] == out["checkpoint"]
    assert sorted(p.name for p in (tiny_config_file.parent / "data" / "_checkpoints").rglob("step-*")) == before


def _checkpoint_of(config_file, overrides: dict, iteration: int):
    from mora.training.start import existing_start
    from mora.training.trainer import SelfModulatedTrainer

    cfg = load_config(config_file, overrides | {"iteration": str(iteration)})
    if iteration == 1:  # it went on from the start checkpoint the loop generated iteration 1 with
        start = str(existing_start(cfg))
        cfg = load_config(config_file, overrides | {"iteration": "1", "generation.checkpoint": start})
    return sorted(SelfModulatedTrainer(cfg).run_dir().glob("step-*"))[-1]


def test_no_review_ablation_sends_nothing_to_review_and_trains_on_judges_only(tiny_config_file):
    summary = dataset_round(str(tiny_config_file), {"prompts.count": "2", "generation.num_frames": "9",
                                                    "self_train.review": "off"} | EVERY_SET_REVIEWED)
    assert summary["needs_review"] == 2 and summary["pending_reviews"] == 0
    assert not list(reviews_dir(tiny_config_file.parent / "data", "tiny").rglob("*.json"))


def test_an_iteration_with_nothing_selected_is_finished_and_the_loop_moves_past_it(tiny_config_file):
    # every set goes to review and the loop does not wait: iteration 1 has nothing to fine-tune
    reviewed = {"prompts.count": "2", "generation.num_frames": "9", "self_train.review": "skip",
                "self_train.iterations": "1"} | EVERY_SET_REVIEWED
    out = self_train(str(tiny_config_file), reviewed)
    (record,) = out["iterations"]
    assert not record["trained"]
    assert ckpt.read_lineage(out["checkpoint"])["weights"] is False  # still the start checkpoint: nothing learned
    assert "has no selected videos yet" in json.loads(next(
        (tiny_config_file.parent / "data" / "_checkpoints" / "tiny").glob("iteration=1/nothing-to-train.json"))
        .read_text())["reason"]
    start, checkpoint = starting_point(load_config(tiny_config_file, reviewed | {"iteration": "next"}, resolve=False))
    assert (start, checkpoint) == (2, None)  # not iteration 1 again, on every scheduled run (and from the start)


def test_cli_train_and_self_train(tiny_config_file, tiny_models):
    runner = CliRunner()
    sets = ["--set", "prompts.count=2", "--set", "generation.num_frames=9", "--set", "judges.1.family=llava-onevision",
            "--set", f"judges.1.model.id={tiny_models / 'llava-onevision'}", "--set", "training.max_steps=2"]
    result = runner.invoke(app, ["self-train", "-c", str(tiny_config_file), *sets, "--iterations", "1",
                                 "--ablation", "random-modulation", "--set", "training.processes=2"])
    assert result.exit_code == 0, result.output
    assert "latest checkpoint" in result.output and "tiny-random-modulation" in result.output
    latest = result.output.split("latest checkpoint:")[1].split()[0]  # the loop fine-tuned on 2 processes
    assert ckpt.read_lineage(latest)["processes"] == 2 and ckpt.read_lineage(latest)["final"]
    ds = "--set", "shards.dataset=tiny-random-modulation"
    result = runner.invoke(app, ["train", "-c", str(tiny_config_file), *sets, *ds, "--set", "training.seed=1"])
    assert result.exit_code == 0, result.output
    assert "2 steps; checkpoint:" in result.output and "generation.checkpoint=" in result.output
    result = runner.invoke(app, ["self-train", "-c", str(tiny_config_file), "--ablation", "bogus"])
    assert result.exit_code == 2 and "--ablation 'bogus' is unknown" in result.output
    result = runner.invoke(app, ["train", "-c", str(tiny_config_file), *ds, "--iteration", "7"])
    assert result.exit_code == 2 and "no shards" in result.output and "iterations [7]" in result.output
