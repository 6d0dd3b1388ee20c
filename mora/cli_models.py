"""``mora models make-random``: a preset's models at their real size with random weights."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console(width=150)
errors = Console(stderr=True)
GB = 1e9


def _fail(message: str) -> None:
    errors.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)
    raise typer.Exit(2)


def memory_bytes() -> int:
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemTotal"))


def make_random_cmd(
    preset: Path = typer.Argument(..., help="YAML preset whose models to build (configs/sd3-svd-7b.yaml)"),
    directory: Path = typer.Argument(..., help="folder that receives one sub-folder per model"),
    only: list[str] = typer.Option([], "--only", help="build only this model (folder name; repeatable)"),
    dtype: str | None = typer.Option(None, help="bfloat16, float16 or float32; default the preset's runtime.dtype"),
    max_gb: float = typer.Option(35.0, "--max-gb", help="disk budget: model folders under DIRECTORY stay below it"),
    layers: int | None = typer.Option(None, help="a cut copy: video/image transformers keep their first N blocks"),
    seed: int = typer.Option(0, help="weight seed"),
    dry_run: bool = typer.Option(False, "--list", help="list the preset's models and sizes, build nothing"),
) -> None:
    """Build a preset's models at their real size with random weights (published configs, real vocabularies,
    sharded like the published checkpoints), streaming one tensor at a time; print the --set overrides."""
    from mora.config import ConfigError, load_config
    from mora.models.real.build import (
        DTYPES,
        build_model,
        checkpoint_bytes,
        folder_bytes,
        overrides,
        preset_models,
        unique_models,
    )

    try:
        cfg = load_config(preset)
        uses = preset_models(cfg)
    except ConfigError as exc:
        _fail(str(exc))
    dtype = dtype or cfg.runtime.dtype
    if dtype not in DTYPES:
        _fail(f"--dtype: '{dtype}' is not one of {', '.join(DTYPES)}")
    models = [m for m in unique_models(uses) if not only or m.name in only]
    unknown = set(only) - {m.name for m in unique_models(uses)}
    if unknown:
        _fail(f"--only: {', '.join(sorted(unknown))} not among this preset's models "
              f"({', '.join(m.name for m in unique_models(uses))})")
    directory.mkdir(parents=True, exist_ok=True)
    ram = memory_bytes()
    table = Table(title=f"{preset.name}: real-size models in {dtype}")
    for col in ("model", "hub id", "GB", "result"):
        table.add_column(col, justify="right" if col == "GB" else "left")
    planned = 0  # --list: what the models above would have added
    for model in models:
        need = checkpoint_bytes(model, DTYPES[dtype], layers)
        used = folder_bytes(directory) + planned
        free = shutil.disk_usage(directory).free - planned
        if (directory / model.name).exists():
            result = "present"
        elif dry_run and used + need <= max_gb * GB and need < free:
            result, planned = "would be built", planned + need
        elif dry_run:
            result = (f"over the disk budget ({need / GB:.0f} GB > --max-gb {max_gb:g}): build a cut copy (--layers 2)"
                      if need > max_gb * GB else
                      f"over the disk budget after the ones above ({(used + need) / GB:.0f} GB > --max-gb {max_gb:g}): "
                      "build it alone (--only) once they are removed")
        elif used + need > max_gb * GB or need > free:
            result = (f"not built: {need / GB:.1f} GB would take {directory} to {(used + need) / GB:.1f} GB, over "
                      f"--max-gb {max_gb:g} (or the {free / GB:.0f} GB free); build it alone, or with --layers")
        else:
            with console.status(f"building {model.name} ({need / GB:.1f} GB)"):
                build_model(model, directory, dtype, seed, layers)
            result = "built" + (f" (first {layers} blocks)" if layers else "")
        if need > ram and not result.startswith("not"):
            result += f"; {need / GB:.0f} GB of weights cannot load in this machine's {ram / 2**30:.0f} GiB"
        table.add_row(model.name, model.hub_id, f"{need / GB:.1f}", result)
    console.print(table)
    pairs = overrides([u for u in uses if u.model in models], directory)
    console.print("point the preset at them with:", soft_wrap=True)
    console.print(" ".join(f"--set {k}={v}" for k, v in pairs.items()), soft_wrap=True, highlight=False,
                  markup=False)
