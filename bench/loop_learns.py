"""Does the loop learn? The self-training loop on configs/tiny-learns.yaml, three arms side by side.

- ``more``: both judges taught to prefer more of the property; the scripted reviewer (its own Label
  Studio account) names the candidate with the most of it with probability ``--reliability``;
- ``less``: the same, preferring less;
- ``control``: the random tiny judges (they prefer an arbitrary function of the pixels) and a reviewer
  that picks at random.

Every arm runs the real loop (the ``self-train`` Prefect flow: round, push to Label Studio, the
reviewer answers, collect, fine-tune, the next round on the new checkpoint) from the same base models,
with the same prompts and seeds in every iteration (checked). After each iteration the property is
measured on videos of fixed evaluation prompts (by default held out: the synthesizer's kind of prompt, the
kind the preset trains on, at a seed of their own, checked never to be trained on; ``--eval-prompts evalset``:
the evaluation set's 8 text-to-video prompts; the same seeds every time): mean and 95% interval per arm
and iteration, a plot, and the review load per arm. Last line ``separation=X.X``: (slope of ``more`` -
slope of ``less``) over iterations, paired by evaluation video, in units of its standard error. Target:
``more`` rises, ``less`` falls, separation >= 3, the control stays within the interval of iteration 0.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from mora.cli_env import prefect_defaults  # noqa: E402 - after the path, before Prefect is imported

prefect_defaults(tempfile.mkdtemp(prefix="mora-bench-prefect-"), log_level="WARNING")

ARMS = ("more", "less", "control")
COLOURS = {"more": "tab:orange", "less": "tab:blue", "control": "tab:grey"}
LINES = ("-", "--", ":", "-.")  # one per run in --replicates
LABEL_STUDIO_TEMPLATE = REPO / ".mora" / "cache" / "label-studio"  # a migrated data folder (tests cache it)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def review_server(root: Path):
    from mora.review import server

    if (LABEL_STUDIO_TEMPLATE / "credentials.json").exists():  # seconds instead of a first migration
        shutil.copytree(LABEL_STUDIO_TEMPLATE, server.server_dir(root), dirs_exist_ok=True)
    return server.up(root, port=free_port())


def run_arm(arm: str, args, root: Path, conn, log) -> dict:
    """The loop for one arm, its reviewer answering in Label Studio meanwhile."""
    from mora.evaluation.learning import arm_overrides
    from mora.flows.self_train import self_train
    from mora.review.reviewers import add_reviewer
    from mora.review.scripted import ScriptedReviewer, Taste

    overrides = arm_overrides(arm, args.property, args.models) | {
        "shards.root": str(root), "self_train.iterations": str(args.iterations),
        "prompts.count": str(args.prompts)} | dict(s.split("=", 1) for s in args.set)
    dataset = overrides["shards.dataset"]
    person = add_reviewer(conn, f"{arm}-reviewer@mora.local")
    taste = Taste(args.property, "more" if arm == "control" else arm, 0.0 if arm == "control" else args.reliability)
    reviewer = ScriptedReviewer.sign_in(conn.url, person.email, person.password, taste, seed=args.seed)
    errors: list[Exception] = []
    start = time.perf_counter()
    with reviewer.running(poll_s=0.5, projects=lambda title: title.startswith(f"mora {dataset} iteration "),
                          errors=errors):
        out = self_train(args.config, overrides)
    reviewer.close()
    log(f"{arm}: {args.iterations} iterations in {time.perf_counter() - start:.0f} s; reviewer answered "
        f"{len(reviewer.answers)} sets" + (f" ({len(errors)} failed looks, e.g. {errors[0]})" if errors else ""))
    return {"overrides": overrides, "records": out["iterations"], "answers": reviewer.answers,
            "seconds": time.perf_counter() - start}


def review_load(run: dict) -> dict:
    """Sets the judges could not settle (people decided them) per iteration, and how the reviewer did."""
    records, answers = run["records"], run["answers"]
    sets = sum(r.get("sets", 0) for r in records)
    reviewed = sum(r.get("reviewed", 0) for r in records)
    agreed = sum(a.choice == a.preferred for a in answers)
    return {"sets": sets, "reviewed": reviewed, "share": reviewed / sets if sets else 0.0,
            "answers": len(answers), "named_preferred": agreed / len(answers) if answers else None,
            "per_iteration": [r.get("reviewed", 0) for r in records],
            "selected": [r.get("selected", 0) for r in records]}


def report(by_arm: dict, loads: dict, seconds: dict, prop: str) -> dict:
    from mora.evaluation import learning

    out: dict = {"property": prop, "arms": {}}
    for arm, values in by_arm.items():
        estimates = [learning.estimate(v) for v in values]
        drift = learning.estimate(values[-1] - values[0])
        slope = learning.estimate(learning.slopes(values))
        out["arms"][arm] = {
            "mean": [e.mean for e in estimates], "half_width": [e.half_width for e in estimates],
            "slope": slope.mean, "slope_half_width": slope.half_width,
            "drift": drift.mean, "drift_half_width": drift.half_width,
            "within_iteration_0_interval": all(estimates[0].covers(e.mean) for e in estimates[1:]),
            "spread": [float(np.std(v)) for v in values],
            "review": loads[arm], "seconds": round(seconds[arm], 1)}
    if "more" in by_arm and "less" in by_arm:
        sep, diff = learning.separation(by_arm["more"], by_arm["less"])
        out |= {"separation": sep, "slope_difference": diff.mean, "slope_difference_half_width": diff.half_width}
    else:
        out["separation"] = float("nan")
    return out


def table(rep: dict):
    from rich.table import Table

    arms = rep["arms"]
    iterations = len(next(iter(arms.values()))["mean"])
    t = Table(title=f"{rep['property']} of the evaluation videos (mean, 95% interval) after each iteration")
    t.add_column("arm")
    for k in range(iterations):
        t.add_column(f"it {k}" if k else "it 0 (base)", justify="right")
    for col in ("slope / it", "drift it0->last", "spread it0->last", "reviewed sets", "reviewer named preferred"):
        t.add_column(col, justify="right")
    for arm, a in arms.items():
        r = a["review"]
        t.add_row(arm, *[f"{m:.4f} ± {h:.4f}" for m, h in zip(a["mean"], a["half_width"], strict=True)],
                  f"{a['slope']:+.4f} ± {a['slope_half_width']:.4f}",
                  f"{a['drift']:+.4f} ± {a['drift_half_width']:.4f}",
                  f"{a['spread'][0]:.3f} -> {a['spread'][-1]:.3f}",
                  f"{r['reviewed']}/{r['sets']} ({r['share']:.0%})",
                  "-" if r["named_preferred"] is None else f"{r['named_preferred']:.0%} of {r['answers']}")
    return t


def plot(by_arm: dict, prop: str, path: Path, subtitle: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mora.evaluation import learning

    # the spread beside the mean: selecting the brightest of four can teach more extreme videos, not brighter ones
    fig, (ax, spread) = plt.subplots(1, 2, figsize=(10, 4.2), dpi=120, gridspec_kw={"width_ratios": [3, 2]})
    for arm, values in by_arm.items():
        est = [learning.estimate(v) for v in values]
        x = range(len(values))
        ax.errorbar(x, [e.mean for e in est], yerr=[e.half_width for e in est], marker="o", capsize=3,
                    label=arm, color=COLOURS.get(arm))
        spread.plot(x, [float(np.std(v)) for v in values], marker="o", label=arm, color=COLOURS.get(arm))
    ticks = range(len(next(iter(by_arm.values()))))
    for axis in (ax, spread):
        axis.set_xlabel("iteration (0: the agents before fine-tuning)")
        axis.set_xticks(ticks)
    ax.set_ylabel(f"{prop} of evaluation videos (mean, 95% CI)")
    spread.set_ylabel("standard deviation over evaluation videos")
    fig.suptitle(f"Does the loop learn?\n{subtitle}", fontsize=9)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def summary_lines(rep: dict) -> list[str]:
    arms, lines = rep["arms"], []
    same = "yes" if rep["same_prompts_and_seeds"] else "NO"
    lines.append(f"same prompts and seeds in every arm and iteration: {same}")
    seen = rep.get("evaluation_prompts_trained_on", {})
    lines.append(f"evaluation prompts trained on: {sum(seen.values())} ({rep['settings'].get('eval_prompts')})")
    if "control" in arms:
        c = arms["control"]
        lines.append(f"control drift {c['drift']:+.4f} ± {c['drift_half_width']:.4f}; every iteration within the "
                     f"interval of iteration 0: {'yes' if c['within_iteration_0_interval'] else 'no'}")
    for arm, a in arms.items():
        r = a["review"]
        lines.append(f"review load {arm}: {r['reviewed']} of {r['sets']} sets decided by the reviewer "
                     f"(per iteration {r['per_iteration']}), selected per iteration {r['selected']}")
    lines.append(f"loop {rep['loop_seconds']:.0f} s, all {rep['total_seconds']:.0f} s (shared 2-core CPU)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--property", default="brightness", help="brightness or saturation")
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--prompts", type=int, default=16, help="training prompts per iteration (4 candidates each)")
    parser.add_argument("--reliability", type=float, default=0.8, help="the scripted reviewers' p")
    parser.add_argument("--eval-seeds", type=int, default=4, help="seeds per evaluation prompt")
    parser.add_argument("--eval-prompts", choices=("heldout", "evalset"), default="heldout",
                        help="heldout: --eval-count prompts of the training prompts' kind; evalset: its 8 prompts")
    parser.add_argument("--eval-count", type=int, default=24, help="held-out evaluation prompts")
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--config", default=str(REPO / "configs" / "tiny-learns.yaml"))
    parser.add_argument("--models", default=str(REPO / ".mora" / "models" / "tiny"))
    parser.add_argument("--out", default=None, help="work folder (default: a new temporary one)")
    parser.add_argument("--plot", default=None, help="where to write the plot (default: OUT/loop-learns.png)")
    parser.add_argument("--seed", type=int, default=0, help="the reviewers' seed")
    parser.add_argument("--set", action="append", default=[], help="config override field=VALUE (every arm)")
    parser.add_argument("--combine", nargs="+", default=None, metavar="JSON",
                        help="no loop: one report from the loop-learns.json of runs made side by side")
    parser.add_argument("--replicates", nargs="+", default=None, metavar="JSON",
                        help="no loop: the run-to-run spread of whole runs (another --seed each): each arm's "
                             "change over runs, and the separation over runs")
    args = parser.parse_args()

    from rich.console import Console

    from mora.cli_env import flow_settings
    from mora.config import ConfigError, load_config
    from mora.evaluation import learning
    from mora.review import server
    from mora.stopping import also_stop, stop_on_sigterm

    console = Console()
    if args.combine:
        return combine(args.combine, args, console)
    if args.replicates:
        return replicates(args.replicates, args, console)
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    try:
        learning.check_models(args.property, args.models, arms)
    except ConfigError as exc:
        sys.exit(f"error: {exc}")
    work = Path(args.out or tempfile.mkdtemp(prefix="mora-loop-learns-")).resolve()
    root = work / "data"
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    conn = review_server(root)
    # killed: Label Studio goes too (it outlives `mora review up` on purpose, not a benchmark)
    also_stop(lambda: server.down(root))
    stop_on_sigterm(lambda: f"stopped: loop_learns received SIGTERM; its work folder {work} is kept")
    try:
        with flow_settings():  # as `mora self-train` runs: a killed benchmark leaves no Prefect server behind
            runs = {arm: run_arm(arm, args, root, conn, console.log) for arm in arms}
    finally:
        server.down(root)
    loop_seconds = time.perf_counter() - started

    # the same prompts and seeds in every iteration of every arm
    plans = {arm: learning.planned_candidates(root, run["overrides"]["shards.dataset"]) for arm, run in runs.items()}
    same = all(plan == plans[arms[0]] for plan in plans.values())

    prompts = (learning.held_out_prompts(args.eval_count) if args.eval_prompts == "heldout"
               else learning.evaluation_prompts())
    items = learning.evaluation_items(prompts, args.eval_seeds)
    seen = {arm: learning.trained_on(root, run["overrides"]["shards.dataset"], prompts) for arm, run in runs.items()}
    base_cfg = load_config(args.config, runs[arms[0]]["overrides"])
    console.log(f"evaluating: {len(prompts)} prompts x {args.eval_seeds} seeds per checkpoint")
    start = learning.checkpoint_after(base_cfg, 0)  # the start checkpoint the loop generated with at first
    values = {0: learning.measure(base_cfg, str(start) if start else None, args.property, items)}
    by_arm: dict[str, np.ndarray] = {}
    for arm, run in runs.items():
        cfg = load_config(args.config, run["overrides"])
        series = [values[0]]
        for k in range(1, args.iterations + 1):
            checkpoint = learning.checkpoint_after(cfg, k)
            series.append(learning.measure(cfg, str(checkpoint) if checkpoint else None, args.property, items))
        by_arm[arm] = np.stack(series)
    rep = report(by_arm, {arm: review_load(run) for arm, run in runs.items()},
                 {arm: run["seconds"] for arm, run in runs.items()}, args.property)
    rep |= {"same_prompts_and_seeds": same, "evaluation_prompts_trained_on": seen,
            "loop_seconds": round(loop_seconds, 1), "total_seconds": round(time.perf_counter() - started, 1),
            "settings": vars(args),
            "values": {arm: v.tolist() for arm, v in by_arm.items()}}
    finish(rep, by_arm, work, args, console)


def finish(rep: dict, by_arm: dict, work: Path, args, console) -> None:
    console.print(table(rep))
    figure = Path(args.plot or work / "loop-learns.png")
    plot(by_arm, args.property, figure, f"tiny models, {args.prompts} prompts x 4 candidates per iteration, "
                                        f"reviewers p={args.reliability} (control: at random)")
    (work / "loop-learns.json").write_text(json.dumps(rep, indent=2, default=str))
    for line in summary_lines(rep):
        print(line)
    print(f"plot: {figure}; numbers: {work / 'loop-learns.json'}")
    print(f"separation={rep['separation']:.1f}")


def combine(paths: list[str], args, console) -> None:
    """One report from runs of single arms made side by side (``--arms more`` and ``--arms less`` ... each
    in its own process: on a shared CPU they finish sooner together than one after another)."""
    from mora.evaluation.learning import planned_candidates

    runs = [json.loads(Path(p).read_text()) for p in paths]
    base = np.array(runs[0]["values"][next(iter(runs[0]["values"]))][0])
    by_arm, loads, seconds, plans = {}, {}, {}, {}
    for run in runs:
        for arm, values in run["values"].items():
            by_arm[arm] = np.array(values)
            loads[arm], seconds[arm] = run["arms"][arm]["review"], run["arms"][arm]["seconds"]
            plans[arm] = planned_candidates(Path(run["settings"]["out"]) / "data", f"learns-{run['property']}-{arm}")
        if not np.array_equal(np.array(next(iter(run["values"].values()))[0]), base):
            raise SystemExit(f"error: {run['settings']['out']}: its base models made other evaluation videos")
    first = runs[0]["settings"]
    for key in ("property", "iterations", "prompts", "reliability", "eval_seeds", "eval_prompts", "eval_count", "set"):
        other = [r["settings"]["out"] for r in runs if r["settings"][key] != first[key]]
        if other:
            raise SystemExit(f"error: {other[0]} ran with another --{key.replace('_', '-')}; combine like runs")
    rep = report(by_arm, loads, seconds, first["property"])
    rep |= {"same_prompts_and_seeds": all(p == next(iter(plans.values())) for p in plans.values()),
            "loop_seconds": max(r["loop_seconds"] for r in runs),
            "total_seconds": max(r["total_seconds"] for r in runs),
            "evaluation_prompts_trained_on": {arm: n for r in runs
                                              for arm, n in r["evaluation_prompts_trained_on"].items()},
            "settings": first, "combined": paths, "values": {arm: v.tolist() for arm, v in by_arm.items()}}
    for key in ("property", "prompts", "reliability"):
        setattr(args, key, first[key])
    work = Path(args.out or tempfile.mkdtemp(prefix="mora-loop-learns-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    finish(rep, by_arm, work, args, console)


def loop_seed(settings: dict) -> str:
    """The loop's seed a run set (``--set seed=N``), or the preset's."""
    return next((s.split("=", 1)[1] for s in settings.get("set", []) if s.startswith("seed=")), "preset")


def replicates(paths: list[str], args, console) -> None:
    """Whole runs as the unit: a run's intervals are over its evaluation videos, and say nothing of how
    another run (other reviewer answers, so other winners) would have gone. Intervals here use Student's t
    over the runs."""
    from rich.table import Table
    from scipy import stats

    runs = [json.loads(Path(p).read_text()) for p in paths]
    if len(runs) < 2:
        raise SystemExit("error: --replicates needs the loop-learns.json of two runs or more")
    def setting(run: dict, key: str):  # the loop's seed (--set seed=N) may differ between replicates
        value = run["settings"].get(key)
        return [s for s in value if not s.startswith("seed=")] if key == "set" else value

    for key in ("property", "iterations", "prompts", "reliability", "eval_seeds", "eval_prompts", "eval_count", "set",
                "arms", "config"):
        other = [p for p, r in zip(paths, runs, strict=True) if setting(r, key) != setting(runs[0], key)]
        if other:
            raise SystemExit(f"error: {other[0]} ran with another --{key.replace('_', '-')}; replicate like runs")
    arms = list(runs[0]["arms"])
    t95 = float(stats.t.ppf(0.975, len(runs) - 1))

    def over_runs(values: list[float]) -> tuple[float, float]:
        v = np.asarray(values, dtype=np.float64)
        return float(v.mean()), t95 * float(v.std(ddof=1)) / np.sqrt(len(v))

    drifts = {arm: [r["arms"][arm]["drift"] for r in runs] for arm in arms}
    gap = [r["arms"]["more"]["drift"] - r["arms"]["less"]["drift"] for r in runs]
    t = Table(title=f"{runs[0]['property']}: change from iteration 0 to the last, per run and over {len(runs)} runs")
    t.add_column("run")
    for arm in arms:
        t.add_column(arm, justify="right")
    t.add_column("more - less", justify="right")
    t.add_column("separation in the run", justify="right")
    t.add_column("control in its it-0 interval", justify="right")
    for path, run, g in zip(paths, runs, gap, strict=True):
        control = run["arms"].get("control", {}).get("within_iteration_0_interval")
        t.add_row(f"seeds {run['settings']['seed']}/{loop_seed(run['settings'])} ({Path(path).parent.name})",
                  *[f"{run['arms'][arm]['drift']:+.4f}" for arm in arms], f"{g:+.4f}", f"{run['separation']:.1f}",
                  {True: "yes", False: "no", None: "-"}[control])
    summary = {arm: over_runs(drifts[arm]) for arm in arms} | {"more - less": over_runs(gap)}
    t.add_row("mean ± 95% (t)", *[f"{m:+.4f} ± {h:.4f}" for m, h in summary.values()], "", "")
    console.print(t)
    mean, half = summary["more - less"]
    separation = mean / (half / t95) if half else float("nan")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, spread) = plt.subplots(1, 2, figsize=(10, 4.2), dpi=120, gridspec_kw={"width_ratios": [3, 2]})
    for i, run in enumerate(runs):
        for arm in arms:
            values = np.asarray(run["values"][arm])
            label = arm if i == 0 else None
            ax.plot(values.mean(axis=1), marker="o", color=COLOURS.get(arm), alpha=0.8, label=label,
                    linestyle=LINES[i % len(LINES)])
            spread.plot(values.std(axis=1), marker="o", color=COLOURS.get(arm), alpha=0.8,
                        linestyle=LINES[i % len(LINES)])
    for axis in (ax, spread):
        axis.set_xlabel("iteration (0: the agents before fine-tuning)")
        axis.set_xticks(range(runs[0]["settings"]["iterations"] + 1))
    ax.set_ylabel(f"{runs[0]['property']} of evaluation videos (mean)")
    spread.set_ylabel("standard deviation over evaluation videos")
    seeds = ", ".join(f"{r['settings']['seed']}/{loop_seed(r['settings'])}" for r in runs)
    fig.suptitle(f"Does the loop learn? {len(runs)} runs (line style), reviewers'/loop's seeds {seeds}", fontsize=9)
    ax.legend()
    fig.tight_layout()
    work = Path(args.out or tempfile.mkdtemp(prefix="mora-loop-learns-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    figure = Path(args.plot or work / "loop-learns-replicates.png")
    fig.savefig(figure)
    plt.close(fig)
    rep = {"runs": paths, "drifts": drifts, "more_minus_less": gap, "t95": t95,
           "over_runs": {k: {"mean": m, "half_width": h} for k, (m, h) in summary.items()},
           "separations": [r["separation"] for r in runs], "separation_over_runs": separation}
    (work / "loop-learns-replicates.json").write_text(json.dumps(rep, indent=2))
    print(f"plot: {figure}; numbers: {work / 'loop-learns-replicates.json'}")
    print(f"separation={separation:.1f}")


if __name__ == "__main__":
    main()
