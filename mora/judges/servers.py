"""A judge's servers: requests spread over them, and a circuit breaker per server.

A hung or trickling server costs ``deadline_s`` on every request it is sent. After
``server.breaker.misses`` requests in a row that brought no answer in time (deadline missed,
connection failed, HTTP 5xx) it is marked down: its share goes to the other servers, and with
none left the judge abstains at once, naming it. Once ``server.breaker.cool_off_s`` has passed, a
one-token request probes it in the background (no set waits on the probe); answered in time, the
server takes requests again, else it stays down for another cool-off.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from mora.config import ServerBreaker

log = logging.getLogger(__name__)


class ServerDown(Exception):  # noqa: N818 - a state of the servers, turned into an abstention
    """Every server of the judge is marked down."""


@dataclass
class Health:
    misses: int = 0  # requests in a row without an answer in time
    down: bool = False
    probe_at: float = 0.0  # monotonic time after which a down server is probed
    probing: bool = False
    why: str = ""  # the last miss


def url_of(client: httpx.Client) -> str:
    return str(client.base_url).rstrip("/")


class ServerPool:
    """A judge's servers (one vLLM per GPU or node) with at most ``max_in_flight`` requests at once.

    Each request goes to the next server in turn that is up (a retry preferably to another one); the
    orders of a set are asked together, so every server's continuous batching has work queued.
    ``probe(client) -> bool`` tells whether a down server answers again.
    """

    def __init__(self, clients: list[httpx.Client], max_in_flight: int, breaker: ServerBreaker | None = None,
                 probe: Callable[[httpx.Client], bool] | None = None):
        self.clients, self.max_in_flight = clients, max_in_flight
        self.breaker, self.probe = breaker or ServerBreaker(), probe
        self.health = {url_of(c): Health() for c in clients}
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self.sent: Counter[str] = Counter()  # requests per server
        self.in_flight = self.peak = 0

    def up(self, client: httpx.Client) -> bool:
        return not self.health[url_of(client)].down

    def next(self, avoid: httpx.Client | None = None) -> httpx.Client:
        """The next server in turn that is up, another than ``avoid`` where one is; ServerDown if none is."""
        with self._lock:
            self._probe_due()
            up = [c for c in self.clients if not self.health[url_of(c)].down]
            if not up:
                raise ServerDown(self._down_reason())
            allowed = [c for c in up if c is not avoid] or up
            start = next(self._turn)
            client = next(c for k in range(len(self.clients))
                          if (c := self.clients[(start + k) % len(self.clients)]) in allowed)
            self.sent[str(client.base_url)] += 1
            return client

    def others_up(self, client: httpx.Client) -> bool:
        with self._lock:
            return any(c is not client and not self.health[url_of(c)].down for c in self.clients)

    def answered(self, client: httpx.Client) -> None:
        with self._lock:
            self.health[url_of(client)].misses = 0

    def missed(self, client: httpx.Client, why: str) -> None:
        """A request to ``client`` brought no answer in time; enough of them in a row mark it down."""
        with self._lock:
            health = self.health[url_of(client)]
            health.misses += 1
            health.why = why
            if not health.down and health.misses >= self.breaker.misses:
                self._mark_down(url_of(client), health)

    def mark_down(self, client: httpx.Client, why: str) -> None:
        with self._lock:
            health = self.health[url_of(client)]
            health.why = why
            self._mark_down(url_of(client), health)

    def _mark_down(self, url: str, health: Health) -> None:
        health.down, health.probe_at = True, time.monotonic() + self.breaker.cool_off_s
        log.warning("judge server %s marked down for %g s: %s", url, self.breaker.cool_off_s, health.why)

    def _down_reason(self) -> str:
        b = self.breaker
        down = ", ".join(f"{url} ({h.why})" for url, h in self.health.items())
        return (f"judge server{'s' if len(self.health) > 1 else ''} down: {down}; marked after "
                f"{b.misses} requests in a row without an answer in time (server.breaker.misses), probed again "
                f"every {b.cool_off_s:g} s (server.breaker.cool_off_s)")

    def _probe_due(self) -> None:
        """Start a background probe of every down server whose cool-off has passed (under the lock)."""
        if self.probe is None:
            return
        now = time.monotonic()
        for client in self.clients:
            health = self.health[url_of(client)]
            if health.down and not health.probing and now >= health.probe_at:
                health.probing = True
                threading.Thread(target=self._run_probe, args=(client, health), daemon=True,
                                 name="mora-judge-probe").start()

    def _run_probe(self, client: httpx.Client, health: Health) -> None:
        try:
            ok = self.probe(client)
        except Exception:  # noqa: BLE001 - a probe that fails in any way leaves the server down
            ok = False
        with self._lock:
            health.probing = False
            if ok:
                health.down, health.misses = False, 0
                log.warning("judge server %s answers again", url_of(client))
            else:
                health.probe_at = time.monotonic() + self.breaker.cool_off_s

    def map(self, fn: Callable, items: list) -> list:
        """``[fn(x) for x in items]``, at most ``max_in_flight`` running at once in this process."""
        if self.max_in_flight == 1 or len(items) == 1:
            return [fn(x) for x in items]
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.max_in_flight, thread_name_prefix="mora-judge-http")

        def counted(x):
            with self._lock:
                self.in_flight += 1
                self.peak = max(self.peak, self.in_flight)
            try:
                return fn(x)
            finally:
                with self._lock:
                    self.in_flight -= 1

        return list(self._executor.map(counted, items))
