"""Shared pieces of the failure matrix: a sample day served with faults, a short show, flow runs.

The sample day (`zundacast.sample_day`) is served by `tests.fakes.web.FakeSite`, so single pages or
feeds can be made to fail (404, timeout, 503, malformed) while the rest stays real. Shows are the
sample show cut short (one pick by default) so that each flow run synthesizes little audio.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.web import FakeSite
from zundacast.sample_day import BASE_PLACEHOLDER, SAMPLE_DATE, sample_files, sample_show
from zundacast.show import Show, parse_show

SECRET_KEY = "sk-test-SECRET-zundacast-never-leak-4f9c2d7e1b"
_CONTENT_TYPES = {".xml": "application/rss+xml; charset=utf-8", ".rdf": "application/rdf+xml; charset=utf-8",
                  ".html": "text/html; charset=utf-8", ".pdf": "application/pdf"}
_ENV_CLEARED = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "VOICEVOX_URL", "ZUNDACAST_STORE",
                "ZUNDACAST_WEBHOOK_URL", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE")


def serve_sample_files(site: FakeSite) -> str:
    """Route every sample-day file on `site` (placeholders filled with its base URL); the base URL."""
    base = site.url("").rstrip("/")
    for path, body in sample_files().items():
        suffix = "." + path.rsplit(".", 1)[-1]
        if suffix != ".pdf":
            body = body.replace(BASE_PLACEHOLDER.encode(), base.encode())
        site.route(path, body, content_type=_CONTENT_TYPES[suffix])
    return base


@contextmanager
def sample_site() -> Iterator[tuple[FakeSite, str]]:
    with FakeSite() as site:
        yield site, serve_sample_files(site)


# The sound of a short show: 24 kHz mono at 48 kbps (MPEG-2 layer III), a rate the README's `[audio]
# sample_rate` offers and speech podcasts use. It halves the audio work of every render (the resampling
# from OpenJTalk's 48 kHz, the limiter, the encoder) in tests about something else; the default 44.1 kHz
# path is rendered by the plain demo (test_flow), test_audio and test_resume.
SHORT_AUDIO = {"sample_rate": 24000, "bitrate_kbps": 48}


def short_show_text(bundled: str) -> str:
    """The text of a show file (the bundled show's) with one pick and SHORT_AUDIO: `short_show` for runs
    of the command line."""
    assert "\npicks = 3\n" in bundled and "\nbitrate_kbps = 96\n" in bundled
    audio = "".join(f"{name} = {value}\n" for name, value in SHORT_AUDIO.items())
    one_pick = bundled.replace("\npicks = 3\n", "\npicks = 1\n", 1)
    return one_pick.replace("\nbitrate_kbps = 96\n", "\n" + audio, 1)


def short_show(base_url: str, *, picks: int = 1, feeds: list[dict[str, Any]] | None = None,
               allow_hosts: list[str] | None = None, **sections: dict[str, Any]) -> Show:
    """The sample show with `picks` picks and SHORT_AUDIO; `sections` update tables (e.g. collect={...},
    audio={...} on top of SHORT_AUDIO)."""
    raw = sample_show(base_url).model_dump(mode="json")
    raw["rank"]["picks"] = picks
    raw["audio"] = {**raw["audio"], **SHORT_AUDIO}
    if feeds is not None:
        raw["feeds"] = feeds
    if allow_hosts is not None:
        raw["collect"]["allow_hosts"] = allow_hosts
    for name, update in sections.items():
        raw[name] = {**raw.get(name, {}), **update}
    raw.pop("source_path", None)
    return parse_show(raw, "tests/faults (sample show)")


_SHARED_SPEECH: list[Path] = []


def shared_speech_cache() -> Path:
    """This test run's utterance cache, shared by flow runs that do not test caching or the engine.

    The cache is keyed by engine settings and text, so runs of the sample day speak most sentences once
    per test run instead of once per flow run. xdist's workers share it (one folder per test run): the
    cache writes each file atomically, so concurrent runs never read half a file.
    """
    if not _SHARED_SPEECH:
        import os
        import tempfile

        run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
        if run:
            folder = Path(tempfile.gettempdir()) / f"zundacast-speech-{run}"
            folder.mkdir(exist_ok=True)
        else:
            folder = Path(tempfile.mkdtemp(prefix="zundacast-speech-"))
        _SHARED_SPEECH.append(folder)
    return _SHARED_SPEECH[0]


def share_speech_cache(home: Path) -> Path:
    """Make `home`'s utterance cache (home/tts) the shared one; `home`."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "tts").symlink_to(shared_speech_cache(), target_is_directory=True)
    return home


@contextmanager
def flow_env(root: Path, *, shared_speech: bool = False, **env: str) -> Iterator[pytest.MonkeyPatch]:
    """For module-scoped flow runs: a home and result storage of their own, no stray credentials.

    `shared_speech`: the home's utterance cache is the session's (for runs not about caching or speech).
    """
    from prefect.settings import PREFECT_RESULTS_LOCAL_STORAGE_PATH, temporary_settings

    mp = pytest.MonkeyPatch()
    mp.setenv("ZUNDACAST_HOME", str(root / "home"))
    if shared_speech:
        share_speech_cache(root / "home")
    for name in _ENV_CLEARED:
        mp.delenv(name, raising=False)
    for name, value in env.items():
        mp.setenv(name, value)
    try:
        with temporary_settings({PREFECT_RESULTS_LOCAL_STORAGE_PATH: root / "results"}):
            yield mp
    finally:
        mp.undo()


def run_flow(show: Show, store: str | Path, day: dt.date = SAMPLE_DATE, **kwargs: Any) -> Any:
    from flows.daily_episode import daily_episode

    return daily_episode(episode_date=day, show=show, store=str(store), **kwargs)


def tree_bytes(folder: Path) -> dict[str, bytes]:
    """Relative path -> content of every file under `folder`."""
    return {str(path.relative_to(folder)): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def files_under(*folders: Path) -> list[Path]:
    """Every file under `folders`, symlinked folders followed (a home's utterance cache may be a symlink to
    the test run's shared one, which `Path.rglob` would silently skip in Python 3.11)."""
    return [Path(top) / name for folder in folders if folder.exists()
            for top, _dirs, names in os.walk(folder, followlinks=True) for name in names
            if (Path(top) / name).is_file()]


def free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]



class WebhookReceiver:
    """A loopback chat webhook: records every POST body (JSON)."""

    def __init__(self) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.payloads: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.payloads.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        # a Slack-like URL: its path is a secret too
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/services/T0/B0/hook-secret-path-93kd"

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class LogCapture:
    """Every log record emitted under the root and the `prefect` loggers, formatted with tracebacks."""

    def __init__(self) -> None:
        import logging

        self.lines: list[str] = []
        capture = self

        class Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                capture.lines.append(logging.Formatter("%(name)s %(levelname)s %(message)s").format(record))

        self.handler = Handler(level=logging.DEBUG)
        self.loggers = [logging.getLogger(), logging.getLogger("prefect")]

    def __enter__(self) -> LogCapture:
        for logger in self.loggers:
            logger.addHandler(self.handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for logger in self.loggers:
            logger.removeHandler(self.handler)
