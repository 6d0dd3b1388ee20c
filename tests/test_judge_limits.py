"""Judge requests end in bounded time: a deadline per request, a budget per set, against a real server
on 127.0.0.1 that trickles its answer one byte at a time (each read succeeds, so httpx's timeout,
which applies between reads, never trips)."""

import time

import httpx
import pytest

from mora.config import ConfigError, JudgeConfig, JudgeServer, ModelRef, RuntimeConfig
from mora.judges import load_judge
from mora.judges.http import OpenAIJudge, ServerPool
from tests.answer_server import AnswerServer, chat_answer
from tests.conftest import RANKING_ANSWER
from tests.test_judges import _candidates


def _judge(server: AnswerServer, orders=1, **server_kw) -> OpenAIJudge:
    cfg = JudgeConfig(name="slow", family="qwen2-vl", model=ModelRef(id="m"), backend="openai", method="free-text",
                      video_input="frames", frames_per_candidate=1, orders=orders,
                      server=JudgeServer(base_url=server.base_url, **server_kw))
    return OpenAIJudge(cfg, ServerPool([httpx.Client(base_url=server.base_url + "/", timeout=cfg.server.timeout_s)], 1))


def _trickle(request: dict) -> tuple[int, bytes, float]:
    return 200, chat_answer(RANKING_ANSWER), 0.2  # ~190 bytes: about 40 s in all


def test_a_trickling_server_hits_the_request_deadline_and_the_judge_abstains():
    with AnswerServer(_trickle) as server:
        judge = _judge(server, timeout_s=5, retries=0, deadline_s=1.5)
        start = time.monotonic()
        r = judge.rank(_candidates(), seed=0)
        took = time.monotonic() - start
    assert r.abstained and "request deadline of 1.5 s" in r.reason and "server.deadline_s" in r.reason
    # the deadline plus a read, far from the 40 s of the trickle: the margin is for a busy machine's scheduling
    assert took < 1.5 + 10, took


def test_retries_and_orders_stay_within_the_sets_budget():
    calls = []

    def flaky(request):  # every request a 503, then the same slow answer
        calls.append(time.monotonic())
        return (503, b"{}", 0) if len(calls) % 2 else _trickle(request)

    with AnswerServer(flaky) as server:
        judge = _judge(server, orders=3, timeout_s=5, retries=10, deadline_s=30, budget_s=2.0)
        start = time.monotonic()
        r = judge.rank(_candidates(), seed=0)
        took = time.monotonic() - start
    assert r.abstained and "budget of 2 s" in r.reason and "server.budget_s" in r.reason
    assert took < 2.0 + 10, took  # the budget, far from the 40 s each trickled answer takes
    assert len(calls) >= 2  # the 503 was retried inside the budget


def test_a_prompt_answer_within_the_limits_is_read_as_before():
    with AnswerServer(lambda request: (200, chat_answer(RANKING_ANSWER), 0)) as server:
        r = _judge(server, deadline_s=5, budget_s=10).rank(_candidates(), seed=0)
    assert not r.abstained and r.ranking == [1, 3, 0, 2] and r.per_order[0]["answer"] == RANKING_ANSWER


def test_a_server_that_trickles_the_probe_fails_the_start_with_the_field():
    with AnswerServer(_trickle) as server:
        cfg = JudgeConfig(name="slow", family="qwen2-vl", model=ModelRef(id="trickle"), backend="openai",
                          method="free-text", server=JudgeServer(base_url=server.base_url, deadline_s=1.0))
        start = time.monotonic()
        with pytest.raises(ConfigError, match=r"judges.server.deadline_s.*within 1 s") as err:
            load_judge(cfg, RuntimeConfig())
    assert time.monotonic() - start < 1.0 + 10 and "\n" not in str(err.value)  # not the 40 s of the trickle
