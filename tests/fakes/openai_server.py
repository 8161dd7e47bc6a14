"""A loopback server speaking the OpenAI chat-completions wire protocol (for tests).

`POST /v1/chat/completions` with a JSON body answers a real-shaped `chat.completion` object with
`usage`. Responses are scripted per request (`queue`): a status code, headers (e.g. Retry-After) and a
body or message content; when the queue is empty, `responder(request_json)` makes the content (for
`response_format: {"type": "json_schema"}` a JSON string matching the schema). Every request is
recorded (path, headers, raw body, parsed JSON) so tests can count them and read the messages.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted answer: `content` becomes the assistant message; `body` replaces the whole JSON."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    content: str | None = None
    body: Any = None


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]  # names in lower case
    raw: bytes
    json: dict[str, Any]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.json.get("messages", [])

    @property
    def schema_name(self) -> str:
        response_format = self.json.get("response_format") or {}
        return (response_format.get("json_schema") or {}).get("name", "")


def chat_completion(content: str, model: str, prompt_tokens: int = 100, completion_tokens: int = 50) -> dict:
    return {
        "id": f"chatcmpl-fake{int(time.time() * 1000)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
        "system_fingerprint": "fp_fake",
    }


def error_body(status: int, message: str) -> dict:
    kinds = {400: "invalid_request_error", 401: "invalid_request_error", 403: "permission_denied",
             404: "not_found", 429: "rate_limit_exceeded"}
    return {"error": {"message": message, "type": kinds.get(status, "server_error"), "param": None,
                      "code": "invalid_api_key" if status == 401 else None}}


class FakeOpenAI:
    def __init__(self, responder: Callable[[dict[str, Any]], str] | None = None) -> None:
        self.queue: list[Reply] = []
        self.requests: list[Recorded] = []
        self.responder = responder or (lambda request: "{}")
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _next(self, request: dict[str, Any]) -> Reply:
        with self._lock:
            if self.queue:
                return self.queue.pop(0)
        return Reply(content=self.responder(request))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

            def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    request = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    self._send(400, error_body(400, "request body is not JSON"))
                    return
                with fake._lock:
                    headers = {name.lower(): value for name, value in self.headers.items()}
                    fake.requests.append(Recorded(self.path, headers, raw, request))
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, error_body(404, f"no route {self.path}"))
                    return
                reply = fake._next(request)
                if reply.body is not None:
                    body = reply.body
                elif reply.status >= 400:
                    body = error_body(reply.status, reply.content or f"HTTP {reply.status}")
                else:
                    body = chat_completion(reply.content if reply.content is not None else "",
                                           request.get("model", "fake-model"))
                self._send(reply.status, body, reply.headers)

        return Handler


@contextmanager
def fake_openai(responder: Callable[[dict[str, Any]], str] | None = None) -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(responder).start()
    try:
        yield server
    finally:
        server.stop()
