"""The start checkpoint: the loop's first iteration generates with the embeddings fine-tuning starts from."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from mora.agents.loading import fresh_pipeline
from mora.agents.modulation import initial_modulation
from mora.agents.text_to_image import TextToImageAgent
from mora.config import load_config
from mora.flows.round import dataset_round
from mora.training import checkpoint as ckpt
from mora.training.chain import ROLES
from mora.training.start import existing_start, start_checkpoint
from mora.training.trainer import SelfModulatedTrainer
from tests.conftest import write_tiny_config

pytestmark = pytest.mark.slow


@pytest.fixture
def config(tiny_models, tmp_path):
    return load_config(write_tiny_config(tiny_models, tmp_path), {"training.output": str(tmp_path / "ckpt")})


def test_the_start_checkpoint_holds_the_initial_embeddings_over_the_base_weights(config):
    assert existing_start(config) is None
    path = start_checkpoint(config)
    lineage = ckpt.read_lineage(path)
    assert lineage["iteration"] == 0 and lineage["final"] and lineage["weights"] is False
    written = (path / ckpt.LINEAGE).stat().st_mtime_ns
    assert start_checkpoint(config) == path == existing_start(config)  # written once
    assert (path / ckpt.LINEAGE).stat().st_mtime_ns == written
    m = config.training.modulation
    for role in ROLES:  # what the trainer would start from, from the whole pipeline
        ref = getattr(config.generation, role)
        expected = initial_modulation(fresh_pipeline(ref, config.runtime, torch.float32), role, m.init, m.token,
                                      m.tokens, config.training.seed)
        assert torch.equal(ckpt.load_modulation(path, role).embedding, expected.embedding)
    assert not [p for p in path.rglob("*") if "lora" in p.name or p.name == "transformer"]


def test_the_agents_generate_with_the_start_embedding_and_the_base_weights(config):
    path = str(start_checkpoint(config))
    gen, rt = config.generation, config.runtime
    base = TextToImageAgent.from_pretrained(gen.text_to_image, rt)
    started = TextToImageAgent.from_pretrained(gen.text_to_image, rt, path)
    assert base.modulation is None and started.modulation is not None
    state = base.pipe.transformer.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in started.pipe.transformer.state_dict().items())
    frames = [agent.first_frame("a red kite", [3], 64, 64, 2, 5.0)[0].tobytes() for agent in (base, started)]
    assert frames[0] != frames[1]  # the embedding conditions the agent


def test_a_round_on_the_start_checkpoint_records_it_and_the_trainer_goes_on_from_it_as_from_nothing(
        tiny_models, tmp_path):
    small = {"prompts.count": "1", "generation.num_frames": "9", "training.output": str(tmp_path / "ckpt")}
    config_file = write_tiny_config(tiny_models, tmp_path)
    path = str(start_checkpoint(load_config(config_file, small)))
    dataset_round(str(config_file), small | {"generation.checkpoint": path})
    rows = pd.read_parquet(next((tmp_path / "data").rglob("*.parquet")))
    recorded = {m["role"]: m["revision"] for m in rows.iloc[0]["generator_models"]}
    assert recorded["checkpoint"] == ckpt.read_lineage(path)["checkpoint_id"]

    fresh = SelfModulatedTrainer(load_config(config_file, small))
    following = SelfModulatedTrainer(load_config(config_file, small | {"generation.checkpoint": path}))
    fresh.setup()
    following.setup()
    assert following.initial_hashes == fresh.initial_hashes  # the same adapters and the same embeddings
    assert following.run_id != fresh.run_id  # its lineage names the start checkpoint


@pytest.mark.parametrize("field", ["training.modulation.from_start", "training.modulation.enabled"])
def test_no_start_checkpoint_when_the_loop_starts_from_the_base_models(tiny_models, tmp_path, field):
    config = load_config(write_tiny_config(tiny_models, tmp_path), {field: "false"})
    assert start_checkpoint(config) is None and existing_start(config) is None
