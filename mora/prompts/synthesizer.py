"""Weight-free prompt synthesis: combinatorial lists for offline rounds and tokenizer corpora."""

from __future__ import annotations

import random

SUBJECTS = [
    "a red fox", "an old fisherman", "a paper boat", "a golden retriever", "a lighthouse keeper",
    "a hummingbird", "a steam locomotive", "a young dancer", "a robot gardener", "a hot air balloon",
    "a snow leopard", "a street musician", "a sailing ship", "a glass jellyfish", "a vintage car",
    "a child with a kite", "a barn owl", "a chef", "a koi fish", "an astronaut",
]
ACTIONS = [
    "walks slowly", "runs across the frame", "turns around", "drifts gently", "jumps over a puddle",
    "spins in circles", "looks up at the sky", "glides forward", "waves", "dances",
    "rests quietly", "flies upward", "swims in circles", "climbs a hill", "rolls down a slope",
]
SETTINGS = [
    "in a snowy forest", "on a busy city street", "at a quiet harbour", "in a sunflower field",
    "inside a neon-lit arcade", "on a misty mountain ridge", "in a desert at noon", "under a bridge in the rain",
    "in a coral reef", "on a rooftop garden", "in an autumn park", "on a frozen lake",
]
STYLES = [
    "cinematic lighting", "soft pastel colours", "high detail photography", "watercolor style",
    "golden hour light", "film grain", "moody blue tones", "vivid colours", "studio lighting",
]
CAMERAS = [
    "static camera", "slow dolly in", "tracking shot", "aerial view", "close-up", "wide shot",
    "handheld camera", "slow pan left", "low angle",
]

def synthesize_prompts(count: int, seed: int) -> list[str]:
    """Distinct subject/action/setting/style/camera combinations, reproducible from the seed."""
    rng = random.Random(seed)
    seen: set[str] = set()
    prompts: list[str] = []
    limit = len(SUBJECTS) * len(ACTIONS) * len(SETTINGS)
    if count > limit:
        raise ValueError(f"prompts.count: at most {limit} synthesized prompts are distinct; lower it")
    while len(prompts) < count:
        parts = (rng.choice(SUBJECTS), rng.choice(ACTIONS), rng.choice(SETTINGS))
        key = " ".join(parts)
        if key in seen:
            continue
        seen.add(key)
        prompts.append(f"{key}, {rng.choice(STYLES)}, {rng.choice(CAMERAS)}")
    return prompts


def corpus() -> list[str]:
    """Every word the synthesizer and the judge prompts use: tiny tokenizers are trained on it."""
    from mora.judges.criteria import CRITERIA

    lines = [f"{s} {a} {p}, {st}, {c}" for s in SUBJECTS for a in ACTIONS[:3] for p in SETTINGS[:3]
             for st in STYLES[:2] for c in CAMERAS[:2]]
    lines += SUBJECTS + ACTIONS + SETTINGS + STYLES + CAMERAS + [c.description for c in CRITERIA]
    lines += ["Candidate 0 1 2 3 4 5 6 7 8 9. Which candidate is best? Answer with the number only.",
              "Write a detailed visual description of the scene for a video.",
              "You are a careful judge of generated videos."]
    return lines
