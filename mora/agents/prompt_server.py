"""The prompt agent over an OpenAI-compatible API: GPT-4o (the paper's), a vLLM-served Llama 3, or
any compatible server writes and enhances the prompts. The ``openai`` client does the retries."""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor

from mora.agents.loading import once
from mora.agents.prompt_writer import PromptWriter
from mora.config import ConfigError, PromptConfig

PARALLEL = 8  # requests in flight at once: servers batch them


class ServedPromptAgent(PromptWriter):
    """``invent`` and ``enhance`` as the in-process agent does them, one chat request per ask."""

    def __init__(self, client, model: str, config: PromptConfig):
        self.client, self.model, self.ref = client, model, config.model
        self.max_new_tokens, self.temperature = config.max_new_tokens, config.temperature

    @classmethod
    def connect(cls, config: PromptConfig, field: str = "prompts") -> ServedPromptAgent:
        """The agent on the configured server, probed once per process (a refusal is a config error)."""
        s = config.server
        key = os.environ.get(s.api_key_env) if s.api_key_env else None
        model = s.served_model or config.model.id

        def probe():
            import openai

            client = openai.OpenAI(base_url=s.base_url, api_key=key or "EMPTY", timeout=s.timeout_s,
                                   max_retries=s.retries)
            try:
                client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Say yes."}],
                                               max_tokens=1)
            except openai.APIConnectionError:
                raise ConfigError(f"config field '{field}.server.base_url': nothing answers at {s.base_url}; start "
                                  "the prompt server (e.g. vllm serve MODEL) or fix the URL") from None
            except openai.AuthenticationError:
                raise ConfigError(f"config field '{field}.server.api_key_env': the server at {s.base_url} refused "
                                  f"the key; put a valid key in ${s.api_key_env}") from None
            except openai.APIStatusError as exc:
                raise ConfigError(f"config field '{field}.server.served_model': the server at {s.base_url} refused "
                                  f"a chat request for '{model}' (HTTP {exc.status_code}); set the name it serves"
                                  ) from None
            return client

        key_id = hashlib.sha256(key.encode()).hexdigest()[:12] if key else None  # the key itself stays out
        return cls(once(("prompt-server", s.base_url, model, key_id), probe), model, config)

    def _ask(self, message: str, seed: int) -> str:
        import openai

        try:
            out = self.client.chat.completions.create(
                model=self.model, messages=[{"role": "user", "content": message}], temperature=self.temperature,
                top_p=0.95, max_tokens=self.max_new_tokens, seed=seed)
        except openai.APIError:
            return ""  # retried by the client already; an empty answer is an unusable prompt
        return out.choices[0].message.content or ""

    def _chat(self, messages: list[str], seed: int) -> list[str]:
        # one seed per ask: the same question asked twice must be free to get two answers
        with ThreadPoolExecutor(min(PARALLEL, len(messages))) as pool:
            return list(pool.map(self._ask, messages, [seed + i for i in range(len(messages))]))
