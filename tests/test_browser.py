"""An episode page in a real browser: headless Chromium plays the MP3 and a chapter click seeks it.

Needs Debian's `chromium` and `chromium-driver` (installed by .ci/run) and the `selenium`
package; Selenium drives /usr/bin/chromedriver directly (SE_OFFLINE: selenium-manager never
downloads anything). The page and the MP3 are served on loopback by a Range-capable static
server, as S3 and CDNs serve them: Chromium seeks in media only when the server honours Range.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from imageio_ffmpeg import get_ffmpeg_exe

from zundacast.models import Chapter, Cue, EpisodeRecord, Usage
from zundacast.publishing.pages import render_episode_page
from zundacast.show import ShowInfo

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(
        not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)),
        reason=f"needs {CHROMIUM} and {CHROMEDRIVER}: apt-get install chromium chromium-driver",
    ),
]

CHAPTER_STARTS = (0.0, 5.0, 12.0)
AUDIO_SECONDS = 20


class RangeRequestHandler(SimpleHTTPRequestHandler):
    """SimpleHTTPRequestHandler plus single-range `Range: bytes=a-b` requests (206 / 416)."""

    range: tuple[int, int] | None = None

    def log_message(self, format: str, *args: object) -> None:
        self.server.requests.append((self.path, self.headers.get("Range")))  # type: ignore[attr-defined]

    def send_head(self):  # type: ignore[no-untyped-def]
        self.range = None
        header = self.headers.get("Range")
        path = Path(self.translate_path(self.path))
        if not header or not path.is_file():
            return super().send_head()
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
        size = path.stat().st_size
        if not match or match.groups() == ("", ""):
            return super().send_head()  # a range we do not parse: the whole file is a valid answer
        first, last = match.groups()
        if first == "":  # the last N bytes
            start, end = max(0, size - int(last)), size - 1
        else:
            start, end = int(first), min(int(last), size - 1) if last else size - 1
        if start >= size or start > end:
            self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        handle = path.open("rb")
        handle.seek(start)
        self.range = (start, end)
        self.send_response(HTTPStatus.PARTIAL_CONTENT)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        return handle

    def end_headers(self) -> None:
        if self.range is None:
            self.send_header("Accept-Ranges", "bytes")
        super().end_headers()

    def copyfile(self, source, outputfile) -> None:  # type: ignore[no-untyped-def]
        if self.range is None:
            return super().copyfile(source, outputfile)
        remaining = self.range[1] - self.range[0] + 1
        while remaining > 0:
            chunk = source.read(min(64 * 1024, remaining))
            if not chunk:
                break
            outputfile.write(chunk)
            remaining -= len(chunk)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, list[tuple[str, str | None]]]]:
    """A show folder with one rendered episode and a real 20 s MP3, served on loopback."""
    root = tmp_path / "site"
    folder = root / "2025-07-24"
    folder.mkdir(parents=True)
    ffmpeg = get_ffmpeg_exe()
    subprocess.run(
        [ffmpeg, "-nostdin", "-loglevel", "error", "-f", "lavfi",
         "-i", f"sine=frequency=440:duration={AUDIO_SECONDS}",
         "-ac", "1", "-ar", "44100", "-b:a", "96k", str(folder / "episode.mp3")],
        check=True,
    )
    subprocess.run(
        [ffmpeg, "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "color=c=0x7cc47f:s=64x64",
         "-frames:v", "1", str(root / "cover.png")],
        check=True,
    )
    show = ShowInfo(id="zundamon-ai", title="株式会社ずんだもん技術室AI放送局")
    chapters = [
        Chapter(title="オープニング", start_s=0.0, end_s=5.0),
        Chapter(title="一つ目の記事", start_s=5.0, end_s=12.0, url="https://example.com/one"),
        Chapter(title="二つ目の記事", start_s=12.0, end_s=AUDIO_SECONDS, url="https://example.com/two"),
    ]
    cues = [Cue(start_s=s, end_s=s + 2, text=f"{s}秒のところなのだ。") for s in range(0, AUDIO_SECONDS, 4)]
    vtt_cues = [f"00:00:{c.start_s:06.3f} --> 00:00:{c.end_s:06.3f}\n{c.text}" for c in cues]
    (folder / "transcript.vtt").write_text("WEBVTT\n\n" + "\n\n".join(vtt_cues) + "\n", encoding="utf-8")
    record = EpisodeRecord(
        date=dt.date(2025, 7, 24), title="7月24日のAIニュース", show=show.id,
        picks=[{"title": c.title, "url": c.url, "source": "example"} for c in chapters[1:]],
        transcript="", duration_s=AUDIO_SECONDS, size_bytes=(folder / "episode.mp3").stat().st_size,
        sha256="0" * 64, loudness_lufs=-16, true_peak_dbtp=-1, chapters=chapters, usage=Usage(),
        engine="test", writer="offline", published_at=dt.datetime(2025, 7, 24, tzinfo=dt.UTC),
    )
    (folder / "index.html").write_text(render_episode_page(show, record, cues), encoding="utf-8")

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(RangeRequestHandler, directory=str(root)))
    server.daemon_threads = True
    server.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", server.requests  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (a test dependency)")
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # selenium-manager must never try to download a driver
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-extensions", "--mute-audio", "--window-size=1000,900",
        f"--user-data-dir={tmp_path / 'chromium-profile'}", "--autoplay-policy=no-user-gesture-required",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER, log_output=os.devnull))
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)


def test_range_handler_serves_partial_content(site: tuple[str, list[tuple[str, str | None]]]) -> None:
    import httpx

    base, _ = site
    whole = httpx.get(f"{base}/2025-07-24/episode.mp3")
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
    part = httpx.get(f"{base}/2025-07-24/episode.mp3", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole.content)}"
    assert part.content == whole.content[100:200]
    tail = httpx.get(f"{base}/2025-07-24/episode.mp3", headers={"Range": "bytes=-10"})
    assert tail.content == whole.content[-10:]
    beyond = httpx.get(f"{base}/2025-07-24/episode.mp3", headers={"Range": f"bytes={len(whole.content)}-"})
    assert beyond.status_code == 416


def test_chapter_click_seeks_the_playing_audio(site, browser) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base, requests = site
    browser.get(f"{base}/2025-07-24/index.html")
    player = "document.getElementById('player')"
    WebDriverWait(browser, 30).until(lambda d: d.execute_script(f"return {player}.readyState") >= 1)
    duration = browser.execute_script(f"return {player}.duration")
    assert abs(duration - AUDIO_SECONDS) < 0.5

    started = browser.execute_async_script(
        "var done = arguments[arguments.length - 1];"
        f"{player}.play().then(() => done(true), error => done(String(error)));"
    )
    assert started is True
    WebDriverWait(browser, 30).until(lambda d: d.execute_script(f"return {player}.currentTime") > 0.2)

    buttons = browser.find_elements(By.CSS_SELECTOR, ".chapters [data-start]")
    assert [float(b.get_attribute("data-start")) for b in buttons] == list(CHAPTER_STARTS)
    before = browser.execute_script(f"return {player}.currentTime")
    assert before < CHAPTER_STARTS[2] - 5  # still near the start: reaching chapter 3 needs the seek
    buttons[2].click()
    # the click handler sets currentTime synchronously; without a seek it would still be near `before`
    assert browser.execute_script(f"return {player}.currentTime") >= CHAPTER_STARTS[2]

    # currentTime jumps to the chapter at once; wait until playback has really resumed from there
    resumed = f"return !{player}.seeking && {player}.currentTime > {CHAPTER_STARTS[2] + 0.2}"
    WebDriverWait(browser, 30).until(lambda d: d.execute_script(resumed))
    position, paused = browser.execute_script(f"return [{player}.currentTime, {player}.paused]")
    assert CHAPTER_STARTS[2] <= position < CHAPTER_STARTS[2] + 1.5
    assert paused is False
    highlighted = browser.find_elements(By.CSS_SELECTOR, ".chapters .now")
    assert [b.get_attribute("data-start") for b in highlighted] == [buttons[2].get_attribute("data-start")]

    # every resource came from the page's own loopback server, and the MP3 was fetched in ranges
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert resources and all(name.startswith(base + "/") for name in resources), resources
    assert any(path == "/2025-07-24/episode.mp3" and byte_range for path, byte_range in requests), requests
    # the inline style passed the page's Content-Security-Policy (12px = the cover's .75rem corners)
    corners = browser.execute_script("return getComputedStyle(document.querySelector('.cover')).borderRadius")
    assert corners == "12px"
