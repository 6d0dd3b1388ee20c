"""``mora eval`` as flows: each system on the fixed evaluation set, or a folder of outside videos as a
system row; then the paper's tables and figures."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from mora.config import load_config
from mora.evaluation.runner import latest_checkpoint
from mora.tasks.evaluation import evaluate_checkpoint, evaluate_videos, evaluation_reports

ABLATIONS = ("no-review", "no-modulation", "random-modulation")  # mora self-train --ablation NAME


@flow(name="evaluate")
def evaluate(config_path: str = "configs/tiny.yaml", overrides: dict[str, str] | None = None,
             checkpoints: list[str] | None = None, base: bool = False, ablations: bool = False) -> dict:
    """``checkpoints`` (default the preset's, else the base models), the base models when ``base``, and
    with ``ablations`` the untrained base models and the latest checkpoint of the full system and of
    each ablation's dataset (Table 5). Base runs are labelled by the preset: base-PRESET."""
    log = get_run_logger()
    config, preset = load_config(config_path, overrides), Path(config_path).stem
    systems: list[tuple[str | None, str | None]] = [(c, None) for c in checkpoints or []]
    if base or ablations or not checkpoints:
        systems.insert(0, (None if base or ablations else config.generation.checkpoint, None))
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
    runs = [evaluate_checkpoint(config, checkpoint, ablation=ablation, preset=preset)
            for checkpoint, ablation in dict.fromkeys(systems)]
    return {"runs": runs, "files": evaluation_reports(config)}


@flow(name="evaluate-videos")
def evaluate_outside(videos: str, label: str, task: str, config_path: str = "configs/tiny.yaml",
                     overrides: dict[str, str] | None = None, prompts: str | None = None) -> dict:
    """A folder of videos made by any system, measured by the preset's metrics as the ``task`` row
    ``label``, into the same tables as the dataset's checkpoints."""
    config = load_config(config_path, overrides)
    run = evaluate_videos(config, videos, label, task, prompts)
    return {"runs": [run], "files": evaluation_reports(config)}
