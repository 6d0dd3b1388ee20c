"""The ``mora`` command line: rounds, tiny models, dataset inspection, review, training."""

from __future__ import annotations

import threading
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mora.cli_dataset import export_cmd, judges_cmd, migrate_cmd, pairs_cmd, publish_cmd
from mora.cli_env import flow_settings, prefect_defaults
from mora.cli_eval import eval_cmd
from mora.cli_make import make_app
from mora.cli_models import make_random_cmd
from mora.cli_train import self_train_cmd, train_cmd

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Mora: synthesize and curate video training data.")
models_app = typer.Typer(no_args_is_help=True, help="Model folders.")
dataset_app = typer.Typer(no_args_is_help=True, help="Shards on disk.")
review_app = typer.Typer(no_args_is_help=True, help="Human review in Label Studio.")
app.add_typer(models_app, name="models")
app.add_typer(dataset_app, name="dataset")
app.add_typer(review_app, name="review")
app.add_typer(make_app, name="make")
app.command("train")(train_cmd)
app.command("self-train")(self_train_cmd)
app.command("eval")(eval_cmd)
models_app.command("make-random")(make_random_cmd)
dataset_app.command("pairs")(pairs_cmd)
dataset_app.command("judges")(judges_cmd)
dataset_app.command("export")(export_cmd)
dataset_app.command("publish")(publish_cmd)
dataset_app.command("migrate")(migrate_cmd)
console = Console()
errors = Console(stderr=True)  # one-line errors go to stderr, results to stdout


def _fail(message: str) -> None:
    errors.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)
    raise typer.Exit(2)


def _watch(state, total: int, stop: threading.Event) -> None:
    with Progress(TextColumn("[bold]candidate sets"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        bar = progress.add_task("sets", total=total)
        while not stop.wait(0.5):
            progress.update(bar, completed=state.done_count())
        progress.update(bar, completed=state.done_count())


@app.command("round")
def round_cmd(
    config: Path = typer.Option(Path("configs/tiny.yaml"), "--config", "-c", help="YAML preset"),
    set_: list[str] = typer.Option([], "--set", help="override a field: prompts.count=8 (repeatable)"),
    iteration: str | None = typer.Option(None, help="iteration number, or next: resume the newest unfinished "
                                         "iteration, else start the one after the newest finished one"),
    root: Path | None = typer.Option(None, help="shard root (overrides shards.root)"),
    release_claims: bool = typer.Option(False, "--release-claims", help="first free the sets claimed by drivers "
                                        "that are not running on this host (a dead driver on another host holds "
                                        "its sets until runtime.lease_s runs out); this run makes them"),
) -> None:
    """Run one dataset round (resumes an unfinished one with the same config)."""
    from mora.agents.loading import ModelLoadError
    from mora.config import ConfigError, command_overrides, load_config
    from mora.folders import writable_folder
    from mora.media import VideoError
    from mora.preflight import check_judge_servers, preflight

    try:
        overrides = command_overrides(set_, iteration, root)
        cfg = load_config(config, overrides)
        preflight(cfg)  # models, hub ids and device, before the flow run starts
        writable_folder(cfg.shards.root, "shards.root")
        check_judge_servers(cfg)  # before prompt planning: a broken server would fail the round after it
    except ConfigError as exc:
        _fail(str(exc))
    overrides["iteration"] = str(cfg.iteration)  # `next`, resolved once: the flow makes this round
    prefect_defaults()
    from mora.flows.round import dataset_round
    from mora.round.state import RoundState
    from mora.stopping import stop_on_sigterm

    state = RoundState(cfg)
    if release_claims:
        for line in state.claims(cfg.runtime.lease_s).release_stale():
            console.print(line, soft_wrap=True, highlight=False)
    stop_on_sigterm(lambda: f"stopped: round {cfg.round_id} received SIGTERM; its {state.done_count()} finished "
                            f"candidate sets are kept in {state.sets_dir}; run the same command to resume")
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(state, cfg.prompts.count, stop), daemon=True)
    watcher.start()
    try:
        with flow_settings():
            summary = dataset_round(str(config), overrides)
    except (ConfigError, ModelLoadError, VideoError) as exc:
        _fail(str(exc))
    finally:
        stop.set()
        watcher.join()
    _print_summary(summary, cfg)


def _print_summary(summary: dict, cfg) -> None:
    table = Table(title=f"round {summary['round_id']}")
    table.add_column("what")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        if key not in ("shards", "contact_sheets"):
            table.add_row(key, str(value))
    console.print(table)
    for path in summary["shards"]:
        console.print(f"shard: {path}")
    for path in summary.get("contact_sheets", []):
        console.print(f"contact sheet: {path}", soft_wrap=True)
    from mora.reports.publish import products

    card, report = products(cfg.shards.root, cfg.shards.dataset)
    console.print(f"dataset card: {card}\niteration report: {report}", soft_wrap=True)
    if summary["pending_reviews"]:
        root, dataset = cfg.shards.root, cfg.shards.dataset
        console.print(f"{summary['pending_reviews']} candidate sets await human review. To review them:")
        for line in next_steps(str(root), dataset):
            console.print(line, soft_wrap=True, highlight=False, markup=False)  # never wrapped inside a command


def mora_command() -> str:
    """How to call mora from here: plain ``mora`` when it is on PATH, else the virtualenv's script."""
    import shutil
    import sys

    if shutil.which("mora"):
        return "mora"
    script = Path(sys.argv[0]) if Path(sys.argv[0]).name == "mora" else Path(sys.executable).parent / "mora"
    try:
        return str(script.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(script.resolve())


def next_steps(root: str, dataset: str) -> list[str]:
    """The commands that take a round's pending sets to reviewers and back, one per line, pasteable."""
    mora = mora_command()
    return ["  make review-env   # once: Label Studio in its own virtualenv",
            f"  {mora} review up --root {root}   # local Label Studio on 127.0.0.1:8090",
            f"  {mora} review push --root {root} --dataset {dataset}",
            f"  {mora} review add-reviewer EMAIL --root {root}   # an account per reviewer",
            "  # reviewers open the printed URL; afterwards:",
            f"  {mora} review collect --root {root} --dataset {dataset}",
            f"  (or all at once: make review ROOT={root} DATASET={dataset})"]


@models_app.command("make-tiny")
def make_tiny_cmd(
    directory: Path = typer.Argument(..., help="folder that receives one sub-folder per model"),
    seed: int = typer.Option(0, help="weight seed"),
    force: bool = typer.Option(False, help="rebuild models that exist already"),
    tastes: str = typer.Option("", help="also build configs/tiny-learns.yaml's models: a colour generator and "
                                        "judges taught these properties, e.g. brightness or brightness,saturation "
                                        "(minutes of teaching on a CPU)"),
    workers: int = typer.Option(0, min=0, help="processes teaching side by side (0: one per CPU core, up to 4)"),
) -> None:
    """Build tiny random-weight models for every family a round uses (offline, from configs)."""
    import os

    from mora.models.tiny import all_builders, make_tiny

    chosen = tuple(t.strip() for t in tastes.split(",") if t.strip())
    try:
        names = list(all_builders(chosen))
    except ValueError as exc:
        _fail(str(exc))
    with console.status("building tiny models"):
        built = make_tiny(directory, seed=seed, force=force, tastes=chosen, workers=workers or os.cpu_count() or 1)
    for name in names:
        mark = "built" if directory / name in built else "present"
        console.print(f"{name:16s} {mark:8s} {directory / name}")


@dataset_app.command("inspect")
def inspect_cmd(root: Path = typer.Argument(Path("mora-data"), help="shard root")) -> None:
    """Counts per dataset, iteration and decision, and sets awaiting review."""
    from mora.datasets.shards import inspect
    from mora.review.pending import pending_counts

    if not root.is_dir():
        _fail(f"shard root '{root}' does not exist; run a round first or pass the folder given as shards.root")
    counts = inspect(root)
    pending = pending_counts(root)
    table = Table(title=f"shards under {root}")
    for col in ("dataset", "iteration", "decision", "sets", "candidates", "selected"):
        table.add_column(col, justify="right" if col not in ("dataset", "decision") else "left")
    for row in counts.itertuples(index=False):
        table.add_row(row.dataset, str(row.iteration), row.decision, str(row.sets), str(row.candidates),
                      str(row.selected))
    console.print(table)
    for dataset, it in sorted({(r.dataset, int(r.iteration)) for r in counts.itertuples()} | set(pending)):
        n = pending.get((dataset, it), 0)
        console.print(f"{dataset} iteration {it}: " + (f"{n} sets pending human review" if n else
                                                        "complete, nothing pending review"))


ROOT_OPT = typer.Option(Path("mora-data"), "--root", help="shard root")
DATASET_OPT = typer.Option("tiny", "--dataset", help="dataset name (shards.dataset)")
URL_OPT = typer.Option(None, "--url", help="an existing Label Studio (token: $MORA_LABEL_STUDIO_TOKEN)")


PORT_OPT = typer.Option(8090, "--port", help="port on 127.0.0.1")


@review_app.command("up")
def review_up(root: Path = ROOT_OPT, port: int = PORT_OPT) -> None:
    """Start a local Label Studio (its own virtualenv) for this shard root."""
    import time

    from mora.config import ConfigError
    from mora.folders import writable_folder
    from mora.review import server
    from mora.review.push import move_legacy_media, remove_unsafe_media

    try:
        writable_folder(root, "--root")  # the server's state and the review media live under ROOT/_state
    except ConfigError as exc:
        _fail(str(exc))
    for legacy in sorted((root / "_state").glob("*/reviews/media")):  # now under the media root, same URLs
        move_legacy_media(root, legacy.parents[1].name)
    for media in sorted(server.media_root(root).glob("*/reviews/media")):  # tidy: links are never served anyway
        for line in remove_unsafe_media(media):
            errors.print(f"[yellow]warning:[/] {escape(line)}", soft_wrap=True, highlight=False)
    log = server.server_dir(root) / "server.log"
    console.print(f"starting Label Studio on 127.0.0.1:{port} (the first start migrates its database, "
                  f"~20-50 s; log: {log})", soft_wrap=True)
    shown = [0.0]

    def waiting(seconds: float) -> None:
        status.update(f"starting Label Studio: {seconds:.0f} s")
        if not console.is_terminal and seconds - shown[0] >= 5:  # a log or CI sees a line every 5 s
            shown[0] = seconds
            console.print(f"  still starting: {seconds:.0f} s")

    started = time.monotonic()
    try:
        with console.status("starting Label Studio") as status:
            conn = server.up(root, port=port, waiting=waiting)
    except server.ReviewServerError as exc:
        _fail(str(exc))
    creds = server.server_dir(root) / "credentials.json"
    console.print(f"Label Studio: {conn.url}  (ready after {time.monotonic() - started:.0f} s; user "
                  f"{server.ADMIN}; password and token in {creds}; add reviewers with "
                  f"`{mora_command()} review add-reviewer EMAIL --root {root}`)", soft_wrap=True)


@review_app.command("down")
def review_down(root: Path = ROOT_OPT, port: int | None = typer.Option(None, "--port",
                                                                        help="the port given to `up`")) -> None:
    """Stop the local Label Studio of this shard root."""
    from mora.review import server

    try:
        stopped = server.down(root, port=port)
    except server.ReviewServerError as exc:
        _fail(str(exc))
    console.print("stopped" if stopped else "no local Label Studio was running")


@review_app.command("add-reviewer")
def review_add_reviewer(email: str = typer.Argument(..., help="the reviewer's email (their login)"),
                        root: Path = ROOT_OPT, url: str | None = URL_OPT) -> None:
    """Give a person their own Label Studio account, so their reviews carry their name."""
    from mora.review import server
    from mora.review.reviewers import add_reviewer

    try:
        person = add_reviewer(server.connect(root, url=url), email)
    except server.ReviewServerError as exc:
        _fail(str(exc))
    console.print(f"{person.email} can review now. Send them, privately:\n"
                  f"  open {person.login_url}\n  email:    {person.email}\n  password: {person.password}\n"
                  "(shown once; they can change it under Account & Settings)", soft_wrap=True, highlight=False)


@review_app.command("push")
def review_push(root: Path = ROOT_OPT, dataset: str = DATASET_OPT, url: str | None = URL_OPT,
                preannotate: bool = typer.Option(False, help="new projects pre-select the judges' pick "
                                                             "(Label Studio's pre-label setting)"),
                rankings: bool = typer.Option(False, help="new projects also ask for a full order of the four")
                ) -> None:
    """Send sets awaiting review to Label Studio as tasks (each set once)."""
    from mora.review import server
    from mora.review.pending import records
    from mora.review.push import push

    try:
        conn = server.connect(root, url=url)
        result = push(conn, root, dataset, preannotate=preannotate, rankings=rankings)
    except server.ReviewServerError as exc:
        _fail(str(exc))
    for line in result.removed:
        errors.print(f"[yellow]warning:[/] {escape(line)}", soft_wrap=True, highlight=False)
    for set_id, reason in result.failed:  # one line each; the record waits in reviews/failed/
        errors.print(f"[yellow]set aside:[/] {escape(set_id)}: {escape(reason)} (see {root}/_state/{dataset}/"
                     "reviews/failed/)", soft_wrap=True, highlight=False)
    open_tasks = len(records(root, dataset, "pushed"))
    console.print(f"{len(result.pushed)} sets pushed, {len(result.found)} were there already; "
                  f"{open_tasks} tasks await reviewers, audits first, then by what an answer would teach"
                  + (f" ({result.reprioritized} open tasks reordered)" if result.reprioritized else ""))
    for iteration, project in sorted(result.projects.items()):
        console.print(f"iteration {iteration}: {conn.url}/projects/{project}/data")
    if open_tasks and not result.projects:
        console.print(f"open them at {conn.url}/projects/")


@review_app.command("collect")
def review_collect(root: Path = ROOT_OPT, dataset: str = DATASET_OPT, url: str | None = URL_OPT) -> None:
    """Turn finished reviews into shard rows (accepted or discarded); undecided sets keep waiting."""
    from mora.review import server
    from mora.review.collect import collect

    try:
        result = collect(server.connect(root, url=url), root, dataset)
    except server.ReviewServerError as exc:
        _fail(str(exc))
    console.print(f"{len(result.accepted)} accepted, {len(result.discarded)} discarded, "
                  f"{len(result.waiting)} still waiting for reviewers")
    from mora.reports.publish import publish

    published = publish(root, dataset)
    console.print(f"dataset card: {published.card}\niteration report: {published.report}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
