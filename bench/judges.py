"""Judge throughput: candidate sets ranked per second, label scores against free-text generate().

Both methods run in process on the same tiny judge, taught to write ``B > D > A > C`` (see
``mora.models.taught``) so free text stops at a realistic answer length instead of running to
max_new_tokens; each set is four candidates of 17 frames, 4 frames each, shown in 2 orders.
``--arch`` adds a judge built from a real model's config with random weights (no hub access needed).
Last line: ``ratio=X.XX`` (label scores / free text, sets per second over all families). Target >= 5.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FAMILIES = ("qwen2-vl", "llava-onevision")


def candidate_sets(count: int, size: int, frames: int):
    from mora.judges import CandidateSet
    from mora.judges.criteria import CRITERIA

    rng = np.random.default_rng(0)
    return [CandidateSet(prompt=f"scene {i}: a red fox runs through snow", criterion=CRITERIA[i % len(CRITERIA)],
                         clips=[rng.integers(0, 256, (frames, size, size, 3), dtype=np.uint8) for _ in range(4)])
            for i in range(count)]


def sets_per_second(judge, sets, repeats: int) -> tuple[float, float]:
    """Median sets/s over repeats, and the share of sets that got a clean ranking."""
    judge.rank(sets[0], seed=0)  # warm-up
    rates, clean = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        results = [judge.rank(s, seed=i) for i, s in enumerate(sets)]
        rates.append(len(sets) / (time.perf_counter() - start))
        clean = sum(not r.abstained or "tie for best" in (r.reason or "") for r in results)
    return statistics.median(rates), clean / len(sets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default=str(REPO / ".mora" / "models" / "tiny"))
    parser.add_argument("--sets", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from mora.config import JudgeConfig, ModelRef, RuntimeConfig
    from mora.judges.local import TransformersJudge
    from mora.models.taught import teach_answer

    runtime = RuntimeConfig(device=args.device)
    sets = candidate_sets(args.sets, args.size, 17)
    taught_root = REPO / ".mora" / "bench" / "taught"
    table = Table(title=f"judges in process, {args.sets} sets x 4 candidates x 4 frames, 2 orders, {args.device}")
    for col in ("family", "method", "sets/s", "ms/set", "clean answers"):
        table.add_column(col, justify="right" if col not in ("family", "method") else "left")
    totals = {"label-scores": 0.0, "free-text": 0.0}
    for family in FAMILIES:
        model = teach_answer(Path(args.models) / family, family, "B > D > A > C", taught_root / family)
        for method in totals:
            cfg = JudgeConfig(name=family, family=family, model=ModelRef(id=str(model)), method=method,
                              video_input="frames")
            rate, clean = sets_per_second(TransformersJudge.from_pretrained(cfg, runtime), sets, args.repeats)
            totals[method] += len(sets) / rate
            table.add_row(family, method, f"{rate:.1f}", f"{1000 / rate:.1f}", f"{clean:.0%}")
    Console().print(table)
    print("clean answers: a ranking, or a tie that the free-text judge reports instead of guessing")
    print(f"ratio={totals['free-text'] / totals['label-scores']:.2f}")


if __name__ == "__main__":
    main()
