"""``training.objective: preference``: Diffusion-DPO on each agent, from the judges' and reviewers' pairs.

A decision says which candidate of a set is better, not what its candidates share. Fine-tuning on
the winners alone (the paper's objective) also fits what they share, the look of the agents' own
guided samples: on the tiny-learns benchmark that moved the control arm about as far as the arm whose
judges preferred darker videos. Here each accepted set gives its winner against each other passing
candidate (``mora.datasets.pairs``), and each agent's flow-matching error on the two, with the same
noise and noise level, is compared with the same errors of the reference: the agents as the loop started
(adapters that add nothing, the initial embeddings), so that every iteration is held to one anchor and
iterations do not compound; or, with ``training.preference_reference: iteration``, as this iteration
started (the adapters and modulation of the checkpoint that made its data). Per pair (Wallace et al.,
2023, with the velocity error in place of the noise error):
``-log sigmoid(-beta / 2 * ((err_chosen - err_rejected) - (ref_chosen - ref_rejected)))``, times the
pair's weight. The text-to-image agent is scored on the first frames, the image-to-video agent on each
clip given its own first frame. What every candidate shares cancels in the differences.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F  # noqa: N812 - torch's own alias

from mora.training.chain import ROLES


def same_draws(generators: list[torch.Generator]) -> list[torch.Generator]:
    """Copies in the same state: the chosen and rejected videos, policy and reference, see one noise."""
    copies = []
    for g in generators:
        copy = torch.Generator(device=g.device)
        copy.set_state(g.get_state())
        copies.append(copy)
    return copies


class Reference:
    """The trained parameters as the iteration started (or ``start``: their values as the loop started), put
    in place for the reference's passes.

    Holds one copy of the trained parameters (the adapters and modulation embeddings under LoRA; the
    whole transformers under ``training.mode: full``, which doubles their memory)."""

    def __init__(self, params: list[torch.nn.Parameter], start: list[torch.Tensor] | None = None):
        self.params = params
        start = params if start is None else start
        if len(start) != len(params) or any(s.shape != p.shape for s, p in zip(start, params, strict=False)):
            raise ValueError("the reference's start values do not match the trained parameters")
        self.start = [s.detach().to(p.device, p.dtype).clone() for s, p in zip(start, params, strict=True)]

    @contextmanager
    def active(self) -> Iterator[None]:
        current = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for p, start in zip(self.params, self.start, strict=True):
                p.copy_(start)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, now in zip(self.params, current, strict=True):
                    p.copy_(now)


class PreferenceLoss:
    def __init__(self, beta: float, reference: Reference):
        self.beta, self.reference = beta, reference

    @staticmethod
    def errors(chain, batch: dict, generators: list[torch.Generator], mods: dict) -> dict[str, tuple]:
        """Each agent's per-example velocity error ``([B] chosen, [B] rejected)``, unweighted."""
        device = chain.t2i.transformer.device
        prompts, fps = batch["prompt"], float(batch["fps"][0])
        sides = {"chosen": (batch["frames"].to(device), batch["candidate_index"]),
                 "rejected": (batch["rejected"].to(device), batch["rejected_index"])}
        out: dict[str, list] = {role: [] for role in ROLES}
        for frames, candidates in sides.values():
            keys = [f"{s}/{c}" for s, c in zip(batch["set_id"], candidates, strict=True)]
            first = frames[:, 0]
            out["text_to_image"].append(chain.t2i(first, chain.t2i.encode(prompts), mods["text_to_image"],
                                                  same_draws(generators), None, keys, estimate=False)[0])
            out["image_to_video"].append(chain.i2v(frames, first, chain.i2v.encode(prompts), mods["image_to_video"],
                                                   fps, same_draws(generators), None, keys))
        return {role: tuple(v) for role, v in out.items()}

    def __call__(self, chain, batch: dict, generators: list[torch.Generator], mods: dict
                 ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Per-pair loss ``[B]`` (both agents') and each agent's ``[B]``."""
        with torch.no_grad(), self.reference.active():  # first: the policy's graph then sees its own weights
            reference = self.errors(chain, batch, generators, mods)
        policy = self.errors(chain, batch, generators, mods)
        weight = torch.tensor(batch["weight"], dtype=torch.float32, device=chain.t2i.transformer.device)
        losses = {}
        for role in ROLES:
            (chosen, rejected), (ref_chosen, ref_rejected) = policy[role], reference[role]
            margin = (chosen - rejected) - (ref_chosen - ref_rejected)
            losses[role] = -F.logsigmoid(-0.5 * self.beta * margin.float()) * weight
        return sum(losses.values()), losses
