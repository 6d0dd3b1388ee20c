"""Tiny random-weight models for every family a round uses, built offline from configs.

They are saved with ``save_pretrained`` and the rest of mora loads them with ``from_pretrained``,
exactly as it loads real weights; only their sizes differ.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from mora.judges.processors import image_only
from mora.models.tiny_eval import EVAL_BUILDERS
from mora.models.tiny_vocab import canonical
from mora.prompts.synthesizer import corpus

QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                 "<|image_pad|>", "<|video_pad|>"]
LLAVA_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"]

# Chat templates in the shape of the real models' ones, so the same code formats prompts for both.
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}"
    "{% elif part['type'] == 'image' %}{{ image_markup }}"
    "{% elif part['type'] == 'video' %}{{ video_markup }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
QWEN_VL_TEMPLATE = CHATML.replace("{{ image_markup }}", "<|vision_start|><|image_pad|><|vision_end|>").replace(
    "{{ video_markup }}", "<|vision_start|><|video_pad|><|vision_end|>")
LLAVA_TEMPLATE = CHATML.replace("{{ image_markup }}", "<image>").replace("{{ video_markup }}", "<video>")
TEXT_TEMPLATE = CHATML.replace("{{ image_markup }}", "").replace("{{ video_markup }}", "")



def _qwen_tokenizer(specials: list[str], template: str):
    from transformers import Qwen2Tokenizer

    tok = canonical(Qwen2Tokenizer().train_new_from_iterator(corpus(), vocab_size=700, new_special_tokens=specials),
                    corpus())
    tok.chat_template = template
    tok.eos_token, tok.pad_token = "<|im_end|>", "<|endoftext|>"
    return tok


def _t5_parts():
    from transformers import T5Config, T5EncoderModel, T5Tokenizer

    tok = canonical(T5Tokenizer(extra_ids=0).train_new_from_iterator(corpus(), vocab_size=400), corpus())
    config = T5Config(vocab_size=len(tok), d_model=32, d_ff=37, d_kv=8, num_layers=2, num_heads=4,
                      relative_attention_num_buckets=8, pad_token_id=tok.pad_token_id,
                      eos_token_id=tok.eos_token_id)
    return tok, T5EncoderModel(config)


def _clip_text_parts():
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, CLIPTokenizer

    tok = canonical(CLIPTokenizer().train_new_from_iterator(corpus(), vocab_size=500), corpus())
    tok.model_max_length = 77
    config = CLIPTextConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=37, num_attention_heads=4,
                            num_hidden_layers=2, projection_dim=32, bos_token_id=tok.bos_token_id,
                            eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                            max_position_embeddings=77)
    return tok, CLIPTextModelWithProjection(config)


def _add_video_processor(out: Path, **settings) -> None:
    """Record the video processor next to the image one, for machines where torchvision imports.

    Video processor classes cannot be built without torchvision, so the entry is written as the
    nested config that ``AutoVideoProcessor`` reads from ``processor_config.json``.
    """
    path = out / "processor_config.json"
    config = json.loads(path.read_text())
    image = config["image_processor"]
    config["video_processor"] = {"do_convert_rgb": True, "do_normalize": True, "do_rescale": True,
                                 "do_resize": True, "do_sample_frames": False, "image_mean": image["image_mean"],
                                 "image_std": image["image_std"], "rescale_factor": image["rescale_factor"],
                                 "resample": image["resample"], **settings}
    path.write_text(json.dumps(config, indent=2))


def build_prompt_llm(out: Path) -> None:
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    tok = _qwen_tokenizer(QWEN_SPECIALS[:3], TEXT_TEMPLATE)
    config = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         tie_word_embeddings=True, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                         bos_token_id=tok.pad_token_id)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model.save_pretrained(out)
    tok.save_pretrained(out)


def build_sd3(out: Path) -> None:
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )

    tok, enc = _clip_text_parts()
    tok2, enc2 = _clip_text_parts()
    tok3, enc3 = _t5_parts()
    transformer = SD3Transformer2DModel(sample_size=16, patch_size=1, in_channels=4, num_layers=1,
                                        attention_head_dim=8, num_attention_heads=4, caption_projection_dim=32,
                                        joint_attention_dim=32, pooled_projection_dim=64, out_channels=4)
    vae = AutoencoderKL(sample_size=64, in_channels=3, out_channels=3, block_out_channels=(8, 16, 16),
                        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
                        layers_per_block=1, latent_channels=4, norm_num_groups=8, use_quant_conv=False,
                        use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035)
    pipe = StableDiffusion3Pipeline(transformer=transformer, vae=vae, scheduler=FlowMatchEulerDiscreteScheduler(),
                                    text_encoder=enc, tokenizer=tok, text_encoder_2=enc2, tokenizer_2=tok2,
                                    text_encoder_3=enc3, tokenizer_3=tok3)
    pipe.save_pretrained(out)


def _clip_text_model():
    from transformers import CLIPTextModel

    tok, with_projection = _clip_text_parts()
    return tok, CLIPTextModel(with_projection.config)


def _small_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(sample_size=64, in_channels=3, out_channels=3, block_out_channels=(8, 16),
                         down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                         layers_per_block=1, latent_channels=4, norm_num_groups=8)


def build_sdxl(out: Path) -> None:
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel

    tok, enc = _clip_text_model()
    tok2, enc2 = _clip_text_parts()
    unet = UNet2DConditionModel(block_out_channels=(16, 32), layers_per_block=1, sample_size=32, in_channels=4,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(2, 4),
                                use_linear_projection=True, addition_embed_type="text_time",
                                addition_time_embed_dim=8, transformer_layers_per_block=(1, 1),
                                projection_class_embeddings_input_dim=6 * 8 + 32, cross_attention_dim=64,
                                norm_num_groups=8)
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, steps_offset=1,
                                       beta_schedule="scaled_linear", timestep_spacing="leading")
    StableDiffusionXLPipeline(unet=unet, scheduler=scheduler, vae=_small_vae(), text_encoder=enc, tokenizer=tok,
                              text_encoder_2=enc2, tokenizer_2=tok2).save_pretrained(out)


def build_instruct_pix2pix(out: Path) -> None:
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionInstructPix2PixPipeline, UNet2DConditionModel

    tok, enc = _clip_text_model()
    unet = UNet2DConditionModel(block_out_channels=(16, 32), layers_per_block=1, sample_size=32, in_channels=8,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                                attention_head_dim=4, norm_num_groups=8)
    scheduler = EulerAncestralDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    StableDiffusionInstructPix2PixPipeline(vae=_small_vae(), text_encoder=enc, tokenizer=tok, unet=unet,
                                           scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                           requires_safety_checker=False).save_pretrained(out)


def build_svd(out: Path) -> None:
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        StableVideoDiffusionPipeline,
        UNetSpatioTemporalConditionModel,
    )
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    unet = UNetSpatioTemporalConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=8, out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"), cross_attention_dim=32,
        num_attention_heads=8, projection_class_embeddings_input_dim=96, addition_time_embed_dim=32)
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", interpolation_type="linear",
        prediction_type="v_prediction", sigma_max=700.0, sigma_min=0.002, steps_offset=1, timestep_spacing="leading",
        timestep_type="continuous", use_karras_sigmas=True)
    vae = AutoencoderKLTemporalDecoder(block_out_channels=[32, 64], in_channels=3, out_channels=3,
                                       down_block_types=["DownEncoderBlock2D"] * 2, latent_channels=4)
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(  # SVD resizes to 224 for its image encoder
        hidden_size=32, projection_dim=32, num_hidden_layers=2, num_attention_heads=4, image_size=224,
        intermediate_size=37, patch_size=32))
    StableVideoDiffusionPipeline(unet=unet, image_encoder=encoder, scheduler=scheduler, vae=vae,
                                 feature_extractor=CLIPImageProcessor(crop_size=224, size=224)).save_pretrained(out)


def _build_wan(out: Path, first_and_last: bool) -> None:
    from diffusers import (
        AutoencoderKLWan,
        FlowMatchEulerDiscreteScheduler,
        WanImageToVideoPipeline,
        WanTransformer3DModel,
    )
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel, UMT5Config, UMT5EncoderModel

    tok, t5 = _t5_parts()
    encoder = UMT5EncoderModel(UMT5Config(**{k: getattr(t5.config, k) for k in (
        "vocab_size", "d_model", "d_ff", "d_kv", "num_layers", "num_heads", "relative_attention_num_buckets",
        "pad_token_id", "eos_token_id")}))
    image_encoder = CLIPVisionModel(CLIPVisionConfig(hidden_size=4, projection_dim=4, num_hidden_layers=2,
                                                     num_attention_heads=2, image_size=32, intermediate_size=16,
                                                     patch_size=4))
    # first+last frame models embed the tokens of two images (65 each here), so they always need both
    extra = {"pos_embed_seq_len": 2 * 65} if first_and_last else {}
    transformer = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12,
                                        in_channels=36, out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32,
                                        num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
                                        rope_max_seq_len=32, image_dim=4, **extra)
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])
    WanImageToVideoPipeline(transformer=transformer, vae=vae, scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
                            text_encoder=encoder, tokenizer=tok, image_encoder=image_encoder,
                            image_processor=CLIPImageProcessor(crop_size=32, size=32)).save_pretrained(out)


def build_wan_i2v(out: Path) -> None:
    _build_wan(out, first_and_last=False)


def build_wan_flf2v(out: Path) -> None:
    _build_wan(out, first_and_last=True)


def build_ltx_i2v(out: Path) -> None:
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXImageToVideoPipeline,
        LTXVideoTransformer3DModel,
    )

    tok, enc = _t5_parts()
    transformer = LTXVideoTransformer3DModel(in_channels=8, out_channels=8, patch_size=1, patch_size_t=1,
                                             num_attention_heads=4, attention_head_dim=8, cross_attention_dim=32,
                                             num_layers=1, caption_channels=32)
    vae = AutoencoderKLLTXVideo(in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8, 8, 8, 8),
                                decoder_block_out_channels=(8, 8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
                                decoder_layers_per_block=(1, 1, 1, 1, 1),
                                spatio_temporal_scaling=(True, True, True, False),
                                decoder_spatio_temporal_scaling=(True, True, True, False),
                                decoder_inject_noise=(False,) * 5, upsample_residual=(False,) * 4,
                                upsample_factor=(1,) * 4, timestep_conditioning=False, patch_size=1,
                                patch_size_t=1, encoder_causal=True, decoder_causal=False)
    pipe = LTXImageToVideoPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=enc,
                                   tokenizer=tok, transformer=transformer)
    pipe.save_pretrained(out)


def build_qwen2_vl(out: Path) -> None:
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLImageProcessor, Qwen2VLProcessor

    tok = _qwen_tokenizer(QWEN_SPECIALS, QWEN_VL_TEMPLATE)
    ids = {t: tok.convert_tokens_to_ids(t) for t in QWEN_SPECIALS}
    config = Qwen2VLConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [1, 1, 2]},
                         eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
                         bos_token_id=ids["<|endoftext|>"]),
        vision_config=dict(depth=1, embed_dim=32, hidden_size=32, num_heads=4, mlp_ratio=2, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2, in_channels=3),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True)
    Qwen2VLForConditionalGeneration(config).save_pretrained(out)
    image_processor = Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=112 * 112)
    image_only(Qwen2VLProcessor)(image_processor=image_processor, tokenizer=tok,
                                 chat_template=QWEN_VL_TEMPLATE).save_pretrained(out)
    _add_video_processor(out, video_processor_type="Qwen2VLVideoProcessor", patch_size=14, temporal_patch_size=2,
                         merge_size=2, size={"shortest_edge": 56 * 56, "longest_edge": 112 * 112 * 2})


def build_llava_onevision(out: Path) -> None:
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessor,
        LlavaOnevisionProcessor,
    )

    tok = _qwen_tokenizer(LLAVA_SPECIALS, LLAVA_TEMPLATE)
    config = LlavaOnevisionConfig(
        text_config=dict(model_type="qwen2", vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=4096, eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
                         pad_token_id=tok.convert_tokens_to_ids("<|endoftext|>")),
        vision_config=dict(model_type="siglip_vision_model", hidden_size=32, intermediate_size=37,
                           num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8),
        image_token_index=tok.convert_tokens_to_ids("<image>"), video_token_index=tok.convert_tokens_to_ids("<video>"),
        image_grid_pinpoints=[[32, 32]], vision_feature_layer=-1, vision_feature_select_strategy="full",
        tie_word_embeddings=True)
    LlavaOnevisionForConditionalGeneration(config).save_pretrained(out)
    side = {"height": 32, "width": 32}
    image_processor = LlavaOnevisionImageProcessor(size=side, crop_size=side,
                                                   image_grid_pinpoints=[[32, 32]], do_pad=True)
    image_only(LlavaOnevisionProcessor)(image_processor=image_processor, tokenizer=tok, num_image_tokens=16,
                                        vision_feature_select_strategy="full",
                                        chat_template=LLAVA_TEMPLATE).save_pretrained(out)
    _add_video_processor(out, video_processor_type="LlavaOnevisionVideoProcessor", size=side)


BUILDERS: dict[str, Callable[[Path], None]] = {
    "prompt-llm": build_prompt_llm,
    "sd3": build_sd3,
    "ltx-i2v": build_ltx_i2v,
    "sdxl": build_sdxl,
    "instruct-pix2pix": build_instruct_pix2pix,
    "svd": build_svd,
    "wan-i2v": build_wan_i2v,
    "wan-flf2v": build_wan_flf2v,
    "qwen2-vl": build_qwen2_vl,
    "llava-onevision": build_llava_onevision,
    **EVAL_BUILDERS,  # the evaluation's models (mora eval)
}


def all_builders(tastes: tuple[str, ...] = ()) -> dict[str, Callable[[Path], None]]:
    """The random tiny models, then (for ``tastes``) the taught ones of configs/tiny-learns.yaml."""
    if not tastes:
        return BUILDERS
    from mora.models.learns import learns_builders

    return BUILDERS | learns_builders(tastes)


def _build_one(root: Path, name: str, build: Callable[[Path], None], seed: int, force: bool) -> Path | None:
    """Build ``name`` under a temporary name, then move it in place; None when it was built already."""
    out = root / name
    marker = out / ".mora-tiny.json"
    if marker.exists() and not force:
        return None
    tmp = root / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    torch.manual_seed(seed)
    build(tmp)
    (tmp / ".mora-tiny.json").write_text(json.dumps({"component": name, "seed": seed}))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def _build_chain(root: Path, tastes: tuple[str, ...], names: list[str], seed: int, force: bool) -> list[Path]:
    from mora.models.learns import learns_builders

    builders = learns_builders(tastes)
    return [p for name in names if (p := _build_one(root, name, builders[name], seed, force)) is not None]


def make_tiny(root: Path, seed: int = 0, force: bool = False, tastes: tuple[str, ...] = (),
              workers: int = 1) -> list[Path]:
    """Build every missing tiny model under ``root``; a folder counts as built once its marker exists.
    ``tastes``: also the generator and judges of configs/tiny-learns.yaml, judges taught these properties, their
    independent chains in up to ``workers`` processes (each teaches on one thread: the same bytes either way)."""
    built = [p for name, build in BUILDERS.items() if (p := _build_one(root, name, build, seed, force)) is not None]
    if not tastes:
        return built
    from mora.models.learns import learns_chains

    chains = learns_chains(tastes)
    if workers <= 1:
        return built + [p for names in chains for p in _build_chain(root, tastes, names, seed, force)]
    with ProcessPoolExecutor(min(workers, len(chains)), mp_context=multiprocessing.get_context("spawn")) as pool:
        jobs = [pool.submit(_build_chain, root, tastes, names, seed, force) for names in chains]
        return built + [p for job in jobs for p in job.result()]
