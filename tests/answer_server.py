"""A real HTTP server on 127.0.0.1 that answers chat requests as a test scripts it: any body, any pace.

It stands in for a judge server that misbehaves (trickles bytes, says anything): the judge's client
talks to it over a real socket, exactly as to vLLM. It imports nothing of the tests, so benchmarks
(bench/soak.py) use it too.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def chat_answer(content) -> bytes:
    """An OpenAI-shaped chat completion whose message content is ``content``."""
    return json.dumps({"id": "x", "object": "chat.completion", "model": "m",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                    "finish_reason": "stop"}]}).encode()


class AnswerServer:
    """``reply(request_json) -> (status, body_bytes, seconds_between_bytes)`` decides each answer."""

    def __init__(self, reply: Callable[[dict], tuple[int, bytes, float]]):
        self.reply, self.requests = reply, 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body leave at once, no delayed-ACK stalls

            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length", 0))
                request = json.loads(self.rfile.read(length) or b"{}")
                owner.requests += 1
                status, body, pause = owner.reply(request)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if pause <= 0:
                        self.wfile.write(body)
                        return
                    for i in range(len(body)):  # one byte at a time, forever slow
                        self.wfile.write(body[i:i + 1])
                        self.wfile.flush()
                        time.sleep(pause)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up: that is what a deadline does

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # a free port, bound at once (no race)
        self.port = self.httpd.server_address[1]
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> AnswerServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
