"""The prompt agent over an OpenAI-compatible API, against a real `transformers serve` on 127.0.0.1.

GPT-4o's API or a vLLM-served Llama 3 speak the same protocol; here the tiny prompt LLM, taught one
answer (mora.models.taught) so that what comes back over HTTP can be checked word for word.
"""

import sys
from pathlib import Path

import pytest

from mora.agents.prompt import PromptAgent, load_prompt_agent
from mora.agents.prompt_server import ServedPromptAgent
from mora.config import ConfigError, ModelRef, PromptConfig, RuntimeConfig, load_config
from mora.round.steps import plan_prompts
from tests.conftest import free_port, serving, write_tiny_config

ANSWER = "a lighthouse on a cliff at night, waves crashing below"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def taught_prompt(tiny_models, tmp_path_factory) -> Path:
    from mora.models.taught import teach_prompt

    return teach_prompt(tiny_models / "prompt-llm", ANSWER, tmp_path_factory.mktemp("taught") / "prompt-llm")


@pytest.fixture(scope="module")
def prompt_server(taught_prompt, tmp_path_factory):
    port, log = free_port(), tmp_path_factory.mktemp("prompt-server") / "serve.log"
    serve = Path(sys.executable).parent / "transformers"
    command = [serve, "serve", taught_prompt, "--host", "127.0.0.1", "--port", port, "--device", "cpu"]
    with serving(command, port, log, "prompt server") as url:
        yield f"{url}/v1"


def _config(model: Path, base_url: str, **server) -> PromptConfig:
    return PromptConfig(model=ModelRef(id=str(model)), backend="openai", max_new_tokens=32,
                        server={"base_url": base_url, **server})


def test_the_served_agent_invents_and_enhances_as_the_in_process_one(prompt_server, taught_prompt):
    served = load_prompt_agent(_config(taught_prompt, prompt_server), RuntimeConfig())
    assert isinstance(served, ServedPromptAgent)
    assert served.enhance(["a fox", "a boat"], seed=1) == [ANSWER, ANSWER]
    assert served.invent(["a fox in snow"], 3, seed=1) == [ANSWER]  # three asks, one distinct prompt
    local = PromptAgent.from_pretrained(ModelRef(id=str(taught_prompt)), RuntimeConfig(), max_new_tokens=32)
    assert local.enhance(["a fox"], seed=1) == served.enhance(["a fox"], seed=1)


def test_a_round_plans_its_prompts_with_the_served_agent(prompt_server, taught_prompt, tiny_models, tmp_path):
    config = load_config(write_tiny_config(tiny_models, tmp_path), {
        "prompts.count": "3", "prompts.backend": "openai", "prompts.model.id": str(taught_prompt),
        "prompts.server.base_url": prompt_server})
    planned = plan_prompts(config, load_prompt_agent(config.prompts, config.runtime))
    assert planned[0].prompt == ANSWER and planned[0].source == "llm"
    assert [p.source for p in planned[1:]] == ["synthesizer", "synthesizer"]  # the top-up of distinct prompts
    assert all(p.enhanced == ANSWER and p.enhanced_by == str(taught_prompt) for p in planned)
    assert load_config(write_tiny_config(tiny_models, tmp_path)).round_id.split("-")[-1] != config.fingerprint()


def test_server_mistakes_are_one_line_config_errors(prompt_server, taught_prompt):
    with pytest.raises(ConfigError, match=r"prompts.server.served_model.*'elsewhere/model'") as err:
        load_prompt_agent(_config(taught_prompt, prompt_server, served_model="elsewhere/model"), RuntimeConfig())
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=r"prompts.server.base_url.*nothing answers"):
        load_prompt_agent(_config(taught_prompt, f"http://127.0.0.1:{free_port()}/v1"), RuntimeConfig())
    with pytest.raises(ValueError, match="backend 'openai' needs server.base_url"):
        PromptConfig(model=ModelRef(id="m"), backend="openai")
