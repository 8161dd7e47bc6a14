"""The bundled sample day: feeds and article pages that let `zundacast demo` run offline.

Everything here was written for this project: the stories are fictional (dated around
2026-11-19) and only imitate the shape of real Japanese tech media, with their ads,
related links, share buttons and cookie banners around the article, so collect and
rank meet the same mess they meet on the real web.

    feeds/technews.xml     RSS 2.0 of a tech news site (one item older than the window,
                           one linking to a PDF, one link with utm_* tracking parameters)
    feeds/hatena-it.rdf    RSS 1.0/RDF like Hatena Bookmark's IT hot entries (hatena:bookmarkcount)
    pages/*.html           the article pages the feeds link to
    files/*.pdf            a non-HTML link target

Files hold the placeholder ``{{BASE}}``; the server replaces it with its own base URL.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import urlsplit

from zundacast.show import Show, load_show, parse_show

SAMPLE_DATE = dt.date(2026, 11, 20)  # a Friday; the window is 2026-11-19 06:00 .. 2026-11-20 06:00 JST
DEFAULT_PORT = 47865  # fixed, so the demo's URLs (and with them its cache keys) stay the same across runs
BASE_PLACEHOLDER = "{{BASE}}"

TECHNEWS_FEED_PATH = "/feeds/technews.xml"
HATENA_FEED_PATH = "/feeds/hatena-it.rdf"
TECHNEWS_FEED_NAME = "サンプルテックニュース"
HATENA_FEED_NAME = "はてなブックマーク IT (サンプル)"

# Served folders and the Content-Type of each file suffix; anything else is a 404.
_FOLDERS = ("feeds", "pages", "files")
_CONTENT_TYPES = {
    ".xml": "application/rss+xml; charset=utf-8",
    ".rdf": "application/rdf+xml; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".pdf": "application/pdf",
}
_TEXT_SUFFIXES = (".xml", ".rdf", ".html")


def sample_files() -> dict[str, bytes]:
    """URL path -> raw file bytes (with the placeholder), for every file the server serves."""
    root = resources.files(__name__)
    files: dict[str, bytes] = {}
    for folder in _FOLDERS:
        for entry in root.joinpath(folder).iterdir():
            suffix = "." + entry.name.rsplit(".", 1)[-1]
            if entry.is_file() and suffix in _CONTENT_TYPES:
                files[f"/{folder}/{entry.name}"] = entry.read_bytes()
    return files


def _handler(files: dict[str, bytes], base_url: str) -> type[BaseHTTPRequestHandler]:
    rendered = {
        path: body.replace(BASE_PLACEHOLDER.encode(), base_url.encode()) if path.endswith(_TEXT_SUFFIXES)
        else body
        for path, body in files.items()
    }

    class SampleDayHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _respond(self, with_body: bool) -> None:
            path = urlsplit(self.path).path  # query strings (utm_* and the like) do not change the page
            body = rendered.get(path)
            if body is None:
                message = f"not in the sample day: {path}\n".encode()
                self.send_response(404)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(message)))
                self.end_headers()
                if with_body:
                    self.wfile.write(message)
                return
            self.send_response(200)
            self.send_header("Content-Type", _CONTENT_TYPES["." + path.rsplit(".", 1)[-1]])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if with_body:
                self.wfile.write(body)

        def do_GET(self) -> None:
            self._respond(with_body=True)

        def do_HEAD(self) -> None:
            self._respond(with_body=False)

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: the demo's stderr carries progress lines only

    return SampleDayHandler


def _bind(port: int | None) -> ThreadingHTTPServer:
    # The handler is set once the port (and so the base URL) is known.
    if port is not None:
        return ThreadingHTTPServer(("127.0.0.1", port), BaseHTTPRequestHandler)
    try:
        return ThreadingHTTPServer(("127.0.0.1", DEFAULT_PORT), BaseHTTPRequestHandler)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        return ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)


@contextlib.contextmanager
def serve_sample_day(port: int | None = None) -> Iterator[str]:
    """Serve the sample day on 127.0.0.1 and yield its base URL, e.g. ``http://127.0.0.1:47865``.

    `port=None` tries DEFAULT_PORT, then any free port; `port=0` always takes a free one.
    """
    server = _bind(port)
    server.daemon_threads = True
    base_url = f"http://127.0.0.1:{server.server_address[1]}"
    server.RequestHandlerClass = _handler(sample_files(), base_url)
    thread = threading.Thread(target=server.serve_forever, name="zundacast-sample-day", daemon=True)
    thread.start()
    try:
        yield base_url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def sample_show(base_url: str) -> Show:
    """The default show, reading the sample day's two feeds from `base_url` (the loopback server)."""
    show = load_show("zundamon-ai")
    base_url = base_url.rstrip("/")
    host_port = urlsplit(base_url).netloc
    if not host_port:
        raise ValueError(f"sample day base URL {base_url!r} has no host: use e.g. http://127.0.0.1:{DEFAULT_PORT}")
    raw = show.model_dump(mode="json")
    raw["feeds"] = [
        {"name": TECHNEWS_FEED_NAME, "url": base_url + TECHNEWS_FEED_PATH, "weight": 1.0, "language": "ja"},
        {"name": HATENA_FEED_NAME, "url": base_url + HATENA_FEED_PATH, "weight": 1.2, "language": "ja"},
    ]
    # The SSRF guard refuses loopback addresses unless the show allows the host explicitly.
    raw["collect"]["allow_hosts"] = [host_port]
    return parse_show(raw, show.source_path)  # validated like a show file, not patched past the checks
