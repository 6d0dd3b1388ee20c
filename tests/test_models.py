"""Agents and judges on the tiny models, loaded through from_pretrained(local folder)."""

import numpy as np
import pytest
import torch

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


def test_animation_in_calls_of_video_batch_keeps_every_candidates_clip(gen, agents, monkeypatch):
    """At real size one call for all four SVD candidates holds ~31 GiB of activations (bench/real_size.py);
    generation.video_batch bounds the call, and each candidate keeps its own seed's clip."""
    whole = text_to_video(*agents, "a red fox runs through snow", [1, 2, 3, 4], gen)
    calls = []
    animate = agents[1].animate
    monkeypatch.setattr(agents[1], "animate",
                        lambda images, *a, **k: calls.append(len(images)) or animate(images, *a, **k))
    split = text_to_video(*agents, "a red fox runs through snow", [1, 2, 3, 4],
                          gen.model_copy(update={"video_batch": 2}))
    assert calls == [2, 2]
    assert [c.seed for c in split] == [1, 2, 3, 4]
    for a, b in zip(whole, split, strict=True):
        assert a.frames.shape == b.frames.shape
        assert np.abs(a.frames.astype(int) - b.frames.astype(int)).mean() < 1.0


def test_video_batch_left_unset_keeps_existing_round_ids(tiny_config_file):
    cfg = load_config(tiny_config_file)
    assert cfg.round_id == load_config(tiny_config_file, {"generation.video_batch": "null"}).round_id
    assert cfg.round_id != load_config(tiny_config_file, {"generation.video_batch": "2"}).round_id


def test_the_prompt_model_is_released_once_the_prompts_are_planned(tiny_config_file):
    """Only planning uses the prompt LLM; on one GPU its ~15 GB are what the generators and judges load next."""
    from mora.round import steps

    cfg = load_config(tiny_config_file, {"prompts.count": "2"})
    planned = steps.plan_and_release(cfg)
    assert len(planned) == 2
    assert not any(key[0] == "prompt" for key in loading._cache)


def test_agents_generate_with_model_cpu_offload(tiny_models):
    """configs/sd35-wan-ltx.yaml offloads (Wan 2.1 14B, SD3.5 and both judges do not fit one card resident)."""
    rt = RuntimeConfig(cpu_offload=True)
    t2i = TextToImageAgent.from_pretrained(ModelRef(id=str(tiny_models / "sd3")), rt)
    i2v = ImageToVideoAgent.from_pretrained(ModelRef(id=str(tiny_models / "wan-i2v")), rt)
    images = t2i.first_frame("a red fox", [0, 1], 64, 64, 2, 3.0)
    clips = i2v.animate(images, "a red fox", [0, 1], 5, 64, 64, 2, 3.0, 16)
    assert clips.shape == (2, 5, 64, 64, 3) and not np.array_equal(clips[0], clips[1])


def test_every_form_of_a_bfloat16_pipeline_stays_bfloat16(tiny_models):
    """diffusers' from_pipe casts to float32 unless told otherwise, and the forms share their components: the
    img2img, image-to-video and connect forms turned bfloat16 models (and the pipelines they came from) into
    float32, twice the memory at real size (LTX-Video 14 -> 28 GB)."""
    from mora.agents.connect import ConnectAgent
    from mora.agents.image_to_image import ImageToImageAgent

    rt = RuntimeConfig(dtype="bfloat16")
    t2i = TextToImageAgent.from_pretrained(ModelRef(id=str(tiny_models / "sd3")), rt)
    edit = ImageToImageAgent.from_pretrained(ModelRef(id=str(tiny_models / "sd3")), rt)
    image = t2i.first_frame_from([np_image()], "a red fox", [0], 1, 2.0, 0.5)[0]
    connect = ConnectAgent.from_pretrained(ModelRef(id=str(tiny_models / "ltx-i2v")), rt)
    for pipe in (t2i.pipe, t2i._img2img, edit.pipe, connect.pipe):
        assert {p.dtype for p in pipe.transformer.parameters()} == {torch.bfloat16}, type(pipe).__name__
    assert image.size == (64, 64)


def np_image(seed: int = 0):
    from PIL import Image

    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8))



def test_a_step_count_the_scheduler_cannot_run_is_a_config_error(ltx_published_scheduler):
    """With shift_terminal the schedule is stretched to end there, which divides by zero with one step: diffusers
    failed deep inside with an IndexError (found stepping the real-size LTX-Video in bench/real_size.py; the tiny
    model's scheduler had no shift_terminal)."""
    from mora.agents.connect import ConnectAgent
    from mora.config import ConfigError

    ref = ModelRef(id=str(ltx_published_scheduler))
    animate = ImageToVideoAgent.from_pretrained(ref, RT)
    connect = ConnectAgent.from_pretrained(ref, RT)
    image = np_image()
    for call in (lambda steps: animate.animate([image], "a red fox", [0], 9, 64, 64, steps, 3.0, 24)[0],
                 lambda steps: connect.between(image, image, "a red fox", 0, 9, 64, 64, steps, 3.0, 24)):
        with pytest.raises(ConfigError, match="generation.video_steps") as err:
            call(1)
        assert "at least 2 steps" in str(err.value) and "\n" not in str(err.value)
        clip = call(2)
        assert clip.shape == (9, 64, 64, 3)


def test_the_connect_form_runs_on_ltx_videos_published_dynamic_shifting_scheduler(ltx_published_scheduler):
    """LTXConditionPipeline passes its own timesteps and no ``mu``: on the published LTX-Video scheduler every
    connect (and every clip-chained segment) stopped with "`mu` must be passed" (found by the real-size probe of
    the connect form). The image-to-video form keeps dynamic shifting: it computes ``mu`` itself."""
    from mora.agents.connect import ConnectAgent

    ref = ModelRef(id=str(ltx_published_scheduler))
    connect = ConnectAgent.from_pretrained(ref, RT)
    first, last = np_image(), np_image(1)
    clip = connect.between(first, last, "a red fox", 0, 9, 64, 64, 2, 3.0, 24)
    assert clip.shape == (9, 64, 64, 3) and clip.std() > 0
    extended = connect.continue_clip([first, last], "a red fox", 0, 17, 64, 64, 2, 3.0, 24)
    assert extended.shape == (17, 64, 64, 3)
    animate = ImageToVideoAgent.from_pretrained(ref, RT)
    assert animate.pipe.scheduler.config.use_dynamic_shifting
    assert not connect.pipe.scheduler.config.use_dynamic_shifting
    assert connect.pipe.transformer is animate.pipe.transformer  # one set of weights, two forms
