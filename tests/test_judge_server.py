"""The OpenAI-compatible backend against a real server: `transformers serve` on 127.0.0.1.

vLLM (the production server) has no CPU build; `transformers serve` speaks the same API, started by
`python -m mora.judges.serve` so its processors work without torchvision. Features it lacks
(log-probabilities, structured outputs) must fail at the start with one line naming the field.
"""

import sys

import httpx
import numpy as np
import pytest

from mora.config import ConfigError, JudgeConfig, JudgeServer, ModelRef, RuntimeConfig
from mora.datasets.shards import data_dir
from mora.judges import load_judge
from mora.judges.http import OpenAIJudge, ServerPool, label_scores, valid_rankings
from tests.conftest import RANKING_ANSWER, free_port, serving
from tests.test_judges import _candidates


@pytest.fixture(scope="module")
def judge_server(taught_judges, tmp_path_factory):
    """A real OpenAI-compatible server on loopback serving the taught Qwen2-VL judge."""
    port, log = free_port(), tmp_path_factory.mktemp("server") / "serve.log"
    model = str(taught_judges["qwen2-vl"])
    with serving([sys.executable, "-m", "mora.judges.serve", model, "--port", port], port, log, "judge server") as url:
        yield {"base_url": f"{url}/v1", "model": model}


def _config(server, **kw) -> JudgeConfig:
    server_kw = {k: kw.pop(k) for k in ("constrained", "served_model", "retries") if k in kw}
    return JudgeConfig(name="http", family="qwen2-vl", model=ModelRef(id=server["model"]), backend="openai",
                       server=JudgeServer(base_url=server["base_url"], **server_kw), video_input="frames", **kw)


def test_free_text_over_http_gives_the_same_ranking_as_in_process(judge_server, taught_judges):
    http = load_judge(_config(judge_server, method="free-text", orders=3), RuntimeConfig())
    assert isinstance(http, OpenAIJudge)
    r = http.rank(_candidates(), seed=0)
    assert not r.abstained, r.reason
    assert r.backend == "openai" and [o["answer"] for o in r.per_order] == [RANKING_ANSWER] * 3
    local = JudgeConfig(name="local", family="qwen2-vl", model=ModelRef(id=judge_server["model"]), method="free-text",
                        orders=3, video_input="frames")
    same = load_judge(local, RuntimeConfig()).rank(_candidates(), seed=0)
    assert r.ranking == same.ranking and r.scores == pytest.approx(same.scores)


def test_several_servers_answer_the_orders_of_a_set_together(judge_server):
    # two URLs of the one real server (127.0.0.1 and localhost): requests alternate, several in flight
    url = judge_server["base_url"]
    urls = [url, url.replace("127.0.0.1", "localhost")]
    # five orders: a judge that answers by position would tie over four balanced ones and abstain
    one = load_judge(_config(judge_server, method="free-text", orders=5), RuntimeConfig())
    cfg = JudgeConfig(name="pool", family="qwen2-vl", model=ModelRef(id=judge_server["model"]), backend="openai",
                      method="free-text", orders=5, video_input="frames",
                      server=JudgeServer(base_url=urls, max_in_flight=4))
    many = load_judge(cfg, RuntimeConfig())
    a, b = one.rank(_candidates(), seed=0), many.rank(_candidates(), seed=0)
    assert not b.abstained and b.ranking == a.ranking
    assert [o["answer"] for o in b.per_order] == [o["answer"] for o in a.per_order]
    assert set(many.pool.sent) == {u + "/" for u in urls} and many.pool.sent[urls[1] + "/"] >= 2
    assert 1 < many.pool.peak <= 4


def test_a_list_of_servers_must_all_be_urls():
    with pytest.raises(ValueError, match="http://"):
        JudgeServer(base_url=["http://127.0.0.1:8000/v1", "127.0.0.1:8001"])


def test_label_scores_on_a_server_without_logprobs_fail_at_the_start_with_the_fix(judge_server):
    with pytest.raises(ConfigError, match=r"judges.1.method.*log-probabilities.*free-text") as err:
        load_judge(_config(judge_server), RuntimeConfig(), field="judges.1")
    assert "\n" not in str(err.value)


def test_constrained_answers_on_a_server_without_structured_outputs_fail_with_the_fix(judge_server):
    with pytest.raises(ConfigError, match=r"judges.server.constrained.*structured outputs.*constrained: false"):
        load_judge(_config(judge_server, method="free-text", constrained=True), RuntimeConfig())


def test_a_model_the_server_does_not_serve_is_named(judge_server):
    with pytest.raises(ConfigError, match=r"judges.server.served_model.*'elsewhere/model'"):
        load_judge(_config(judge_server, method="free-text", served_model="elsewhere/model"), RuntimeConfig())


def test_nothing_listening_is_a_one_line_error_naming_the_url():
    server = {"base_url": f"http://127.0.0.1:{free_port()}/v1", "model": "m"}
    with pytest.raises(ConfigError, match=r"judges.server.base_url.*nothing answers.*vllm serve"):
        load_judge(_config(server, method="free-text"), RuntimeConfig())


def test_a_server_that_goes_away_mid_round_gives_abstentions_not_crashes(judge_server):
    cfg = _config(judge_server, method="free-text", retries=1)
    gone = httpx.Client(base_url=f"http://127.0.0.1:{free_port()}/v1/", timeout=2)
    r = OpenAIJudge(cfg, ServerPool([gone], 1)).rank(_candidates(), seed=0)
    assert r.abstained and "did not answer after 2 tries" in r.reason


def test_vllm_shaped_logprobs_become_label_probabilities():
    """vLLM cannot run here; this is the answer shape its chat API returns with top_logprobs."""
    top = [{"token": " B", "logprob": np.log(0.5)}, {"token": "A", "logprob": np.log(0.2)},
           {"token": "The", "logprob": np.log(0.2)}, {"token": "D", "logprob": np.log(0.05)}]
    response = {"choices": [{"message": {"content": "B"}, "logprobs": {"content": [{"token": "B", "logprob": -0.7,
                                                                                    "top_logprobs": top}]}}]}
    probs = label_scores(response, 4)
    assert probs == pytest.approx([0.2 / 0.75, 0.5 / 0.75, 0.0, 0.05 / 0.75])
    from mora.judges.base import Abstain

    with pytest.raises(Abstain, match="no candidate letter"):
        label_scores({"choices": [{"logprobs": {"content": [{"top_logprobs": top[2:3]}]}}]}, 4)
    with pytest.raises(Abstain, match="no log-probabilities"):
        label_scores({"choices": [{"message": {"content": "B"}}]}, 4)
    assert len(valid_rankings(4)) == 24 and RANKING_ANSWER in valid_rankings(4)


@pytest.mark.slow
def test_a_round_with_one_judge_over_http_and_one_in_process(judge_server, taught_judges, tiny_config_file):
    """Both judges write the same ranking (one through the server): every set is accepted by agreement."""
    import pandas as pd

    from mora.config import load_config
    from mora.flows.round import dataset_round

    overrides = {"prompts.count": "2", "generation.num_frames": "9",
                 "judges.0.family": "qwen2-vl", "judges.0.model.id": judge_server["model"],
                 "judges.0.backend": "openai", "judges.0.server.base_url": judge_server["base_url"],
                 "judges.0.method": "free-text", "judges.0.orders": "3", "judges.0.video_input": "frames",
                 "judges.1.family": "llava-onevision", "judges.1.model.id": str(taught_judges["llava-onevision"]),
                 "judges.1.method": "free-text", "judges.1.orders": "3"}
    summary = dataset_round(str(tiny_config_file), overrides)
    cfg = load_config(tiny_config_file, overrides)
    df = pd.read_parquet(data_dir(cfg.shards.root, cfg.shards.dataset))
    assert summary["accepted"] == 2, df.groupby("set_id").decision_reason.first().tolist()
    assert summary["judge_agreement"] == 1.0
    judges = df.judges.iloc[0]
    assert [j["backend"] for j in judges] == ["openai", "transformers"]
    assert all(o["answer"] == RANKING_ANSWER for j in judges for o in j["per_order"])
    assert df[df.selected].candidate_index.tolist() == [j["ranking"][0] for j in df[df.selected].judges.map(
        lambda js: js[0])]
