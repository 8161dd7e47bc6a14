"""`zundacast preview`: the real CLI serving a published folder store on loopback, with range requests.

`running_preview` starts the command as a user would (a subprocess) and reads the URLs it prints;
test_gpodder.py and test_browser.py subscribe and play through it.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tasks.upload import publish_episode
from tests.test_upload import DAY1, DAY2, publish, sample_inputs, sample_show
from zundacast.preview import local_feed_note, parse_range
from zundacast.publishing.feed import ITUNES, PODCAST
from zundacast.storage import open_store

ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_S = 60


@dataclass
class Preview:
    origin: str  # http://127.0.0.1:PORT
    page: str
    feed: str
    requests: list[str] = field(default_factory=list)  # the server's request lines (stderr)


@contextmanager
def running_preview(folder: Path) -> Iterator[Preview]:
    """`python -m zundacast.cli preview --store FOLDER --port 0`, until the block ends (then Ctrl-C)."""
    command = [sys.executable, "-m", "zundacast.cli", "preview", "--store", str(folder), "--port", "0"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines: queue.Queue[str | None] = queue.Queue()
    requests: list[str] = []

    def pump(stream, sink) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            sink(line.rstrip("\n"))
        if sink is lines.put:
            lines.put(None)

    readers = [threading.Thread(target=pump, args=(process.stdout, lines.put), daemon=True),
               threading.Thread(target=pump, args=(process.stderr, requests.append), daemon=True)]
    for reader in readers:
        reader.start()
    try:
        printed: dict[str, str] = {}
        while "feed" not in printed:
            line = lines.get(timeout=STARTUP_TIMEOUT_S)
            assert line is not None, f"preview exited early: {process.wait()} {requests}"
            name, _, value = line.strip().partition(": ")
            if name in ("page", "feed"):
                printed[name] = value
        origin = printed["feed"].rsplit("/", 1)[0]
        yield Preview(origin=origin, page=printed["page"], feed=printed["feed"], requests=requests)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for reader in readers:
            reader.join(timeout=10)


@pytest.fixture
def published(tmp_path: Path) -> tuple[Path, Path]:
    """A folder store with two episodes published through the real publish path, no base URL."""
    folder = tmp_path / "public"
    store = open_store(str(folder))
    publish(DAY1, tmp_path / "work", store, show=sample_show(), frequency=330)
    _, bundle = publish(DAY2, tmp_path / "work", store, show=sample_show())
    return folder, Path(bundle.mp3_path)


def test_parse_range_single_suffix_open_and_unsatisfiable() -> None:
    assert parse_range("bytes=0-99", 1000) == (0, 99)
    assert parse_range("bytes=900-", 1000) == (900, 999)
    assert parse_range("bytes=990-2000", 1000) == (990, 999)  # a last byte past the end is cut
    assert parse_range("bytes=-10", 1000) == (990, 999)
    assert parse_range("bytes=-5000", 1000) == (0, 999)
    assert parse_range("bytes=1000-", 1000) == "unsatisfiable"
    assert parse_range("bytes=-0", 1000) == "unsatisfiable"
    assert parse_range("bytes=0-1,5-9", 1000) is None  # several ranges: the whole file
    assert parse_range("bytes=9-5", 1000) is None  # invalid: ignored
    assert parse_range("items=0-5", 1000) is None


def test_preview_serves_ranges_as_players_need(published: tuple[Path, Path]) -> None:
    folder, mp3 = published
    data = mp3.read_bytes()
    key = "2025-07-24/zundamon-test-2025-07-24.mp3"
    with running_preview(folder) as preview, httpx.Client(base_url=preview.origin) as client:
        whole = client.get(f"/{key}")
        assert whole.status_code == 200 and whole.content == data
        assert whole.headers["accept-ranges"] == "bytes" and whole.headers["content-type"] == "audio/mpeg"
        part = client.get(f"/{key}", headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == data[100:200]
        assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
        assert part.headers["content-length"] == "100"
        tail = client.get(f"/{key}", headers={"Range": "bytes=-10"})
        assert tail.status_code == 206 and tail.content == data[-10:]
        assert tail.headers["content-range"] == f"bytes {len(data) - 10}-{len(data) - 1}/{len(data)}"
        rest = client.get(f"/{key}", headers={"Range": f"bytes={len(data) - 5}-"})
        assert rest.status_code == 206 and rest.content == data[-5:]
        beyond = client.get(f"/{key}", headers={"Range": f"bytes={len(data)}-"})
        assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(data)}"
        several = client.get(f"/{key}", headers={"Range": "bytes=0-1,5-9"})
        assert several.status_code == 200 and several.content == data
        stale = client.get(f"/{key}", headers={"Range": "bytes=0-9", "If-Range": '"another-version"'})
        assert stale.status_code == 200 and stale.content == data
        fresh = client.get(f"/{key}", headers={"Range": "bytes=0-9", "If-Range": whole.headers["etag"]})
        assert fresh.status_code == 206 and fresh.content == data[:10]
        head = client.head(f"/{key}", headers={"Range": "bytes=0-9"})
        assert head.status_code == 206 and head.headers["content-length"] == "10" and head.content == b""
        assert client.get("/.episodes.json.tmp").status_code == 404  # hidden files (half-written) never
        assert client.get("/../public/feed.xml").status_code in (400, 404)
        assert client.get("/2025-07-24/transcript.vtt").headers["content-type"] == "text/vtt; charset=utf-8"
    assert any(f"GET /{key} 206 (bytes=100-199)" == line for line in preview.requests), preview.requests


def test_previewed_feed_points_at_the_preview_and_every_link_works(published: tuple[Path, Path]) -> None:
    folder, mp3 = published
    on_disk = (folder / "feed.xml").read_bytes()
    assert b"file:///" in on_disk  # no base URL: the folder's own feed is for this machine only
    with running_preview(folder) as preview, httpx.Client() as client:
        assert preview.page == f"{preview.origin}/index.html" and preview.feed == f"{preview.origin}/feed.xml"
        response = client.get(preview.feed)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/rss+xml; charset=utf-8"
        assert b"file:" not in response.content
        channel = ET.fromstring(response.content).find("channel")
        assert channel is not None
        items = channel.findall("item")
        enclosure = items[0].find("enclosure")
        assert enclosure is not None
        url = enclosure.get("url", "")
        assert url.startswith(f"{preview.origin}/2025-07-24/zundamon-test-2025-07-24.mp3?v=")
        assert client.get(url).content == mp3.read_bytes()
        assert int(enclosure.get("length", "0")) == mp3.stat().st_size
        links = [channel.findtext("link"), channel.find(f"{{{ITUNES}}}image").get("href")]  # type: ignore[union-attr]
        for item in items:
            links.append(item.findtext("link"))
            links += [item.find(f"{{{PODCAST}}}{tag}").get("url") for tag in ("transcript", "chapters")]  # type: ignore[union-attr]
        for link in links:
            assert link and link.startswith(preview.origin + "/"), link
            assert client.get(link).status_code == 200, link
        page = client.get(preview.page).text
        assert '<audio controls preload="none" src="2025-07-24/zundamon-test-2025-07-24.mp3">' in page
    assert (folder / "feed.xml").read_bytes() == on_disk  # the preview never changes the store


@pytest.mark.timeout(120)  # the bound on a preview that ignores the signal: the test fails, never passes
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_preview_stops_on_ctrl_c_or_kill_even_started_with_sigint_ignored(
        published: tuple[Path, Path], stop: signal.Signals) -> None:
    # A background job of a non-interactive shell (`zundacast preview ... &`), or a test runner's worker,
    # starts it with SIGINT ignored, and an ignored signal stays ignored across exec.
    folder, _ = published
    command = [sys.executable, "-m", "zundacast.cli", "preview", "--store", str(folder), "--port", "0"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert process.stdout is not None
    feed = next(line.split(": ", 1)[1].strip() for line in process.stdout if line.strip().startswith("feed:"))
    assert httpx.get(feed, timeout=30).status_code == 200  # serving
    process.send_signal(stop)
    assert process.wait() == 0  # stopped by the signal, cleanly (a hang is failed by the timeout mark)
    process.stdout.close()


def test_preview_refuses_what_it_cannot_serve(tmp_path: Path) -> None:
    for store, named in ((str(tmp_path / "empty"), "no feed.xml"), ("s3://bucket/show", "s3://bucket/show")):
        command = [sys.executable, "-m", "zundacast.cli", "preview", "--store", store, "--port", "0"]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("zundacast: error: --store ") and named in lines[0]


def test_a_folder_feed_without_base_url_gets_a_plain_note() -> None:
    note = local_feed_note("file:///srv/public/feed.xml")
    assert "local preview only" in note and "--base-url" in note and "ZUNDACAST_BASE_URL" in note
    assert "zundacast preview --store /srv/public" in note and "\n" not in note
    assert local_feed_note("https://podcast.example.com/z/feed.xml") == ""
    assert local_feed_note("http://127.0.0.1:9000/bucket/feed.xml") == ""


def test_publishing_with_a_base_url_writes_web_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZUNDACAST_BASE_URL", "https://cdn.example.com/zunda/")
    show = sample_show(base_url="https://show-file.example.com")  # the environment wins over the show file
    assert show.show.base_url == "https://cdn.example.com/zunda/"
    bundle, script, ranking, summaries = sample_inputs(DAY2, tmp_path / "work")
    result = publish_episode(bundle, script, ranking, summaries, show, open_store(str(tmp_path / "public")))
    assert result.feed_url == "https://cdn.example.com/zunda/feed.xml"
    assert local_feed_note(result.feed_url) == ""
    feed = (tmp_path / "public" / "feed.xml").read_text(encoding="utf-8")
    assert "file:" not in feed
    assert "https://cdn.example.com/zunda/2025-07-24/zundamon-test-2025-07-24.mp3" in feed


def test_a_bad_base_url_is_refused_naming_the_variable(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "zundacast.cli", "run", "--date", "2025-07-24",
                           "--store", str(tmp_path / "public"), "--base-url", "ftp://files.example.com/z"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "zundacast: error: ZUNDACAST_BASE_URL (or --base-url): 'ftp://files.example.com/z' is not a web "
        "address: use http(s)://host/path, e.g. https://podcast.example.com/show"]
    assert not (tmp_path / "public").exists()
