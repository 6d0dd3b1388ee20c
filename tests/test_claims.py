"""Claims and leases on a round's sets, and a driver killed with SIGKILL that a rerun resumes."""

from __future__ import annotations

import json
import os
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
    a, b = Claims(tmp_path, lease_s=0.6), Claims(tmp_path, lease_s=0.6)
    assert a.claim("p00000")
    time.sleep(0.4)
    a.renew()
    time.sleep(0.4)
    assert not b.claim("p00000")  # renewed 0.4 s ago: still held
    time.sleep(0.7)
    assert b.claim("p00000")  # nobody renewed it: free again


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
