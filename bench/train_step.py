"""Self-modulated fine-tuning speed: optimizer steps per second of the text-to-image → image-to-video chain.

A throwaway round on the tiny models (both judge slots the same model, so every set is accepted)
gives the shards; each variant then trains on them through ``SelfModulatedTrainer``, data loading,
both agents, the hand-off, backward, AdamW and EMA included. Checkpoints are not timed (they are
written every ``checkpoint_every`` steps, here once at the end). Median over the steps after the first.
Last line: ``steps_per_s=X.XX`` for the paper's settings (LoRA, modulation, gradient checkpointing, one
loss on the final output, the sampled hand-off).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

VARIANTS = {
    "paper (lora, modulation, grad ckpt)": {},
    "paper objective, estimate hand-off": {"training.handoff": "estimate"},
    "per-agent objective, estimate hand-off (before)": {"training.objective": "per-agent",
                                                        "training.handoff": "estimate"},
    "no gradient checkpointing": {"training.gradient_checkpointing": "false"},
    "no modulation (ablation)": {"training.modulation.enabled": "false"},
    "full fine-tuning": {"training.mode": "full"},
    "batch 1": {"training.batch_size": "1"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default=str(REPO / ".mora" / "models" / "tiny"))
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from mora.cli_env import prefect_defaults

    prefect_defaults(tempfile.mkdtemp(prefix="mora-bench-prefect-"), log_level="WARNING")
    import torch
    from rich.console import Console
    from rich.table import Table

    from mora.config import load_config
    from mora.flows.round import dataset_round
    from mora.training.trainer import SelfModulatedTrainer

    work = Path(tempfile.mkdtemp(prefix="mora-bench-train-"))
    config = work / "tiny.yaml"
    text = (REPO / "configs" / "tiny.yaml").read_text().replace(".mora/models/tiny", args.models)
    config.write_text(text.replace("root: mora-data", f"root: {work / 'data'}"))
    base = {"prompts.count": "4", "generation.num_frames": str(args.frames), "generation.height": str(args.size),
            "generation.width": str(args.size), "judges.1.family": "llava-onevision",
            "judges.1.model.id": f"{args.models}/llava-onevision", "runtime.device": args.device,
            "training.max_steps": str(args.steps), "training.checkpoint_every": str(args.steps)}
    dataset_round(str(config), base)

    table = Table(title=f"fine-tuning steps/s, tiny models, {args.frames}x{args.size}x{args.size}, {args.device}")
    for col in ("variant", "batch", "steps/s", "ms/step", "trained params", "peak GPU MiB"):
        table.add_column(col, justify="left" if col == "variant" else "right")
    paper = None
    for name, overrides in VARIANTS.items():
        cfg = load_config(config, base | overrides | {"training.output": str(work / "ckpt" / name.split()[0])})
        trainer = SelfModulatedTrainer(cfg)
        trainer.setup()
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        result = trainer.train()
        seconds = statistics.median(s["seconds"] for s in result.steps[1:])
        peak = f"{torch.cuda.max_memory_allocated() / 2**20:.0f}" if torch.cuda.is_available() else "-"
        trained = sum(p.numel() for p in trainer.params)
        table.add_row(name, str(cfg.training.batch_size), f"{1 / seconds:.2f}", f"{seconds * 1000:.0f}",
                      f"{trained:,}", peak)
        if paper is None:
            paper = 1 / seconds
        trainer.close()
    Console(width=130).print(table)
    print(f"steps_per_s={paper:.2f}")


if __name__ == "__main__":
    main()
