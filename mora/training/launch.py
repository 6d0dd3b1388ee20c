"""Fine-tuning in this process, or on ``training.processes`` processes started by ``accelerate launch``.

The caller (``mora train``, the ``fine-tune`` task) stays the one process that reports: rank 0 of the
launched processes appends each step's record to a progress file that the caller follows, and
writes the result, or the one-line error, where the caller reads it. Run as a module
(``python -m mora.training.launch JOB``) this file is what every launched process runs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from mora.atomic import write_json_atomic
from mora.config import ConfigError, RoundConfig
from mora.training.trainer import SelfModulatedTrainer, StepCallback, TrainResult, checkpoint_root

POLL_S = 0.5


def reported_errors() -> dict[str, type[Exception]]:
    """The one-line errors of fine-tuning: a launched process reports them by name, the caller raises them."""
    from mora.agents.loading import ModelLoadError
    from mora.training.checkpoint import CheckpointError
    from mora.training.data import ShardError

    return {e.__name__: e for e in (ConfigError, ModelLoadError, CheckpointError, ShardError)}


class LaunchError(RuntimeError):
    """The launched processes failed without a one-line error of their own: names the exit and the log."""


def fine_tune(config: RoundConfig, review: bool = True, on_step: StepCallback | None = None) -> TrainResult:
    """Train on the config's iteration; ``training.processes`` > 1 runs data-parallel under accelerate."""
    if config.training.processes == 1:
        trainer = SelfModulatedTrainer(config, review)
        try:
            return trainer.train(on_step)
        finally:
            trainer.close()
    return launched(config, review, on_step)


def _threads(config: RoundConfig) -> int:
    return config.runtime.threads or max(1, (os.cpu_count() or 1) // config.training.processes)


def launch_command(config: RoundConfig, job: Path) -> list[str]:
    """``accelerate launch`` through torchrun (its multi-process launcher, CPU or GPU), a free port."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
            "--num_processes", str(config.training.processes), "--num_machines", "1", "--main_process_port", "0",
            "--mixed_precision", "no", "--dynamo_backend", "no",
            "--num_cpu_threads_per_process", str(_threads(config)), "-m", "mora.training.launch", str(job)]


def launched(config: RoundConfig, review: bool, on_step: StepCallback | None) -> TrainResult:
    job = checkpoint_root(config) / f".launch-{os.getpid()}-{time.monotonic_ns()}"
    job.mkdir(parents=True)
    (job / "job.json").write_text(json.dumps({"config": config.model_dump(mode="json"), "review": review}))
    progress, result = job / "progress.jsonl", job / "result.json"
    log = job / "processes.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(launch_command(config, job), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            seen = 0
            while True:
                done = proc.poll() is not None
                seen = _follow(progress, seen, on_step, config.training.max_steps)
                if done:
                    break
                time.sleep(POLL_S)
        except BaseException:  # interrupted: the launched processes go too
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
            raise
    answer = json.loads(result.read_text()) if result.is_file() else None
    if answer is not None and "error" in answer:
        raise reported_errors().get(answer["kind"], LaunchError)(answer["error"])
    if proc.returncode != 0 or answer is None:
        last = [line for line in log.read_text(errors="replace").splitlines() if line.strip()][-1:] or ["(no output)"]
        raise LaunchError(f"fine-tuning on {config.training.processes} processes exited with {proc.returncode}: "
                          f"{last[0].strip()[:300]}; the processes' log is {log}")
    shutil.rmtree(job, ignore_errors=True)
    return TrainResult(checkpoint=Path(answer["checkpoint"]) if answer["checkpoint"] else None,
                       checkpoints=[Path(p) for p in answer["checkpoints"]], examples=answer["examples"],
                       steps=answer["steps"], skipped=answer["skipped"], resumed_at=answer["resumed_at"])


def _follow(progress: Path, seen: int, on_step: Callable | None, total: int) -> int:
    """Pass on the step records written since the last look; the number of lines seen."""
    if not progress.is_file():
        return seen
    complete = progress.read_text().split("\n")[:-1]  # what follows the last newline is still being written
    for line in complete[seen:]:
        if on_step is not None:
            on_step(json.loads(line), total)
    return max(seen, len(complete))


def main(argv: list[str] | None = None) -> int:
    """One launched process: its rank's share of every batch; rank 0 reports."""
    from mora.training.parallel import Ranks

    job = Path((argv if argv is not None else sys.argv[1:])[0])
    spec = json.loads((job / "job.json").read_text())
    config = RoundConfig.model_validate(spec["config"])
    ranks = Ranks.from_environment(config.runtime.device)

    def report(record: dict, total: int) -> None:
        with open(job / "progress.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    try:
        trainer = SelfModulatedTrainer(config, spec["review"], ranks)
        result = trainer.train(report if ranks.main else None)
    except tuple(reported_errors().values()) as exc:
        if ranks.main:
            write_json_atomic(job / "result.json", {"error": str(exc), "kind": type(exc).__name__})
        return 3
    if ranks.main:
        write_json_atomic(job / "result.json", {
            "checkpoint": str(result.checkpoint) if result.checkpoint else None,
            "checkpoints": [str(p) for p in result.checkpoints], "examples": result.examples, "steps": result.steps,
            "skipped": result.skipped, "resumed_at": result.resumed_at})
    return 0


if __name__ == "__main__":
    sys.exit(main())
