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


def wants_native_video(config: JudgeConfig, field: str) -> bool:
    if config.video_input == "frames":
        return False
    if config.video_input == "native" and not has_torchvision():
        raise ConfigError(f"config field '{field}.video_input': native video input needs torchvision, which does "
                          "not import here; set it to auto or frames")
    return has_torchvision()


class TransformersJudge(Judge):
    backend = "transformers"

    def __init__(self, config: JudgeConfig, model, processor, native_video: bool = False):
        super().__init__(config)
        self.model, self.processor, self.native_video = model, processor, native_video
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
        return cls(config, model, processor, native_video=native)

    def _inputs(self, candidates: CandidateSet, order: list[int]):
        n_frames = self.config.frames_per_candidate
        frames = [pick_frames(clip, n_frames) for clip in candidates.clips]
        if self.native_video:
            media, shown_as = (lambda c: [{"type": "video"}]), "as a video"
        else:
            media, shown_as = (lambda c: [{"type": "image"}] * len(frames[c])), f"as {n_frames} frames in time order"
        messages = judge_messages(candidates.prompt, candidates.criterion, order, self.config.method, media, shown_as)
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        if self.native_video:
            videos = [np.stack([np.asarray(f) for f in frames[c]]) for c in order]
            inputs = self.processor(text=[text], videos=videos, do_sample_frames=False, return_tensors="pt")
        else:
            shown: list[Image.Image] = [img for c in order for img in frames[c]]
            packed = [shown] if self.config.family == "llava-onevision" else shown
            inputs = self.processor(text=[text], images=packed, return_tensors="pt")
        return inputs.to(self.model.device)

    @torch.inference_mode()
    def ask(self, candidates: CandidateSet, order: list[int]) -> OrderAnswer:
        n = len(order)
        inputs = self._inputs(candidates, order)
        if self.config.method == "label-scores":
            if any(i is None for i in self.label_ids[:n]):
                raise Abstain("candidate labels are not single tokens for this tokenizer")
            logits = self.model(**inputs).logits[0, -1].float()
            probs = torch.softmax(logits[torch.tensor(self.label_ids[:n])], dim=-1).cpu().numpy()
            return OrderAnswer(scores=probs.astype(np.float64))
        out = self.model.generate(**inputs, max_new_tokens=self.config.max_new_tokens, do_sample=False)
        answer = self.processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        try:
            positions = parse_ranking(answer, n)
        except Unparseable as exc:
            raise Abstain(str(exc)) from None
        return OrderAnswer(scores=np.array(borda(positions, n)), answer=answer[:200])
