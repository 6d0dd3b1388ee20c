"""Prefect's temporary API server lives only as long as the process that started it.

A flow run without ``PREFECT_API_URL`` starts a temporary server as a child process (uvicorn, ~200 MB)
and stops it at exit; a ``kill -9`` (an out-of-memory kill) of the parent skips that, and the server
ran on for good: one orphan per killed round. Here the server watches its parent: it is started with
this module's app factory, which waits in a thread for the parent's exit (a pidfd on Linux, which
becomes readable when the process is gone, however it died) and then stops the server. The parent
thread that started it does not matter (Prefect starts it from whichever thread first needs an API
client), which rules out a parent-death signal (``prctl(PR_SET_PDEATHSIG)`` follows the thread).
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import threading
import time

PARENT = "MORA_PREFECT_PARENT"  # the pid the server process watches
PREFECT_FACTORY = "prefect.server.api.server:create_app"
FACTORY = "mora.lifeline:create_app"
GRACE_S = 10.0  # for uvicorn's own shutdown after SIGTERM, before a hard exit


class _TiedSubprocess:
    """``subprocess`` as ``prefect.server.api.server`` sees it: the temporary server starts with this
    module's factory and the pid to watch; everything else is the standard module."""

    def __getattr__(self, name: str):
        return getattr(subprocess, name)

    @staticmethod
    def Popen(args, **kwargs):  # noqa: N802 - subprocess's name
        if PREFECT_FACTORY in args:
            args = [FACTORY if a == PREFECT_FACTORY else a for a in args]
            kwargs["env"] = {**(kwargs.get("env") or os.environ), PARENT: str(os.getpid())}
        return subprocess.Popen(args, **kwargs)


def tie_temporary_server() -> None:
    """From now on, a temporary server this process starts stops when this process ends, however."""
    from prefect.server.api import server

    if not isinstance(server.subprocess, _TiedSubprocess):
        server.subprocess = _TiedSubprocess()


def _stop() -> None:
    os.kill(os.getpid(), signal.SIGTERM)  # uvicorn shuts down as it does for `kill`
    time.sleep(GRACE_S)
    os._exit(0)


def _watch(parent: int) -> None:
    try:
        fd = os.pidfd_open(parent)
    except (AttributeError, OSError):  # not Linux >= 5.3, or the parent is gone already
        fd = None
    if os.getppid() != parent:  # it died before the pidfd was open (or we were handed on): stop now
        _stop()
    if fd is not None:
        select.select([fd], [], [])
    else:
        while os.getppid() == parent:
            time.sleep(1.0)
    _stop()


def create_app():
    """uvicorn's factory in the server process: Prefect's app, and a watch on the parent."""
    from prefect.server.api.server import create_app as prefect_app

    parent = int(os.environ.get(PARENT, "0"))
    if parent:
        threading.Thread(target=_watch, args=(parent,), daemon=True, name="mora-lifeline").start()
    return prefect_app()
