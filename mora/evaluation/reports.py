"""The paper's tables and figures from the stored runs: a table per task (Tables 1-2, one row per
system: outside systems, the base models, each checkpoint), the ablation table (Table 5) and metrics
per iteration (Figures 3-4); each as CSV and PNG, written atomically.

Every table says which implementation measured each column (``table-TASK.implementations.csv`` and
the PNG's notes); a column whose rows were measured by different implementations is marked and never
gets a best in bold.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from mora.atomic import write_atomic
from mora.config import EVAL_TASKS
from mora.evaluation.metrics import VBENCH_QUALITY, task_metrics
from mora.procedures.inputs import InputError

ABLATION_ROWS = {None: "Mora (full)", "no-review": "w/o human review", "no-modulation": "w/o self-modulation",
                 "random-modulation": "random modulation init", "untrained": "untrained (base models)"}
CURVE_METRICS = ("video_quality", *VBENCH_QUALITY)
ABOUT = ("system", "iteration", "prompts")  # the columns that are not metrics
NOT_RECORDED = "not recorded (run stored before implementations were)"
MIXED = "†"
BOLD_RULE = ("bold: the highest value of a column, every value equal to it at 4 places included; video length and "
             f"columns marked {MIXED} are not bolded")


def kind(run: dict) -> str:
    return run.get("kind") or ("checkpoint" if run.get("checkpoint") else "base")


def load_runs(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((Path(folder) / "runs").glob("*.json"))]


def _order(run: dict) -> tuple:
    """Outside systems first (the paper lists its baselines above Mora), then ours by iteration."""
    return (kind(run) != "outside", run.get("ablation") or "", run.get("iteration") or 0, run["label"])


def _prompts(run: dict) -> str:
    return run.get("prompts") or (f"set {run['set']}" if run.get("set") else "")


def _value(run: dict, task: str, metric: str):
    return run["summary"][task].get(metric)


def task_table(runs: list[dict], task: str, ordered: bool = True) -> pd.DataFrame:
    """One row per system that has ``task``, one column per metric (video quality first), then how many
    videos each row measured."""
    chosen = [r for r in (sorted(runs, key=_order) if ordered else runs) if task in r["summary"]]
    rows = [{"system": r["label"], "iteration": r.get("iteration"), "prompts": _prompts(r),
             **{m: _value(r, task, m) for m in task_metrics(task)}, "videos": r["summary"][task].get("items")}
            for r in chosen]
    return pd.DataFrame(rows, columns=[*ABOUT, *task_metrics(task), "videos"])


def implementations(runs: list[dict], task: str) -> pd.DataFrame:
    """Per column of a task's table: the implementation that measured it, or, where rows differ, each
    implementation with the systems it measured (then ``comparable`` is false). Video quality compares
    where its six dimensions do."""
    chosen = [r for r in runs if task in r["summary"]]
    rows = []
    for m in task_metrics(task)[1:]:
        groups: dict[str, list[str]] = {}
        for r in chosen:
            groups.setdefault(r.get("implementations", {}).get(m, NOT_RECORDED), []).append(r["label"])
        rows.append({"metric": m, "comparable": len(groups) <= 1,
                     "implementation": next(iter(groups), "") if len(groups) <= 1 else
                     "; ".join(f"{impl} ({', '.join(labels)})" for impl, labels in groups.items())})
    apart = [r["metric"] for r in rows if not r["comparable"] and r["metric"] in VBENCH_QUALITY]
    rows.insert(0, {"metric": "video_quality", "comparable": not apart,
                    "implementation": "mean of the six dimensions" + (f"; {', '.join(apart)} measured differently"
                                                                      if apart else "")})
    return pd.DataFrame(rows, columns=["metric", "comparable", "implementation"])


def notes(runs: list[dict], task: str, impl: pd.DataFrame) -> list[str]:
    """The lines under a table's picture: how each column was measured, what is missing, what differs."""
    lines = [f"{r.metric}{'' if r.comparable else f' {MIXED} not comparable'}: {r.implementation}"
             for r in impl.itertuples(index=False)]
    gone: dict[tuple[str, str], list[str]] = {}
    for r in runs:
        for m, why in (r["summary"].get(task, {}).get("missing") or {}).items():
            if m != "video_quality":
                gone.setdefault((m, "; ".join(why["reasons"])), []).append(f"{r['label']} {why['items']}")
    lines += [f"{m} missing ({reason}): {', '.join(who)} video(s)" for (m, reason), who in gone.items()]
    if len({_prompts(r) for r in runs if task in r["summary"]}) > 1:
        lines.append("rows measured on different prompts (see the prompts column)")
    return [*lines, BOLD_RULE]


def ablation_table(runs: list[dict], task: str = "text-to-video") -> pd.DataFrame:
    """Table 5: the full system's and each ablation's latest evaluated checkpoint, and the untrained base
    models, on ``task``'s metrics; empty until an ablation has been evaluated."""
    latest: dict = {}
    for r in runs:
        if kind(r) == "outside" or task not in r["summary"]:
            continue
        key = "untrained" if kind(r) == "base" and not r.get("ablation") else r.get("ablation")
        if key not in latest or (r.get("iteration") or 0) >= (latest[key].get("iteration") or 0):
            latest[key] = r
    columns = ["system", "label", "iteration", *task_metrics(task)]
    if set(latest) <= {None, "untrained"}:
        return pd.DataFrame(columns=columns)
    rows = [{"system": ABLATION_ROWS.get(key, key), "label": r["label"], "iteration": r.get("iteration"),
             **{m: _value(r, task, m) for m in task_metrics(task)}}
            for key, r in sorted(latest.items(), key=lambda kv: list(ABLATION_ROWS).index(kv[0])
                                 if kv[0] in ABLATION_ROWS else len(ABLATION_ROWS) - 1.5)]
    return pd.DataFrame(rows, columns=columns)


def curves(runs: list[dict]) -> pd.DataFrame:
    """Long form: iteration, task, metric, value, for the runs of the main system (no ablation, no
    outside system)."""
    rows = [{"iteration": r["iteration"], "task": task, "metric": m, "value": summary.get(m)}
            for r in runs if r.get("ablation") is None and kind(r) != "outside"
            for task, summary in r["summary"].items() for m in task_metrics(task) if summary.get(m) is not None]
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


def best_rows(values: pd.Series) -> list[int]:
    """Positions of the column's best: every value equal to the highest at the 4 places shown."""
    shown = pd.to_numeric(values, errors="coerce").round(4)
    if shown.notna().sum() < 2:
        return []
    return [i for i, v in enumerate(shown) if v == shown.max()]


def bold_cells(df: pd.DataFrame, mixed: set[str]) -> set[tuple[int, int]]:
    """(row, column) positions shown in bold: each comparable metric column's best, ties included."""
    return {(i, j) for j, col in enumerate(df.columns)
            if col not in (*ABOUT, "label", "videos", "video_length") and col not in mixed
            for i in best_rows(df[col])}


def _cell(column: str, v) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return "-"
    if column in ("iteration", "videos"):
        return str(int(v))
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def table_png(df: pd.DataFrame, path: Path, title: str, lines: list[str] = (), mixed: set[str] = frozenset()) -> Path:
    """The table as a picture, numbers to four places, the best of each comparable column in bold (ties
    all bold), and the notes below it."""
    import textwrap

    plt = _plt()
    cells = [[_cell(c, v) for c, v in zip(df.columns, row, strict=True)] for row in df.itertuples(index=False)]
    cells = cells or [["-"] * len(df.columns)]
    headers = [c.replace("_", "\n") + (f" {MIXED}" if c in mixed else "") for c in df.columns]
    widths = [max(len(h) for h in [*headers[j].split("\n"), *(r[j] for r in cells)]) for j in range(len(headers))]
    wrapped = [w for line in lines for w in textwrap.wrap(line, 150, subsequent_indent="    ")]
    table_h = 0.32 * (len(cells) + 3)
    fig = plt.figure(figsize=(max(6.0, 0.11 * sum(widths) + 0.2 * len(widths)), table_h + 0.5 + 0.19 * len(wrapped)))
    top = fig.add_axes((0, 1 - table_h / fig.get_figheight(), 1, table_h / fig.get_figheight()))
    top.axis("off")
    table = top.table(cellText=cells, colLabels=headers, loc="upper center", cellLoc="center",
                      colWidths=[w / sum(widths) for w in widths])
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    for (row, _), cell in table.get_celld().items():
        cell.set_height(0.9 / (len(cells) + 3) * (2.6 if row == 0 else 1))
    for i, j in bold_cells(df, mixed):
        table[(i + 1, j)].get_text().set_fontweight("bold")
    fig.suptitle(title, y=1 + 0.35 / fig.get_figheight(), fontsize=10)
    for k, line in enumerate(wrapped):
        fig.text(0.005, (0.45 + 0.19 * (len(wrapped) - 1 - k)) / fig.get_figheight(), line, fontsize=6.5,
                 ha="left", va="bottom", family="monospace")
    return _save(fig, path)


def curves_png(df: pd.DataFrame, path: Path, title: str) -> Path:
    """Figures 3-4: one panel per task, video quality, its six dimensions and the task's own metrics over
    iterations."""
    plt = _plt()
    tasks = [t for t in EVAL_TASKS if t in set(df["task"])] or ["text-to-video"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 4.6), squeeze=False, constrained_layout=True)
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
            ax.legend(fontsize=6, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.16))  # below: never over a line
    fig.suptitle(title)
    return _save(fig, path)


def _csv(df: pd.DataFrame, path: Path) -> Path:
    return write_atomic(path, lambda tmp: df.to_csv(tmp, index=False))


def write_task_tables(runs: list[dict], folder: Path, title: str, ordered: bool = True,
                      min_rows: int = 1) -> dict[str, list[str]]:
    """``table-TASK.{csv,png}`` and ``table-TASK.implementations.csv`` for every task at least ``min_rows``
    of these runs have."""
    out: dict[str, list[str]] = {"tables": [], "figures": []}
    for task in EVAL_TASKS:
        df = task_table(runs, task, ordered)
        if len(df) < min_rows:
            continue
        impl = implementations(runs, task)
        mixed = set(impl.loc[~impl["comparable"], "metric"])
        out["tables"] += [str(_csv(df, folder / f"table-{task}.csv")),
                          str(_csv(impl, folder / f"table-{task}.implementations.csv"))]
        out["figures"].append(str(table_png(df, folder / f"table-{task}.png", f"{title}: {task}",
                                            notes([r for r in runs if task in r["summary"]], task, impl), mixed)))
    return out


def write_reports(folder: Path, title: str) -> dict[str, list[str]]:
    """Every table and figure the stored runs allow; returns the files by kind."""
    folder, runs = Path(folder), load_runs(folder)
    out = write_task_tables(runs, folder, title)
    ablations = ablation_table(runs)
    if len(ablations):
        impl = implementations([r for r in runs if r["label"] in set(ablations["label"])], "text-to-video")
        mixed = set(impl.loc[~impl["comparable"], "metric"])
        out["tables"].append(str(_csv(ablations, folder / "ablations.csv")))
        lines = notes([r for r in runs if r["label"] in set(ablations["label"])], "text-to-video", impl)
        out["figures"].append(str(table_png(ablations, folder / "ablations.png", f"{title}: ablations (text-to-video)",
                                            lines, mixed)))
    per_iteration = curves(runs)
    if per_iteration["iteration"].nunique() > 1:
        out["tables"].append(str(_csv(per_iteration, folder / "curves.csv")))
        out["figures"].append(str(curves_png(per_iteration, folder / "curves.png", f"{title}: per iteration")))
    return out


def compare(folder: Path, labels: list[str], out: Path | None = None, title: str = "") -> dict[str, list[str]]:
    """One table per task that two or more of the named systems have, side by side in the order given
    (checkpoints, base runs and outside systems alike), under ``out`` (default ``folder/compare``)."""
    runs = {r["label"]: r for r in load_runs(folder)}
    unknown = [label for label in labels if label not in runs]
    if unknown:
        raise InputError(f"--compare: no stored run '{unknown[0]}' under {Path(folder) / 'runs'}; stored: "
                         f"{', '.join(sorted(runs)) or 'none (run mora eval first)'}")
    if len(labels) < 2:
        raise InputError("--compare needs at least two systems: --compare LABEL --compare LABEL ...")
    chosen = [runs[label] for label in dict.fromkeys(labels)]
    out = Path(out) if out else Path(folder) / "compare"
    files = write_task_tables(chosen, out, title or " vs ".join(labels), ordered=False, min_rows=2)
    if not files["tables"]:
        raise InputError(f"--compare: {', '.join(labels)} share no task; evaluate them on the same task first")
    return files
