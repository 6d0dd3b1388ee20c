"""Round overhead: the Prefect flow against a bare script making and judging the same candidates.

Both variants run in one process after the models are loaded (the worker's steady state) and call
the same pipelines for the same prompts and seeds; the bare script calls the plain step functions
in a loop and writes the same products: shards, review records, contact sheets, dataset card and
report (the round gained the last three after this benchmark was first written; a bare script that
skipped them would count their cost as the flow's). Prefect's temporary API server starts once per process and is
reported on its own line (a deployment's worker talks to a long-running server instead). ``round``
runs as ``mora round`` does, without flow-run heartbeats on the temporary server
(``mora.cli_env.flow_settings``); ``round, heartbeats on`` as against a real server, where Prefect
joins its heartbeat thread in 1 s sleeps at the end of every flow run.
Last line: ``ratio=X.XX`` (round / bare, medians). Target: <= 1.10.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from mora.cli_env import prefect_defaults  # noqa: E402 - after the path, before Prefect is imported

prefect_defaults(tempfile.mkdtemp(prefix="mora-bench-prefect-"), log_level="WARNING")


def bare_round(config) -> None:
    from mora.datasets.contact_sheet import write_contact_sheets
    from mora.datasets.shards import write_shards
    from mora.reports.publish import publish
    from mora.review.pending import record_pending
    from mora.round import steps

    agents = steps.RoundAgents.load(config)
    started = datetime.now(UTC)
    rows = []
    for planned in steps.plan_prompts(config, agents.prompt):
        rows += steps.make_set(config, agents, planned, started)
    s = config.shards
    paths = write_shards(rows, s.root, s.dataset, config.iteration, config.round_id, s.max_rows_per_shard)
    record_pending(s.root, s.dataset, config.iteration, rows, paths)
    write_contact_sheets(rows, Path(s.root) / "_reports" / s.dataset / f"iteration={config.iteration}",
                         config.round_id)
    publish(Path(s.root), s.dataset)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default=str(REPO / "configs" / "tiny.yaml"))
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="field.path=VALUE")
    args = parser.parse_args()

    from prefect import flow
    from rich.console import Console
    from rich.table import Table

    from mora.cli_env import flow_settings
    from mora.config import load_config, parse_overrides
    from mora.flows.round import dataset_round
    from mora.round.steps import RoundAgents

    os.chdir(REPO)
    work = Path(tempfile.mkdtemp(prefix="mora-bench-"))
    base = {"prompts.count": str(args.prompts), **parse_overrides(args.overrides)}
    RoundAgents.load(load_config(args.config, base))  # load models once, as a worker does

    t = time.perf_counter()
    flow(name="warm-up")(lambda: None)()
    server_start = time.perf_counter() - t

    times: dict[str, list[float]] = {"bare": [], "round": [], "round, inside the flow": [],
                                     "round, heartbeats on": []}
    for rep in range(args.repeats):
        for n, variant in enumerate(("bare", "round", "round, heartbeats on")):
            overrides = {**base, "shards.root": str(work / f"{n}-{rep}")}
            t = time.perf_counter()
            if variant == "bare":
                bare_round(load_config(args.config, overrides))
            elif variant == "round":
                with flow_settings():
                    summary = dataset_round(args.config, overrides)
                times["round, inside the flow"].append(summary["seconds"])
            else:
                dataset_round(args.config, overrides)
            times[variant].append(time.perf_counter() - t)

    extra = f" ({', '.join(args.overrides)})" if args.overrides else ""
    table = Table(title=f"tiny round, {args.prompts} prompts x 4 candidates, {args.repeats} repeats{extra}")
    for col in ("variant", "median s", "min s", "max s", "s per candidate set"):
        table.add_column(col, justify="right")
    for variant, ts in times.items():
        med = statistics.median(ts)
        table.add_row(variant, f"{med:.2f}", f"{min(ts):.2f}", f"{max(ts):.2f}", f"{med / args.prompts:.3f}")
    table.add_row("prefect server start (once)", f"{server_start:.2f}", "", "", "")
    Console().print(table)
    heartbeats = statistics.median(times["round, heartbeats on"]) / statistics.median(times["bare"])
    print(f"with heartbeats (a real server) the ratio is {heartbeats:.2f}: the flow run ends on a whole second")
    print(f"ratio={statistics.median(times['round']) / statistics.median(times['bare']):.2f}")


if __name__ == "__main__":
    main()
