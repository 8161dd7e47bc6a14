"""The bundled sample day: served over loopback HTTP, parsed by feedparser, extracted by the project's
extraction (`zundacast.extraction`) and collected through `tasks.collect`."""

from __future__ import annotations

import calendar
import datetime as dt
import socket
from collections.abc import Iterator
from importlib import resources
from urllib.parse import urlsplit

import feedparser
import httpx
import pytest

from tasks.collect import collect_candidates
from zundacast import readability
from zundacast.dates import window
from zundacast.extraction import extract_article
from zundacast.sample_day import (
    DEFAULT_PORT,
    HATENA_FEED_PATH,
    SAMPLE_DATE,
    TECHNEWS_FEED_PATH,
    sample_files,
    sample_show,
    serve_sample_day,
)

PAGES = sorted(path for path in sample_files() if path.startswith("/pages/"))

# Per page: sentences of the article that extraction must keep, and boilerplate around it that it must drop
# (the in-article ad, the sidebar/top promos, the cookie banner, related links, share buttons, footer).
EXPECTED = {
    "llm-inference": (
        ["開発チームのベンチマークによれば、NVIDIA H200を8基搭載したサーバーで",
         "vLLM 0.14はpipでインストールでき"],
        ["プレミア会員になって", "年間たったの9,800円", "無料ウェビナー", "Cookieを使用しています",
         "関連記事", "アオバクラウド、NVIDIA B300搭載", "この記事をシェア", "TechNews Daily Inc.",
         "アクセスランキング"]),
    "gpu-cloud": (
        ["料金はオンデマンドで1GPU時間あたり1,280円からで",
         "国内のAI向けGPUクラウド市場は2026年度に約3,400億円"],
        ["プレミア会員になって", "Cookieを使用しています", "vLLM 0.14が投機的デコーディング",
         "URLをコピー"]),
    "typescript-7": (
        ["型チェックにかかる時間が77.8秒から7.5秒に短縮された", "コマンド名は従来どおりtscで"],
        ["プレミア会員になって", "申し込む", "会社概要", "ミドリクラウド、東京リージョン4時間障害"]),
    "cloud-outage": (
        ["障害は17日の9時12分から13時20分までの約4時間8分続き", "ロールバックの指示を出せなかった"],
        ["プレミア会員になって", "同意する", "国産LLM「Tsubaki-2」公開"]),
    "gadget-sale": (
        ["通常価格29,800円のモデルが14,300円と52%オフになる"],
        ["プレミア会員になって", "広告掲載", "この記事をシェア"]),
    "domestic-llm": (
        ["パラメーター数は32B（320億）で", "学習にはNVIDIA H100を2,048基使い"],
        ["プレミア会員になって", "Cookie", "TypeScript 7.0正式リリース"]),
    "agent-ops": (
        ["タスクの成功率は71%から89%まで上がりました", "1タスクあたりのステップ数の上限を25に決め"],
        ["カジュアル面談", "エンジニア積極採用中", "この記事を読んだ人におすすめ",
         "LLMの評価基盤をゼロから作った話", "アクセス解析のためにCookie", "Kaede Inc."]),
    "rag-eval": (
        ["350問の評価セットでの正答率は62%でした", "Reciprocal Rank Fusion（RRF）で統合しました"],
        ["ヒバリ Tech Night", "新着記事をお届けします", "Sudachiで作る日本語全文検索入門",
         "同意して閉じる"]),
    "npm-supply-chain": (
        ["週あたりのダウンロード数は約2,300万回にのぼる", "npm ls termhueで依存関係を調べられる"],
        ["プレミア会員になって", "ダークウェブ監視サービス", "パスキー導入企業が前年比2倍に",
         "LinkedIn"]),
    "on-device-model": (
        ["The model behind it is a 3B-parameter decoder-only transformer",
         "took us to 42 tokens per second on the neural engine"],
        ["Kestrel Research newsletter", "Join 48,000 researchers", "Applied ML Engineer",
         "We use cookies", "Related posts", "Hacker News", "Our evaluation harness is now open source"]),
}


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serve_sample_day(port=0) as url:
        yield url


def _feed(base_url: str, path: str) -> feedparser.FeedParserDict:
    response = httpx.get(base_url + path)
    response.raise_for_status()
    return feedparser.parse(response.content, response_headers=dict(response.headers))


def _published(entry: feedparser.FeedParserDict) -> dt.datetime:
    # RSS 1.0 items carry dc:date, which feedparser files under `updated`, not `published`
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    return dt.datetime.fromtimestamp(calendar.timegm(parsed), tz=dt.UTC)


def test_every_file_is_served_with_its_content_type_and_the_base_url(base_url: str) -> None:
    expected_types = {".xml": "application/rss+xml", ".rdf": "application/rdf+xml", ".html": "text/html",
                      ".pdf": "application/pdf"}
    paths = sample_files()
    assert len(PAGES) >= 8
    assert {TECHNEWS_FEED_PATH, HATENA_FEED_PATH} <= set(paths)
    with httpx.Client(base_url=base_url) as client:
        for path in paths:
            response = client.get(path)
            assert response.status_code == 200, path
            content_type = response.headers["content-type"]
            assert content_type.split(";")[0] == expected_types["." + path.rsplit(".", 1)[-1]], path
            if not path.endswith(".pdf"):
                assert "charset=utf-8" in content_type
                assert "{{BASE}}" not in response.text, path
                assert base_url in response.text, path
            else:
                assert response.content.startswith(b"%PDF-")
        assert client.head("/pages/llm-inference.html").headers["content-type"].startswith("text/html")
        # tracking parameters do not change the page; unknown paths and the package's own code are 404
        assert client.get("/pages/llm-inference.html?utm_source=x&utm_medium=rss").status_code == 200
        for missing in ("/", "/pages/nope.html", "/archive/technews-1.html", "/__init__.py",
                        "/pages/../__init__.py"):
            assert client.get(missing).status_code == 404, missing


def test_pages_carry_language_and_article_metadata(base_url: str) -> None:
    for path in PAGES:
        html = httpx.get(base_url + path).text
        slug = path.removeprefix("/pages/").removesuffix(".html")
        language = "en" if slug == "on-device-model" else "ja"
        assert f'<html lang="{language}">' in html
        for meta in ('property="og:title"', 'property="og:site_name"', 'property="article:published_time"'):
            assert meta in html, (path, meta)
        article = extract_article(html, base_url + path)
        assert article is not None, path
        assert article.title and article.sitename and article.author, path
        assert article.date.startswith("2026-11-"), path


def test_feeds_parse_cleanly_with_dates_bookmarks_and_odd_items(base_url: str) -> None:
    technews = _feed(base_url, TECHNEWS_FEED_PATH)
    hatena = _feed(base_url, HATENA_FEED_PATH)
    assert not technews.bozo, technews.get("bozo_exception")
    assert not hatena.bozo, hatena.get("bozo_exception")
    assert (technews.version, hatena.version) == ("rss20", "rss10")
    assert 6 <= len(technews.entries) <= 8 and 6 <= len(hatena.entries) <= 8

    start, end = window(SAMPLE_DATE, "Asia/Tokyo", dt.time(6, 0), 24)
    outside = [e.link for e in technews.entries if not start <= _published(e) < end]
    assert outside == [f"{base_url}/pages/domestic-llm.html"]
    assert all(start <= _published(e) < end for e in hatena.entries)
    assert all(e.get("summary") for e in technews.entries + hatena.entries)
    assert any(e.get("tags") for e in technews.entries)
    assert [e.link for e in technews.entries if e.link.endswith(".pdf")] == [
        f"{base_url}/files/genai-survey-2026.pdf"]

    counts = {e.link: int(e.hatena_bookmarkcount) for e in hatena.entries}
    assert counts[f"{base_url}/pages/cloud-outage.html"] == 801
    assert all(count > 0 for count in counts.values())

    # the same stories in both feeds: one with tracking parameters, one with the very same URL
    bare = {urlsplit(e.link)._replace(query="").geturl() for e in technews.entries}
    in_both = bare & set(counts)
    assert {f"{base_url}/pages/llm-inference.html", f"{base_url}/pages/cloud-outage.html"} <= in_both
    tracked = [e.link for e in technews.entries if "utm_source=" in e.link]
    assert tracked and "utm_medium=rss" in tracked[0]
    assert any(e.title.isascii() for e in hatena.entries)  # the English research blog post


def test_every_feed_link_resolves_on_the_loopback_server(base_url: str) -> None:
    links = [e.link for path in (TECHNEWS_FEED_PATH, HATENA_FEED_PATH) for e in _feed(base_url, path).entries]
    served_pages = set()
    with httpx.Client() as client:
        for link in links:
            assert link.startswith(base_url + "/"), link
            response = client.get(link)
            assert response.status_code == 200, link
            assert response.headers["content-type"].split(";")[0] in ("text/html", "application/pdf")
            if response.headers["content-type"].startswith("text/html"):
                served_pages.add(urlsplit(link).path)
    assert served_pages == set(PAGES)  # every page is linked from a feed, and every link is a page or the PDF


@pytest.mark.parametrize("path", PAGES)
def test_extraction_keeps_the_article_and_drops_the_boilerplate(base_url: str, path: str) -> None:
    slug = path.removeprefix("/pages/").removesuffix(".html")
    kept, dropped = EXPECTED[slug]
    html = httpx.get(base_url + path).text
    for text in dropped:  # the boilerplate really is on the page, so its absence below means something
        assert text in html, (slug, text)
    article = extract_article(html, base_url + path)
    assert article is not None, slug
    extracted = article.text
    assert 1200 <= len(extracted) <= 3200, (slug, len(extracted))
    assert readability.assess(extracted).readable, (slug, readability.assess(extracted))
    for sentence in kept:
        assert sentence in extracted, (slug, sentence)
    for text in dropped:
        assert text not in extracted, (slug, text)


def test_sample_show_reads_the_served_feeds_and_allows_only_that_host(base_url: str) -> None:
    show = sample_show(base_url)
    assert show.show.id == "zundamon-ai"
    assert [feed.url for feed in show.feeds] == [base_url + TECHNEWS_FEED_PATH, base_url + HATENA_FEED_PATH]
    assert [feed.weight for feed in show.feeds] == [1.0, 1.2]
    assert show.collect.allow_hosts == [urlsplit(base_url).netloc]
    assert show.rank.topics  # the rest is the default show's
    assert type(show).model_validate(show.model_dump()) == show
    for feed in show.feeds:
        assert not feedparser.parse(httpx.get(feed.url).content).bozo


def test_the_default_port_falls_back_to_a_free_one_when_busy() -> None:
    holder = socket.socket()
    try:
        try:
            holder.bind(("127.0.0.1", DEFAULT_PORT))
            holder.listen()
        except OSError:
            pass  # something else holds it already: the server must fall back just the same
        with serve_sample_day() as url:
            assert urlsplit(url).port not in (None, DEFAULT_PORT)
            assert httpx.get(url + TECHNEWS_FEED_PATH).status_code == 200
    finally:
        holder.close()


def test_package_data_is_found_through_importlib_resources() -> None:
    root = resources.files("zundacast.sample_day")
    assert root.joinpath("feeds", "hatena-it.rdf").is_file()
    assert len(list(root.joinpath("pages").iterdir())) == len(PAGES)


def test_collected_sample_day_text_is_clean_prose(base_url: str) -> None:
    """Through the collect stage: every page's text starts with its first paragraph, carries no headline,
    byline, dateline or tag line, and no line can be glued to the next (each ends a sentence or is a "## "
    heading)."""
    _, end = window(SAMPLE_DATE, "Asia/Tokyo", dt.time(6, 0), 24)
    snapshot = collect_candidates(sample_show(base_url), SAMPLE_DATE, now=end + dt.timedelta(minutes=5))
    pages = [c for c in snapshot.candidates if "/pages/" in c.url]
    assert len(pages) >= 8
    for candidate in pages:
        html = httpx.get(candidate.url).text
        article = extract_article(html, candidate.url)
        assert article is not None and candidate.extraction_error == "", candidate.url
        lines = candidate.text.splitlines()
        headline = " ".join(article.title.split())
        assert headline not in candidate.text, candidate.url
        heads = ("2026年11月", "文：", "By ", "Posted")
        assert not any(line.startswith(heads) for line in lines), candidate.url
        ends = ("。", ".", "」", "！", "？", "!", "?", ")", "）")
        assert all(line.endswith(ends) or line.startswith("## ") for line in lines), candidate.url
        for author in article.author.split(";"):
            assert author.strip() not in lines, candidate.url
        assert lines[0].endswith(("。", ".")) and len(lines[0]) >= 60, (candidate.url, lines[0])
