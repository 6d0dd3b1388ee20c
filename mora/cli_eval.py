"""``mora eval``: the paper's metrics on the fixed evaluation set (or on a folder of any system's
videos), as its tables and figures; ``--compare`` puts stored systems side by side."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mora.cli_env import flow_settings, prefect_defaults

console = Console()


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)
    raise typer.Exit(2)


def _number(v) -> str:
    return "missing" if v is None else f"{v:.4f}"


def _print(run: dict) -> None:
    """One table per system: a row per metric, a column per task (blank where a task has no such metric)."""
    from mora.evaluation.metrics import task_metrics

    tasks = list(run["summary"])
    metrics = list(dict.fromkeys(m for t in tasks for m in task_metrics(t)))
    table = Table(title=f"{run['label']} ({run['summary'][tasks[0]]['items']} videos per task)")
    table.add_column("metric")
    for task in tasks:
        table.add_column(task, justify="right")
    for m in metrics:
        table.add_row(m.replace("_", " "), *(_number(run["summary"][t][m]) if m in run["summary"][t] else ""
                                             for t in tasks))
    console.print(table)
    for metric, why in run.get("fallbacks", {}).items():
        console.print(f"  {metric}: stand-in ({why})", soft_wrap=True, highlight=False)
    for task in tasks:
        for metric, gone in (run["summary"][task].get("missing") or {}).items():
            console.print(f"  {task} {metric}: missing for {gone['items']} video(s) ({'; '.join(gone['reasons'])})",
                          soft_wrap=True, highlight=False)


def _files(files: dict[str, list[str]]) -> None:
    for kind in ("tables", "figures"):
        for path in files[kind]:
            console.print(f"{kind[:-1]}: {path}", soft_wrap=True)


def eval_cmd(
    config: Path = typer.Option(Path("configs/tiny.yaml"), "--config", "-c", help="YAML preset"),
    set_: list[str] = typer.Option([], "--set", help="override a field: eval.items_per_task=2 (repeatable)"),
    checkpoint: list[Path] = typer.Option([], "--checkpoint", help="a checkpoint to evaluate (repeatable); "
                                          "default generation.checkpoint, else the base models"),
    base: bool = typer.Option(False, "--base", help="evaluate the base models too (iteration 0, label base-PRESET)"),
    ablations: bool = typer.Option(False, "--ablations", help="the untrained base models and the latest checkpoint "
                                   "of the full system and of each mora self-train --ablation dataset (Table 5)"),
    videos: Path | None = typer.Option(None, "--videos", help="a folder of videos made by any system: scored as the "
                                       "row --label of the --task table"),
    label: str | None = typer.Option(None, "--label", help="with --videos: the system's name in the tables"),
    task: str | None = typer.Option(None, "--task", help="with --videos: which task's table (text-to-video, ...)"),
    prompts: Path | None = typer.Option(None, "--prompts", help="with --videos: JSON {\"video.mp4\": \"its prompt\"}"
                                        " (else each video's NAME.json sidecar or NAME.txt)"),
    compare: list[str] = typer.Option([], "--compare", help="a stored system's label (repeatable, or comma-separated):"
                                      " one table per task with these systems side by side, in this order"),
    out: Path | None = typer.Option(None, "--out", help="with --compare: where the tables go (default "
                                    "SHARDS_ROOT/_reports/DATASET/eval/compare)"),
    root: Path | None = typer.Option(None, help="shard root (overrides shards.root)"),
) -> None:
    """Evaluate checkpoints (or a folder of any system's videos) on the paper's metrics: a table per task,
    ablations, per-iteration curves; --compare puts stored systems side by side."""
    from mora.agents.loading import ModelLoadError
    from mora.config import EVAL_TASKS, ConfigError, command_overrides, load_config
    from mora.procedures.inputs import InputError
    from mora.training.checkpoint import CheckpointError, read_lineage

    errors = (ConfigError, ModelLoadError, CheckpointError, InputError)
    labels = [name.strip() for item in compare for name in item.split(",") if name.strip()]
    try:
        overrides = command_overrides(set_, root=root)
        cfg = load_config(config, overrides)
        for path in checkpoint:
            read_lineage(path, "--checkpoint")
        if videos is not None and (label is None or task not in EVAL_TASKS):
            raise InputError(f"--videos needs --label NAME and --task, one of {', '.join(EVAL_TASKS)}")
        if videos is None and (label or task or prompts):
            raise InputError("--label, --task and --prompts go with --videos DIR")
        if labels:
            from mora.evaluation import reports
            from mora.evaluation.runner import reports_dir

            files = reports.compare(reports_dir(cfg), labels, out)
            _files(files)
            return
        from mora.evaluation.evalset import load_set
        from mora.evaluation.implementations import choose

        load_set(cfg.eval.set)
        choose(cfg.eval)  # an implementation named explicitly but absent stops here, in one line
    except errors as exc:
        _fail(str(exc))
    prefect_defaults()
    from mora.flows.evaluate import evaluate, evaluate_outside

    try:
        with flow_settings(), console.status("evaluating (models load once; each task's videos are made, then "
                                             "measured)"):
            if videos is not None:
                result = evaluate_outside(str(videos), label, task, str(config), overrides,
                                          str(prompts) if prompts else None)
            else:
                result = evaluate(str(config), overrides, [str(p) for p in checkpoint], base, ablations)
    except errors as exc:
        _fail(str(exc))
    for run in result["runs"]:
        _print(run)
    _files(result["files"])
