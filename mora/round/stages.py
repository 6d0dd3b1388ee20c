"""The heavy steps of a round as stages that run anywhere, in NeMo Curator's shape.

A stage loads its models once per worker in ``setup()`` and then turns inputs into outputs in
``process()``, writing nothing: the local engine calls it in a loop in this process, the Ray engine
holds the very same class in long-lived actors. The steps themselves stay in ``mora.round.steps``.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime

import torch

from mora.config import RoundConfig, RuntimeConfig
from mora.procedures.text_to_video import Candidate
from mora.round import steps
from mora.round.state import PlannedPrompt


@dataclass
class MadeSet:
    """One prompt's candidates and their encoded videos, on their way to the judges."""

    planned: PlannedPrompt
    candidates: list[Candidate]
    videos: list[bytes]


@dataclass
class JudgedSet:
    """A finished set: its rows in the shard schema, the decision, and who made it when."""

    planned: PlannedPrompt
    rows: list[dict]
    decision: str
    reason: str
    criterion: str
    made_by: dict = field(default_factory=dict)  # worker, node, host, pid of the generator
    spans: dict = field(default_factory=dict)  # stage -> (start, end) wall-clock seconds


def effective_threads(runtime: RuntimeConfig) -> int:
    """The torch threads a new round computes with: ``runtime.threads``, else this process's count (torch's
    default: the machine's cores, or OMP_NUM_THREADS). Ray workers get the same, not their ``cpus``: CPU
    float sums depend on the count, and every engine must make the same bytes."""
    return runtime.threads or torch.get_num_threads()


def worker_identity(node: str = "local") -> dict:
    return {"node": node, "host": socket.gethostname(), "pid": os.getpid()}


class Stage:
    """Resources are declared by the engine's config (runtime.ray.generators / judges), not here."""

    parts: frozenset[str] = frozenset()

    def __init__(self, config: RoundConfig):
        self.config = config
        self.agents: steps.RoundAgents | None = None

    def setup(self) -> None:
        """Load this stage's models once per worker (they stay resident for every later set)."""
        if self.config.runtime.threads:  # also when the models were cached already: bytes depend on it
            torch.set_num_threads(self.config.runtime.threads)
        self.agents = steps.RoundAgents.load(self.config, self.parts)


class Generate(Stage):
    """Enhanced prompt -> first frame -> candidate videos, encoded as they will be stored."""

    parts = frozenset({"generation"})

    def process(self, planned: PlannedPrompt) -> MadeSet:
        candidates = steps.make_candidates(self.config, self.agents, planned)
        return MadeSet(planned, candidates, steps.encode_candidates(self.config, candidates))


class Judge(Stage):
    """Gates and both judges on one made set, the decision, and the set's rows."""

    parts = frozenset({"judges"})

    def process(self, made: MadeSet, started_at: datetime) -> JudgedSet:
        rows, decision, criterion = steps.decide_set(self.config, self.agents, made.planned, made.candidates,
                                                     made.videos, started_at)
        return JudgedSet(made.planned, rows, decision.decision, decision.reason, criterion.key)


def timed(process, *args) -> tuple[object, tuple[float, float]]:
    start = time.time()
    out = process(*args)
    return out, (start, time.time())
