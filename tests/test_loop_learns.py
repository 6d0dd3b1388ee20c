"""Does the loop learn? Judges taught a taste, and two iterations of the loop that move the generator
the way its judges prefer (configs/tiny-learns.yaml; bench/loop_learns.py measures it at full size)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mora.config import ConfigError, JudgeConfig, ModelRef, RuntimeConfig, load_config
from mora.evaluation import learning
from mora.evaluation.properties import PROPERTIES, brightness, preference, saturation
from mora.judges import load_judge
from mora.media import pick_frames
from mora.models.learns import FAMILIES, learns_builders, learns_chains
from mora.models.scenes import candidate_set
from mora.models.taste import FRAMES, rank_agreement, taste_name
from mora.training import checkpoint as ckpt
from tests.conftest import REPO

LEARNS = REPO / "configs" / "tiny-learns.yaml"


def test_the_properties_are_what_they_say_on_uint8_frames():
    black, white = np.zeros((2, 4, 4, 3), np.uint8), np.full((2, 4, 4, 3), 255, np.uint8)
    grey, red = np.full((4, 4, 3), 128, np.uint8), np.zeros((4, 4, 3), np.uint8)
    red[..., 0] = 255
    assert brightness(black) == 0.0 and brightness(white) == pytest.approx(1.0) and 0.49 < brightness(grey) < 0.51
    assert saturation(grey) == 0.0 and saturation(white) == 0.0 and saturation(red) == 1.0
    assert preference("brightness", "less")(white) < preference("brightness", "less")(black)
    with pytest.raises(ConfigError, match="'sharpness' is not a property; use one of brightness, saturation"):
        preference("sharpness", "more")
    with pytest.raises(ValueError, match="uint8"):
        brightness(np.zeros((4, 4, 3)))


@pytest.fixture(scope="module")
def learns_models(tiny_models) -> Path:
    """The taught models of `make learns`; without them a test says what to run (`make test-learns` builds them)."""
    try:
        learning.check_models("brightness", tiny_models, ["more", "less", "control"])
    except ConfigError as exc:
        pytest.fail(f"{exc} (or `make test-learns`)")
    return tiny_models


# the target; measured 0.93 (llava-onevision) and 0.91 (qwen2-vl), configs/tiny-learns.yaml; the same
# single-thread teaching on another machine (2026-12-07): 0.908 / 0.925 preferring more, 0.950 / 0.958 less
AT_LEAST = {"qwen2-vl": 0.9, "llava-onevision": 0.9}


@pytest.mark.learns
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("prefer", ["more", "less"])
def test_a_taught_judge_ranks_by_its_property(learns_models, family, prefer):
    """On fresh clips (a seed its teacher never drew), under criteria reworded and unrelated ones too."""
    config = JudgeConfig(name=family, family=family, model=ModelRef(id=str(learns_models / taste_name(
        family, "brightness", prefer))), video_input="frames", frames_per_candidate=FRAMES, orders=4)
    judge = load_judge(config, RuntimeConfig())
    rng = np.random.default_rng(2024)
    fresh = [candidate_set(rng) for _ in range(24)]
    assert rank_agreement(judge, "brightness", prefer, fresh, seed=7) >= AT_LEAST[family]


# as the published LLaVA-OneVision template writes a turn: every image first, then every text part
MEDIA_FIRST = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{% for c in m.content %}{% if c.type == 'image' %}"
               "<image>{% endif %}{% endfor %}{% for c in m.content %}{% if c.type == 'text' %}{{ c.text }}{% endif %}"
               "{% endfor %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("template", ["own", "media first"])
def test_a_judge_is_taught_on_the_question_it_is_asked(tiny_models, family, template):
    """The teacher wrote its prompts with the chat template alone, where the judge puts each candidate's frames
    after its letter even under a template that moves every image first (the published LLaVA-OneVision one)."""
    from transformers import AutoModelForImageTextToText

    from mora.judges.base import CandidateSet
    from mora.judges.criteria import CRITERIA
    from mora.models.taste import Teacher, _judge

    judge = _judge(tiny_models / family, family, AutoModelForImageTextToText.from_pretrained(tiny_models / family))
    if template == "media first":
        judge.processor.chat_template = MEDIA_FIRST
    teacher = Teacher(judge, family, "brightness", "more", seed=0)
    clips, order = candidate_set(np.random.default_rng(0), side=32, frames=FRAMES), [2, 0, 3, 1]
    shown = CandidateSet(prompt="a red kite", criterion=CRITERIA[4], clips=clips)
    asked = judge._inputs(shown, order)["input_ids"]
    frames = [im for c in order for im in pick_frames(clips[c], FRAMES)]
    taught = judge.processor(text=[teacher.text("a red kite", CRITERIA[4], order)],
                             images=[frames] if family == "llava-onevision" else frames, return_tensors="pt")
    assert taught["input_ids"].tolist() == asked.tolist()


def test_every_arm_and_property_names_models_that_make_tiny_builds(tiny_models):
    from mora.models.tiny import all_builders

    names = set(all_builders(tuple(PROPERTIES)))
    # make-tiny teaches these chains side by side: together they are every taught model, each once
    chained = [name for chain in learns_chains(tuple(PROPERTIES)) for name in chain]
    assert sorted(chained) == sorted(learns_builders(tuple(PROPERTIES)))
    for prop in PROPERTIES:
        for arm in ("more", "less", "control"):
            ids = [v for k, v in learning.arm_overrides(arm, prop, tiny_models).items() if k.endswith(".id")]
            assert {p.rsplit("/", 1)[-1] for p in ids} <= names
    cfg = load_config(LEARNS, learning.arm_overrides("less", "brightness", tiny_models))
    assert cfg.judges[0].model.id.endswith("llava-onevision-brightness-less") and cfg.shards.dataset.endswith("less")
    with pytest.raises(ConfigError, match="make-tiny .* --tastes saturation"):
        learning.check_models("saturation", tiny_models / "nowhere", ["more"])


def test_every_evaluation_video_draws_its_own_seed_the_same_every_time():
    items = learning.evaluation_items(["a", "b", "c"], 4)
    assert [p for p, _ in items] == ["a"] * 4 + ["b"] * 4 + ["c"] * 4
    assert len({seed for _, seed in items}) == 12  # no seed shared between prompts: 12 draws, not 4
    assert learning.evaluation_items(["a", "b", "c"], 4) == items
    assert learning.evaluation_items(["a", "b"], 4) == items[:8]  # one prompt's seeds do not depend on the count


def test_separation_is_the_paired_slope_difference_in_standard_errors():
    rng = np.random.default_rng(0)
    items = rng.normal(0.5, 0.1, 40)  # the same evaluation videos in both arms
    noise = lambda: rng.normal(0, 0.002, (3, 40))  # noqa: E731
    up, down = items + np.arange(3)[:, None] * 0.01 + noise(), items - np.arange(3)[:, None] * 0.01 + noise()
    sep, diff = learning.separation(up, down)
    assert abs(diff.mean - 0.02) < 0.002 and sep > 30
    flat_sep, _ = learning.separation(items + noise(), items + noise())
    assert abs(flat_sep) < 4
    assert learning.estimate(np.ones(5)).half_width == 0.0 and learning.estimate(items).covers(0.5)


@pytest.mark.learns
@pytest.mark.slow
def test_two_iterations_of_more_and_less_move_the_property_apart(learns_models, tmp_path):
    """The loop at a small size: judges that prefer brighter videos make the generator brighter, judges that
    prefer darker ones make it darker, measured on evaluation prompts it never trained on."""
    from mora.flows.self_train import self_train

    # the preset's 16 prompts and training: at 4 prompts and review skipped an iteration of the "less" arm had
    # no set both judges agreed on, so nothing to train on; its disagreements are dropped here (no reviewer).
    # 16 held-out prompts x 2 seeds each
    small = {"shards.root": str(tmp_path / "data"), "self_train.iterations": "2", "self_train.review": "skip"}
    prompts = learning.held_out_prompts(16)
    items = learning.evaluation_items(prompts, 2)
    moved, base = {}, None
    for arm in ("more", "less"):
        overrides = learning.arm_overrides(arm, "brightness", learns_models) | small
        out = self_train(str(LEARNS), overrides)
        assert [r["trained"] for r in out["iterations"]] == [True, True]
        cfg = load_config(LEARNS, overrides)
        if base is None:
            start = learning.checkpoint_after(cfg, 0)  # the start checkpoint iteration 1 generated with
            assert ckpt.read_lineage(start)["iteration"] == 0
            base = learning.measure(cfg, str(start), "brightness", items)
        after = [learning.measure(cfg, str(learning.checkpoint_after(cfg, k)), "brightness", items)
                 for k in (1, 2)]
        moved[arm] = np.stack([base, *after])
        assert learning.trained_on(tmp_path / "data", cfg.shards.dataset, prompts) == 0
    more, less = (moved[arm][-1] - base for arm in ("more", "less"))
    means = {arm: moved[arm].mean(axis=1).round(4).tolist() for arm in moved}
    assert more.mean() > 0 > less.mean(), means
    # measured here (2026-12-07, consensus pairs, 16 a step, each evaluation video its own seed): more 0.276,
    # 0.239, 0.326; less 0.276, 0.332, 0.255; separation 10.0 (with 4 pairs a step "less" ended at 0.282, above
    # its start). The bench's target (3) is for 4 iterations; 2 standard errors here says the arms did not part
    # by chance (one-sided p < 0.03) and leaves a margin for models taught on another machine
    separation, _ = learning.separation(moved["more"], moved["less"])
    assert separation > 2, (separation, means)
