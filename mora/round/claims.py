"""Claims on a round's sets, so that concurrent drivers make every set exactly once.

A driver claims a set before it is generated: ``ROUND/claims/SET.json`` names the driver and the
time its lease runs out. Claims are taken and renewed under an exclusive ``flock`` of the round's
claims folder, so two flow runs (or two machines sharing the folder over a filesystem with working
locks) never both hold one set. A claim is free again when its lease ran out, or at once when the
process that holds it on this host is gone (a killed flow run resumed on the same machine). The
driver renews its leases while it works and releases each set once it is staged.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from mora.atomic import write_json_atomic


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Claims:
    def __init__(self, folder: Path, lease_s: float, owner: str | None = None):
        self.dir = Path(folder)
        self.lease_s = lease_s
        self.owner = owner or uuid.uuid4().hex[:12]
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
        if claim["expires"] < time.time():
            return True
        return claim["host"] == self.host and claim["pid"] != self.pid and not _alive(claim["pid"])

    def _write(self, set_id: str) -> None:
        write_json_atomic(self._path(set_id), {"owner": self.owner, "host": self.host, "pid": self.pid,
                                               "expires": time.time() + self.lease_s})

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
