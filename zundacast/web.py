"""Safe HTTP fetching for feeds and article pages (httpx); canonical URLs live in `zundacast.stories`.

Feeds link to anything, so every fetch assumes the URL is hostile:

- **No private targets (SSRF).** The host is resolved and every address it resolves to must be public:
  private, loopback, link-local (169.254.169.254, the cloud metadata service), multicast, reserved,
  unspecified and shared (100.64/10) addresses are refused, and so are their IPv6 forms (IPv4-mapped
  `::ffff:a.b.c.d`, 6to4 and Teredo addresses are judged by the IPv4 address they carry). `allow_hosts`
  lets exactly the listed `host` or `host:port` through (tests and the demo serve on 127.0.0.1:PORT and
  allow only that port).
- **DNS rebinding.** The request connects to the very address that was checked (the URL is rewritten to
  the IP; the `Host` header and, for HTTPS, the TLS server name and certificate check keep the real host
  name), so a second, different DNS answer cannot redirect the connection. Residual risk: none known for
  direct connections; environment proxies are ignored (`trust_env=False`) because a proxy would resolve
  the name again.
- **Redirects** are followed by hand, at most `max_redirects` hops, each hop checked like the first.
- **Size.** The body is streamed and reading stops at `max_bytes` of *decoded* content (the result is
  marked `truncated`); compressed bodies are inflated with a bounded `zlib` call, so a compression bomb
  costs at most `max_bytes` of memory. Only gzip is asked for; another content coding is refused.
- **Time.** `timeout_s` bounds each connect and read; the whole fetch (all hops and the body) must also
  finish within `total_timeout_s` (default 3 × `timeout_s`), so a server dripping bytes cannot hold a
  worker forever. Name resolution uses the system resolver and is not bounded by these timeouts.
- **Content type.** Only the types in `accept` are read (page extraction asks for HTML only).

Errors say which URL failed and why. `FetchRefused` (our refusal) and `PermanentHTTPStatus` (HTTP
400/401/403/404/410/422) are `PermanentError`s: retrying cannot heal them. Timeouts, connection errors,
HTTP 429 and 5xx raise the retryable `FetchError` subclasses.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
import zlib
from collections.abc import Iterable
from functools import cache
from urllib.parse import urljoin, urlsplit

import httpx
from pydantic import BaseModel

from zundacast.errors import PermanentError, ZundacastError

DEFAULT_USER_AGENT = "zundacast/0.1 (+https://github.com/zundacast/zundacast)"
HTML_TYPES: tuple[str, ...] = ("text/html", "application/xhtml+xml")
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
PERMANENT_STATUSES = (400, 401, 403, 404, 410, 422)


class FetchError(ZundacastError):
    """A fetch that failed in a way a retry may heal (timeout, connection error, HTTP 429/5xx)."""

    def __init__(self, message: str, url: str = "", status_code: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status_code = status_code


class FetchTimeout(FetchError):
    """The server did not answer (or finish the body) in time."""


class FetchRefused(FetchError, PermanentError):
    """We refused the URL: a private address, a bad scheme, a content type we do not read, too many hops."""


class HTTPStatusFailure(FetchError):
    """The server answered with an error status that may heal (429, 5xx, anything unexpected)."""


class PermanentHTTPStatus(HTTPStatusFailure, PermanentError):
    """The server answered 400/401/403/404/410/422: the URL is wrong or gone."""


class FetchResult(BaseModel):
    url: str  # as asked
    final_url: str  # after redirects
    status: int
    content_type: str  # the media type only, lowercased ("text/html")
    charset: str = ""  # from the Content-Type header, when given
    content: bytes  # the decoded body (at most max_bytes)
    truncated: bool = False  # the body was longer than max_bytes and was cut there
    redirects: list[str] = []  # the URLs redirected through, in order
    elapsed_s: float = 0.0

    @property
    def text(self) -> str:
        """The body as text: the declared charset, else UTF-8 (undecodable bytes replaced)."""
        try:
            return self.content.decode(self.charset or "utf-8", errors="replace")
        except LookupError:  # an unknown charset name
            return self.content.decode("utf-8", errors="replace")


def fetch(
    url: str,
    *,
    timeout_s: float = 10.0,
    max_bytes: int = 3_000_000,
    allow_hosts: Iterable[str] = (),
    accept: tuple[str, ...] | None = HTML_TYPES,
    user_agent: str = DEFAULT_USER_AGENT,
    max_redirects: int = 5,
    total_timeout_s: float | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> FetchResult:
    """GET `url` safely (see the module docstring); `accept=None` reads any content type.

    `ssl_context` replaces the default certificate check (e.g. a private CA); default: certifi's CAs."""
    started = time.monotonic()
    deadline = started + (total_timeout_s if total_timeout_s is not None else 3 * timeout_s)
    allowed = {host.strip().lower() for host in allow_hosts if host.strip()}
    current = url
    redirects: list[str] = []
    timeout = httpx.Timeout(timeout_s)
    client = httpx.Client(timeout=timeout, verify=ssl_context or _ssl_context(), trust_env=False,
                          follow_redirects=False)
    with client:
        for _hop in range(max_redirects + 1):
            scheme, host, port, address = check_url(current, allowed)
            request = _pinned_request(client, current, scheme, host, port, address, accept, user_agent)
            try:
                response = client.send(request, stream=True)
            except httpx.TimeoutException as exc:
                raise FetchTimeout(f"{current}: no answer within {timeout_s:g} s", current) from exc
            except httpx.HTTPError as exc:
                raise FetchError(f"{current}: {type(exc).__name__}: {exc}", current) from exc
            try:
                if response.status_code in REDIRECT_STATUSES and response.headers.get("location"):
                    redirects.append(current)
                    current = urljoin(current, response.headers["location"].strip())
                    if time.monotonic() > deadline:
                        raise FetchTimeout(f"{url}: redirects took longer than the time budget", url)
                    continue
                return _read(response, url, current, redirects, accept, max_bytes, deadline, started)
            finally:
                response.close()
    raise FetchRefused(f"{url}: more than {max_redirects} redirects (last: {current})", url)


def check_url(url: str, allowed: set[str]) -> tuple[str, str, int, str]:
    """Scheme, host, port and the checked IP address to connect to; `FetchRefused` when not allowed."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise FetchRefused(f"{url!r} is not a valid URL: {exc}", url) from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise FetchRefused(f"{url}: only http and https URLs are fetched, not {scheme or 'no scheme'!r}", url)
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise FetchRefused(f"{url}: the URL has no host", url)
    if not host.isascii():  # an internationalized name: its ASCII (punycode) form goes on the wire
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise FetchRefused(f"{url}: invalid host name {host!r}: {exc}", url) from exc
    port = port or (443 if scheme == "https" else 80)
    is_allowed = host in allowed or f"{host}:{port}" in allowed or f"[{host}]:{port}" in allowed
    addresses = resolve(host, port, url)
    if not is_allowed:
        for address in addresses:
            why = private_reason(address)
            if why:
                raise FetchRefused(
                    f"{url}: refused, {host} resolves to {why} address {address} "
                    f"(add {host}:{port} to collect.allow_hosts to fetch it anyway)", url)
    return scheme, host, port, addresses[0]


def resolve(host: str, port: int, url: str = "") -> list[str]:
    """Every address `host` resolves to (an IP literal resolves to itself)."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"{url or host}: cannot resolve {host}: {exc}", url) from exc
    addresses = list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos))
    if not addresses:
        raise FetchError(f"{url or host}: {host} resolves to no address", url)
    return addresses


def private_reason(address: str) -> str:
    """Why `address` is not a public internet address ("" when it is)."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            why = private_reason(str(embedded))
            return f"{why} (inside IPv6 {address})" if why else ""
    checks = (
        ("loopback", ip.is_loopback), ("link-local", ip.is_link_local), ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified), ("private", ip.is_private), ("reserved", ip.is_reserved),
        ("non-global", not ip.is_global),
    )
    return next((name for name, hit in checks if hit), "")


@cache
def _ssl_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()  # one context for every fetch: loading the CA bundle costs ~20 ms


def _pinned_request(client: httpx.Client, url: str, scheme: str, host: str, port: int, address: str,
                    accept: tuple[str, ...] | None, user_agent: str) -> httpx.Request:
    """A request that connects to the checked `address` while speaking to `host` (Host header, TLS SNI)."""
    default_port = 443 if scheme == "https" else 80
    host_header = host if ":" not in host else f"[{host}]"
    if port != default_port:
        host_header += f":{port}"
    headers = {
        "Host": host_header,
        "User-Agent": user_agent,
        "Accept": ", ".join([*accept, "*/*;q=0.1"]) if accept else "*/*",
        "Accept-Encoding": "gzip",
    }
    pinned = httpx.URL(url).copy_with(host=address, fragment=None)
    extensions = {"sni_hostname": host} if scheme == "https" else {}
    return client.build_request("GET", pinned, headers=headers, extensions=extensions)


def _read(response: httpx.Response, url: str, final_url: str, redirects: list[str],
          accept: tuple[str, ...] | None, max_bytes: int, deadline: float, started: float) -> FetchResult:
    status = response.status_code
    if status >= 400 or status < 200 or status in REDIRECT_STATUSES:
        error = PermanentHTTPStatus if status in PERMANENT_STATUSES else HTTPStatusFailure
        raise error(f"{final_url}: HTTP {status} {response.reason_phrase}".rstrip(), final_url, status)
    media_type, charset = _content_type(response.headers.get("content-type", ""))
    if accept and media_type not in accept:
        raise FetchRefused(f"{final_url}: content type {media_type or 'missing'!r} is not one of "
                           f"{', '.join(accept)}", final_url, status)
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", "x-gzip", ""):
        raise FetchRefused(f"{final_url}: unsupported content encoding {encoding!r}", final_url, status)
    # gzip or zlib header, detected; bounded so that a small body cannot inflate past max_bytes
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 32) if encoding in ("gzip", "x-gzip") else None
    body = bytearray()
    truncated = False
    try:
        for raw in response.iter_raw():
            room = max_bytes - len(body)
            chunk = inflater.decompress(raw, room + 1) if inflater is not None else raw
            if len(chunk) > room:
                body += chunk[:room]
                truncated = True
                break
            body += chunk
            if time.monotonic() > deadline:
                raise FetchTimeout(f"{final_url}: the body did not arrive within the time budget", final_url)
    except httpx.TimeoutException as exc:
        raise FetchTimeout(f"{final_url}: the body stalled (read timeout)", final_url) from exc
    except httpx.HTTPError as exc:
        raise FetchError(f"{final_url}: reading the body failed: {type(exc).__name__}: {exc}",
                         final_url) from exc
    except zlib.error as exc:
        raise FetchError(f"{final_url}: corrupt gzip body: {exc}", final_url) from exc
    return FetchResult(
        url=url, final_url=final_url, status=status, content_type=media_type, charset=charset,
        content=bytes(body), truncated=truncated, redirects=redirects,
        elapsed_s=round(time.monotonic() - started, 4),
    )


def _content_type(header: str) -> tuple[str, str]:
    media_type, _, params = header.partition(";")
    charset = ""
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip("\"'")
    return media_type.strip().lower(), charset
