"""What each self-training iteration produced, and how it moves across iterations (the paper's Figs. 3-4).

Data figures come from the shards as they are now (human decisions included); training figures come
from the checkpoint's lineage. Quality proxies are the weight-free gate metrics: motion, flicker,
sharpness and exposure, over every candidate and over the selected ones.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.dataset as ds

from mora.atomic import write_atomic
from mora.datasets.shards import shard_files
from mora.judges.verdict import ACCEPTED, DISCARDED, NEEDS_REVIEW

PROXIES = ("motion", "flicker", "sharpness", "dark_fraction", "bright_fraction")
COLUMNS = ["set_id", "decision", "decision_source", "selected", "judges", "gate_metrics", "gate_failures"]


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def data_metrics(root: Path, dataset: str, iteration: int) -> dict:
    """Judge agreement, review load, acceptance and quality proxies of one iteration's shards."""
    files = shard_files(root, dataset, [iteration])
    if not files:
        return {"iteration": iteration, "sets": 0}
    rows = ds.dataset(files, format="parquet").to_table(columns=COLUMNS).to_pylist()
    sets: dict[str, dict] = {}
    for row in rows:
        sets.setdefault(row["set_id"], row)
    n = len(sets)
    judged = [r for r in sets.values() if r["judges"] and not any(j["abstained"] for j in r["judges"])]
    agree = sum(len({j["ranking"][0] for j in r["judges"]}) == 1 for r in judged)
    by = {d: sum(r["decision"] == d for r in sets.values()) for d in (ACCEPTED, NEEDS_REVIEW, DISCARDED)}
    human = sum(r["decision_source"] == "human" for r in sets.values())
    selected = [r for r in rows if r["selected"]]
    out = {
        "iteration": iteration, "sets": n, "candidates": len(rows),
        "judge_agreement": round(agree / n, 4),
        "abstention_rate": round(1 - len(judged) / n, 4),
        "review_load": round((by[NEEDS_REVIEW] + human) / n, 4),
        "pending_review": by[NEEDS_REVIEW],
        "reviewed": human,
        "acceptance": round(by[ACCEPTED] / n, 4),
        "discarded": by[DISCARDED],
        "selected": len(selected),
        "gate_failure_rate": round(sum(bool(r["gate_failures"]) for r in rows) / len(rows), 4),
    }
    for proxy in PROXIES:
        out[f"{proxy}_mean"] = _mean([r["gate_metrics"][proxy] for r in rows])
        out[f"{proxy}_selected"] = _mean([r["gate_metrics"][proxy] for r in selected])
    return out


def training_metrics(lineage: dict | None, skipped: str | None = None) -> dict:
    if lineage is None:
        return {"trained": False, "train_note": skipped or ""}
    steps = lineage["steps"]
    out = {"trained": True, "checkpoint_id": lineage["checkpoint_id"], "examples": lineage["examples"],
           "train_steps": len(steps), "loss_first": round(steps[0]["loss"], 5),
           "loss_last": round(steps[-1]["loss"], 5),
           "loss_mean": round(sum(s["loss"] for s in steps) / len(steps), 5)}
    for role, factor in steps[-1]["factors"].items():
        out[f"factor_{role}"] = round(factor, 6)
    return out


PANELS = [
    ("curation", ["judge_agreement", "acceptance", "review_load", "gate_failure_rate"]),
    ("motion (flow px/frame)", ["motion_mean", "motion_selected"]),
    ("flicker", ["flicker_mean", "flicker_selected"]),
    ("sharpness", ["sharpness_mean", "sharpness_selected"]),
    ("fine-tuning loss", ["loss_mean", "loss_last"]),
    ("modulation factor", ["factor_text_to_image", "factor_image_to_video"]),
]


def plot_trends(records: list[dict], path: Path, title: str) -> Path:
    """One panel per family of figures, iterations on the x axis; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 7), constrained_layout=True)
    xs = [r["iteration"] for r in records]
    for ax, (name, keys) in zip(axes.flat, PANELS, strict=True):
        for key in keys:
            points = [(x, r.get(key)) for x, r in zip(xs, records, strict=True) if r.get(key) is not None]
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", label=key)
        ax.set_title(name)
        ax.set_xlabel("iteration")
        ax.set_xticks(xs)
        if ax.has_data():
            ax.legend(fontsize=7)
    fig.suptitle(title)
    try:
        return write_atomic(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=90))
    finally:
        plt.close(fig)
