"""An episode page in a real browser: headless Chromium plays the MP3 and a chapter click seeks it.

The episode is published through the real publish path into a folder store (no base URL) and
served by the product's own `zundacast preview`, as a user previews it: Chromium seeks in media
only when the server honours Range, so this proves the preview's range requests too.
Needs Debian's `chromium` and `chromium-driver` (installed by .ci/run) and the `selenium`
package; Selenium drives /usr/bin/chromedriver directly (SE_OFFLINE: selenium-manager never
downloads anything).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tasks.upload import publish_episode
from tests.system import require_system_tool
from tests.test_preview import Preview, running_preview
from tests.test_upload import DAY2, make_mp3, sample_inputs, sample_show
from zundacast.models import AudioBundle, Chapter, Cue
from zundacast.storage import open_store

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

pytestmark = pytest.mark.system

CHAPTER_STARTS = (0.0, 5.0, 12.0)
AUDIO_SECONDS = 20
PAGE_PATH = "/2025-07-24/index.html"
MP3_PATH = "/2025-07-24/zundamon-test-2025-07-24.mp3"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Preview]:
    """A folder store with one published 20 s episode of three chapters, served by `zundacast preview`."""
    bundle, script, ranking, summaries = sample_inputs(DAY2, tmp_path / "work")
    mp3 = make_mp3(tmp_path / "work" / "long.mp3", seconds=AUDIO_SECONDS)
    data = mp3.read_bytes()
    titles = ["オープニング", "一つ目の記事", "二つ目の記事"]
    ends = (*CHAPTER_STARTS[1:], float(AUDIO_SECONDS))
    chapters = [Chapter(title=title, start_s=start, end_s=end, url=f"https://example.com/{n}" if n else "")
                for n, (title, start, end) in enumerate(zip(titles, CHAPTER_STARTS, ends, strict=True))]
    cues = [Cue(start_s=s, end_s=s + 2, text=f"{s}秒のところなのだ。") for s in range(0, AUDIO_SECONDS, 4)]
    bundle = AudioBundle.model_validate({
        **bundle.model_dump(), "mp3_path": str(mp3), "sha256": hashlib.sha256(data).hexdigest(),
        "size_bytes": len(data), "duration_s": float(AUDIO_SECONDS), "chapters": chapters, "cues": cues})
    folder = tmp_path / "public"
    publish_episode(bundle, script, ranking, summaries, sample_show(), open_store(str(folder)))
    with running_preview(folder) as preview:
        yield preview


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    require_system_tool(CHROMIUM)  # fails (not skips) when ZUNDACAST_REQUIRE_SYSTEM_TESTS is set
    require_system_tool(CHROMEDRIVER)
    from selenium import webdriver
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


def test_chapter_click_seeks_the_playing_audio(site: Preview, browser) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base = site.origin
    browser.get(base + PAGE_PATH)
    player = "document.getElementById('player')"
    WebDriverWait(browser, 30).until(lambda d: d.execute_script(f"return {player}.readyState") >= 1)
    assert browser.execute_script(f"return {player}.currentSrc") == base + MP3_PATH
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

    # every resource came from the preview, and the MP3 was fetched in ranges (answered 206)
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert resources and all(name.startswith(base + "/") for name in resources), resources
    ranged = [line for line in site.requests if line.startswith(f"GET {MP3_PATH} 206 (bytes=")]
    assert ranged, site.requests
    # the inline style passed the page's Content-Security-Policy (12px = the cover's .75rem corners)
    corners = browser.execute_script("return getComputedStyle(document.querySelector('.cover')).borderRadius")
    assert corners == "12px"


def test_the_transcript_track_parses_with_the_speaker(site: Preview, browser) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(site.origin + PAGE_PATH)
    track = "document.querySelector('#player track')"
    browser.execute_script(f"{track}.track.mode = 'hidden';")  # load the cues without showing them
    # readyState 2 = LOADED (3 would be ERROR: a file Chromium's WebVTT parser rejects)
    WebDriverWait(browser, 30).until(lambda d: d.execute_script(f"return {track}.readyState") in (2, 3))
    assert browser.execute_script(f"return {track}.readyState") == 2
    cues = browser.execute_script(
        f"return Array.from({track}.track.cues).map(c => [c.startTime, c.text, "
        "c.getCueAsHTML().firstChild.nodeName, c.getCueAsHTML().firstChild.title])")
    assert [start for start, *_ in cues] == list(range(0, AUDIO_SECONDS, 4))
    assert all(text.startswith("<v ずんだもん>") for _, text, *_ in cues)
    # the voice span becomes a <span title="ずんだもん"> in the rendered cue
    assert {(node, title) for *_, node, title in cues} == {("SPAN", "ずんだもん")}
