"""Memory and time of the data products on a synthetic dataset: does memory stay bounded as it grows?

Writes a dataset of SETS candidate sets (4 candidates, each a VIDEO_KB random "video") once per size,
then runs each product in a fresh process and prints its peak resident memory and seconds. Streaming
holds when the peak does not grow with the dataset.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

PRODUCTS = {
    "export": "from mora.datasets.export import export_webdataset as f; f(root, 'b', out / 'tars', choose='all')",
    "pairs": "from mora.datasets.pairs import write_pairs as f; f(root, 'b', out / 'pairs.parquet')",
    "card+report": "from mora.reports.publish import publish as f; f(root, 'b')",
}


def make_dataset(root: Path, sets: int, video_kb: int) -> None:
    from mora.datasets.schema import SCHEMA_VERSION
    from mora.datasets.shards import write_shards

    now = datetime.now(UTC)
    judge = {"judge": "j", "model": "m", "ranking": [0, 1, 2, 3], "scores": [4.0, 3.0, 2.0, 1.0], "confidence": 1.0,
             "per_order": [], "method": "label-scores", "backend": "transformers", "abstained": False, "reason": None,
             "seconds": 0.1}
    gates = {"motion": 1.0, "flicker": 1.0, "dark_fraction": 0.0, "bright_fraction": 0.0, "sharpness": 100.0}
    for part in range(0, sets, 64):  # one round per 64 sets keeps this script's own memory flat
        rows = []
        for s in range(part, min(part + 64, sets)):
            for c in range(4):
                rows.append({"schema_version": SCHEMA_VERSION, "round_id": f"b-it001-{part}", "set_id": f"b/p{s:05d}",
                             "prompt_index": s, "prompt": "p", "prompt_source": "synthesizer", "enhanced_prompt": "p",
                             "enhanced_by": "none", "procedure": "text-to-video", "candidate_index": c, "seed": c,
                             "video": os.urandom(video_kb << 10), "num_frames": 9, "fps": 8.0, "width": 64,
                             "height": 64, "generator_models": [], "gate_metrics": gates, "gate_failures": [],
                             "criterion": "realism", "criterion_seed": 0, "judges": [judge, judge],
                             "decision": "accepted", "decision_source": "judges", "decision_reason": "x",
                             "selected": c == 0, "review": None, "generation_seconds": 0.1, "created_at": now,
                             "round_started_at": now})
        write_shards(rows, root, "b", 1, f"b-it001-{part:05d}", max_rows=256)


def run_one(code: str, root: Path) -> tuple[float, float]:
    script = (f"import resource, time; from pathlib import Path; root = Path({str(root)!r}); out = root / 'out'\n"
              f"t = time.perf_counter(); {code}\n"
              "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    seconds, rss = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True,
                                  text=True).stdout.split()[-2:]
    return float(seconds), int(rss) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sets", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--video-kb", type=int, default=128)
    args = parser.parse_args()
    results = []
    print(f"{'sets':>6} {'data MB':>8} {'product':>12} {'seconds':>8} {'peak RSS MB':>12}")
    for sets in args.sets:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            make_dataset(root, sets, args.video_kb)
            size = sum(f.stat().st_size for f in root.rglob("*.parquet")) / 2**20
            for name, code in PRODUCTS.items():
                seconds, rss = run_one(code, root)
                results.append({"sets": sets, "product": name, "seconds": seconds, "peak_rss_mb": rss})
                print(f"{sets:6d} {size:8.0f} {name:>12} {seconds:8.2f} {rss:12.0f}")
    small, large = min(args.sets), max(args.sets)
    for name in PRODUCTS:
        rss = {r["sets"]: r["peak_rss_mb"] for r in results if r["product"] == name}
        print(f"{name}: peak RSS x{rss[large] / rss[small]:.2f} for x{large / small:.0f} the data")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
