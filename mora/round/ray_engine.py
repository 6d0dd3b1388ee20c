"""The Ray engine: generators and judges in long-lived Ray actors, streaming set after set.

Why actors (see the README, "Scaling out"): a stage's models must stay resident, and a Ray remote
*function* that asks for GPUs leaves its worker after every call; an actor keeps what ``setup()``
loaded for its whole life. The driver schedules the two actor pools itself, which Ray Data's
``map_batches`` would hide: it pulls the next claimed set only when a generator is free, keeps at
most two made sets per judge waiting, hands a made set to a judge by reference (the videos go from
actor to actor through Ray's object store), and gives a set whose worker died to another worker.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterable, Iterator
from datetime import datetime

import ray
from ray.exceptions import RayActorError

from mora.config import ConfigError, RayStage, RoundConfig
from mora.round.placement import local_cpus, unplaceable
from mora.round.stages import Generate, Judge, JudgedSet, effective_threads, timed, worker_identity
from mora.round.state import PlannedPrompt
from mora.stopping import also_stop, reclaim_sigterm

log = logging.getLogger(__name__)
ATTEMPTS = 3  # workers a set may be given before the round fails on it


class StageWorker:
    """One stage in one Ray actor: ``setup()`` when the actor starts (or restarts), then ``process()``."""

    def __init__(self, stage_cls, config: RoundConfig, name: str, cwd: str, threads: int):
        import torch

        if os.path.isdir(cwd):  # presets name model folders relative to the driver's directory
            os.chdir(cwd)
        torch.set_num_threads(threads)
        self.stage = stage_cls(config)
        self.stage.setup()
        self.identity = {"worker": name, **worker_identity(ray.get_runtime_context().get_node_id())}

    def process(self, *args):
        out, span = timed(self.stage.process, *args)
        return out, {"span": span, **self.identity}

    def pid(self) -> int:
        return os.getpid()


class GenerateWorker(StageWorker):
    """The Generate stage's actor: a class per stage, so that ``ps`` and Ray's tools name the stage."""


class JudgeWorker(StageWorker):
    """The Judge stage's actor."""


def connect(config: RoundConfig) -> bool:
    """Join the configured cluster, or start a local instance; True when this call started Ray."""
    if ray.is_initialized():  # a caller (a test, a notebook) connected already
        return False
    r = config.runtime.ray
    kwargs = {"runtime_env": r.runtime_env or None, "include_dashboard": False, "log_to_driver": False}
    if r.address:
        ray.init(address=r.address, **kwargs)
    else:  # "local": a new instance even where another Ray runs on this machine (ray.init would join it)
        ray.init(address="local", num_cpus=local_cpus(r), **kwargs)
    reclaim_sigterm()  # SIGTERM stops the round in one line (exit 143), not through Ray's handlers (SIGABRT)
    return True


class RayEngine:
    name = "ray"

    def __init__(self, config: RoundConfig):
        self.config = config
        self.threads: int | None = None  # the round's torch threads (the driver sets them); None: this process's
        self.started_ray = False
        self.generators: list = []
        self.judges: list = []
        self.given_again: list[str] = []  # sets whose worker died and which another worker made
        self.replaced = 0  # workers out of restarts that a fresh one replaced
        self._forget_stop = lambda: None

    def _pool(self, stage_cls, stage: RayStage, label: str) -> list:
        return [self._start(stage_cls, stage, f"{label}-{i}") for i in range(stage.workers)]

    def _start(self, stage_cls, stage: RayStage, name: str):
        r = self.config.runtime
        # Ray gives workers OMP_NUM_THREADS=CPUS; the driver's OpenMP setting instead, since some CPU kernels
        # add in another order under it (frames one level apart, then other video bytes) and a worker must
        # make what the local engine makes; and its wait policy (mora/__init__.py), on every node
        omp = os.environ.get("OMP_NUM_THREADS") or str(os.cpu_count() or 1)
        worker = GenerateWorker if stage_cls is Generate else JudgeWorker
        actor = ray.remote(worker).options(
            num_cpus=stage.cpus, num_gpus=stage.gpus, resources=stage.resources or None,
            max_restarts=r.ray.max_restarts, max_task_retries=0,
            runtime_env={"env_vars": {"OMP_NUM_THREADS": omp, "OMP_WAIT_POLICY": os.environ["OMP_WAIT_POLICY"]}})
        threads = self.threads or effective_threads(r)  # every worker the local engine's count, not its cpus
        return actor.remote(stage_cls, self.config, name, os.getcwd(), threads)

    def _replace(self, actor, stage: str):
        """A fresh worker for one that finished sets and then ran out of restarts (kill -9 by an OOM killer,
        again and again over a night): deaths between finished sets are its own accident, not the pool's."""
        pool = self.generators if stage == "generator" else self.judges
        self.replaced += 1
        fresh = self._start(Generate if stage == "generator" else Judge,
                            getattr(self.config.runtime.ray, f"{stage}s"), f"{stage}-r{self.replaced}")
        pool[pool.index(actor)] = fresh
        log.warning("a Ray %s worker ran out of its runtime.ray.max_restarts (%d) restarts after finishing sets: "
                    "a fresh worker takes its place", stage, self.config.runtime.ray.max_restarts)
        return fresh

    def __enter__(self) -> RayEngine:
        self.started_ray = connect(self.config)
        if self.started_ray:
            self._forget_stop = also_stop(ray.shutdown)
        r = self.config.runtime.ray
        nodes = [node["Resources"] for node in ray.nodes() if node["Alive"]]
        why = unplaceable(r, nodes)
        if why and self.started_ray:  # the instance this run started gets no more nodes: say so at once
            self.__exit__()
            raise ConfigError(why)
        try:
            self.generators = self._pool(Generate, r.generators, "generator")
            self.judges = self._pool(Judge, r.judges, "judge")
            # claim nothing before the workers stand: a run waiting for a busy cluster must not hold sets
            names = [f"generator-{i}" for i in range(len(self.generators))] + [
                f"judge-{i}" for i in range(len(self.judges))]
            # a worker killed while it starts is waited for through its restart
            workers = dict(zip(names, self.generators + self.judges, strict=True))
            starting = {self._standing(actor): name for name, actor in workers.items()}
            ready, waiting = ray.wait(list(starting), num_returns=len(starting), timeout=r.placement_timeout_s)
            gone = []  # out of restarts before they stood: the round goes on without them, as it does mid-round
            for ref in ready:
                try:
                    ray.get(ref)
                except RayActorError as exc:
                    if exc.actor_init_failed:  # setup() raised: its own error (Ray restarts no failed setup)
                        raise
                    gone.append(starting[ref])
            if gone:
                log.warning("Ray workers %s died before they stood, each after runtime.ray.max_restarts (%d) "
                            "restarts: the round goes on without them", ", ".join(gone), r.max_restarts)
                self.generators = [a for n, a in workers.items() if n.startswith("generator-") and n not in gone]
                self.judges = [a for n, a in workers.items() if n.startswith("judge-") and n not in gone]
            if waiting:
                raise ConfigError(f"Ray workers {', '.join(starting[w] for w in waiting)} had not started after "
                                  f"runtime.ray.placement_timeout_s ({r.placement_timeout_s:g} s): "
                                  f"{why or 'the cluster is busy'}; free or add resources, or raise the timeout")
            for stage, pool in (("generator", self.generators), ("judge", self.judges)):
                if not pool:
                    raise RuntimeError(f"the Ray engine has no live {stage} workers for the round's sets: each died "
                                       f"before it stood, after runtime.ray.max_restarts ({r.max_restarts}) "
                                       "restarts; see the Ray logs (`ray logs`), or raise runtime.ray.max_restarts")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        for actor in self.generators + self.judges:
            ray.kill(actor)
        if self.started_ray:
            ray.shutdown()
            self._forget_stop()

    def run(self, items: Iterable[PlannedPrompt], started_at: datetime) -> Iterator[JudgedSet]:
        """Judged sets as they finish; generating set k+1 overlaps judging set k."""
        items = iter(items)
        retry: deque[PlannedPrompt] = deque()
        made: deque[tuple] = deque()  # (planned, made ref, generator meta) waiting for a judge
        making: dict = {}  # meta ref -> (actor, planned, made ref)
        judging: dict = {}  # judged ref -> (actor, planned, made ref, generator meta)
        restarting: dict = {}  # ready ref -> (actor, stage): a worker whose process died, until it stands again
        free_gen, free_judge = list(self.generators), list(self.judges)
        attempts: dict[str, int] = {}
        finished: set = set()  # workers that finished a set since they were started (restarts included)
        exhausted = False
        while True:
            while free_gen and len(made) + len(making) < 2 * len(self.judges) + len(self.generators):
                if retry:
                    planned = retry.popleft()
                elif exhausted or (planned := next(items, None)) is None:
                    exhausted = True
                    break
                actor = free_gen.pop(0)
                made_ref, meta_ref = actor.process.options(num_returns=2).remote(planned)
                making[meta_ref] = (actor, planned, made_ref)
            while free_judge and made:
                planned, made_ref, meta = made.popleft()
                actor = free_judge.pop(0)
                judging[actor.process.remote(made_ref, started_at)] = (actor, planned, made_ref, meta)
            if not making and not judging:
                if exhausted and not made and not retry:
                    return
                if not restarting:  # sets wait, and every worker that could take them is gone for good
                    stage = "judge" if made else "generator"
                    raise RuntimeError(f"the Ray engine has no live {stage} workers left for the round's sets: each "
                                       f"died after runtime.ray.max_restarts ({self.config.runtime.ray.max_restarts})"
                                       " restarts; see the Ray logs (`ray logs`), or raise runtime.ray.max_restarts")
            [ready], _ = ray.wait([*making, *judging, *restarting], num_returns=1)
            if ready in restarting:
                actor, stage = restarting.pop(ready)
                try:
                    ray.get(ready)
                except RayActorError:  # out of restarts
                    if actor in finished:  # it made progress between its deaths: a fresh one takes its place
                        finished.discard(actor)
                        fresh = self._replace(actor, stage)
                        restarting[self._standing(fresh)] = (fresh, stage)
                    # else it died without finishing a set since it started (a crash loop): the pool goes on
                    # without it
                    continue
                (free_gen if stage == "generator" else free_judge).append(actor)
            elif ready in making:
                actor, planned, made_ref = making.pop(ready)
                try:
                    meta = ray.get(ready)
                except RayActorError:
                    self._lost(planned, attempts, "generator")
                    retry.append(planned)
                    restarting[self._standing(actor)] = (actor, "generator")
                    continue
                free_gen.append(actor)
                finished.add(actor)
                made.append((planned, made_ref, meta))
            else:
                actor, planned, made_ref, meta = judging.pop(ready)
                try:
                    judged, judge_meta = ray.get(ready)
                except RayActorError:
                    self._lost(planned, attempts, "judge")
                    made.appendleft((planned, made_ref, meta))
                    restarting[self._standing(actor)] = (actor, "judge")
                    continue
                free_judge.append(actor)
                finished.add(actor)
                judged.made_by = {k: v for k, v in meta.items() if k != "span"}
                judged.spans = {"generate": meta["span"], "judge": judge_meta["span"]}
                yield judged

    @staticmethod
    def _standing(actor) -> ray.ObjectRef:
        """Ready once the worker stands again (restarted, ``setup()`` done); fails if it is out of restarts.

        A call sent to a restarting actor fails at once ("the actor is restarting"): giving the worker a set
        before it stands would count one death once per set sent to it. This call is retried until then.
        """
        return actor.pid.options(max_task_retries=-1).remote()

    def _lost(self, planned: PlannedPrompt, attempts: dict[str, int], stage: str) -> None:
        self.given_again.append(planned.set_id)
        key = f"{stage}:{planned.set_id}"
        attempts[key] = attempts.get(key, 0) + 1
        if attempts[key] >= ATTEMPTS:
            raise RuntimeError(f"set {planned.set_id}: its {stage} worker died {ATTEMPTS} times; see the Ray logs "
                               "(`ray logs`), or raise runtime.ray.max_restarts")
