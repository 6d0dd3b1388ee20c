"""What each criterion asks of a reviewer, in the task and in Label Studio's project instructions."""

from __future__ import annotations

from html import escape

from mora.judges.criteria import CRITERIA

WINS: dict[str, str] = {
    "visual_clarity": "the sharpest picture with the least noise; edges and textures stay crisp while things move",
    "object_consistency": "objects keep their shape, colour and count from first to last frame; nothing melts or pops",
    "temporal_coherence": "each frame follows from the one before: no jumps, flashes or sudden changes",
    "narrative_coherence": "what happens makes sense as a little story and follows the prompt's order of events",
    "colour_lighting": "light and colour stay steady or change smoothly; no flicker, no sudden shift in tint",
    "realism": "objects, textures and the scene look the most like the real world, with believable detail",
    "relevance": "shows what the prompt asks for: its subject, setting and action, nothing missing or extra",
    "aesthetics": "the best composition, balance and overall appeal, as a frame you would keep",
    "cleanliness": "the fewest artifacts: no blotches, warping, smears or compression blocks",
    "motion_smoothness": "motion is natural and even, without lag, stutter or frozen parts",
}

GENERAL = ("Watch all four together (one play button plays them in step; short clips repeat). Pick the candidate "
           "that is best for the criterion named in the task, not the one you like most overall. Reject all when "
           "none is good enough to train on. Keys: 1-4 choose as laid out, 0 or R reject all, Ctrl+Enter submits, "
           "Skip leaves the set for later.")


def wins(criterion: str) -> str:
    """What makes a winner under this criterion (a generic line for an unknown key)."""
    return WINS.get(criterion, "the candidate that best meets the criterion")


def project_instructions() -> str:
    """Label Studio's project instructions (HTML): the general rule, then every criterion."""
    items = "".join(f"<li><b>{escape(c.description)}</b>: {escape(wins(c.key))}</li>" for c in CRITERIA)
    return f"<p>{escape(GENERAL)}</p><p>What wins under each criterion:</p><ul>{items}</ul>"
