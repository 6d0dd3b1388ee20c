"""Each model's cost at the preset's real resolution, frame count and step count, traced on the meta device.

A recipe calls every component the way its diffusers pipeline or mora's judge calls it (same batch, same
shapes: classifier-free guidance doubles the denoiser's batch, or doubles its calls for Wan; every step;
one VAE decode), with meta tensors, and adds up FLOPs and peak activation memory. Judges' token counts
come from the real processor settings (their image and video processors, the chat template, the prompt
mora sends); the prompt agent's from its real chat template and ``max_new_tokens``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mora.config import GenerationConfig, JudgeConfig, PromptConfig
from mora.models.real.catalogue import RealModel
from mora.models.real.meter import Cost, measure, meta, weight_bytes
from mora.models.real.stream import meta_model

BF16 = torch.bfloat16


@dataclass
class Trace:
    """One model's traced cost for one use: FLOPs per unit (a candidate, a set, a prompt), memory, notes."""

    model: str
    use: str                      # text_to_image, image_to_video, judge, prompt, ...
    unit: str                     # what ``cost.flops`` is counted per
    cost: Cost
    weights: int                  # bytes of every weight the use loads (bf16)
    notes: dict = field(default_factory=dict)


def _components(model: RealModel, dtype: torch.dtype = BF16) -> dict[str, torch.nn.Module]:
    return {k: meta_model(w).to("meta").to(dtype).eval() for k, w in model.weights.items()}


def _all_weights(parts: dict[str, torch.nn.Module]) -> int:
    return sum(weight_bytes(m) for m in parts.values())


def ids(batch: int, length: int) -> torch.Tensor:
    return torch.zeros(batch, length, dtype=torch.long, device="meta")


# --- generators -------------------------------------------------------------------------------------------


def text_to_image(model: RealModel, gen: GenerationConfig, n: int | None = None) -> Trace:
    """One first-frame call for ``n`` candidates (the agent batches a prompt's candidates), per candidate."""
    n = n or gen.candidates
    c = _components(model)
    cfg_batch = 2 if gen.image_guidance > 1 else 1
    lat_h, lat_w = gen.height // 8, gen.width // 8
    cost = Cost()
    if model.pipeline == "StableDiffusion3Pipeline":
        cost.add("clip-l", measure(lambda: c["text_encoder"](ids(cfg_batch, 77), output_hidden_states=True)))
        cost.add("clip-g", measure(lambda: c["text_encoder_2"](ids(cfg_batch, 77), output_hidden_states=True)))
        cost.add("t5", measure(lambda: c["text_encoder_3"](ids(cfg_batch, 256))))
        b = cfg_batch * n
        step = measure(lambda: c["transformer"](
            hidden_states=meta(b, 16, lat_h, lat_w), encoder_hidden_states=meta(b, 77 + 256, 4096),
            pooled_projections=meta(b, 2048), timestep=meta(b), return_dict=False))
        cost.add("transformer", step, gen.image_steps)
        cost.add("vae-decode", measure(lambda: c["vae"].decode(meta(n, 16, lat_h, lat_w))))
    elif model.pipeline == "StableDiffusionXLPipeline":
        cost.add("clip-l", measure(lambda: c["text_encoder"](ids(cfg_batch, 77), output_hidden_states=True)))
        cost.add("clip-g", measure(lambda: c["text_encoder_2"](ids(cfg_batch, 77), output_hidden_states=True)))
        b = cfg_batch * n
        step = measure(lambda: c["unet"](meta(b, 4, lat_h, lat_w), meta(b), encoder_hidden_states=meta(b, 77, 2048),
                                         added_cond_kwargs={"text_embeds": meta(b, 1280), "time_ids": meta(b, 6)},
                                         return_dict=False))
        cost.add("unet", step, gen.image_steps)
        cost.add("vae-decode", measure(lambda: c["vae"].decode(meta(n, 4, lat_h, lat_w))))
    else:
        raise ValueError(f"no text-to-image recipe for {model.pipeline}")
    return _per(Trace(model.name, "text_to_image", "candidate", cost, _all_weights(c),
                      {"resolution": f"{gen.width}x{gen.height}", "steps": gen.image_steps, "batch": n,
                       "guidance_batch": cfg_batch}), n)


def image_to_video(model: RealModel, gen: GenerationConfig, n: int | None = None) -> Trace:
    """One animate call: ``n`` clips batched (SVD, LTX; ``generation.video_batch``, else every candidate) or one
    call per clip (Wan), per candidate."""
    n = n or gen.video_batch or gen.candidates
    c = _components(model)
    cfg = gen.video_guidance > 1
    frames, h, w, steps = gen.num_frames, gen.height, gen.width, gen.video_steps
    cost, notes = Cost(), {"resolution": f"{w}x{h}", "frames": frames, "steps": steps}
    if model.pipeline == "StableVideoDiffusionPipeline":
        b = (2 if cfg else 1) * n
        cost.add("image-encoder", measure(lambda: c["image_encoder"](meta(n, 3, 224, 224))))
        cost.add("vae-encode", measure(lambda: c["vae"].encode(meta(n, 3, h, w))))
        step = measure(lambda: c["unet"](meta(b, frames, 8, h // 8, w // 8), meta(b),
                                         encoder_hidden_states=meta(b, 1, 1024), added_time_ids=meta(b, 3),
                                         return_dict=False))
        cost.add("unet", step, steps)
        chunk = 8  # mora's decode_chunk_size
        for size in [chunk] * (frames // chunk) + ([frames % chunk] if frames % chunk else []):
            cost.add("vae-decode", measure(lambda s=size: c["vae"].decode(meta(s, 4, h // 8, w // 8), num_frames=s)),
                     n)
        notes["tokens_per_frame_pass"] = (h // 8) * (w // 8)
    elif model.pipeline in ("LTXPipeline", "LTXImageToVideoPipeline"):
        b = (2 if cfg else 1) * n
        lf, lh, lw = (frames - 1) // 8 + 1, h // 32, w // 32
        tokens = lf * lh * lw
        cost.add("t5", measure(lambda: c["text_encoder"](ids(2 if cfg else 1, 128))))
        cost.add("vae-encode", measure(lambda: c["vae"].encode(meta(n, 3, 1, h, w))))
        step = measure(lambda: c["transformer"](
            hidden_states=meta(b, tokens, 128), encoder_hidden_states=meta(b, 128, 4096), timestep=meta(b, tokens),
            encoder_attention_mask=meta(b, 128), num_frames=lf, height=lh, width=lw,
            rope_interpolation_scale=(8 / 25, 32, 32), return_dict=False))
        cost.add("transformer", step, steps)
        cost.add("vae-decode", measure(lambda: c["vae"].decode(meta(n, 128, lf, lh, lw))))
        notes["tokens"] = tokens
    elif model.pipeline == "WanImageToVideoPipeline":
        lf, lh, lw = (frames - 1) // 4 + 1, h // 8, w // 8
        tokens = lf * (lh // 2) * (lw // 2)
        per = Cost()
        per.add("umt5", measure(lambda: c["text_encoder"](ids(2 if cfg else 1, 512))))
        per.add("image-encoder", measure(lambda: c["image_encoder"](meta(1, 3, 224, 224), output_hidden_states=True)))
        per.add("vae-encode", measure(lambda: c["vae"].encode(meta(1, 3, frames, h, w))))
        step = measure(lambda: c["transformer"](
            hidden_states=meta(1, 36, lf, lh, lw), timestep=meta(1), encoder_hidden_states=meta(1, 512, 4096),
            encoder_hidden_states_image=meta(1, 257, 1280), return_dict=False))
        per.add("transformer", step, steps * (2 if cfg else 1))  # the negative prompt is a second call
        per.add("vae-decode", measure(lambda: c["vae"].decode(meta(1, 16, lf, lh, lw))))
        for name, flops in per.calls.items():
            cost.calls[name] = flops * n
        cost.flops, cost.activation_peak = per.flops * n, per.activation_peak
        notes["tokens"] = tokens
    else:
        raise ValueError(f"no image-to-video recipe for {model.pipeline}")
    notes["batch"] = n
    return _per(Trace(model.name, "image_to_video", "candidate", cost, _all_weights(c), notes), n)


def _per(trace: Trace, n: int) -> Trace:
    trace.cost.flops /= n
    trace.cost.calls = {k: v / n for k, v in trace.cost.calls.items()}
    return trace


def weights_only(model: RealModel, use: str) -> Trace:
    return Trace(model.name, use, "-", Cost(), _all_weights(_components(model)))


# --- judges -----------------------------------------------------------------------------------------------


def judge_tokens(folder: Path, processor, family: str, config: JudgeConfig, height: int, width: int, native: bool,
                 candidates: int = 4) -> dict:
    """Tokens one presentation order of a set takes, through the real processor, chat template and prompt."""
    from PIL import Image

    from mora.judges.asking import judge_messages
    from mora.judges.criteria import CRITERIA
    from mora.judges.local import TransformersJudge

    frames = config.frames_per_candidate
    order = list(range(candidates))
    judge = TransformersJudge.__new__(TransformersJudge)
    judge.config, judge.processor, judge.native_video, judge.context = config, processor, False, None
    tok = processor.tokenizer
    if native:
        text_only = judge_messages("a red fox runs through a snowy forest at dawn", CRITERIA[0], order,
                                   lambda c: [{"type": "video"}], "as a video")
        text = processor.apply_chat_template(text_only, add_generation_prompt=True, tokenize=False)
        per_video, grid = native_video_tokens(folder, processor, family, frames, height, width)
        text_tokens = len(tok(text)["input_ids"]) - candidates  # each placeholder becomes per_video tokens
        return {"text": text_tokens, "per_candidate": per_video, "total": text_tokens + candidates * per_video,
                "images": 0, "input": "native video", "grid": grid}
    image = Image.fromarray(np.zeros((height, width, 3), dtype=np.uint8))
    clip = np.zeros((frames, height, width, 3), dtype=np.uint8)
    from mora.judges.base import CandidateSet

    shown = CandidateSet(prompt="a red fox runs through a snowy forest at dawn", criterion=CRITERIA[0],
                         clips=[clip] * candidates)
    judge.model = _NoDevice()
    inputs = judge._inputs(shown, order)
    total = int(inputs["input_ids"].shape[1])
    image_id = getattr(processor, "image_token_id", None) or tok.convert_tokens_to_ids(processor.image_token)
    media = int((inputs["input_ids"] == image_id).sum())
    del image
    return {"text": total - media, "per_candidate": media // candidates, "total": total,
            "images": candidates * frames, "input": "frames as images", "inputs": inputs}


class _NoDevice:
    device = "cpu"


def native_video_tokens(folder: Path, processor, family: str, frames: int, height: int, width: int) -> int:
    """Tokens of one candidate given as a video, from the video processor settings the folder records."""
    import json

    settings = json.loads(Path(folder, "processor_config.json").read_text())["video_processor"]
    if family == "qwen2-vl":
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

        size, merge, patch = settings["size"], settings["merge_size"], settings["patch_size"]
        h, w = smart_resize(height, width, factor=patch * merge, min_pixels=size["shortest_edge"],
                            max_pixels=size["longest_edge"])
        return math.ceil(frames / settings["temporal_patch_size"]) * (h // patch // merge) * (w // patch // merge), \
            [math.ceil(frames / settings["temporal_patch_size"]), h // patch, w // patch]
    # LLaVA-OneVision: 384x384 frames, 27x27 features pooled 2x2 to 14x14, one newline per video
    side = processor.image_processor.size["height"] // 14
    return frames * math.ceil(side / 2) ** 2 + 1, None


def judge(model: RealModel, folder: Path, processor, config: JudgeConfig, gen: GenerationConfig,
          native: bool) -> Trace:
    """One candidate set: every presentation order in one batch (label scores), vision tower included."""
    c = _components(model)[""]
    tokens = judge_tokens(folder, processor, config.family, config, gen.height, gen.width, native, gen.candidates)
    k = config.orders
    inputs, grid = tokens.pop("inputs", None), tokens.pop("grid", None)
    lm = c.model.language_model
    hidden = lm.config.hidden_size
    cost = Cost()
    length = tokens["total"]
    if config.family == "qwen2-vl":
        position = meta(3, k, length).long()
        cost.add("language", measure(lambda: c(inputs_embeds=meta(k, length, hidden), position_ids=position,
                                               logits_to_keep=1)))
        if inputs is not None:
            grid = inputs["image_grid_thw"].repeat(k, 1)
        else:
            grid = torch.tensor([grid] * gen.candidates * k)
        if grid.numel():
            patches = int(grid.prod(-1).sum())
            from transformers.vision_utils import get_vision_position_ids

            where = get_vision_position_ids(grid, c.model.visual.spatial_merge_size).to("meta")
            cost.add("vision", measure(lambda: c.model.visual(meta(patches, 3 * 2 * 14 * 14), grid_thw=grid,
                                                              position_ids=where)))
    else:
        cost.add("language", measure(lambda: c(inputs_embeds=meta(k, length, hidden), logits_to_keep=1)))
        if inputs is not None:
            crops = int(inputs["pixel_values"].shape[1]) * int(inputs["pixel_values"].shape[0]) * k
        else:
            crops = gen.candidates * config.frames_per_candidate * k
        cost.add("vision", measure(lambda: c.model.vision_tower(meta(crops, 3, 384, 384))))
    if length > lm.config.max_position_embeddings:
        tokens["over_context"] = f"{length} tokens > max_position_embeddings {lm.config.max_position_embeddings}"
    return Trace(model.name, "judge", "set", cost, weight_bytes(c), tokens | {"orders": k})


def largest_component(model: RealModel) -> int:
    """Bytes of the model's largest component: what a GPU holds of it under model CPU offload."""
    return max(weight_bytes(m) for m in _components(model).values())


# --- prompt agent -----------------------------------------------------------------------------------------


def prompt_agent(model: RealModel, tokenizer, prompts: PromptConfig) -> Trace:
    """One prompt invented and enhanced: each a chat turn and ``max_new_tokens`` answered (decoding with a
    cache costs what one pass over the whole sequence costs, minus the logits of the prompt's tokens)."""
    from mora.agents.prompt import ENHANCE, INVENT

    c = _components(model)[""]
    cost = Cost()
    lengths = {}
    for name, text in (("invent", INVENT.format(seed=prompts.seeds[0])),
                       ("enhance", ENHANCE.format(prompt=prompts.seeds[0]))):
        chat = tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                             add_generation_prompt=True)
        n = len(tokenizer(chat)["input_ids"])
        lengths[name] = n
        total = n + prompts.max_new_tokens
        cost.add(name, measure(lambda t=total: c(input_ids=ids(1, t), logits_to_keep=prompts.max_new_tokens)))
    return Trace(model.name, "prompt", "prompt", cost, weight_bytes(c),
                 {"prompt_tokens": lengths, "new_tokens": prompts.max_new_tokens})
