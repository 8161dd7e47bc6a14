"""Backfill from dated archives: recorded-style archive answers (tests/data/archives, written for the
project) served over real loopback HTTP, read by `zundacast.archives` and by `collect`."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from tasks.collect import FEED_MAX_BYTES, collect_candidates, load_or_collect, snapshot_key
from tests.fakes.web import FakeSite, Item, article_page, rss2
from zundacast.archives import (
    ARCHIVE_AFTER,
    ArchiveTooLarge,
    MalformedArchive,
    archive_urls,
    parse_arxiv_atom,
    parse_hatena_hotentry,
    parse_hn_algolia,
    parse_rss,
    read_archive,
    read_archives,
)
from zundacast.dates import window
from zundacast.errors import NotEnoughCandidates
from zundacast.models import Candidate, CandidateSnapshot
from zundacast.show import FeedConfig, Show, ShowFileError, load_show, parse_show
from zundacast.storage import open_store
from zundacast.web import FetchRefused

DATA = Path(__file__).parent / "data" / "archives"
DAY = dt.date(2026, 11, 20)
JST = dt.timezone(dt.timedelta(hours=9))
START, END = window(DAY, "Asia/Tokyo", dt.time(6, 0), 24)  # 2026-11-19 06:00 to 2026-11-20 06:00 JST
LATER = dt.datetime(2026, 11, 30, 12, 0, tzinfo=JST)  # ten days on: the live feeds hold other days

HATENA_DAY = "/hotentry/it/{date:%Y%m%d}"
ARXIV_RANGE = ("/api/query?search_query=cat:cs.CL+AND+submittedDate:[{start:%Y%m%d%H%M}+TO+{end:%Y%m%d%H%M}]"
               "&sortBy=submittedDate&max_results=200")
HN_RANGE = ("/api/v1/search_by_date?tags=story&numericFilters=created_at_i>={start:%s},created_at_i<{end:%s}"
            "&hitsPerPage=100")
RSS_MONTH = "/blog/archive/{date:%Y-%m}.xml"

# what the window keeps of each recorded answer (the items at 05:59 / 06:00 and one second either side
# of the window's edges are in the files too, and must be dropped)
HATENA_KEPT = {
    "LLM推論サーバーのレイテンシを半分にした話": 1234,
    "窓が開いた瞬間のエントリー：RAG評価の落とし穴": 321,
    "社内AIエージェントを半年運用して分かったこと": 456,
    "窓が閉じる直前のエントリー：GPUクラスタの電力効率": 88,
}
ARXIV_KEPT = {"Sparse Speculative Decoding for Long-Context Language Models",
              "Evaluating Retrieval-Augmented Agents at the Edge of the Window"}
HN_KEPT = {"Open-weight model inference on a single consumer GPU": 412,
           "Ask HN: How do you evaluate LLM agents in production?": 95}
RSS_KEPT = {"量子化したLLMをブラウザで動かす", "窓の最後の1秒に公開された記事"}
LIVE_FEEDS = {"はてなブックマーク IT", "arXiv cs.CL", "Hacker News", "Example Blog"}  # archive_feeds' names

PARAGRAPHS = [
    "大規模言語モデルの推論サーバーでは、リクエストをまとめて処理するバッチングがスループットを大きく左右します。"
    "今回は連続バッチングとKVキャッシュの再利用を組み合わせ、平均レイテンシを半分にできました。",
    "まずGPUのメモリ使用量を測り、キャッシュに使える領域を見積もりました。次にリクエストの長さごとに"
    "キューを分け、短い問い合わせが長い生成に待たされないようにしました。",
    "最後に、負荷試験で毎秒の処理件数とレイテンシの分布を比べ、本番に入れる前に効果を確かめました。",
]


def recorded(name: str, site: FakeSite) -> bytes:
    """A recorded-style answer with its article links pointing at the loopback site."""
    return (DATA / name).read_bytes().replace(b"http://articles.test", site.url("").encode())


def serve_archives(site: FakeSite) -> None:
    site.route("/hotentry/it/20261119", recorded("hatena-it-20261119.html", site))
    site.route("/hotentry/it/20261120", recorded("hatena-it-20261120.html", site))
    site.route("/api/query", recorded("arxiv-cs-cl.atom", site),
               content_type="application/atom+xml; charset=utf-8")
    site.route("/api/v1/search_by_date", recorded("hn-algolia.json", site),
               content_type="application/json; charset=utf-8")
    site.route("/blog/archive/2026-11.xml", recorded("rss-archive.xml", site),
               content_type="application/rss+xml; charset=utf-8")


def archive_feeds(site: FakeSite) -> list[dict[str, Any]]:
    """The four sources, each with a dead live feed and a loopback archive."""
    return [
        {"name": "はてなブックマーク IT", "url": site.url("/hotentry/it.rss"), "weight": 1.2,
         "archive_url": site.url(HATENA_DAY), "archive_format": "hatena-hotentry"},
        {"name": "arXiv cs.CL", "url": site.url("/rss/cs.CL"), "language": "en", "weight": 0.6,
         "topics": ["LLM", "language model", "agent", "retrieval"],
         "archive_url": site.url(ARXIV_RANGE), "archive_format": "arxiv-atom"},
        {"name": "Hacker News", "url": site.url("/hn/rss"), "language": "en",
         "archive_url": site.url(HN_RANGE), "archive_format": "hn-algolia"},
        {"name": "Example Blog", "url": site.url("/blog/feed.xml"),
         "archive_url": site.url(RSS_MONTH), "archive_format": "rss"},
    ]


def make_show(feeds: list[dict[str, Any]], allow: list[str], **collect: Any) -> Show:
    return parse_show({
        "show": {"id": "archive-show", "title": "アーカイブ放送局"},
        "collect": {"timeout_s": 10, "max_pages": 4, "min_candidates": 1, "min_text_chars": 100,
                    "allow_hosts": allow, **collect},
        "rank": {"picks": 1, "spares": 1, "topics": ["AI", "LLM", "GPU"]},
        "feeds": feeds,
    })


def feed(fmt: str, url: str = "https://archive.example/{date:%Y%m%d}", **fields: Any) -> FeedConfig:
    return FeedConfig(name=f"{fmt} feed", url="https://live.example/feed", archive_url=url,
                      archive_format=fmt, **fields)  # type: ignore[arg-type]


def titles(items: list[Candidate]) -> set[str]:
    return {item.title for item in items}


@pytest.fixture
def site() -> Iterator[FakeSite]:
    with FakeSite() as running:
        yield running


# ---- a past date from archives only ------------------------------------------------------------------

def test_a_past_date_with_dead_live_feeds_is_made_from_the_archives(site: FakeSite, tmp_path: Path) -> None:
    serve_archives(site)
    site.route("/hotentry/it.rss", "down", status=503)
    site.route("/rss/cs.CL", "gone", status=404)
    site.route("/hn/rss", "oops", status=500)
    site.route("/blog/feed.xml", "<rss><channel><item><title>broken", content_type="application/rss+xml")
    for path in ("/llm-serving", "/agent-ops", "/hn-gpu", "/blog/2026/11/19/browser-llm"):
        site.route(path, article_page(f"記事 {path}", PARAGRAPHS))
    show = make_show(archive_feeds(site), allow=[site.host])
    store = open_store(str(tmp_path / "public"))
    assert store.get(snapshot_key(DAY)) is None

    snapshot = load_or_collect(show, DAY, store, now=LATER)

    found = {c.title: c for c in snapshot.candidates}
    assert set(found) == set(HATENA_KEPT) | ARXIV_KEPT | set(HN_KEPT) | RSS_KEPT
    # the live feeds failed and say so; every archive was read
    assert set(snapshot.feed_errors) == LIVE_FEEDS
    assert not any("(archive)" in name for name in snapshot.feed_errors)
    # which source each candidate came from, and its popularity where the source has one
    for title, count in HATENA_KEPT.items():
        assert found[title].origin == "archive:hatena-hotentry" and found[title].bookmarks == count
        assert found[title].source == "はてなブックマーク IT"
    for title, points in HN_KEPT.items():
        assert found[title].origin == "archive:hn-algolia" and found[title].bookmarks == points
    assert {found[t].origin for t in ARXIV_KEPT} == {"archive:arxiv-atom"}
    assert {found[t].bookmarks for t in ARXIV_KEPT} == {None}
    assert {found[t].origin for t in RSS_KEPT} == {"archive:rss"}
    assert all(START <= c.published < END for c in snapshot.candidates if c.published)
    # the most popular pages were fetched and extracted like live candidates
    assert "連続バッチング" in found["LLM推論サーバーのレイテンシを半分にした話"].text
    assert found["LLM推論サーバーのレイテンシを半分にした話"].url == site.url("/llm-serving")
    # the snapshot keeps the origins, so a rerun of the date needs no archive again
    stored = CandidateSnapshot.model_validate_json(store.get(snapshot_key(DAY)) or b"")
    assert {c.url: c.origin for c in stored.candidates} == {c.url: c.origin for c in snapshot.candidates}
    raw = json.loads(store.get(snapshot_key(DAY)) or b"")
    assert {c["origin"] for c in raw["candidates"]} == {"archive:hatena-hotentry", "archive:arxiv-atom",
                                                         "archive:hn-algolia", "archive:rss"}
    fetched = len(site.requests)
    assert load_or_collect(show, DAY, store, now=LATER) == snapshot
    assert len(site.requests) == fetched
    # the URLs asked for: one Hatena page per local day the window touches, one range query for the APIs
    asked = [unquote(path) for path in site.requests]
    assert site.hits("/hotentry/it/20261119") == 1 and site.hits("/hotentry/it/20261120") == 1
    assert any("submittedDate:[202611182100+TO+202611192100]" in path for path in asked)
    assert any("created_at_i>=1795035600,created_at_i<1795122000" in path for path in asked)
    assert site.hits("/blog/archive/2026-11.xml") == 1  # both days are in one monthly archive: read once


def test_live_items_of_a_past_window_join_the_archived_ones_and_the_same_story_is_one(site: FakeSite) -> None:
    serve_archives(site)
    in_window = dt.datetime(2026, 11, 19, 20, 0, tzinfo=JST)
    # a live feed that still holds one item of the window (and a newer one), carrying a Hatena story too
    site.route("/blog/feed.xml", rss2([
        Item("社内AIエージェントを半年運用して分かったこと", site.url("/agent-ops?utm_source=rss"),
             in_window),
        Item("ライブにだけ残っていた記事", "https://live.example/only-live", in_window),
        Item("今日の記事", "https://live.example/today", LATER - dt.timedelta(hours=1)),
    ]), content_type="application/rss+xml")
    feeds = [archive_feeds(site)[0], archive_feeds(site)[3]]
    show = make_show(feeds, allow=[site.host], max_pages=1)

    snapshot = collect_candidates(show, DAY, now=LATER)

    found = {c.title: c for c in snapshot.candidates}
    assert "今日の記事" not in found  # live items are filtered to the window too
    assert found["ライブにだけ残っていた記事"].origin == "live"
    agent = found["社内AIエージェントを半年運用して分かったこと"]
    assert sorted(agent.sources) == ["Example Blog", "はてなブックマーク IT"] and agent.bookmarks == 456
    assert len([c for c in snapshot.candidates if "社内AIエージェント" in c.title]) == 1
    assert "はてなブックマーク IT" in snapshot.feed_errors  # its live feed is not served here


def test_archives_are_not_read_while_the_live_feeds_still_hold_the_window(site: FakeSite) -> None:
    serve_archives(site)
    site.route("/blog/feed.xml", rss2([Item("今朝の記事", "https://live.example/1",
                                            dt.datetime(2026, 11, 19, 22, 0, tzinfo=JST))]))
    show = make_show([archive_feeds(site)[3]], allow=[site.host], max_pages=1)

    snapshot = collect_candidates(show, DAY, now=END + ARCHIVE_AFTER - dt.timedelta(minutes=1))

    assert [c.title for c in snapshot.candidates] == ["今朝の記事"]
    assert site.hits("/blog/archive/2026-11.xml") == 0
    later = collect_candidates(show, DAY, now=END + ARCHIVE_AFTER)
    assert site.hits("/blog/archive/2026-11.xml") == 1
    assert titles(later.candidates) == {"今朝の記事"} | RSS_KEPT


# ---- each parser on its own ---------------------------------------------------------------------------

def test_hatena_day_page_entries_with_counts_descriptions_and_japan_times() -> None:
    hatena = feed("hatena-hotentry")
    page_url = "https://b.hatena.ne.jp/hotentry/it/20261119"
    items = parse_hatena_hotentry((DATA / "hatena-it-20261119.html").read_bytes(), hatena, page_url)

    by_title = {item.title: item for item in items}
    assert list(by_title) == [
        "LLM推論サーバーのレイテンシを半分にした話", "窓が開く1分前のエントリー",
        "窓が開いた瞬間のエントリー：RAG評価の落とし穴", "社内AIエージェントを半年運用して分かったこと",
    ]
    serving = by_title["LLM推論サーバーのレイテンシを半分にした話"]
    assert serving.bookmarks == 1234  # "1,234 users"
    assert serving.published == dt.datetime(2026, 11, 19, 12, 34, tzinfo=JST)
    assert serving.url == "http://articles.test/llm-serving"
    assert serving.feed_summary.startswith("GPUのバッチングとKVキャッシュ")
    assert serving.origin == "archive:hatena-hotentry" and serving.feed_url == hatena.archive_url
    assert by_title["窓が開く1分前のエントリー"].url == "http://articles.test/too-early"  # tracking dropped

    with pytest.raises(MalformedArchive, match="no hot-entry list"):
        parse_hatena_hotentry(b"<html><body><p>maintenance</p></body></html>", hatena, page_url)


def test_arxiv_atom_papers_with_submission_times_authors_and_unversioned_links() -> None:
    arxiv = feed("arxiv-atom", "http://export.arxiv.org/api/query?q=[{start:%Y%m%d%H%M}+TO+{end:%Y%m%d%H%M}]")
    items = parse_arxiv_atom((DATA / "arxiv-cs-cl.atom").read_bytes(), arxiv, "http://export.arxiv.org/api")

    assert len(items) == 4
    paper = items[0]
    assert paper.title == "Sparse Speculative Decoding for Long-Context Language Models"  # folded line
    assert paper.url == "https://arxiv.org/abs/2611.07001"
    assert paper.published == dt.datetime(2026, 11, 19, 15, 0, tzinfo=dt.UTC)
    assert paper.author == "Hanako Suzuki, Taro Yamada" and paper.site_name == "arXiv"
    assert paper.feed_summary.startswith("We propose a speculative decoding scheme")
    assert paper.bookmarks is None and paper.origin == "archive:arxiv-atom"
    assert items[1].url == "https://arxiv.org/abs/2611.07002"  # v2 too

    refused = ('<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><entry>'
               "<id>http://arxiv.org/api/errors#incorrect_id_format_for_1234</id><title>Error</title>"
               "<summary>incorrect id format for 1234</summary><updated>2026-11-20T00:00:00Z</updated>"
               "</entry></feed>")
    with pytest.raises(MalformedArchive, match="arXiv refused the query: incorrect id format"):
        parse_arxiv_atom(refused.encode(), arxiv, "http://export.arxiv.org/api")


def test_hn_algolia_hits_with_points_and_discussion_links_for_ask_hn() -> None:
    hn = feed("hn-algolia", "https://hn.algolia.com/api/v1/search?numericFilters=created_at_i>{start:%s}")
    items = parse_hn_algolia((DATA / "hn-algolia.json").read_bytes(), hn, "https://hn.algolia.com/api")

    by_title = {item.title: item for item in items}
    assert len(items) == 4
    gpu = by_title["Open-weight model inference on a single consumer GPU"]
    assert gpu.bookmarks == 412 and gpu.author == "gpuperson" and gpu.origin == "archive:hn-algolia"
    assert gpu.published == dt.datetime(2026, 11, 19, 9, 15, tzinfo=dt.UTC)
    ask = by_title["Ask HN: How do you evaluate LLM agents in production?"]
    assert ask.url == "https://news.ycombinator.com/item?id=41200001"
    assert ask.feed_summary == "How do you evaluate LLM agents in production?"

    for broken in (b"<html>rate limited</html>", b'{"message": "invalid"}', b'{"hits": {"a": 1}}'):
        with pytest.raises(MalformedArchive, match="not an Algolia search answer"):
            parse_hn_algolia(broken, hn, "https://hn.algolia.com/api")


def test_rss_archive_items_with_dates_and_plain_text() -> None:
    rss = feed("rss")
    items = parse_rss((DATA / "rss-archive.xml").read_bytes(), rss, "https://blog.example/archive.xml")

    by_title = {item.title: item for item in items}
    assert len(items) == 5
    browser = by_title["量子化したLLMをブラウザで動かす"]
    assert browser.published == dt.datetime(2026, 11, 19, 9, 30, tzinfo=dt.UTC)
    assert browser.feed_summary == "WebGPUで4ビット量子化した言語モデルを動かしました。"
    assert browser.origin == "archive:rss"
    assert by_title["日付のない記事"].published is None
    with pytest.raises(MalformedArchive):
        parse_rss(b"<html><body>not a feed</body></html>", rss, "https://blog.example/archive.xml")


@pytest.mark.parametrize(("fmt", "route", "content_type", "kept"), [
    ("hatena-hotentry", HATENA_DAY, "text/html; charset=utf-8", set(HATENA_KEPT)),
    ("arxiv-atom", ARXIV_RANGE, "application/atom+xml", ARXIV_KEPT),
    ("hn-algolia", HN_RANGE, "application/json", set(HN_KEPT)),
    ("rss", RSS_MONTH, "application/rss+xml", RSS_KEPT),
])
def test_each_archive_honours_both_edges_of_the_window(site: FakeSite, fmt: str, route: str,
                                                       content_type: str, kept: set[str]) -> None:
    serve_archives(site)
    show = make_show([{"name": fmt, "url": site.url("/live"), "archive_url": site.url(route),
                       "archive_format": fmt}], allow=[site.host])

    items = read_archive(show.feeds[0], show.collect, START, END, "Asia/Tokyo", FEED_MAX_BYTES)

    assert titles(items) == kept
    assert all(START <= item.published < END for item in items if item.published)


def test_day_templates_cover_every_local_day_and_range_templates_the_window_in_utc() -> None:
    assert archive_urls("https://b.hatena.ne.jp/hotentry/it/{date:%Y%m%d}", START, END, "Asia/Tokyo") == [
        "https://b.hatena.ne.jp/hotentry/it/20261119", "https://b.hatena.ne.jp/hotentry/it/20261120"]
    # a window ending at midnight touches one day only
    midnight_start, midnight_end = window(DAY, "Asia/Tokyo", dt.time(0, 0), 24)
    assert archive_urls("https://x.example/{date:%Y%m%d}", midnight_start, midnight_end, "Asia/Tokyo") == [
        "https://x.example/20261119"]
    ranged = "https://x.example/q?from={start}&to={end}&t={start:%s}"
    assert archive_urls(ranged, START, END, "Asia/Tokyo") == [
        "https://x.example/q?from=2026-11-18T21:00:00Z&to=2026-11-19T21:00:00Z&t=1795035600"]


# ---- hostile archives are refused like hostile feeds ------------------------------------------------

def test_a_hostile_archive_is_refused_and_the_others_still_count(site: FakeSite) -> None:
    with FakeSite() as internal:
        internal.route("/admin", '{"hits": []}', content_type="application/json")
        serve_archives(site)
        huge = 40 * 1024 * 1024
        site.route("/huge/20261119", size=huge)
        site.route("/huge/20261120", size=huge)
        site.route("/hn-as-html", "<html><body>hits</body></html>")  # text/html for a JSON API
        site.route("/hatena-as-json", '{"hits": []}', content_type="application/json")
        site.route("/to-metadata", status=302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
        site.route("/to-internal", status=302, headers={"Location": internal.url("/admin")})
        hostile = [
            {"name": "Huge", "url": site.url("/l1"), "archive_url": site.url("/huge/{date:%Y%m%d}"),
             "archive_format": "hatena-hotentry"},
            {"name": "WrongType", "url": site.url("/l2"), "archive_url": site.url("/hn-as-html?s={start:%s}"),
             "archive_format": "hn-algolia"},
            {"name": "WrongType2", "url": site.url("/l3"),
             "archive_url": site.url("/hatena-as-json?d={date:%Y%m%d}"), "archive_format": "hatena-hotentry"},
            {"name": "Metadata", "url": site.url("/l4"), "archive_url": site.url("/to-metadata?{start:%s}"),
             "archive_format": "hn-algolia"},
            {"name": "Internal", "url": site.url("/l5"), "archive_url": site.url("/to-internal?{start:%s}"),
             "archive_format": "hn-algolia"},
            {"name": "Direct", "url": site.url("/l6"), "archive_url": "http://10.0.0.1/archive/{date:%Y%m%d}",
             "archive_format": "rss"},
        ]
        show = make_show([*hostile, archive_feeds(site)[2]], allow=[site.host], max_bytes=200_000)

        results = read_archives(show.feeds, show.collect, START, END, "Asia/Tokyo", 1_000_000)
        huge_sent = site.bytes_sent["/huge/20261119"]
        snapshot = collect_candidates(show, DAY, now=LATER)

        errors = {r.feed: r.error for r in results if r.error}
        assert set(errors) == {f"{h['name']} (archive)" for h in hostile}
        assert "larger than 1000000 bytes" in errors["Huge (archive)"]
        assert huge_sent < huge // 4  # reading stopped at the cap; the second day was never asked for
        assert site.hits("/huge/20261120") == 0
        assert "content type 'text/html'" in errors["WrongType (archive)"]
        assert "content type 'application/json'" in errors["WrongType2 (archive)"]
        assert "refused" in errors["Metadata (archive)"] and "169.254.169.254" in errors["Metadata (archive)"]
        assert "refused" in errors["Internal (archive)"] and "loopback" in errors["Internal (archive)"]
        assert "refused" in errors["Direct (archive)"] and "private" in errors["Direct (archive)"]
        assert internal.requests == []
        assert [r.feed for r in results if r.items] == ["Hacker News"]
        # in collect the same failures are reported beside the live feeds', and the good archive counts
        assert {f"{h['name']} (archive)" for h in hostile} <= set(snapshot.feed_errors)
        assert titles(snapshot.candidates) == set(HN_KEPT)
        assert "larger than" in snapshot.feed_errors["Huge (archive)"]


def test_a_past_date_whose_feeds_and_archives_all_fail_says_so_per_feed(site: FakeSite) -> None:
    show = make_show(archive_feeds(site), allow=[site.host], min_candidates=3)  # nothing is served

    with pytest.raises(NotEnoughCandidates) as failure:
        collect_candidates(show, DAY, now=LATER)

    message = str(failure.value)
    assert "Feeds that failed (4 of 4)" in message
    for name in LIVE_FEEDS:
        assert f"{name}: " in message and f"{name} (archive): " in message
    assert "/hotentry/it/20261119: HTTP 404" in message


def test_an_archive_that_may_heal_is_retried_and_one_that_cannot_is_not(
        site: FakeSite, monkeypatch: pytest.MonkeyPatch) -> None:
    import zundacast.archives

    waits: list[float] = []
    monkeypatch.setattr(zundacast.archives.time, "sleep", waits.append)
    answers = iter([503, 429])  # busy twice, then the day's page
    body = recorded("hatena-it-20261119.html", site)

    def flaky(handler: Any) -> None:
        status = next(answers, 200)
        handler.send_response(status)
        handler.send_header("Content-Type", "text/html; charset=utf-8")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    site.route("/flaky/20261119", handler=flaky)
    site.route("/gone/20261119", "gone", status=404)
    show = make_show([
        {"name": "Flaky", "url": site.url("/l1"), "archive_url": site.url("/flaky/{date:%Y%m%d}"),
         "archive_format": "hatena-hotentry"},
        {"name": "Gone", "url": site.url("/l2"), "archive_url": site.url("/gone/{date:%Y%m%d}"),
         "archive_format": "hatena-hotentry"},
    ], allow=[site.host], concurrency=1)
    day_start, day_end = window(dt.date(2026, 11, 19), "Asia/Tokyo", dt.time(23, 30), 17.5)  # one local day

    results = read_archives(show.feeds, show.collect, day_start, day_end, "Asia/Tokyo", FEED_MAX_BYTES)

    assert site.hits("/flaky/20261119") == 3 and len(waits) == 2 and 1.0 <= waits[0] < waits[1]
    assert titles(results[0].items) == {"LLM推論サーバーのレイテンシを半分にした話",
                                        "窓が開いた瞬間のエントリー：RAG評価の落とし穴",
                                        "社内AIエージェントを半年運用して分かったこと"}
    assert site.hits("/gone/20261119") == 1 and "404" in results[1].error  # permanent: asked once
    assert results[1].feed == "Gone (archive)"


def test_the_archive_size_cap_is_the_feed_size_cap(site: FakeSite) -> None:
    site.route("/big/20261119", size=FEED_MAX_BYTES + 100_000)
    big = FeedConfig(name="Big", url=site.url("/live"), archive_url=site.url("/big/{date:%Y%m%d}"),
                     archive_format="hatena-hotentry")
    config = make_show([{"name": "x", "url": site.url("/x")}], allow=[site.host]).collect
    with pytest.raises(ArchiveTooLarge):
        read_archive(big, config, START, END, "Asia/Tokyo", FEED_MAX_BYTES)
    assert FEED_MAX_BYTES <= site.bytes_sent["/big/20261119"] < FEED_MAX_BYTES + 100_000 + 1


def test_a_loopback_archive_needs_allow_hosts(site: FakeSite) -> None:
    serve_archives(site)
    show = make_show(archive_feeds(site)[:1], allow=[])
    with pytest.raises(FetchRefused, match=r"collect\.allow_hosts"):
        read_archive(show.feeds[0], show.collect, START, END, "Asia/Tokyo", FEED_MAX_BYTES)
    assert site.requests == []


# ---- the show file -------------------------------------------------------------------------------------

def test_show_file_archive_settings_are_checked() -> None:
    base = {"show": {"id": "s", "title": "t"}}
    bad = [
        ({"archive_url": "https://x.example/{date:%Y%m%d}"}, "archive_url and archive_format go together"),
        ({"archive_format": "rss"}, "archive_url and archive_format go together"),
        ({"archive_url": "https://x.example/{day}", "archive_format": "rss"}, "names day"),
        ({"archive_url": "https://x.example/latest", "archive_format": "rss"}, "names no date"),
        ({"archive_url": "https://x/{date:%Y}/{start:%s}", "archive_format": "rss"}, "not both"),
        ({"archive_url": "ftp://x.example/{date:%Y}", "archive_format": "rss"}, "not an http"),
        ({"archive_url": "https://x.example/{date:%Y}", "archive_format": "atom"}, "archive_format"),
    ]
    for fields, message in bad:
        with pytest.raises(ShowFileError, match=message) as failure:
            feeds = [{"name": "f", "url": "https://x.example/feed", **fields}]
            parse_show({**base, "feeds": feeds}, "x.toml")
        assert "x.toml" in str(failure.value) and "feeds.0" in str(failure.value)


def test_the_default_show_reads_the_hatena_and_arxiv_archives() -> None:
    show = load_show("zundamon-ai")
    archived = {f.name: (f.archive_format, f.archive_url) for f in show.feeds if f.archive_url}
    assert archived["はてなブックマーク IT"] == ("hatena-hotentry",
                                                "https://b.hatena.ne.jp/hotentry/it/{date:%Y%m%d}")
    assert archived["arXiv cs.CL"][0] == archived["arXiv cs.AI"][0] == "arxiv-atom"
    urls = archive_urls(archived["arXiv cs.CL"][1], START, END, show.show.timezone)
    assert urls == ["https://export.arxiv.org/api/query?search_query=cat:cs.CL+AND+submittedDate:"
                    "[202611182100+TO+202611192100]&sortBy=submittedDate&sortOrder=descending&max_results=500"]


# ---- a real flow run for a past date, from archives only --------------------------------------------

@pytest.fixture(scope="module")
def archive_runs(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> dict[str, Any]:
    """A flow run for a past date whose live feeds are all gone (one pick), then the same date again with
    `refresh=["synthesize"]` (the README's `--refresh synthesize`, on a one-pick episode: the refresh's
    subject is which stages run again, not the episode's length)."""
    from tests.faults.support import flow_env, run_flow, short_show
    from zundacast.sample_day import sample_files

    tmp_path = tmp_path_factory.mktemp("archive-runs")
    # the session's utterance cache: this test is about where the candidates come from, not about speech
    with FakeSite() as site, flow_env(tmp_path, shared_speech=True) as env:
        serve_archives(site)
        for live in ("/hotentry/it.rss", "/rss/cs.CL", "/hn/rss", "/blog/feed.xml"):
            site.route(live, "gone", status=410)  # every live feed is dead
        pages = sample_files()  # the sample day's article pages, standing in for the archived stories
        for path, sample in (("/llm-serving", "llm-inference"), ("/agent-ops", "agent-ops"),
                             ("/window-opens", "rag-eval"), ("/window-closes", "gpu-cloud"),
                             ("/hn-gpu", "on-device-model")):
            site.route(path, pages[f"/pages/{sample}.html"])
        show = short_show(site.url(""), picks=1, feeds=archive_feeds(site), allow_hosts=[site.host])
        env.delenv("ZUNDACAST_BASE_URL", raising=False)
        store = tmp_path / "public"

        summary = run_flow(show, store, day=DAY)
        refreshed = run_flow(show, store, day=DAY, refresh=["synthesize"])
    return {"summary": summary, "refreshed": refreshed, "store": store}


@pytest.mark.slow  # a whole Prefect flow run (OpenJTalk synthesis of a one-pick episode)
def test_a_flow_run_for_a_past_date_publishes_an_episode_made_from_archives(
        archive_runs: dict[str, Any]) -> None:
    import feedparser

    summary, store = archive_runs["summary"], archive_runs["store"]
    assert {name: report.status for name, report in summary.stages.items()} == {
        "collect": "computed", "rank": "computed", "summarize": "computed", "script": "computed",
        "synthesize": "computed", "upload": "computed"}
    day_dir = store / DAY.isoformat()
    snapshot = CandidateSnapshot.model_validate_json((day_dir / "candidates.json").read_bytes())
    assert snapshot.candidates and all(c.origin.startswith("archive:") for c in snapshot.candidates)
    assert set(snapshot.feed_errors) == LIVE_FEEDS
    record = json.loads((day_dir / "episode.json").read_bytes())
    origins = {c.url: c.origin for c in snapshot.candidates}
    assert len(record["picks"]) == 1 and origins[record["picks"][0]["url"]].startswith("archive:")
    assert "2026年11月20日" in record["transcript"] and "金曜日" in record["transcript"]
    feed = feedparser.parse((store / "feed.xml").read_bytes())
    assert not feed.bozo and len(feed.entries) == 1
    assert (day_dir / f"zundamon-ai-{DAY.isoformat()}.mp3").stat().st_size > 100_000


@pytest.mark.slow
def test_refresh_synthesize_recomputes_synthesis_and_upload_only(archive_runs: dict[str, Any]) -> None:
    statuses = {name: report.status for name, report in archive_runs["refreshed"].stages.items()}
    assert statuses == {"collect": "cached", "rank": "cached", "summarize": "cached", "script": "cached",
                        "synthesize": "computed", "upload": "computed"}
