"""Claims and leases on a round's sets, and a driver killed with SIGKILL that a rerun resumes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from mora.config import load_config
from mora.round import driver, steps
from mora.round.claims import Claims
from mora.round.state import RoundState


def test_a_claimed_set_is_held_by_one_driver_until_released(tmp_path):
    a, b = Claims(tmp_path, lease_s=60), Claims(tmp_path, lease_s=60)
    assert a.claim("p00000") and not b.claim("p00000") and b.claim("p00001")
    assert a.claim("p00000")  # already ours
    assert b.holder("p00000")["owner"] == a.owner
    a.release("p00000")
    assert b.claim("p00000") and b.held == {"p00000", "p00001"}


def test_a_lease_runs_out_unless_renewed(tmp_path):
    now = [1_000_000.0]  # the clock the leases read, moved by hand: no test of a busy machine's sleeps
    a, b = (Claims(tmp_path, lease_s=60, clock=lambda: now[0]) for _ in range(2))
    assert a.claim("p00000")
    now[0] += 40
    a.renew()
    now[0] += 40
    assert not b.claim("p00000")  # renewed 40 s ago: still held
    now[0] += 21
    assert b.claim("p00000")  # nobody renewed it: free again


def test_a_claim_from_another_host_is_named_with_its_time_left_and_released_on_request(tmp_path):
    now = [1_000_000.0]
    mine = Claims(tmp_path, lease_s=900, clock=lambda: now[0])
    other = {"owner": "deadbeef0000", "host": "node-7", "pid": 4242, "expires": now[0] + 812}
    (tmp_path / "p00000.json").write_text(json.dumps(other))
    live = {"owner": "alive0000000", "host": mine.host, "pid": os.getppid(), "expires": now[0] + 900}
    (tmp_path / "p00001.json").write_text(json.dumps(live))  # a driver running on this host
    assert not mine.claim("p00000") and not mine.claim("p00001")
    line = mine.blocker("p00000")
    assert "driver deadbeef0000 (pid 4242 on host node-7)" in line and "runs out in 812 s" in line
    assert "--release-claims" in line and "\n" not in line
    assert "this host" in mine.blocker("p00001") and "--release-claims" not in mine.blocker("p00001")
    assert mine.blocker("p00002") is None
    released = mine.release_stale()
    assert released == ["released the claim on p00000 of driver deadbeef0000 (pid 4242 on host node-7); its lease "
                        "runs out in 812 s"]
    assert mine.claim("p00000") and not mine.claim("p00001")  # a live driver here keeps its sets


def test_a_claim_of_a_dead_process_on_this_host_is_free_at_once(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    a = Claims(tmp_path, lease_s=3600)
    assert a.claim("p00000")
    held = json.loads((tmp_path / "p00000.json").read_text()) | {"pid": int(gone.stdout)}
    (tmp_path / "p00000.json").write_text(json.dumps(held))
    assert Claims(tmp_path, lease_s=3600).claim("p00000")


KILLED_DRIVER = """
import json, sys
from datetime import datetime
from mora.config import load_config
from mora.round import driver
from mora.round.state import RoundState
config = load_config(sys.argv[1], json.loads(sys.argv[2]))
state = RoundState(config)
driver.make_sets(config, state, state.load_prompts(), datetime.fromisoformat(sys.argv[3]))
"""


@pytest.mark.slow
def test_a_driver_killed_mid_round_is_resumed_without_making_its_sets_again(tiny_config_file):
    overrides = {"prompts.count": "4", "generation.num_frames": "9"}
    config = load_config(tiny_config_file, overrides)
    state = RoundState(config)
    planned = steps.plan_prompts(config, steps.RoundAgents.load(config, {"prompt"}).prompt)
    state.save_prompts(planned)
    started = datetime.now(UTC)
    proc = subprocess.Popen([sys.executable, "-c", KILLED_DRIVER, str(tiny_config_file), json.dumps(overrides),
                             started.isoformat()], cwd=Path(__file__).parents[1])
    while state.done_count() == 0 and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {m["set_id"]: m for m in state.made()}
    assert 1 <= len(before) < 4, "the driver was to be killed mid-round"
    staged = {s: state.set_table(s).column("created_at").to_pylist() for s in before}

    paths = driver.make_sets(config, state, planned, started)  # its claims died with it: no lease to wait out
    made = state.made()
    assert sorted(m["set_id"] for m in made) == [p.set_id for p in planned]  # each set made once
    assert {s: state.set_table(s).column("created_at").to_pylist() for s in before} == staged
    df = pd.read_parquet(paths[0])
    assert len(df) == 16 and df.set_id.nunique() == 4


@pytest.mark.slow
def test_a_rerun_says_it_waits_for_a_claim_from_another_host_and_release_claims_frees_it(tiny_config_file,
                                                                                         tmp_path):
    """A driver on node-7 claimed p00000 and died there: the run names it with the time left at once; a
    second run with --release-claims frees it and makes the set; both end, each set made once."""
    overrides = {"prompts.count": "2", "generation.num_frames": "9"}
    config = load_config(tiny_config_file, overrides)
    state = RoundState(config)
    (state.dir / "claims").mkdir(parents=True)
    dead = {"owner": "deadbeef0000", "host": "node-7", "pid": 4242, "expires": time.time() + 900}
    (state.dir / "claims" / "p00000.json").write_text(json.dumps(dead))
    args = [sys.executable, "-m", "mora.cli", "round", "--config", str(tiny_config_file),
            "--set", "prompts.count=2", "--set", "generation.num_frames=9"]
    log = tmp_path / "first.log"
    with open(log, "w") as out:
        first = subprocess.Popen(args, cwd=Path(__file__).parents[1], stdout=out, stderr=subprocess.STDOUT,
                                 env={**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-1"), "COLUMNS": "300"})
    try:
        deadline = time.monotonic() + 600
        while "claimed by driver deadbeef0000" not in log.read_text():
            assert first.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        (line,) = [x for x in log.read_text().splitlines() if "claimed by driver deadbeef0000" in x]
        assert "host node-7" in line and "--release-claims" in line
        assert 0 < int(re.search(r"runs out in (\d+) s", line).group(1)) <= 900
        second = subprocess.run([*args, "--release-claims"], cwd=Path(__file__).parents[1], capture_output=True,
                                text=True, timeout=600,
                                env={**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-2"), "COLUMNS": "300"})
        assert second.returncode == 0, second.stderr[-3000:]
        assert "released the claim on p00000 of driver deadbeef0000 (pid 4242 on host node-7)" in second.stdout
        assert first.wait(timeout=600) == 0, log.read_text()[-3000:]
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert sorted(m["set_id"] for m in state.made()) == ["p00000", "p00001"]  # each made once, by either run
    df = pd.read_parquet(tmp_path / "data" / "tiny" / "data")
    assert len(df) == 8 and df.set_id.nunique() == 2
