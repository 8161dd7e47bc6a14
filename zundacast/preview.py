"""`zundacast preview`: a folder store served on loopback, as a podcast app and a browser need it.

Players seek (chapter links, scrubbing) with HTTP range requests, so every file is served
with `Accept-Ranges: bytes` and single ranges answer 206 with `Content-Range` (`bytes=a-b`,
`bytes=a-`, and the suffix form `bytes=-n`); a range past the end answers 416. A request
with several ranges, or with an `If-Range` that does not match, gets the whole file (200),
which RFC 9110 allows.

The folder's feed.xml holds the URLs publishing wrote (file:// for a folder store without
a base URL, or the public base URL). RSS enclosures must be absolute URLs, and only the
running server knows its own address, so the preview rewrites feed.xml as it serves it:
every URL under the feed's own prefix (its `atom:link rel="self"` minus `feed.xml`) is
pointed at this server. The file on disk is never changed, and the pages need nothing:
their links are relative.
"""

from __future__ import annotations

import email.utils
import io
import mimetypes
import re
import signal
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from zundacast.errors import PermanentError
from zundacast.publishing.catalog import FEED_KEY, SHOW_PAGE_KEY
from zundacast.publishing.feed import ATOM  # importing feed registers its namespace prefixes

DEFAULT_PORT = 8000
LOOPBACK = "127.0.0.1"
CONTENT_TYPES = {
    ".mp3": "audio/mpeg",
    ".vtt": "text/vtt; charset=utf-8",
    ".json": "application/json; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".xml": "application/rss+xml; charset=utf-8",
    ".png": "image/png",
    ".jpg": "image/jpeg",
}
_SINGLE_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class PreviewError(PermanentError):
    """The store cannot be previewed (not a folder, no feed yet, port taken)."""


def rewrite_feed(feed: bytes, origin: str) -> bytes:
    """feed.xml with every URL under the feed's own prefix moved to `origin` (e.g. http://127.0.0.1:8000)."""
    root = ET.fromstring(feed)
    self_link = root.find(f"channel/{{{ATOM}}}link[@rel='self']")
    href = self_link.get("href", "") if self_link is not None else ""
    if not href.endswith(FEED_KEY):
        return feed  # not a feed zundacast wrote: serve it as it is
    prefix, target = href[: -len(FEED_KEY)], origin.rstrip("/") + "/"
    for element in root.iter():
        if element.text and element.text.startswith(prefix):
            element.text = target + element.text[len(prefix):]
        for name, value in element.attrib.items():
            if value.startswith(prefix):
                element.set(name, target + value[len(prefix):])
    return ET.tostring(root, xml_declaration=True, encoding="utf-8") + b"\n"


def parse_range(header: str, size: int) -> tuple[int, int] | str | None:
    """(first, last) byte of a single range; None to send the whole file; "unsatisfiable" for 416."""
    match = _SINGLE_RANGE.fullmatch(header.strip())
    if not match or match.groups() == ("", ""):
        return None  # several ranges or a syntax we do not serve: the whole file is a valid answer
    first, last = match.groups()
    if first == "":  # the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if last and int(last) < start:
        return None  # an invalid range is ignored (RFC 9110 14.1.1)
    if start >= size:
        return "unsatisfiable"
    return start, end


class PreviewHandler(SimpleHTTPRequestHandler):
    """Static files of one store folder, with range requests and the feed pointed at this server."""

    origin = ""  # set per server: http://127.0.0.1:PORT
    log: Callable[[str], None] = staticmethod(lambda line: None)
    _remaining: int | None = None

    def guess_type(self, path: str | Path) -> str:
        suffix = Path(path).suffix.lower()
        return CONTENT_TYPES.get(suffix) or mimetypes.guess_type(str(path))[0] or "application/octet-stream"

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-cache")  # a preview shows what was just published
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass  # one line per request goes out through log_request

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        byte_range = self.headers.get("Range") if hasattr(self, "headers") else None
        status = code.value if isinstance(code, HTTPStatus) else code
        self.log(f'{self.command} {self.path} {status}' + (f" ({byte_range})" if byte_range else ""))

    def send_head(self) -> BinaryIO | None:  # type: ignore[override]
        self._remaining = None
        root = Path(self.directory).resolve()
        path = Path(self.translate_path(self.path))
        if path.is_dir():
            return super().send_head()  # the folder's index.html (or a redirect to add the slash)
        try:
            resolved = path.resolve(strict=True)
        except OSError:
            resolved = None
        if (resolved is None or not resolved.is_file() or not resolved.is_relative_to(root)
                or any(part.startswith(".") for part in resolved.relative_to(root).parts)):
            self.send_error(HTTPStatus.NOT_FOUND, "File not found")
            return None
        stat = resolved.stat()
        etag = f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'
        body: BinaryIO
        if resolved == root / FEED_KEY:
            data = rewrite_feed(resolved.read_bytes(), self.origin)
            body, size = io.BytesIO(data), len(data)
        else:
            body, size = resolved.open("rb"), stat.st_size
        byte_range = self._wanted_range(size, etag)
        if byte_range == "unsatisfiable":
            body.close()
            self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if byte_range is None:
            self.send_response(HTTPStatus.OK)
            start, length = 0, size
        else:
            start, end = byte_range
            length = end - start + 1
            self.send_response(HTTPStatus.PARTIAL_CONTENT)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        body.seek(start)
        self._remaining = length
        self.send_header("Content-Type", self.guess_type(resolved))
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", email.utils.formatdate(stat.st_mtime, usegmt=True))
        self.end_headers()
        return body

    def _wanted_range(self, size: int, etag: str) -> tuple[int, int] | str | None:
        header = self.headers.get("Range")
        if not header:
            return None
        if_range = self.headers.get("If-Range")
        if if_range is not None and if_range.strip() != etag:
            return None  # the client's copy is of another version: it needs the whole file
        return parse_range(header, size)

    def copyfile(self, source: BinaryIO, outputfile: BinaryIO) -> None:  # type: ignore[override]
        remaining = self._remaining
        if remaining is None:
            super().copyfile(source, outputfile)
            return
        while remaining > 0:
            chunk = source.read(min(64 * 1024, remaining))
            if not chunk:
                break
            outputfile.write(chunk)
            remaining -= len(chunk)


def preview_folder(store_url: str) -> Path:
    """The folder of a local store that has something to preview."""
    if store_url.startswith("s3://"):
        raise PreviewError(
            f"--store {store_url}: preview serves a folder store; an s3:// store is already served by its "
            f"bucket (its feed.xml holds the bucket's URLs)"
        )
    from zundacast.storage.local import folder_of

    folder = folder_of(store_url).resolve()
    if not (folder / FEED_KEY).is_file():
        raise PreviewError(
            f"--store {folder}: no {FEED_KEY} there yet; publish an episode first "
            f"(`zundacast demo --store {folder}` or `zundacast run --store {folder}`)"
        )
    return folder


def make_server(folder: Path, port: int = DEFAULT_PORT,
                log: Callable[[str], None] = lambda line: None) -> ThreadingHTTPServer:
    """A server for `folder` bound to 127.0.0.1:`port` (0: any free port); call serve_forever() on it."""
    try:
        server = ThreadingHTTPServer((LOOPBACK, port), PreviewHandler)
    except OSError as exc:
        raise PreviewError(f"--port {port}: cannot listen on {LOOPBACK}:{port} ({exc.strerror}); "
                           f"choose another port (--port 0 picks a free one)") from None
    server.daemon_threads = True
    origin = f"http://{LOOPBACK}:{server.server_address[1]}"
    handler = type("BoundPreviewHandler", (PreviewHandler,),
                   {"origin": origin, "log": staticmethod(log)})
    server.RequestHandlerClass = partial(handler, directory=str(folder))
    return server


def serve(store_url: str, port: int = DEFAULT_PORT) -> None:
    """Serve a folder store until interrupted, printing where its page and feed are."""
    folder = preview_folder(store_url)
    server = make_server(folder, port, log=lambda line: print(line, file=sys.stderr, flush=True))
    origin = f"http://{LOOPBACK}:{server.server_address[1]}"
    print(f"previewing {folder} on loopback (Ctrl-C stops)", flush=True)
    print(f"  page: {origin}/{SHOW_PAGE_KEY}", flush=True)
    print(f"  feed: {origin}/{FEED_KEY}", flush=True)
    # Ctrl-C and a polite kill both stop it, even where it was started with SIGINT ignored (a background
    # job of a non-interactive shell, a test runner's worker): the disposition is inherited across exec.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupted)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def local_feed_note(feed_url: str) -> str:
    """The end-of-run paragraph for a feed only this machine can read ("" for a feed with web URLs)."""
    if not feed_url.startswith("file:"):
        return ""
    folder = Path(unquote(urlsplit(feed_url).path)).parent
    return (
        f"note: {feed_url} is for local preview only: its URLs are file:// paths that podcast apps "
        f"cannot fetch. To publish it, set a public base URL (--base-url, ZUNDACAST_BASE_URL or "
        f"[show].base_url) where this folder is served, or publish to s3://; to listen here, run "
        f"`zundacast preview --store {folder}` and subscribe to the feed URL it prints."
    )
