"""Which implementation measures each metric, the tables that say so, Table 5's untrained row, ties,
outside systems' videos and ``--compare``: the parts of ``mora eval`` that put systems side by side."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd
import pytest

from mora.config import ConfigError, EvalConfig, ModelRef, load_config
from mora.evaluation import reports
from mora.evaluation.implementations import choose, importable
from mora.evaluation.metrics import task_metrics
from mora.evaluation.outside import evaluate_folder
from mora.evaluation.runner import reports_dir
from mora.media import encode_mp4
from mora.procedures.inputs import InputError

EVERYTHING_IMPORTS = {"check": lambda module: ""}
NOTHING_IMPORTS = {"check": lambda module: f"{module} does not import here (ImportError: no)"}


def test_vbench_parts_are_chosen_where_they_import_and_their_weights_are_given():
    weights = {"raft": ModelRef(id="/m/raft_large_C_T_V1-22a6c225.pth"), "musiq": ModelRef(id="/m/musiq_spaq.pth")}
    real = choose(EvalConfig(**weights), **EVERYTHING_IMPORTS)
    assert real["dynamic_degree"].name == "raft" and "/m/raft_large" in real["dynamic_degree"].label
    assert real["imaging_quality"].name == "musiq" and not real["imaging_quality"].fallback
    unset = choose(EvalConfig(), **EVERYTHING_IMPORTS)  # the packages are there, the weights are not
    assert unset["dynamic_degree"].name == "farneback" and "eval.raft is not set" in unset["dynamic_degree"].fallback
    assert unset["imaging_quality"].name == "proxy" and "eval.musiq is not set" in unset["imaging_quality"].fallback
    absent = choose(EvalConfig(**weights), **NOTHING_IMPORTS)
    assert absent["dynamic_degree"].name == "farneback" and "torchvision" in absent["dynamic_degree"].fallback
    assert absent["imaging_quality"].name == "proxy" and "pyiqa" in absent["imaging_quality"].fallback
    assert "stand-in for RAFT" in absent["dynamic_degree"].label and "stand-in for MUSIQ" in absent[
        "imaging_quality"].label
    # the label names the method and weights, not the machine: two stand-ins compare whatever the reason
    assert absent["dynamic_degree"].label == unset["dynamic_degree"].label
    forced = choose(EvalConfig(dynamic_degree="farneback", **weights), **EVERYTHING_IMPORTS)
    assert forced["dynamic_degree"].name == "farneback" and not forced["dynamic_degree"].fallback


def test_naming_a_real_part_that_cannot_run_is_one_line():
    with pytest.raises(ConfigError, match=r"^config field 'eval.dynamic_degree' is raft, but torchvision[^\n]*"
                                          r"set eval.dynamic_degree=auto$"):
        choose(EvalConfig(dynamic_degree="raft", raft=ModelRef(id="/m/raft.pth")), **NOTHING_IMPORTS)
    with pytest.raises(ConfigError, match="'eval.imaging_quality' is musiq, but eval.musiq is not set"):
        choose(EvalConfig(imaging_quality="musiq"), **EVERYTHING_IMPORTS)


def test_this_machine_runs_the_stand_ins_only_where_the_real_parts_do_not_import():
    """Honest on any machine: here (no usable torchvision) the stand-ins, and the reason says why."""
    chosen = choose(EvalConfig(raft=ModelRef(id="/m/raft.pth"), musiq=ModelRef(id="/m/musiq.pth")))
    if importable("torchvision.models.optical_flow"):
        assert chosen["dynamic_degree"].name == "farneback"
        assert chosen["dynamic_degree"].fallback == importable("torchvision.models.optical_flow")
    else:
        assert chosen["dynamic_degree"].name == "raft"
    assert (chosen["imaging_quality"].name == "proxy") == bool(importable("pyiqa.archs.musiq_arch"))


def test_labels_say_every_frame_and_which_aesthetic_head():
    every, some = choose(EvalConfig(), **NOTHING_IMPORTS), choose(EvalConfig(frames=16), **NOTHING_IMPORTS)
    for m in ("object_consistency", "background_consistency", "aesthetic_score", "appearance_style"):
        assert "every frame" in every[m].label and "16 frames" in some[m].label
    assert every["motion_smoothness"].label == some["motion_smoothness"].label
    assert "VBench's" in every["aesthetic_score"].label
    mlp = choose(EvalConfig(aesthetic_predictor="mlp"), **NOTHING_IMPORTS)["aesthetic_score"].label
    assert "improved MLP" in mlp and "not VBench's" in mlp
    assert load_config("configs/tiny.yaml").eval.frames == "all" and EvalConfig().aesthetic_predictor == "linear"


def _run(label, q, kind="checkpoint", iteration=1, ablation=None, dynamic="Farneback flow (stand-in for RAFT)",
         tasks=("text-to-video",)):
    summary = {t: {m: q for m in task_metrics(t)} | {"items": 2, "missing": {}} for t in tasks}
    impl = {m: f"{m} by X" for t in tasks for m in task_metrics(t)[1:]} | {"dynamic_degree": dynamic}
    return {"label": label, "kind": kind, "iteration": iteration, "ablation": ablation, "summary": summary,
            "prompts": "own (2 videos)" if kind == "outside" else "set v1", "implementations": impl}


def _store(folder, runs):
    (folder / "runs").mkdir(parents=True, exist_ok=True)
    for r in runs:
        (folder / "runs" / f"{r['label']}.json").write_text(json.dumps(r))


def test_ties_are_all_bold_and_columns_measured_differently_are_marked_not_bolded(tmp_path):
    runs = [_run("base-tiny", 0.5, "base", 0), _run("it1", 0.5), _run("it2", 0.4, iteration=2)]
    table = reports.task_table(runs, "text-to-video")
    assert reports.best_rows(table["object_consistency"]) == [0, 1]  # a tie: both bold
    assert reports.best_rows(pd.Series([0.41234, 0.41231, 0.2])) == [0, 1]  # equal at the 4 places shown
    assert reports.best_rows(pd.Series([0.7])) == []  # one row: nothing to be best against
    assert reports.bold_cells(table, set()) == {(i, table.columns.get_loc(m)) for i in (0, 1)
                                                 for m in task_metrics("text-to-video")[:-1]}
    impl = reports.implementations(runs, "text-to-video")
    assert impl["comparable"].all() and set(impl["metric"]) == set(task_metrics("text-to-video"))
    runs.append(_run("sora", 0.6, "outside", None, dynamic="RAFT raft_large (torchvision, /m/raft.pth)"))
    impl = reports.implementations(runs, "text-to-video").set_index("metric")
    apart = set(impl.index[~impl["comparable"]])
    assert apart == {"dynamic_degree", "video_quality"}  # video quality is the mean of what differs
    assert "RAFT raft_large (torchvision, /m/raft.pth) (sora)" in impl.loc["dynamic_degree", "implementation"]
    table = reports.task_table(runs, "text-to-video")
    assert list(table["system"]) == ["sora", "base-tiny", "it1", "it2"]  # outside systems above ours
    cols = {table.columns[j] for _, j in reports.bold_cells(table, apart)}
    assert not cols & apart and "object_consistency" in cols
    _store(tmp_path, runs)
    files = reports.write_reports(tmp_path, "t")
    assert str(tmp_path / "table-text-to-video.implementations.csv") in files["tables"]
    lines = reports.notes(runs, "text-to-video", reports.implementations(runs, "text-to-video"))
    assert any(line.startswith(f"dynamic_degree {reports.MIXED} not comparable") for line in lines)
    assert "rows measured on different prompts (see the prompts column)" in lines and lines[-1] == reports.BOLD_RULE


def test_table_five_has_the_untrained_row_and_leaves_outside_systems_out(tmp_path):
    runs = [_run("base-tiny", 0.1, "base", 0), _run("it2", 0.7, iteration=2),
            _run("no-review-it2", 0.4, iteration=2, ablation="no-review"), _run("sora", 0.9, "outside", None)]
    table = reports.ablation_table(runs)
    assert list(table["system"]) == ["Mora (full)", "w/o human review", "untrained (base models)"]
    assert list(table["video_quality"]) == [0.7, 0.4, 0.1]
    assert not len(reports.ablation_table(runs[:2] + runs[3:]))  # no ablation evaluated: no Table 5
    curves = reports.curves(runs)
    assert sorted(set(curves["iteration"])) == [0, 2]  # the outside system has no iteration
    _store(tmp_path, runs)
    reports.write_reports(tmp_path, "t")
    assert list(pd.read_csv(tmp_path / "ablations.csv")["label"]) == ["it2", "no-review-it2", "base-tiny"]
    assert (tmp_path / "ablations.png").stat().st_size > 5000


def _pan_video(path, step, frames=12, size=48):
    texture = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 255, (size * 3, size * 3, 3), dtype=np.uint8),
                               (5, 5), 1.5)
    clip = np.stack([texture[size:2 * size, int(step * t):int(step * t) + size] for t in range(frames)])
    path.write_bytes(encode_mp4(clip, 8.0))
    return clip


@pytest.fixture
def outside(tiny_config_file, tmp_path):
    """Two folders of videos from two 'systems' (one still, one panning), prompts in a file or beside each."""
    cfg = load_config(tiny_config_file)
    still, moving = tmp_path / "still", tmp_path / "moving"
    for folder in (still, moving):
        folder.mkdir()
    for i in range(2):
        _pan_video(still / f"s{i}.mp4", 0.0)
        _pan_video(moving / f"m{i}.mp4", 4.0)
        (moving / f"m{i}.txt").write_text(f"a texture slides left, take {i}")
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps({"s0.mp4": "a still texture", "s1": {"prompt": "the same still texture"}}))
    return cfg, still, moving, prompts


def test_outside_videos_are_a_system_row_and_compare_puts_them_side_by_side(outside, tmp_path):
    cfg, still, moving, prompts = outside
    a = evaluate_folder(cfg, still, "still-cam", "text-to-video", prompts, log=lambda _: None)
    b = evaluate_folder(cfg, moving, "panner", "text-to-video", log=lambda _: None)
    assert a["kind"] == "outside" and a["iteration"] is None and a["summary"]["text-to-video"]["items"] == 2
    assert a["summary"]["text-to-video"]["dynamic_degree"] == 0.0 and b["summary"]["text-to-video"][
        "dynamic_degree"] == 1.0  # 4 px per frame moves, a still camera does not
    assert a["summary"]["text-to-video"]["video_length"] == pytest.approx(12 / 8)
    assert a["implementations"] == b["implementations"]
    # tiny.yaml names no RAFT weights, so the stand-in measured it on any machine, and the row says so
    assert a["implementations"]["dynamic_degree"] == choose(cfg.eval)["dynamic_degree"].label
    assert a["implementations"]["dynamic_degree"].startswith("Farneback flow (stand-in for RAFT)")
    stored = json.loads((reports_dir(cfg) / "videos" / "still-cam" / "text-to-video-s1.scores.json").read_text())
    assert stored["video"].endswith("s1.mp4") and set(task_metrics("text-to-video")) <= set(stored)
    files = reports.compare(reports_dir(cfg), ["panner", "still-cam"], tmp_path / "cmp")
    table = pd.read_csv(tmp_path / "cmp" / "table-text-to-video.csv")
    assert list(table["system"]) == ["panner", "still-cam"]  # the order asked for
    assert list(table.columns[3:5]) == ["video_quality", "object_consistency"]  # the paper's layout
    impl = pd.read_csv(tmp_path / "cmp" / "table-text-to-video.implementations.csv")
    assert impl["comparable"].all()
    assert str(tmp_path / "cmp" / "table-text-to-video.png") in files["figures"]
    with pytest.raises(InputError, match="no stored run 'sora'.*stored: panner, still-cam"):
        reports.compare(reports_dir(cfg), ["panner", "sora"])


def test_outside_videos_bad_input_is_one_line(outside, tmp_path):
    cfg, still, moving, prompts = outside
    with pytest.raises(InputError, match="video 's0.mp4' has no prompt; give --prompts FILE"):
        evaluate_folder(cfg, still, "still-cam", "text-to-video", log=lambda _: None)
    with pytest.raises(InputError, match="holds no video"):
        evaluate_folder(cfg, tmp_path, "x", "text-to-video", log=lambda _: None)
    with pytest.raises(InputError, match="--label 'a b' must be"):
        evaluate_folder(cfg, still, "a b", "text-to-video", prompts, log=lambda _: None)
    (reports_dir(cfg) / "runs").mkdir(parents=True)
    (reports_dir(cfg) / "runs" / "base-tiny.json").write_text(json.dumps({"kind": "base"}))
    with pytest.raises(InputError, match="already names one of this dataset's own runs"):
        evaluate_folder(cfg, still, "base-tiny", "text-to-video", prompts, log=lambda _: None)


def test_outside_videos_read_mora_sidecars_for_the_inputs_other_tasks_need(outside, tmp_path):
    """Extend reads where the new part starts (mora make's segment_starts); image-to-video its input image;
    a video without them is measured on what it has, the rest missing with the reason."""
    cfg, still, moving, prompts = outside
    folder = tmp_path / "extended"
    folder.mkdir()
    clip = _pan_video(folder / "e0.mp4", 2.0, frames=16)
    (folder / "e0.json").write_text(json.dumps({"prompt": "it keeps sliding", "segment_starts": [0, 8]}))
    _pan_video(folder / "e1.mp4", 2.0, frames=16)
    (folder / "e1.txt").write_text("it keeps sliding")
    run = evaluate_folder(cfg, folder, "extender", "extend", log=lambda _: None)
    summary = run["summary"]["extend"]
    assert summary["temporal_consistency"] is not None and summary["temporal_style"] is not None
    assert summary["missing"]["temporal_consistency"] == {"items": 1, "reasons": [
        "no input video was given for this extended video"]}
    images = tmp_path / "i2v"
    images.mkdir()
    _pan_video(images / "v0.mp4", 1.0)
    cv2.imwrite(str(images / "first.png"), clip[0])
    (images / "v0.json").write_text(json.dumps({"prompt": "the texture drifts", "image": "first.png"}))
    run = evaluate_folder(cfg, images, "animator", "image-to-video", log=lambda _: None)
    assert run["summary"]["image-to-video"]["missing"]["video_text_integration"]["reasons"] == [
        "the image captioner returned an empty caption"]  # the image was found; the tiny captioner says nothing
