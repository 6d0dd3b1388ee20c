"""The ten evaluation criteria of the paper's Table 3 (its appendix A.6); one is drawn per candidate set.

The paper gives each criterion to the judges as an instruction to rank the four videos by it; the
texts below follow the criteria as our mission summary lists them, in that instruction form (the
paper's exact wording is not reproduced here). ``description`` is the short form reviewers see.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

COUNTS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine", 10: "ten"}


@dataclass(frozen=True)
class Criterion:
    key: str
    description: str  # "name: what it considers", for reviewers
    ranking: str  # the instruction, with {n} for the number of videos

    def instruction(self, n: int) -> str:
        """What the judges are asked: rank the ``n`` videos by this criterion."""
        return self.ranking.format(n=COUNTS.get(n, str(n)))


CRITERIA: tuple[Criterion, ...] = (
    Criterion("visual_clarity", "visual clarity and resolution: image sharpness, smoothness of transitions, noise "
              "levels", "Rank the {n} videos by visual clarity and resolution, considering image sharpness, "
              "smoothness of transitions and noise levels."),
    Criterion("object_consistency", "object consistency and scene stability across frames: object motion and "
              "interactions", "Rank the {n} videos by object consistency and scene stability across frames, "
              "considering object motion and interactions."),
    Criterion("temporal_coherence", "temporal coherence: the best frame-to-frame continuity",
              "Rank the {n} videos by temporal coherence, from the best frame-to-frame continuity to the worst."),
    Criterion("narrative_coherence", "narrative coherence or logical progression: storytelling consistency",
              "Rank the {n} videos by narrative coherence or logical progression, considering storytelling "
              "consistency."),
    Criterion("colour_lighting", "colour grading and lighting consistency: smooth lighting transitions and uniform "
              "colour", "Rank the {n} videos by colour grading and lighting consistency, considering smooth lighting "
              "transitions and uniform colour."),
    Criterion("realism", "realism of objects, background textures and scene complexity: most to least realistic",
              "Rank the {n} videos by the realism of their objects, background textures and scene complexity, from "
              "most to least realistic."),
    Criterion("relevance", "content relevance to the task: theme alignment and task appropriateness",
              "Rank the {n} videos by content relevance to the task, considering theme alignment and task "
              "appropriateness."),
    Criterion("aesthetics", "aesthetic quality: artistic composition, balance, overall visual appeal",
              "Rank the {n} videos by aesthetic quality, considering artistic composition, balance and overall "
              "visual appeal."),
    Criterion("cleanliness", "noise and artifact levels: the cleanest and smoothest output",
              "Rank the {n} videos by noise and artifact levels, from the cleanest and smoothest output to the "
              "noisiest."),
    Criterion("motion_smoothness", "frame-rate consistency and smoothness of motion: natural motion without lag "
              "or stuttering", "Rank the {n} videos by frame-rate consistency and smoothness of motion, from "
              "natural motion without lag or stuttering to the least smooth."),
)


def draw_criterion(seed: int) -> Criterion:
    """A criterion drawn at random but reproducibly: the seed is stored next to the verdict."""
    return random.Random(seed).choice(CRITERIA)
