"""Which checkpoint generated each iteration, and which one was trained on it: the dataset's lineage.

Generated-with comes from the shard rows (``generator_models`` role ``checkpoint``); trained-into
comes from the final checkpoints' ``lineage.json`` under ``ROOT/_checkpoints/DATASET`` (the default
place of ``mora train`` / ``mora self-train``).
"""

from __future__ import annotations

import json
from pathlib import Path

from mora.datasets.facts import DatasetFacts


def trained_checkpoints(root: Path, dataset: str) -> dict[int, dict]:
    """The latest final checkpoint trained on each iteration: {iteration: lineage summary}."""
    out: dict[int, dict] = {}
    for path in sorted(Path(root).glob(f"_checkpoints/{dataset}/iteration=*/*/step-*/lineage.json")):
        lineage = json.loads(path.read_text())
        if not lineage.get("final"):
            continue
        steps = lineage.get("steps") or []
        summary = {"checkpoint_id": lineage["checkpoint_id"], "path": str(path.parent),
                   "parent": (lineage.get("parent") or {}).get("checkpoint_id"), "examples": lineage.get("examples"),
                   "steps": len(steps), "loss_last": round(steps[-1]["loss"], 5) if steps else None,
                   "created_at": lineage.get("created_at", "")}
        iteration = int(lineage["iteration"])
        if iteration not in out or summary["created_at"] >= out[iteration]["created_at"]:
            out[iteration] = summary
    return out


def lineage_rows(facts: DatasetFacts, root: Path, dataset: str) -> list[dict]:
    """One row per iteration: the checkpoint that generated it and the one trained on it."""
    generated = {g["iteration"]: g["revision"] for g in facts.generators if g["role"] == "checkpoint"}
    trained = trained_checkpoints(root, dataset)
    rows = []
    for iteration in sorted(set(facts.iterations) | set(trained)):
        t = trained.get(iteration, {})
        rows.append({"iteration": iteration, "generated_with": generated.get(iteration) or "base models",
                     "trained_into": t.get("checkpoint_id") or "not trained", "parent": t.get("parent") or "–",
                     "examples": t.get("examples", "–"), "steps": t.get("steps", "–"),
                     "loss_last": t.get("loss_last", "–")})
    return rows
