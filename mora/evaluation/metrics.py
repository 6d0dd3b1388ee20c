"""The paper's metrics, each named by the paper's model and ours, and the scorer that measures a video.

VBench's six dimensions make "video quality" (their mean); temporal style and appearance style are
VBench's too; Video-Text Integration, Temporal Consistency, temporal coherence and video length are
the paper's own (its appendix A.2). ``METRICS`` is the table the README shows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from mora.config import EvalConfig, RuntimeConfig
from mora.evaluation import free


@dataclass(frozen=True)
class Metric:
    name: str
    paper: str  # the model the paper (VBench) uses
    ours: str  # what mora runs
    difference: str  # how ours differs from the paper's


METRICS = {m.name: m for m in [
    Metric("object_consistency", "DINO ViT-B/16 features across every frame", "DINOv2 (transformers Dinov2Model) "
           "class token; VBench's formula", "DINOv2 instead of DINO v1"),
    Metric("background_consistency", "CLIP ViT-B/32 image features across every frame", "CLIP (transformers) image "
           "embeddings; VBench's formula", "same model family and formula"),
    Metric("motion_smoothness", "AMT-S frame interpolation", "Farneback optical flow, both neighbours warped "
           "half-way; VBench's (255 - error) / 255", "weight-free interpolation: AMT-S has no installable package"),
    Metric("aesthetic_score", "LAION linear aesthetic head on CLIP ViT-L/14, every frame, / 10",
           "the LAION predictor (eval.aesthetic_predictor: linear, VBench's, or the improved MLP) on CLIP image "
           "embeddings, / 10", "the MLP head, when chosen, is not VBench's"),
    Metric("dynamic_degree", "RAFT optical flow, VBench threshold", "RAFT (torchvision raft_large) where torchvision "
           "imports and eval.raft is set, else Farneback flow; VBench's sampling, top-5% magnitude, threshold and "
           "count", "Farneback where RAFT cannot run"),
    Metric("imaging_quality", "MUSIQ (SPAQ), every frame, / 100", "MUSIQ (pyiqa) where it imports and eval.musiq is "
           "set, else a weight-free proxy: gradient energy of the median-filtered frame times a penalty for noise "
           "(Immerkaer) in flat regions", "the proxy where MUSIQ cannot run"),
    Metric("temporal_style", "ViCLIP video-text similarity", "X-CLIP (transformers) video-text cosine",
           "X-CLIP instead of ViCLIP (no transformers implementation)"),
    Metric("appearance_style", "CLIP text-frame similarity, every frame", "CLIP text-frame cosine, mean over frames",
           "same"),
    Metric("video_text_integration", "instruction + LLaVA image caption vs Video-LLaMA video caption, BERT, cosine",
           "the instruction in front of the LLaVA-OneVision image caption, Qwen2-VL video caption (frames), BERT "
           "mean-pooled, cosine; an empty or failed caption leaves it missing", "Qwen2-VL instead of Video-LLaMA"),
    Metric("temporal_consistency", "ViCLIP cosine between input and extended video", "X-CLIP video embeddings, "
           "cosine between the input and the frames made from it", "X-CLIP instead of ViCLIP; the input frames "
           "are left out of the output side, so copying the input cannot score"),
    Metric("transition_coherence", "mean correlation of the transition with the clips before and after",
           "Pearson correlation, last frame before vs first of the transition and last of it vs first after",
           "the paper does not say which frames; ours are the frames that touch"),
    Metric("video_length", "seconds", "frames / fps", "same"),
]}
VBENCH_QUALITY = ("object_consistency", "background_consistency", "motion_smoothness", "aesthetic_score",
                  "dynamic_degree", "imaging_quality")
EXTRA = {"text-to-video": ("temporal_style", "appearance_style"), "image-to-video": ("video_text_integration",),
         "extend": ("temporal_consistency", "temporal_style"),
         "video-to-video-edit": ("temporal_style", "appearance_style"), "connect": ("transition_coherence",),
         "digital-world": ("temporal_style", "appearance_style")}


# the models (Scorer._model names) each model-backed metric reads; RAFT and MUSIQ only where chosen
NEEDS = {"object_consistency": ("object",), "background_consistency": ("clip",), "aesthetic_score": ("aesthetic",),
         "temporal_style": ("video",), "appearance_style": ("clip",), "temporal_consistency": ("video",),
         "video_text_integration": ("image_captioner", "video_captioner", "bert"), "dynamic_degree": ("raft",),
         "imaging_quality": ("musiq",)}


def task_metrics(task: str) -> list[str]:
    """The columns of a task's table, in the paper's order: video quality first."""
    return ["video_quality", *VBENCH_QUALITY, *EXTRA[task], "video_length"]


def feature_consistency(features: torch.Tensor) -> float:
    """VBench's subject/background consistency: per frame after the first, the mean of its (clipped)
    cosine with the previous frame and with the first frame; averaged over frames."""
    if len(features) < 2:
        return 1.0
    f = torch.nn.functional.normalize(features.float(), dim=-1)
    prev = (f[1:] * f[:-1]).sum(-1).clamp(min=0)
    first = (f[1:] * f[:1]).sum(-1).clamp(min=0)
    return float(((prev + first) / 2).mean())


class Missing(Exception):
    """A metric that cannot be measured for this video, with the reason (an empty caption, no input image)."""


@dataclass
class Sample:
    """One evaluated video with what its metrics compare it against."""

    task: str
    frames: np.ndarray  # [T, H, W, 3] uint8
    fps: float
    text: str  # the prompt, instruction or style the video should show
    image: Image.Image | None = None  # image-to-video: the input image
    source: np.ndarray | None = None  # extend: the input video
    parts: dict = field(default_factory=dict)  # connect: first, transition, second; extend: extension
    notes: dict = field(default_factory=dict)  # what measuring found worth keeping (the captions)


def spread(frames: np.ndarray, count: int | str) -> np.ndarray:
    """``count`` frames spread evenly over the video; ``"all"`` keeps every frame."""
    if count == "all":
        return frames
    idx = np.linspace(0, len(frames) - 1, num=min(count, len(frames))).round().astype(int)
    return frames[idx]


def video_text_integration(embedder, instruction: str, image_caption: str, video_caption: str) -> float:
    """The paper's Video-Text Integration: the instruction in front of the input image's caption, embedded,
    cosine with the video caption's embedding. Empty captions are the caller's to refuse."""
    a, b = embedder.embed([f"{instruction.strip()} {image_caption.strip()}".strip(), video_caption.strip()])
    return float((a * b).sum())


class Scorer:
    """Every metric of a task for one video; models load on first use, once per process. Which
    implementation measures each metric is chosen once (``implementations.choose``) and kept in
    ``self.chosen``."""

    def __init__(self, config: EvalConfig, runtime: RuntimeConfig):
        from mora.evaluation.implementations import choose

        self.config, self.runtime = config, runtime
        self.chosen = choose(config)
        self.seconds: dict[str, list[float]] = {}

    def _model(self, name: str):
        from mora.evaluation import models

        c, rt = self.config, self.runtime
        make = {
            "object": lambda: models.ImageFeatures.from_pretrained(c.object_encoder, rt, "eval-object"),
            "clip": lambda: models.ClipTextImage.from_pretrained(c.clip, rt),
            "aesthetic": lambda: models.AestheticPredictor.from_pretrained(c.aesthetic_clip, c.aesthetic_head, rt,
                                                                           c.aesthetic_predictor),
            "video": lambda: models.VideoText.from_pretrained(c.video_encoder, rt),
            "bert": lambda: models.TextEmbedder.from_pretrained(c.text_embedder, rt),
            "image_captioner": lambda: models.Captioner.from_pretrained(c.image_captioner, rt, c.caption_tokens),
            "video_captioner": lambda: models.Captioner.from_pretrained(c.video_captioner, rt, c.caption_tokens),
            "raft": lambda: _vbench().RaftFlow.from_pretrained(c.raft, rt),
            "musiq": lambda: _vbench().Musiq.from_pretrained(c.musiq, rt),
        }
        return make[name]()

    def _needs(self, metric: str) -> tuple[str, ...]:
        if metric == "dynamic_degree" and self.chosen[metric].name != "raft":
            return ()
        if metric == "imaging_quality" and self.chosen[metric].name != "musiq":
            return ()
        return NEEDS.get(metric, ())

    def prepare(self, tasks: list[str]) -> None:
        """Load every model these tasks' metrics read, so a bad model reference stops before any video is made."""
        for name in dict.fromkeys(n for t in tasks for m in task_metrics(t) for n in self._needs(m)):
            self._model(name)

    def _caption(self, which: str, frames, what: str) -> str:
        try:
            said = self._model(which).caption(frames, what)
        except Exception as exc:  # noqa: BLE001 - a failed caption is a missing metric, never a score
            raise Missing(f"the {which.replace('_', ' ')} failed ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:160] if str(exc) else ''})") from None
        if not said.strip():
            raise Missing(f"the {which.replace('_', ' ')} returned an empty caption")
        return said

    def measure(self, name: str, s: Sample) -> float:
        few = spread(s.frames, self.config.frames)
        if name == "object_consistency":
            return feature_consistency(self._model("object").features(few))
        if name == "background_consistency":
            return feature_consistency(self._model("clip").features(few))
        if name == "motion_smoothness":
            return free.motion_smoothness(s.frames)
        if name == "aesthetic_score":
            return float(self._model("aesthetic").scores(few).mean())
        if name == "dynamic_degree":
            flow = self._model("raft").flow if self.chosen[name].name == "raft" else free.flow
            return float(free.is_dynamic(s.frames, s.fps, flow))
        if name == "imaging_quality":
            if self.chosen[name].name == "musiq":
                return self._model("musiq").score(s.frames)
            return free.imaging_quality(few)
        if name == "temporal_style":
            return self._model("video").similarity(s.frames, s.text)
        if name == "appearance_style":
            clip = self._model("clip")
            return float((clip.features(few) @ clip.text([s.text])[0]).mean())
        if name == "video_text_integration":
            if s.image is None:
                raise Missing("no input image was given for this video")
            image_caption = self._caption("image_captioner", [s.image], "image")
            video_caption = self._caption("video_captioner", list(spread(s.frames, 4)), "video")
            s.notes["captions"] = {"image": image_caption, "video": video_caption}
            return video_text_integration(self._model("bert"), s.text, image_caption, video_caption)
        if name == "temporal_consistency":
            if s.source is None or not len(s.source):
                raise Missing("no input video was given for this extended video")
            video = self._model("video")
            made = s.parts.get("extension", s.frames)  # what was made from the input, without the input
            return float((video.video(s.source) * video.video(made)).sum())
        if name == "transition_coherence":
            if not {"first", "transition", "second"} <= set(s.parts):
                raise Missing("the parts of the connected video (first, transition, second) were not given")
            return free.transition_coherence(s.parts["first"], s.parts["transition"], s.parts["second"])
        if name == "video_length":
            return free.video_length(s.frames, s.fps)
        raise KeyError(name)

    def score(self, s: Sample) -> dict:
        """The task's metrics for one video (``None`` where one is missing), ``missing`` (metric -> reason)
        and ``notes`` (the captions); seconds per metric are kept in ``self.seconds``."""
        out: dict = {}
        missing: dict[str, str] = {}
        for name in task_metrics(s.task)[1:]:
            start = time.perf_counter()
            try:
                out[name] = round(self.measure(name, s), 6)
            except Missing as why:
                out[name], missing[name] = None, str(why)
            self.seconds.setdefault(name, []).append(time.perf_counter() - start)
        six = [out[m] for m in VBENCH_QUALITY]
        out["video_quality"] = None if None in six else round(float(np.mean(six)), 6)
        if out["video_quality"] is None:
            missing["video_quality"] = "a dimension of video quality is missing"
        return out | {"missing": missing, "notes": dict(s.notes)}


def _vbench():
    from mora.evaluation import vbench

    return vbench
