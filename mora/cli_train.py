"""``mora train`` and ``mora self-train``: fine-tune the agents on the shards, once or in the loop."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mora.cli_env import flow_settings, prefect_defaults

console = Console()

CONFIG = typer.Option(Path("configs/tiny.yaml"), "--config", "-c", help="YAML preset")
SET = typer.Option([], "--set", help="override a field: training.max_steps=24 (repeatable)")
# Each ablation of the paper, as the overrides that switch it on.
ABLATIONS = {
    "no-modulation": {"training.modulation.enabled": "false"},
    "random-modulation": {"training.modulation.init": "random"},
    "no-review": {"self_train.review": "off"},
}


def _fail(message: str) -> None:
    Console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)
    raise typer.Exit(2)


def _errors() -> tuple[type[Exception], ...]:
    from mora.review.server import ReviewServerError
    from mora.training.launch import LaunchError, reported_errors

    return *reported_errors().values(), ReviewServerError, LaunchError


def train_cmd(config: Path = CONFIG, set_: list[str] = SET,
              iteration: int | None = typer.Option(None, help="the iteration whose shards to train on"),
              root: Path | None = typer.Option(None, help="shard root (overrides shards.root)"),
              processes: int | None = typer.Option(
                  None, help="data-parallel processes through accelerate (training.processes)")) -> None:
    """Fine-tune the agents on one iteration's curated videos (continuing generation.checkpoint if set)."""
    from mora.config import command_overrides, load_config
    from mora.training.launch import fine_tune

    try:
        overrides = command_overrides(set_, iteration, root)
        if processes is not None:
            overrides["training.processes"] = str(processes)
        cfg = load_config(config, overrides)
        with Progress(TextColumn("[bold]fine-tuning"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(), console=console) as progress:
            bar = progress.add_task("steps", total=cfg.training.max_steps, loss="-")

            def on_step(record: dict, total: int) -> None:
                progress.update(bar, completed=record["step"], loss=f"{record['loss']:.4f}")

            result = fine_tune(cfg, on_step=on_step)
    except _errors() as exc:
        _fail(str(exc))
    if result.skipped:
        _fail(result.skipped)
    console.print(f"{result.examples} examples, {len(result.steps)} steps; checkpoint: {result.checkpoint}",
                  soft_wrap=True)
    console.print(f"generate with it: --set generation.checkpoint={result.checkpoint}", soft_wrap=True)


def self_train_cmd(config: Path = CONFIG, set_: list[str] = SET,
                   iteration: str | None = typer.Option(
                       None, help="first iteration, or next: continue the dataset's loop (the newest iteration "
                                  "whose round or fine-tuning is unfinished, else the one after)"),
                   iterations: int | None = typer.Option(None, help="iterations to run (self_train.iterations)"),
                   review: str | None = typer.Option(None, help="wait | skip | off (self_train.review)"),
                   ablation: str | None = typer.Option(
                       None, help="no-modulation | random-modulation | no-review; shards go to DATASET-ABLATION"),
                   review_url: str | None = typer.Option(None, "--review-url", help="an existing Label Studio"),
                   ) -> None:
    """Rounds and fine-tuning in turn: each round generates with the checkpoint the last one produced."""
    from mora.config import load_config, parse_overrides

    try:
        overrides = parse_overrides(set_)
        if iteration is not None:
            overrides["iteration"] = iteration
        if iterations is not None:
            overrides["self_train.iterations"] = str(iterations)
        if review is not None:
            overrides["self_train.review"] = review
        if ablation is not None:
            if ablation not in ABLATIONS:
                _fail(f"--ablation '{ablation}' is unknown; use one of {', '.join(ABLATIONS)}")
            dataset = load_config(config, overrides).shards.dataset
            overrides = ABLATIONS[ablation] | {"shards.dataset": f"{dataset}-{ablation}"} | overrides
        load_config(config, overrides, resolve=False)  # one-line errors before Prefect starts
    except _errors() as exc:
        _fail(str(exc))
    prefect_defaults()
    from mora.flows.self_train import self_train

    try:
        with flow_settings():
            out = self_train(str(config), overrides, review_url)
    except _errors() as exc:
        _fail(str(exc))
    table = Table(title="self-training")
    columns = {"iteration": "it", "sets": "sets", "judge_agreement": "agree", "acceptance": "accept",
               "review_load": "review", "selected": "selected", "loss_mean": "loss", "factor_text_to_image": "f t2i",
               "factor_image_to_video": "f i2v"}
    keys = list(columns)
    for label in columns.values():
        table.add_column(label, justify="right")
    for record in out["iterations"]:
        table.add_row(*(str(record.get(key, "")) for key in keys))
    console.print(table)
    console.print(f"figure: {out['figure']}\nlatest checkpoint: {out['checkpoint']}", soft_wrap=True)
