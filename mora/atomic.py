"""Every file mora writes appears whole or not at all: written under a hidden name, then renamed.

A writer killed mid-write (``kill -9``, an out-of-memory kill) leaves its hidden temporary behind. Its
name carries the host and process that wrote it, so the next write into the same folder, and the start
of a round, remove the temporaries of writers on this host that are gone; a temporary of a live writer
(two drivers of one round write the same shard parts) or of another host is left alone.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path

HOST = socket.gethostname()
TEMPORARY = re.compile(r"^\..+\.(?P<host>.+)-(?P<pid>\d+)-[0-9a-f]{32}\.tmp$")
LEGACY = re.compile(r"^\..+\.[0-9a-f]{32}\.tmp$")  # before the writer was named: stale once an hour old
LEGACY_AGE_S = 3600.0


def alive(pid: int) -> bool:
    """Whether a process of this host still runs (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale(path: Path, now: float | None = None) -> bool:
    """A temporary left by a writer that is gone: one of this host whose process ended, or an unnamed
    one (written before temporaries named their writer) older than ``LEGACY_AGE_S``."""
    named = TEMPORARY.match(path.name)
    if named:
        return named["host"] == HOST and not alive(int(named["pid"]))
    if LEGACY.match(path.name):
        try:
            return (now or time.time()) - path.stat().st_mtime > LEGACY_AGE_S
        except FileNotFoundError:
            return False
    return False


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """The temporaries in ``folder`` whose writers are gone, removed; returns what was removed."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        if entry.name.endswith(".tmp") and entry.is_file(follow_symlinks=False) and stale(Path(entry.path)):
            Path(entry.path).unlink(missing_ok=True)
            removed.append(Path(entry.path))
    return removed


def write_atomic(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` for a hidden temporary beside ``path``, flush it to disk, rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{HOST}-{os.getpid()}-{uuid.uuid4().hex}.tmp"
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json_atomic(path: Path, data) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(json.dumps(data, indent=1, default=str)))
