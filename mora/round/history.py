"""What earlier rounds of a dataset left behind: which iterations exist, are finished, and which
prompts they used. Read from the round state and the shards, so rounds advance and never repeat."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.parquet as pq

from mora.atomic import write_json_atomic
from mora.datasets.shards import shard_files, shard_iterations

NOTHING_TO_TRAIN = "nothing-to-train.json"

_ROUND = re.compile(r"-it(\d+)-[0-9a-f]{10}$")


def rounds_dir(root: Path, dataset: str) -> Path:
    return Path(root) / "_state" / dataset / "rounds"


def round_dirs(root: Path, dataset: str) -> dict[Path, int]:
    """Every round ever started for the dataset, with its iteration."""
    folder = rounds_dir(root, dataset)
    found = {}
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        match = _ROUND.search(path.name)
        if match and path.name.startswith(f"{dataset}-it"):
            found[path] = int(match.group(1))
    return found


def trained_iterations(checkpoints: Path) -> set[int]:
    """Iterations whose fine-tuning finished (a checkpoint whose lineage says final)."""
    found = {p.name.removeprefix("iteration=") for p in Path(checkpoints).glob("iteration=*")}
    return {int(k) for k in found if k.isdigit() and final_checkpoint(checkpoints, int(k))}


def mark_nothing_to_train(checkpoints: Path, iteration: int, reason: str) -> Path:
    """The loop's fine-tuning of ``iteration`` found no selected video: the iteration is finished all the
    same (as a trained one, it ignores reviews decided later), and the next generates with the last weights."""
    return write_json_atomic(Path(checkpoints) / f"iteration={iteration}" / NOTHING_TO_TRAIN,
                             {"iteration": iteration, "reason": reason})


def finished_iterations(checkpoints: Path) -> set[int]:
    """Iterations whose fine-tuning finished: with a final checkpoint, or with nothing to train."""
    marks = Path(checkpoints).glob(f"iteration=*/{NOTHING_TO_TRAIN}")
    marked = {p.parent.name.removeprefix("iteration=") for p in marks}
    return trained_iterations(checkpoints) | {int(k) for k in marked if k.isdigit()}


def newest_checkpoint(checkpoints: Path, before: int | None = None) -> Path | None:
    """The final checkpoint of the newest trained iteration (before ``before``: the weights it generates with)."""
    done = [k for k in trained_iterations(checkpoints) if before is None or k < before]
    return final_checkpoint(checkpoints, max(done)) if done else None


def next_iteration(root: Path, dataset: str, checkpoints: Path | None = None) -> int:
    """``iteration: next``: the newest unfinished iteration, else the one after the newest finished one.

    An iteration is unfinished while one of its rounds is not complete, or, for the self-training
    loop (``checkpoints`` given), while its fine-tuning has not finished.
    """
    rounds = round_dirs(root, dataset)
    started = set(rounds.values()) | set(shard_iterations(root, dataset))
    if not started:
        return 1
    newest = max(started)
    open_round = any(it == newest and not (path / "complete.json").exists() for path, it in rounds.items())
    untrained = checkpoints is not None and newest not in finished_iterations(checkpoints)
    return newest if open_round or untrained else newest + 1


def earlier_prompts(root: Path, dataset: str, iteration: int) -> list[str]:
    """Every prompt that iterations before ``iteration`` planned or wrote to their shards."""
    prompts: list[str] = []
    for path, it in round_dirs(root, dataset).items():
        planned = path / "prompts.json"
        if it < iteration and planned.exists():
            prompts += [p["prompt"] for p in json.loads(planned.read_text())]
    for it in shard_iterations(root, dataset):
        if it < iteration:
            for shard in shard_files(root, dataset, [it]):
                prompts += pq.read_table(shard, columns=["prompt"]).column("prompt").to_pylist()
    return prompts


def final_checkpoint(checkpoints: Path, iteration: int) -> Path | None:
    """The newest finished checkpoint of an iteration's fine-tuning, if any."""
    finals = []
    for lineage in Path(checkpoints).glob(f"iteration={iteration}/*/step-*/lineage.json"):
        try:
            if json.loads(lineage.read_text()).get("final"):
                finals.append(lineage.parent)
        except (ValueError, OSError):
            continue
    return max(finals, key=lambda p: p.stat().st_mtime, default=None)
