"""``mora eval``: the paper's metrics on the fixed evaluation set, as its tables and figures."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from mora.cli_env import flow_settings, prefect_defaults

console = Console()


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(2)


def _print(run: dict) -> None:
    """One table per system: a row per metric, a column per task (blank where a task has no such metric)."""
    tasks = list(run["summary"])
    metrics = list(dict.fromkeys(m for t in tasks for m in run["summary"][t] if m != "items"))
    table = Table(title=f"{run['label']} ({run['summary'][tasks[0]]['items']} videos per task)")
    table.add_column("metric")
    for task in tasks:
        table.add_column(task, justify="right")
    for m in metrics:
        table.add_row(m.replace("_", " "), *(f"{run['summary'][t][m]:.4f}" if m in run["summary"][t] else ""
                                             for t in tasks))
    console.print(table)


def eval_cmd(
    config: Path = typer.Option(Path("configs/tiny.yaml"), "--config", "-c", help="YAML preset"),
    set_: list[str] = typer.Option([], "--set", help="override a field: eval.items_per_task=2 (repeatable)"),
    checkpoint: list[Path] = typer.Option([], "--checkpoint", help="a checkpoint to evaluate (repeatable); "
                                          "default generation.checkpoint, else the base models"),
    base: bool = typer.Option(False, "--base", help="evaluate the base models too (iteration 0)"),
    ablations: bool = typer.Option(False, "--ablations", help="the latest checkpoint of the full system and of each "
                                   "mora self-train --ablation dataset (Table 5)"),
    root: Path | None = typer.Option(None, help="shard root (overrides shards.root)"),
) -> None:
    """Evaluate checkpoints on the fixed evaluation set: a table per task, ablations, per-iteration curves."""
    from mora.agents.loading import ModelLoadError
    from mora.config import ConfigError, command_overrides, load_config
    from mora.procedures.inputs import InputError
    from mora.training.checkpoint import CheckpointError, read_lineage

    errors = (ConfigError, ModelLoadError, CheckpointError, InputError)
    try:
        overrides = command_overrides(set_, root=root)
        cfg = load_config(config, overrides)
        for path in checkpoint:
            read_lineage(path, "--checkpoint")
        from mora.evaluation.evalset import load_set

        load_set(cfg.eval.set)
    except errors as exc:
        _fail(str(exc))
    prefect_defaults()
    from mora.flows.evaluate import evaluate

    try:
        with flow_settings(), console.status("evaluating (models load once; each task's videos are made, then "
                                             "measured)"):
            out = evaluate(str(config), overrides, [str(p) for p in checkpoint], base, ablations)
    except errors as exc:
        _fail(str(exc))
    for run in out["runs"]:
        _print(run)
    for kind in ("tables", "figures"):
        for path in out["files"][kind]:
            console.print(f"{kind[:-1]}: {path}", soft_wrap=True)
