"""`zundacast demo` as a user runs it: what the end of the run says about where the feed can be read.

Two real runs in subprocesses, their utterances from the session's cache: the session's plain demo
(tests/conftest.py `plain_demo`: nothing set, Prefect's temporary API), a folder store with no base URL,
ends with a plain note that the feed is for local preview only and how to publish it; `--base-url` (which
wins over ZUNDACAST_BASE_URL) writes web URLs and needs no note (that run uses the session's Prefect API:
it is not about the temporary one; and `--show` the bundled show with one pick at 24 kHz: it is not about the
episode's length or sound). Both ask for the owner e-mail the default show lacks.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tests.faults.support import share_speech_cache, short_show_text

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def demo(tmp_path: Path, store: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {"ZUNDACAST_HOME": str(tmp_path / "home"), "PREFECT_HOME": str(tmp_path / "prefect"),
                   "PATH": os.path.dirname(sys.executable) + ":/usr/bin:/bin", "HOME": str(tmp_path), **env}
    command = [sys.executable, "-m", "zundacast.cli", "demo", "--store", str(store), *args]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=environment, timeout=1200,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_the_end_of_a_run_says_whether_its_feed_can_be_published(
        tmp_path: Path, plain_demo: dict[str, Any], prefect_api_url: str) -> None:
    local, local_store = plain_demo["done"], plain_demo["store"]
    assert local.returncode == 0, local.stderr[-3000:]
    last = local.stderr.strip().splitlines()[-2:]
    assert last[0].startswith("warning: ") and "[show].owner_email is not set" in last[0]
    assert last[1].startswith(f"note: {(local_store / 'feed.xml').as_uri()} is for local preview only")
    assert f"zundacast preview --store {local_store}" in last[1] and "--base-url" in last[1]
    assert "✓ upload" in local.stderr.split(last[0])[0]  # after the stages, where a person reads it

    share_speech_cache(tmp_path / "home")  # the sample day's sentences, spoken once per session (plain_demo)
    bundled = (ROOT / "shows" / "zundamon-ai.toml").read_text("utf-8")
    one_pick = tmp_path / "one-pick.toml"
    one_pick.write_text(short_show_text(bundled), "utf-8")
    web = demo(tmp_path, tmp_path / "web", "--show", str(one_pick), "--base-url", "https://podcast.example.com/zunda",
               ZUNDACAST_BASE_URL="https://loses.example.com", PREFECT_API_URL=prefect_api_url)
    assert "local preview only" not in web.stderr
    assert "[show].owner_email is not set" in web.stderr.strip().splitlines()[-1]
    assert "feed: https://podcast.example.com/zunda/feed.xml" in web.stdout
    channel = ET.fromstring((tmp_path / "web" / "feed.xml").read_bytes()).find("channel")
    assert channel is not None
    enclosure = channel.find("item/enclosure")
    assert enclosure is not None
    assert enclosure.get("url", "").startswith(
        "https://podcast.example.com/zunda/2026-11-20/zundamon-ai-2026-11-20.mp3?v=")
    assert "loses.example.com" not in (tmp_path / "web" / "feed.xml").read_text(encoding="utf-8")
