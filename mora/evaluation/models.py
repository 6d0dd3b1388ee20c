"""The evaluation's models, each loaded once per process through ``from_pretrained`` (a local folder
or a hub id), like the agents. Each class owns one model and exposes one call in the metric's words."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mora.agents.loading import ModelLoadError, cached, torch_dtype
from mora.config import CaptionerRef, ModelRef, RuntimeConfig

EVAL_KINDS = {"eval-object", "eval-clip", "eval-aesthetic-clip", "eval-aesthetic-head", "eval-video-text",
              "eval-text-embedder", "eval-captioner", "eval-raft", "eval-musiq"}


def _images(frames) -> list[Image.Image]:
    return [f if isinstance(f, Image.Image) else Image.fromarray(f) for f in frames]


def _unit(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x.float(), dim=-1)


def _model_and_processor(kind: str, ref: ModelRef, runtime: RuntimeConfig, model_class: str, processor_class: str):
    """A transformers model (eval mode, on the runtime's device) and its processor, once per process."""
    def load():
        import transformers

        model = getattr(transformers, model_class).from_pretrained(ref.id, revision=ref.revision,
                                                                   dtype=torch_dtype(runtime))
        processor = getattr(transformers, processor_class).from_pretrained(ref.id, revision=ref.revision)
        return model.to(runtime.device).eval(), processor

    return cached(kind, ref, runtime, load)


class ImageFeatures:
    """Per-frame features: DINOv2's class token (object consistency) or CLIP's image embedding."""

    def __init__(self, model, processor, device: str):
        self.model, self.processor, self.device = model, processor, device

    kind, processor_class = "eval-object", "AutoImageProcessor"

    @classmethod
    def from_pretrained(cls, ref: ModelRef, runtime: RuntimeConfig, kind: str | None = None):
        return cls(*_model_and_processor(kind or cls.kind, ref, runtime, "AutoModel", cls.processor_class),
                   runtime.device)

    @torch.inference_mode()
    def features(self, frames, batch: int = 32) -> torch.Tensor:
        """``[N, D]`` unit vectors; ``batch`` frames per forward pass (a 12 s video has hundreds)."""
        images, out = _images(frames), []
        for start in range(0, len(images), batch):
            pixels = self.processor(images=images[start:start + batch], return_tensors="pt")["pixel_values"]
            pixels = pixels.to(self.device, self.model.dtype)
            if hasattr(self.model, "get_image_features"):
                out.append(self.model.get_image_features(pixel_values=pixels).pooler_output)
            else:
                out.append(self.model(pixel_values=pixels).pooler_output)
        return _unit(torch.cat(out))


class ClipTextImage(ImageFeatures):
    """CLIP's text and image embeddings in one space (appearance style)."""

    kind, processor_class = "eval-clip", "AutoProcessor"

    @torch.inference_mode()
    def text(self, texts: list[str]) -> torch.Tensor:
        tokens = self.processor.tokenizer(texts, padding=True, truncation=True, return_tensors="pt").to(self.device)
        return _unit(self.model.get_text_features(**tokens).pooler_output)


def weights_file(ref: ModelRef, field: str) -> Path:
    """A weights file given as a file, a folder holding one .pth/.pt file, or a hub repo holding one."""
    path = Path(ref.id)
    if path.is_file():
        return path
    if path.is_dir():
        found = sorted(path.glob("*.pth")) + sorted(path.glob("*.pt"))
        if not found:
            raise ModelLoadError(f"config field '{field}': folder '{path}' holds no .pth file; put the weights there "
                                 "(tiny ones: mora models make-tiny .mora/models/tiny)")
        return found[0]
    if path.suffix in (".pth", ".pt") or path.is_absolute() or ref.id.startswith("."):
        raise ModelLoadError(f"config field '{field}': '{ref.id}' not found; point it at the weights file")
    from huggingface_hub import hf_hub_download, list_repo_files

    try:
        names = [f for f in list_repo_files(ref.id, revision=ref.revision) if f.endswith((".pth", ".pt"))]
        if not names:
            raise ModelLoadError(f"config field '{field}': hub repo '{ref.id}' holds no .pth file")
        return Path(hf_hub_download(ref.id, names[0], revision=ref.revision))
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - offline, unknown repo, refused: all one line
        raise ModelLoadError(f"config field '{field}': '{ref.id}' is neither a local file nor a reachable hub repo "
                             f"({type(exc).__name__}); point it at the weights file") from None


def head_from_state(state: dict[str, torch.Tensor]) -> torch.nn.Module:
    """LAION's predictors: one linear layer (``weight``, ``bias``; VBench's) or the improved MLP
    (``layers.N.*``; dropouts carry no weights and do nothing at evaluation)."""
    if set(state) == {"weight", "bias"}:
        linear = torch.nn.Linear(state["weight"].shape[1], state["weight"].shape[0])
        linear.load_state_dict(state)
        return linear.eval()
    indices = sorted({int(k.split(".")[1]) for k in state if k.startswith("layers.")})
    if not indices:
        raise ModelLoadError("aesthetic head: expected a LAION predictor state dict (weight/bias or layers.N.*)")
    linears = []
    for i in indices:
        w = state[f"layers.{i}.weight"]
        linear = torch.nn.Linear(w.shape[1], w.shape[0])
        linear.load_state_dict({"weight": w, "bias": state[f"layers.{i}.bias"]})
        linears.append(linear)
    return torch.nn.Sequential(*linears).eval()


class AestheticPredictor:
    """LAION's aesthetic predictor: the linear head (VBench's) or the improved MLP on unit CLIP image
    embeddings; 0..10, /10. The preset names which one it means, and the weights must be that one."""

    def __init__(self, clip: ImageFeatures, head: torch.nn.Module):
        self.clip, self.head = clip, head

    @classmethod
    def from_pretrained(cls, clip: ModelRef, head: ModelRef, runtime: RuntimeConfig, kind: str = "linear"):
        def load():
            state = torch.load(weights_file(head, "eval.aesthetic_head"), map_location="cpu", weights_only=True)
            module = head_from_state(state.get("state_dict", state))
            found = "linear" if isinstance(module, torch.nn.Linear) else "mlp"
            if found != kind:
                raise ModelLoadError(f"config field 'eval.aesthetic_head': '{head.id}' holds the {found} predictor "
                                     f"but eval.aesthetic_predictor is {kind}; set eval.aesthetic_predictor={found} "
                                     "or point eval.aesthetic_head at the other weights")
            return module.to(runtime.device)

        return cls(ImageFeatures.from_pretrained(clip, runtime, "eval-aesthetic-clip"),
                   cached("eval-aesthetic-head", head, runtime, load, (kind,)))

    @torch.inference_mode()
    def scores(self, frames) -> np.ndarray:
        feats = self.clip.features(frames)
        first = self.head[0] if isinstance(self.head, torch.nn.Sequential) else self.head
        if feats.shape[-1] != first.in_features:
            raise ModelLoadError(f"the aesthetic head reads {first.in_features}-wide features but eval.aesthetic_clip "
                                 f"gives {feats.shape[-1]}; point it at the CLIP the head was trained on (ViT-L/14)")
        return (self.head(feats.to(next(self.head.parameters()).dtype)).squeeze(-1) / 10.0).cpu().numpy()


class VideoText:
    """X-CLIP (our stand-in for ViCLIP): one embedding per video, and video-text similarity."""

    def __init__(self, model, processor, device: str):
        self.model, self.processor, self.device = model, processor, device
        self.num_frames = model.config.vision_config.num_frames

    @classmethod
    def from_pretrained(cls, ref: ModelRef, runtime: RuntimeConfig):
        return cls(*_model_and_processor("eval-video-text", ref, runtime, "XCLIPModel", "AutoProcessor"),
                   runtime.device)

    def _pixels(self, frames: np.ndarray) -> torch.Tensor:
        idx = np.linspace(0, len(frames) - 1, self.num_frames).round().astype(int)  # X-CLIP reads a fixed count
        pixels = self.processor.image_processor(images=_images(frames[idx]), return_tensors="pt")["pixel_values"]
        if pixels.ndim == 4:  # an image processor gives [T, C, H, W]; X-CLIP's own (VideoMAE) gives [1, T, C, H, W]
            pixels = pixels.unsqueeze(0)
        return pixels.to(self.device, self.model.dtype)

    @torch.inference_mode()
    def video(self, frames: np.ndarray) -> torch.Tensor:
        return _unit(self.model.get_video_features(pixel_values=self._pixels(frames)).pooler_output)[0]

    @torch.inference_mode()
    def similarity(self, frames: np.ndarray, text: str) -> float:
        tokens = self.processor.tokenizer([text], padding=True, truncation=True, return_tensors="pt").to(self.device)
        out = self.model(pixel_values=self._pixels(frames), **tokens)
        return float((_unit(out.video_embeds)[0] * _unit(out.text_embeds[0, 0])).sum())


class TextEmbedder:
    """BERT sentence embeddings (mean of the last hidden states over real tokens)."""

    def __init__(self, model, tokenizer, device: str):
        self.model, self.tokenizer, self.device = model, tokenizer, device

    @classmethod
    def from_pretrained(cls, ref: ModelRef, runtime: RuntimeConfig):
        return cls(*_model_and_processor("eval-text-embedder", ref, runtime, "AutoModel", "AutoTokenizer"),
                   runtime.device)

    @torch.inference_mode()
    def embed(self, texts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(texts, padding=True, truncation=True, return_tensors="pt").to(self.device)
        hidden = self.model(**tokens).last_hidden_state.float()
        mask = tokens["attention_mask"].unsqueeze(-1).float()
        return _unit((hidden * mask).sum(1) / mask.sum(1).clamp(min=1))


CAPTION_REQUEST = {"image": "Describe this image in one sentence.",
                   "video": "Describe this video in one sentence: what is shown and what happens."}


class Captioner:
    """A multimodal model that writes one sentence about an image or a video (given as frames)."""

    def __init__(self, ref: CaptionerRef, model, processor, max_new_tokens: int):
        self.ref, self.model, self.processor, self.max_new_tokens = ref, model, processor, max_new_tokens

    @classmethod
    def from_pretrained(cls, ref: CaptionerRef, runtime: RuntimeConfig, max_new_tokens: int = 48):
        def load():
            from transformers import AutoModelForImageTextToText

            from mora.judges.processors import load_processor

            model = AutoModelForImageTextToText.from_pretrained(ref.model.id, revision=ref.model.revision,
                                                                dtype=torch_dtype(runtime))
            return model.to(runtime.device).eval(), load_processor(ref.model.id, ref.model.revision)

        return cls(ref, *cached("eval-captioner", ref.model, runtime, load), max_new_tokens)

    @torch.inference_mode()
    def caption(self, frames, what: str) -> str:
        images = _images(frames)
        content = [{"type": "image"} for _ in images] + [{"type": "text", "text": CAPTION_REQUEST[what]}]
        text = self.processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                                  tokenize=False)
        packed = [images] if self.ref.family == "llava-onevision" else images
        inputs = self.processor(text=[text], images=packed, return_tensors="pt").to(self.model.device)
        out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        return self.processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()
