"""The dataset card and the iteration report, rewritten together from one pass over the shards, and the
reliability model refitted on them (``_state/DATASET/reviews/reliability.json``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mora.atomic import write_json_atomic
from mora.datasets.facts import DatasetFacts, dataset_facts
from mora.datasets.shards import dataset_dir
from mora.reports.card import CARD, write_card
from mora.reports.html import INDEX, reports_dir, write_report
from mora.review.reliability import model_path


@dataclass
class Published:
    card: Path | None  # None: the dataset has no shards yet
    report: Path | None
    facts: DatasetFacts


def publish(root: Path, dataset: str) -> Published:
    """Card and report of ``dataset`` as its shards are now; nothing is written before its first shard."""
    facts = dataset_facts(root, dataset)
    if not facts.counts:
        return Published(None, None, facts)
    # the model refitted on the sets as they are now: push orders the review queue by it
    write_json_atomic(model_path(root, dataset), {"model": facts.model.to_dict(), "table": facts.reliability,
                                                  "routing": facts.routing})
    return Published(write_card(root, dataset, facts), write_report(root, dataset, facts), facts)


def products(root: Path, dataset: str) -> tuple[Path, Path]:
    """Where the card and the report of ``dataset`` are."""
    return dataset_dir(root, dataset) / CARD, reports_dir(root, dataset) / INDEX
