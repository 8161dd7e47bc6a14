"""A loopback web site for tests and benchmarks: feeds and pages served by a real HTTP server.

`FakeSite()` starts a `ThreadingHTTPServer` on 127.0.0.1 (port 0) and serves per-path `Route`s:
a body (bytes or str), a status, a content type, extra headers, a delay before answering, or a
generated body of `size` bytes streamed in chunks (to see how much a client really read). Every
request is logged (`site.requests`), and `site.bytes_sent[path]` counts the body bytes written.

    with FakeSite() as site:
        site.route("/feed.xml", rss_feed([...]), content_type="application/rss+xml")
        url = site.url("/feed.xml")
"""

from __future__ import annotations

import datetime as dt
import gzip
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from xml.sax.saxutils import escape


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # before the status line
    size: int = 0  # > 0: stream a generated body of this many bytes instead of `body`
    chunk: int = 64 * 1024
    gzip: bool = False  # send `body` gzip-compressed (Content-Encoding: gzip)
    handler: Callable[[BaseHTTPRequestHandler], None] | None = None  # full control, when given


class FakeSite:
    def __init__(self, latency_s: float = 0.0, tls: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[str] = []  # paths, in arrival order
        self.headers: list[dict[str, str]] = []  # request headers, same order
        self.bytes_sent: dict[str, int] = {}
        self.latency_s = latency_s  # added to every answer (benchmarks)
        self._lock = threading.Lock()
        self.server = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self.server.daemon_threads = True
        self.server.request_queue_size = 128
        if tls is not None:  # HTTPS: a server-side context holding the certificate
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"
        self.port = self.server.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def start(self) -> FakeSite:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> FakeSite:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.host}{path}"

    def route(self, path: str, body: bytes | str = b"", **options: Any) -> str:
        """Serve `body` (or the given Route options) at `path`; returns the full URL."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.routes[path] = Route(body=data, **options)
        return self.url(path)

    def hits(self, path: str) -> int:
        with self._lock:
            return sum(1 for requested in self.requests if requested == path)

    def _log(self, path: str, headers: dict[str, str]) -> None:
        with self._lock:
            self.requests.append(path)
            self.headers.append(headers)

    def _sent(self, path: str, count: int) -> None:
        with self._lock:
            self.bytes_sent[path] = self.bytes_sent.get(path, 0) + count


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up mid-answer is what the size and time limits under test do


def _handler_for(site: FakeSite) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            path = self.path
            site._log(path, {k.lower(): v for k, v in self.headers.items()})
            route = site.routes.get(path) or site.routes.get(path.split("?")[0])
            delay = site.latency_s + (route.delay_s if route else 0.0)
            if delay:
                time.sleep(delay)
            if route is None:
                self._answer(404, b"not found", "text/plain", {})
                return
            if route.handler is not None:
                route.handler(self)
                return
            try:
                if route.size:
                    self._stream(path, route)
                else:
                    body = gzip.compress(route.body) if route.gzip else route.body
                    headers = {"Content-Encoding": "gzip"} if route.gzip else {}
                    self._answer(route.status, body, route.content_type, {**headers, **route.headers})
                    site._sent(path, len(body))
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client stopped reading: that is what size caps do

        def _answer(self, status: int, body: bytes, content_type: str, headers: dict[str, str]) -> None:
            self.send_response(status)
            if content_type:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _stream(self, path: str, route: Route) -> None:
            self.send_response(route.status)
            self.send_header("Content-Type", route.content_type)
            self.send_header("Content-Length", str(route.size))
            for name, value in route.headers.items():
                self.send_header(name, value)
            self.end_headers()
            filler = (b"<p>" + b"x" * 1000 + b"</p>\n") * max(1, route.chunk // 1008)
            left = route.size
            while left > 0:
                piece = filler[: min(left, len(filler))]
                self.wfile.write(piece)
                site._sent(path, len(piece))
                left -= len(piece)
            self.close_connection = True

    return Handler


# ---- feed and page builders -------------------------------------------------------------------------

@dataclass
class Item:
    title: str
    link: str
    published: dt.datetime | None = None
    summary: str = ""
    bookmarks: int | None = None  # hatena:bookmarkcount (RDF feeds)


def rss2(items: list[Item], title: str = "Feed") -> str:
    entries = []
    for item in items:
        date = f"<pubDate>{format_datetime(item.published)}</pubDate>" if item.published else ""
        entries.append(f"<item><title>{escape(item.title)}</title><link>{escape(item.link)}</link>"
                       f"<description>{escape(item.summary)}</description>{date}</item>")
    return ('<?xml version="1.0" encoding="UTF-8"?><rss version="2.0">'
            f"<channel><title>{escape(title)}</title>"
            f"<link>http://example.com/</link><description>d</description>{''.join(entries)}</channel></rss>")


def rdf_hatena(items: list[Item], title: str = "はてなブックマーク") -> str:
    """RSS 1.0 (RDF) as Hatena Bookmark serves it, with dc:date and hatena:bookmarkcount."""
    seq = "".join(f'<rdf:li rdf:resource="{escape(item.link)}"/>' for item in items)
    entries = []
    for item in items:
        date = f"<dc:date>{item.published.isoformat()}</dc:date>" if item.published else ""
        count = f"<hatena:bookmarkcount>{item.bookmarks}</hatena:bookmarkcount>" if item.bookmarks else ""
        entries.append(f'<item rdf:about="{escape(item.link)}"><title>{escape(item.title)}</title>'
                       f"<link>{escape(item.link)}</link><description>{escape(item.summary)}</description>"
                       f"{date}{count}</item>")
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            '<rdf:RDF xmlns="http://purl.org/rss/1.0/" xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
            ' xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:hatena="http://www.hatena.ne.jp/info/xmlns#">'
            f'<channel rdf:about="http://b.hatena.ne.jp/"><title>{escape(title)}</title>'
            f"<link>http://b.hatena.ne.jp/</link><description>d</description>"
            f"<items><rdf:Seq>{seq}</rdf:Seq></items></channel>{''.join(entries)}</rdf:RDF>")


def atom(items: list[Item], title: str = "Atom feed") -> str:
    entries = []
    for item in items:
        date = item.published.isoformat() if item.published else ""
        stamp = f"<updated>{date}</updated><published>{date}</published>" if date else ""
        entries.append(f"<entry><title>{escape(item.title)}</title><link href=\"{escape(item.link)}\"/>"
                       f"<id>{escape(item.link)}</id>{stamp}<summary>{escape(item.summary)}</summary></entry>")
    return ('<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
            f"<title>{escape(title)}</title><id>urn:x</id><updated>2025-01-01T00:00:00Z</updated>"
            f"{''.join(entries)}</feed>")


def article_page(title: str, paragraphs: list[str], *, site_name: str = "Example Tech", author: str = "",
                 lang: str = "ja", boilerplate: bool = True) -> str:
    """An article page as real sites serve them: navigation, ads, related links around the article."""
    body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    author_meta = f'<meta name="author" content="{escape(author)}">' if author else ""
    ads = related = nav = footer = ""
    if boilerplate:
        nav = ('<nav><ul><li><a href="/">ホーム</a></li><li><a href="/ai">AI</a></li>'
               '<li><a href="/login">ログイン</a></li></ul></nav>')
        ads = ('<aside class="ad"><div class="ad-banner"><p>AIBR プレミアム 年間たったの9,800円で'
               '“AIに詳しい人”として一目置かれる存在に!</p><a href="/premium">詳細を見る</a></div>'
               '<div class="ad-banner"><p>【実践型】生成AI活用キャンプ 満足度100%の生成AI講座</p>'
               '<a href="/camp">詳細を見る</a></div></aside>')
        related = ('<aside class="related"><h2>関連記事</h2><ul>'
                   '<li><a href="/r1">スパース自己符号化器による可解性の幻想</a></li>'
                   '<li><a href="/r2">産業5.0における生成AIの地政学的役割</a></li>'
                   '<li><a href="/r3">Face-MLLM:大規模顔認識モデル</a></li></ul></aside>')
        footer = '<footer><p>この記事をシェア</p><p>© 2025 Example Tech</p></footer>'
    return (f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8"><title>{escape(title)} | '
            f'{escape(site_name)}</title><meta property="og:site_name" content="{escape(site_name)}">'
            f'<meta property="og:title" content="{escape(title)}">{author_meta}</head><body>{nav}'
            # ads and related links inside the article, as on the page in shared/reference/
            f'<main><article><h1>{escape(title)}</h1>{ads}<div class="entry-content">{body}</div>{related}'
            f'</article></main>{footer}</body></html>')
