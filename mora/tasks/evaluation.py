"""Thin Prefect tasks over the evaluation: one system on the set (or a folder of outside videos), then
the tables, figures and artifacts."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from mora.agents.loading import release
from mora.config import EVAL_TASKS, RoundConfig
from mora.evaluation import reports
from mora.evaluation.models import EVAL_KINDS
from mora.evaluation.outside import evaluate_folder
from mora.evaluation.runner import describe_scores, evaluate_system, reports_dir


def _log_run(run: dict) -> None:
    log = get_run_logger()
    for task_name, summary in run["summary"].items():
        gone = {m: "; ".join(why["reasons"]) for m, why in (summary.get("missing") or {}).items()}
        log.info("%s %s: %s", run["label"], task_name, describe_scores(summary | {"missing": gone}))
    for metric, why in run.get("fallbacks", {}).items():
        log.info("%s: stand-in for %s (%s)", run["label"], metric, why)


@task(name="evaluate-checkpoint", cache_policy=NO_CACHE)
def evaluate_checkpoint(config: RoundConfig, checkpoint: str | None, iteration: int | None = None,
                        ablation: str | None = None, label: str | None = None, release_after: bool = False,
                        preset: str = "") -> dict:
    """Every task of the evaluation set on one checkpoint (None: the base models of ``preset``)."""
    run = evaluate_system(config, checkpoint, label=label, iteration=iteration, ablation=ablation, preset=preset,
                          log=get_run_logger().info)
    if release_after:  # fine-tuning comes next and wants the memory
        release(EVAL_KINDS)
    _log_run(run)
    return run


@task(name="evaluate-videos", cache_policy=NO_CACHE)
def evaluate_videos(config: RoundConfig, videos: str, label: str, task_name: str, prompts: str | None) -> dict:
    """A folder of videos made anywhere, measured as one system's ``task_name`` row."""
    run = evaluate_folder(config, Path(videos), label, task_name, Path(prompts) if prompts else None,
                          log=get_run_logger().info)
    _log_run(run)
    return run


def _records(df) -> list[dict]:
    return df.astype(object).where(df.notna(), None).to_dict("records")


@task(name="evaluation-reports", cache_policy=NO_CACHE)
def evaluation_reports(config: RoundConfig) -> dict[str, list[str]]:
    """The tables and figures of every stored run, rewritten, and published as Prefect artifacts."""
    folder, dataset = reports_dir(config), config.shards.dataset
    files = reports.write_reports(folder, dataset)
    runs = reports.load_runs(folder)
    for task_name in EVAL_TASKS:
        table = reports.task_table(runs, task_name)
        if len(table):
            create_table_artifact(_records(table), key=f"eval-{task_name}",
                                  description=f"{dataset}: {task_name}, one row per system")
    ablations = reports.ablation_table(runs)
    if len(ablations):
        create_table_artifact(_records(ablations), key="eval-ablations", description=f"{dataset}: ablations")
    listing = "\n".join(f"- `{path}`" for kind in ("tables", "figures") for path in files[kind])
    measured = "\n".join(f"- **{task_name}**\n" + "\n".join(
        f"  - {line}" for line in reports.notes(runs, task_name, reports.implementations(runs, task_name))[:-1])
        for task_name in EVAL_TASKS if len(reports.task_table(runs, task_name)))
    create_markdown_artifact(f"# Evaluation: {dataset}\n\n{listing}\n\n## How each column was measured\n\n"
                             f"{measured}\n", key="eval-report", description=dataset)
    return files
