"""A fake OpenAI-compatible chat completions server, for driving the real openai client.

Stdlib only: `http.server` in a daemon thread on a free port. Tests queue replies (a JSON answer,
raw content, a refusal, an HTTP status, or a delay), point `openai.OpenAI(base_url=fake.base_url)`
at it, and then read `fake.requests` to see exactly what the client sent.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Answer:
    """A 200 with this assistant message content (or a refusal, when `refusal` is set)."""

    content: str | None
    refusal: str | None = None
    finish_reason: str = "stop"


@dataclass(frozen=True)
class Status:
    """An HTTP error in OpenAI's error format."""

    code: int
    message: str = "error"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Delay:
    """Wait `seconds` (or until the server stops) before sending `then`."""

    seconds: float
    then: Answer | Status


Reply = Answer | Status | Delay


def answer_json(payload: dict[str, Any]) -> Answer:
    return Answer(content=json.dumps(payload))


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class FakeOpenAI:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> FakeOpenAI:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                fake._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    # -- scripting ------------------------------------------------------------------------

    def reply(self, *replies: Reply) -> None:
        """Queue replies, one per request, in order. With none queued, requests get a 500."""
        with self._lock:
            self._replies.extend(replies)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._replies)

    # -- serving --------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length)
        body = json.loads(raw or b"{}")
        with self._lock:
            self.requests.append(
                Received(handler.path, {k.lower(): v for k, v in handler.headers.items()}, body)
            )
            reply: Reply = (
                self._replies.popleft() if self._replies else Status(500, "nothing queued")
            )
        if isinstance(reply, Delay):
            self._stopping.wait(reply.seconds)
            reply = reply.then
        if handler.path.rstrip("/") != "/v1/chat/completions":
            reply = Status(404, f"no route {handler.path}")
        if isinstance(reply, Status):
            payload = {"error": {"message": reply.message, "type": "fake_error", "code": None}}
            self._send(handler, reply.code, payload, reply.headers)
        else:
            self._send(handler, 200, _completion(body.get("model", "fake"), reply), {})

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler, code: int, payload: dict[str, Any], headers: dict[str, str]
    ) -> None:
        data = json.dumps(payload).encode()
        try:
            handler.send_response(code)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test); nothing to tell it


def _completion(model: str, answer: Answer) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": answer.content,
                    "refusal": answer.refusal,
                },
                "finish_reason": answer.finish_reason,
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
