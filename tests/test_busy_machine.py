"""torch's OpenMP threads must sleep, not spin, between parallel regions: a round shares its machine
(mora/__init__.py; bench/busy_machine.py measures what spinning costs)."""

from __future__ import annotations

import os
import re
import subprocess
import sys


def _spin_count(code: str, **env: str) -> int:
    """GOMP_SPINCOUNT as the OpenMP runtime that ``code`` loads reports it (0: threads sleep when idle)."""
    clean = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}  # this process has mora's already
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env, "OMP_DISPLAY_ENV": "VERBOSE"},
                         capture_output=True, text=True, timeout=300, check=True)
    return int(re.search(r"GOMP_SPINCOUNT = '(\d+)'", out.stderr).group(1))


def test_importing_mora_before_torch_makes_its_threads_sleep_and_a_users_setting_wins():
    assert _spin_count("import torch") > 0  # OpenMP's default: spin after every parallel region
    assert _spin_count("import mora, torch") == 0
    assert _spin_count("import mora, torch", OMP_WAIT_POLICY="ACTIVE") > 0

