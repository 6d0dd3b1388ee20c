"""Real size without a GPU: every model a preset names, built, loaded, stepped and traced at its real size.

For each preset and each model it names:
  * parameters counted on the meta device against the authors' published figure (within 2%);
  * the model built with random weights (``mora models make-random``), then loaded in a child process through
    mora's own loader for its role (the preset with ``--set`` overrides pointing at the folder): seconds, peak
    resident memory during the load, and resident memory with every weight page read;
  * one real small step (a denoiser step and a VAE decode per generator, a label-scores call on four candidates
    of two frames each per judge, a prompt-LLM generate), every output's shape checked; on a copy of the loaded
    model cut to the first ``--cut`` blocks of every block stack, in float32 (see ``mora/models/real/probe.py``);
  * a meta-device trace at the preset's real resolution, frames and steps (``mora/models/real/trace.py``).
From those: projected H100 seconds per candidate at ``--utilisation`` of the bf16 dense peak, candidates per
GPU-hour, and whether generator + judges + prompt LLM fit one 80 GB card. Writes
``bench/results/real-size-cpu-DATE.md``. Every model folder is removed after its measurement unless ``--keep``;
measurements are cached per model (``--cache``), so presets that share a model measure it once.

    python bench/real_size.py configs/sd3-svd-7b.yaml [more presets] --models /scratch/models
"""

from __future__ import annotations

import argparse
import datetime
import fcntl
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

H100 = {"name": "H100 SXM5 80 GB", "bf16_flops": 989.4e12, "hbm_bytes_s": 3.35e12, "memory": 80 * 2**30,
        "source": "NVIDIA H100 Tensor Core GPU datasheet (SXM5: 989.4 dense BF16 TFLOPS, 3.35 TB/s HBM3, 80 GB)"}
CARD_BUDGET = H100["memory"] - 3 * 2**30  # CUDA context, allocator slack and fragmentation: 3 GiB kept back
GIB, GB = 2**30, 1e9
LOCK = Path("/work/coord/bigmem.lock")
PROBE_ROLE = {"prompts.model.id": "prompt", "generation.text_to_image.id": "text_to_image",
              "generation.image_to_video.id": "image_to_video", "generation.image_to_image.id": "image_to_image",
              "generation.connect.id": "connect", "eval.object_encoder.id": "eval-object", "eval.clip.id": "eval-clip",
              "eval.aesthetic_clip.id": "eval-aesthetic", "eval.aesthetic_head.id": "eval-aesthetic",
              "eval.video_encoder.id": "eval-video", "eval.text_embedder.id": "eval-text",
              "eval.image_captioner.model.id": "eval-captioner", "eval.video_captioner.model.id": "eval-captioner"}


def mem_available() -> int:
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable"))


def counts(model) -> dict:
    """Parameters of what the published figure counts, on the meta device, and the checkpoint's weights."""
    import torch

    from mora.models.real.stream import entries, meta_model

    counted = checkpoint = 0
    for key, spec in model.weights.items():
        meta = meta_model(spec)
        params = {id(p) for p in meta.parameters()}
        state = meta.state_dict(keep_vars=True)
        checkpoint += sum(e.nbytes // 2 for e in entries(meta, torch.bfloat16, spec.library)
                          if e.dtype.is_floating_point)
        if model.published_part not in (None, key):
            continue
        seen = set()
        for name, t in state.items():
            if any(x in name for x in model.excluded) or not t.is_floating_point() or id(t) in seen:
                continue
            seen.add(id(t))  # tied weights once
            if id(t) in params or model.counts == "checkpoint":
                counted += t.numel()
    if model.kind == "aesthetic-head":
        layers = model.components[""].args["layers"]
        counted = checkpoint = sum(a * b + b for a, b in zip(layers, layers[1:], strict=False))
    published = model.published[0]
    return {"counted": counted, "checkpoint": checkpoint, "published": published,
            "delta": counted / published - 1, "within_2pct": abs(counted / published - 1) <= 0.02}


def roles(model, uses) -> list[str]:
    """What a probe loads and steps: the first use's role, then the model's other generation forms."""
    mine = [u for u in uses if u.model is model]
    first = "judge" if mine[0].field.startswith("judges.") else PROBE_ROLE.get(mine[0].field)
    forms = [PROBE_ROLE[u.field] for u in mine[1:] if u.field.startswith("generation.")]
    return [first] + [r for r in dict.fromkeys(forms) if r != first]


def probe(preset: Path, model, uses, folder: Path, args, layers: int | None) -> dict:
    """Build the folder, then load and step it in a child process under the shared memory lock."""
    from mora.models.real.build import build_model, checkpoint_bytes, remove_model

    use = next(u for u in uses if u.model is model)
    role, *others = roles(model, uses)
    need = checkpoint_bytes(model, DT[args.dtype], layers)
    start = time.perf_counter()
    build_model(model, args.models, args.dtype, 0, layers)
    built_s = time.perf_counter() - start
    cmd = [sys.executable, "-m", "mora.models.real.probe", str(preset), role, "--side", str(args.side),
           "--device", args.device]
    for u in uses:
        if u.model is model and (u is use or u.field.startswith("generation.")):
            cmd += ["--set", f"{u.field}={folder}"]
    for other in others:
        cmd += ["--also", other]
    if args.cut is not None:
        cmd += ["--cut", str(args.cut)]
    if role == "judge":
        cmd += ["--index", use.field.split(".")[1], "--set", f"{use.field.rsplit('.', 2)[0]}.orders=1"]
    if role == "eval-captioner":
        cmd += ["--index", str(int(use.field == "eval.video_captioner.model.id"))]
    if role == "eval-aesthetic":  # the aesthetic predictor reads both folders
        other = "eval.aesthetic_clip.id" if use.field == "eval.aesthetic_head.id" else "eval.aesthetic_head.id"
        cmd += ["--set", f"{other}={args.models / PAIR[use.model.name]}"]
        build_model(BY_NAME[PAIR[use.model.name]], args.models, args.dtype)
    result = run_locked(cmd, need, args)
    result |= {"build_s": built_s, "weights_bytes": need, "layers_on_disk": layers}
    if not args.keep:
        remove_model(model, args.models, keep_shared=True)
        if role == "eval-aesthetic":
            remove_model(BY_NAME[PAIR[use.model.name]], args.models, keep_shared=True)
    return result


def run_locked(cmd: list[str], need: int, args) -> dict:
    """The child under /work/coord/bigmem.lock, once MemAvailable shows its need + 4 GiB.

    Its weights are mapped from the safetensors files, not copied (page cache the kernel can drop), so its
    need is its anonymous memory: the step's float32 copy of the cut model and the interpreter, bounded by
    ``--anon-gib``; the child stops itself past what the machine has (probe.watch_memory)."""
    anon = args.anon_gib * GIB
    waited = time.perf_counter()
    lock = open(LOCK, "a") if LOCK.parent.exists() else None
    try:
        while True:
            if mem_available() >= anon + 4 * GIB:
                if lock:
                    fcntl.flock(lock, fcntl.LOCK_EX)
                if mem_available() >= anon + 4 * GIB:
                    break
                if lock:
                    fcntl.flock(lock, fcntl.LOCK_UN)
            if time.perf_counter() - waited > args.wait_s:
                return {"error": f"not run: needs {(anon + 4 * GIB) / GIB:.0f} GiB available, the machine has "
                                 f"{mem_available() / GIB:.1f}"}
            time.sleep(15)
        limit = max(mem_available() - 3 * GIB, 4 * GIB)
        out = subprocess.run([*cmd, "--limit-gib", f"{limit / GIB:.1f}"], capture_output=True, text=True,
                             cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "2", "TOKENIZERS_PARALLELISM": "false"},
                             timeout=args.step_timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"stopped after {args.step_timeout} s"}
    finally:
        if lock:
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"error": f"child exited {out.returncode}: {out.stderr.strip().splitlines()[-1:]}"}
    return json.loads(lines[-1])


PAIR = {"clip-vit-large-patch14": "ddpo-aesthetic-predictor", "ddpo-aesthetic-predictor": "clip-vit-large-patch14"}


def traces(cfg, uses, args) -> list:
    """Meta traces of every in-process or served use that makes a round's candidates."""
    from mora.judges.processors import load_processor
    from mora.models.real import trace
    from mora.models.real.parts import MAKERS

    out, gen = [], cfg.generation
    for use in uses:
        m = use.model
        if use.field == "generation.text_to_image.id":
            out.append(trace.text_to_image(m, gen))
        elif use.field == "generation.image_to_video.id":
            out.append(trace.image_to_video(m, gen))
        elif use.field.startswith("judges."):
            i = int(use.field.split(".")[1])
            judge = cfg.judges[i]
            folder = processor_folder(m, MAKERS, args)
            processor = load_processor(str(folder))
            # a GPU machine imports torchvision: in process, video_input auto gives native video there
            native = judge.video_input == "native" or (judge.video_input == "auto" and judge.backend == "transformers")
            t = trace.judge(m, folder, processor, judge, gen, native)
            t.notes["on_h100"] = "native video (torchvision imports there)" if native else "frames as images"
            t.notes["backend"] = judge.backend
            out.append(t)
        elif use.field == "prompts.model.id":
            folder = processor_folder(m, MAKERS, args, part="tokenizer")
            from transformers import AutoTokenizer

            t = trace.prompt_agent(m, AutoTokenizer.from_pretrained(str(folder)), cfg.prompts)
            t.notes["backend"] = cfg.prompts.backend
            out.append(t)
    return out


def processor_folder(model, makers, args, part: str = "processor") -> Path:
    """The model's processor or tokenizer files alone (cheap to make), under the cache folder."""
    folder = args.cache / "files" / model.name
    if not (folder / ".done").exists():
        spec = model.components[part]
        makers[spec.maker](folder, **spec.args)
        from mora.models.real.stream import config_of

        config_of(model.components[""]).save_pretrained(folder)  # what the processor reads beside its own files
        (folder / ".done").write_text("")
    return folder


def project(cfg, uses, traced: list, utilisation: float) -> dict:
    """Projected H100 time per candidate and memory on one card (projections, not measurements)."""
    from mora.models.real.trace import largest_component

    n = cfg.generation.candidates
    per = {}
    for t in traced:
        if t.unit == "candidate":
            per[t.use] = t.cost.flops
        elif t.unit == "set":
            per[f"judge {t.model}"] = t.cost.flops / n
        elif t.unit == "prompt":
            per["prompt"] = t.cost.flops / n
    flops = sum(per.values())
    seconds = flops / (H100["bf16_flops"] * utilisation)
    llm = next((t for t in traced if t.use == "prompt"), None)
    if llm is not None:  # decoding reads every weight once per token for the whole batch of prompts
        seconds += 2 * cfg.prompts.max_new_tokens * llm.weights / H100["hbm_bytes_s"] / cfg.prompts.count / n
    local = [t for t in traced if t.notes.get("backend", "transformers") == "transformers"]
    resident = {t.model: t.weights for t in local}
    if cfg.runtime.cpu_offload:  # one component of one pipeline on the GPU at a time, the rest in CPU memory
        makers = {t.model for t in local if t.use in ("text_to_image", "image_to_video")}
        largest = {name: largest_component(next(u.model for u in uses if u.model.name == name)) for name in makers}
        top = max(largest, key=largest.get)
        resident = {k: v for k, v in resident.items() if k not in makers} | {f"{top} (offloaded)": largest[top]}
    act = max((t.cost.activation_peak for t in local), default=0)
    at_once = sum(resident.values()) + act
    prompt = next((t.model for t in local if t.use == "prompt"), None)
    as_run = at_once - (resident.get(prompt, 0) if prompt else 0)  # the round frees the prompt LLM after planning
    out = {"flops_per_candidate": flops, "by_use": per, "seconds": seconds, "per_hour": 3600 / seconds,
           "resident": resident, "activation_peak": act, "at_once": at_once, "as_run": as_run,
           "fits_at_once": at_once <= CARD_BUDGET, "fits_as_run": as_run <= CARD_BUDGET}
    if cfg.runtime.engine == "ray":  # generators on their own GPUs, judges on vLLM GPUs
        gen = sum(v for k, v in per.items() if not k.startswith(("judge", "prompt")))
        judge = max((v * n for k, v in per.items() if k.startswith("judge")), default=0)
        workers = cfg.runtime.ray.generators.workers
        out["ray"] = {"generator_gpus": workers, "candidates_per_hour": workers * 3600 * H100["bf16_flops"] *
                      utilisation / gen, "sets_per_judge_gpu_hour": 3600 * H100["bf16_flops"] * utilisation / judge}
    return out


DT: dict = {}
BY_NAME: dict = {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("presets", nargs="+", type=Path)
    parser.add_argument("--models", type=Path, default=REPO / ".mora" / "models" / "real")
    parser.add_argument("--cache", type=Path, default=REPO / ".mora" / "real-size")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--utilisation", type=float, default=0.4, help="share of the H100's bf16 peak assumed")
    parser.add_argument("--cut", type=lambda v: None if v == "none" else int(v), default=1,
                        help="blocks per stack kept for the CPU step; none: full depth (a GPU)")
    parser.add_argument("--device", default="cpu", help="where the probes load and step: cpu, or cuda on a GPU "
                                                        "machine (with --cut none)")
    parser.add_argument("--side", type=int, default=128, help="image side of the CPU step")
    parser.add_argument("--no-probe", action="store_true", help="counts and traces only (nothing built)")
    parser.add_argument("--keep", action="store_true", help="keep the model folders")
    parser.add_argument("--wait-s", type=float, default=3600, help="longest wait for memory before a load")
    parser.add_argument("--anon-gib", type=float, default=6.0, help="anonymous memory a probe may need")
    parser.add_argument("--step-timeout", type=float, default=3600)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    import torch

    from mora.config import load_config
    from mora.models.real.build import DTYPES, preset_models, unique_models
    from mora.models.real.catalogue import BY_NAME as names

    DT.update(DTYPES)
    BY_NAME.update(names)
    args.cache.mkdir(parents=True, exist_ok=True)
    args.models.mkdir(parents=True, exist_ok=True)
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    sections = []
    for preset in args.presets:
        cfg = load_config(preset)
        uses = preset_models(cfg)
        rows = []
        for model in unique_models(uses):
            count = counts(model)
            where = "" if args.device == "cpu" else f".{args.device.replace(':', '')}"
            forms = roles(model, uses)
            cached = args.cache / f"{model.name}.{'+'.join(forms)}.{args.dtype}{where}.json"
            alone = args.cache / f"{model.name}.{forms[0]}.{args.dtype}{where}.json"  # its first form only
            if cached.exists():
                measured = json.loads(cached.read_text())
            elif args.no_probe and alone.exists():
                measured = json.loads(alone.read_text()) | {"not_stepped": forms[1:]}
            elif args.no_probe:
                measured = {"skipped": "--no-probe"}
            else:
                from mora.models.real.build import checkpoint_bytes

                full = checkpoint_bytes(model, DT[args.dtype])
                layers = None if full + 4 * GIB < ram else 2  # a copy cut on disk: the full one cannot load here
                measured = probe(preset, model, uses, args.models / model.name, args, layers)
                measured["full_bytes"] = full
                if "error" not in measured:
                    cached.write_text(json.dumps(measured))
            rows.append({"model": model, "uses": [u.field for u in uses if u.model is model],
                         "in_process": any(u.in_process for u in uses if u.model is model),
                         "count": count, "measured": measured})
            print(f"{preset.name}: {model.name} done", file=sys.stderr, flush=True)
        traced = traces(cfg, uses, args)
        sections.append(render(preset, cfg, rows, traced, project(cfg, uses, traced, args.utilisation), args))
    date = datetime.date.today().isoformat()
    out = args.out or REPO / "bench" / "results" / f"real-size-cpu-{date}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    head = (f"# Real size on CPU, {date}\n\nMachine: {platform.processor() or platform.machine()}, {os.cpu_count()} "
            f"cores, {ram / GIB:.0f} GiB, shared with other work (timings are noisy); torch {torch.__version__}. "
            "No GPU: every H100 figure is a **projection** from the meta-device trace at "
            f"{args.utilisation:.0%} of the {H100['name']}'s dense BF16 peak ({H100['source']}), with "
            f"{CARD_BUDGET / GIB:.0f} GiB of its memory usable.\n")
    out.write_text(head + "\n".join(sections))
    print(out)


def _gib(b) -> str:
    return f"{b / GIB:.1f}" if isinstance(b, (int, float)) else "-"


def render(preset: Path, cfg, rows, traced, proj, args) -> str:
    lines = [f"\n## {preset.name}\n", "| model | used as | parameters (published) | Δ | weights GiB | load s | "
             "load peak GiB | resident GiB | CPU step | shapes |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        m, c, x = r["model"], r["count"], r["measured"]
        uses = ", ".join(sorted({u.split(".")[0] if not u.startswith("judges") else "judge" for u in r["uses"]}))
        if not r["in_process"]:
            uses += " (served)"
        if "error" in x:
            load, peak, res, step, shapes = "-", "-", "-", x["error"][:80], "-"
        elif "skipped" in x:
            load, peak, res, step, shapes = "-", "-", "-", x["skipped"][:80], "-"
        else:
            load, peak, res = f"{x['load_s']:.0f}", _gib(x.get("load_peak")), _gib(x.get("loaded_rss"))
            cut = f"first {x['cut']} blocks/stack" if x.get("cut") is not None else "full depth"
            if x.get("layers_on_disk"):
                cut = f"{x['layers_on_disk']}-block copy on disk (full {x['full_bytes'] / GB:.0f} GB > RAM), {cut}"
            forms = x.get("also", {})
            step = f"{x.get('step_s', 0):.0f} s" + "".join(f" + {r} {f['step_s']:.0f} s" for r, f in forms.items())
            step += "".join(f" + {r} not stepped" for r in x.get("not_stepped", []))
            step += f", {cut}, {x.get('compute_dtype', args.dtype)}"
            shapes = ("OK " if x.get("ok") else "WRONG ") + str(x.get("got"))
            shapes += "".join(f"; {r} {f['got']}" for r, f in forms.items())
        lines.append(f"| {m.name} | {uses} | {c['counted'] / 1e9:.3f}B ({c['published'] / 1e9:g}B) | "
                     f"{c['delta']:+.1%}{'' if c['within_2pct'] else ' ✗'} | {c['checkpoint'] * 2 / GIB:.1f} | "
                     f"{load} | "
                     f"{peak} | {res} | {step} | {shapes} |")
    lines += ["", "Meta-device trace at the preset's real size (bf16; FLOPs per unit, all steps and guidance "
                  "included):", "", "| use | model | unit | TFLOP | activations GiB | weights GiB | notes |",
              "|---|---|---|---|---|---|---|"]
    for t in traced:
        notes = ", ".join(f"{k}={v}" for k, v in t.notes.items())
        lines.append(f"| {t.use} | {t.model} | {t.unit} | {t.cost.flops / 1e12:,.1f} | "
                     f"{t.cost.activation_peak / GIB:.1f} | {t.weights / GIB:.1f} | {notes} |")
    def verdict(ok: bool) -> str:
        return "fits" if ok else "does NOT fit"

    offload = " (CPU offload: a generator holds its largest component)" if cfg.runtime.cpu_offload else ""
    lines += ["", f"**Projection** ({args.utilisation:.0%} of the H100's bf16 peak): "
                  f"{proj['flops_per_candidate'] / 1e15:.2f} PFLOP per candidate → **{proj['seconds']:.1f} s per "
                  f"candidate, {proj['per_hour']:.0f} candidates per GPU-hour** on one H100.", "",
              f"**One 80 GB card**{offload}: in-process weights "
              + ", ".join(f"{k} {v / GIB:.1f}" for k, v in proj["resident"].items())
              + f" GiB, largest activation peak {proj['activation_peak'] / GIB:.1f} GiB. All at once: "
                f"{proj['at_once'] / GIB:.1f} of {CARD_BUDGET / GIB:.0f} GiB, **{verdict(proj['fits_at_once'])}**; "
                f"as a round runs (the prompt LLM freed after planning): {proj['as_run'] / GIB:.1f} GiB, "
                f"**{verdict(proj['fits_as_run'])}**."]
    if "ray" in proj:
        r = proj["ray"]
        lines += ["", f"Ray layout: {r['generator_gpus']} generator GPUs make {r['candidates_per_hour']:.0f} "
                      "candidates "
                      f"({r['candidates_per_hour'] / cfg.generation.candidates:.0f} sets) per hour; one judge GPU "
                      f"ranks {r['sets_per_judge_gpu_hour']:.0f} sets per hour (projections)."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
