"""The in-process transformers backend (Qwen2-VL, Qwen2.5-VL, LLaVA-OneVision), CPU or GPU.

Label scores: one forward pass per order, ranked by the softmax over the candidate letters' logits
at the answer position; nothing is generated, so nothing can fail to parse. Free text: a greedy
answer read by the strict parser. Where torchvision imports, candidates go in as videos (the models'
native video input); otherwise as frames sampled with PyAV, given as images.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from mora.agents.loading import cached, torch_dtype
from mora.config import ConfigError, JudgeConfig, RuntimeConfig
from mora.judges.asking import LABELS, judge_messages
from mora.judges.base import Abstain, CandidateSet, Judge, OrderAnswer
from mora.judges.parsing import Unparseable, borda, parse_ranking
from mora.judges.processors import has_torchvision, load_processor
from mora.media import pick_frames

FAMILIES = {"qwen2-vl": {"qwen2_vl", "qwen2_5_vl"}, "llava-onevision": {"llava_onevision"}}


def wants_native_video(config: JudgeConfig, field: str) -> bool:
    if config.video_input == "frames":
        return False
    if config.video_input == "native" and not has_torchvision():
        raise ConfigError(f"config field '{field}.video_input': native video input needs torchvision, which does "
                          "not import here; set it to auto or frames")
    return has_torchvision()


def media_in_place(processor) -> bool:
    """Whether the processor's chat template renders an image where it stands among the text parts.

    Qwen2-VL's does. LLaVA-OneVision's published template renders every image of a turn first, then
    every text part, which would leave "Candidate A:" ... "Candidate D:" after all 32 frames.
    """
    if getattr(processor, "_mora_media_in_place", None) is None:
        probe = [{"role": "user", "content": [{"type": "text", "text": "\u2460"}, {"type": "image"},
                                              {"type": "text", "text": "\u2461"}]}]
        text = processor.apply_chat_template(probe, add_generation_prompt=True, tokenize=False)
        image = text.find(processor.image_token)
        processor._mora_media_in_place = 0 <= text.find("\u2460") < image < text.find("\u2461")
    return processor._mora_media_in_place


def chat_text(processor, messages: list[dict]) -> str:
    """The prompt as the model's chat template writes it, every image or video where the message puts it.

    Where the template moves media (see ``media_in_place``), each turn is given to it as one text part with
    the processor's image and video tokens written in place; the processor expands them as usual.
    """
    if not media_in_place(processor):
        marks = {"image": processor.image_token, "video": getattr(processor, "video_token", None)}
        messages = [{"role": m["role"], "content": [{"type": "text", "text": "".join(
            part["text"] if part["type"] == "text" else marks[part["type"]] for part in m["content"])}]}
            for m in messages]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


class TransformersJudge(Judge):
    backend = "transformers"

    def __init__(self, config: JudgeConfig, model, processor, native_video: bool = False):
        super().__init__(config)
        self.model, self.processor, self.native_video = model, processor, native_video
        text_config = getattr(model.config, "text_config", model.config)
        self.context = getattr(text_config, "max_position_embeddings", None)
        tok = processor.tokenizer
        self.label_ids = []
        for label in LABELS:
            ids = tok.encode(label, add_special_tokens=False)
            self.label_ids.append(ids[0] if len(ids) == 1 else None)

    @classmethod
    def from_pretrained(cls, config: JudgeConfig, runtime: RuntimeConfig, field: str = "judges") -> TransformersJudge:
        native = wants_native_video(config, field)

        def load():
            from transformers import AutoModelForImageTextToText

            model = AutoModelForImageTextToText.from_pretrained(config.model.id, revision=config.model.revision,
                                                                dtype=torch_dtype(runtime))
            return model.to(runtime.device).eval(), load_processor(config.model.id, config.model.revision)

        model, processor = cached("judge", config.model, runtime, load)
        kind = model.config.model_type
        if kind not in FAMILIES[config.family]:
            fits = next((name for name, kinds in FAMILIES.items() if kind in kinds), None)
            raise ConfigError(f"config field '{field}.family': '{config.model.id}' is a {kind} model, not "
                              f"{config.family}" + (f"; set family: {fits}" if fits else "; point it at a Qwen2-VL "
                                                    "or LLaVA-OneVision model"))
        return cls(config, model, processor, native_video=native)

    def _inputs(self, candidates: CandidateSet, order: list[int]):
        n_frames = self.config.frames_per_candidate
        frames = [pick_frames(clip, n_frames) for clip in candidates.clips]
        if self.native_video:
            media, shown_as = (lambda c: [{"type": "video"}]), "as a video"
        else:
            media, shown_as = (lambda c: [{"type": "image"}] * len(frames[c])), f"as {n_frames} frames in time order"
        messages = judge_messages(candidates.prompt, candidates.criterion, order, media, shown_as)
        text = chat_text(self.processor, messages)
        if self.native_video:
            videos = [np.stack([np.asarray(f) for f in frames[c]]) for c in order]
            inputs = self.processor(text=[text], videos=videos, do_sample_frames=False, return_tensors="pt")
        else:
            shown: list[Image.Image] = [img for c in order for img in frames[c]]
            packed = [shown] if self.config.family == "llava-onevision" else shown
            inputs = self.processor(text=[text], images=packed, return_tensors="pt")
        length = inputs["input_ids"].shape[1] + (self.config.max_new_tokens if self.config.method == "free-text" else 0)
        if self.context and length > self.context:  # past it positions were never trained: the answer is noise
            raise Abstain(f"the set takes {length} tokens, more than the model's context of {self.context}; lower "
                          f"frames_per_candidate ({self.config.frames_per_candidate}) or the frame size")
        return inputs.to(self.model.device)

    def _all_orders(self, candidates: CandidateSet, orders: list[list[int]]):
        """One batch holding every order, each frame processed once.

        The text is the same in every order (the letters stay in place, the candidates move), so the
        first order's inputs are reused with the frames' pixel rows permuted; the batch needs no
        padding. Returns None where that does not hold (native video, frames of different sizes).
        """
        if self.native_video:
            return None
        inputs = self._inputs(candidates, orders[0])
        per_frame = self.config.frames_per_candidate
        if self.config.family == "qwen2-vl":
            rows = inputs["image_grid_thw"].prod(-1).tolist()
            chunks, grids = list(inputs["pixel_values"].split(rows)), list(inputs["image_grid_thw"])
        else:
            chunks, grids = list(inputs["pixel_values"]), list(inputs["image_sizes"])
        if len(chunks) != len(orders[0]) * per_frame or len({tuple(g.tolist()) for g in grids}) != 1:
            return None
        frames_of = {c: range(pos * per_frame, (pos + 1) * per_frame) for pos, c in enumerate(orders[0])}
        picks = [i for order in orders for c in order for i in frames_of[c]]
        k = len(orders)
        batch = {key: inputs[key].repeat(k, 1) for key in ("input_ids", "attention_mask", "mm_token_type_ids")
                 if key in inputs}
        if self.config.family == "qwen2-vl":
            batch["pixel_values"] = torch.cat([chunks[i] for i in picks])
            batch["image_grid_thw"] = torch.stack([grids[i] for i in picks])
        else:
            batch["pixel_values"] = torch.stack([chunks[i] for i in picks])
            batch["image_sizes"] = torch.stack([grids[i] for i in picks])
            batch["batch_num_images"] = torch.full((k,), len(chunks), dtype=inputs["batch_num_images"].dtype)
        return batch

    def _label_scores(self, inputs, n: int) -> list[OrderAnswer]:
        """One answer per row of ``inputs``: the softmax over the candidate letters at the answer position."""
        logits = self.model(**inputs, logits_to_keep=1).logits[:, -1].float()
        probs = torch.softmax(logits[:, torch.tensor(self.label_ids[:n])], dim=-1).cpu().numpy()
        return [OrderAnswer(scores=p.astype(np.float64)) for p in probs]

    @torch.inference_mode()
    def ask_all(self, candidates: CandidateSet, orders: list[list[int]]) -> list[OrderAnswer]:
        if self.config.method != "label-scores":
            return super().ask_all(candidates, orders)
        n = len(orders[0])
        if any(i is None for i in self.label_ids[:n]):
            raise Abstain("candidate labels are not single tokens for this tokenizer")
        batch = self._all_orders(candidates, orders)
        if batch is None:  # one order at a time
            return [self._label_scores(self._inputs(candidates, order), n)[0] for order in orders]
        return self._label_scores(batch, n)

    @torch.inference_mode()
    def ask(self, candidates: CandidateSet, order: list[int]) -> OrderAnswer:
        """Free text: a greedy answer read by the strict parser (label scores go through ``ask_all``)."""
        n = len(order)
        inputs = self._inputs(candidates, order)
        out = self.model.generate(**inputs, max_new_tokens=self.config.max_new_tokens, do_sample=False)
        answer = self.processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        try:
            positions = parse_ranking(answer, n)
        except Unparseable as exc:
            raise Abstain(str(exc)) from None
        return OrderAnswer(scores=np.array(borda(positions, n)), answer=answer[:200])
