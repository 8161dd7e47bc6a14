"""Safe fetching over real loopback HTTP: SSRF refusals, redirects, size caps, content types, errors."""

from __future__ import annotations

import datetime as dt
import gzip
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.web import FakeSite
from zundacast.errors import PermanentError
from zundacast.stage import is_permanent
from zundacast.stories import canonical_url
from zundacast.web import (
    FetchError,
    FetchRefused,
    FetchTimeout,
    HTTPStatusFailure,
    PermanentHTTPStatus,
    fetch,
    private_reason,
)


@pytest.fixture
def site() -> Iterator[FakeSite]:
    with FakeSite() as running:
        yield running


@pytest.fixture
def other_site() -> Iterator[FakeSite]:
    """Another loopback server on another port: never allowed, must never be reached."""
    with FakeSite() as running:
        running.route("/secret", "<html><body>internal</body></html>")
        yield running


def get(site: FakeSite, path: str, **options: object):
    return fetch(site.url(path), allow_hosts=[site.host], timeout_s=2, **options)  # type: ignore[arg-type]


def test_fetches_html_with_our_headers(site: FakeSite) -> None:
    site.route("/page", "<html><body><p>こんにちは</p></body></html>")
    result = get(site, "/page", user_agent="zundacast-test/1")
    assert result.status == 200
    assert result.content_type == "text/html"
    assert result.charset == "utf-8"
    assert "こんにちは" in result.text
    assert not result.truncated
    assert site.headers[-1]["user-agent"] == "zundacast-test/1"
    assert site.headers[-1]["host"] == site.host  # connected to the IP, spoke to the host


def test_host_name_is_pinned_and_sent_as_host_header() -> None:
    with FakeSite() as site:
        site.route("/p", "<html>ok</html>")
        port = site.port
        result = fetch(f"http://localhost:{port}/p", allow_hosts=[f"localhost:{port}"], timeout_s=2)
        assert result.status == 200
        assert site.headers[-1]["host"] == f"localhost:{port}"
        # allowing 127.0.0.1:PORT does not allow localhost:PORT
        with pytest.raises(FetchRefused, match="loopback"):
            fetch(f"http://localhost:{port}/p", allow_hosts=[site.host], timeout_s=2)


def test_gzip_body_is_decoded(site: FakeSite) -> None:
    site.route("/z", "<html>" + "圧縮" * 1000 + "</html>", gzip=True)
    result = get(site, "/z")
    assert site.headers[-1]["accept-encoding"] == "gzip"
    assert result.text.count("圧縮") == 1000


def test_huge_page_is_capped_not_fully_read(site: FakeSite) -> None:
    size = 64 * 1024 * 1024
    site.route("/huge", size=size)
    result = get(site, "/huge", max_bytes=100_000)
    assert result.truncated
    assert len(result.content) == 100_000
    assert site.bytes_sent["/huge"] < size // 2  # the client hung up early; kernel buffers hold the rest


def test_compression_bomb_inflates_no_further_than_the_cap(site: FakeSite) -> None:
    bomb = b"<html>" + b"0" * 40_000_000  # ~40 KB compressed
    site.route("/bomb", bomb, gzip=True)
    assert len(gzip.compress(bomb)) < 100_000
    result = get(site, "/bomb", max_bytes=1_000_000)
    assert result.truncated
    assert len(result.content) == 1_000_000


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/latest/meta-data/",
    "http://10.0.0.1/",
    "http://[::1]/",
    "http://0.0.0.0/",
    "file:///etc/passwd",
])
def test_private_and_odd_targets_are_refused(url: str) -> None:
    with pytest.raises(FetchRefused) as refused:
        fetch(url, timeout_s=1)
    assert isinstance(refused.value, PermanentError)
    assert is_permanent(refused.value)


def test_only_the_allowed_port_is_allowed(site: FakeSite, other_site: FakeSite) -> None:
    with pytest.raises(FetchRefused, match=f"127.0.0.1:{other_site.port}"):
        fetch(other_site.url("/secret"), allow_hosts=[site.host], timeout_s=2)
    with pytest.raises(FetchRefused):  # the same loopback address, written as IPv4-mapped IPv6
        fetch(f"http://[::ffff:127.0.0.1]:{other_site.port}/secret", allow_hosts=[site.host], timeout_s=2)
    assert other_site.requests == []


@pytest.mark.parametrize("target", ["other", "http://169.254.169.254/latest/meta-data/"])
def test_redirect_to_a_private_address_is_refused(site: FakeSite, other_site: FakeSite, target: str) -> None:
    location = other_site.url("/secret") if target == "other" else target
    site.route("/go", status=302, headers={"Location": location})
    with pytest.raises(FetchRefused):
        get(site, "/go")
    assert site.hits("/go") == 1
    assert other_site.requests == []


def test_redirects_are_followed_and_reported(site: FakeSite) -> None:
    site.route("/old", status=301, headers={"Location": "/middle"})
    site.route("/middle", status=307, headers={"Location": site.url("/new?x=1")})
    site.route("/new", "<html>new</html>")
    result = get(site, "/old")
    assert result.final_url == site.url("/new?x=1")
    assert result.redirects == [site.url("/old"), site.url("/middle")]


def test_redirect_loops_end(site: FakeSite) -> None:
    site.route("/loop", status=302, headers={"Location": "/loop"})
    with pytest.raises(FetchRefused, match="redirects"):
        get(site, "/loop", max_redirects=3)
    assert site.hits("/loop") == 4


def test_non_html_is_refused_for_pages_and_read_when_any_type_is_accepted(site: FakeSite) -> None:
    site.route("/paper.pdf", b"%PDF-1.7 ...", content_type="application/pdf")
    with pytest.raises(FetchRefused, match="application/pdf"):
        get(site, "/paper.pdf")
    assert get(site, "/paper.pdf", accept=None).content.startswith(b"%PDF")


@pytest.mark.parametrize("status", [401, 403, 404, 410])
def test_gone_pages_are_permanent(site: FakeSite, status: int) -> None:
    site.route("/x", "no", status=status)
    with pytest.raises(PermanentHTTPStatus) as failure:
        get(site, "/x")
    assert failure.value.status_code == status
    assert is_permanent(failure.value)


@pytest.mark.parametrize("status", [500, 503, 429])
def test_server_errors_are_retryable(site: FakeSite, status: int) -> None:
    site.route("/x", "busy", status=status)
    with pytest.raises(HTTPStatusFailure) as failure:
        get(site, "/x")
    assert not isinstance(failure.value, PermanentError)
    assert not is_permanent(failure.value)


def test_slow_server_times_out_retryably(site: FakeSite) -> None:
    site.route("/slow", "<html>late</html>", delay_s=1.5)
    with pytest.raises(FetchTimeout) as failure:
        fetch(site.url("/slow"), allow_hosts=[site.host], timeout_s=0.2)
    assert isinstance(failure.value, FetchError)
    assert not is_permanent(failure.value)


def test_connection_refused_is_a_retryable_fetch_error() -> None:
    with FakeSite() as gone:
        host, url = gone.host, gone.url("/x")
    with pytest.raises(FetchError) as failure:
        fetch(url, allow_hosts=[host], timeout_s=1)
    assert not is_permanent(failure.value)


@pytest.mark.parametrize(("address", "reason"), [
    ("8.8.8.8", ""), ("2606:4700::1111", ""), ("::ffff:8.8.8.8", ""),
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("169.254.169.254", "link-local"),
    ("fe80::1", "link-local"), ("10.1.2.3", "private"), ("192.168.0.1", "private"), ("fc00::1", "private"),
    ("100.64.0.1", "non-global"), ("224.0.0.1", "multicast"), ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"), ("240.0.0.1", "private"),
    ("::ffff:10.0.0.1", "private"), ("2002:7f00:1::", "loopback"),
])
def test_private_reason(address: str, reason: str) -> None:
    assert private_reason(address).startswith(reason) if reason else private_reason(address) == ""


@pytest.mark.parametrize(("url", "canonical"), [
    ("https://Example.COM/a?utm_source=x&utm_medium=rss&id=3#section", "https://example.com/a?id=3"),
    ("http://example.com:80/story?fbclid=abc&gclid=def&ref=top", "http://example.com/story"),
    ("https://example.com", "https://example.com/"),
    ("https://example.com/p?b=2&a=1", "https://example.com/p?a=1&b=2"),
])
def test_canonical_url(url: str, canonical: str) -> None:
    assert canonical_url(url) == canonical


def _self_signed_localhost(folder: Path) -> tuple[Path, Path]:
    """A certificate for the name `localhost` only (not for 127.0.0.1), and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_https_connects_to_the_checked_address_and_verifies_the_host_name(tmp_path: Path) -> None:
    cert, key = _self_signed_localhost(tmp_path)
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(cert, key)
    with FakeSite(tls=server_side) as site:
        site.route("/tls", "<html>secure</html>")
        trusted = ssl.create_default_context(cafile=str(cert))
        port = site.port
        result = fetch(f"https://localhost:{port}/tls", allow_hosts=[f"localhost:{port}"], timeout_s=2,
                       ssl_context=trusted)
        assert result.text == "<html>secure</html>"
        assert site.headers[-1]["host"] == f"localhost:{port}"
        # the certificate is checked against the name asked for, even though we dial the IP
        with pytest.raises(FetchError, match="CERTIFICATE_VERIFY_FAILED"):
            fetch(f"https://127.0.0.1:{port}/tls", allow_hosts=[f"127.0.0.1:{port}"], timeout_s=2,
                  ssl_context=trusted)
