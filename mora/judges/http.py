"""The OpenAI-compatible backend: how vLLM serves the judges in production.

Label scores ask for one answer token with its top log-probabilities and read the candidate letters
from them; free text reads a written ranking strictly, optionally restricted by vLLM's structured
outputs to the valid orderings. Before the first set the server is probed once with the features the
method needs, so a server that cannot do them fails the round at the start with one line naming the
field to change, instead of sending every set to review.
"""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import math
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
from PIL import Image

from mora.agents.loading import once
from mora.config import ConfigError, JudgeConfig
from mora.judges.asking import LABELS, judge_messages
from mora.judges.base import Abstain, CandidateSet, Judge, OrderAnswer
from mora.judges.deadline import DeadlineExceeded, Limits, post_by
from mora.judges.parsing import Unparseable, borda, parse_ranking
from mora.media import pick_frames


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
    probs = np.zeros(n)
    for token, logprob in pairs:
        if len(token) == 1 and token in LABELS[:n] and math.isfinite(logprob):
            probs[LABELS.index(token)] += math.exp(min(logprob, 0.0))  # a log-probability is at most 0
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


class ServerPool:
    """A judge's servers (one vLLM per GPU or node) with at most ``max_in_flight`` requests at once.

    Each request goes to the next server in turn (a retry too, so it lands on another one); the
    orders of a set are asked together, so every server's continuous batching has work queued.
    """

    def __init__(self, clients: list[httpx.Client], max_in_flight: int):
        self.clients, self.max_in_flight = clients, max_in_flight
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self.sent: Counter[str] = Counter()  # requests per server
        self.in_flight = self.peak = 0

    def next(self) -> httpx.Client:
        with self._lock:
            client = self.clients[next(self._turn) % len(self.clients)]
            self.sent[str(client.base_url)] += 1
        return client

    def map(self, fn: Callable, items: list) -> list:
        """``[fn(x) for x in items]``, at most ``max_in_flight`` running at once in this process."""
        if self.max_in_flight == 1 or len(items) == 1:
            return [fn(x) for x in items]
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.max_in_flight, thread_name_prefix="mora-judge-http")

        def counted(x):
            with self._lock:
                self.in_flight += 1
                self.peak = max(self.peak, self.in_flight)
            try:
                return fn(x)
            finally:
                with self._lock:
                    self.in_flight -= 1

        return list(self._executor.map(counted, items))


class OpenAIJudge(Judge):
    backend = "openai"

    def __init__(self, config: JudgeConfig, pool: ServerPool):
        super().__init__(config)
        self.pool, self.server = pool, config.server
        self.limits: Limits | None = None  # set per candidate set by ask_all

    @property
    def client(self) -> httpx.Client:
        """The server the next request goes to."""
        return self.pool.next()

    @classmethod
    def connect(cls, config: JudgeConfig, field: str = "judges") -> OpenAIJudge:
        """A judge on the configured servers, each probed once per process."""
        s = config.server
        key = os.environ.get(s.api_key_env) if s.api_key_env else None
        headers = {"Authorization": f"Bearer {key}"} if key else {}

        def probe() -> ServerPool:
            clients = []
            for url in s.urls:
                client = httpx.Client(base_url=url.rstrip("/") + "/", headers=headers, timeout=s.timeout_s)
                _probe(client, config, field)
                clients.append(client)
            return ServerPool(clients, s.max_in_flight)

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
        """Every order at once, spread over the servers, all within the set's judging budget."""
        self.limits = Limits.start(self.server.budget_s, self.server.deadline_s)
        try:
            return self.pool.map(lambda order: self.ask(candidates, order), orders)
        finally:
            self.limits = None

    def post(self, body: dict) -> dict:
        """The server's answer; transport errors and 5xx are retried, then the set is abstained on.

        Every try ends by its deadline (``server.deadline_s``) and all tries of the set by its budget
        (``server.budget_s``): a server that trickles its answer costs bounded time, then an abstention.
        """
        s = self.server
        limits = self.limits or Limits.start(s.budget_s, s.deadline_s)
        last = ""
        for attempt in range(s.retries + 1):
            if attempt:
                time.sleep(max(0.0, min(0.5 * 2 ** (attempt - 1), 5.0, limits.left())))
            if limits.left() <= 0:
                raise Abstain(f"the set's judging budget of {s.budget_s:g} s ran out after {attempt} tries "
                              f"({last}; server.budget_s)")
            try:
                resp = post_by(self.client, "chat/completions", body, s.timeout_s, limits.request_ends())
            except DeadlineExceeded:
                if limits.left() <= 0:
                    raise Abstain(f"the set's judging budget of {s.budget_s:g} s ran out during a request "
                                  "(server.budget_s)") from None
                raise Abstain(f"the server sent no whole answer within the request deadline of {s.deadline_s:g} s "
                              "(server.deadline_s)") from None
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}"
                continue
            except httpx.HTTPError as exc:
                raise Abstain(f"the server's answer cannot be read ({type(exc).__name__})") from None
            if resp.status_code >= 500:
                last = f"HTTP {resp.status_code}"
                continue
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


def _probe(client: httpx.Client, config: JudgeConfig, field: str) -> None:
    """One tiny text request with the method's features; a refusal is a config error, said once."""
    s, url = config.server, str(client.base_url).rstrip("/")
    judge = OpenAIJudge(config, ServerPool([client], 1))
    body = judge.body([{"role": "user", "content": "Answer with the letter A."}], 4)
    body["max_tokens"] = 1
    try:
        resp = post_by(client, "chat/completions", body, s.timeout_s, time.monotonic() + s.deadline_s)
    except DeadlineExceeded:
        raise ConfigError(f"config field '{field}.server.deadline_s': the server at {url} sent no whole "
                          f"answer to a one-token request within {s.deadline_s:g} s; check the server or raise it"
                          ) from None
    except httpx.HTTPError as exc:
        raise ConfigError(f"config field '{field}.server.base_url': nothing answers at {url} "
                          f"({type(exc).__name__}); start the judge server (e.g. vllm serve MODEL) or fix the URL"
                          ) from None
    detail = " ".join(resp.text.split())[:160]
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
    if config.method == "label-scores":
        try:
            choices = resp.json().get("choices") or [{}]
            has_logprobs = bool(choices[0].get("logprobs"))
        except (ValueError, AttributeError, IndexError, TypeError):
            has_logprobs = False
        if not has_logprobs:
            raise ConfigError(f"config field '{field}.method': the server at {url} returns no "
                              "log-probabilities; use method free-text with this server")
