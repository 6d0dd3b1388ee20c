"""Bad input through the console script: exit code 2 and exactly one line on stderr, never a traceback.

Every case runs as its own `python -m mora.cli` process (the way a user meets it); the processes run
side by side once per module, and each test reads its own.
"""

import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from tests.conftest import write_tiny_config
from tests.test_cli import mora


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
                                  "misspelled-key", "height"])
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
    if case.startswith(("missing-model", "hub-id", "device")):
        assert "Prefect" not in out.stdout + out.stderr and "candidate sets" not in out.stdout  # before the run
