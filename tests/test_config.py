from pathlib import Path

import pytest

from mora.config import ConfigError, load_config, parse_overrides

REPO = Path(__file__).resolve().parents[1]


def test_presets_validate():
    cfg = load_config(REPO / "configs" / "tiny.yaml")
    assert cfg.generation.candidates == 4
    assert [j.family for j in cfg.judges] == ["llava-onevision", "qwen2-vl"]
    real = load_config(REPO / "configs" / "sd3-svd-7b.yaml")
    assert real.runtime.dtype == "bfloat16" and "stable-video-diffusion" in real.generation.image_to_video.id
    served = load_config(REPO / "configs" / "sd3-svd-vllm.yaml")
    assert [j.backend for j in served.judges] == ["openai", "openai"]
    assert served.judges[1].server.base_url.startswith("http://127.0.0.1:")


@pytest.mark.parametrize("overrides, message", [
    ({"judges.0.backend": "openai"}, r"judges.0'.*needs server.base_url.*--set judges.0.FIELD=VALUE"),
    ({"judges.0.server.base_url": "http://127.0.0.1:8000/v1"}, r"judges.0'.*server is only read by backend"),
    ({"judges.1.backend": "openai", "judges.1.server.base_url": "127.0.0.1:8000"}, r"judges.1.server.base_url"),
    ({"judges.1.method": "best-guess"}, r"judges.1.method"),
])
def test_judge_backend_settings_are_checked_at_the_edge(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(REPO / "configs" / "tiny.yaml", overrides)


def test_overrides_apply_and_change_the_round_id():
    base = load_config(REPO / "configs" / "tiny.yaml")
    cfg = load_config(REPO / "configs" / "tiny.yaml", {"prompts.count": "3", "generation.fps": "12.5"})
    assert cfg.prompts.count == 3 and cfg.generation.fps == 12.5
    assert cfg.round_id != base.round_id
    same_but_root = load_config(REPO / "configs" / "tiny.yaml", {"shards.root": "/elsewhere"})
    assert same_but_root.round_id == base.round_id


@pytest.mark.parametrize("overrides, field", [
    ({"generation.num_frames": "-1"}, "generation.num_frames"),
    ({"generation.height": "70"}, "generation.height"),
    ({"runtime.dtype": "float8"}, "runtime.dtype"),
    ({"judges.0": "null"}, "judges.0"),
    ({"prompts.colour": "red"}, "prompts.colour"),
    ({"shards.dataset": "../escape"}, "shards.dataset"),
])
def test_invalid_values_name_the_field_on_one_line(overrides, field):
    with pytest.raises(ConfigError) as err:
        load_config(REPO / "configs" / "tiny.yaml", overrides)
    message = str(err.value)
    assert "\n" not in message
    assert f"'{field}'" in message and "--set" in message


def test_judges_must_be_two_with_distinct_names(tmp_path):
    text = (REPO / "configs" / "tiny.yaml").read_text().replace("name: qwen2-vl", "name: llava-onevision")
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"^config: judges: the two judges need different names; fix it in .*c\.yaml "
                                          "or override with --set FIELD=VALUE$"):  # no '(top level).FIELD'
        load_config(tmp_path / "c.yaml")


def test_bad_files_and_override_syntax(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("prompts: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="field.path=VALUE"):
        parse_overrides(["prompts.count"])


def test_the_engine_and_its_workers_are_no_part_of_the_round_id():
    tiny = load_config(REPO / "configs" / "tiny.yaml")
    on_ray = load_config(REPO / "configs" / "tiny.yaml", {
        "runtime.engine": "ray", "runtime.ray.generators.workers": "8", "runtime.ray.address": "auto",
        "runtime.lease_s": "60"})
    assert on_ray.round_id == tiny.round_id and on_ray.runtime.ray.generators.workers == 8
    gpu = load_config(REPO / "configs" / "ray-gpu.yaml")
    assert gpu.runtime.engine == "ray" and gpu.runtime.ray.generators.gpus == 1
    assert gpu.judges[0].server.urls == ["http://127.0.0.1:8001/v1"]


@pytest.mark.parametrize("overrides, message", [
    ({"runtime.engine": "dask"}, r"runtime.engine.*'local' or 'ray'"),
    ({"runtime.ray.address": "my-cluster"}, r"runtime.ray.address.*ray://HOST:10001"),
    ({"runtime.ray.generators.workers": "0"}, r"runtime.ray.generators.workers"),
])
def test_engine_settings_are_checked_at_the_edge(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(REPO / "configs" / "tiny.yaml", overrides)


def test_a_set_into_a_section_the_preset_leaves_out_keeps_that_sections_defaults():
    """Found at real size: ray-gpu.yaml has no eval section, so pointing its default captioner at a local folder
    (--set eval.image_captioner.model.id=DIR, what make-random prints) lost the captioner's family."""
    cfg = load_config("configs/ray-gpu.yaml", {"eval.image_captioner.model.id": "/models/llava-0.5b",
                                               "eval.video_captioner.model.id": "/models/qwen2-vl-2b"})
    assert cfg.eval.image_captioner.family == "llava-onevision"
    assert cfg.eval.image_captioner.model.id == "/models/llava-0.5b"
    assert cfg.eval.video_captioner.family == "qwen2-vl" and cfg.eval.items_per_task == 8


def test_caption_dropout_is_refused_where_it_would_be_ignored():
    """The preference objective conditions both candidates on their prompt: a dropout there would do nothing."""
    with pytest.raises(ConfigError, match=r"^config field 'training': training.caption_dropout applies to objectives "
                                          r"paper and per-agent; .* set it to 0 or change training.objective"):
        load_config(REPO / "configs" / "tiny.yaml", {"training.objective": "preference",
                                                     "training.caption_dropout": "0.1"})
    with pytest.raises(ConfigError, match=r"'training.caption_dropout': Input should be less than 1"):
        load_config(REPO / "configs" / "tiny.yaml", {"training.caption_dropout": "1"})
    cfg = load_config(REPO / "configs" / "tiny.yaml", {"training.caption_dropout": "0.1"})
    assert cfg.training.caption_dropout == 0.1
