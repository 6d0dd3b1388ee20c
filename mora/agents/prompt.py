"""The prompt agent in process: a chat LLM loaded once (``prompt_server`` asks a server instead)."""

from __future__ import annotations

import torch

from mora.agents.loading import cached, torch_dtype
from mora.agents.prompt_writer import PromptWriter
from mora.config import ModelRef, PromptConfig, RuntimeConfig


def load_prompt_agent(config: PromptConfig, runtime: RuntimeConfig) -> PromptWriter | None:
    """The preset's prompt agent: in process (``backend: transformers``) or on an OpenAI-compatible server."""
    if config.model is None:
        return None
    if config.backend == "openai":
        from mora.agents.prompt_server import ServedPromptAgent

        return ServedPromptAgent.connect(config)
    return PromptAgent.from_pretrained(config.model, runtime, max_new_tokens=config.max_new_tokens,
                                       temperature=config.temperature)


class PromptAgent(PromptWriter):
    """A chat LLM loaded once; ``invent`` and ``enhance`` are batched generate calls."""

    def __init__(self, model, tokenizer, ref: ModelRef, max_new_tokens: int = 64, temperature: float = 0.9):
        self.model, self.tokenizer, self.ref = model, tokenizer, ref
        self.max_new_tokens, self.temperature = max_new_tokens, temperature
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "left"

    @classmethod
    def from_pretrained(cls, ref: ModelRef, runtime: RuntimeConfig, **kwargs) -> PromptAgent:
        def load():
            from transformers import AutoModelForCausalLM, AutoTokenizer

            tok = AutoTokenizer.from_pretrained(ref.id, revision=ref.revision)
            model = AutoModelForCausalLM.from_pretrained(ref.id, revision=ref.revision, dtype=torch_dtype(runtime))
            return model.to(runtime.device).eval(), tok

        model, tok = cached("prompt", ref, runtime, load)
        return cls(model, tok, ref, **kwargs)

    @torch.inference_mode()
    def _chat(self, messages: list[str], seed: int) -> list[str]:
        texts = [self.tokenizer.apply_chat_template([{"role": "user", "content": m}], tokenize=False,
                                                   add_generation_prompt=True) for m in messages]
        batch = self.tokenizer(texts, return_tensors="pt", padding=True).to(self.model.device)
        torch.manual_seed(seed)
        out = self.model.generate(**batch, do_sample=True, temperature=self.temperature, top_p=0.95,
                                  max_new_tokens=self.max_new_tokens, pad_token_id=self.tokenizer.pad_token_id)
        return self.tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
