"""Claims on a round's sets, so that concurrent drivers make every set exactly once.

A driver claims a set before it is generated: ``ROUND/claims/SET.json`` names the driver and the
time its lease runs out. Claims are taken and renewed under an exclusive ``flock`` of the round's
claims folder, so two flow runs (or two machines sharing the folder over a filesystem with working
locks) never both hold one set. A claim is free again when its lease ran out, or at once when the
process that holds it on this host is gone (a killed flow run resumed on the same machine). The
driver renews its leases while it works and releases each set once it is staged.

A claim from another host cannot be checked for life: a driver that died there holds its sets until
its lease runs out. ``blocker`` says so in one line with the time left, and ``release_stale`` (``mora
round --release-claims``) frees such claims at once when the person who runs the round knows that
driver is dead; claims of a driver alive on this host are never released.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from mora.atomic import alive, write_json_atomic


class Claims:
    def __init__(self, folder: Path, lease_s: float, owner: str | None = None,
                 clock: Callable[[], float] = time.time):
        self.dir = Path(folder)
        self.lease_s = lease_s
        self.owner = owner or uuid.uuid4().hex[:12]
        self.clock = clock  # wall-clock seconds: leases are compared across processes and hosts
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.held: set[str] = set()
        self._held_lock = threading.Lock()

    @contextmanager
    def _locked(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _path(self, set_id: str) -> Path:
        return self.dir / f"{set_id}.json"

    def _stale(self, claim: dict) -> bool:
        if claim["expires"] < self.clock():
            return True
        return claim["host"] == self.host and claim["pid"] != self.pid and not alive(claim["pid"])

    def _write(self, set_id: str) -> None:
        write_json_atomic(self._path(set_id), {"owner": self.owner, "host": self.host, "pid": self.pid,
                                               "expires": self.clock() + self.lease_s})

    def claim(self, set_id: str) -> bool:
        """True when this driver now holds the set (it was free, stale, or already ours)."""
        with self._locked():
            path = self._path(set_id)
            if path.exists():
                held = json.loads(path.read_text())
                if held["owner"] != self.owner and not self._stale(held):
                    return False
            self._write(set_id)
        with self._held_lock:
            self.held.add(set_id)
        return True

    def holder(self, set_id: str) -> dict | None:
        """The live claim on a set, or None when nobody holds it now."""
        path = self._path(set_id)
        if not path.exists():
            return None
        held = json.loads(path.read_text())
        return None if self._stale(held) else held

    def describe(self, claim: dict) -> str:
        """Who holds a claim and for how long, in words."""
        where = "this host" if claim["host"] == self.host else f"host {claim['host']}"
        return (f"driver {claim['owner']} (pid {claim['pid']} on {where}); its lease runs out in "
                f"{max(0, round(claim['expires'] - self.clock()))} s")

    def blocker(self, set_id: str) -> str | None:
        """One line for a set another driver holds, or None when it can be had: a live driver on this
        host is making it; one on another host may be dead, which only a person can tell."""
        held = self.holder(set_id)
        if held is None or held["owner"] == self.owner:
            return None
        if held["host"] == self.host:
            return f"set {set_id} is being made by {self.describe(held)}; waiting for it"
        return (f"set {set_id} is claimed by {self.describe(held)}; waiting for it, or, if that driver is dead, "
                "stop this run and run it again with --release-claims")

    def release_stale(self) -> list[str]:
        """Every claim not held by a live driver on this host, removed now; one line per claim."""
        released = []
        with self._locked():
            for path in sorted(self.dir.glob("*.json")):
                held = json.loads(path.read_text())
                if held["host"] == self.host and held["pid"] != self.pid and alive(held["pid"]):
                    continue
                path.unlink()
                released.append(f"released the claim on {path.stem} of {self.describe(held)}")
        return released

    def renew(self) -> None:
        with self._held_lock:
            held = sorted(self.held)
        if held:
            with self._locked():
                for set_id in held:
                    self._write(set_id)

    def release(self, set_id: str) -> None:
        with self._locked():
            path = self._path(set_id)
            if path.exists() and json.loads(path.read_text())["owner"] == self.owner:
                path.unlink()
        with self._held_lock:
            self.held.discard(set_id)

    def release_all(self) -> None:
        with self._held_lock:
            held = sorted(self.held)
        for set_id in held:
            self.release(set_id)

    @contextmanager
    def renewing(self):
        """Renew this driver's leases every third of a lease while the block runs; release them after."""
        stop = threading.Event()

        def beat():
            while not stop.wait(self.lease_s / 3):
                self.renew()

        thread = threading.Thread(target=beat, name="mora-claims", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()
            self.release_all()
