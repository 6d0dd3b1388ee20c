"""Where a round's stages run: ``local`` (this process, one set after another) or ``ray`` (actors).

An engine takes the sets the driver has claimed, lazily, and yields them judged, in the order they
finish. It writes nothing: the driver alone stages sets and writes shards.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime

import torch

from mora.config import RoundConfig
from mora.round.stages import Generate, Judge, JudgedSet, effective_threads, timed, worker_identity
from mora.round.state import PlannedPrompt


class LocalEngine:
    """Today's round: both stages in this process, models loaded once (the worker's model cache)."""

    name = "local"

    def __init__(self, config: RoundConfig):
        self.config = config
        self.threads: int | None = None  # the round's torch threads (the driver sets them); None: this process's
        self.generate, self.judge = Generate(config), Judge(config)

    def __enter__(self) -> LocalEngine:
        torch.set_num_threads(self.threads or effective_threads(self.config.runtime))
        self.generate.setup()
        self.judge.setup()
        return self

    def __exit__(self, *exc) -> None:
        return None

    def run(self, items: Iterable[PlannedPrompt], started_at: datetime) -> Iterator[JudgedSet]:
        for planned in items:
            made, made_span = timed(self.generate.process, planned)
            judged, judged_span = timed(self.judge.process, made, started_at)
            judged.made_by = {"worker": "local", **worker_identity()}
            judged.spans = {"generate": made_span, "judge": judged_span}
            yield judged


def open_engine(config: RoundConfig):
    """The engine ``runtime.engine`` names, not yet started (use it as a context manager)."""
    if config.runtime.engine == "ray":
        from mora.round.ray_engine import RayEngine  # Ray is imported only by rounds that use it

        return RayEngine(config)
    return LocalEngine(config)
