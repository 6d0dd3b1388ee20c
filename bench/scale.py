"""Scale-out: sets per second of the tiny round on the local engine and on Ray, and peak memory.

Every variant makes the same round (same config and seeds, one torch thread per worker) after its
workers have loaded their models: the clock runs from the first set's generation to the last set's
verdict. ``overlap`` is the share of judging time during which some set was being generated
(0 on the local engine, which does one thing at a time). Peak memory is the driver's peak RSS in
a fresh process running the whole flow (local engine) at 16 and 64 prompts: the round's rows are
never all in memory, so it should stay flat while the shards grow.
Last line: ``speedup=X.XX`` (Ray with 2 generators over local, sets per second). Target: >= 1.3.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from mora.cli_env import prefect_defaults  # noqa: E402 - after the path, before Prefect is imported

prefect_defaults(tempfile.mkdtemp(prefix="mora-bench-prefect-"), log_level="WARNING")

VARIANTS = {"local": {"runtime.engine": "local"},
            "ray, 1 generator": {"runtime.engine": "ray", "runtime.ray.generators.workers": "1"},
            "ray, 2 generators": {"runtime.engine": "ray", "runtime.ray.generators.workers": "2"}}


def union(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(a, b) for a, b in out]


def covered(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float:
    return sum(max(0.0, min(e1, e2) - max(s1, s2)) for s1, e1 in a for s2, e2 in b)


def speed(config_path: str, overrides: dict[str, str]) -> dict:
    from mora.config import load_config
    from mora.round import driver, steps
    from mora.round.state import RoundState

    config = load_config(config_path, overrides)
    state = RoundState(config)
    state.save_prompts(steps.plan_prompts(config, steps.RoundAgents.load(config, frozenset({"prompt"})).prompt))
    spans: list[dict] = []
    driver.make_sets(config, state, state.load_prompts(), datetime.now(UTC), on_set=lambda j: spans.append(j.spans))
    gen, judge = union([s["generate"] for s in spans]), union([s["judge"] for s in spans])
    wall = max(e for _, e in judge) - min(s for s, _ in gen)
    judging = sum(e - s for s, e in judge)
    return {"sets": len(spans), "seconds": wall, "sets_per_s": len(spans) / wall,
            "overlap": covered(gen, judge) / judging if judging else 0.0}


def peak_memory(config_path: str, prompts: int, root: Path) -> dict:
    """A fresh process runs the whole flow; its peak RSS and what it wrote."""
    code = ("import json, resource, sys; from mora.flows.round import dataset_round; "
            "s = dataset_round(sys.argv[1], json.loads(sys.argv[2])); "
            "print(json.dumps({'peak_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "
            "'candidates': s['candidates']}))")
    overrides = {"prompts.count": str(prompts), "shards.root": str(root), "runtime.threads": "1",
                 "shards.max_rows_per_shard": "32"}
    out = subprocess.run([sys.executable, "-c", code, config_path, json.dumps(overrides)], cwd=REPO, check=True,
                         capture_output=True, text=True).stdout.strip().splitlines()[-1]
    got = json.loads(out)
    got["shard_mb"] = sum(p.stat().st_size for p in root.rglob("part-*.parquet")) / 2**20
    return got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default=str(REPO / "configs" / "tiny.yaml"))
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--memory", type=int, nargs="*", default=[16, 64], help="prompt counts for peak memory")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    os.chdir(REPO)
    work = Path(tempfile.mkdtemp(prefix="mora-bench-scale-"))
    base = {"prompts.count": str(args.prompts), "runtime.threads": "1", "generation.num_frames": "9"}
    results = {}
    for name, extra in VARIANTS.items():
        results[name] = speed(args.config, {**base, **extra, "shards.root": str(work / name.replace(" ", "_"))})
    table = Table(title=f"tiny round, {args.prompts} prompts x 4 candidates, one torch thread per worker, "
                        f"{os.cpu_count()} CPUs")
    for col in ("engine", "sets", "seconds", "sets per s", "judging overlapped by generation"):
        table.add_column(col, justify="right")
    for name, r in results.items():
        table.add_row(name, str(r["sets"]), f"{r['seconds']:.1f}", f"{r['sets_per_s']:.3f}", f"{r['overlap']:.0%}")
    Console().print(table)

    memory = Table(title="peak memory of a whole round (local engine, one process)")
    for col in ("prompts", "candidates", "peak RSS MB", "shards MB"):
        memory.add_column(col, justify="right")
    for prompts in args.memory:
        m = peak_memory(args.config, prompts, work / f"memory-{prompts}")
        memory.add_row(str(prompts), str(m["candidates"]), f"{m['peak_mb']:.0f}", f"{m['shard_mb']:.1f}")
    Console().print(memory)
    print(f"this process: peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    print(f"speedup={results['ray, 2 generators']['sets_per_s'] / results['local']['sets_per_s']:.2f}")


if __name__ == "__main__":
    main()
