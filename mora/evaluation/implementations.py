"""Which implementation measures each metric, chosen once per evaluation and stored with every run.

VBench's own components run where they can: RAFT (torchvision's ``raft_large``) for dynamic degree,
MUSIQ (``pyiqa``) for imaging quality, every frame for the per-frame metrics. Elsewhere the
weight-free stand-ins run, and the label says so. Two rows of a table are comparable in a column only
when their labels for it are equal: the label names the method and the weights, never the machine.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache

from mora.config import ConfigError, EvalConfig

# the metrics VBench computes on every frame (its load_video reads them all)
PER_FRAME = ("object_consistency", "background_consistency", "aesthetic_score", "imaging_quality",
             "appearance_style")


@dataclass(frozen=True)
class Implementation:
    name: str  # what the code runs: "raft", "farneback", "musiq", "proxy", "model"
    label: str  # what the tables print; equal labels are comparable
    fallback: str = ""  # why a stand-in runs where VBench's component was wanted


@cache
def importable(module: str) -> str:
    """Empty when ``module`` imports, else why not (torchvision can be installed and still fail to import)."""
    try:
        importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - any import failure means the part is not here
        return f"{module} does not import here ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
    return ""


def _real_or_standin(config: EvalConfig, field: str, real: str, module: str, weights_field: str,
                     check=importable) -> tuple[bool, str]:
    """(whether the real component runs, why not); naming it explicitly turns its absence into an error."""
    wanted = getattr(config, field)
    if wanted not in ("auto", real):
        return False, ""
    missing = check(module)
    if not missing and getattr(config, weights_field) is None:
        missing = f"eval.{weights_field} is not set (its weights cannot be downloaded here)"
    if missing and wanted == real:
        raise ConfigError(f"config field 'eval.{field}' is {real}, but {missing}; give eval.{weights_field} "
                          f"on a machine where {module.split('.')[0]} imports, or set eval.{field}=auto")
    return not missing, missing


def frames_label(config: EvalConfig) -> str:
    return "every frame" if config.frames == "all" else f"{config.frames} frames spread over the video"


def choose(config: EvalConfig, check=importable) -> dict[str, Implementation]:
    """Every metric's implementation under ``config``; ``check(module)`` says why a module does not import."""
    frames = frames_label(config)
    raft, raft_why = _real_or_standin(config, "dynamic_degree", "raft", "torchvision.models.optical_flow", "raft",
                                      check)
    musiq, musiq_why = _real_or_standin(config, "imaging_quality", "musiq", "pyiqa.archs.musiq_arch", "musiq", check)
    head = ("LAION linear head (VBench's)" if config.aesthetic_predictor == "linear"
            else "LAION improved MLP predictor (not VBench's linear head)")
    caps = (f"{config.image_captioner.model.describe()} image caption after the instruction, "
            f"{config.video_captioner.model.describe()} video caption, {config.text_embedder.describe()} "
            "mean-pooled, cosine")
    return {
        "object_consistency": Implementation(
            "model", f"DINOv2 class token ({config.object_encoder.describe()}), {frames}"),
        "background_consistency": Implementation(
            "model", f"CLIP image embeddings ({config.clip.describe()}), {frames}"),
        "motion_smoothness": Implementation("flow-warp", "flow-warp interpolation (stand-in for AMT-S), every frame",
                                            "AMT-S has no installable package"),
        "aesthetic_score": Implementation(
            config.aesthetic_predictor, f"{head} ({config.aesthetic_head.describe()}) on CLIP "
                                        f"({config.aesthetic_clip.describe()}), {frames}"),
        "dynamic_degree": Implementation(
            "raft", f"RAFT raft_large (torchvision, {config.raft.describe()}), VBench's sampling and threshold")
        if raft else Implementation(
            "farneback", "Farneback flow (stand-in for RAFT), VBench's sampling and threshold", raft_why),
        "imaging_quality": Implementation(
            "musiq", f"MUSIQ (pyiqa, {config.musiq.describe()}), every frame, longer side at most 512")
        if musiq else Implementation(
            "proxy", f"weight-free sharpness and noise proxy (stand-in for MUSIQ), {frames}", musiq_why),
        "temporal_style": Implementation(
            "model", f"X-CLIP video-text cosine ({config.video_encoder.describe()}; stand-in for ViCLIP)"),
        "appearance_style": Implementation(
            "model", f"CLIP text-frame cosine ({config.clip.describe()}), {frames}"),
        "video_text_integration": Implementation("model", caps),
        "temporal_consistency": Implementation(
            "model", f"X-CLIP video cosine ({config.video_encoder.describe()}; stand-in for ViCLIP), input vs the "
                     "frames made from it"),
        "transition_coherence": Implementation("pearson", "Pearson correlation of the frames that touch"),
        "video_length": Implementation("frames", "frames / fps"),
    }


def labels(chosen: dict[str, Implementation]) -> dict[str, str]:
    """What a run stores: metric -> label (video quality is the mean of the six; its rows compare when theirs do)."""
    return {m: i.label for m, i in chosen.items()}


def fallbacks(chosen: dict[str, Implementation]) -> dict[str, str]:
    return {m: i.fallback for m, i in chosen.items() if i.fallback}
