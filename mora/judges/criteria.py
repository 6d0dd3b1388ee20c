"""The paper's ten evaluation criteria; one is drawn per candidate set."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Criterion:
    key: str
    description: str


CRITERIA: tuple[Criterion, ...] = (
    Criterion("visual_clarity", "visual clarity and resolution: sharpness, smooth transitions, little noise"),
    Criterion("object_consistency", "object consistency and scene stability across frames"),
    Criterion("temporal_coherence", "temporal coherence: continuity from frame to frame"),
    Criterion("narrative_coherence", "narrative coherence: a logical progression of the story"),
    Criterion("colour_lighting", "colour grading and lighting consistency"),
    Criterion("realism", "realism of objects, textures and scene complexity"),
    Criterion("relevance", "relevance of the content to the prompt"),
    Criterion("aesthetics", "aesthetic quality: composition, balance and appeal"),
    Criterion("cleanliness", "noise and artifact levels: the cleanest output"),
    Criterion("motion_smoothness", "frame-rate consistency and smoothness of motion, without stutter"),
)


def draw_criterion(seed: int) -> Criterion:
    """A criterion drawn at random but reproducibly: the seed is stored next to the verdict."""
    return random.Random(seed).choice(CRITERIA)
