"""Judges rank candidate sets; see ``base.Judge`` for the interface and ``verdict`` for the decision."""

from __future__ import annotations

from mora.config import JudgeConfig, RuntimeConfig
from mora.judges.base import CandidateSet, Judge


def load_judge(config: JudgeConfig, runtime: RuntimeConfig, field: str = "judges") -> Judge:
    """The configured backend; models and server connections are set up once per worker process."""
    if config.backend == "openai":
        from mora.judges.http import OpenAIJudge

        return OpenAIJudge.connect(config, field)
    from mora.judges.local import TransformersJudge

    return TransformersJudge.from_pretrained(config, runtime, field)


__all__ = ["CandidateSet", "Judge", "load_judge"]
