"""Time limits for judge requests: a deadline per request and a budget per candidate set.

httpx's timeout applies to each read, so a server that sends one byte every few seconds never trips
it. Here the answer is read as a stream and the whole request must end by its deadline; the deadline
is the sooner of the request's own limit and what is left of the set's budget. A request ends at the
latest one read after its deadline, and one read waits at most ``min(timeout_s, time left)``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import httpx

MAX_ANSWER_BYTES = 32 * 1024 * 1024  # a chat answer is kilobytes; a server streaming without end is not


class DeadlineExceeded(Exception):  # noqa: N818 - a condition the caller turns into an abstention
    """The request, or the set's budget, ran out of time."""


@dataclass(frozen=True)
class Limits:
    """When the set's judging must end, and how long one request may take (seconds, monotonic clock).

    The set ends by its own budget (``server.budget_s``), or sooner by what is left of the round's limit
    on waiting for servers that do not answer (``server.round_budget_s``); ``ran_out`` says which.
    """

    set_ends: float
    request_s: float
    ran_out: str = "the set's judging budget ran out"

    @classmethod
    def start(cls, budget_s: float, request_s: float, round_left_s: float | None = None) -> Limits:
        now = time.monotonic()
        if round_left_s is not None and round_left_s < budget_s:
            return cls(now + round_left_s, request_s, "the round's limit on waiting for judge servers that bring "
                                                      "no answer ran out (server.round_budget_s)")
        return cls(now + budget_s, request_s, f"the set's judging budget of {budget_s:g} s ran out (server.budget_s)")

    def left(self) -> float:
        return self.set_ends - time.monotonic()

    def request_ends(self) -> float:
        return min(time.monotonic() + self.request_s, self.set_ends)

    def own_deadline(self) -> bool:
        """Whether a request sent now ends by its own deadline rather than by the set's limit."""
        return time.monotonic() + self.request_s < self.set_ends


@dataclass
class Answer:
    status_code: int
    content: bytes

    def json(self):
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


def post_by(client: httpx.Client, url: str, body: dict, read_timeout_s: float, ends: float) -> Answer:
    """POST ``body`` and read the whole answer before ``ends`` (``time.monotonic()``), or raise."""
    left = ends - time.monotonic()
    if left <= 0:
        raise DeadlineExceeded
    try:
        with client.stream("POST", url, json=body, timeout=httpx.Timeout(min(read_timeout_s, left))) as resp:
            chunks, size = [], 0
            for chunk in resp.iter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_ANSWER_BYTES:
                    raise httpx.DecodingError(f"answer larger than {MAX_ANSWER_BYTES} bytes")
                if time.monotonic() > ends:
                    raise DeadlineExceeded
            return Answer(resp.status_code, b"".join(chunks))
    except httpx.TimeoutException:
        if time.monotonic() >= ends - 0.01:
            raise DeadlineExceeded from None
        raise
