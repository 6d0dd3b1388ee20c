"""The text-to-image → image-to-video hand-off: how far the frame trained on is from the frame made.

At generation the image-to-video agent animates the text-to-image agent's sampled first frame (its
seed, steps, guidance, 8-bit image). Fine-tuning conditions it on a frame too; this measures, per
candidate, the mean and max absolute difference (0-255 levels) between that frame and the one the
agent makes at generation, for both hand-offs, plus the hand-off's forward+backward time:

- ``sampled`` (training.handoff default): the agent's own few-step sampling from the candidate's seed,
  gradient through the last step(s);
- ``estimate`` (the option, the behaviour before): a one-step estimate from the noised target frame at
  a random noise level (logit-normal, as in training), here given the generated frame itself as target.

Generation runs batched over the candidates as in a round. Last line: ``gap_sampled=X gap_estimate=Y``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default=str(REPO / "configs" / "tiny.yaml"))
    parser.add_argument("--prompts", type=int, default=3)
    parser.add_argument("--grad-steps", type=int, default=1)
    args = parser.parse_args()

    import numpy as np
    import torch
    from rich.console import Console
    from rich.table import Table

    from mora.agents.loading import fresh_pipeline
    from mora.agents.modulation import Modulation, special_token_embedding
    from mora.agents.text_to_image import TextToImageAgent
    from mora.config import load_config
    from mora.round.steps import derive_seed
    from mora.training.chain import TextToImageStage

    cfg = load_config(args.config)
    g = cfg.generation
    pipe = fresh_pipeline(g.text_to_image, cfg.runtime, dtype=torch.float32).to(cfg.runtime.device)
    pipe.set_progress_bar_config(disable=True)
    pipe.transformer.requires_grad_(True)
    modulation = Modulation(special_token_embedding(pipe, "<mora-text_to_image>", 1)).to(cfg.runtime.device)
    agent, stage = TextToImageAgent(pipe, g.text_to_image, modulation), TextToImageStage(pipe)
    prompts = ["a red fox runs through a snowy forest", "a paper boat drifts down a rainy street",
               "an astronaut walks on a frozen lake"][: args.prompts]

    def levels(pixels: torch.Tensor) -> np.ndarray:
        return ((pixels.detach().float().permute(0, 2, 3, 1).cpu().numpy() + 1) * 127.5).round()

    gaps: dict[str, list[float]] = {"sampled": [], "estimate": []}
    worst: dict[str, float] = {"sampled": 0.0, "estimate": 0.0}
    seconds: dict[str, list[float]] = {"sampled": [], "estimate": []}
    generator = torch.Generator().manual_seed(0)
    for i, prompt in enumerate(prompts):
        seeds = [derive_seed(cfg.seed, "candidate", i, j) for j in range(g.candidates)]
        made = np.stack([np.asarray(im) for im in agent.first_frame(prompt, seeds, g.height, g.width, g.image_steps,
                                                                     g.image_guidance)]).astype(float)
        for j, seed in enumerate(seeds):
            start = time.perf_counter()
            frame = stage.sample([prompt], [seed], modulation, g.height, g.width, g.image_steps, g.image_guidance,
                                 args.grad_steps)
            frame.mean().backward()
            seconds["sampled"].append(time.perf_counter() - start)
            target = torch.from_numpy(made[j]).permute(2, 0, 1)[None].float() / 127.5 - 1
            start = time.perf_counter()
            _, estimate = stage(target, stage.encode([prompt]), modulation, [generator], cfg.training.snr_gamma,
                                [f"{i}/{j}"])
            estimate.mean().backward()
            seconds["estimate"].append(time.perf_counter() - start)
            pipe.transformer.zero_grad(set_to_none=True)
            for name, got in (("sampled", frame), ("estimate", estimate)):
                diff = np.abs(levels(got)[0] - made[j])
                gaps[name].append(float(diff.mean()))
                worst[name] = max(worst[name], float(diff.max()))

    table = Table(title=f"hand-off train/generate gap, {len(prompts)} prompts x {g.candidates} candidates, "
                        f"{args.config}, {g.image_steps} steps, guidance {g.image_guidance}")
    for col in ("hand-off", "mean |diff| (0-255)", "max |diff|", "s per example (fwd+bwd)"):
        table.add_column(col, justify="left" if col == "hand-off" else "right")
    for name in ("sampled", "estimate"):
        table.add_row(name, f"{statistics.mean(gaps[name]):.3f}", f"{worst[name]:.0f}",
                      f"{statistics.median(seconds[name]):.3f}")
    Console(width=130).print(table)
    print(f"gap_sampled={statistics.mean(gaps['sampled']):.3f} gap_estimate={statistics.mean(gaps['estimate']):.3f}")


if __name__ == "__main__":
    main()
