"""Self-modulation: a learnable embedding per agent, appended to the embedding of its prompt.

The paper conditions each agent on its enhanced prompt *and* on an agent-specific embedding that
fine-tuning learns. It starts as the text encoder's embedding of a special token, so it lives where
prompt tokens live; its L2 norm is the agent's modulation factor (the paper's definition).
The same functions build the conditioning for training and for generation, so a tuned agent sees at
generation exactly what it was trained on.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from mora.seeds import derive_seed

FILE = "modulation.safetensors"
# Text-to-image: SD3-family pipelines (joint CLIP + T5 embedding); image-to-video: LTX-Video (T5).
SD3 = "StableDiffusion3Pipeline"
LTX = "LTXImageToVideoPipeline"
TRAINABLE = {"text_to_image": (SD3,), "image_to_video": (LTX,)}
SD3_T5_LENGTH = 256  # the length SD3 pipelines encode prompts to; training uses the same


class Modulation(nn.Module):
    """``tokens × dim`` embedding of one agent, and the norm it was initialised at."""

    def __init__(self, embedding: torch.Tensor, reference_norm: float | None = None):
        super().__init__()
        self.embedding = nn.Parameter(embedding.detach().float().clone())
        norm = float(embedding.norm()) if reference_norm is None else float(reference_norm)
        self.register_buffer("reference_norm", torch.tensor(max(norm, 1e-8)))

    def factor(self) -> torch.Tensor:
        """The modulation factor: the embedding's L2 norm (not normalised)."""
        return self.embedding.norm()

    def relative_factor(self) -> torch.Tensor:
        """The factor over the norm it started from: 1 at initialisation (training.objective per-agent)."""
        return self.embedding.norm() / self.reference_norm

    def append(self, embeds: torch.Tensor, mask: torch.Tensor | None = None):
        """``[B, S, D]`` prompt embeddings with the agent's tokens after them (and the mask grown to match)."""
        tokens = self.embedding.to(embeds.dtype).unsqueeze(0).expand(embeds.shape[0], -1, -1)
        out = torch.cat([embeds, tokens], dim=1)
        if mask is None:
            return out
        return out, torch.cat([mask, mask.new_ones(mask.shape[0], tokens.shape[1])], dim=1)

    def save(self, folder: Path, **metadata: str) -> Path:
        path = Path(folder) / FILE
        save_file({"embedding": self.embedding.detach().cpu().contiguous(),
                   "reference_norm": self.reference_norm.cpu().reshape(1)}, str(path), metadata=metadata)
        return path

    @classmethod
    def load(cls, folder: Path) -> Modulation:
        tensors = load_file(str(Path(folder) / FILE))
        return cls(tensors["embedding"], float(tensors["reference_norm"][0]))


def family(pipe) -> str:
    return type(pipe).__name__


def special_token_embedding(pipe, text: str, tokens: int) -> torch.Tensor:
    """The text encoder's output for ``text``: its first ``tokens`` positions, ``[tokens, dim]``."""
    with torch.no_grad():
        if family(pipe) == SD3:
            embeds = pipe.encode_prompt(text, None, None, do_classifier_free_guidance=False,
                                        max_sequence_length=max(tokens, 32))[0][0]
            clip_length = pipe.tokenizer_max_length
            t5 = embeds[clip_length:clip_length + tokens]
            # without T5 (text_encoder_3=None) SD3 pads with zeros; the CLIP part after BOS then stands in
            return t5 if t5.abs().sum() > 0 else embeds[1:1 + tokens]
        embeds = pipe.encode_prompt(text, do_classifier_free_guidance=False, max_sequence_length=max(tokens, 32))[0]
        return embeds[0, :tokens]


def initial_modulation(pipe, role: str, init: str, token: str, tokens: int, seed: int) -> Modulation:
    """The embedding fine-tuning starts ``role`` from: the special token's (init token), or noise of its
    norm (init random, the paper's ablation), the same for every run of the same base model and seed."""
    embedding = special_token_embedding(pipe, token.format(agent=role), tokens).float()
    if init == "token":
        return Modulation(embedding)
    generator = torch.Generator().manual_seed(derive_seed(seed, "modulation", role))
    noise = torch.randn(embedding.shape, generator=generator)
    return Modulation(noise / noise.norm() * embedding.norm(), reference_norm=float(embedding.norm()))


def sd3_conditioning(pipe, prompts: list[str], modulation: Modulation | None, guidance: bool) -> dict:
    """Keyword arguments for an SD3 call (or a training step): embeddings, modulation appended."""
    pe, npe, pooled, npooled = pipe.encode_prompt(prompts, None, None, do_classifier_free_guidance=guidance,
                                                  max_sequence_length=SD3_T5_LENGTH)
    if modulation is not None:
        pe = modulation.append(pe)
        npe = modulation.append(npe) if npe is not None else None
    out = {"prompt_embeds": pe, "pooled_prompt_embeds": pooled}
    if guidance:
        out |= {"negative_prompt_embeds": npe, "negative_pooled_prompt_embeds": npooled}
    return out


def ltx_conditioning(pipe, prompts: list[str], modulation: Modulation | None, guidance: bool) -> dict:
    """Keyword arguments for an LTX call (or a training step): embeddings and masks, modulation appended."""
    pe, pm, npe, npm = pipe.encode_prompt(prompts, do_classifier_free_guidance=guidance)
    if modulation is not None:
        pe, pm = modulation.append(pe, pm)
        if guidance:
            npe, npm = modulation.append(npe, npm)
    out = {"prompt_embeds": pe, "prompt_attention_mask": pm}
    if guidance:
        out |= {"negative_prompt_embeds": npe, "negative_prompt_attention_mask": npm}
    return out

