"""A round on a busy machine: torch's OpenMP threads spinning (OpenMP's default) against sleeping (mora's).

Each measurement is a fresh process that loads the tiny round's agents once and then makes candidate sets
(generation and judging, as a worker does), timed after the load; beside it run N processes that burn a core
each (``python -c "while True: pass"``). ``spin`` imports torch before mora, so OpenMP keeps its default
(threads spin ~300k rounds after every parallel region); ``sleep`` imports mora first (mora/__init__.py:
OMP_WAIT_POLICY=PASSIVE). Both use the same torch threads and make the same bytes. The variants alternate
within each repeat. The idle rows are the control: what sleeping costs where nothing else runs.
Last line: ``speedup=X.XX`` (spin / sleep, medians, at the busiest load).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKER = """
import json, sys, time
if sys.argv[1] == "spin":
    import torch  # noqa: F401  (OpenMP starts with its own default, before mora can set one)
from mora.config import load_config
from mora.round import steps
from datetime import UTC, datetime
config = load_config(sys.argv[2], {"prompts.count": sys.argv[3], "shards.root": sys.argv[4]})
agents = steps.RoundAgents.load(config)
planned = steps.plan_prompts(config, agents.prompt)
t = time.perf_counter()
for p in planned:
    steps.make_set(config, agents, p, datetime.now(UTC))
print(json.dumps({"seconds": time.perf_counter() - t}))
"""

ENV = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}  # the variants set it, or not


def measure(variant: str, config: str, prompts: int, busy: int) -> float:
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        out = subprocess.run([sys.executable, "-c", WORKER, variant, config, str(prompts), tempfile.mkdtemp()],
                             cwd=REPO, env=ENV, capture_output=True, text=True, check=True, timeout=3600)
    finally:
        for b in burners:
            b.kill()
            b.wait()
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds"] / prompts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default=str(REPO / "configs" / "tiny.yaml"))
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 2], help="burning processes beside the round")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    times = {(busy, v): [] for busy in args.busy for v in ("spin", "sleep")}
    for rep in range(args.repeats):
        for busy in args.busy:
            for variant in ("spin", "sleep") if rep % 2 == 0 else ("sleep", "spin"):
                times[busy, variant].append(measure(variant, args.config, args.prompts, busy))
                print(f"repeat {rep + 1}, {busy} busy, {variant}: {times[busy, variant][-1]:.2f} s per set",
                      file=sys.stderr)
    table = Table(title=f"tiny round, {args.prompts} candidate sets per process, {args.repeats} repeats")
    for col in ("busy processes", "OpenMP threads", "median s per set", "min", "max", "spin / sleep"):
        table.add_column(col, justify="right")
    for busy in args.busy:
        for variant in ("spin", "sleep"):
            ts = times[busy, variant]
            ratio = statistics.median(times[busy, "spin"]) / statistics.median(ts)
            table.add_row(str(busy), variant, f"{statistics.median(ts):.2f}", f"{min(ts):.2f}", f"{max(ts):.2f}",
                          f"{ratio:.2f}")
    Console().print(table)
    top = max(args.busy)
    print(f"speedup={statistics.median(times[top, 'spin']) / statistics.median(times[top, 'sleep']):.2f}")


if __name__ == "__main__":
    main()
