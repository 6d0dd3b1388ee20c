"""Quality gates on synthetic videos whose motion, flicker and exposure are known."""

import numpy as np
import pytest

from mora.config import GateConfig
from mora.judges.gates import check, measure
from mora.judges.verdict import ACCEPTED, DISCARDED, NEEDS_REVIEW, JudgeRanking, decide


def moving_square(t=9, step=2, size=64):
    frames = np.full((t, size, size, 3), 40, np.uint8)
    rng = np.random.default_rng(0)
    texture = rng.integers(100, 255, (16, 16, 3), dtype=np.uint8)
    for i in range(t):
        x = 8 + i * step
        frames[i, 24:40, x:x + 16] = texture
    return frames


def test_moving_content_passes_and_static_content_fails():
    moving, static = measure(moving_square(step=2)), measure(moving_square(step=0))
    assert moving.motion > 0.1 and static.motion < 0.01
    assert check(moving, GateConfig()) == []
    assert check(static, GateConfig())[0].startswith("static")


def test_faster_motion_measures_larger():
    assert measure(moving_square(step=3)).motion > measure(moving_square(step=1)).motion


def test_flicker_black_and_blown_frames_fail():
    flicker = moving_square()
    flicker[::2] = np.clip(flicker[::2].astype(int) + 120, 0, 255).astype(np.uint8)
    m = measure(flicker)
    assert m.flicker > 40 and any(f.startswith("flicker") for f in check(m, GateConfig()))
    black = np.zeros((9, 64, 64, 3), np.uint8)
    black[:, 0, 0] = (np.arange(9) * 20)[:, None]  # a speck of motion, still black
    assert measure(black).dark_fraction == 1.0
    assert any(f.startswith("black") for f in check(measure(black), GateConfig()))
    white = np.full((9, 64, 64, 3), 250, np.uint8)
    assert any(f.startswith("blown") for f in check(measure(white), GateConfig()))


def test_blur_gate_is_off_by_default_and_works_when_set():
    sharp = moving_square()
    blurry = np.stack([np.full_like(f, int(f.mean())) for f in sharp])  # all detail gone
    assert measure(sharp).sharpness > measure(blurry).sharpness
    assert not any(f.startswith("blur") for f in check(measure(blurry), GateConfig()))
    assert any(f.startswith("blur") for f in check(measure(blurry), GateConfig(min_sharpness=10)))


def _r(judge, ranking):
    return JudgeRanking(judge=judge, model="m", ranking=ranking, scores=[0.25] * 4, confidence=0.0)


@pytest.mark.parametrize("second, passed, decision, winner", [
    ([0, 1, 3, 2], [False, True, True, True], ACCEPTED, 1),  # both prefer 0, which is gated: both fall to 1
    ([0, 2, 1, 3], [False, True, True, True], NEEDS_REVIEW, None),  # after the gate they part: 1 vs 2
    ([0, 2, 1, 3], [True, True, True, True], ACCEPTED, 0),
    ([0, 1, 2, 3], [False, False, False, False], DISCARDED, None),
])
def test_gated_candidates_cannot_win(second, passed, decision, winner):
    d = decide([_r("a", [0, 1, 2, 3]), _r("b", second)], passed)
    assert (d.decision, d.winner) == (decision, winner)
