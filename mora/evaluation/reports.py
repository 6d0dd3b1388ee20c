"""The paper's tables and figures from the stored runs: a table per task (Tables 1-2, one row per
system or checkpoint), the ablation table (Table 5) and metrics per iteration (Figures 3-4); each as
CSV and PNG, written atomically."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from mora.atomic import write_atomic
from mora.config import EVAL_TASKS
from mora.evaluation.metrics import VBENCH_QUALITY, task_metrics

ABLATION_ROWS = {None: "Mora (full)", "no-review": "w/o human review", "no-modulation": "w/o self-modulation",
                 "random-modulation": "random modulation init"}
CURVE_METRICS = ("video_quality", *VBENCH_QUALITY)


def load_runs(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((Path(folder) / "runs").glob("*.json"))]


def task_table(runs: list[dict], task: str) -> pd.DataFrame:
    """One row per system (ordered by iteration), one column per metric of the task."""
    rows = [{"system": r["label"], "iteration": r["iteration"], **{m: r["summary"][task].get(m)
                                                                  for m in task_metrics(task)}}
            for r in sorted(runs, key=lambda r: (r["ablation"] or "", r["iteration"], r["label"]))
            if task in r["summary"]]
    return pd.DataFrame(rows, columns=["system", "iteration", *task_metrics(task)])


def ablation_table(runs: list[dict], task: str = "text-to-video") -> pd.DataFrame:
    """Table 5: the full system's and each ablation's latest evaluated checkpoint, on ``task``'s metrics;
    empty until an ablation has been evaluated."""
    latest: dict = {}
    for r in runs:
        key = r["ablation"]
        if task in r["summary"] and (key not in latest or r["iteration"] >= latest[key]["iteration"]):
            latest[key] = r
    if set(latest) <= {None}:
        return pd.DataFrame(columns=["system", "label", "iteration", *task_metrics(task)])
    rows = [{"system": ABLATION_ROWS.get(key, key), "label": r["label"], "iteration": r["iteration"],
             **{m: r["summary"][task].get(m) for m in task_metrics(task)}}
            for key, r in sorted(latest.items(), key=lambda kv: list(ABLATION_ROWS).index(kv[0])
                                 if kv[0] in ABLATION_ROWS else 99)]
    return pd.DataFrame(rows, columns=["system", "label", "iteration", *task_metrics(task)])


def curves(runs: list[dict]) -> pd.DataFrame:
    """Long form: iteration, task, metric, value, for the runs of the main system (no ablation)."""
    rows = [{"iteration": r["iteration"], "task": task, "metric": m, "value": v}
            for r in runs if r["ablation"] is None
            for task, summary in r["summary"].items() for m, v in summary.items() if m != "items"]
    return pd.DataFrame(rows, columns=["iteration", "task", "metric", "value"]).sort_values(["task", "iteration"])


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    plt = _plt()
    try:
        return write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    finally:
        plt.close(fig)


def table_png(df: pd.DataFrame, path: Path, title: str) -> Path:
    """The table as a picture, numbers to four places, the best of each metric column in bold."""
    plt = _plt()
    shown = df.copy()
    numeric = [c for c in shown.columns if c not in ("system", "label", "iteration")]
    cells = [[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row] for row in shown.itertuples(index=False)]
    fig, ax = plt.subplots(figsize=(1.3 * len(shown.columns) + 1, 0.45 * len(shown) + 1.2))
    ax.axis("off")
    table = ax.table(cellText=cells or [["-"] * len(shown.columns)],
                     colLabels=[c.replace("_", "\n") for c in shown.columns], loc="center", cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.scale(1, 1.6)
    for j, col in enumerate(shown.columns):
        if col in numeric and col != "video_length" and len(shown) > 1 and shown[col].notna().any():
            best = shown[col].astype(float).idxmax()
            table[(shown.index.get_loc(best) + 1, j)].get_text().set_fontweight("bold")
    ax.set_title(title)
    return _save(fig, path)


def curves_png(df: pd.DataFrame, path: Path, title: str) -> Path:
    """Figures 3-4: one panel per task, video quality, its six dimensions and the task's own metrics over
    iterations."""
    plt = _plt()
    tasks = [t for t in EVAL_TASKS if t in set(df["task"])] or ["text-to-video"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.6), squeeze=False, constrained_layout=True)
    for ax, task in zip(axes[0], tasks, strict=True):
        part = df[df["task"] == task]
        for metric in task_metrics(task)[:-1]:  # the task's own metrics dashed, length left out
            line = part[part["metric"] == metric].sort_values("iteration")
            if len(line):
                ax.plot(line["iteration"], line["value"], marker="o", label=metric,
                        linewidth=2.5 if metric == "video_quality" else 1,
                        linestyle="-" if metric in CURVE_METRICS else "--")
        ax.set_title(task)
        ax.set_xlabel("iteration")
        if len(part):
            ax.set_xticks(sorted(set(part["iteration"])))
            ax.legend(fontsize=6)
    fig.suptitle(title)
    return _save(fig, path)


def _csv(df: pd.DataFrame, path: Path) -> Path:
    return write_atomic(path, lambda tmp: df.to_csv(tmp, index=False))


def write_reports(folder: Path, title: str) -> dict[str, list[str]]:
    """Every table and figure the stored runs allow; returns the files by kind."""
    folder, runs = Path(folder), load_runs(folder)
    out: dict[str, list[str]] = {"tables": [], "figures": []}
    for task in EVAL_TASKS:
        df = task_table(runs, task)
        if len(df):
            out["tables"].append(str(_csv(df, folder / f"table-{task}.csv")))
            out["figures"].append(str(table_png(df, folder / f"table-{task}.png", f"{title}: {task}")))
    ablations = ablation_table(runs)
    if len(ablations):
        out["tables"].append(str(_csv(ablations, folder / "ablations.csv")))
        out["figures"].append(str(table_png(ablations, folder / "ablations.png", f"{title}: ablations")))
    per_iteration = curves(runs)
    if per_iteration["iteration"].nunique() > 1:
        out["tables"].append(str(_csv(per_iteration, folder / "curves.csv")))
        out["figures"].append(str(curves_png(per_iteration, folder / "curves.png", f"{title}: per iteration")))
    return out
