"""Judge servers that stop answering cost a night bounded time: a circuit breaker per server, a limit per
round on waiting for servers that bring no answer, other servers taking a down server's share, and broken
servers found in one line before a round plans its prompts. Every server here is a real HTTP server on
127.0.0.1 (tests/answer_server.py) that a test switches between answering, trickling and failing."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from mora.config import JudgeConfig, JudgeServer, ModelRef
from mora.judges.http import OpenAIJudge
from tests.answer_server import AnswerServer, chat_answer
from tests.conftest import RANKING_ANSWER, free_port, write_tiny_config
from tests.test_cli import mora
from tests.test_judges import _candidates


class Switch:
    """A server's behaviour, switched by the test: answer at once, trickle one byte per 0.2 s, or fail."""

    def __init__(self, answer: bytes = chat_answer(RANKING_ANSWER)):
        self.mode, self.answer = "answer", answer

    def __call__(self, request: dict) -> tuple[int, bytes, float]:
        if self.mode == "trickle":
            return 200, self.answer, 0.2
        if self.mode == "fail":
            return 500, b'{"error": "engine dead"}', 0
        return 200, self.answer, 0


def _connect(urls: list[str], orders: int = 1, method: str = "free-text", **server_kw) -> OpenAIJudge:
    """A judge through the round's own path: every server probed at the start, breaker and probe wired."""
    server_kw = {"timeout_s": 5, "deadline_s": 1.0, "retries": 0, **server_kw}
    cfg = JudgeConfig(name="served", family="qwen2-vl", model=ModelRef(id="m"), backend="openai", method=method,
                      video_input="frames", frames_per_candidate=1, orders=orders, max_new_tokens=24,
                      server=JudgeServer(base_url=urls if len(urls) > 1 else urls[0], max_in_flight=1, **server_kw))
    return OpenAIJudge.connect(cfg)


def test_a_server_that_keeps_missing_its_deadline_is_marked_down_and_the_judge_abstains_at_once():
    """It cost deadline_s on every set (a trickling server held each set ~362 s, 16 sets ~97 min)."""
    switch = Switch()
    with AnswerServer(switch) as server:
        judge = _connect([server.base_url], breaker={"misses": 2, "cool_off_s": 3600})
        switch.mode, before = "trickle", server.requests
        verdicts = [judge.rank(_candidates(), seed=i) for i in range(5)]
        sent = server.requests - before
    assert all(v.abstained for v in verdicts)
    assert sent == 2  # two misses mark it down: the next three sets send it nothing
    assert "request deadline of 1 s" in verdicts[0].reason and "server.deadline_s" in verdicts[0].reason
    for later in verdicts[2:]:  # abstained at once, naming the server and the setting
        assert server.base_url in later.reason and "server.breaker.misses" in later.reason, later.reason


def test_a_down_server_is_probed_after_its_cool_off_and_takes_sets_again_once_it_answers():
    switch = Switch()
    with AnswerServer(switch) as server:
        judge = _connect([server.base_url], breaker={"misses": 1, "cool_off_s": 0.2})
        switch.mode = "fail"  # HTTP 500: no answer, as a crashed engine behind a live proxy gives
        assert judge.rank(_candidates(), seed=0).abstained
        assert not judge.pool.up(judge.pool.clients[0])
        switch.mode = "answer"
        deadline, verdict = time.monotonic() + 60, None
        while time.monotonic() < deadline:  # each set asks; after the cool-off one starts a probe
            verdict = judge.rank(_candidates(), seed=1)
            if not verdict.abstained:
                break
            assert "server.breaker" in verdict.reason, verdict.reason
            time.sleep(0.05)
    assert verdict is not None and not verdict.abstained and verdict.ranking == [1, 3, 0, 2]


def test_with_several_servers_a_down_servers_requests_go_to_the_others():
    trickling, healthy = Switch(), Switch()
    with AnswerServer(trickling) as slow, AnswerServer(healthy) as good:
        judge = _connect([slow.base_url, good.base_url], orders=3, retries=2,
                         breaker={"misses": 1, "cool_off_s": 3600})
        trickling.mode, before = "trickle", slow.requests
        verdicts = [judge.rank(_candidates(), seed=i) for i in range(4)]
        to_slow = slow.requests - before
    assert [v.abstained for v in verdicts] == [False] * 4, [v.reason for v in verdicts]
    assert to_slow == 1  # its one missed deadline, retried on the other server; after that it gets nothing
    assert judge.pool.sent[good.base_url + "/"] >= 12


def test_a_server_that_is_down_at_the_start_leaves_the_others_to_judge():
    with AnswerServer(Switch()) as good:
        gone = f"http://127.0.0.1:{free_port()}/v1"
        judge = _connect([gone, good.base_url], orders=3)
        verdict = judge.rank(_candidates(), seed=0)
    assert not verdict.abstained and not judge.pool.up(judge.pool.clients[0])


def test_a_round_waits_on_servers_without_answers_no_longer_than_its_limit():
    switch = Switch()
    with AnswerServer(switch) as server:
        judge = _connect([server.base_url], round_budget_s=1.5, budget_s=60, breaker={"misses": 100})
        switch.mode, before = "trickle", server.requests
        verdicts = [judge.rank(_candidates(), seed=i) for i in range(4)]
        sent = server.requests - before
    assert all(v.abstained for v in verdicts)
    assert sent == 2  # 1 s missed, then the 0.5 s left of the limit; the rest of the round sends nothing
    assert "server.round_budget_s" in verdicts[1].reason
    assert "server.round_budget_s" in verdicts[3].reason and "abstains at once" in verdicts[3].reason


def _logprob_answer(logprob: float) -> bytes:
    """A vLLM-shaped label-scores answer whose first token claims ``logprob`` for the letter A."""
    top = [{"token": "A", "logprob": logprob}, {"token": "B", "logprob": -12.0}, {"token": "C", "logprob": -13.0},
           {"token": "D", "logprob": -14.0}]
    return json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": "A"},
                                    "logprobs": {"content": [{"token": "A", "logprob": -0.1,
                                                              "top_logprobs": top}]}}]}).encode()


@pytest.mark.parametrize("logprob", [0.7, 1e308, float("inf")])
def test_a_positive_log_probability_is_no_certainty_but_an_abstention(logprob):
    with AnswerServer(Switch(_logprob_answer(logprob))) as server:
        verdict = _connect([server.base_url], method="label-scores").rank(_candidates(), seed=0)
    assert verdict.abstained and "log-probabilit" in verdict.reason, verdict.reason


def test_log_probabilities_rounded_a_hair_above_zero_are_read():
    with AnswerServer(Switch(_logprob_answer(1e-7))) as server:
        verdict = _connect([server.base_url], method="label-scores").rank(_candidates(), seed=0)
    assert not verdict.abstained and verdict.ranking[0] == 0


@pytest.fixture(scope="module")
def broken_servers(tmp_path_factory, tiny_models):
    """`mora round` against a judge server that refuses connections, answers 500, or answers non-JSON."""
    tmp = tmp_path_factory.mktemp("broken-judges")
    cfg = str(write_tiny_config(tiny_models, tmp))
    replies = {"500": lambda request: (500, b"Internal Server Error", 0),
               "not-json": lambda request: (200, b"<html>a login page</html>", 0)}
    with AnswerServer(replies["500"]) as failing, AnswerServer(replies["not-json"]) as garbage:
        urls = {"refused": f"http://127.0.0.1:{free_port()}/v1", "500": failing.base_url,
                "not-json": garbage.base_url}
        methods = {"refused": "label-scores", "500": "label-scores", "not-json": "free-text"}
        with ThreadPoolExecutor(3) as pool:
            futures = {case: pool.submit(mora, "round", "--config", cfg, "--set", "judges.1.backend=openai",
                                         "--set", f"judges.1.server.base_url={url}",
                                         "--set", f"judges.1.method={methods[case]}",
                                         env={"PREFECT_HOME": str(tmp / f"prefect-{case}")})
                       for case, url in urls.items()}
            outs = {case: future.result() for case, future in futures.items()}
    return outs, tmp / "data"


@pytest.mark.parametrize("case", ["refused", "500", "not-json"])
def test_a_broken_judge_server_is_one_line_before_prompt_planning_naming_base_url(broken_servers, case):
    """They gave two Prefect tracebacks first, after the prompts were planned, and a 500 or non-JSON answer
    named judges.N.method (a config change that would not help) or went unnoticed until every set abstained."""
    outs, root = broken_servers
    out = outs[case]
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2, out.stderr[-3000:]
    assert len(lines) == 1 and "Traceback" not in out.stdout + out.stderr, out.stderr[-3000:]
    assert "judges.1.server.base_url" in lines[0] and "127.0.0.1" in lines[0], lines[0]
    assert not list(root.glob("_state/tiny/rounds/*/prompts.json"))  # nothing planned: found in the pre-flight
