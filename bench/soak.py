"""Nightly soak: rounds back to back on the Ray engine while workers die and a judge server trickles.

The same rounds (iterations 1..K of one dataset, tiny models, 2 generator and 2 judge workers) run
twice, each round as its own flow run that starts its own local Ray instance, as a nightly does:
- **clean**: nothing goes wrong;
- **soak**: every ``--kill-every`` seconds a random worker of this run (a Ray actor process of the
  Generate or the Judge stage, found among this process's descendants only) gets kill -9, as the
  OOM killer would; from ``--trickle-after`` seconds on, one of the two servers of the first judge
  sends its answers one byte per 0.2 s and never finishes one in time.

The first judge ranks by label scores over HTTP on two OpenAI-compatible servers (scripted,
tests/answer_server.py: vLLM cannot run here; each answer is a fixed function of the request, so
both runs get the same answers); the second judge runs in process. Everything is read back from the
shards and the rounds' state: sets made, lost (planned but in no shard), duplicated (a set made more
than once, or a row twice), rounds failed, the sets whose decision and video bytes equal the clean
run's, and wall time. Last line: ``failed= lost= duplicated= wall_ratio=``. Targets: 0, 0, 0.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from mora.cli_env import prefect_defaults  # noqa: E402 - after the path, before Prefect is imported

prefect_defaults(tempfile.mkdtemp(prefix="mora-bench-prefect-"), log_level="ERROR")

from tests.answer_server import AnswerServer  # noqa: E402

WORKER_TITLES = {"ray::GenerateWorker": "generator", "ray::JudgeWorker": "judge"}


def label_answer(request: dict) -> bytes:
    """A vLLM-shaped one-token answer with top log-probabilities for A-D: a fixed function of the request."""
    digest = hashlib.sha256(json.dumps(request.get("messages"), sort_keys=True).encode()).digest()
    weights = [math.exp(-b / 32) for b in digest[:4]]
    logprobs = [math.log(0.95 * w / sum(weights)) for w in weights]
    top = [{"token": letter, "logprob": lp} for letter, lp in zip("ABCD", logprobs, strict=True)]
    best = max(top, key=lambda t: t["logprob"])
    return json.dumps({"id": "soak", "object": "chat.completion", "model": request.get("model", "m"),
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": best["token"]},
                                    "logprobs": {"content": [{**best, "top_logprobs": top}]},
                                    "finish_reason": "length"}]}).encode()


class Server:
    """One judge server: answers at once, or trickles once ``trickle_from`` (monotonic) has passed."""

    def __init__(self):
        self.trickle_from = math.inf
        self.trickled = 0

    def __call__(self, request: dict) -> tuple[int, bytes, float]:
        if time.monotonic() >= self.trickle_from:
            self.trickled += 1
            return 200, label_answer(request), 0.2
        return 200, label_answer(request), 0


def _ancestors(pid: int) -> set[int]:
    out = set()
    while pid > 1:
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
        out.add(pid)
    return out


def our_workers() -> list[tuple[int, str]]:
    """(pid, stage) of the Ray stage workers that descend from this process (never another user's)."""
    me, found = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        stage = next((s for prefix, s in WORKER_TITLES.items() if title.startswith(prefix)), None)
        if stage and me in _ancestors(int(entry.name)):
            found.append((int(entry.name), stage))
    return found


class Killer(threading.Thread):
    """kill -9 of a random stage worker of this process every ``every`` seconds."""

    def __init__(self, every: float, seed: int):
        super().__init__(daemon=True, name="soak-killer")
        self.every, self.rng, self.stop = every, random.Random(seed), threading.Event()
        self.kills: list[tuple[float, str]] = []

    def run(self) -> None:
        while not self.stop.wait(self.every):
            workers = our_workers()
            if not workers:
                continue
            pid, stage = self.rng.choice(workers)
            try:
                os.kill(pid, signal.SIGKILL)
                self.kills.append((time.monotonic(), stage))
            except ProcessLookupError:
                pass


def run_rounds(config: str, overrides: dict[str, str], root: Path, iterations: int) -> dict:
    from mora.flows.round import dataset_round

    failed, errors, start = 0, [], time.monotonic()
    for iteration in range(1, iterations + 1):
        try:
            dataset_round(config, {**overrides, "shards.root": str(root), "iteration": str(iteration)})
        except Exception as exc:  # noqa: BLE001 - a failed round is what the soak counts
            failed += 1
            errors.append(f"iteration {iteration}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    return {"failed": failed, "errors": errors, "seconds": time.monotonic() - start}


def read_back(config: str, overrides: dict[str, str], root: Path, iterations: int) -> dict:
    """What the rounds left: planned sets, rows in the shards, who made each set, and how often."""
    import pandas as pd

    from mora.config import load_config
    from mora.datasets.shards import data_dir
    from mora.round.state import RoundState

    planned, made = set(), {}
    for iteration in range(1, iterations + 1):
        cfg = load_config(config, {**overrides, "shards.root": str(root), "iteration": str(iteration)})
        state = RoundState(cfg)
        planned |= {f"{cfg.round_id}/{p.set_id}" for p in state.load_prompts() or []}
        for record in state.made():
            key = f"{cfg.round_id}/{record['set_id']}"
            made[key] = made.get(key, 0) + 1
    folder = data_dir(root, "tiny")
    df = pd.read_parquet(folder, columns=["set_id", "candidate_index", "decision", "selected", "video", "judges"]
                         ) if folder.exists() else pd.DataFrame(columns=["set_id", "candidate_index"])
    return {"planned": planned, "made": made, "rows": df}


def summarize(got: dict, clean: dict | None) -> dict:
    df = got["rows"]
    in_shards = set(df.set_id)
    out = {"planned": len(got["planned"]), "made": len(in_shards), "lost": len(got["planned"] - in_shards),
           "duplicated": int(df.duplicated(["set_id", "candidate_index"]).sum())
           + sum(n > 1 for n in got["made"].values()),
           "server_abstentions": int(sum(any(j["abstained"] and "server" in (j["reason"] or "") for j in judges)
                                         for judges in df.drop_duplicates("set_id").judges))}
    if clean is not None:
        ref = clean["rows"].set_index(["set_id", "candidate_index"])
        mine = df.set_index(["set_id", "candidate_index"])
        common = ref.index.intersection(mine.index)
        same = ((ref.loc[common, "video"] == mine.loc[common, "video"])
                & (ref.loc[common, "decision"] == mine.loc[common, "decision"])
                & (ref.loc[common, "selected"] == mine.loc[common, "selected"]))
        per_set = same.groupby(level=0).all()
        out["same_as_clean"] = f"{int(per_set.sum())}/{len(ref.index.get_level_values(0).unique())}"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "configs" / "tiny.yaml"))
    parser.add_argument("--rounds", type=int, default=3, help="rounds back to back (iterations 1..N)")
    parser.add_argument("--prompts", type=int, default=8, help="prompts (candidate sets) per round")
    parser.add_argument("--kill-every", type=float, default=20.0, help="seconds between two kill -9 of a worker")
    parser.add_argument("--trickle-after", type=float, default=15.0, help="seconds into the soak when one judge "
                                                                        "server starts trickling")
    parser.add_argument("--deadline", type=float, default=10.0, help="judges.0.server.deadline_s")
    parser.add_argument("--max-restarts", type=int, default=2, help="runtime.ray.max_restarts (the default)")
    parser.add_argument("--seed", type=int, default=0, help="which workers the killer picks")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    os.chdir(REPO)
    work = Path(tempfile.mkdtemp(prefix="mora-bench-soak-"))
    healthy, trickling = Server(), Server()
    with AnswerServer(healthy) as a, AnswerServer(trickling) as b:
        overrides = {"prompts.count": str(args.prompts), "generation.num_frames": "9", "runtime.threads": "1",
                     "runtime.engine": "ray", "runtime.ray.generators.workers": "2",
                     "runtime.ray.judges.workers": "2", "runtime.ray.judges.cpus": "0.5",
                     "runtime.ray.max_restarts": str(args.max_restarts),
                     "judges.0.backend": "openai", "judges.0.server.base_url": f"[{a.base_url}, {b.base_url}]",
                     "judges.0.server.deadline_s": str(args.deadline),
                     "judges.0.server.breaker.cool_off_s": str(3 * args.deadline)}
        runs = {"clean": run_rounds(args.config, overrides, work / "clean", args.rounds)}
        killer = Killer(args.kill_every, args.seed)
        trickling.trickle_from = time.monotonic() + args.trickle_after
        killer.start()
        try:
            runs["soak"] = run_rounds(args.config, overrides, work / "soak", args.rounds)
        finally:
            killer.stop.set()
            killer.join()
    clean = read_back(args.config, overrides, work / "clean", args.rounds)
    soak = read_back(args.config, overrides, work / "soak", args.rounds)
    results = {"clean": summarize(clean, None), "soak": summarize(soak, clean)}
    results["clean"]["same_as_clean"] = "-"
    kills = {stage: sum(s == stage for _, s in killer.kills) for stage in WORKER_TITLES.values()}

    table = Table(title=f"{args.rounds} rounds x {args.prompts} sets on Ray (2 generators, 2 judges), tiny models, "
                        f"{os.cpu_count()} CPUs shared; soak: kill -9 every {args.kill_every:g} s, one of two "
                        f"judge servers trickling from {args.trickle_after:g} s (deadline {args.deadline:g} s)")
    for col in ("run", "rounds failed", "sets planned", "sets made", "lost", "duplicated", "kills (gen/judge)",
                "trickled requests", "server abstentions", "same as clean", "wall s"):
        table.add_column(col, justify="right")
    for name in ("clean", "soak"):
        r, run = results[name], runs[name]
        table.add_row(name, str(run["failed"]), str(r["planned"]), str(r["made"]), str(r["lost"]),
                      str(r["duplicated"]), f"{kills['generator']}/{kills['judge']}" if name == "soak" else "0/0",
                      str(trickling.trickled) if name == "soak" else "0", str(r["server_abstentions"]),
                      r["same_as_clean"], f"{run['seconds']:.0f}")
    Console(width=200).print(table)  # a log file is no terminal: keep the columns whole
    for name, run in runs.items():
        for error in run["errors"]:
            print(f"{name}: {error}")
    s = results["soak"]
    print(f"failed={runs['soak']['failed']} lost={s['lost']} duplicated={s['duplicated']} "
          f"wall_ratio={runs['soak']['seconds'] / runs['clean']['seconds']:.2f}")


if __name__ == "__main__":
    main()
