"""Real-size models without downloading them: published configs, real vocabularies, streamed random weights,
and the meta-device trace (mora/models/real). The real sizes themselves are measured by bench/real_size.py."""

import inspect
import json

import pytest
import torch
from typer.testing import CliRunner

from mora.cli import app
from mora.models.real import vocab
from mora.models.real.catalogue import BY_NAME, MODELS, Part, RealModel, Weights
from mora.models.real.meter import measure, meta
from mora.models.real.stream import entries, meta_model, write_weights


@pytest.mark.parametrize("name, component, library_class", [
    ("stable-video-diffusion-img2vid-xt", "unet", "UNetSpatioTemporalConditionModel"),
    ("ltx-video", "transformer", "LTXVideoTransformer3DModel"),
    ("ltx-video", "vae", "AutoencoderKLLTXVideo"),
    ("wan2.1-i2v-14b-480p", "vae", "AutoencoderKLWan"),
])
def test_configs_equal_the_library_defaults_documented_as_the_same_model(name, component, library_class):
    import diffusers

    signature = inspect.signature(getattr(diffusers, library_class).__init__)
    defaults = {k: p.default for k, p in signature.parameters.items()}
    ours = BY_NAME[name].components[component].config
    differ = {k: v for k, v in ours.items() if k != "sample_size" and
              (list(defaults[k]) if isinstance(defaults[k], tuple) else defaults[k]) != v}
    assert not differ


def test_qwen2_vl_vision_and_bert_configs_equal_the_documented_defaults():
    import transformers

    vision = transformers.Qwen2VLConfig().to_dict()["vision_config"]
    ours = BY_NAME["qwen2-vl-7b-instruct"].components[""].config["vision_config"]
    assert {k: vision[k] for k in ours} == ours
    bert = transformers.BertConfig().to_dict()
    assert {k: bert[k] for k in BY_NAME["bert-base-uncased"].components[""].config} == \
        BY_NAME["bert-base-uncased"].components[""].config


@pytest.mark.parametrize("name", ["qwen2.5-7b-instruct", "qwen2-vl-7b-instruct", "llava-onevision-qwen2-7b-ov",
                                  "stable-diffusion-3-medium", "stable-video-diffusion-img2vid-xt", "ltx-video"])
def test_parameter_counts_are_within_two_percent_of_the_published_figures(name):
    from bench.real_size import counts

    got = counts(BY_NAME[name])
    assert got["within_2pct"], got


def test_every_catalogue_model_names_its_sources_and_its_published_figure():
    for m in MODELS:
        assert m.source and m.published[0] > 0 and m.published[1]
        assert m.kind == "pipeline" or m.pipeline is None


def test_a_meta_t5_encoder_ties_its_embeddings_as_a_loaded_one_does():
    """init_empty_weights skips post_init's tying: shared and encoder.embed_tokens were two 131M matrices."""
    model = meta_model(BY_NAME["ltx-video"].components["text_encoder"])
    assert model.shared.weight is model.encoder.embed_tokens.weight
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(4.76e9, rel=0.01)


def test_real_vocabularies_keep_their_sizes_and_special_ids():
    qwen = vocab.qwen_tokenizer(vocab.QWEN25_SPECIALS, "{{ messages }}")
    assert len(qwen) == 151_665
    assert qwen.convert_tokens_to_ids(["<|endoftext|>", "<|im_end|>", "<|vision_start|>", "<|image_pad|>",
                                       "<|video_pad|>"]) == [151643, 151645, 151652, 151655, 151656]
    text = "a red fox runs through a snowy forest at dawn"
    assert qwen.decode(qwen(text)["input_ids"]) == text and max(qwen(text)["input_ids"]) < 151_643
    clip = vocab.clip_tokenizer(pad="!")
    ids = clip(text)["input_ids"]
    assert len(clip) == 49_408 and ids[0] == 49406 and ids[-1] == 49407 and clip.pad_token_id == 0
    assert clip.decode(ids, skip_special_tokens=True).strip() == text
    t5 = vocab.sentencepiece_tokenizer(32_000, 100, 512)
    assert len(t5) == 32_100 and t5.convert_tokens_to_ids("<extra_id_0>") == 32_099
    assert t5(text)["input_ids"][-1] == 1 and t5.decode(t5(text)["input_ids"], skip_special_tokens=True) == text
    bert = vocab.bert_tokenizer()
    assert len(bert) == 30_522 and bert(text)["input_ids"][0] == 101 and bert(text)["input_ids"][-1] == 102


TINY_LM = Weights("Qwen2ForCausalLM", dict(vocab_size=300, hidden_size=64, intermediate_size=128,
                                           num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                                           tie_word_embeddings=False), shards=3, library="transformers")


def test_streamed_weights_are_sharded_as_save_pretrained_shards_and_load_back(tmp_path):
    from transformers import AutoModelForCausalLM

    written = write_weights(tmp_path, TINY_LM, torch.bfloat16)
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    files = sorted({f for f in index["weight_map"].values()})
    assert files == [f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
    assert index["metadata"]["total_size"] == written
    model = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.bfloat16)
    state = model.state_dict()
    assert set(index["weight_map"]) == set(state)
    assert all(t.dtype == torch.bfloat16 for t in state.values())
    norm = state["model.layers.0.input_layernorm.weight"]
    assert torch.equal(norm, torch.ones_like(norm))
    assert torch.count_nonzero(state["model.layers.0.self_attn.q_proj.bias"]) == 0
    w = state["model.layers.0.mlp.up_proj.weight"].float()
    assert w.std().item() == pytest.approx(64 ** -0.5, rel=0.1)
    assert not torch.equal(state["model.layers.0.mlp.up_proj.weight"], state["model.layers.1.mlp.up_proj.weight"])
    again = tmp_path / "again"
    write_weights(again, TINY_LM, torch.bfloat16)
    for name in files:
        assert (again / name).read_bytes() == (tmp_path / name).read_bytes()


def test_streamed_files_use_the_published_checkpoint_names(tmp_path):
    """transformers renames old checkpoints' keys at load; the files carry the published names."""
    spec = Weights("Qwen2VLForConditionalGeneration", dict(
        text_config=dict(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2,
                         rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [4, 2, 2]}),
        vision_config=dict(depth=1, embed_dim=32, hidden_size=64, num_heads=4)), library="transformers")
    names = {e.name for e in entries(meta_model(spec), torch.bfloat16, "transformers")}
    assert "model.embed_tokens.weight" in names and any(n.startswith("visual.blocks.0") for n in names)
    assert not any(n.startswith("model.language_model") for n in names)


def test_meter_counts_products_and_fused_attention_but_no_score_matrix():
    lin = torch.nn.Linear(256, 512, device="meta", dtype=torch.bfloat16)
    cost = measure(lambda: lin(meta(8, 100, 256)))
    assert cost.flops == 2 * 8 * 100 * 256 * 512
    assert cost.activation_peak == (8 * 100 * 256 + 8 * 100 * 512) * 2  # its input, made in the pass, and output
    q = meta(2, 8, 4096, 64)
    cost = measure(lambda: torch.nn.functional.scaled_dot_product_attention(q, q, q))
    assert cost.flops == 4 * 2 * 8 * 4096 * 4096 * 64
    assert cost.activation_peak == 2 * 8 * 4096 * 64 * 2  # the output only: 4096 x 4096 scores never held


def _tiny_sd3_model(name: str, layers: int) -> RealModel:
    """An SD3 pipeline entry with tiny sizes, sharing its T5 encoder with any other entry like it."""
    t5 = Weights("T5EncoderModel", dict(vocab_size=32128, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                                        relative_attention_num_buckets=8, feed_forward_proj="gated-gelu",
                                        is_encoder_decoder=False), library="transformers", shared="tiny-t5")
    clip = dict(vocab_size=49408, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                max_position_embeddings=77, projection_dim=32, bos_token_id=0, eos_token_id=2, pad_token_id=1)
    return RealModel(
        name=name, hub_id=f"test/{name}", kind="pipeline", pipeline="StableDiffusion3Pipeline",
        components={
            "transformer": Weights("SD3Transformer2DModel", dict(
                sample_size=8, patch_size=1, in_channels=4, num_layers=layers, attention_head_dim=8,
                num_attention_heads=4, caption_projection_dim=32, joint_attention_dim=32, pooled_projection_dim=64,
                out_channels=4)),
            "text_encoder": Weights("CLIPTextModelWithProjection", clip, library="transformers"),
            "text_encoder_2": Weights("CLIPTextModelWithProjection", clip, library="transformers"),
            "text_encoder_3": t5,
            "vae": Weights("AutoencoderKL", dict(
                in_channels=3, out_channels=3, latent_channels=4, block_out_channels=[8, 16],
                down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                layers_per_block=1, norm_num_groups=8, shift_factor=0.0609, scaling_factor=1.5305)),
            "tokenizer": Part("clip-tokenizer", shared="clip-tokenizer"),
            "tokenizer_2": Part("clip-tokenizer", {"pad": "!"}, shared="clip-tokenizer-pad"),
            "tokenizer_3": Part("t5-tokenizer", shared="t5-tokenizer"),
            "scheduler": Part("scheduler", {"cls": "FlowMatchEulerDiscreteScheduler", "shift": 3.0}),
        },
        published=(1.0, "test"), source="test")


def test_make_random_builds_shared_parts_once_and_the_agent_loads_and_steps_the_folder(tmp_path):
    import os

    from mora.agents.text_to_image import TextToImageAgent
    from mora.config import ModelRef, RuntimeConfig
    from mora.models.real.build import build_model, remove_model

    first = build_model(_tiny_sd3_model("tiny-sd3-a", 2), tmp_path, "float32")
    second = build_model(_tiny_sd3_model("tiny-sd3-b", 1), tmp_path, "float32")
    assert os.path.realpath(first / "text_encoder_3") == os.path.realpath(second / "text_encoder_3")
    assert sorted(p.name for p in (tmp_path / "_shared").iterdir()) == [
        "clip-tokenizer-files", "clip-tokenizer-pad-files", "t5-tokenizer-files", "tiny-t5-float32"]
    index = json.loads((first / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusion3Pipeline" and index["tokenizer_3"][1] == "T5Tokenizer"
    agent = TextToImageAgent.from_pretrained(ModelRef(id=str(first)), RuntimeConfig())
    assert len(agent.pipe.tokenizer_3) == 32_100
    image = agent.first_frame("a red fox", [0], 32, 32, 1, 2.0)[0]
    assert image.size == (32, 32)
    mtime = (first / ".mora-random.json").stat().st_mtime
    assert build_model(_tiny_sd3_model("tiny-sd3-a", 2), tmp_path, "float32") == first  # present: not rebuilt
    assert (first / ".mora-random.json").stat().st_mtime == mtime
    remove_model(_tiny_sd3_model("tiny-sd3-a", 2), tmp_path)
    assert not first.exists() and (tmp_path / "_shared" / "tiny-t5-float32").exists()  # b still links it
    remove_model(_tiny_sd3_model("tiny-sd3-b", 1), tmp_path)
    assert not (tmp_path / "_shared" / "tiny-t5-float32").exists()


def test_make_random_names_a_model_outside_the_catalogue_in_one_line(tiny_config_file, tmp_path):
    result = CliRunner().invoke(app, ["models", "make-random", str(tiny_config_file), str(tmp_path)])
    assert result.exit_code == 2
    assert "config field 'prompts.model.id'" in result.output and "catalogue" in result.output
    assert "Traceback" not in result.output


def test_make_random_lists_a_preset_and_prints_the_set_overrides(tmp_path):
    result = CliRunner().invoke(app, ["models", "make-random", "configs/sd35-wan-ltx.yaml", str(tmp_path), "--list",
                                      "--only", "wan2.1-i2v-14b-480p", "--only", "dinov2-base"])
    assert result.exit_code == 0, result.output
    assert "build a cut copy" in result.output and "cannot load in this machine" in result.output
    assert "would be built" in result.output
    assert f"--set generation.image_to_video.id={tmp_path}/wan2.1-i2v-14b-480p" in result.output
    assert not any(tmp_path.iterdir())


def test_make_random_list_counts_the_models_it_would_build_before_against_the_budget(tmp_path):
    """--list adds up what it would build: two models that each fit 20 GB do not fit it together."""
    result = CliRunner().invoke(app, ["models", "make-random", "configs/sd35-wan-ltx.yaml", str(tmp_path), "--list",
                                      "--max-gb", "20", "--only", "qwen2.5-7b-instruct",
                                      "--only", "stable-diffusion-3.5-medium"])
    assert result.exit_code == 0, result.output
    assert result.output.count("would be built") == 1
    assert "after the ones above" in result.output and "build it alone" in result.output


def test_the_presets_linear_aesthetic_head_is_built_as_the_file_vbench_reads(tmp_path):
    """The real presets' aesthetic head (eval.aesthetic_predictor: linear) is in the catalogue, and what
    make-random writes for it loads as the linear predictor, not as a one-layer MLP (which is refused)."""
    from pathlib import Path

    from mora.config import ModelRef, load_config
    from mora.evaluation.models import head_from_state, weights_file
    from mora.models.real.catalogue import BY_HUB_ID
    from mora.models.real.parts import MAKERS

    for preset in sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml")):
        head = load_config(preset, resolve=False).eval.aesthetic_head.id
        assert head in BY_HUB_ID or head.startswith(".mora/"), (preset.name, head)
    part = BY_HUB_ID["sa_0_4_vit_l_14_linear.pth"].components[""]
    MAKERS[part.maker](tmp_path, **part.args)
    state = torch.load(weights_file(ModelRef(id=str(tmp_path)), "eval.aesthetic_head"), weights_only=True)
    head = head_from_state(state)
    assert isinstance(head, torch.nn.Linear) and (head.in_features, head.out_features) == (768, 1)


def test_probe_cuts_every_block_stack_and_the_model_still_runs():
    from transformers import Qwen2ForCausalLM

    from mora.models.real.probe import cut_depth

    model = Qwen2ForCausalLM(Qwen2ForCausalLM.config_class(**TINY_LM.config))
    assert cut_depth(model, 1) == 2
    assert len(model.model.layers) == 1 and model.config.num_hidden_layers == 1
    out = model.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=2, min_new_tokens=2, do_sample=False)
    assert out.shape == (1, 5)


def test_probe_steps_every_form_of_a_model_on_the_weights_it_loaded(ltx_published_scheduler):
    """bench/real_size.py probes a model once with all its generation forms: LTX-Video animates and connects on
    one set of weights, and its connect form is where the real size broke (float32 copies, the scheduler's mu)."""
    import subprocess
    import sys
    from pathlib import Path

    folder = ltx_published_scheduler
    out = subprocess.run([sys.executable, "-m", "mora.models.real.probe", "configs/tiny.yaml", "image_to_video",
                          "--also", "connect", "--cut", "1", "--side", "64", "--limit-gib", "4",
                          "--set", f"generation.image_to_video.id={folder}",
                          "--set", f"generation.connect.id={folder}"],
                         capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], timeout=600)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert "error" not in result, out.stderr[-2000:]
    assert result["ok"] and result["got"] == [[1, 9, 64, 64, 3]] and result["cut_blocks"] > 0
    connect = result["also"]["connect"]
    assert connect["ok"] and connect["got"] == [[9, 64, 64, 3]]
    assert connect["cut_blocks"] == 0  # its transformer is the one already cut: the forms share their weights
