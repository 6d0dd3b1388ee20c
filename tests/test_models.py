"""Agents and judges on the tiny models, loaded through from_pretrained(local folder)."""

import numpy as np
import pytest

from mora.agents import loading
from mora.agents.image_to_video import ImageToVideoAgent
from mora.agents.prompt import PromptAgent
from mora.agents.prompt_writer import dedupe
from mora.agents.text_to_image import TextToImageAgent
from mora.config import GenerationConfig, ModelRef, RuntimeConfig, load_config
from mora.procedures.text_to_video import text_to_video
from mora.round.steps import plan_prompts

RT = RuntimeConfig()


@pytest.fixture(scope="module")
def gen(tiny_models):
    return GenerationConfig(text_to_image=ModelRef(id=str(tiny_models / "sd3")),
                            image_to_video=ModelRef(id=str(tiny_models / "ltx-i2v")), num_frames=9)


@pytest.fixture(scope="module")
def agents(gen):
    return TextToImageAgent.from_pretrained(gen.text_to_image, RT), ImageToVideoAgent.from_pretrained(
        gen.image_to_video, RT)


def test_models_load_once_per_process(gen, agents):
    before = loading.loaded_count()
    again = TextToImageAgent.from_pretrained(gen.text_to_image, RT)
    assert again.pipe is agents[0].pipe and loading.loaded_count() == before


def test_missing_model_folder_is_one_clear_error(tmp_path):
    with pytest.raises(loading.ModelLoadError, match="could not be loaded") as err:
        TextToImageAgent.from_pretrained(ModelRef(id=str(tmp_path / "nope")), RT)
    assert "\n" not in str(err.value)


def test_text_to_video_candidates_have_the_configured_shape_and_own_seeds(gen, agents):
    cands = text_to_video(*agents, "a red fox runs through snow", [1, 2, 3, 4], gen)
    assert [c.seed for c in cands] == [1, 2, 3, 4]
    assert all(c.frames.shape == (9, 64, 64, 3) and c.frames.dtype == np.uint8 for c in cands)
    assert not np.array_equal(cands[0].frames, cands[1].frames)
    again = text_to_video(*agents, "a red fox runs through snow", [1, 2, 3, 4], gen)
    assert all(np.array_equal(a.frames, b.frames) for a, b in zip(cands, again, strict=True))


def test_prompt_agent_invents_distinct_cleaned_prompts_reproducibly(tiny_models):
    agent = PromptAgent.from_pretrained(ModelRef(id=str(tiny_models / "prompt-llm")), RT, max_new_tokens=24)
    prompts = agent.invent(["a red fox runs through a snowy forest"], 4, seed=0)
    assert len(prompts) == len(set(prompts)) <= 4
    assert all("\n" not in p and len(p.split()) >= 3 for p in prompts)
    assert agent.invent(["a red fox runs through a snowy forest"], 4, seed=0) == prompts


@pytest.mark.parametrize("overrides, sources", [
    ({}, {"llm", "synthesizer"}),
    ({"prompts.source": "synthesizer", "prompts.enhance": "false"}, {"synthesizer"}),
])
def test_planned_prompts_reach_the_count_distinct_and_say_where_they_came_from(tiny_config_file, overrides,
                                                                               sources):
    cfg = load_config(tiny_config_file, {"prompts.count": "6", **overrides})
    agent = PromptAgent.from_pretrained(cfg.prompts.model, RT, max_new_tokens=cfg.prompts.max_new_tokens)
    planned = plan_prompts(cfg, agent)
    assert [p.index for p in planned] == list(range(6))
    assert len(dedupe([p.prompt for p in planned])) == 6
    assert {p.source for p in planned} <= sources
    for p in planned:
        assert len(p.enhanced.split()) >= 3
        assert (p.enhanced_by, p.enhanced) == ("none", p.prompt) or p.enhanced_by == cfg.prompts.model.id
    if not cfg.prompts.enhance:
        assert all(p.enhanced_by == "none" for p in planned)
    assert plan_prompts(cfg, agent) == planned
