"""Prefect's temporary server goes with the process that started it, even one killed with SIGKILL (an
out-of-memory kill): every kill -9 of `mora round` left one running (~200 MB) before. A real `mora round`
process, its real temporary server, a real SIGKILL."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_cli import REPO

pytestmark = pytest.mark.slow


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie (a reparented child may wait to be reaped by whatever adopted it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_round_killed_with_sigkill_takes_its_temporary_prefect_server_with_it(tiny_config_file, tmp_path):
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "COLUMNS": "200"}
    proc = subprocess.Popen([sys.executable, "-m", "mora.cli", "round", "--config", str(tiny_config_file),
                             "--set", "prompts.count=12", "--set", "generation.num_frames=9"],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    staged = tmp_path / "data" / "_state" / "tiny" / "rounds"
    server = None
    try:
        deadline = time.monotonic() + 600
        while not list(staged.glob("*/sets/*.parquet")):  # mid-round: the server answers by now
            assert proc.poll() is None and time.monotonic() < deadline, "the round ended before a set was staged"
            time.sleep(0.2)
        servers = [pid for pid in children(proc.pid) if "uvicorn" in cmdline(pid)]
        assert len(servers) == 1, [cmdline(pid) for pid in children(proc.pid)]
        server = servers[0]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 60  # it stops within seconds; a loaded machine may take longer
        while running(server) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not running(server), f"the temporary server {server} outlived the round killed with SIGKILL"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if server is not None and running(server):
            os.kill(server, signal.SIGKILL)  # started (indirectly) by this test: do not leave it behind
