"""Folders a command is about to write into, checked before any work: one line naming the option.

A read-only shard root, or an output path that is a file, otherwise fails minutes in, deep inside a
library (an OSError from a temporary file, a FileExistsError from a mkdir), with a traceback.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from mora.config import ConfigError


def writable_folder(path: Path, name: str) -> Path:
    """``path`` as a folder this process can write into, created if missing; ``name`` is what the user
    passed it as (``--out``, ``config field 'shards.root'``)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{name} '{path}' is a file; pass a folder (it is created if missing)")
    inside = next((p for p in path.parents if p.exists()), None)
    if inside is not None and not inside.is_dir():
        raise ConfigError(f"{name} '{path}' lies inside '{inside}', which is a file; pass a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".mora-write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"{name} '{path}' is not writable ({exc.strerror or type(exc).__name__}); pass a folder "
                          "you can write to, or fix its permissions") from None
    return path


def writable_file(path: Path, name: str) -> Path:
    """``path`` as a file this process can (over)write: not a folder, in a writable folder."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{name} '{path}' is a folder; pass a file name")
    writable_folder(path.parent, f"{name} folder")
    return path
