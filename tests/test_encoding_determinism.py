"""The same frames always encode to the same bytes, however fast they reach the encoder.

Two identical default rounds differed in the first few frames of 2 of 64 videos. The frames were the
same (regenerated, they encoded to one round's bytes); the encoder's output was not: fed at another
pace (a busy CPU), x264 wrote the first frames differently. Here the clip of one of those videos, made
again by the tiny models, is encoded many times at varying paces while another process keeps a CPU busy.
"""

import hashlib
import subprocess
import sys
import time

import pytest

from mora import media
from mora.config import load_config
from mora.procedures.text_to_video import text_to_video
from mora.round.steps import RoundAgents
from mora.seeds import derive_seed
from tests.conftest import write_tiny_config

pytestmark = pytest.mark.slow
BURN = "import time\nend = time.monotonic() + 120\nwhile time.monotonic() < end:\n    pass"
# set p00007 of the default round (seed 0) whose candidate 0 differed between two rounds
PROMPT = ("lugl retrieverrman\ufffd\ufffd\ufffdberwar?aticevers\ufffd\ufffdemingetail\ufffd\ufffd detail sailing thy "
          "aticN\ufffdobject'flowAns")


def test_the_same_frames_encode_to_the_same_bytes_at_any_pace(tiny_models, tmp_path, monkeypatch):
    cfg = load_config(write_tiny_config(tiny_models, tmp_path))
    agents = RoundAgents.load(cfg)
    seeds = [derive_seed(0, "candidate", 7, j) for j in range(4)]
    frames = text_to_video(agents.text_to_image, agents.image_to_video, PROMPT, seeds, cfg.generation)[0].frames
    pace = {"pause": 0.0, "count": 0}
    make = media.av.VideoFrame.from_ndarray

    def slow(frame, format):  # the feeder stalls every third frame, as under CPU load
        pace["count"] += 1
        if pace["count"] % 3 == 0:
            time.sleep(pace["pause"])
        return make(frame, format=format)

    monkeypatch.setattr(media.av.VideoFrame, "from_ndarray", staticmethod(slow))
    burner = subprocess.Popen([sys.executable, "-c", BURN])
    try:
        digests = set()
        for pause in [0.0, 0.02, 0.05, 0.0, 0.01, 0.1, 0.0, 0.03] * 4:
            pace["pause"] = pause
            digests.add(hashlib.sha256(media.encode_mp4(frames, cfg.generation.fps)).hexdigest())
    finally:
        burner.kill()
        burner.wait()
    assert len(digests) == 1, f"{len(digests)} different encodings of the same frames"
