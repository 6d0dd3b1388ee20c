"""The paper's ten evaluation criteria; one is drawn per candidate set."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Criterion:
    key: str
    description: str


CRITERIA: tuple[Criterion, ...] = (  # the paper's Table 3 (appendix A.6), word for word
    Criterion("visual_clarity", "visual clarity and resolution: image sharpness, smoothness of transitions, "
                                "noise levels"),
    Criterion("object_consistency", "object consistency and scene stability across frames: object motion and "
                                    "interactions"),
    Criterion("temporal_coherence", "temporal coherence: the best frame-to-frame continuity"),
    Criterion("narrative_coherence", "narrative coherence or logical progression: storytelling consistency"),
    Criterion("colour_lighting", "colour grading and lighting consistency: smooth lighting transitions and "
                                 "uniform colour"),
    Criterion("realism", "realism of objects, background textures and scene complexity: most to least realistic"),
    Criterion("relevance", "content relevance to the task: theme alignment and task appropriateness"),
    Criterion("aesthetics", "aesthetic quality: artistic composition, balance, overall visual appeal"),
    Criterion("cleanliness", "noise and artifact levels: the cleanest and smoothest output"),
    Criterion("motion_smoothness", "frame-rate consistency and smoothness of motion: natural motion without lag "
                                   "or stuttering"),
)


def draw_criterion(seed: int) -> Criterion:
    """A criterion drawn at random but reproducibly: the seed is stored next to the verdict."""
    return random.Random(seed).choice(CRITERIA)
