"""A real podcast client (gPodder's `gpo`) subscribes to the published feed and downloads the episode.

Needs Debian's gpodder (`apt-get install -y --no-install-recommends gpodder`; .ci/run installs it).
"""

from __future__ import annotations

import functools
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.system import require_system_tool
from tests.test_upload import DAY1, DAY2, publish, sample_show
from zundacast.storage import open_store

pytestmark = pytest.mark.system


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def served_folder(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on 127.0.0.1, as a CDN in front of the bucket would serve it."""
    folder = tmp_path / "public"
    folder.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def gpo(tmp_path: Path, *args: str) -> str:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(GPODDER_HOME=str(tmp_path / "gpodder-home"), GPODDER_DOWNLOAD_DIR=str(tmp_path / "downloads"),
               HOME=str(tmp_path / "home"))
    command = [require_system_tool("gpo"), *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"gpo {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_gpodder_subscribes_and_downloads_the_episode(served_folder: tuple[Path, str],
                                                      tmp_path: Path) -> None:
    require_system_tool("gpo")  # skips without gpodder, unless CI requires system tests
    folder, base_url = served_folder
    store = open_store(str(folder))
    show = sample_show(base_url=base_url)
    publish(DAY1, tmp_path / "work", store, show=show, frequency=330)
    result, bundle = publish(DAY2, tmp_path / "work", store, show=show)
    assert result.feed_url == f"{base_url}/feed.xml"

    gpo(tmp_path, "subscribe", result.feed_url)
    gpo(tmp_path, "update", result.feed_url)
    listed = gpo(tmp_path, "episodes", "--guid", result.feed_url)
    assert "zundacast:zundamon-test:2025-07-24" in listed and "zundacast:zundamon-test:2025-07-23" in listed

    gpo(tmp_path, "download", result.feed_url, "zundacast:zundamon-test:2025-07-24")
    downloads = [path for path in (tmp_path / "downloads").rglob("*") if path.is_file()]
    assert len(downloads) == 1, downloads
    assert downloads[0].read_bytes() == Path(bundle.mp3_path).read_bytes()

    # a re-render of the date replaces the episode in the client instead of adding a second one
    publish(DAY2, tmp_path / "work", store, show=show, frequency=660)
    gpo(tmp_path, "update", result.feed_url)
    listed = gpo(tmp_path, "episodes", "--guid", result.feed_url)
    assert listed.count("zundacast:zundamon-test:2025-07-24") == 1
