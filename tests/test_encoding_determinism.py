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

import numpy as np
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


@pytest.fixture(scope="module")
def clip(tiny_models, tmp_path_factory):
    """(frames, fps) of that candidate, made again by the tiny models."""
    cfg = load_config(write_tiny_config(tiny_models, tmp_path_factory.mktemp("encoding")))
    agents = RoundAgents.load(cfg)
    seeds = [derive_seed(0, "candidate", 7, j) for j in range(4)]
    return text_to_video(agents.text_to_image, agents.image_to_video, PROMPT, seeds, cfg.generation)[0].frames, \
        cfg.generation.fps


def test_the_same_frames_encode_to_the_same_bytes_at_any_pace(clip, monkeypatch):
    frames, fps = clip
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
            digests.add(hashlib.sha256(media.encode_mp4(frames, fps)).hexdigest())
    finally:
        burner.kill()
        burner.wait()
    assert len(digests) == 1, f"{len(digests)} different encodings of the same frames"


def test_the_same_frames_encode_to_the_same_bytes_wherever_they_lie_in_memory(clip):
    """On an AVX-512 CPU x264's own assembly gave other bytes for the same frames now and then, depending on what
    the process had allocated before (a round's first video differed from the same round run again: 30 of 200
    encodes of one clip); so did a local round from the same round on Ray workers. x264's cpu-independent mode."""
    frames, fps = clip
    rng, kept, digests = np.random.default_rng(0), [], set()
    for _ in range(100):
        kept = [*kept[-20:], np.empty(int(rng.integers(1, 200_000)), np.uint8)]  # another layout each time
        digests.add(hashlib.sha256(media.encode_mp4(frames, fps)).hexdigest())
    assert len(digests) == 1, f"{len(digests)} different encodings of the same frames"
