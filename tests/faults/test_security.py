"""Hostile input and secrets: SSRF, size and decompression limits, scripts in pages, secrets in outputs.

No traffic may leave loopback: every socket `connect` in the SSRF tests goes through a spy that records it
and refuses any non-loopback address before a packet is sent, so a guard that failed would show up as a
recorded attempt (and a `FetchError` instead of `FetchRefused`), never as traffic.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import gzip
import ipaddress
import json
import os
import re
import socket
import sqlite3
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from tasks.collect import collect_candidates, extract_article
from tests.fakes.web import FakeSite, Item, article_page, rss2
from tests.faults.support import SECRET_KEY, files_under, shared_speech_cache, short_show
from zundacast.models import Candidate
from zundacast.show import CollectConfig
from zundacast.web import FetchRefused, fetch

ARTICLE = ["ずんだ餅の新しいレシピが発表されたのだ。" * 6, "枝豆をすりつぶして砂糖を加えるのだ。" * 6,
           "新人エンジニアにもわかりやすい手順なのだ。" * 6]


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every address a socket tried to connect to; non-loopback ones are refused before any packet."""
    seen: list[str] = []
    real_connect = socket.socket.connect

    def spy(self: socket.socket, address: Any) -> Any:
        host = str(address[0]).split("%")[0] if isinstance(address, tuple) else str(address)
        seen.append(host)
        if isinstance(address, tuple) and not ipaddress.ip_address(host).is_loopback:
            raise ConnectionRefusedError(f"test guard: no traffic to {host}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", spy)
    return seen


# Names this test process resolves itself (no DNS, no /etc/hosts): one for this machine, one that mixes a
# public address with a private one (every address must be public, not just the first).
TEST_NAMES = {"intranet.zundacast.test": ["127.0.0.1"],
              "mixed.zundacast.test": ["93.184.216.34", "10.0.0.1"]}


@pytest.fixture
def test_names(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """A resolver override: `TEST_NAMES` resolve as listed; every other name goes to the real resolver."""
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name.lower().rstrip(".") in TEST_NAMES:
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, int(port or 0)))
                    for address in TEST_NAMES[name.lower().rstrip(".")]]
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return TEST_NAMES


@pytest.fixture
def allowed() -> Iterator[FakeSite]:
    with FakeSite() as site:
        yield site


@pytest.fixture
def target() -> Iterator[FakeSite]:
    """A loopback server on another port, never allowed: the SSRF target that must get no request."""
    with FakeSite() as site:
        site.route("/secret", "<html><body>internal admin</body></html>")
        yield site


# --- row 12: SSRF matrix --------------------------------------------------------------------------------

DIRECT = [
    # private
    "http://10.0.0.1/", "http://10.255.255.254:8080/admin", "http://172.16.0.1/", "http://172.31.255.254/",
    "http://192.168.0.1/", "http://100.64.0.1/",
    # loopback, in every spelling (the target server listens there: it must see nothing)
    "http://127.0.0.1:{port}/secret", "http://127.1:{port}/secret", "http://2130706433:{port}/secret",
    "http://0x7f.0.0.1:{port}/secret", "http://0177.0.0.1:{port}/secret", "http://localhost:{port}/secret",
    "http://localhost.:{port}/secret", "http://LOCALHOST:{port}/secret", "http://[::1]:{port}/secret",
    "http://0.0.0.0:{port}/secret", "http://[::]:{port}/secret",
    # link-local: the cloud metadata service and IPv6
    "http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/", "http://[fe80::1%25eth0]/",
    # IPv4 inside IPv6: mapped, 6to4, NAT64
    "http://[::ffff:127.0.0.1]:{port}/secret", "http://[::ffff:7f00:1]:{port}/secret",
    "http://[::ffff:169.254.169.254]/latest/meta-data/", "http://[::ffff:10.0.0.1]/",
    "http://[2002:7f00:1::]:{port}/secret", "http://[64:ff9b::a9fe:a9fe]/",
    # names that resolve to this machine or to a private address among public ones (`test_names`)
    "http://intranet.zundacast.test:{port}/secret", "http://INTRANET.zundacast.test.:{port}/secret",
    "http://mixed.zundacast.test/",
    # credentials in the URL change nothing
    "http://user:pass@127.0.0.1:{port}/secret",
]


@pytest.mark.parametrize("url", DIRECT)
def test_private_targets_are_refused_before_connecting(url: str, allowed: FakeSite, target: FakeSite,
                                                       connects: list[str], test_names: object) -> None:
    url = url.format(port=target.port)
    with pytest.raises(FetchRefused, match="refused"):
        fetch(url, allow_hosts=[allowed.host], timeout_s=1)
    assert connects == []  # refused before any socket connected
    assert target.requests == []


REDIRECTS = [
    "http://127.0.0.1:{port}/secret", "http://localhost:{port}/secret", "http://[::1]:{port}/secret",
    "http://[::ffff:127.0.0.1]:{port}/secret", "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/", "http://[fe80::1]/",
]


@pytest.mark.parametrize("location", REDIRECTS)
def test_redirects_to_private_targets_are_refused(location: str, allowed: FakeSite, target: FakeSite,
                                                  connects: list[str]) -> None:
    allowed.route("/go", status=302, headers={"Location": location.format(port=target.port)})
    with pytest.raises(FetchRefused, match="refused"):
        fetch(allowed.url("/go"), allow_hosts=[allowed.host], timeout_s=1)
    assert allowed.hits("/go") == 1
    assert target.requests == []
    assert set(connects) == {"127.0.0.1"} and len(connects) == 1  # only the allowed server was reached


def test_collect_refuses_private_feeds_links_and_redirects(allowed: FakeSite, target: FakeSite,
                                                           connects: list[str]) -> None:
    day = dt.date(2026, 11, 20)
    when = dt.datetime(2026, 11, 19, 12, 0, tzinfo=dt.UTC)
    allowed.route("/jump", status=301, headers={"Location": target.url("/secret")})
    allowed.route("/ok", article_page("ずんだ餅の新レシピ", ARTICLE))
    allowed.route("/feed.xml", rss2([
        Item("メタデータの記事", "http://169.254.169.254/latest/meta-data/", when, "a"),
        Item("内部サーバーの記事", target.url("/secret"), when, "b"),
        Item("転送される記事", allowed.url("/jump"), when, "c"),
        Item("ずんだ餅の新レシピ", allowed.url("/ok"), when, "d"),
    ]), content_type="application/rss+xml")
    show = short_show("http://127.0.0.1:9", allow_hosts=[allowed.host], collect={"min_candidates": 1},
                      feeds=[{"name": "ok", "url": allowed.url("/feed.xml")},
                             {"name": "metadata", "url": "http://169.254.169.254/feed.xml"},
                             {"name": "internal", "url": target.url("/feed.xml")}])
    snapshot = collect_candidates(show, day, now=dt.datetime(2026, 11, 19, 22, 0, tzinfo=dt.UTC))
    assert set(snapshot.feed_errors) == {"metadata", "internal"}
    assert all("refused" in why for why in snapshot.feed_errors.values())
    errors = {c.title: c.extraction_error for c in snapshot.candidates}
    for title in ("メタデータの記事", "内部サーバーの記事", "転送される記事"):
        assert "refused" in errors[title], (title, errors[title])
    assert errors["ずんだ餅の新レシピ"] == ""
    assert target.requests == []
    assert set(connects) == {"127.0.0.1"}


# --- row 13: size and decompression limits, scripts and iframes -----------------------------------------


def test_a_gzip_bomb_is_capped_in_the_collect_stage(allowed: FakeSite) -> None:
    bomb = b"<html><body><article><p>" + b"0" * 60_000_000 + b"</p></article></body></html>"
    allowed.route("/bomb", bomb, gzip=True)
    assert len(gzip.compress(bomb)) < 200_000
    result = fetch(allowed.url("/bomb"), allow_hosts=[allowed.host], max_bytes=500_000, timeout_s=5)
    assert result.truncated and len(result.content) == 500_000
    candidate = extract_article(Candidate(url=allowed.url("/bomb"), title="爆弾", source="s"),
                                CollectConfig(allow_hosts=[allowed.host], max_bytes=500_000))
    assert len(candidate.text) <= 500_000


def test_a_huge_page_is_cut_and_not_read_to_the_end(allowed: FakeSite) -> None:
    size = 64 * 1024 * 1024
    allowed.route("/huge", size=size)
    candidate = extract_article(Candidate(url=allowed.url("/huge"), title="巨大", source="s"),
                                CollectConfig(allow_hosts=[allowed.host], max_bytes=200_000))
    assert len(candidate.text) <= 200_000
    assert allowed.bytes_sent["/huge"] < size // 2


def test_scripts_iframes_and_styles_never_reach_the_text(allowed: FakeSite) -> None:
    hostile = article_page("ずんだ餅の新レシピ", ARTICLE).replace(
        "<main>",
        '<script>var leak = "SCRIPT-MARKER-1";</script>'
        '<iframe srcdoc="&lt;p&gt;IFRAME-MARKER-2&lt;/p&gt;" src="http://169.254.169.254/"></iframe>'
        "<style>.x::after { content: 'STYLE-MARKER-3' }</style>"
        "<noscript>NOSCRIPT-MARKER-4</noscript><main>",
    ).replace("</article>", '<script type="application/ld+json">{"x": "JSONLD-MARKER-5"}</script>'
                            '<img src=x onerror="alert(\'ONERROR-MARKER-6\')"></article>')
    allowed.route("/hostile", hostile)
    candidate = extract_article(Candidate(url=allowed.url("/hostile"), title="t", source="s"),
                                CollectConfig(allow_hosts=[allowed.host]))
    assert "ずんだ餅" in candidate.text and not candidate.extraction_error
    for marker in ("SCRIPT-MARKER", "IFRAME-MARKER", "STYLE-MARKER", "NOSCRIPT-MARKER", "JSONLD-MARKER",
                   "ONERROR-MARKER"):
        assert marker not in candidate.text


def test_a_script_in_a_title_is_escaped_on_the_listeners_pages(tmp_path: Path) -> None:
    from tasks.upload import publish_episode
    from tests.test_upload import DAY1, sample_inputs
    from tests.test_upload import sample_show as upload_show
    from zundacast.storage import open_store

    evil = '<script>alert("zundacast")</script>'
    bundle, script, ranking, summaries = sample_inputs(DAY1, tmp_path / "work")
    first = ranking.picks[0]
    ranking = ranking.model_copy(update={"picks": [
        first.model_copy(update={"candidate": first.candidate.model_copy(update={"title": evil})}),
        *ranking.picks[1:]]})
    summaries = [summaries[0].model_copy(update={"title": evil, "spoken_title": evil}), *summaries[1:]]
    store = open_store(str(tmp_path / "public"))
    publish_episode(bundle, script, ranking, summaries, upload_show(), store)
    for page in (tmp_path / "public" / DAY1.isoformat() / "index.html", tmp_path / "public" / "index.html"):
        html = page.read_text("utf-8")
        assert "<script>alert" not in html, page
    assert "&lt;script&gt;alert" in (tmp_path / "public" / DAY1.isoformat() / "index.html").read_text("utf-8")


# --- row 14: secrets ------------------------------------------------------------------------------------

NEEDLES = (SECRET_KEY.encode(), SECRET_KEY.split("-never-")[1].encode())  # the key, and its distinctive tail


@pytest.mark.slow
def test_the_secret_key_was_really_sent_to_the_llm(llm_runs: dict[str, Any]) -> None:
    assert llm_runs["invalid_requests"]
    assert all(r.headers["authorization"] == f"Bearer {SECRET_KEY}" for r in llm_runs["invalid_requests"])


_BASE64 = re.compile(rb"^[A-Za-z0-9+/=\s_-]{16,}$")


def readable_forms(data: bytes, depth: int = 0) -> Iterator[bytes]:
    """`data` and everything it decodes to: JSON strings, base64 (Prefect stores results and failed tasks'
    exceptions as base64 cloudpickle, alone or inside a JSON record), the unpickled objects' repr, zlib."""
    yield data
    if depth > 3 or not data:
        return
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        document = None
    if document is not None and not isinstance(document, (int, float, bool)):
        for text in _json_strings(document):
            yield from readable_forms(text.encode("utf-8", "replace"), depth + 1)
    stripped = data.strip()
    if _BASE64.match(stripped):
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                decoded = decode(stripped + b"=" * (-len(stripped.replace(b"\n", b"")) % 4))
            except (ValueError, binascii.Error):
                continue
            yield from readable_forms(decoded, depth + 1)
    if data[:1] == b"\x80":  # a pickle: the test's own files, so loading them is safe
        try:
            loaded = cloudpickle.loads(data)
        except Exception:  # a pickle of a class this process cannot import: its bytes were searched
            loaded = None
        else:
            yield repr(loaded).encode("utf-8", "replace")
    if data[:1] == b"\x78":
        try:
            inflated = zlib.decompress(data)
        except zlib.error:
            inflated = b""
        yield from readable_forms(inflated, depth + 1)


def _json_strings(document: Any) -> Iterator[str]:
    if isinstance(document, str):
        yield document
    elif isinstance(document, dict):
        for key, value in document.items():
            yield str(key)
            yield from _json_strings(value)
    elif isinstance(document, list):
        for value in document:
            yield from _json_strings(value)


def sqlite_cells(database: Path) -> Iterator[bytes]:
    """Every text and blob cell of every table (the WAL included: sqlite reads it)."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in connection.execute(f'SELECT * FROM "{table}"'):
                for cell in row:
                    if isinstance(cell, str):
                        yield cell.encode("utf-8", "replace")
                    elif isinstance(cell, bytes):
                        yield cell
    finally:
        connection.close()


def _in_shared_speech_cache(path: Path) -> bool:
    return path.resolve().is_relative_to(shared_speech_cache().resolve())


def secret_leaks(files: list[Path], needles: tuple[bytes, ...]) -> list[str]:
    """`path: needle` for each needle found in a file, its decoded forms, or its database's cells.

    Only in the test run's shared utterance cache may a listed file be gone when read: other workers' runs
    write it meanwhile (a temporary file renamed into place)."""
    leaks = []
    for path in files:
        try:
            chunks = [path.read_bytes()]
        except FileNotFoundError:
            if _in_shared_speech_cache(path):
                continue
            raise
        if path.suffix == ".db":
            chunks += list(sqlite_cells(path))
        for chunk in chunks:
            for form in readable_forms(chunk):
                leaks += [f"{path}: {needle!r}" for needle in needles if needle in form]
    return sorted(set(leaks))


def harness_database() -> Path:
    """The session's Prefect API's SQLite file (tests/conftest.py `prefect_harness`)."""
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

    database_url = PREFECT_SERVER_DATABASE_CONNECTION_URL.value()
    database_url = getattr(database_url, "get_secret_value", lambda: database_url)()
    return Path(str(database_url).split(":///", 1)[1])


def flow_runs_in(database: Path, parameter: str) -> int:
    """The flow runs recorded in `database` with `parameter` among their parameters' text (the server is
    the test run's: other workers' runs are there too)."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return connection.execute("SELECT COUNT(*) FROM flow_run WHERE parameters LIKE ?",
                                  (f"%{parameter}%",)).fetchone()[0]
    finally:
        connection.close()


def test_the_scan_sees_a_secret_inside_prefect_results_and_databases(tmp_path: Path) -> None:
    """The scan must see what a raw grep misses: base64 cloudpickle alone, inside JSON, and in SQLite."""
    secret = b"sk-test-hidden-in-a-pickle-7f3a9c"
    record = {"secret": secret.decode(), "nested": [{"deep": secret.decode()}]}
    pickled = base64.b64encode(cloudpickle.dumps(record))
    folder = tmp_path / "stored"
    folder.mkdir()
    (folder / "result").write_bytes(pickled)
    (folder / "record.json").write_text(json.dumps({"result": pickled.decode(), "serializer": "pickle"}))
    connection = sqlite3.connect(folder / "prefect.db")
    connection.execute("CREATE TABLE state (data BLOB, message TEXT)")
    connection.execute("INSERT INTO state VALUES (?, ?)", (zlib.compress(secret), json.dumps(
        {"value": pickled.decode()})))
    connection.commit()
    connection.close()
    files = sorted(folder.iterdir())
    assert all(secret not in path.read_bytes() for path in files if path.suffix != ".db")  # a raw grep misses
    assert secret_leaks(files, (secret,)) == [f"{folder / name}: {secret!r}"
                                               for name in ("prefect.db", "record.json", "result")]


def test_the_scan_lists_files_behind_a_symlinked_folder(tmp_path: Path) -> None:
    """A home whose utterance cache is a symlink (tests/faults/support.py `share_speech_cache`)."""
    cache = tmp_path / "shared-cache" / "engine"
    cache.mkdir(parents=True)
    (cache / "utterance.npz").write_bytes(b"audio")
    home = tmp_path / "home"
    home.mkdir()
    (home / "tts").symlink_to(tmp_path / "shared-cache", target_is_directory=True)
    (home / "feed.xml").write_text("<rss/>")
    assert not any(path.name == "utterance.npz" for path in home.rglob("*"))  # what rglob misses (3.11)
    assert sorted(files_under(home)) == [home / "feed.xml", home / "tts" / "engine" / "utterance.npz"]


@pytest.mark.slow
def test_no_file_written_anywhere_holds_the_key(llm_runs: dict[str, Any]) -> None:
    prefect_home = Path(os.environ["PREFECT_HOME"])
    files = files_under(llm_runs["root"], prefect_home, harness_database().parent)
    names = {path.name for path in files}
    assert "feed.xml" in names and "episode.json" in names and "candidates.json" in names  # store
    assert any("tts" in path.parts for path in files)  # the utterance cache in ZUNDACAST_HOME
    assert any("results" in path.parts for path in files)  # Prefect's persisted results
    assert any(path.suffix == ".db" for path in files)  # Prefect's database: logs, artifacts, parameters
    assert secret_leaks(files, NEEDLES) == []


@pytest.mark.slow
def test_no_log_line_holds_the_key(llm_runs: dict[str, Any]) -> None:
    lines = llm_runs["logs"]
    assert any("summarize" in line for line in lines)  # the capture saw the runs' logs
    assert [line for line in lines if any(needle.decode() in line for needle in NEEDLES)] == []


@pytest.mark.slow
def test_the_failure_webhook_names_stage_and_cause_without_secrets(llm_runs: dict[str, Any]) -> None:
    (payload,) = llm_runs["webhook"]  # one message, for the one failed run
    text = payload["text"]
    assert "summarize" in text and "OPENAI_API_KEY" in text and "LLMError" in text
    assert "zundamon-ai" in text and "2026-11-20" in text
    assert not any(needle.decode() in text for needle in NEEDLES)
    assert "hook-secret-path" not in text


# --- secrets inside URLs: the base URL's user:password@, the webhook's path -----------------------------

BASE_URL_PASSWORD = "pw-in-base-url-5e8d1c"
BASE_URL_USER = "zc-proxy-user-41"
HOOK_PATH_SECRET = "hook-path-secret-b7c2"


class EchoingWebhook:
    """A chat webhook that answers 404 with a body repeating the path it was sent to (as some do)."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.paths: list[str] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                hook.paths.append(self.path)
                body = f"no_such_hook: {self.path} (hook {self.path.strip('/')} was deleted)".encode()
                self.send_response(404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/services/T0/B0/{HOOK_PATH_SECRET}"

    def __enter__(self) -> EchoingWebhook:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def url_secrets_run(tmp_path_factory: pytest.TempPathFactory,
                    prefect_api_url: str) -> Iterator[dict[str, Any]]:
    """`zundacast demo` in a subprocess (its own Prefect home) whose LLM rejects the key, with a base URL
    carrying user:password and a webhook that echoes its secret path in a 404. Its Prefect API is the
    session's (not about Prefect's temporary API): the scan reads that API's database."""
    import subprocess
    import sys

    from tests.fakes.openai_server import Reply, fake_openai

    root = tmp_path_factory.mktemp("url-secrets")
    repo = Path(__file__).resolve().parents[2]
    with fake_openai() as llm, EchoingWebhook() as hook:
        llm.queue = [Reply(status=401, content="Incorrect API key provided") for _ in range(50)]
        host = llm.base_url.split("://", 1)[1]
        env = {name: value for name, value in os.environ.items()
               if not name.startswith(("AWS_", "OPENAI_", "ZUNDACAST_", "VOICEVOX_", "PREFECT_"))}
        env.update(PYTHONPATH=str(repo), ZUNDACAST_HOME=str(root / "home"),
                   PREFECT_HOME=str(root / "prefect"), PREFECT_API_URL=prefect_api_url,
                   PREFECT_SERVER_ANALYTICS_ENABLED="false", OPENAI_API_KEY=SECRET_KEY,
                   OPENAI_BASE_URL=f"http://{BASE_URL_USER}:{BASE_URL_PASSWORD}@{host}",
                   ZUNDACAST_WEBHOOK_URL=hook.url)
        command = [sys.executable, "-m", "zundacast.cli", "demo", "--store", str(root / "public")]
        database = harness_database()
        done = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
        yield {"root": root, "done": done, "llm_requests": list(llm.requests), "hook_paths": list(hook.paths),
               "database": database, "flow_runs": flow_runs_in(database, str(root / "public"))}


URL_NEEDLES = (BASE_URL_PASSWORD.encode(), BASE_URL_USER.encode(), HOOK_PATH_SECRET.encode(),
               SECRET_KEY.encode())


@pytest.mark.slow
def test_secrets_inside_urls_never_reach_the_terminal(url_secrets_run: dict[str, Any]) -> None:
    done = url_secrets_run["done"]
    assert done.returncode == 2, done.stderr
    assert url_secrets_run["llm_requests"], "the LLM was asked"
    assert url_secrets_run["hook_paths"] == [f"/services/T0/B0/{HOOK_PATH_SECRET}"]  # the webhook was called
    errors = [line for line in done.stderr.splitlines() if line.startswith("zundacast: error: ")]
    assert len(errors) == 1 and "OPENAI_API_KEY" in errors[0], done.stderr
    assert "answered HTTP 404" in done.stderr  # the webhook's failure is told, its echo redacted
    for needle in URL_NEEDLES:
        assert needle.decode() not in done.stderr + done.stdout, needle


@pytest.mark.slow
def test_secrets_inside_urls_never_reach_prefect_or_the_disk(url_secrets_run: dict[str, Any]) -> None:
    root: Path = url_secrets_run["root"]
    database: Path = url_secrets_run["database"]
    files = files_under(root, database.parent)
    assert database in files  # Prefect's database: the run's logs, states and parameters
    assert url_secrets_run["flow_runs"] == 1  # the run (its store among its parameters) is recorded there
    assert any("storage" in path.parts for path in files)  # Prefect's persisted results (the failure)
    assert secret_leaks(files, URL_NEEDLES) == []
