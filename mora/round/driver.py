"""The round's driver: claims sets, streams them through an engine, stages them and rolls shards.

The driver is the single writer of a round: engines and their workers return values, the driver
stages every finished set atomically, records who made it, releases its claim, and writes a
shard part as soon as all of that part's sets are staged. Parts hold a fixed range of prompt
indices, so whatever the order sets finish in, on whichever worker, the parts come out the same,
and no more than one part's rows are ever read into memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pyarrow as pa

from mora.atomic import remove_stale_temporaries
from mora.config import RoundConfig
from mora.datasets.shards import data_dir, iteration_dir, write_parquet
from mora.review.routing import RoutingPolicy, audit_draw
from mora.round.engines import open_engine
from mora.round.stages import JudgedSet, effective_threads
from mora.round.state import PlannedPrompt, RoundState
from mora.round.steps import round_seed

WAIT_S = 0.5  # how often a driver looks again at sets another driver holds


class RollingShards:
    """``part-ROUND-NNNNN.parquet``: part n holds the sets of prompts n*S .. n*S+S-1 (S sets per part)."""

    def __init__(self, config: RoundConfig, state: RoundState, prompts: list[PlannedPrompt]):
        s = config.shards
        self.state, self.prompts = state, prompts
        self.per_part = max(1, s.max_rows_per_shard // config.generation.candidates)
        self.folder = iteration_dir(s.root, s.dataset, config.iteration)
        self.round_id = config.round_id

    @property
    def parts(self) -> int:
        return max(1, -(-len(self.prompts) // self.per_part))

    def path(self, part: int) -> Path:
        return self.folder / f"part-{self.round_id}-{part:05d}.parquet"

    def write_ready(self, part: int) -> Path | None:
        """The part's file, written now if all its sets are staged and it is not there yet."""
        path = self.path(part)
        if path.exists():
            return path
        sets = self.prompts[part * self.per_part:(part + 1) * self.per_part]
        if not all(self.state.has_set(p.set_id) for p in sets):
            return None
        return write_parquet(pa.concat_tables([self.state.set_table(p.set_id) for p in sets]), path)

    def finish(self) -> list[Path]:
        return [self.write_ready(part) for part in range(self.parts)]


def route(config: RoundConfig, policy: RoutingPolicy, judged: JudgedSet) -> JudgedSet:
    """The judged set decided by the round's routing policy; its audit coin comes from its seed."""
    draw = audit_draw(round_seed(config, "audit", judged.planned.index))
    judged.rows = policy.route(judged.rows, config.iteration, draw)
    judged.decision, judged.reason = judged.rows[0]["decision"], judged.rows[0]["decision_reason"]
    return judged


def make_sets(config: RoundConfig, state: RoundState, prompts: list[PlannedPrompt], started_at: datetime,
              engine=None, on_set: Callable[[JudgedSet], None] | None = None,
              on_wait: Callable[[str], None] | None = None, policy: RoutingPolicy | None = None) -> list[Path]:
    """Every set of the round made exactly once (with other drivers of the round), then its shard paths.
    ``on_wait(line)`` hears once per other driver that this one waits for it, and for how long at most;
    ``policy`` routes each judged set before it is staged (None: the judges' decision as it is)."""
    shards = RollingShards(config, state, prompts)
    for folder in [state.sets_dir, *data_dir(config.shards.root, config.shards.dataset).glob("iteration=*")]:
        remove_stale_temporaries(folder)  # left by a writer killed mid-write
    claims = state.claims(config.runtime.lease_s)
    told: set[str] = set()  # drivers already named to on_wait

    def unmade() -> list[PlannedPrompt]:
        return [p for p in prompts if not state.has_set(p.set_id)]

    def claimed() -> Iterator[PlannedPrompt]:
        for planned in unmade():
            if claims.claim(planned.set_id):
                if state.has_set(planned.set_id):  # staged by another driver just before our claim
                    claims.release(planned.set_id)
                    continue
                yield planned
            elif on_wait is not None:
                held = claims.holder(planned.set_id)
                line = claims.blocker(planned.set_id)
                if held and line and held["owner"] not in told:
                    told.add(held["owner"])
                    on_wait(line)

    if unmade():
        engine = engine or open_engine(config)
        engine.threads = state.threads(effective_threads(config.runtime))  # the count the round started with
        with claims.renewing(), engine as running:
            while True:
                for judged in running.run(claimed(), started_at):
                    if policy is not None:
                        judged = route(config, policy, judged)
                    set_id = judged.planned.set_id
                    state.record_made(set_id, claims.owner, judged.made_by)
                    state.save_set(set_id, judged.rows)
                    claims.release(set_id)
                    shards.write_ready(judged.planned.index // shards.per_part)
                    if on_set is not None:
                        on_set(judged)
                if not unmade():
                    break
                time.sleep(WAIT_S)  # the rest are held by other drivers: wait for them, or for their leases
    return shards.finish()
