"""The OpenAI-compatible backend: how vLLM serves the judges in production.

Label scores ask for one answer token with its top log-probabilities and read the candidate letters
from them; free text reads a written ranking strictly, optionally restricted by vLLM's structured
outputs to the valid orderings. Before the first set the server is probed once with the features the
method needs, so a server that cannot do them fails the round at the start with one line naming the
field to change, instead of sending every set to review. Each server has a circuit breaker
(``mora.judges.servers``), and each round a limit on waiting for servers that bring no answer.
"""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import math
import os
import time

import httpx
import numpy as np
from PIL import Image

from mora.agents.loading import once
from mora.config import ConfigError, JudgeConfig
from mora.judges.asking import LABELS, judge_messages
from mora.judges.base import Abstain, CandidateSet, Judge, OrderAnswer
from mora.judges.deadline import DeadlineExceeded, Limits, post_by
from mora.judges.parsing import Unparseable, borda, parse_ranking
from mora.judges.servers import ServerDown, ServerPool, url_of
from mora.media import pick_frames

LOGPROB_SLACK = 1e-4  # rounding of a log-softmax in low precision: 0 may come back a hair above
PROBABILITY_SLACK = 0.01  # the same rounding, over the reported tokens together


def image_part(image: Image.Image) -> dict:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=90)
    return {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(buf.getvalue())
                                               .decode()}}


def video_part(mp4: bytes) -> dict:
    return {"type": "video_url", "video_url": {"url": "data:video/mp4;base64," + base64.b64encode(mp4).decode()}}


def label_scores(response: dict, n: int) -> np.ndarray:
    """Per-position probabilities of the letters among the first answer token's top log-probabilities.

    A letter the server did not report is less likely than every reported token: it scores 0.
    """
    try:
        top = response["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
        pairs = [(str(t["token"]).strip(), float(t["logprob"])) for t in top]
    except (KeyError, IndexError, TypeError, ValueError, OverflowError):
        raise Abstain("the server's answer carries no log-probabilities for the first token") from None
    for token, logprob in pairs:  # a log-probability is at most 0: 1e308 is no certainty but a broken answer
        if math.isnan(logprob) or logprob > LOGPROB_SLACK:
            raise Abstain(f"the server reported a log-probability of {logprob:g} for {token!r}: not a probability "
                          "(log-probabilities are at most 0)")
    total = sum(math.exp(min(logprob, 0.0)) for _, logprob in pairs)
    if total > 1 + PROBABILITY_SLACK:
        raise Abstain(f"the server's top answer tokens have probabilities that add up to {total:.3g}, over 1")
    probs = np.zeros(n)
    for token, logprob in pairs:
        if len(token) == 1 and token in LABELS[:n]:
            probs[LABELS.index(token)] += math.exp(min(logprob, 0.0))
    if probs.sum() <= 0:
        raise Abstain(f"no candidate letter among the server's top {len(pairs)} answer tokens")
    return probs / probs.sum()


def answer_text(response: dict) -> str:
    try:
        text = response["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise Abstain("the server's answer has no message content") from None
    return text if isinstance(text, str) else ""


def valid_rankings(n: int) -> list[str]:
    return [" > ".join(LABELS[i] for i in p) for p in itertools.permutations(range(n))]


class OpenAIJudge(Judge):
    backend = "openai"

    def __init__(self, config: JudgeConfig, pool: ServerPool):
        super().__init__(config)
        self.pool, self.server = pool, config.server
        self.limits: Limits | None = None  # set per candidate set by ask_all
        self.waited_s = 0.0  # this round (this judge's life): time its sets waited on servers that did not answer
        self._unanswered = False  # a request of the current set brought no answer

    @classmethod
    def connect(cls, config: JudgeConfig, field: str = "judges") -> OpenAIJudge:
        """A judge on the configured servers, each probed once per process.

        A server that does not answer the probe starts marked down when another one answers (its breaker
        probes it again later); when none answers, or one refuses what the method needs, the round does
        not start.
        """
        s = config.server
        key = os.environ.get(s.api_key_env) if s.api_key_env else None
        headers = {"Authorization": f"Bearer {key}"} if key else {}

        def probe() -> ServerPool:
            clients, silent = [], {}
            for url in s.urls:
                client = httpx.Client(base_url=url.rstrip("/") + "/", headers=headers, timeout=s.timeout_s)
                try:
                    _probe(client, config, field)
                except NoAnswer as exc:
                    silent[url] = exc
                clients.append(client)
            if len(silent) == len(clients):
                raise next(iter(silent.values()))
            pool = ServerPool(clients, s.max_in_flight, s.breaker, lambda client: _answers(client, config))
            for client, url in zip(clients, s.urls, strict=True):
                if url in silent:
                    pool.mark_down(client, f"no answer at the start: {silent[url].why}")
            return pool

        key_id = hashlib.sha256(key.encode()).hexdigest()[:12] if key else None  # the key itself stays out
        pool = once(("judge-server", tuple(s.urls), s.served_model or config.model.id, config.method,
                     s.constrained, s.top_logprobs, s.max_in_flight, key_id), probe)
        return cls(config, pool)

    def body(self, messages: list[dict], n: int) -> dict:
        s = self.server
        body = {"model": s.served_model or self.config.model.id, "messages": messages, "temperature": 0.0}
        if self.config.method == "label-scores":
            body.update(max_tokens=1, logprobs=True, top_logprobs=s.top_logprobs)
        else:
            body["max_tokens"] = self.config.max_new_tokens
            if s.constrained:
                body["structured_outputs"] = {"choice": valid_rankings(n)}
        return body

    def ask_all(self, candidates: CandidateSet, orders: list[list[int]]) -> list[OrderAnswer]:
        """Every order at once, spread over the servers, all within the set's judging budget and what is left
        of the round's limit on waiting for servers that bring no answer."""
        s = self.server
        left = None if s.round_budget_s is None else s.round_budget_s - self.waited_s
        if left is not None and left <= 0:
            raise Abstain(f"judge servers kept this round waiting {self.waited_s:.0f} s without an answer, the "
                          f"limit is {s.round_budget_s:g} s (server.round_budget_s): the judge abstains at once on "
                          "the rest of the round")
        self.limits, self._unanswered = Limits.start(s.budget_s, s.deadline_s, left), False
        start = time.monotonic()
        try:
            return self.pool.map(lambda order: self.ask(candidates, order), orders)
        finally:
            if self._unanswered:
                self.waited_s += time.monotonic() - start
            self.limits = None

    def post(self, body: dict) -> dict:
        """The server's answer; transport errors and 5xx are retried, then the set is abstained on.

        Every try ends by its deadline (``server.deadline_s``) and all tries of the set by its budget
        (``server.budget_s``): a server that trickles its answer costs bounded time, then an abstention.
        A try that brings no answer counts against its server's breaker; the next try goes to another
        server where one is up (after a missed deadline only then: the same server would miss it again).
        """
        s = self.server
        limits = self.limits or Limits.start(s.budget_s, s.deadline_s)
        last, failed = "", None
        for attempt in range(s.retries + 1):
            if attempt and (failed is None or not self.pool.others_up(failed)):
                time.sleep(max(0.0, min(0.5 * 2 ** (attempt - 1), 5.0, limits.left())))
            if limits.left() <= 0:
                raise Abstain(f"{limits.ran_out} after {attempt} tries ({last})")
            try:
                client = self.pool.next(avoid=failed)
            except ServerDown as exc:
                raise Abstain(str(exc)) from None
            own_deadline = limits.own_deadline()
            try:
                resp = post_by(client, "chat/completions", body, s.timeout_s, limits.request_ends())
            except DeadlineExceeded:
                self._unanswered = True
                if not own_deadline:
                    raise Abstain(f"{limits.ran_out} during a request to {url_of(client)}") from None
                self.pool.missed(client, f"no whole answer within the request deadline of {s.deadline_s:g} s")
                last, failed = f"{url_of(client)}: no whole answer within {s.deadline_s:g} s", client
                if self.pool.others_up(client):
                    continue
                raise Abstain(f"the server at {url_of(client)} sent no whole answer within the request deadline of "
                              f"{s.deadline_s:g} s (server.deadline_s)") from None
            except httpx.TransportError as exc:
                self._unanswered = True
                self.pool.missed(client, type(exc).__name__)
                last, failed = f"{type(exc).__name__}", client
                continue
            except httpx.HTTPError as exc:
                raise Abstain(f"the server's answer cannot be read ({type(exc).__name__})") from None
            if resp.status_code >= 500:
                self._unanswered = True
                self.pool.missed(client, f"HTTP {resp.status_code}")
                last, failed = f"HTTP {resp.status_code}", client
                continue
            self.pool.answered(client)
            if resp.status_code >= 400:
                raise Abstain(f"the server refused the request (HTTP {resp.status_code}): {resp.text[:160]}")
            try:
                return resp.json()
            except ValueError:
                raise Abstain("the server's answer is not JSON") from None
        raise Abstain(f"the server did not answer after {s.retries + 1} tries ({last})")

    def ask(self, candidates: CandidateSet, order: list[int]) -> OrderAnswer:
        n = len(order)
        if self.config.video_input == "native" and candidates.videos:
            media, shown_as = (lambda c: [video_part(candidates.videos[c])]), "as a video"
        else:
            count = self.config.frames_per_candidate
            frames = [[image_part(f) for f in pick_frames(clip, count)] for clip in candidates.clips]
            media, shown_as = (lambda c: frames[c]), f"as {count} frames in time order"
        messages = judge_messages(candidates.prompt, candidates.criterion, order, media, shown_as)
        response = self.post(self.body(messages, n))
        if self.config.method == "label-scores":
            return OrderAnswer(scores=label_scores(response, n))
        answer = answer_text(response)
        try:
            positions = parse_ranking(answer, n)
        except Unparseable as exc:
            raise Abstain(str(exc)) from None
        return OrderAnswer(scores=np.array(borda(positions, n)), answer=answer[:200])


class NoAnswer(ConfigError):  # noqa: N818 - a config error whose cause may be passing
    """The server gave no usable answer to the probe (not there, 5xx, too slow, not an OpenAI answer)."""

    def __init__(self, message: str, why: str):
        super().__init__(message)
        self.why = why


def _probe_body(config: JudgeConfig) -> dict:
    body = OpenAIJudge(config, ServerPool([], 1)).body([{"role": "user", "content": "Answer with the letter A."}], 4)
    body["max_tokens"] = 1
    return body


def _answers(client: httpx.Client, config: JudgeConfig) -> bool:
    """The breaker's probe of a down server: a one-token request answered, whole and in time."""
    s = config.server
    try:
        resp = post_by(client, "chat/completions", _probe_body(config), s.timeout_s, time.monotonic() + s.deadline_s)
        return resp.status_code < 500 and isinstance(resp.json(), dict)
    except (DeadlineExceeded, httpx.HTTPError, ValueError):
        return False


def _probe(client: httpx.Client, config: JudgeConfig, field: str) -> None:
    """One tiny text request with the method's features; a refusal is a config error, said once."""
    s, url = config.server, url_of(client)
    body = _probe_body(config)
    fix = "check the server (its log) or point the field at a working OpenAI-compatible server"
    try:
        resp = post_by(client, "chat/completions", body, s.timeout_s, time.monotonic() + s.deadline_s)
    except DeadlineExceeded:
        raise NoAnswer(f"config field '{field}.server.deadline_s': the server at {url} sent no whole answer to a "
                       f"one-token request within {s.deadline_s:g} s; check the server or raise it",
                       "too slow") from None
    except httpx.HTTPError as exc:
        raise NoAnswer(f"config field '{field}.server.base_url': nothing answers at {url} "
                       f"({type(exc).__name__}); start the judge server (e.g. vllm serve MODEL) or fix the URL",
                       type(exc).__name__) from None
    detail = " ".join(resp.text.split())[:160]
    if resp.status_code >= 500:
        raise NoAnswer(f"config field '{field}.server.base_url': the server at {url} failed a one-token chat request "
                       f"(HTTP {resp.status_code}: {detail}); {fix}", f"HTTP {resp.status_code}")
    if resp.status_code in (401, 403):
        raise ConfigError(f"config field '{field}.server.api_key_env': the server at {url} refused the key "
                          f"(HTTP {resp.status_code}); put a valid key in ${s.api_key_env}")
    if resp.status_code >= 400:
        if resp.status_code == 404 or not (config.method == "label-scores" or s.constrained):
            raise ConfigError(f"config field '{field}.server.served_model': the server at {url} refused a chat "
                              f"request for '{body['model']}' (HTTP {resp.status_code}: {detail}); set the name "
                              "it serves")
        if config.method == "label-scores":
            raise ConfigError(f"config field '{field}.method': the server at {url} refused log-probabilities "
                              f"(HTTP {resp.status_code}: {detail}); use method free-text with this server")
        raise ConfigError(f"config field '{field}.server.constrained': the server at {url} refused structured "
                          f"outputs (HTTP {resp.status_code}: {detail}); set constrained: false")
    try:
        answer = resp.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or not isinstance(answer.get("choices"), list) or not answer["choices"]:
        raise NoAnswer(f"config field '{field}.server.base_url': the server at {url} answered a chat request with "
                       f"something other than an OpenAI chat completion ({detail[:80]!r}); {fix}", "not a chat answer")
    if config.method == "label-scores":
        choice = answer["choices"][0]
        if not isinstance(choice, dict) or not choice.get("logprobs"):
            raise ConfigError(f"config field '{field}.method': the server at {url} returns no "
                              "log-probabilities; use method free-text with this server")
