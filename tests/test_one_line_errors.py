"""Bad input through the console script: exit code 2 and exactly one line on stderr, never a traceback.

Every case runs as its own `python -m mora.cli` process (the way a user meets it); the processes run
side by side once per module, and each test reads its own.
"""

import os
import shutil
import struct
import subprocess
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from mora.datasets.shards import write_shards
from mora.media import encode_mp4
from tests.conftest import free_port, write_tiny_config
from tests.test_cli import REPO, mora
from tests.test_media_and_shards import _rows


def bomb_png(path: Path, side: int = 30000) -> Path:
    """A 70-byte PNG that declares side x side pixels (a decompression bomb for a naive reader)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 4))
                     + chunk(b"IEND", b""))
    return path


def _cases(tmp: Path, tiny_models: Path) -> dict[str, tuple[tuple[str, ...], dict, str]]:
    """case -> (arguments, environment, text the line must contain)."""
    cfg = str(write_tiny_config(tiny_models, tmp))
    bomb = bomb_png(tmp / "bomb.png")
    binary = tmp / "binary.yaml"
    binary.write_bytes(bytes(range(256)) * 4)
    a_file = tmp / "a-file"
    a_file.write_text("not a folder")
    typo = tmp / "typo.yaml"
    typo.write_text(Path(cfg).read_text().replace("\njudges:", "\njudgess:"))
    offline = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp / "hf-home")}
    out = str(tmp / "out.mp4")
    shards = tmp / "shards"
    write_shards(_rows(2), shards, "tiny", 1, "r", 256)  # a winner to export, pairs to write
    clip = tmp / "clip.mp4"
    clip.write_bytes(encode_mp4(np.zeros((9, 64, 64, 3), np.uint8), 8.0))
    return {
        "bomb-i2v": (("make", "i2v", "--image", str(bomb), "--out", out, "--config", cfg), {}, "decompression bomb"),
        "bomb-digital-world": (("make", "digital-world", "--image", str(bomb), "--out", out, "--config", cfg), {},
                               "decompression bomb"),
        "binary-config": (("round", "--config", str(binary)), {}, "is not UTF-8 text"),
        "folder-config": (("round", "--config", str(tmp)), {}, "is a folder"),
        "root-is-a-file": (("round", "--config", cfg, "--root", str(a_file)), {}, "shards.root': is a file"),
        "missing-model-folder": (("round", "--config", cfg, "--set", f"generation.image_to_video.id={tmp}/nope"), {},
                                 "generation.image_to_video.id': no model folder"),
        "hub-id-offline": (("round", "--config", cfg, "--set", "judges.1.model.id=no-org/not-cached"), offline,
                           "judges.1.model.id': 'no-org/not-cached' is neither a local folder nor in the"),
        "device": (("round", "--config", cfg, "--set", "runtime.device=cuda:0"), {}, "runtime.device"),
        "misspelled-key": (("round", "--config", str(typo)), {}, "unknown field 'judgess' (did you mean 'judges'?)"),
        "height": (("round", "--config", cfg, "--set", "generation.height=65"), {}, "(got 65)"),
        "root-inside-a-file": (("round", "--config", cfg, "--root", f"{a_file}/sub"), {},
                               f"lies inside '{a_file}', which is a file"),
        "review-up-root-inside-a-file": (("review", "up", "--root", f"{a_file}/sub"), {},
                                         f"lies inside '{a_file}', which is a file"),
        "export-out-is-a-file": (("dataset", "export", str(shards), "--out", str(a_file)), {},
                                 f"--out '{a_file}' is a file; pass a folder"),
        "pairs-out-is-a-folder": (("dataset", "pairs", str(shards), "--out", str(tmp)), {},
                                  f"--out '{tmp}' is a folder; pass a file name"),
        "image-guidance-inf": (("round", "--config", cfg, "--set", "generation.image_guidance=.inf"), {},
                               "generation.image_guidance': Input should be a finite number"),
        "blank-seed": (("round", "--config", cfg, "--set", "prompts.seeds=['a fox', ' ']"), {},
                       "seed prompt 1 is empty"),
        "duration-huge": (("make", "t2v", "--prompt", "a fox", "--duration", "1e9", "--out", out, "--config", cfg), {},
                          "chained segments at this preset, more than the 64 one video chains"),
        "duration-negative": (("make", "t2v", "--prompt", "a fox", "--duration", "-5", "--out", out, "--config", cfg),
                              {}, "--duration -5 is not a length"),
        "duration-inf": (("make", "t2v", "--prompt", "a fox", "--duration", "inf", "--out", out, "--config", cfg), {},
                         "--duration inf is not a length"),
        "empty-prompt": (("make", "t2v", "--prompt", " ", "--out", out, "--config", cfg), {}, "the prompt is empty"),
        "segments-huge": (("make", "extend", "--video", str(clip), "--segments", "1000000", "--out", out, "--config",
                           cfg), {}, "--segments 1000000 is more than the 64 one call chains"),
        "segments-zero": (("make", "extend", "--video", str(clip), "--segments", "0", "--out", out, "--config", cfg),
                          {}, "--segments 0: pass 1 or more"),
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_models):
    tmp = tmp_path_factory.mktemp("bad-input")
    cases = _cases(tmp, tiny_models)
    with ThreadPoolExecutor(4) as pool:
        futures = {name: pool.submit(mora, *args, env=env) for name, (args, env, _) in cases.items()}
    return {name: (future.result(), cases[name][2]) for name, future in futures.items()}


@pytest.mark.parametrize("case", ["bomb-i2v", "bomb-digital-world", "binary-config", "folder-config",
                                  "root-is-a-file", "missing-model-folder", "hub-id-offline", "device",
                                  "misspelled-key", "height", "root-inside-a-file", "review-up-root-inside-a-file",
                                  "export-out-is-a-file", "pairs-out-is-a-folder", "image-guidance-inf", "blank-seed",
                                  "duration-huge", "duration-negative", "duration-inf", "empty-prompt",
                                  "segments-huge", "segments-zero"])
def test_bad_input_is_one_line_on_stderr_and_exit_code_2(runs, case):
    if case == "device" and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    out, expected = runs[case]
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2, out.stderr[-3000:]
    assert len(lines) == 1, out.stderr[-3000:]
    assert expected in lines[0] and "Traceback" not in out.stdout + out.stderr
    if case == "height":
        assert lines[0].count("(got 65)") == 1
    if case.startswith(("missing-model", "hub-id", "device", "duration", "segments", "empty-prompt")):
        assert "Prefect" not in out.stdout + out.stderr and "candidate sets" not in out.stdout  # before the run


def read_only(root: Path, args: tuple[str, ...]) -> list[str] | None:
    """``mora ARGS`` with ``root`` read-only: a read-only bind mount in a mount namespace of its own when
    this runs as root (for whom modes do not forbid writing), else the folder's modes; None when neither
    can make it read-only here."""
    command = [sys.executable, "-m", "mora.cli", *args]
    if os.geteuid() != 0:
        for path in [root, *root.rglob("*")]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        return command
    if not shutil.which("unshare") or subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode:
        return None
    mount = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" "$1" && shift && exec "$@"'
    return ["unshare", "-m", "sh", "-c", mount, "sh", str(root), *command]


@pytest.mark.parametrize("args", [("round",), ("round", "--iteration", "2"), ("dataset", "publish"),
                                  ("review", "up")], ids=["round", "round-iteration-2", "publish", "review-up"])
def test_a_read_only_root_is_one_line_before_any_work(tmp_path, tiny_models, args):
    cfg = str(write_tiny_config(tiny_models, tmp_path))
    root = tmp_path / "frozen"
    write_shards([], root, "tiny", 1, "r", 256)  # a dataset with one (empty) shard to publish
    where = {"round": ("--config", cfg, "--root", str(root)), "dataset": (str(root),),
             "review": ("--root", str(root), "--port", str(free_port()))}[args[0]]
    command = read_only(root, (*args, *where))
    if command is None:
        pytest.skip("no way to make a folder read-only for root here (no unshare -m)")
    out = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "COLUMNS": "200"})
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2, out.stderr[-3000:]
    assert len(lines) == 1 and "is not writable" in lines[0] and str(root) in lines[0], out.stderr[-3000:]
    assert "Traceback" not in out.stdout + out.stderr and "Prefect" not in out.stdout + out.stderr
    assert "starting Label Studio" not in out.stdout  # before any work
