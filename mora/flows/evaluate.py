"""``mora eval`` as a flow: each system on the fixed evaluation set, then the paper's tables and figures."""

from __future__ import annotations

from prefect import flow, get_run_logger

from mora.config import load_config
from mora.evaluation.runner import latest_checkpoint
from mora.tasks.evaluation import evaluate_checkpoint, evaluation_reports

ABLATIONS = ("no-review", "no-modulation", "random-modulation")  # mora self-train --ablation NAME


@flow(name="evaluate")
def evaluate(config_path: str = "configs/tiny.yaml", overrides: dict[str, str] | None = None,
             checkpoints: list[str] | None = None, base: bool = False, ablations: bool = False) -> dict:
    """``checkpoints`` (default the preset's, else the base models), the base models when ``base``, and
    with ``ablations`` the latest checkpoint of the full system and of each ablation's dataset."""
    log = get_run_logger()
    config = load_config(config_path, overrides)
    systems: list[tuple[str | None, str | None]] = [(c, None) for c in checkpoints or []]
    if base or not (checkpoints or ablations):
        systems.insert(0, (None if base else config.generation.checkpoint, None))
    if ablations:
        full = latest_checkpoint(config)
        if full and (full, None) not in systems:
            systems.append((full, None))
        for name in ABLATIONS:
            found = latest_checkpoint(config, f"{config.shards.dataset}-{name}")
            if found is None:
                log.warning("ablation %s: no checkpoint under dataset %s-%s; run mora self-train --ablation %s",
                            name, config.shards.dataset, name, name)
            else:
                systems.append((found, name))
    runs = [evaluate_checkpoint(config, checkpoint, ablation=ablation) for checkpoint, ablation in systems]
    return {"runs": runs, "files": evaluation_reports(config)}
