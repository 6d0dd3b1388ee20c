"""Stopping a command on SIGTERM within seconds, in one line, keeping what is staged.

Prefect turns SIGTERM inside a flow run into a crash of the run and then keeps trying to log to the
temporary server it has stopped, so ``mora round`` outlived a SIGTERM by minutes. Here a watcher
thread learns of the signal through the interpreter's wakeup fd, whatever Python handler Prefect has
put in place, gives Prefect a moment to record the crash, then stops its temporary server and exits.
Nothing staged is lost: sets and shards are written whole or not at all (``mora.atomic``).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable

GRACE_S = 2.0  # for Prefect to mark the run Crashed through its own handler
_wakeup: tuple[socket.socket, socket.socket] | None = None
STOP_S = 10.0  # longest wait for what a command asked to be stopped with it (a Ray instance it started)
_handler: Callable | None = None  # ours, while stop_on_sigterm is in force
_also_stop: list[Callable[[], None]] = []


def _stop_prefect_server() -> None:
    """Prefect's temporary API server is a child process: it goes with us, not after us."""
    try:
        from prefect.server.api.server import SubprocessASGIServer
    except ImportError:
        return
    for server in list(SubprocessASGIServer._instances.values()):
        proc = getattr(server, "server_process", None)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=3)
            except Exception:  # noqa: BLE001 - still there: no more waiting
                proc.kill()


def _stop_the_rest() -> None:
    """What ``also_stop`` named, each in a thread given ``STOP_S`` at most: a hung one delays no exit."""
    for fn in list(_also_stop):
        worker = threading.Thread(target=fn, daemon=True, name="mora-stop")
        worker.start()
        worker.join(STOP_S)


def also_stop(fn: Callable[[], None]) -> Callable[[], None]:
    """Have SIGTERM call ``fn`` before the process exits (a local Ray instance goes with its run; its agents
    would otherwise wait a minute and more for a driver that left by ``os._exit``). Returns the undo."""
    _also_stop.append(fn)
    return lambda: _also_stop.remove(fn) if fn in _also_stop else None


def stop_on_sigterm(message: Callable[[], str]) -> None:
    """From now on SIGTERM ends this process within ``GRACE_S`` plus a moment: ``message()`` as one line
    on stderr, Prefect's temporary server stopped, exit code 143 (128 + SIGTERM)."""
    once = threading.Lock()

    def stop() -> None:
        if not once.acquire(blocking=False):
            return
        try:
            _stop_prefect_server()  # first: its last words come before ours
            _stop_the_rest()
            if sys.stdout.isatty():
                sys.stdout.write("\x1b[?25h\n")  # a progress bar hid the cursor
                sys.stdout.flush()
            sys.stderr.write(message() + "\n")
            sys.stderr.flush()
        finally:
            os._exit(128 + signal.SIGTERM)

    def on_signal(signum, frame) -> None:
        stop()

    def watch(read: socket.socket) -> None:
        while int(signal.SIGTERM) not in read.recv(64):  # the signal numbers the interpreter received
            pass
        time.sleep(GRACE_S)  # Prefect's handler may get there first and call ``stop`` through ours
        stop()

    global _wakeup, _handler
    read, write = socket.socketpair()
    write.setblocking(False)
    # both ends live as long as the process: a collected socket closes its fd, and the interpreter would
    # then write signal numbers into a closed fd (or into whatever file reuses the number)
    _wakeup = (read, write)
    signal.set_wakeup_fd(write.fileno(), warn_on_full_buffer=False)
    signal.signal(signal.SIGTERM, on_signal)
    _handler = on_signal
    threading.Thread(target=watch, args=(read,), daemon=True, name="mora-sigterm").start()


def reclaim_sigterm() -> None:
    """Take SIGTERM back after a library put its own handlers in place (``ray.init`` does).

    Ray's driver installs a Python handler that raises SystemExit wherever the round happens to be,
    and abseil's failure handler, which prints Ray's stack and ends the process with SIGABRT (exit
    -6): neither says "stopped" nor exits 143. Only the main thread can set a handler; elsewhere
    the library's stay.
    """
    if _handler is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _handler)
