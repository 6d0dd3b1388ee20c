"""``mora dataset pairs|judges|export|publish|migrate``: what trainers and dataset owners take from the shards."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()

ROOT = typer.Argument(Path("mora-data"), help="shard root")
DATASET = typer.Option("tiny", "--dataset", help="dataset name (shards.dataset)")
ITERATION = typer.Option([], "--iteration", help="only this iteration (repeatable); default: all")


def _fail(message: str) -> None:
    Console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)
    raise typer.Exit(2)


def _writable(check, path: Path, name: str) -> None:
    """``check`` (``mora.folders``) of an output, as one line before any work."""
    from mora.config import ConfigError

    try:
        check(path, name)
    except ConfigError as exc:
        _fail(str(exc))


def _check(root: Path, dataset: str, iterations: list[int]) -> None:
    """One line, before any work, when there is nothing to read."""
    from mora.datasets.shards import dataset_dir, shard_files

    if not dataset_dir(root, dataset).is_dir():
        _fail(f"no dataset '{dataset}' under {root}; pass the shard root (shards.root) and --dataset")
    if not shard_files(root, dataset, iterations or None):
        which = f" for --iteration {', '.join(map(str, iterations))}" if iterations else ""
        _fail(f"dataset '{dataset}' under {root} has no shards{which}; run a round first")


def pairs_cmd(root: Path = ROOT, dataset: str = DATASET, iteration: list[int] = ITERATION,
              out: Path = typer.Option(..., "--out", help="FILE.parquet, or FILE.json with --format videodpo"),
              format_: str = typer.Option("parquet", "--format", help="parquet (videos as bytes) | videodpo "
                                                                          "(JSON + videos/ beside it)"),
              order: str = typer.Option("winner", "--order", help="winner: each set's winner against each other "
                                                                  "candidate | consensus: also the pairs of the others "
                                                                  "that all its judges order alike")) -> None:
    """Preference pairs (chosen, rejected) from decided sets, for DPO-style training."""
    from mora.datasets.pairs import FORMATS, ORDERS, write_pairs, write_videodpo

    if format_ not in FORMATS:
        _fail(f"--format '{format_}' is unknown; use one of {', '.join(FORMATS)}")
    if order not in ORDERS:
        _fail(f"--order '{order}' is unknown; use one of {', '.join(ORDERS)}")
    _check(root, dataset, iteration)
    from mora.folders import writable_file, writable_folder

    _writable(writable_file, out, "--out")
    if format_ == "videodpo":
        _writable(writable_folder, out.parent / "videos", "--out's videos folder")
    with console.status("writing preference pairs"):
        writer = write_pairs if format_ == "parquet" else write_videodpo
        count = writer(root, dataset, out, iteration or None, order)
    console.print(f"{count} pairs written to {out}" + (f" (videos in {out.parent / 'videos'})"
                                                        if format_ == "videodpo" else ""))


def judges_cmd(root: Path = ROOT, dataset: str = DATASET) -> None:
    """Judges checked against people: per judge, criterion and iteration, with a 95% interval."""
    from mora.datasets.agreement import COLUMNS
    from mora.datasets.facts import dataset_facts

    _check(root, dataset, [])
    rows = dataset_facts(root, dataset).agreement
    if not rows:
        console.print(f"no set of '{dataset}' has been decided by people yet: nothing to check the judges against")
        return
    table = Table(title=f"judges checked against people: {dataset}")
    for col in COLUMNS:
        table.add_column(col, justify="left" if col in ("judge", "by", "value") else "right")
    for r in rows:
        table.add_row(*["–" if r[c] is None else f"{r[c]:.2f}" if isinstance(r[c], float) else str(r[c])
                        for c in COLUMNS])
    console.print(table)


def export_cmd(root: Path = ROOT, dataset: str = DATASET, iteration: list[int] = ITERATION,
               out: Path = typer.Option(..., "--out", help="folder for DATASET-NNNNNN.tar"),
               choose: str = typer.Option("selected", help="selected (winners) | accepted | all"),
               max_samples: int = typer.Option(1000, help="samples per tar at most"),
               max_mb: int = typer.Option(1024, help="video megabytes per tar at most")) -> None:
    """WebDataset-style tar shards: KEY.mp4 + KEY.json per sample, written streaming."""
    from mora.datasets.export import CHOICES, export_webdataset

    if choose not in CHOICES:
        _fail(f"--choose '{choose}' is unknown; use one of {', '.join(CHOICES)}")
    if max_samples < 1 or max_mb < 1:
        _fail("--max-samples and --max-mb must be at least 1")
    _check(root, dataset, iteration)
    from mora.folders import writable_folder

    _writable(writable_folder, out, "--out")
    with console.status("exporting"):
        paths = export_webdataset(root, dataset, out, iteration or None, choose, max_samples, max_mb << 20)
    console.print(f"{len(paths)} tar shards in {out}" if paths else f"no {choose} rows to export")


def publish_cmd(root: Path = ROOT, dataset: str = DATASET) -> None:
    """Rewrite the dataset card and the iteration report now (rounds and collects do it themselves)."""
    from mora.reports.publish import publish

    _check(root, dataset, [])
    from mora.datasets.shards import dataset_dir
    from mora.folders import writable_folder
    from mora.reports.html import reports_dir

    _writable(writable_folder, dataset_dir(root, dataset), "--root")  # the card: ROOT/DATASET/README.md
    _writable(writable_folder, reports_dir(root, dataset), "--root")  # the report: ROOT/_reports/DATASET/
    with console.status("writing the dataset card and the iteration report"):
        published = publish(root, dataset)
    console.print(f"dataset card: {published.card}\niteration report: {published.report}")


def migrate_cmd(root: Path = ROOT, dataset: str = DATASET) -> None:
    """Rewrite shards of an earlier schema version at the current one (new columns null), for outside readers."""
    from mora.datasets.schema import SCHEMA_VERSION
    from mora.datasets.shards import migrate_shards

    _check(root, dataset, [])
    with console.status(f"rewriting older shards at schema version {SCHEMA_VERSION}"):
        rewritten = migrate_shards(root, dataset)
    console.print(f"{len(rewritten)} shards rewritten at schema version {SCHEMA_VERSION}" if rewritten
                  else f"every shard of '{dataset}' is at schema version {SCHEMA_VERSION} already")
