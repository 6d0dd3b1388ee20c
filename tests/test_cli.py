"""The console script, run as a user runs it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def mora(*args, cwd=REPO, env=None):
    return subprocess.run([sys.executable, "-m", "mora.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200", **(env or {})}, timeout=600)


def test_invalid_override_is_one_line_naming_the_field():
    out = mora("round", "--set", "generation.num_frames=0")
    assert out.returncode == 2
    lines = [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "generation.num_frames" in lines[0] and "Traceback" not in out.stderr


def test_missing_root_for_inspect_is_a_clear_error(tmp_path):
    out = mora("dataset", "inspect", str(tmp_path / "nothing"))
    assert out.returncode == 2 and "does not exist" in out.stderr


@pytest.mark.slow
def test_round_then_inspect(tiny_config_file, tmp_path):
    out = mora("round", "--config", str(tiny_config_file), "--set", "prompts.count=2",
               "--set", "generation.num_frames=9", env={"PREFECT_HOME": str(tmp_path / "prefect"), "COLUMNS": "80"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "candidate sets" in out.stdout and "shard:" in out.stdout and "2/2" in out.stdout
    if "await human review" in out.stdout:  # the next steps: whole lines a user can paste, on 80 columns
        lines = out.stdout.splitlines()
        push = next(line.split() for line in lines if " review push " in line)
        assert push[1:] == ["review", "push", "--root", str(tmp_path / "data"), "--dataset", "tiny"]
        assert (REPO / push[0]).is_file() or push[0] == "mora"  # .venv/bin/mora: mora is not on PATH
        assert any(line.strip().startswith("make review-env") for line in lines)
        assert not any(line.lstrip().startswith(("--dataset", "127.0.0.1")) for line in lines)
    out = mora("dataset", "inspect", str(tmp_path / "data"))
    assert out.returncode == 0
    assert "tiny" in out.stdout and ("needs_review" in out.stdout or "accepted" in out.stdout)
    assert "sets pending human review" in out.stdout or "complete, nothing pending review" in out.stdout


def test_review_commands_without_a_server_say_how_to_get_one(tmp_path):
    out = mora("review", "push", "--root", str(tmp_path), env={"MORA_LABEL_STUDIO_URL": ""})
    assert out.returncode == 2 and "mora review up" in out.stderr and "Traceback" not in out.stderr
    out = mora("review", "collect", "--root", str(tmp_path), "--url", "http://127.0.0.1:9",
               env={"MORA_LABEL_STUDIO_TOKEN": "", "MORA_LABEL_STUDIO_TOKEN_BLOCK": ""})
    assert out.returncode == 2 and "MORA_LABEL_STUDIO_TOKEN" in out.stderr
    out = mora("review", "down", "--root", str(tmp_path), "--port", "8091")  # the options `up` takes
    assert out.returncode == 0 and "no local Label Studio" in out.stdout
    out = mora("review", "add-reviewer", "not-an-email", "--root", str(tmp_path), "--url", "http://127.0.0.1:9",
               env={"MORA_LABEL_STUDIO_TOKEN": "t0ken-x"})
    assert out.returncode == 2 and "not an email address" in out.stderr and "t0ken-x" not in out.stdout + out.stderr


def test_flow_runs_from_a_terminal_skip_heartbeats_on_the_temporary_server_only():
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from mora.cli_env import flow_settings

    default = PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value()
    assert default  # Prefect's own, on
    with temporary_settings(updates={PREFECT_API_URL: None}):
        with flow_settings():
            assert PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value() is None  # nothing reads them there
        assert PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value() == default
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:4200/api"}), flow_settings():
        assert PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value() == default  # a lasting server marks dead runs crashed
