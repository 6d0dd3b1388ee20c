"""Long videos: drift per segment, chaining from the last frame only (the paper's way, the default)
versus from a clip of last frames through the connect agent (our option, procedures.chaining: clip).

Text-to-video on a preset, chained to ``--segments`` extra segments both ways, same prompts and
seeds. Per segment: mean colour distance from the first segment and sharpness relative to it (1.0 =
unchanged). On the tiny random-weight models the numbers only show the measure works; run it with
real weights (``--config configs/sd35-wan-ltx.yaml`` on a GPU) for the comparison that matters.
Last line: ``drift_ratio=X.XX`` (mean colour drift of last-frame / clip chaining; > 1 favours clip).
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
    parser.add_argument("--segments", type=int, default=4)
    parser.add_argument("--prompts", type=int, default=3)
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from mora.config import load_config
    from mora.procedures.extend import drift, extend_frames
    from mora.procedures.toolbox import Toolbox

    tools = Toolbox(load_config(args.config))
    prompts = ["a red fox runs through a snowy forest", "a paper boat drifts down a rainy street",
               "an astronaut walks on a frozen lake"][: args.prompts]
    table = Table(title=f"drift over {args.segments} chained segments, {len(prompts)} prompts, {args.config}")
    for col in ("chaining", "segment", "colour drift", "sharpness ratio", "s per segment"):
        table.add_column(col, justify="right")
    means = {}
    for chaining in ("clip", "last-frame"):
        rows, seconds = [], []
        for i, prompt in enumerate(prompts):
            first = tools.animate(tools.first_frame(prompt, i), prompt, i)
            start = time.perf_counter()
            frames, starts = extend_frames(tools, first, prompt, 100 + i, args.segments, chaining)
            seconds.append((time.perf_counter() - start) / args.segments)
            rows.append(drift(frames, starts))
        for seg in range(args.segments + 1):
            table.add_row(chaining, str(seg), f"{statistics.mean(r[seg]['colour_drift'] for r in rows):.2f}",
                          f"{statistics.mean(r[seg]['sharpness_ratio'] for r in rows):.3f}",
                          f"{statistics.mean(seconds):.2f}" if seg == 0 else "")
        means[chaining] = statistics.mean(r[-1]["colour_drift"] for r in rows)
    Console().print(table)
    print(f"drift_ratio={means['last-frame'] / max(means['clip'], 1e-9):.2f}")


if __name__ == "__main__":
    main()
