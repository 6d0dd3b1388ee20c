"""Thin Prefect tasks over the evaluation: one system on the set, then the tables, figures and artifacts."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from mora.agents.loading import release
from mora.config import EVAL_TASKS, RoundConfig
from mora.evaluation import reports
from mora.evaluation.models import EVAL_KINDS
from mora.evaluation.runner import evaluate_system, reports_dir


@task(name="evaluate-checkpoint", cache_policy=NO_CACHE)
def evaluate_checkpoint(config: RoundConfig, checkpoint: str | None, iteration: int | None = None,
                        ablation: str | None = None, label: str | None = None, release_after: bool = False) -> dict:
    """Every task of the evaluation set on one checkpoint (None: the base models)."""
    log = get_run_logger()
    run = evaluate_system(config, checkpoint, label=label, iteration=iteration, ablation=ablation, log=log.info)
    if release_after:  # fine-tuning comes next and wants the memory
        release(EVAL_KINDS)
    for task_name, summary in run["summary"].items():
        log.info("%s %s: video quality %.4f", run["label"], task_name, summary["video_quality"])
    return run


@task(name="evaluation-reports", cache_policy=NO_CACHE)
def evaluation_reports(config: RoundConfig) -> dict[str, list[str]]:
    """The tables and figures of every stored run, rewritten, and published as Prefect artifacts."""
    folder, dataset = reports_dir(config), config.shards.dataset
    files = reports.write_reports(folder, dataset)
    runs = reports.load_runs(folder)
    for task_name in EVAL_TASKS:
        table = reports.task_table(runs, task_name)
        if len(table):
            create_table_artifact(table.to_dict("records"), key=f"eval-{task_name}",
                                  description=f"{dataset}: {task_name}, one row per system")
    ablations = reports.ablation_table(runs)
    if len(ablations):
        create_table_artifact(ablations.to_dict("records"), key="eval-ablations", description=f"{dataset}: ablations")
    listing = "\n".join(f"- `{path}`" for kind in ("tables", "figures") for path in files[kind])
    create_markdown_artifact(f"# Evaluation: {dataset}\n\n{listing}\n", key="eval-report", description=dataset)
    return files
