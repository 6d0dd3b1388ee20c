"""A round on a Ray instance it would start itself, asking for what this machine lacks: one line, at once."""

from __future__ import annotations

import time

import pytest

from tests.test_cli import mora

pytestmark = pytest.mark.slow


def test_gpu_workers_on_a_cpu_machine_stop_the_round_in_one_line(tiny_config_file, tmp_path):
    start = time.monotonic()
    out = mora("round", "--config", str(tiny_config_file), "--root", str(tmp_path / "data"),
               "--set", "runtime.engine=ray", "--set", "runtime.ray.generators.gpus=1",
               "--set", "prompts.count=2", "--set", "runtime.ray.placement_timeout_s=86400")
    seconds = time.monotonic() - start
    lines = [line for line in out.stderr.splitlines() if line.strip() and "WARNING" not in line]
    assert out.returncode == 2, out.stderr[-2000:]
    assert len(lines) == 1 and "Traceback" not in out.stderr
    assert lines[0].startswith("error: config field 'runtime.ray': runtime.ray.generators asks for CPU 1, GPU 1 per "
                               "worker, but no node of the Ray cluster has that (nodes offer: CPU ")
    assert "GPU 0" in lines[0]
    said = out.stdout + out.stderr
    assert "temporary server" not in said and "Ray instance" not in said  # checked before Prefect or Ray start,
    assert seconds < 3600  # and not after runtime.ray.placement_timeout_s (a day here): no clock race on a busy machine
