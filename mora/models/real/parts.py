"""The components without weights, as the published repositories hold them: tokenizers of the real vocabulary
size, processors with the real image and video settings, chat templates, schedulers, generation configs.

Each maker writes one folder with ``save_pretrained``; ``catalogue.py`` says which maker, with what settings.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from mora.models.real import vocab

OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]

# Qwen2.5-Instruct's template (tokenizer_config.json), without its tool-calling branches
QWEN25_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + "
    "'<|im_end|>\\n' }}{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a "
    "helpful assistant.<|im_end|>\\n' }}{%- endif %}{%- for message in messages %}{%- if not (message['role'] == "
    "'system' and loop.first) %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
    "'\\n' }}{%- endif %}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
# Qwen2-VL-Instruct's chat_template.json: media are rendered where they stand in the content
QWEN2_VL_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages "
    "%}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>"
    "\n{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in "
    "content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}"
    "Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] "
    "== 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}"
    "Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content "
    "%}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt "
    "%}<|im_start|>assistant\n{% endif %}"
)
# llava-hf/llava-onevision-qwen2-7b-ov-hf's chat_template.json: every image first, then videos, then the text
LLAVA_ONEVISION_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + ' '}}{# Render all images first #}{% for "
    "content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>' }}{% endfor %}{# Render "
    "all video then #}{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}{{ '<video>' "
    "}}{% endfor %}{# Render all text next #}{% if message['role'] != 'assistant' %}{% for content in "
    "message['content'] | selectattr('type', 'equalto', 'text') %}{{ '\n' + content['text'] }}{% endfor %}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{% generation %}{{ '\n' + "
    "content['text'] }}{% endgeneration %}{% endfor %}{% endif %}{{'<|im_end|>'}}{% endfor %}{% if "
    "add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _clip_image_processor(side: int = 224):
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side}, resample=3,
                              do_center_crop=True, image_mean=OPENAI_CLIP_MEAN, image_std=OPENAI_CLIP_STD)


def qwen_tokenizer(out: Path, template: str = "qwen2.5") -> None:
    vocab.qwen_tokenizer(vocab.QWEN25_SPECIALS, QWEN25_TEMPLATE).save_pretrained(out)


def generation_config(out: Path, **settings) -> None:
    from transformers import GenerationConfig

    GenerationConfig(**settings).save_pretrained(out)


def qwen2_vl_processor(out: Path, min_pixels: int, max_pixels: int, video_min_pixels: int,
                       video_max_pixels: int) -> None:
    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor

    from mora.judges.processors import image_only
    from mora.models.tiny import _add_video_processor

    tok = vocab.qwen_tokenizer(vocab.QWEN25_SPECIALS, QWEN2_VL_TEMPLATE)
    images = Qwen2VLImageProcessor(size={"shortest_edge": min_pixels, "longest_edge": max_pixels}, patch_size=14,
                                   temporal_patch_size=2, merge_size=2, image_mean=OPENAI_CLIP_MEAN,
                                   image_std=OPENAI_CLIP_STD)
    image_only(Qwen2VLProcessor)(image_processor=images, tokenizer=tok,
                                 chat_template=QWEN2_VL_TEMPLATE).save_pretrained(out)
    _add_video_processor(out, video_processor_type="Qwen2VLVideoProcessor", patch_size=14, temporal_patch_size=2,
                         merge_size=2, size={"shortest_edge": video_min_pixels, "longest_edge": video_max_pixels})


def llava_onevision_processor(out: Path, side: int, num_image_tokens: int) -> None:
    from transformers import LlavaOnevisionImageProcessor, LlavaOnevisionProcessor

    from mora.judges.processors import image_only
    from mora.models.tiny import _add_video_processor

    tok = vocab.qwen_tokenizer(vocab.QWEN2_SPECIALS + ["<image>", "<video>"], LLAVA_ONEVISION_TEMPLATE)
    pinpoints = [[side * i, side * j] for i in range(1, 7) for j in range(1, 7)]
    images = LlavaOnevisionImageProcessor(size={"height": side, "width": side}, image_grid_pinpoints=pinpoints,
                                          do_pad=True, resample=3, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    image_only(LlavaOnevisionProcessor)(image_processor=images, tokenizer=tok, num_image_tokens=num_image_tokens,
                                        vision_feature_select_strategy="full", vision_aspect_ratio="anyres_max_9",
                                        chat_template=LLAVA_ONEVISION_TEMPLATE).save_pretrained(out)
    _add_video_processor(out, video_processor_type="LlavaOnevisionVideoProcessor",
                         size={"height": side, "width": side})


def clip_tokenizer(out: Path, pad: str = "<|endoftext|>") -> None:
    vocab.clip_tokenizer(pad).save_pretrained(out)


def t5_tokenizer(out: Path) -> None:  # google/t5-v1_1-xxl: 32,000 pieces and 100 sentinels
    vocab.sentencepiece_tokenizer(32_000, 100, 512).save_pretrained(out)


def umt5_tokenizer(out: Path) -> None:  # google/umt5-xxl: uMT5's 256,000 pieces and 300 sentinels
    vocab.sentencepiece_tokenizer(256_000, 300, 512).save_pretrained(out)


def bert_tokenizer(out: Path) -> None:
    vocab.bert_tokenizer().save_pretrained(out)


def scheduler(out: Path, cls: str, **settings) -> None:
    import diffusers

    getattr(diffusers, cls)(**settings).save_pretrained(out)


def clip_image_processor(out: Path, side: int) -> None:
    _clip_image_processor(side).save_pretrained(out)


def dinov2_processor(out: Path) -> None:  # facebook/dinov2-base preprocessor_config.json
    from transformers import BitImageProcessor

    BitImageProcessor(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224}, resample=3,
                      do_center_crop=True, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD).save_pretrained(out)


def clip_processor(out: Path) -> None:
    from transformers import CLIPProcessor

    CLIPProcessor(image_processor=_clip_image_processor(), tokenizer=vocab.clip_tokenizer()).save_pretrained(out)


def xclip_processor(out: Path) -> None:  # microsoft/xclip-base-patch32: VideoMAE's image processor, CLIP's tokenizer
    from transformers import VideoMAEImageProcessor, XCLIPProcessor

    images = VideoMAEImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224},
                                    image_mean=OPENAI_CLIP_MEAN, image_std=OPENAI_CLIP_STD, resample=3)
    XCLIPProcessor(image_processor=images, tokenizer=vocab.clip_tokenizer()).save_pretrained(out)


def aesthetic_head(out: Path, layers: list[int], seed: int = 0, file: str = "aesthetic-model.pth") -> None:
    """A LAION aesthetic predictor as shipped (a plain .pth state dict in float32): two widths are the linear
    head VBench uses (``weight``, ``bias``), more the improved predictor's MLP (Linear, Dropout, ...)."""
    torch.manual_seed(seed)
    if len(layers) == 2:  # the linear head: its state dict has no layer prefix
        state = torch.nn.Linear(*layers).state_dict()
    else:
        drops = [0.2, 0.2, 0.1]
        modules: list[torch.nn.Module] = []
        for i, (a, b) in enumerate(zip(layers, layers[1:], strict=False)):
            modules.append(torch.nn.Linear(a, b))
            if i < len(drops):
                modules.append(torch.nn.Dropout(drops[i]))
        state = {f"layers.{k}": v for k, v in torch.nn.Sequential(*modules).state_dict().items()}
    out.mkdir(parents=True, exist_ok=True)
    torch.save(state, out / file)


MAKERS: dict[str, Callable[..., None]] = {
    "qwen-tokenizer": qwen_tokenizer, "generation-config": generation_config, "qwen2-vl-processor": qwen2_vl_processor,
    "llava-onevision-processor": llava_onevision_processor, "clip-tokenizer": clip_tokenizer,
    "t5-tokenizer": t5_tokenizer, "umt5-tokenizer": umt5_tokenizer, "bert-tokenizer": bert_tokenizer,
    "scheduler": scheduler, "clip-image-processor": clip_image_processor, "dinov2-processor": dinov2_processor,
    "clip-processor": clip_processor, "xclip-processor": xclip_processor, "aesthetic-head": aesthetic_head,
}
