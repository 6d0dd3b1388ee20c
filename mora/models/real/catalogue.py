"""The real models the presets name, as their published configurations say they are built.

Every number below is copied from the model's published ``config.json`` (or ``model_index.json``,
``scheduler_config.json``, ``preprocessor_config.json``) at the address in ``source``; ``checked`` names a
public copy of the same numbers that this project could read (the hub itself cannot be reached from
here). Fields a library fills with the same default are left out. ``published`` is the parameter count
the authors state, and where they state it; ``bench/real_size.py`` counts the built model against it.
``shards`` is the number of safetensors files of the published checkpoint, kept so a sharded load is
what gets tested.
"""

from __future__ import annotations

from dataclasses import dataclass, field

HF = "https://huggingface.co/"


@dataclass(frozen=True)
class Weights:
    """A model with weights: its library class, its constructor arguments (the config), its shard count."""

    cls: str
    config: dict
    shards: int = 1
    library: str = "diffusers"
    shared: str | None = None  # one folder under DIR/_shared serves every pipeline that names it


@dataclass(frozen=True)
class Part:
    """A component without weights: a tokenizer, scheduler or processor, made by ``mora.models.real.parts``."""

    maker: str
    args: dict = field(default_factory=dict)
    shared: str | None = None


@dataclass(frozen=True)
class RealModel:
    name: str                       # folder under DIR
    hub_id: str                     # what the presets name
    kind: str                       # pipeline | causal-lm | vlm | transformers | aesthetic-head
    components: dict                # component folder -> Weights | Part ("" = the folder itself)
    published: tuple[float, str]    # (parameters, where the authors say so)
    source: str                     # where the configuration numbers come from
    checked: str = ""               # a public copy of those numbers read while writing this file
    pipeline: str | None = None     # diffusers pipeline class (model_index.json)
    published_part: str | None = None  # the component the published figure counts (None: all weights)
    # what the published figure counts: "parameters", or "checkpoint" (parameters and saved buffers such as a
    # position table the original checkpoint stores as weights); tensors whose names hold ``excluded`` are not in it
    counts: str = "parameters"
    excluded: tuple[str, ...] = ()

    @property
    def weights(self) -> dict[str, Weights]:
        return {k: v for k, v in self.components.items() if isinstance(v, Weights)}


# --- shared text encoders -------------------------------------------------------------------------

# google/t5-v1_1-xxl's encoder: SD3's text_encoder_3 and LTX-Video's text_encoder (same config.json)
T5_XXL = Weights("T5EncoderModel", dict(
    vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
    relative_attention_num_buckets=32, relative_attention_max_distance=128, dropout_rate=0.1,
    layer_norm_epsilon=1e-6, feed_forward_proj="gated-gelu", is_encoder_decoder=False, tie_word_embeddings=False,
    pad_token_id=0, eos_token_id=1, decoder_start_token_id=0), shards=2, library="transformers", shared="t5-v1_1-xxl")
T5_TOKENIZER = Part("t5-tokenizer", shared="t5-v1_1-xxl-tokenizer")

# CLIP ViT-L/14 text tower (openai/clip-vit-large-patch14 text_config; SD1.x, SDXL text_encoder, SD3)
CLIP_L_TEXT = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                   num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768,
                   bos_token_id=0, eos_token_id=2, pad_token_id=1)
# OpenCLIP ViT-bigG/14 text tower (SDXL text_encoder_2, SD3 text_encoder_2)
CLIP_G_TEXT = dict(vocab_size=49408, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
                   num_attention_heads=20, max_position_embeddings=77, hidden_act="gelu", projection_dim=1280,
                   bos_token_id=0, eos_token_id=2, pad_token_id=1)
# OpenCLIP ViT-H/14 image tower (SVD image_encoder, Wan 2.1 I2V image_encoder)
CLIP_H_VISION = dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16,
                     patch_size=14, image_size=224, projection_dim=1024, hidden_act="gelu")

SD3_CLIP_L = Weights("CLIPTextModelWithProjection", CLIP_L_TEXT, library="transformers", shared="sd3-clip-l")
SD3_CLIP_G = Weights("CLIPTextModelWithProjection", CLIP_G_TEXT, library="transformers", shared="sd3-clip-g")
SD3_VAE = Weights("AutoencoderKL", dict(
    in_channels=3, out_channels=3, latent_channels=16, block_out_channels=[128, 256, 512, 512],
    down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4, layers_per_block=2,
    norm_num_groups=32, sample_size=1024, scaling_factor=1.5305, shift_factor=0.0609, use_quant_conv=False,
    use_post_quant_conv=False, force_upcast=True), shared="sd3-vae")
SD3_PARTS = {
    "text_encoder": SD3_CLIP_L, "text_encoder_2": SD3_CLIP_G, "text_encoder_3": T5_XXL, "vae": SD3_VAE,
    "tokenizer": Part("clip-tokenizer", shared="clip-tokenizer"),
    "tokenizer_2": Part("clip-tokenizer", {"pad": "!"}, shared="clip-tokenizer-pad"),
    "tokenizer_3": T5_TOKENIZER,
    "scheduler": Part("scheduler", {"cls": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000,
                                    "shift": 3.0}),
}
SD3_TRANSFORMER = dict(sample_size=128, patch_size=2, in_channels=16, out_channels=16, num_layers=24,
                       attention_head_dim=64, num_attention_heads=24, joint_attention_dim=4096,
                       caption_projection_dim=1536, pooled_projection_dim=2048)

SD_UNET_BLOCKS = dict(  # Stable Diffusion 1.x's UNet layout (runwayml/stable-diffusion-v1-5 unet/config.json)
    block_out_channels=[320, 640, 1280, 1280], layers_per_block=2, attention_head_dim=8, cross_attention_dim=768,
    down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3, norm_num_groups=32, sample_size=64)
SD_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=[128, 256, 512, 512],
              down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
              layers_per_block=2, norm_num_groups=32)
CLIP_IMAGE_224 = Part("clip-image-processor", {"side": 224})

MODELS: list[RealModel] = [
    # --- prompt agent -------------------------------------------------------------------------------
    RealModel(
        name="qwen2.5-7b-instruct", hub_id="Qwen/Qwen2.5-7B-Instruct", kind="causal-lm",
        components={
            "": Weights("Qwen2ForCausalLM", dict(
                vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                num_attention_heads=28, num_key_value_heads=4, hidden_act="silu", max_position_embeddings=32768,
                rms_norm_eps=1e-6, rope_theta=1000000.0, sliding_window=131072, max_window_layers=28,
                use_sliding_window=False, tie_word_embeddings=False, bos_token_id=151643, eos_token_id=151645),
                shards=4, library="transformers"),
            "tokenizer": Part("qwen-tokenizer", {"template": "qwen2.5"}),
            "generation": Part("generation-config", {"bos_token_id": 151643, "pad_token_id": 151643,
                                                     "eos_token_id": [151645, 151643], "do_sample": True,
                                                     "temperature": 0.7, "top_p": 0.8, "top_k": 20,
                                                     "repetition_penalty": 1.05}),
        },
        published=(7.61e9, HF + "Qwen/Qwen2.5-7B-Instruct (model card: 'Number of Parameters: 7.61B')"),
        source=HF + "Qwen/Qwen2.5-7B-Instruct/blob/main/config.json",
        checked="volcengine/verl tests/utils/test_flops_counter.py (config quoted as Qwen/Qwen2.5-7B-Instruct)"),
    # --- judges -------------------------------------------------------------------------------------
    RealModel(
        name="qwen2-vl-7b-instruct", hub_id="Qwen/Qwen2-VL-7B-Instruct", kind="vlm",
        components={
            "": Weights("Qwen2VLForConditionalGeneration", dict(
                text_config=dict(
                    vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                    num_attention_heads=28, num_key_value_heads=4, hidden_act="silu", max_position_embeddings=32768,
                    rms_norm_eps=1e-6, sliding_window=32768, max_window_layers=28, use_sliding_window=False,
                    tie_word_embeddings=False, bos_token_id=151643, eos_token_id=151645,
                    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]}),
                vision_config=dict(depth=32, embed_dim=1280, hidden_size=3584, hidden_act="quick_gelu", mlp_ratio=4,
                                   num_heads=16, in_channels=3, patch_size=14, spatial_merge_size=2,
                                   temporal_patch_size=2),
                image_token_id=151655, video_token_id=151656, vision_start_token_id=151652,
                vision_end_token_id=151653, tie_word_embeddings=False), shards=5, library="transformers"),
            "processor": Part("qwen2-vl-processor", {
                # preprocessor_config.json: pixels per image between 4 and 16384 patches of 28x28
                "min_pixels": 3136, "max_pixels": 12845056,
                # video frames: qwen-vl-utils' VIDEO_MIN_PIXELS / VIDEO_MAX_PIXELS (128 and 768 patches of 28x28)
                "video_min_pixels": 128 * 28 * 28, "video_max_pixels": 768 * 28 * 28}),
        },
        published=(8.29e9, HF + "Qwen/Qwen2-VL-7B-Instruct (safetensors metadata: 8.29B params)"),
        source=HF + "Qwen/Qwen2-VL-7B-Instruct/blob/main/config.json and preprocessor_config.json",
        checked="transformers 5.23 Qwen2VLConfig vision defaults, documented as Qwen2-VL-7B-Instruct's (equal: "
                "tests/test_real_models.py)"),
    RealModel(
        name="llava-onevision-qwen2-7b-ov", hub_id="llava-hf/llava-onevision-qwen2-7b-ov-hf", kind="vlm",
        components={
            "": Weights("LlavaOnevisionForConditionalGeneration", dict(
                text_config=dict(
                    model_type="qwen2", vocab_size=152128, hidden_size=3584, intermediate_size=18944,
                    num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4, hidden_act="silu",
                    max_position_embeddings=32768, rms_norm_eps=1e-6, rope_theta=1000000.0, sliding_window=131072,
                    max_window_layers=28, use_sliding_window=False, tie_word_embeddings=False,
                    bos_token_id=151643, eos_token_id=151645),
                vision_config=dict(model_type="siglip_vision_model", hidden_size=1152, image_size=384,
                                   intermediate_size=4304, num_attention_heads=16, num_hidden_layers=26,
                                   patch_size=14, vision_use_head=False),
                image_token_index=151646, video_token_index=151647, projector_hidden_act="gelu",
                vision_feature_layer=-1, vision_feature_select_strategy="full", vision_aspect_ratio="anyres_max_9",
                image_grid_pinpoints=[[384 * i, 384 * j] for i in range(1, 7) for j in range(1, 7)],
                tie_word_embeddings=False), shards=4, library="transformers"),
            "processor": Part("llava-onevision-processor", {"side": 384, "num_image_tokens": 729}),
        },
        published=(8.03e9, HF + "llava-hf/llava-onevision-qwen2-7b-ov-hf (safetensors metadata: 8.03B params)"),
        source=HF + "llava-hf/llava-onevision-qwen2-7b-ov-hf/blob/main/config.json, preprocessor_config.json, "
                    "processor_config.json, chat_template.json",
        checked="transformers tests/models/llava_onevision/test_processing_llava_onevision.py (chat template)"),
    # the evaluation's default captioners (EvalConfig), for presets without an eval section (ray-gpu)
    RealModel(
        name="qwen2-vl-2b-instruct", hub_id="Qwen/Qwen2-VL-2B-Instruct", kind="vlm",
        components={
            "": Weights("Qwen2VLForConditionalGeneration", dict(
                text_config=dict(
                    vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                    num_attention_heads=12, num_key_value_heads=2, hidden_act="silu", max_position_embeddings=32768,
                    rms_norm_eps=1e-6, sliding_window=32768, max_window_layers=28, use_sliding_window=False,
                    tie_word_embeddings=True, bos_token_id=151643, eos_token_id=151645,
                    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]}),
                vision_config=dict(depth=32, embed_dim=1280, hidden_size=1536, hidden_act="quick_gelu", mlp_ratio=4,
                                   num_heads=16, in_channels=3, patch_size=14, spatial_merge_size=2,
                                   temporal_patch_size=2),
                image_token_id=151655, video_token_id=151656, vision_start_token_id=151652,
                vision_end_token_id=151653, tie_word_embeddings=True), shards=2, library="transformers"),
            "processor": Part("qwen2-vl-processor", {"min_pixels": 3136, "max_pixels": 12845056,
                                                     "video_min_pixels": 128 * 28 * 28,
                                                     "video_max_pixels": 768 * 28 * 28}),
        },
        published=(2.21e9, HF + "Qwen/Qwen2-VL-2B-Instruct (safetensors metadata: 2.21B params)"),
        source=HF + "Qwen/Qwen2-VL-2B-Instruct/blob/main/config.json"),
    RealModel(
        name="llava-onevision-qwen2-0.5b-ov", hub_id="llava-hf/llava-onevision-qwen2-0.5b-ov-hf", kind="vlm",
        components={
            "": Weights("LlavaOnevisionForConditionalGeneration", dict(
                text_config=dict(
                    model_type="qwen2", vocab_size=151936, hidden_size=896, intermediate_size=4864,
                    num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2, hidden_act="silu",
                    max_position_embeddings=32768, rms_norm_eps=1e-6, rope_theta=1000000.0, sliding_window=131072,
                    max_window_layers=24, use_sliding_window=False, tie_word_embeddings=True,
                    bos_token_id=151643, eos_token_id=151645),
                vision_config=dict(model_type="siglip_vision_model", hidden_size=1152, image_size=384,
                                   intermediate_size=4304, num_attention_heads=16, num_hidden_layers=26,
                                   patch_size=14, vision_use_head=False),
                image_token_index=151646, video_token_index=151647, projector_hidden_act="gelu",
                vision_feature_layer=-1, vision_feature_select_strategy="full", vision_aspect_ratio="anyres_max_9",
                image_grid_pinpoints=[[384 * i, 384 * j] for i in range(1, 7) for j in range(1, 7)],
                tie_word_embeddings=True), library="transformers"),
            "processor": Part("llava-onevision-processor", {"side": 384, "num_image_tokens": 729}),
        },
        published=(8.94e8, HF + "llava-hf/llava-onevision-qwen2-0.5b-ov-hf (safetensors metadata: 894M params)"),
        source=HF + "llava-hf/llava-onevision-qwen2-0.5b-ov-hf/blob/main/config.json"),
    # --- text-to-image ------------------------------------------------------------------------------
    RealModel(
        name="stable-diffusion-3-medium", hub_id="stabilityai/stable-diffusion-3-medium-diffusers",
        kind="pipeline", pipeline="StableDiffusion3Pipeline",
        components={"transformer": Weights("SD3Transformer2DModel", dict(SD3_TRANSFORMER, pos_embed_max_size=192)),
                    **SD3_PARTS},
        published=(2.0e9, HF + "stabilityai/stable-diffusion-3-medium (model card: '2 billion parameter' MMDiT)"),
        published_part="transformer",
        source=HF + "stabilityai/stable-diffusion-3-medium-diffusers/tree/main (*/config.json)",
        checked=""),
    RealModel(
        name="stable-diffusion-3.5-medium", hub_id="stabilityai/stable-diffusion-3.5-medium",
        kind="pipeline", pipeline="StableDiffusion3Pipeline",
        components={"transformer": Weights("SD3Transformer2DModel", dict(
            SD3_TRANSFORMER, pos_embed_max_size=384, dual_attention_layers=list(range(13)), qk_norm="rms_norm")),
            **SD3_PARTS},
        published=(2.5e9, "https://stability.ai/news/introducing-stable-diffusion-3-5 ('Medium: 2.5 billion "
                          "parameters')"),
        published_part="transformer", counts="checkpoint",
        source=HF + "stabilityai/stable-diffusion-3.5-medium/blob/main/transformer/config.json",
        checked=""),
    RealModel(
        name="stable-diffusion-xl-base-1.0", hub_id="stabilityai/stable-diffusion-xl-base-1.0", kind="pipeline",
        pipeline="StableDiffusionXLPipeline",
        components={
            "unet": Weights("UNet2DConditionModel", dict(
                sample_size=128, in_channels=4, out_channels=4, block_out_channels=[320, 640, 1280],
                down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
                up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"], layers_per_block=2,
                attention_head_dim=[5, 10, 20], transformer_layers_per_block=[1, 2, 10], cross_attention_dim=2048,
                use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
                projection_class_embeddings_input_dim=2816, norm_num_groups=32)),
            "text_encoder": Weights("CLIPTextModel", CLIP_L_TEXT, library="transformers"),
            "text_encoder_2": Weights("CLIPTextModelWithProjection", CLIP_G_TEXT, library="transformers"),
            "vae": Weights("AutoencoderKL", dict(SD_VAE, sample_size=1024, scaling_factor=0.13025, force_upcast=True)),
            "tokenizer": Part("clip-tokenizer", shared="clip-tokenizer"),
            "tokenizer_2": Part("clip-tokenizer", {"pad": "!"}, shared="clip-tokenizer-pad"),
            "scheduler": Part("scheduler", {"cls": "EulerDiscreteScheduler", "beta_start": 0.00085, "beta_end": 0.012,
                                            "beta_schedule": "scaled_linear", "num_train_timesteps": 1000,
                                            "steps_offset": 1, "timestep_spacing": "leading",
                                            "prediction_type": "epsilon", "interpolation_type": "linear"}),
        },
        published=(3.5e9, "https://stability.ai/news/stable-diffusion-sdxl-1-announcement ('3.5B parameter base "
                          "model'; the SDXL paper, arXiv 2307.01952, gives the UNet 2.6B)"),
        source=HF + "stabilityai/stable-diffusion-xl-base-1.0/tree/main (*/config.json)",
        checked=""),
    # --- image-to-image -----------------------------------------------------------------------------
    RealModel(
        name="instruct-pix2pix", hub_id="timbrooks/instruct-pix2pix", kind="pipeline",
        pipeline="StableDiffusionInstructPix2PixPipeline",
        components={
            "unet": Weights("UNet2DConditionModel", dict(SD_UNET_BLOCKS, in_channels=8, out_channels=4)),
            "text_encoder": Weights("CLIPTextModel", CLIP_L_TEXT, library="transformers"),
            "vae": Weights("AutoencoderKL", dict(SD_VAE, sample_size=256, scaling_factor=0.18215)),
            "safety_checker": Weights("StableDiffusionSafetyChecker", dict(
                vision_config=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                                   num_attention_heads=16, patch_size=14, image_size=224, hidden_act="quick_gelu"),
                text_config=dict(CLIP_L_TEXT), projection_dim=768), library="transformers"),
            "feature_extractor": CLIP_IMAGE_224,
            "tokenizer": Part("clip-tokenizer", shared="clip-tokenizer"),
            "scheduler": Part("scheduler", {"cls": "EulerAncestralDiscreteScheduler", "beta_start": 0.00085,
                                            "beta_end": 0.012, "beta_schedule": "scaled_linear",
                                            "num_train_timesteps": 1000, "steps_offset": 1}),
        },
        published=(8.6e8, HF + "stable-diffusion-v1-5/stable-diffusion-v1-5 (model card: '860M UNet'; "
                          "InstructPix2Pix fine-tunes that UNet with 8 input channels)"),
        published_part="unet",
        source=HF + "timbrooks/instruct-pix2pix/tree/main (*/config.json)",
        checked=""),
    # --- image-to-video -----------------------------------------------------------------------------
    RealModel(
        name="stable-video-diffusion-img2vid-xt", hub_id="stabilityai/stable-video-diffusion-img2vid-xt",
        kind="pipeline", pipeline="StableVideoDiffusionPipeline",
        components={
            "unet": Weights("UNetSpatioTemporalConditionModel", dict(
                sample_size=96, in_channels=8, out_channels=4, block_out_channels=[320, 640, 1280, 1280],
                down_block_types=["CrossAttnDownBlockSpatioTemporal"] * 3 + ["DownBlockSpatioTemporal"],
                up_block_types=["UpBlockSpatioTemporal"] + ["CrossAttnUpBlockSpatioTemporal"] * 3,
                addition_time_embed_dim=256, projection_class_embeddings_input_dim=768, layers_per_block=2,
                cross_attention_dim=1024, transformer_layers_per_block=1, num_attention_heads=[5, 10, 20, 20],
                num_frames=25)),
            "image_encoder": Weights("CLIPVisionModelWithProjection", CLIP_H_VISION, library="transformers"),
            "vae": Weights("AutoencoderKLTemporalDecoder", dict(
                in_channels=3, out_channels=3, latent_channels=4, block_out_channels=[128, 256, 512, 512],
                down_block_types=["DownEncoderBlock2D"] * 4, layers_per_block=2, sample_size=768,
                scaling_factor=0.18215, force_upcast=True)),
            "feature_extractor": CLIP_IMAGE_224,
            "scheduler": Part("scheduler", {"cls": "EulerDiscreteScheduler", "beta_start": 0.00085, "beta_end": 0.012,
                                            "beta_schedule": "scaled_linear", "interpolation_type": "linear",
                                            "prediction_type": "v_prediction", "sigma_max": 700.0,
                                            "sigma_min": 0.002, "steps_offset": 1, "timestep_spacing": "leading",
                                            "timestep_type": "continuous", "use_karras_sigmas": True}),
        },
        published=(1.52e9, "Blattmann et al., Stable Video Diffusion, arXiv 2311.15127 (the video UNet: 1.52B "
                           "parameters)"),
        published_part="unet",
        source=HF + "stabilityai/stable-video-diffusion-img2vid-xt/tree/main (*/config.json)",
        checked="diffusers 0.42 UNetSpatioTemporalConditionModel defaults (equal: tests/test_real_models.py)"),
    RealModel(
        name="wan2.1-i2v-14b-480p", hub_id="Wan-AI/Wan2.1-I2V-14B-480P-Diffusers", kind="pipeline",
        pipeline="WanImageToVideoPipeline",
        components={
            "transformer": Weights("WanTransformer3DModel", dict(
                patch_size=[1, 2, 2], num_attention_heads=40, attention_head_dim=128, in_channels=36, out_channels=16,
                text_dim=4096, freq_dim=256, ffn_dim=13824, num_layers=40, cross_attn_norm=True,
                qk_norm="rms_norm_across_heads", eps=1e-6, image_dim=1280, added_kv_proj_dim=5120,
                rope_max_seq_len=1024), shards=14),
            "text_encoder": Weights("UMT5EncoderModel", dict(
                vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                relative_attention_num_buckets=32, relative_attention_max_distance=128, dropout_rate=0.1,
                layer_norm_epsilon=1e-6, feed_forward_proj="gated-gelu", is_encoder_decoder=False,
                tie_word_embeddings=False, pad_token_id=0, eos_token_id=1), shards=5, library="transformers"),
            "image_encoder": Weights("CLIPVisionModel", CLIP_H_VISION, library="transformers"),
            "vae": Weights("AutoencoderKLWan", dict(base_dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                                                    attn_scales=[], temperal_downsample=[False, True, True])),
            "image_processor": CLIP_IMAGE_224,
            "tokenizer": Part("umt5-tokenizer"),
            "scheduler": Part("scheduler", {"cls": "UniPCMultistepScheduler", "num_train_timesteps": 1000,
                                            "prediction_type": "flow_prediction", "use_flow_sigmas": True,
                                            "flow_shift": 3.0}),
        },
        published=(1.4e10, HF + "Wan-AI/Wan2.1-I2V-14B-480P ('14B'; the name counts the text-to-video backbone: "
                           "the image cross-attention adds about 2.1B)"),
        published_part="transformer",
        excluded=("add_k_proj", "add_v_proj", "norm_added_k", "image_embedder"),  # the image branch
        source="huggingface/diffusers scripts/convert_wan_to_diffusers.py (Wan-I2V-14B-480p transformer config) "
               "and " + HF + "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers/tree/main",
        checked="huggingface/diffusers scripts/convert_wan_to_diffusers.py; Wan2.1 wan/configs/wan_i2v_14B.py "
                "(dim 5120, ffn 13824, 40 heads, 40 layers)"),
    RealModel(
        name="ltx-video", hub_id="Lightricks/LTX-Video", kind="pipeline", pipeline="LTXPipeline",
        components={
            "transformer": Weights("LTXVideoTransformer3DModel", dict(
                in_channels=128, out_channels=128, patch_size=1, patch_size_t=1, num_attention_heads=32,
                attention_head_dim=64, cross_attention_dim=2048, num_layers=28, activation_fn="gelu-approximate",
                qk_norm="rms_norm_across_heads", norm_elementwise_affine=False, norm_eps=1e-6, caption_channels=4096,
                attention_bias=True, attention_out_bias=True), shards=2),
            "vae": Weights("AutoencoderKLLTXVideo", dict(
                in_channels=3, out_channels=3, latent_channels=128, block_out_channels=[128, 256, 512, 512],
                layers_per_block=[4, 3, 3, 3, 4], spatio_temporal_scaling=[True, True, True, False],
                patch_size=4, patch_size_t=1, resnet_norm_eps=1e-6, scaling_factor=1.0, encoder_causal=True,
                decoder_causal=False, timestep_conditioning=False)),
            "text_encoder": T5_XXL,
            "tokenizer": T5_TOKENIZER,
            "scheduler": Part("scheduler", {"cls": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000,
                                            "shift": 1.0, "use_dynamic_shifting": True, "base_shift": 0.95,
                                            "max_shift": 2.05, "base_image_seq_len": 1024,
                                            "max_image_seq_len": 4096, "shift_terminal": 0.1}),
        },
        published=(1.9e9, "HaCohen et al., LTX-Video: Realtime Video Latent Diffusion, arXiv 2501.00103 (a 1.9B "
                          "transformer)"),
        published_part="transformer",
        source=HF + "Lightricks/LTX-Video/tree/main (model_index.json, transformer/, vae/ config.json: 0.9.0)",
        checked="Lightricks/LTX-Video ltx_video/utils/diffusers_config_mapping.py as quoted in public copies; "
                "diffusers 0.42 LTXVideoTransformer3DModel and AutoencoderKLLTXVideo defaults (equal: "
                "tests/test_real_models.py)"),
    # --- evaluation models --------------------------------------------------------------------------
    RealModel(
        name="dinov2-base", hub_id="facebook/dinov2-base", kind="transformers",
        components={"": Weights("Dinov2Model", dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                                    mlp_ratio=4, patch_size=14, image_size=518, layerscale_value=1.0),
                                library="transformers"),
                    "processor": Part("dinov2-processor")},
        published=(8.6e7, "Oquab et al., DINOv2, arXiv 2304.07193, Table 1 (ViT-B/14: 86M)"),
        source=HF + "facebook/dinov2-base/blob/main/config.json and preprocessor_config.json"),
    RealModel(
        name="clip-vit-base-patch32", hub_id="openai/clip-vit-base-patch32", kind="transformers",
        components={"": Weights("CLIPModel", dict(
            text_config=dict(vocab_size=49408, hidden_size=512, intermediate_size=2048, num_hidden_layers=12,
                             num_attention_heads=8, max_position_embeddings=77, hidden_act="quick_gelu",
                             bos_token_id=0, eos_token_id=2, pad_token_id=1),
            vision_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                               patch_size=32, image_size=224, hidden_act="quick_gelu"),
            projection_dim=512), library="transformers"),
            "processor": Part("clip-processor")},
        published=(1.51e8, HF + "openai/clip-vit-base-patch32 (safetensors metadata: 151M params)"),
        source=HF + "openai/clip-vit-base-patch32/blob/main/config.json"),
    RealModel(
        name="clip-vit-large-patch14", hub_id="openai/clip-vit-large-patch14", kind="transformers",
        components={"": Weights("CLIPModel", dict(
            text_config=dict(CLIP_L_TEXT), projection_dim=768,
            vision_config=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                               patch_size=14, image_size=224, hidden_act="quick_gelu")), library="transformers"),
            "processor": Part("clip-processor")},
        published=(4.28e8, HF + "openai/clip-vit-large-patch14 (safetensors metadata: 428M params)"),
        source=HF + "openai/clip-vit-large-patch14/blob/main/config.json"),
    RealModel(
        name="xclip-base-patch32", hub_id="microsoft/xclip-base-patch32", kind="transformers",
        components={"": Weights("XCLIPModel", dict(
            text_config=dict(vocab_size=49408, hidden_size=512, intermediate_size=2048, num_hidden_layers=12,
                             num_attention_heads=8, max_position_embeddings=77),
            vision_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                               patch_size=32, image_size=224, num_frames=8, mit_hidden_size=512,
                               mit_intermediate_size=2048, mit_num_hidden_layers=1, mit_num_attention_heads=8),
            projection_dim=512, prompt_layers=2, prompt_num_attention_heads=8),
            library="transformers"),
            "processor": Part("xclip-processor")},
        published=(1.97e8, HF + "microsoft/xclip-base-patch32 (safetensors metadata: 197M params)"),
        source=HF + "microsoft/xclip-base-patch32/blob/main/config.json (transformers' XCLIPConfig defaults)"),
    RealModel(
        name="bert-base-uncased", hub_id="google-bert/bert-base-uncased", kind="transformers",
        components={"": Weights("BertModel", dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12,
                                                  num_attention_heads=12, intermediate_size=3072,
                                                  max_position_embeddings=512, type_vocab_size=2),
                                library="transformers"),
                    "tokenizer": Part("bert-tokenizer")},
        published=(1.1e8, "Devlin et al., BERT, arXiv 1810.04805 (BERT-base: 110M)"),
        source=HF + "google-bert/bert-base-uncased/blob/main/config.json"),
    RealModel(
        name="laion-aesthetic-linear", hub_id="sa_0_4_vit_l_14_linear.pth", kind="aesthetic-head",
        components={"": Part("aesthetic-head", {"layers": [768, 1], "file": "sa_0_4_vit_l_14_linear.pth"})},
        published=(769, "LAION-AI/aesthetic-predictor: nn.Linear(768, 1) on CLIP ViT-L/14 embeddings (769 params)"),
        source="https://github.com/LAION-AI/aesthetic-predictor (sa_0_4_vit_l_14_linear.pth, the head VBench's "
               "aesthetic quality reads; a file, not a hub repo)"),
    RealModel(
        name="ddpo-aesthetic-predictor", hub_id="trl-lib/ddpo-aesthetic-predictor", kind="aesthetic-head",
        components={"": Part("aesthetic-head", {"layers": [768, 1024, 128, 64, 16, 1]})},
        published=(9.2e5, "christophschuhmann/improved-aesthetic-predictor simple_inference.py (MLP 768-1024-128-"
                          "64-16-1: 0.92M)"),
        source=HF + "trl-lib/ddpo-aesthetic-predictor (aesthetic-model.pth, the improved LAION predictor on "
                    "CLIP ViT-L/14 embeddings)"),
]

BY_HUB_ID = {m.hub_id: m for m in MODELS}
BY_NAME = {m.name: m for m in MODELS}
