"""VBench's own networks where their packages import: RAFT for dynamic degree (torchvision's
``raft_large``) and MUSIQ for imaging quality (``pyiqa``). Neither imports on the CPU machines (no
usable torchvision), so this module is only imported when ``implementations.choose`` picked them; the
weights come from the preset (a local file, a folder or a hub repo), never from a download at run time.
"""

from __future__ import annotations

import numpy as np
import torch

from mora.agents.loading import ModelLoadError, cached
from mora.config import ModelRef, RuntimeConfig
from mora.evaluation.models import weights_file

RAFT_UPDATES = 20  # VBench runs RAFT with iters=20


class RaftFlow:
    """Dense optical flow from torchvision's RAFT (large), in VBench's use: frames in 0..255, padded to a
    multiple of 8 (edges replicated), the final refinement's flow."""

    def __init__(self, model, device: str):
        self.model, self.device = model, device

    @classmethod
    def from_pretrained(cls, ref: ModelRef, runtime: RuntimeConfig):
        def load():
            from torchvision.models.optical_flow import raft_large

            model = raft_large(weights=None, progress=False)
            state = torch.load(weights_file(ref, "eval.raft"), map_location="cpu", weights_only=True)
            try:
                model.load_state_dict(state.get("state_dict", state))
            except RuntimeError:
                raise ModelLoadError(f"config field 'eval.raft': '{ref.id}' is not a raft_large state dict; point it "
                                     "at torchvision's raft_large_C_T_V1-22a6c225.pth") from None
            return model.to(runtime.device).eval()

        return cls(cached("eval-raft", ref, runtime, load), runtime.device)

    def _tensor(self, frame: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None].float().to(self.device)
        h, w = x.shape[-2:]
        pad_h, pad_w = (-h) % 8, (-w) % 8
        x = torch.nn.functional.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2],
                                    mode="replicate")
        return x / 127.5 - 1.0  # RAFT reads [-1, 1]

    @torch.inference_mode()
    def flow(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``[H', W', 2]`` pixels (H', W' padded to multiples of 8, as VBench measures it)."""
        flows = self.model(self._tensor(a), self._tensor(b), num_flow_updates=RAFT_UPDATES)
        return flows[-1][0].permute(1, 2, 0).float().cpu().numpy()


class Musiq:
    """MUSIQ (pyiqa), VBench's imaging quality: every frame in [0, 1], the longer side resized to at most
    512 (VBench's default ``longer`` mode), the score / 100."""

    def __init__(self, model, device: str):
        self.model, self.device = model, device

    @classmethod
    def from_pretrained(cls, ref: ModelRef, runtime: RuntimeConfig):
        def load():
            from pyiqa.archs.musiq_arch import MUSIQ

            path = weights_file(ref, "eval.musiq")
            try:
                model = MUSIQ(pretrained_model_path=str(path))
            except RuntimeError:
                raise ModelLoadError(f"config field 'eval.musiq': '{ref.id}' is not MUSIQ's weights; point it at "
                                     "musiq_spaq_ckpt-358bb6af.pth") from None
            return model.to(runtime.device).eval()

        return cls(cached("eval-musiq", ref, runtime, load), runtime.device)

    @torch.inference_mode()
    def score(self, frames: np.ndarray) -> float:
        scores = []
        for frame in frames:
            x = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None].float().to(self.device)
            h, w = x.shape[-2:]
            if max(h, w) > 512:
                scale = 512.0 / max(h, w)
                x = torch.nn.functional.interpolate(x, size=(int(scale * h), int(scale * w)), mode="bilinear",
                                                    align_corners=False, antialias=False)
            scores.append(float(self.model(x / 255.0)))
        return float(np.mean(scores)) / 100.0
