"""The models of ``configs/tiny-learns.yaml``: a tiny generator whose pixels carry colour, and judges
taught to prefer more of a property, with their mirror images that prefer less. Built by
``mora models make-tiny --tastes brightness`` beside the random tiny models they start from (see
``mora.models.colour`` and ``mora.models.taste``).

Teaching runs on one CPU thread, so a build gives the same bytes wherever the CPU computes the same
(float sums depend on the thread count; the random tiny models depend on nothing but their seed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import torch

from mora.evaluation.properties import PROPERTIES
from mora.models.colour import build_ltx_colour, build_sd3_colour
from mora.models.taste import mirror, taste_name, teach_taste

FAMILIES = ("llava-onevision", "qwen2-vl")
# a fresh judge learning its first taste, measured on 24 fresh sets (rank correlation with brightness): 600 steps
# over 96 batches reached 0.36 (llava-onevision) and 0.75 (qwen2-vl) once the criterion moved to the question's
# end; 3000 over 96 overfit (qwen2-vl 0.56); 3000 steps over 300 batches reach 0.93 and 0.89, 0.91 at lr 1.5e-3
FIRST_STEPS, POOL = 3000, 300  # the pool: batches drawn once and taught in turn
LEARNING_RATE = {"llava-onevision": 3e-3, "qwen2-vl": 1.5e-3}
NEXT_STEPS = 300  # continuing from a taught judge: another property
# the image-to-video agent continues its first frame (the clip's brightness against the frame's, 24 fresh scenes:
# slope 0.30 at the builder's 300 steps, 0.93 at 1500, 0.91 at 3000), so it learns where winners start
I2V_STEPS = 1500


@contextmanager
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _build(make: Callable[[Path], object], out: Path) -> None:
    with one_thread():
        make(out)


def _judge(family: str, prop: str, start: str | None, steps: int, out: Path) -> None:
    root = out.parent  # make_tiny builds each model under a temporary name in the root
    with one_thread():
        teach_taste(root / family, family, prop, out, steps=steps, pool=POOL, lr=LEARNING_RATE[family],
                    start=root / start if start else None)


def _mirror(taught: str, out: Path) -> None:
    mirror(out.parent / taught, out)


def learns_builders(tastes: tuple[str, ...] = ("brightness",)) -> dict[str, Callable[[Path], None]]:
    """Builders in dependency order: each starts from models built before it (the random tiny ones first)."""
    unknown = [t for t in tastes if t not in PROPERTIES]
    if unknown:
        raise ValueError(f"--tastes: '{unknown[0]}' is not a property; use {', '.join(PROPERTIES)}")
    builders: dict[str, Callable[[Path], None]] = {
        "sd3-colour": partial(_build, lambda out: build_sd3_colour(out, out.parent / "sd3")),
        "ltx-i2v-colour": partial(_build, lambda out: build_ltx_colour(out, out.parent / "ltx-i2v", steps=I2V_STEPS)),
    }
    for family in FAMILIES:
        first = None
        for prop in tastes:
            more, less = taste_name(family, prop, "more"), taste_name(family, prop, "less")
            builders[more] = partial(_judge, family, prop, first, NEXT_STEPS if first else FIRST_STEPS)
            builders[less] = partial(_mirror, more)
            first = first or more
    return builders


def learns_chains(tastes: tuple[str, ...] = ("brightness",)) -> list[list[str]]:
    """``learns_builders``' names as chains that need only the random tiny models and the chain's earlier
    models: each chain in order, the chains side by side (each in its own process, on one thread)."""
    chains = [["sd3-colour"], ["ltx-i2v-colour"]]
    for family in FAMILIES:
        chains.append([taste_name(family, prop, side) for prop in tastes for side in ("more", "less")])
    return chains
