"""Load one real-size model through mora's own loaders, then run one small real step and check its shapes.

Run as a child process (``python -m mora.models.real.probe ...``) so that its peak memory is its own and
everything it loaded is gone when it ends. It prints one JSON line: load seconds, peak resident memory
after the load and after the step, the step's output shapes and whether they are the expected ones.
The load is the full model, exactly as a round loads it (the preset with ``--set`` overrides pointing at
the random-weight folders). The step may run on the loaded model cut to the first ``cut`` blocks of
every block stack, where the full depth would take too long on this CPU; the meta trace covers the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

import numpy as np
import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
CUT_STACKS = {"layers", "blocks", "block", "transformer_blocks", "single_transformer_blocks"}
PROMPT = "a red fox runs through a snowy forest at dawn, cinematic lighting"


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))


def reset_peak() -> None:
    """Start a new resident-memory peak (Linux: writing 5 to clear_refs resets VmHWM)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


ANON_PEAK = [0]


def watch_memory(limit: int) -> None:
    """End this process before the machine runs out: anonymous memory past ``limit`` bytes is an error.

    Weights loaded from safetensors stay mapped from their files (transformers 5 and diffusers 0.42 do not copy
    them): those pages are page cache the kernel can drop. Anonymous memory is what cannot be given back."""
    def run():
        while True:
            anon = _status("RssAnon")
            ANON_PEAK[0] = max(ANON_PEAK[0], anon)
            if anon > limit:
                print(json.dumps({"error": f"stopped: anonymous memory passed the {limit / 2**30:.1f} GiB limit"}),
                      flush=True)
                os._exit(3)
            time.sleep(0.2)

    threading.Thread(target=run, daemon=True).start()


def cut_depth(module: torch.nn.Module, keep: int) -> int:
    """Keep the first ``keep`` blocks of every block stack under ``module``; returns the blocks dropped."""
    dropped = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if name in CUT_STACKS and isinstance(child, torch.nn.ModuleList) and len(child) > keep:
                dropped += len(child) - keep
                setattr(parent, name, torch.nn.ModuleList(list(child)[:keep]))
    for sub in module.modules():
        config = getattr(sub, "config", None)
        for cfg in [config, getattr(config, "text_config", None)]:
            if cfg is None or not hasattr(cfg, "num_hidden_layers") or not isinstance(cfg.num_hidden_layers, int):
                continue
            if cfg.num_hidden_layers > keep:
                cfg.num_hidden_layers = keep
                if getattr(cfg, "layer_types", None):
                    cfg.layer_types = cfg.layer_types[:keep]
    return dropped


def modules_of(obj) -> list[torch.nn.Module]:
    """The torch modules an agent, judge or evaluation model holds."""
    found = []
    for value in vars(obj).values():
        if isinstance(value, torch.nn.Module):
            found.append(value)
        elif hasattr(value, "components"):  # a diffusers pipeline
            found += [c for c in value.components.values() if isinstance(c, torch.nn.Module)]
        elif hasattr(value, "model") and isinstance(value.model, torch.nn.Module):
            found.append(value.model)
    return found


def load(role: str, cfg, index: int = 0):
    """The object a round (or mora eval) builds for this role, through its own ``from_pretrained``."""
    rt = cfg.runtime
    gen, ev = cfg.generation, cfg.eval
    if role == "prompt":
        from mora.agents.prompt import PromptAgent

        return PromptAgent.from_pretrained(cfg.prompts.model, rt, max_new_tokens=4)
    if role == "text_to_image":
        from mora.agents.text_to_image import TextToImageAgent

        return TextToImageAgent.from_pretrained(gen.text_to_image, rt)
    if role == "image_to_video":
        from mora.agents.image_to_video import ImageToVideoAgent

        return ImageToVideoAgent.from_pretrained(gen.image_to_video, rt)
    if role == "image_to_image":
        from mora.agents.image_to_image import ImageToImageAgent

        return ImageToImageAgent.from_pretrained(gen.image_to_image, rt)
    if role == "connect":
        from mora.agents.connect import ConnectAgent

        return ConnectAgent.from_pretrained(gen.connect, rt)
    if role == "judge":
        from mora.judges import load_judge

        judge = cfg.judges[index].model_copy(update={"backend": "transformers", "server": None,
                                                     "method": "label-scores"})
        return load_judge(judge, rt, f"judges.{index}")
    from mora.evaluation import models as em

    if role == "eval-object":
        return em.ImageFeatures.from_pretrained(ev.object_encoder, rt)
    if role == "eval-clip":
        return em.ClipTextImage.from_pretrained(ev.clip, rt)
    if role == "eval-aesthetic":
        return em.AestheticPredictor.from_pretrained(ev.aesthetic_clip, ev.aesthetic_head, rt)
    if role == "eval-video":
        return em.VideoText.from_pretrained(ev.video_encoder, rt)
    if role == "eval-text":
        return em.TextEmbedder.from_pretrained(ev.text_embedder, rt)
    if role == "eval-captioner":
        return em.Captioner.from_pretrained([ev.image_captioner, ev.video_captioner][index], rt, max_new_tokens=4)
    raise ValueError(f"unknown role {role}")


def touch(obj) -> int:
    """Resident memory once every weight page has been read (a load maps files; a GPU copy reads them all)."""
    for m in modules_of(obj):
        for p in m.parameters():
            flat = p.detach().reshape(-1).view(torch.uint8) if p.is_contiguous() else None
            if flat is not None and flat.numel():
                flat[::4096].sum()
    return _status("VmRSS")


def _image(side: int, seed: int = 0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8))


STEP_FRAMES = {"StableVideoDiffusionPipeline": 3, "WanImageToVideoPipeline": 5}  # others: LTX's 1 + 8


def step(role: str, obj, cfg, side: int) -> dict:
    """One small real call; returns the shapes it gave and the shapes it had to give."""
    from mora.agents.loading import min_steps

    gen = cfg.generation
    if role == "text_to_image":
        images = obj.first_frame(PROMPT, [0], side, side, 1, gen.image_guidance)
        return {"got": [list(images[0].size)], "want": [[side, side]]}
    if role == "image_to_image":
        images = obj.edit([_image(side)], "make it winter at night", [0], 1, gen.image_guidance, gen.edit_strength)
        return {"got": [list(images[0].size)], "want": [[side, side]]}
    if role == "image_to_video":
        frames = STEP_FRAMES.get(obj.family, 9)
        steps = min_steps(obj.pipe)  # LTX-Video's published scheduler cannot run one step
        clip = obj.animate([_image(side)], PROMPT, [0], frames, side, side, steps, gen.video_guidance, gen.fps)
        return {"got": [list(clip.shape)], "want": [[1, frames, side, side, 3]], "finite": bool(clip.std() >= 0)}
    if role == "connect":
        clip = obj.between(_image(side, 1), _image(side, 2), PROMPT, 0, 9, side, side, min_steps(obj.pipe),
                           gen.video_guidance, gen.fps)
        return {"got": [list(clip.shape)], "want": [[9, side, side, 3]]}
    if role == "prompt":
        tok = obj.tokenizer
        text = tok.apply_chat_template([{"role": "user", "content": PROMPT}], tokenize=False,
                                       add_generation_prompt=True)
        batch = tok([text], return_tensors="pt")
        with torch.inference_mode():
            out = obj.model.generate(**batch, max_new_tokens=4, min_new_tokens=4, do_sample=False,
                                     pad_token_id=tok.pad_token_id)
        n = batch["input_ids"].shape[1]
        return {"got": [list(out.shape)], "want": [[1, n + 4]], "prompt_tokens": n}
    if role == "judge":
        return _judge_step(obj, side)
    frames = np.stack([np.asarray(_image(side, i)) for i in range(2)])
    if role == "eval-object":
        return {"got": [list(obj.features(frames).shape)], "want": [[2, obj.model.config.hidden_size]]}
    if role == "eval-clip":
        dim = obj.model.config.projection_dim
        return {"got": [list(obj.features(frames).shape), list(obj.text([PROMPT]).shape)], "want": [[2, dim], [1, dim]]}
    if role == "eval-aesthetic":
        return {"got": [list(obj.scores(frames).shape)], "want": [[2]]}
    if role == "eval-video":
        return {"got": [list(obj.video(frames).shape)], "want": [[obj.model.config.projection_dim]]}
    if role == "eval-text":
        return {"got": [list(obj.embed([PROMPT, "a boat"]).shape)], "want": [[2, obj.model.config.hidden_size]]}
    if role == "eval-captioner":
        return {"got": [type(obj.caption(frames, "video")).__name__], "want": ["str"]}
    raise ValueError(role)


def _judge_step(judge, side: int) -> dict:
    """Label scores for four candidates of two frames each, every presentation order in one batch."""
    from mora.judges.asking import presentation_orders
    from mora.judges.base import CandidateSet
    from mora.judges.criteria import CRITERIA

    seen = {}
    forward = judge.model.forward

    def spy(*args, **kwargs):
        ids = kwargs.get("input_ids")
        if ids is not None:
            seen["input_ids"] = list(ids.shape)
        return forward(*args, **kwargs)

    judge.model.forward = spy
    clips = [np.stack([np.asarray(_image(side, 10 * c + f)) for f in range(2)]) for c in range(4)]
    shown = CandidateSet(prompt=PROMPT, criterion=CRITERIA[0], clips=clips)
    old = judge.config.frames_per_candidate
    judge.config = judge.config.model_copy(update={"frames_per_candidate": 2})
    orders = presentation_orders(4, judge.config.orders, 0)
    answers = judge.ask_all(shown, orders)
    judge.config = judge.config.model_copy(update={"frames_per_candidate": old})
    got = [list(a.scores.shape) for a in answers]
    return {"got": got, "want": [[4]] * len(orders), "input_ids": seen.get("input_ids"),
            "finite": all(bool(np.all(np.isfinite(a.scores))) for a in answers)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("preset")
    parser.add_argument("role")
    parser.add_argument("--set", dest="sets", action="append", default=[])
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--also", action="append", default=[],
                        help="another form of the same model to load and step after the first (connect, ...)")
    parser.add_argument("--cut", type=int, default=None, help="blocks kept in every stack for the step")
    parser.add_argument("--side", type=int, default=128, help="image side of the step")
    parser.add_argument("--limit-gib", type=float, default=18.0)
    parser.add_argument("--no-step", action="store_true")
    parser.add_argument("--device", default="cpu", help="cuda on a GPU machine: the full model steps there")
    parser.add_argument("--compute-dtype", default="float32", choices=sorted(DTYPES),
                        help="dtype of the step (bfloat16 convolutions run ~100x slower than float32 on CPUs "
                             "without bf16 instructions)")
    args = parser.parse_args(argv)
    from mora.config import load_config, parse_overrides

    watch_memory(int(args.limit_gib * 2**30))
    cfg = load_config(args.preset, {**parse_overrides(args.sets), "runtime.device": args.device,
                                    "runtime.threads": "2", "runtime.cpu_offload": "false"})
    cuda = args.device.startswith("cuda")
    result: dict = {"role": role_name(args.role, args.index), "rss_before": _status("VmRSS")}
    reset_peak()
    start = time.perf_counter()
    obj = load(args.role, cfg, args.index)
    load_s = time.perf_counter() - start
    touched = touch(obj)
    result |= {"load_s": load_s, "load_peak": _status("VmHWM"), "loaded_rss": _status("VmRSS"),
               "anon_peak": ANON_PEAK[0], "touched_rss": touched,
               "params": sum(p.numel() for m in modules_of(obj) for p in m.parameters()),
               "dtypes": sorted({str(p.dtype).removeprefix("torch.") for m in modules_of(obj)
                                 for p in m.parameters()})}
    if args.no_step:
        return result
    if args.cut is not None:
        result["cut_blocks"] = sum(cut_depth(m, args.cut) for m in modules_of(obj))
        result["cut"] = args.cut
    if args.compute_dtype != cfg.runtime.dtype and not cuda:  # after the cut: the full model never is float32
        for m in modules_of(obj):
            m.to(DTYPES[args.compute_dtype])
        result["compute_dtype"] = args.compute_dtype
    reset_peak()
    start = time.perf_counter()
    result |= step(args.role, obj, cfg, args.side)
    result |= {"step_s": time.perf_counter() - start, "step_peak": _status("VmHWM"), "side": args.side,
               "anon_peak": ANON_PEAK[0]}
    result["ok"] = result["got"] == result["want"] and result.get("finite", True)
    for role in args.also:  # the model's other forms share its loaded weights, as in a round
        result.setdefault("also", {})[role] = form = also(role, cfg, args)
        result["ok"] = result["ok"] and form["ok"]
    if cuda:
        result |= {"device": torch.cuda.get_device_name(), "gpu_peak": torch.cuda.max_memory_allocated()}
    return result


def also(role: str, cfg, args) -> dict:
    """Load and step another form of the model already loaded (its weights already cut and cast)."""
    start = time.perf_counter()
    obj = load(role, cfg, args.index)
    out = {"load_s": time.perf_counter() - start}
    if args.cut is not None:
        out["cut_blocks"] = sum(cut_depth(m, args.cut) for m in modules_of(obj))
    if args.compute_dtype != cfg.runtime.dtype and not args.device.startswith("cuda"):
        for m in modules_of(obj):
            m.to(DTYPES[args.compute_dtype])
    start = time.perf_counter()
    out |= step(role, obj, cfg, args.side)
    out["step_s"] = time.perf_counter() - start
    out["ok"] = out["got"] == out["want"] and out.get("finite", True)
    return out


def role_name(role: str, index: int) -> str:
    return f"{role}.{index}" if role in ("judge", "eval-captioner") else role


if __name__ == "__main__":
    try:
        out = main()
    except Exception as exc:  # the bench reads one line either way
        import traceback

        traceback.print_exc(file=sys.stderr)
        out = {"error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ''}"}
    print(json.dumps(out), flush=True)
