"""Thin Prefect task over the dataset's products: card, iteration report, judges against people."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from mora.datasets.agreement import agreement_markdown
from mora.reports.publish import publish


@task(name="publish-dataset", cache_policy=NO_CACHE)
def publish_dataset(root: Path, dataset: str) -> dict:
    """Rewrite the card and the report after a round or a collect; the judge table as an artifact."""
    published = publish(Path(root), dataset)
    create_markdown_artifact(f"# Judges checked against people: {dataset}\n\n"
                             + agreement_markdown(published.facts.agreement),
                             key="judges-vs-people", description=dataset)
    if published.facts.routing:  # per iteration: rule, review load, precision of accepted sets with its interval
        create_table_artifact(published.facts.routing, key="routing-precision", description=dataset)
    get_run_logger().info("dataset card %s, iteration report %s", published.card, published.report)
    return {"card": str(published.card) if published.card else None,
            "report": str(published.report) if published.report else None}
