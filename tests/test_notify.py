"""The failure webhook, against a real HTTP receiver on loopback."""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from zundacast.notify import MAX_MESSAGE_CHARS, REDACTED, notify_failure, redact

DAY = dt.date(2025, 7, 24)
FAKE_KEY = "sk-test-1234567890abcdefGHIJ"
ENV_KEY = "env-openai-key-Zq81xv0PLm"


@dataclass
class Receiver:
    """A webhook endpoint: records every POST and answers with `status`."""

    url: str
    posts: list[dict] = field(default_factory=list)
    status: int = 200
    delay_s: float = 0.0
    echo_path: bool = False  # answer errors with a body that repeats the path (some chat services do)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def payloads(self) -> list[dict]:
        return [json.loads(post["body"]) for post in self.posts]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with state.lock:
                state.posts.append({"path": self.path, "headers": dict(self.headers), "body": body})
            if state.delay_s:
                release.wait(state.delay_s)
            self.send_response(state.status)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            if state.status == 200:
                self.wfile.write(b"ok")
            elif state.echo_path:
                self.wfile.write(f"no_such_hook {self.path} ({self.path.lstrip('/')})".encode())
            else:
                self.wfile.write(b"invalid_token")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    # a Slack-like path: the secret lives in the webhook's URL
    state.url = f"http://127.0.0.1:{server.server_address[1]}/services/T000/B000/XXsecretpathXX"
    yield state
    release.set()
    server.shutdown()
    server.server_close()


def test_one_post_names_show_date_stage_and_cause(receiver: Receiver) -> None:
    sent = notify_failure(receiver.url, "zundamon-ai", DAY, "synthesize", "VOICEVOX answered HTTP 500")
    assert sent is True
    assert len(receiver.posts) == 1
    post = receiver.posts[0]
    assert post["path"] == "/services/T000/B000/XXsecretpathXX"
    assert post["headers"]["Content-Type"] == "application/json"
    (payload,) = receiver.payloads
    for text in (payload["text"], payload["content"]):  # Slack reads text, Discord content
        assert "zundamon-ai" in text and "2025-07-24" in text and "synthesize" in text
        assert "VOICEVOX answered HTTP 500" in text
        assert len(text.splitlines()) == 2


def test_secrets_in_the_cause_arrive_redacted(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    cause = (f"openai.AuthenticationError: Incorrect API key provided: {FAKE_KEY}. key={ENV_KEY}\n"
             "headers: Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig\n"
             "boto: secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY rejected")
    assert notify_failure(receiver.url, "zundamon-ai", DAY, "summarize", cause)
    body = receiver.posts[0]["body"].decode()
    for secret in (FAKE_KEY, "1234567890abcdef", ENV_KEY, "eyJhbGciOiJIUzI1NiJ9", "wJalrXUtnFEMI"):
        assert secret not in body
    payload = receiver.payloads[0]
    assert REDACTED in payload["content"]
    assert "AuthenticationError" in payload["content"]  # the cause itself survives


def test_the_webhook_url_never_appears_in_the_message(receiver: Receiver) -> None:
    cause = f"httpx.ConnectError while posting to {receiver.url}"
    assert notify_failure(receiver.url, "zundamon-ai", DAY, "upload", cause)
    assert b"XXsecretpathXX" not in receiver.posts[0]["body"]


def test_unpublished_runs_use_their_own_wording(receiver: Receiver) -> None:
    assert notify_failure(receiver.url, "zundamon-ai", DAY, "synthesize", "episode check failed: 3 s long",
                          outcome="unpublished")
    text = receiver.payloads[0]["content"]
    assert "without publishing" in text and "failed at" not in text
    assert "episode check failed: 3 s long" in text


def test_long_causes_are_cut_after_redaction(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    # the key straddles the cut: cutting first would leak its first half
    cause = "x" * (MAX_MESSAGE_CHARS - 60) + ENV_KEY + " trailing " * 100
    assert notify_failure(receiver.url, "zundamon-ai", DAY, "script", cause)
    text = receiver.payloads[0]["content"]
    assert len(text) <= MAX_MESSAGE_CHARS
    assert text.endswith("…")
    assert "env-openai" not in text


def test_mentions_and_markup_in_the_cause_ping_nobody(receiver: Receiver) -> None:
    assert notify_failure(receiver.url, "zundamon-ai", DAY, "collect", "feed said @everyone <!channel> & co")
    payload = receiver.payloads[0]
    assert "@everyone" not in payload["content"] and "everyone" in payload["content"]
    assert "<!channel>" not in payload["text"] and "&lt;!channel&gt; &amp; co" in payload["text"]


def test_exception_causes_name_their_type(receiver: Receiver) -> None:
    assert notify_failure(receiver.url, "zundamon-ai", DAY, "rank", ValueError("no picks"))
    assert "ValueError: no picks" in receiver.payloads[0]["content"]


def test_unreachable_webhook_returns_false_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api/webhooks/123/tokenSECRETtoken"
    with caplog.at_level(logging.WARNING, logger="zundacast.notify"):
        assert notify_failure(url, "zundamon-ai", DAY, "upload", "S3 said 403") is False
    assert caplog.records and caplog.records[0].levelno == logging.WARNING
    assert "tokenSECRETtoken" not in caplog.text
    assert "127.0.0.1" in caplog.text


def test_webhook_error_status_returns_false(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    receiver.status = 403
    with caplog.at_level(logging.WARNING, logger="zundacast.notify"):
        assert notify_failure(receiver.url, "zundamon-ai", DAY, "upload", "boom") is False
    assert len(receiver.posts) == 1
    assert "403" in caplog.text and "XXsecretpathXX" not in caplog.text


def test_a_404_body_that_echoes_the_secret_path_is_redacted(receiver: Receiver,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    receiver.status, receiver.echo_path = 404, True
    with caplog.at_level(logging.WARNING, logger="zundacast.notify"):
        assert notify_failure(receiver.url, "zundamon-ai", DAY, "upload", "boom") is False
    assert "404" in caplog.text and "no_such_hook" in caplog.text  # the answer is told ...
    assert "XXsecretpathXX" not in caplog.text and "T000/B000" not in caplog.text  # ... without the path


def test_redact_covers_the_parts_of_secret_urls_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://proxyuser9:pa55-word-x@llm.internal:8000/v1?api_key=q1w2e3r4")
    monkeypatch.setenv("ZUNDACAST_WEBHOOK_URL", "https://chat.example/api/webhooks/998877/tok-AbCdEf-123")
    text = ("login proxyuser9 with pa55-word-x; called llm.internal:8000/v1 (key q1w2e3r4); "
            "hook 998877/tok-AbCdEf-123 and webhooks/998877 and just tok-AbCdEf-123")
    cleaned = redact(text)
    for secret in ("proxyuser9", "pa55-word-x", "q1w2e3r4", "998877", "tok-AbCdEf-123"):
        assert secret not in cleaned, secret
    assert "llm.internal:8000/v1" in cleaned  # the host and path of a base URL are not secret


def test_redact_removes_any_userinfo_in_a_url() -> None:
    cleaned = redact("GET http://someone:hunter22@10.0.0.5:9000/v1 and https://token-only-abc123@host/x")
    assert "someone" not in cleaned and "hunter22" not in cleaned and "token-only-abc123" not in cleaned
    assert "10.0.0.5:9000/v1" in cleaned and "host/x" in cleaned


def test_log_redaction_covers_messages_arguments_and_tracebacks(monkeypatch: pytest.MonkeyPatch) -> None:
    from zundacast.notify import RedactingFilter

    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect()
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("zundacast.test-redaction")
    logger.addHandler(handler)
    try:
        try:
            raise RuntimeError(f"the server refused {ENV_KEY}")
        except RuntimeError:
            logger.exception("calling with key %s failed", ENV_KEY)
    finally:
        logger.removeHandler(handler)
    (line,) = lines
    assert ENV_KEY not in line and "Traceback" in line and line.count(REDACTED) == 2


def test_slow_webhook_times_out_and_returns_false(receiver: Receiver) -> None:
    receiver.delay_s = 10
    assert notify_failure(receiver.url, "zundamon-ai", DAY, "upload", "boom", timeout_s=0.3) is False


@pytest.mark.parametrize("url", ["", "not a url", "ftp://127.0.0.1/x", "http://[::1"])
def test_missing_or_malformed_webhook_returns_false(url: str) -> None:
    assert notify_failure(url, "zundamon-ai", DAY, "upload", "boom") is False


def test_redact_env_values_keys_tokens_and_url_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SESSION_TOKEN", "FwoGZXIvYXdzEJr//////////session")
    monkeypatch.setenv("zundacast_webhook_url", "https://chat.example/hook/abcdef123")  # lower case too
    text = ("token FwoGZXIvYXdzEJr//////////session; posting to https://chat.example/hook/abcdef123; "
            "key sk-proj-AbC_dEf-123456; https://user:hunter2pass@minio.local:9000/bucket; "
            "https://bucket.s3.amazonaws.com/k?X-Amz-Signature=deadbeef00&X-Amz-Expires=60; "
            "id AKIAIOSFODNN7EXAMPLE; https://hooks.slack.com/services/T1/B2/zzz")
    cleaned = redact(text)
    for secret in ("FwoGZXIv", "abcdef123", "sk-proj", "hunter2pass", "deadbeef00", "AKIAIOSFODNN7EXAMPLE",
                   "T1/B2/zzz"):
        assert secret not in cleaned, secret
    assert "X-Amz-Expires=60" in cleaned and "minio.local:9000/bucket" in cleaned


def test_redact_leaves_ordinary_text_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "x")  # too short to be a real secret: must not shred the text
    text = "task-runner failed: authorization required; sk-learn is fine; bearer of bad news"
    assert redact(text) == text
    assert redact("call sk-abcdefgh12 now") == f"call {REDACTED} now"
    assert redact("Authorization: Basic dXNlcjpwYXNz end") == f"Authorization: {REDACTED} end"
    assert redact("my value", extra_secrets=["my value"]) == REDACTED


def test_a_webhook_path_of_common_words_does_not_shred_the_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZUNDACAST_WEBHOOK_URL", "https://chat.example/webhook?token=t0k3n-abcdef")
    cleaned = redact("failure webhook answered 404 for token t0k3n-abcdef")
    assert cleaned == f"failure webhook answered 404 for token {REDACTED}"
