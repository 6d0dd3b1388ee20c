"""Which agent learned what? One iteration of fine-tuning per arm, then each agent measured on its own.

``bench/loop_learns.py`` measures the whole chain: the property of the videos it makes. When an arm does
not move as its judges point, this says which agent is at fault. From a finished loop_learns run
(``--run WORK``, the folder it printed), each arm's iteration-1 shards (the same candidates in every arm,
selected differently) are fine-tuned on again with ``mora train``, from the run's start checkpoint, once per
``--variant`` (``--set`` overrides, so training settings can be compared on the same data). Then:

- text-to-image: the property of the first frames it makes for held-out prompts, with the preset's guidance
  (as it generates) and without (its conditional prediction alone, which is what fine-tuning fits);
- image-to-video: the property of the rest of the clip (frames 1..) it makes from fixed first frames: the
  base text-to-image agent's frames for the same prompts, at three brightness scales (0.7, 1, 1.3), so
  that this agent is measured on the same inputs whatever the other one learned.

Each is printed as the change from the start checkpoint. An agent whose change in the "less" arm is not
below the control's did not learn the selection.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from mora.cli_env import prefect_defaults  # noqa: E402 - after the path, before Prefect is imported

prefect_defaults(tempfile.mkdtemp(prefix="mora-bench-prefect-"), log_level="WARNING")

SCALES = (0.7, 1.0, 1.3)


def train(args, arm: str, name: str, sets: list[str], out: Path) -> Path:
    """``mora train`` on the arm's iteration-1 shards from the run's start checkpoint; the checkpoint it wrote."""
    start = next((args.run / "data" / "_checkpoints" / f"learns-{args.property}-{arm}" / "start").glob("start-*"))
    command = [sys.executable, "-m", "mora.cli", "train", "-c", str(args.config), "--root", str(args.run / "data"),
               "--iteration", "1", "--set", f"shards.dataset=learns-{args.property}-{arm}",
               "--set", f"generation.checkpoint={start}", "--set", f"training.output={out / name / arm}"]
    from mora.evaluation.learning import arm_overrides

    models = {k: v for k, v in arm_overrides(arm, args.property, args.models).items() if k.startswith("generation.")}
    for s in [f"{k}={v}" for k, v in models.items()] + sets:
        command += ["--set", s]
    subprocess.run(command, check=True, cwd=REPO, capture_output=True)
    return sorted((out / name / arm).glob("iteration=1/*/step-*"))[-1]


def agents(args, checkpoint: Path | None):
    """(config, text-to-image agent, image-to-video agent) with ``checkpoint`` (None: the base models)."""
    from mora.agents.image_to_video import ImageToVideoAgent
    from mora.agents.text_to_image import TextToImageAgent
    from mora.config import load_config
    from mora.evaluation.learning import arm_overrides

    cfg = load_config(args.config, arm_overrides("control", args.property, args.models))
    g, ckpt = cfg.generation, str(checkpoint) if checkpoint else None
    return (cfg, TextToImageAgent.from_pretrained(g.text_to_image, cfg.runtime, ckpt),
            ImageToVideoAgent.from_pretrained(g.image_to_video, cfg.runtime, ckpt))


def fixed_first_frames(args, prompts: list[str]) -> list:
    """The base text-to-image agent's frame for each (prompt, seed), at each scale: the image-to-video agent's
    inputs, the same for every checkpoint."""
    import numpy as np
    from PIL import Image

    cfg, base, _ = agents(args, None)
    g, out = cfg.generation, []
    for p in prompts:
        for seed in range(args.seeds):
            frame = np.asarray(base.first_frame(p, [seed], g.height, g.width, g.image_steps, g.image_guidance)[0],
                               dtype=float)  # a PIL image: 0-255
            out += [(p, seed, Image.fromarray(np.clip(frame * scale, 0, 255).round().astype(np.uint8)))
                    for scale in SCALES]
    return out


def probe(args, checkpoint: Path, prompts: list[str], fixed: list) -> tuple[float, float, float]:
    """(text-to-image first frames guided, unguided, image-to-video rest of the clip from the fixed first frames)."""
    import numpy as np

    from mora.evaluation.properties import property_function

    prop = property_function(args.property)
    cfg, t2i, i2v = agents(args, checkpoint)
    g = cfg.generation

    def first_frames(guidance: float) -> list[float]:
        return [prop(np.asarray(t2i.first_frame(p, [seed], g.height, g.width, g.image_steps, guidance)[0])[None])
                for p in prompts for seed in range(args.seeds)]

    guided, unguided = first_frames(g.image_guidance), first_frames(1.0)
    rests = [prop(i2v.animate([image], p, [seed], g.num_frames, g.height, g.width, g.video_steps, g.video_guidance,
                              g.fps)[0][1:]) for p, seed, image in fixed]
    return float(np.mean(guided)), float(np.mean(unguided)), float(np.mean(rests))


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    from mora.evaluation.learning import held_out_prompts

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="a finished bench/loop_learns.py work folder")
    ap.add_argument("--config", type=Path, default=REPO / "configs" / "tiny-learns.yaml")
    ap.add_argument("--models", type=Path, default=REPO / ".mora" / "models" / "tiny")
    ap.add_argument("--property", default="brightness")
    ap.add_argument("--arms", default="control,more,less")
    ap.add_argument("--variant", action="append", default=[],
                    help="NAME=k=v,k=v: training overrides to compare (repeatable); a NAME alone: the preset's "
                         "settings (default: paper, the preset's alone)")
    ap.add_argument("--prompts", type=int, default=6)
    ap.add_argument("--seeds", type=int, default=2)
    args = ap.parse_args()
    console = Console()
    named = [v.partition("=") for v in args.variant or ["paper"]]
    variants = {name: sets.split(",") if sets else [] for name, _, sets in named}
    prompts = held_out_prompts(args.prompts)
    start = next((args.run / "data" / "_checkpoints").glob(f"learns-{args.property}-*/start/start-*"))
    fixed = fixed_first_frames(args, prompts)
    at_start = probe(args, start, prompts, fixed)
    console.print("start checkpoint: text-to-image first frames {:.4f} (unguided {:.4f}), image-to-video rest "
                  "{:.4f}".format(*at_start))
    table = Table(title=f"change after one iteration on the arm's iteration-1 selection ({args.property})")
    for column in ("variant", "arm", "text-to-image first frames", "the same, unguided",
                   "image-to-video rest (fixed first frames)"):
        table.add_column(column)
    with tempfile.TemporaryDirectory(prefix="mora-agent-response-") as out:
        for name, sets in variants.items():
            for arm in args.arms.split(","):
                after = probe(args, train(args, arm, name, sets, Path(out)), prompts, fixed)
                change = [f"{a - b:+.4f}" for a, b in zip(after, at_start, strict=True)]
                console.print(f"{name} {arm}: " + " ".join(change))
                table.add_row(name, arm, *change)
    console.print(table)


if __name__ == "__main__":
    main()
