"""The evaluation's metrics: weight-free ones by their values on synthetic videos with known properties,
model-backed ones by their plumbing on the tiny random-weight stand-ins (their values mean nothing)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from mora.config import EVAL_TASKS, ConfigError, load_config
from mora.evaluation import evalset, free
from mora.evaluation.implementations import importable
from mora.evaluation.metrics import METRICS, Sample, Scorer, feature_consistency, task_metrics, video_text_integration
from mora.evaluation.models import ModelLoadError, head_from_state
from mora.evaluation.runner import summarize

RNG = np.random.default_rng(0)
TEXTURE = cv2.GaussianBlur(RNG.integers(0, 255, (96, 96, 3), dtype=np.uint8), (5, 5), 1.5)


def pan(step: float, frames: int = 17, jitter: float = 0.0) -> np.ndarray:
    """A 64x64 window sliding over a texture, ``step`` pixels per frame, with random jumps of up to ``jitter``."""
    rng = np.random.default_rng(1)
    out = []
    for t in range(frames):
        x = step * t + (rng.uniform(-jitter, jitter) if jitter else 0.0)
        m = np.float32([[1, 0, -x], [0, 1, 0]])
        out.append(cv2.warpAffine(TEXTURE, m, (96, 96), borderMode=cv2.BORDER_REFLECT)[16:80, 16:80])
    return np.stack(out)


def test_motion_smoothness_static_is_one_and_smooth_beats_jittery():
    static, smooth, jittery = pan(0.0), pan(1.0), pan(1.0, jitter=4.0)
    assert free.motion_smoothness(static) == pytest.approx(1.0, abs=1e-3)
    s, j = free.motion_smoothness(smooth), free.motion_smoothness(jittery)
    assert s > 0.97 and s > j + 0.02, (s, j)
    # the interpolated middle of a smooth pan is close to the real middle frame
    assert np.abs(free.interpolate(smooth[0], smooth[2]).astype(float) - smooth[1]).mean() < 4


def test_dynamic_degree_follows_vbench_threshold_and_count():
    assert not free.is_dynamic(pan(0.0), fps=8)
    assert free.is_dynamic(pan(3.0), fps=8)  # 3 px per frame > 6 * 64 / 256 = 1.5
    assert not free.is_dynamic(pan(0.5), fps=8)  # moves, but below the threshold
    one_jump = pan(0.0)
    one_jump[9:] = np.roll(one_jump[9:], 6, axis=2)  # one moving pair; VBench needs round(4 * 17 / 16) = 4
    assert not free.is_dynamic(one_jump, fps=8)
    # at 24 fps VBench reads every third frame, so the same motion per frame counts three times as much
    assert free.sample_at(pan(1.0, frames=24), fps=24).shape[0] == 8


def test_imaging_quality_prefers_sharp_and_clean():
    board = np.kron((np.indices((8, 8)).sum(0) % 2) * 200 + 25, np.ones((8, 8))).astype(np.uint8)
    sharp = np.repeat(board[None, ..., None], 3, axis=-1)
    blurred = np.stack([cv2.GaussianBlur(f, (9, 9), 3) for f in sharp])
    noisy = np.clip(sharp + np.random.default_rng(2).normal(0, 25, sharp.shape), 0, 255).astype(np.uint8)
    q_sharp, q_blur, q_noisy = (free.imaging_quality(v) for v in (sharp, blurred, noisy))
    assert 0 <= q_blur < q_sharp <= 1 and q_noisy < q_sharp, (q_sharp, q_blur, q_noisy)


def test_transition_coherence_correlated_vs_uncorrelated():
    a, b = pan(1.0, frames=6), pan(1.0, frames=12)[6:]
    blend = np.stack([((1 - w) * a[-1] + w * b[0]).astype(np.uint8) for w in np.linspace(0.1, 0.9, 5)])
    noise = np.random.default_rng(3).integers(0, 255, blend.shape, dtype=np.uint8)
    assert free.transition_coherence(a, blend, b) > 0.9
    assert abs(free.transition_coherence(a, noise, b)) < 0.1
    assert free.video_length(pan(0.0), 8.0) == pytest.approx(17 / 8)


def test_feature_consistency_is_vbench_formula():
    same = torch.ones(5, 4)
    assert feature_consistency(same) == pytest.approx(1.0)
    flip = torch.tensor([[1.0, 0], [0, 1.0], [1.0, 0]])  # frame 2 repeats frame 0 but not frame 1
    # frame 1: prev 0, first 0 -> 0; frame 2: prev 0, first 1 -> 0.5; mean 0.25
    assert feature_consistency(flip) == pytest.approx(0.25)
    assert feature_consistency(-same[:2]) == pytest.approx(1.0)


def test_aesthetic_heads_load_from_laion_state_dicts():
    linear = head_from_state({"weight": torch.ones(1, 6), "bias": torch.zeros(1)})
    assert linear(torch.ones(2, 6)).squeeze(-1).tolist() == [6.0, 6.0]
    mlp = head_from_state({"layers.0.weight": torch.ones(3, 6), "layers.0.bias": torch.zeros(3),
                           "layers.2.weight": torch.ones(1, 3), "layers.2.bias": torch.ones(1)})
    assert mlp(torch.ones(1, 6)).item() == pytest.approx(19.0)  # 3 * 6 + 1: no activation, like LAION's
    with pytest.raises(ModelLoadError, match="LAION predictor"):
        head_from_state({"fc.weight": torch.ones(1, 2)})


def test_every_metric_is_described_and_every_task_has_its_table():
    for task in EVAL_TASKS:
        columns = task_metrics(task)
        assert columns[0] == "video_quality" and columns[-1] == "video_length"
        assert all(m in METRICS for m in columns[1:])
    assert all(m.paper and m.ours and m.difference for m in METRICS.values())
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert all(f"| `{name}` |" in readme for name in [*METRICS, "video_quality"])  # the table users read


def test_evaluation_set_is_fixed_versioned_and_not_training_prompts():
    from mora.prompts.synthesizer import synthesize_prompts

    spec = evalset.load_set("v1")
    texts = set(evalset.texts(spec))
    seeds = {s for path in Path("configs").glob("*.yaml") for s in load_config(path).prompts.seeds}
    assert texts and not texts & seeds
    assert not texts & set(synthesize_prompts(500, seed=0))
    assert all(len(spec[t]) >= 8 for t in EVAL_TASKS)
    with pytest.raises(ConfigError, match="eval.set.*v1"):
        evalset.load_set("v0")


def test_eval_settings_leave_round_ids_alone(tiny_config_file):
    a = load_config(tiny_config_file)
    b = load_config(tiny_config_file, {"eval.items_per_task": "5", "self_train.evaluate": "true"})
    assert a.round_id == b.round_id


@pytest.fixture(scope="module")
def scorer(tiny_models, tmp_path_factory):
    from tests.conftest import write_tiny_config

    cfg = load_config(write_tiny_config(tiny_models, tmp_path_factory.mktemp("eval-cfg")))
    return Scorer(cfg.eval, cfg.runtime)


def test_model_backed_metrics_run_on_tiny_models(scorer):
    """Plumbing only: every task's metrics come back as finite numbers in their ranges, or missing with a reason."""
    frames = pan(1.0)
    extra = {"image-to-video": {"image": Image.fromarray(frames[0])},
             "extend": {"source": frames[:8], "parts": {"extension": frames[8:]}},
             "connect": {"parts": {"first": frames[:6], "transition": frames[6:11], "second": frames[11:]}}}
    for task in EVAL_TASKS:
        scores = scorer.score(Sample(task, frames, 8.0, "a cat stretches on a sofa", **extra.get(task, {})))
        missing = scores.pop("missing")
        scores.pop("notes")
        assert set(scores) == set(task_metrics(task))
        assert set(missing) <= {"video_text_integration"}  # the tiny captioners say nothing (see below)
        assert all(np.isfinite(v) for m, v in scores.items() if m not in missing)
        for m in ("object_consistency", "background_consistency", "temporal_style", "appearance_style",
                  "temporal_consistency"):
            if m in scores:
                assert -1.0 - 1e-5 <= scores[m] <= 1.0 + 1e-5
        assert scores["video_quality"] == pytest.approx(np.mean([scores[m] for m in task_metrics(task)[1:7]]),
                                                        abs=1e-5)
    assert "temporal_style" in task_metrics("extend")  # the paper's Temporal Style for extended videos too
    assert all(len(s) >= 1 for s in scorer.seconds.values())


def test_video_text_integration_puts_the_instruction_before_the_image_caption(scorer):
    """The paper's formula: embed(instruction + image caption) against embed(video caption). Captions that say
    the same no longer score a perfect 1 unless the instruction says nothing the video caption does not."""
    bert = scorer._model("bert")
    a, b, c = bert.embed(["waves roll in a beach at sunset", "a beach at sunset", "a red fox in snow"])
    assert video_text_integration(bert, "waves roll in", "a beach at sunset", "a beach at sunset") == \
        pytest.approx(float((a * b).sum()), abs=1e-5)
    assert video_text_integration(bert, "", "a beach at sunset", "a beach at sunset") == pytest.approx(1.0, abs=1e-5)
    assert video_text_integration(bert, "waves roll in", "a beach at sunset", "a beach at sunset") < 1.0 - 1e-4
    assert float((a * c).sum()) != pytest.approx(float((a * b).sum()), abs=1e-4)


def test_an_empty_or_failed_caption_leaves_video_text_integration_missing(scorer, monkeypatch):
    """The tiny captioners (random weights) answer only newlines: the metric is missing with the reason, never
    a score (two empty captions used to score a perfect 1.0). A captioner that raises is missing too."""
    frames = pan(1.0)
    sample = Sample("image-to-video", frames, 8.0, "the cat stretches", image=Image.fromarray(frames[0]))
    said = scorer._model("image_captioner").caption([Image.fromarray(frames[0])], "image")
    assert said == ""  # the real tiny captioner returns nothing
    scores = scorer.score(sample)
    assert scores["video_text_integration"] is None
    assert scores["missing"] == {"video_text_integration": "the image captioner returned an empty caption"}
    assert scores["video_quality"] is not None  # the other metrics stand
    summary = summarize([{"task": "image-to-video", **scores}, {"task": "image-to-video", **scores}])
    assert summary["image-to-video"]["video_text_integration"] is None
    assert summary["image-to-video"]["missing"]["video_text_integration"] == {
        "items": 2, "reasons": ["the image captioner returned an empty caption"]}
    no_image = scorer.score(Sample("image-to-video", frames, 8.0, "the cat stretches"))
    assert "no input image" in no_image["missing"]["video_text_integration"]

    def broken(self, frames, what):  # a fault injected on purpose: the captioner's generate fails
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(type(scorer._model("image_captioner")), "caption", broken)
    failed = scorer.score(sample)
    assert failed["video_text_integration"] is None
    assert failed["missing"]["video_text_integration"].startswith("the image captioner failed (RuntimeError: CUDA")


def test_a_bad_model_reference_stops_before_any_video(scorer, tmp_path):
    bad = scorer.config.model_copy(update={"aesthetic_head": scorer.config.aesthetic_head.model_copy(
        update={"id": str(tmp_path)})})
    with pytest.raises(ModelLoadError, match="holds no .pth file"):
        Scorer(bad, scorer.runtime).prepare(["text-to-video"])


def test_model_wrappers_shapes(scorer):
    frames = pan(1.0)
    clip = scorer._model("clip")
    feats = clip.features(list(frames[:3]))
    assert feats.shape[0] == 3 and torch.allclose(feats.norm(dim=-1), torch.ones(3), atol=1e-4)
    assert clip.text(["a cat", "a dog"]).shape == (2, feats.shape[1])
    video = scorer._model("video")
    assert video.video(frames).shape == (32,)  # one embedding per video, whatever its length
    from transformers import VideoMAEImageProcessor, XCLIPProcessor

    real_layout = XCLIPProcessor(image_processor=VideoMAEImageProcessor(  # microsoft/xclip-*'s processor class
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}), tokenizer=video.processor.tokenizer)
    as_released = type(video)(video.model, real_layout, video.device)
    assert as_released.video(frames).shape == (32,) and as_released.similarity(frames, "a cat") <= 1.0
    caption = scorer._model("video_captioner").caption(list(frames[:2]), "video")
    assert isinstance(caption, str)
    assert scorer._model("object") is not scorer._model("clip")
    assert scorer._model("clip").model is clip.model  # loaded once per process


def test_the_aesthetic_head_is_the_one_the_preset_names(scorer, tiny_models):
    """VBench's linear head by default; the improved MLP only when eval.aesthetic_predictor says mlp."""
    from mora.evaluation.models import AestheticPredictor

    c, rt = scorer.config, scorer.runtime
    linear = AestheticPredictor.from_pretrained(c.aesthetic_clip, c.aesthetic_head, rt)
    assert isinstance(linear.head, torch.nn.Linear) and linear.scores(pan(1.0)[:3]).shape == (3,)
    mlp_ref = c.aesthetic_head.model_copy(update={"id": str(tiny_models / "aesthetic-head-mlp")})
    mlp = AestheticPredictor.from_pretrained(c.aesthetic_clip, mlp_ref, rt, "mlp")
    assert isinstance(mlp.head, torch.nn.Sequential)
    with pytest.raises(ModelLoadError, match="holds the mlp predictor but eval.aesthetic_predictor is linear; set "
                                             "eval.aesthetic_predictor=mlp"):
        AestheticPredictor.from_pretrained(c.aesthetic_clip, mlp_ref, rt, "linear")
    absent = c.aesthetic_head.model_copy(update={"id": "sa_0_4_vit_l_14_linear.pth"})  # the real presets' default
    with pytest.raises(ModelLoadError, match="^config field 'eval.aesthetic_head': 'sa_0_4_vit_l_14_linear.pth' "
                                             "not found; point it at the weights file$"):
        AestheticPredictor.from_pretrained(c.aesthetic_clip, absent, rt)


@pytest.mark.skipif(bool(importable("torchvision.models.optical_flow")),
                    reason="torchvision does not import here (the CPU machines); runs where it does")
def test_raft_runs_from_a_local_state_dict_where_torchvision_imports(tmp_path):
    """Plumbing of VBench's RAFT on random raft_large weights (the real ones are Raft_Large_Weights.C_T_V1)."""
    from torchvision.models.optical_flow import raft_large

    from mora.config import ModelRef, RuntimeConfig
    from mora.evaluation.vbench import RaftFlow

    torch.save(raft_large(weights=None).state_dict(), tmp_path / "raft.pth")
    raft = RaftFlow.from_pretrained(ModelRef(id=str(tmp_path / "raft.pth")), RuntimeConfig())
    frames = pan(1.0, frames=5)[:, :60, :60]  # not a multiple of 8: padded as VBench pads
    assert raft.flow(frames[0], frames[1]).shape == (64, 64, 2)
    assert isinstance(free.is_dynamic(frames, 8.0, raft.flow), bool)


@pytest.mark.skipif(bool(importable("pyiqa.archs.musiq_arch")),
                    reason="pyiqa does not import here (it needs torchvision); runs where it does")
def test_musiq_runs_from_a_local_file_where_pyiqa_imports(tmp_path):
    from pyiqa.archs.musiq_arch import MUSIQ

    from mora.config import ModelRef, RuntimeConfig
    from mora.evaluation.vbench import Musiq

    torch.save(MUSIQ(pretrained=False).state_dict(), tmp_path / "musiq.pth")  # the form pyiqa loads
    musiq = Musiq.from_pretrained(ModelRef(id=str(tmp_path / "musiq.pth")), RuntimeConfig())
    assert np.isfinite(musiq.score(pan(1.0, frames=2)))
