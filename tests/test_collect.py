"""Collection over real loopback HTTP: feeds of every kind, broken feeds, pages, SSRF, snapshots."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tasks.collect import collect_candidates, load_or_collect, snapshot_key
from tasks.rank import rank_candidates
from tests.fakes.web import FakeSite, Item, article_page, atom, rdf_hatena, rss2
from zundacast import readability
from zundacast.errors import NotEnoughCandidates
from zundacast.extraction import clean_text
from zundacast.models import Candidate, CandidateSnapshot
from zundacast.show import CollectConfig, Show, parse_show
from zundacast.storage import open_store
from zundacast.stories import normalize_title

DAY = dt.date(2025, 7, 24)  # window: 2025-07-23 06:00 to 2025-07-24 06:00 Asia/Tokyo
JST = dt.timezone(dt.timedelta(hours=9))
NOW = dt.datetime(2025, 7, 24, 6, 5, tzinfo=JST)
IN_WINDOW = dt.datetime(2025, 7, 23, 20, 0, tzinfo=JST)
EARLIER = dt.datetime(2025, 7, 23, 9, 0, tzinfo=JST)
TOO_OLD = dt.datetime(2025, 7, 22, 20, 0, tzinfo=JST)
TOO_NEW = dt.datetime(2025, 7, 24, 7, 0, tzinfo=JST)

PARAGRAPHS = [
    "田中専務:拓海先生、最近話題のMercuryという論文について伺いたいのですが、要点を教えていただけますか。"
    "現場からはAIを入れろと急かされているのですが、何を基準に投資判断すればいいのか分からず困っています。",
    "AIメンター拓海:素晴らしい着眼点ですね。Mercuryは拡散型手法を使ってトークンを並列に生成することで、"
    "従来の自己回帰モデルより大幅に高速な言語モデルを実現した研究です。",
    "田中専務:拡散型手法という言葉自体が馴染みがありません。これって要するにどういう仕組みで早くなるんですか。",
    "AIメンター拓海:Mercuryは一般的なGPU、論文ではNVIDIA H100で高スループットを確認しています。"
    "つまり既存のクラウドやオンプレGPUでも現実的に導入可能である点が強みです。",
]


def make_show(feeds: list[dict[str, Any]], allow: list[str], **collect: Any) -> Show:
    return parse_show({
        "show": {"id": "test-show", "title": "テスト放送局"},
        "collect": {"timeout_s": 10, "max_pages": 30, "min_candidates": 1, "min_text_chars": 100,
                    "allow_hosts": allow, **collect},
        "rank": {"picks": 2, "spares": 1, "topics": ["AI", "GPU", "言語モデル"]},
        "feeds": feeds,
    })


def page(title: str, extra: str = "") -> str:
    return article_page(title, [*PARAGRAPHS, extra] if extra else PARAGRAPHS, site_name="Example Tech")


@pytest.fixture
def site() -> Iterator[FakeSite]:
    with FakeSite() as running:
        yield running


@pytest.fixture
def other_site() -> Iterator[FakeSite]:
    with FakeSite() as running:
        running.route("/internal", page("内部ページ"))
        yield running


def by_title(snapshot: CandidateSnapshot) -> dict[str, Candidate]:
    return {c.title: c for c in snapshot.candidates}


def test_feeds_of_every_kind_become_deduplicated_candidates_with_text(
        site: FakeSite, other_site: FakeSite) -> None:
    u = site.url
    site.route("/a/mercury", page("拡散に基づく超高速言語モデル「Mercury」"))
    site.route("/a/gpu", page("GPUクラスタの電力効率を測る"))
    site.route("/a/atom-story", page("Atomで配信された記事"))
    site.route("/a/short", article_page("短い記事", ["これだけ。"]))
    site.route("/a/gone", status=404)
    site.route("/files/paper.pdf", b"%PDF-1.7", content_type="application/pdf")
    site.route("/r/short-link", status=301, headers={"Location": "/a/final?utm_source=x"})
    site.route("/a/final", page("リダイレクト先の記事"))
    site.route("/r/to-metadata", status=302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
    huge = 48 * 1024 * 1024
    site.route("/a/huge", size=huge)
    site.route("/hatena.rdf", rdf_hatena([
        Item("拡散に基づく超高速言語モデル「Mercury」", u("/a/mercury"), IN_WINDOW, "Mercuryの解説", 250),
        Item("GPUクラスタの電力効率を測る", u("/a/gpu"), EARLIER, "", 12),
        Item("古い記事", u("/a/old"), TOO_OLD, "", 999),
    ]), content_type="application/rdf+xml")
    site.route("/rss.xml", rss2([
        # the same story as in the Hatena feed, with tracking parameters
        Item("拡散に基づく超高速言語モデル「Mercury」", u("/a/mercury?utm_source=rss&utm_medium=feed#top"),
             EARLIER, "<p>拡散型の<b>言語モデル</b></p>"),
        Item("短い記事", u("/a/short"), IN_WINDOW),
        Item("消えた記事", u("/a/gone"), IN_WINDOW),
        Item("論文PDF", u("/files/paper.pdf"), IN_WINDOW),
        Item("短縮URLの記事", u("/r/short-link"), IN_WINDOW),
        Item("内部への記事", other_site.url("/internal"), IN_WINDOW),
        Item("メタデータへの記事", "http://169.254.169.254/latest/meta-data/", IN_WINDOW),
        Item("メタデータへ転送する記事", u("/r/to-metadata"), IN_WINDOW),
        Item("巨大なページ", u("/a/huge"), IN_WINDOW),
        Item("未来の記事", u("/a/future"), TOO_NEW),
    ]), content_type="application/rss+xml; charset=utf-8")
    site.route("/atom.xml", atom([Item("Atomで配信された記事", u("/a/atom-story"), IN_WINDOW, "要約")]),
               content_type="application/atom+xml")
    site.route("/broken.xml", "<rss><channel><item><title>oops", content_type="application/rss+xml")
    site.route("/500.xml", "down", status=500)
    site.route("/empty.xml", rss2([]), content_type="application/rss+xml")
    show = make_show([
        {"name": "Hatena", "url": u("/hatena.rdf"), "weight": 1.2},
        {"name": "RSS", "url": u("/rss.xml")},
        {"name": "Atom", "url": u("/atom.xml")},
        {"name": "Broken", "url": u("/broken.xml")},
        {"name": "Down", "url": u("/500.xml")},
        {"name": "Empty", "url": u("/empty.xml")},
    ], allow=[site.host], timeout_s=10, max_bytes=300_000)  # generous: a loaded machine is slow, not wrong

    snapshot = collect_candidates(show, DAY, now=NOW)

    found = by_title(snapshot)
    assert set(snapshot.feed_errors) == {"Broken", "Down", "Empty"}
    assert "500" in snapshot.feed_errors["Down"]
    assert "no items" in snapshot.feed_errors["Empty"]
    assert "古い記事" not in found and "未来の記事" not in found
    # one candidate for the story in two feeds: canonical URL, both sources, Hatena's count, earliest date
    mercury = [c for c in snapshot.candidates if "Mercury" in c.title]
    assert len(mercury) == 1
    story = mercury[0]
    assert story.url == u("/a/mercury")
    assert story.source == "Hatena" and story.sources == ["Hatena", "RSS"]
    assert story.bookmarks == 250
    assert story.published == EARLIER
    # full text without the ads and related links of the page
    assert "自己回帰モデルより大幅に高速" in story.text
    boilerplate_bits = ("AIBR", "詳細を見る", "関連記事", "スパース自己符号化器",
                        "この記事をシェア", "ログイン")
    for boilerplate in boilerplate_bits:
        assert boilerplate not in story.text
    assert story.site_name == "Example Tech"
    assert story.extraction_error == ""
    assert found["GPUクラスタの電力効率を測る"].bookmarks == 12
    assert found["Atomで配信された記事"].text
    # redirects resolved: the final, canonical URL
    assert found["短縮URLの記事"].url == u("/a/final")
    assert found["短縮URLの記事"].text
    # kept, with the reason the text is missing
    assert "not readable prose" in found["短い記事"].extraction_error
    assert "collect.min_text_chars" in found["短い記事"].extraction_error
    assert "404" in found["消えた記事"].extraction_error and found["消えた記事"].text == ""
    assert "application/pdf" in found["論文PDF"].extraction_error
    assert "refused" in found["内部への記事"].extraction_error
    assert "refused" in found["メタデータへの記事"].extraction_error
    assert "refused" in found["メタデータへ転送する記事"].extraction_error
    assert other_site.requests == []
    assert "巨大なページ" in found  # read up to max_bytes, the rest never downloaded
    assert site.hits("/a/huge") == 1 and site.bytes_sent["/a/huge"] < huge // 2
    assert site.hits("/a/old") == 0 and site.hits("/a/future") == 0  # out of the window: never fetched


def test_a_feed_slower_than_the_fetch_timeout_is_a_failed_feed(site: FakeSite) -> None:
    # on its own: a short timeout beside other fetches would fail fast pages on a loaded machine
    from tasks.collect import read_feeds_in_threads

    site.route("/slow.xml", rss2([Item("遅いフィード", site.url("/a/slow"), IN_WINDOW)]), delay_s=5)
    show = make_show([{"name": "Slow", "url": site.url("/slow.xml")}], allow=[site.host], timeout_s=0.5)

    results = read_feeds_in_threads(show.feeds, show.collect)

    late = f"{site.url('/slow.xml')}: no answer within 0.5 s"
    assert [(r.feed, r.error) for r in results] == [("Slow", late)]


def test_only_the_most_promising_pages_are_fetched(site: FakeSite) -> None:
    items = [Item(f"AI記事{i}", site.url(f"/a/{i}"), IN_WINDOW, bookmarks=i * 10) for i in range(1, 7)]
    for i in range(1, 7):
        site.route(f"/a/{i}", page(f"AI記事{i}"))
    site.route("/h.rdf", rdf_hatena(items), content_type="application/rdf+xml")
    show = make_show([{"name": "H", "url": site.url("/h.rdf")}], allow=[site.host], max_pages=2)

    snapshot = collect_candidates(show, DAY, now=NOW)

    assert len(snapshot.candidates) == 6
    with_text = {c.title for c in snapshot.candidates if c.text}
    assert with_text == {"AI記事6", "AI記事5"}  # the most bookmarked
    assert [p for p in site.requests if p.startswith("/a/")] in (["/a/6", "/a/5"], ["/a/5", "/a/6"])


def test_near_identical_titles_across_feeds_are_one_story(site: FakeSite) -> None:
    site.route("/one.xml", rss2([Item("OpenAI、新モデル「GPT-5」を発表", "https://a.example/news/1",
                                      IN_WINDOW)]))
    site.route("/two.xml", rss2([
        Item("OpenAIが新モデル「GPT-5」を発表 | Tech News", "https://b.example/gpt5", EARLIER),
        Item("Python 3.14 リリース", "https://b.example/py314", IN_WINDOW),
        Item("Python 3.13 リリース", "https://b.example/py313", IN_WINDOW),
    ]))
    show = make_show([{"name": "One", "url": site.url("/one.xml")},
                      {"name": "Two", "url": site.url("/two.xml")}], allow=[site.host], max_pages=1)
    snapshot = collect_candidates(show, DAY, now=NOW)
    titles = sorted(c.title for c in snapshot.candidates)
    assert len(titles) == 3  # the GPT-5 story once; Python 3.13 and 3.14 stay two stories
    gpt = next(c for c in snapshot.candidates if "GPT-5" in c.title)
    assert gpt.sources == ["One", "Two"]


def test_feed_topics_keep_only_matching_items(site: FakeSite) -> None:
    site.route("/arxiv.xml", rss2([
        Item("A new LLM agent benchmark", "https://arxiv.example/1", IN_WINDOW),
        Item("Protein folding dynamics", "https://arxiv.example/2", IN_WINDOW, "Molecular agents simulation"),
        Item("Soil chemistry survey", "https://arxiv.example/3", IN_WINDOW, "said the paper's authors"),
    ]))
    show = make_show([{"name": "arXiv", "url": site.url("/arxiv.xml"), "topics": ["LLM", "agent"]}],
                     allow=[site.host], max_pages=1)
    snapshot = collect_candidates(show, DAY, now=NOW)
    kept = sorted(c.title for c in snapshot.candidates)
    assert kept == ["A new LLM agent benchmark", "Protein folding dynamics"]


def test_undated_items_count_from_when_first_seen(site: FakeSite, isolated_env: Path) -> None:
    rss = ('<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><link>http://x/</link>'
           "<description>d</description><item><title>日付のない記事</title><link>https://x.example/u</link>"
           "</item></channel></rss>")
    site.route("/undated.xml", rss)
    show = make_show([{"name": "U", "url": site.url("/undated.xml")}], allow=[site.host], max_pages=1)

    first = collect_candidates(show, DAY, now=NOW)
    assert first.candidates[0].first_seen == NOW
    seen = json.loads((isolated_env / "seen" / "test-show.json").read_text())
    assert seen == {"https://x.example/u": NOW.isoformat()}

    # the next day's run still remembers when it was first seen: yesterday, so it is in today's window
    later = collect_candidates(show, DAY + dt.timedelta(days=1), now=NOW + dt.timedelta(days=1))
    assert later.candidates[0].first_seen == NOW
    # two days on it is old news
    with pytest.raises(NotEnoughCandidates):
        collect_candidates(show, DAY + dt.timedelta(days=2), now=NOW + dt.timedelta(days=2))


def test_too_few_candidates_names_the_failed_feeds(site: FakeSite) -> None:
    site.route("/ok.xml", rss2([Item("唯一の記事", "https://x.example/1", IN_WINDOW)]))
    site.route("/down.xml", "down", status=503)
    show = make_show([{"name": "OK", "url": site.url("/ok.xml")},
                      {"name": "Down", "url": site.url("/down.xml")},
                      {"name": "Nowhere", "url": "http://169.254.169.254/feed"}],
                     allow=[site.host], min_candidates=3, max_pages=1)
    with pytest.raises(NotEnoughCandidates) as failure:
        collect_candidates(show, DAY, now=NOW)
    message = str(failure.value)
    assert "only 1 candidate" in message and "min_candidates = 3" in message
    assert "Down: " in message and "503" in message
    assert "Nowhere: " in message and "refused" in message


def test_rerun_of_a_past_date_uses_its_snapshot_after_the_feeds_changed(site: FakeSite,
                                                                         tmp_path: Path) -> None:
    def serve(prefix: str) -> None:
        items = []
        for i in range(4):
            title = f"{prefix} AI記事{i}"
            site.route(f"/{prefix}/{i}", page(title))
            items.append(Item(title, site.url(f"/{prefix}/{i}"), IN_WINDOW, bookmarks=10 + i))
        site.route("/h.rdf", rdf_hatena(items), content_type="application/rdf+xml")

    serve("first")
    show = make_show([{"name": "H", "url": site.url("/h.rdf")}], allow=[site.host])
    store = open_store(str(tmp_path / "public"))
    before = load_or_collect(show, DAY, store, now=NOW)
    assert store.get(snapshot_key(DAY)) is not None
    picks_before = [p.candidate.url for p in rank_candidates(before, show, DAY, []).picks]

    serve("second")  # the feed moved on
    fetched = len(site.requests)
    again = load_or_collect(show, DAY, store, now=NOW + dt.timedelta(days=3))
    assert len(site.requests) == fetched  # nothing fetched: the snapshot answered
    assert again == before
    assert [p.candidate.url for p in rank_candidates(again, show, DAY, []).picks] == picks_before
    assert all("/first/" in url for url in picks_before)

    refreshed = load_or_collect(show, DAY, store, refresh=True, now=NOW)
    assert all("/second/" in c.url for c in refreshed.candidates)
    stored = CandidateSnapshot.model_validate_json(store.get(snapshot_key(DAY)) or b"")
    assert stored == refreshed


@pytest.mark.slow  # needs the Prefect test harness (shared with the flow tests; slow to start on its own)
def test_prefect_tasks_retry_feeds_reuse_the_snapshot_and_explain_the_ranking(
        site: FakeSite, tmp_path: Path, prefect_results: Path) -> None:
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    from tasks.collect import collect
    from tasks.rank import artifact_key, publish_picks_table, rank

    items = [Item(f"AI記事{i}", site.url(f"/a/{i}"), IN_WINDOW, bookmarks=10 * i) for i in range(1, 5)]
    for i in range(1, 5):
        site.route(f"/a/{i}", page(f"AI記事{i}"))
    site.route("/h.rdf", rdf_hatena(items), content_type="application/rdf+xml")
    site.route("/gone.xml", "gone", status=404)
    answers = iter([503])  # the flaky feed fails once, then answers

    def flaky(handler: Any) -> None:
        status = next(answers, 200)
        body = rss2([Item("不安定なフィードの記事", "https://x.example/flaky", IN_WINDOW)]).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/rss+xml")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    site.route("/flaky.xml", handler=flaky)
    show = make_show([{"name": "H", "url": site.url("/h.rdf")},
                      {"name": "Gone", "url": site.url("/gone.xml")},
                      {"name": "Flaky", "url": site.url("/flaky.xml")}], allow=[site.host])
    store_url = str(tmp_path / "public")

    @flow
    def two_runs() -> tuple[CandidateSnapshot, str, Any]:
        snapshot = collect(show, DAY, store_url)
        again = collect(show, DAY, store_url, return_state=True)
        ranking = rank(snapshot, show, DAY, [])
        publish_picks_table(ranking, show, DAY)  # as the flow does, from the (possibly cached) ranking
        return snapshot, again.name, ranking

    state = two_runs(return_state=True)
    snapshot, second_state, ranking = state.result()

    assert site.hits("/flaky.xml") == 2  # retried by its fetch-feed task run
    assert site.hits("/gone.xml") == 1  # 404 is permanent: no retry
    assert set(snapshot.feed_errors) == {"Gone"}
    assert "不安定なフィードの記事" in by_title(snapshot)
    assert second_state == "Cached"
    assert open_store(store_url).get(snapshot_key(DAY)) is not None
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(  # this run's (the server is shared)
            key=ArtifactFilterKey(any_=[artifact_key("test-show", DAY)]),
            flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])))
    assert artifacts and artifacts[0].type == "table"
    table = json.loads(artifacts[0].data) if isinstance(artifacts[0].data, str) else artifacts[0].data
    assert len(table) == len(ranking.table) == len(snapshot.candidates)
    verdicts = [row["verdict"] for row in table]
    assert verdicts.count("pick") == len(ranking.picks) == 2
    assert verdicts.count("spare") == len(ranking.spares) == 1
    assert all(row["reason"] for row in table)


# ---- the article text: extraction and readability, through the collect path --------------------------

PAGES_DIR = Path(__file__).parent / "data" / "pages"

# Per site layout (pages written for the project): the title as its feed carries it, the body's first
# sentence, and text around the article that is on the page and must not reach the candidate's text.
SITE_PAGES: dict[str, tuple[str, str, list[str]]] = {
    "itmedia": (
        "ツバメ電機、工場向け小型言語モデル「Swallowtail-3B」を無償公開　不良品検査の報告書作成を自動化",
        "産業機器メーカーのツバメ電機は11月20日、工場の現場向けに調整した小型言語モデル「Swallowtail-3B」を"
        "無償で公開した。",
        ["2026年11月20日 12時30分 公開", "松本大地", "写真：ツバメ電機の検査ライン", "Xでポスト",
         "この記事をシェア", "関連記事", "国産の小型LLM、工場や病院で", "Copyright", "アクセスランキング"]),
    "publickey": (
        "Kumo Container Runtime 2.0が正式リリース、コールドスタートを200ミリ秒以下に短縮",
        "オープンソースのコンテナランタイム「Kumo Container Runtime」の開発チームは、バージョン2.0の"
        "正式リリースを発表しました。",
        ["2026年11月20日", "新野淳一", "画像：Kumo Container Runtime 2.0のアーキテクチャ", "≫ 関連記事",
         "サーバーレスのコールドスタート問題", "あとで読む", "Tweet", "Share this article", "Copyright"]),
    "zenn": (
        "pgvectorのHNSWインデックスで検索を30倍速くした話",
        "社内文書検索のRAGで使っているPostgreSQLのベクトル検索が遅くなってきたので、pgvectorのインデックスを"
        "IVFFlatからHNSWに切り替えました。",
        ["2026/11/19に公開", "Xでポスト", "この記事をシェア", "いいね 312", "バッジを贈って著者を応援しよう",
         "Discussion", "ログインするとコメントできます", "RAGのチャンク設計で迷ったら読む記事"]),
    "gigazine": (
        "ブラウザだけで動く音声認識モデル「Kotodama-Mini」が登場、WebGPUで実時間の12倍速",
        "オープンソースの音声認識モデル「Kotodama-Mini」が公開されました。",
        ["2026年11月20日 11時00分", "Photo by Kenta Mori / Unsplash", "この記事のタイトルとURLをコピーする",
         "関連記事", "無料で使える文字起こしAIを比較してみた", "関連コンテンツ", "machine translated",
         "Posted by", "ソフトウェア"]),
    "theverge": (
        "Larkspur's new e-reader has a color screen that refreshes fast enough for comics",
        "Larkspur announced the Quill Color on Thursday, a 7-inch e-reader with a color E Ink screen that "
        "the company says refreshes three times faster than the panels in last year's color readers.",
        ["Jane Doe", "a senior reporter covering gadgets", "Updated Nov 20, 2026", "Share this story",
         "Photo: Jane Doe / The Verge", "Image: Getty Images", "Most Popular", "Related",
         "The best e-readers to buy right now", "Vox Media"]),
}
SENTENCE_ENDS = ("。", ".", "！", "？", "!", "?", "」", ";", ")")


def test_site_layouts_yield_the_article_without_bylines_datelines_or_share_lines(site: FakeSite) -> None:
    items = []
    for slug, (title, _, _) in SITE_PAGES.items():
        site.route(f"/{slug}", (PAGES_DIR / f"{slug}.html").read_text(encoding="utf-8"))
        items.append(Item(f"{title} - {slug}", site.url(f"/{slug}"), IN_WINDOW))
    site.route("/news.xml", rss2(items), content_type="application/rss+xml")
    show = make_show([{"name": "News", "url": site.url("/news.xml")}], allow=[site.host],
                     min_text_chars=120)

    found = {c.url.rsplit("/", 1)[-1]: c for c in collect_candidates(show, DAY, now=NOW).candidates}

    assert set(found) == set(SITE_PAGES)
    for slug, (title, first_sentence, dropped) in SITE_PAGES.items():
        html = (PAGES_DIR / f"{slug}.html").read_text(encoding="utf-8")
        text = found[slug].text
        assert found[slug].extraction_error == "", slug
        assert text.startswith(first_sentence), (slug, text[:120])  # no headline, label or dateline first
        assert normalize_title(title) not in normalize_title(text), slug  # the headline is not repeated
        for line in text.splitlines():  # nothing can glue a heading to the paragraph after it
            assert line.endswith(SENTENCE_ENDS) or line.startswith("## "), (slug, line)
        for boilerplate in dropped:
            assert boilerplate in html, (slug, boilerplate)  # really on the page: its absence means something
            assert boilerplate not in text, (slug, boilerplate)


def test_a_dateline_or_byline_paragraph_under_the_headline_is_dropped_not_glued(site: FakeSite) -> None:
    title = "社内LLM基盤の利用が1年で3倍に"
    body = ["2025年7月24日 編集部",
            "社内向けの大規模言語モデル基盤の月間利用者が、この1年で約3倍の4,200人に増えた。利用の半分はコードレビューと"
            "議事録の要約で、残りは問い合わせ対応や資料作成だという。",
            "運用チームは今後、部署ごとの利用上限を設けて費用を管理する。"]
    site.route("/a/dated", article_page(title, body))
    site.route("/rss.xml", rss2([Item(title, site.url("/a/dated"), IN_WINDOW)]))
    show = make_show([{"name": "R", "url": site.url("/rss.xml")}], allow=[site.host])

    text = collect_candidates(show, DAY, now=NOW).candidates[0].text

    assert text.startswith("社内向けの大規模言語モデル基盤の月間利用者が"), text[:80]
    assert "2025年7月24日" not in text and "編集部" not in text and title not in text


@pytest.mark.parametrize(("text", "readable"), [
    # a real news brief of about 250 characters: short, and readable
    ("東京都は24日、都内の公立小中学校に生成AIを使った学習支援ツールを導入すると発表した。2026年度から順次、"
     "約1,300校で使えるようにする。児童生徒の質問に答えるほか、教員の採点や資料作りも手伝う。個人情報は"
     "学習に使わない設定にするという。費用は初年度で約12億円を見込み、利用状況を見ながら対象の学年を広げる。"
     "都の担当者は「先生が子どもと向き合う時間を増やしたい」と話している。", True),
    ("Acme released version 2.0 of its open-source database on Tuesday. The update doubles write throughput "
     "and adds native vector search. Existing users can upgrade in place; the company says no data migration "
     "is needed.", True),
    ("あ" * 2_000_000, False),  # a 6 MB page of one repeated character
    ("これだけ。", False),
    # one line pasted over and over
    ("本日のニュースをお届けします。詳しくは本文をご覧ください。" * 300, False),
    ("\n".join(f"{n}. https://example.com/{n * 7919:x}/{n * 104729:x}" for n in range(80)), False),
    ("aGVsbG8gd29ybGQhIHRoaXMgaXMgbm90IGFuIGFydGljbGUgYnV0IGEgYmxvYiBvZiBiYXNlNjQgdGV4dA" * 20, False),
])
def test_readability_is_about_content_not_length(text: str, readable: bool) -> None:
    measured = readability.assess(text, min_chars=120)
    assert measured.readable is readable, measured


def test_unreadable_pages_are_never_picked_while_a_readable_spare_exists(site: FakeSite) -> None:
    from flows.editing import with_readable_picks

    site.route("/a/gone", "gone", status=404)
    site.route("/files/report.pdf", b"%PDF-1.7 " + b"0" * 2000, content_type="application/pdf")
    site.route("/a/one-char", "<html><body><article><h1>AIの話</h1><p>" + "あ" * 2_000_000
               + "</p></article></body></html>")  # 6 MB: read up to max_bytes, then judged
    site.route("/r/to-metadata", status=302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
    for slug in ("itmedia", "theverge"):
        site.route(f"/{slug}", (PAGES_DIR / f"{slug}.html").read_text(encoding="utf-8"))
    hot = [  # the most bookmarked stories, each with a page no one can read
        Item("AIクラウドのメタデータを読む方法", "http://169.254.169.254/latest/meta-data/iam", IN_WINDOW, "",
             900),
        Item("AIの転送先はメタデータ", site.url("/r/to-metadata"), IN_WINDOW, "", 880),
        Item("消えたAIの記事", site.url("/a/gone"), IN_WINDOW, "", 860),
        Item("AI白書2026（PDF）", site.url("/files/report.pdf"), IN_WINDOW, "", 840),
        Item("AIの話", site.url("/a/one-char"), IN_WINDOW, "", 820),
    ]
    readable = [Item(SITE_PAGES["itmedia"][0], site.url("/itmedia"), IN_WINDOW, "", 3),
                Item(SITE_PAGES["theverge"][0], site.url("/theverge"), IN_WINDOW, "", 2)]
    site.route("/h.rdf", rdf_hatena(hot + readable), content_type="application/rdf+xml")
    show = make_show([{"name": "H", "url": site.url("/h.rdf")}], allow=[site.host], max_bytes=3_000_000)
    show = show.model_copy(update={"rank": show.rank.model_copy(update={"picks": 1, "spares": 1,
                                                                         "max_per_source": 5})})

    snapshot = collect_candidates(show, DAY, now=NOW)
    ranking = rank_candidates(snapshot, show, DAY, [])

    reasons = {item.candidate.title: item for item in ranking.table}
    assert [p.candidate.url for p in ranking.picks] == [site.url("/itmedia")]
    assert [p.candidate.url for p in ranking.spares] == [site.url("/theverge")]
    for item in hot:
        row = reasons[item.title]
        assert row.verdict == "skip" and row.reason.startswith("unreadable: "), (item.title, row.reason)
        assert row.score > ranking.picks[0].score  # popular: only readability kept it out
    assert "refused" in reasons["AIクラウドのメタデータを読む方法"].reason
    assert "refused" in reasons["AIの転送先はメタデータ"].reason
    assert "404" in reasons["消えたAIの記事"].reason
    assert "application/pdf" in reasons["AI白書2026（PDF）"].reason
    assert "distinct characters" in reasons["AIの話"].reason
    assert len(next(c for c in snapshot.candidates if c.title == "AIの話").text) <= 2000
    table_order = [item.candidate.url for item in ranking.table]
    assert table_order[:2] == [site.url("/itmedia"), site.url("/theverge")]  # readable ones first
    # the flow's guard keeps the readable pick, and still swaps in a readable spare for an unreadable pick
    assert with_readable_picks(ranking).picks == ranking.picks
    unreadable = next(c for c in snapshot.candidates if c.title == "消えたAIの記事")
    stale_pick = ranking.picks[0].model_copy(update={"candidate": unreadable})
    stale = ranking.model_copy(update={"picks": [stale_pick]})
    assert [p.candidate.url for p in with_readable_picks(stale).picks] == [site.url("/theverge")]


def test_clean_text_drops_boilerplate_lines_and_keeps_prose_that_looks_like_them() -> None:
    title = "新型GPUクラウドが東京で提供開始"
    dropped = ["【AI】", title, "2025年7月24日 編集部", "2026/11/19に公開",
               "2026年11月20日 12時30分 公開", "[山田太郎，ITmedia]", "文：佐藤 美咲",
               "By Jane Doe, a senior reporter covering AI.", "By Jane Doe and John Roe",
               "Updated Nov 20, 2026, 5:00 PM UTC", "写真：新しいサーバー（同社提供）",
               "Photo by Kenta Mori / Unsplash", "Image: Getty Images", "この記事をシェア",
               "Xでポスト この記事をシェア", "Share this article", "Tweet | あとで読む",
               "Copyright © 2026 Example Inc. All Rights Reserved."]
    prose = ["アオバクラウドは24日、新型GPUのクラウドを東京で提供し始めた。",
             "By Tuesday, Apple will ship the update to everyone.",
             "Share prices fell 5% on Tuesday after the announcement.",
             "写真の共有機能も強化され、家族とアルバムを分け合えるようになった。",
             "料金は1時間あたり1,280円からだ。"]
    related = ["関連記事", "GPU不足はいつ解消するのか", "国産LLMの学習基盤を見る"]
    text = clean_text("\n".join([*dropped[:3], prose[0], *dropped[3:], *prose[1:], *related]), titles=[title])
    assert text.splitlines() == prose
    # a heading is kept on its own line, marked as a heading (never glued to the paragraph after it)
    assert clean_text("料金と提供地域\n料金は1時間あたり1,280円からだ。").splitlines() == [
        "## 料金と提供地域", "料金は1時間あたり1,280円からだ。"]


# ---- the collect deadline (issue 14) -----------------------------------------------------------------

class SilentServer:
    """A loopback server that accepts every connection and never sends a byte; `accepted` is set at the
    first connection. Leaving the `with` closes the connections, so a client still waiting ends at once."""

    def __init__(self) -> None:
        import socket
        import threading

        self.listener = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.accepted = threading.Event()
        self.connections: list[Any] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:  # closed
                return
            self.connections.append(connection)
            self.accepted.set()

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.listener.close()
        for connection in self.connections:
            connection.close()


def test_a_feed_that_never_answers_is_a_failed_feed_at_the_deadline_and_the_rest_make_the_episode(
        site: FakeSite) -> None:
    from concurrent.futures import wait
    from functools import partial

    from tasks.collect import read_feeds_in_threads

    for i in range(3):
        site.route(f"/a/{i}", page(f"AI記事{i}"))
        site.route(f"/fast{i}.xml", rss2([Item(f"AI記事{i}", site.url(f"/a/{i}"), IN_WINDOW)]),
                   content_type="application/rss+xml")
    with SilentServer() as silent:
        # the timeout alone would hold collect for a minute; the deadline is the test's event: it passes
        # once the silent server holds the connection and the fast feeds are in
        show = make_show([{"name": f"Fast{i}", "url": site.url(f"/fast{i}.xml")} for i in range(3)]
                         + [{"name": "Silent", "url": f"http://{silent.host}/feed.xml"}],
                         allow=[site.host, silent.host], timeout_s=60, deadline_s=120)
        waited: list[float] = []

        def until_the_fast_feeds_are_in(futures: list[Any], seconds: float) -> None:
            waited.append(seconds)
            assert silent.accepted.wait(30)
            wait(futures[:3])  # the fast feeds, in the show's order

        reader = partial(read_feeds_in_threads, wait=until_the_fast_feeds_are_in)
        snapshot = collect_candidates(show, DAY, now=NOW, read_feeds=reader)

    assert 0 < waited[0] <= 120  # waited for at most the configured deadline
    assert snapshot.feed_errors == {"Silent": "no answer within the collect deadline of 120 s"}
    assert {c.title for c in snapshot.candidates} == {"AI記事0", "AI記事1", "AI記事2"}
    assert all(c.text for c in snapshot.candidates)


def test_the_deadline_ends_the_wait_for_a_silent_feed_long_before_its_timeout() -> None:
    from tasks.collect import deadline_s, read_feeds_in_threads

    with SilentServer() as silent:
        show = make_show([{"name": "Silent", "url": f"http://{silent.host}/feed.xml"}], allow=[silent.host],
                         timeout_s=120, deadline_s=0.2)
        results = read_feeds_in_threads(show.feeds, show.collect)  # pytest-timeout bounds this call
    late = "no answer within the collect deadline of 0.2 s"
    assert [(r.feed, r.error) for r in results] == [("Silent", late)]
    assert deadline_s(CollectConfig(timeout_s=10)) == 20  # the default: twice the timeout


def test_a_retry_that_cannot_finish_before_the_deadline_is_not_made(site: FakeSite) -> None:

    from tasks.collect import OutOfTime, fetch_feed
    from zundacast.stage import is_permanent
    from zundacast.web import HTTPStatusFailure

    site.route("/down.xml", "down", status=503)
    show = make_show([{"name": "Down", "url": site.url("/down.xml")}], allow=[site.host], timeout_s=60)
    feed, config = show.feeds[0], show.collect
    with pytest.raises(HTTPStatusFailure) as room:  # a retry (backoff + 60 s) fits: Prefect may retry
        fetch_feed.fn(feed, config, 1000)
    assert not is_permanent(room.value)
    with pytest.raises(OutOfTime, match=r"HTTP 503.*not retried.*collect deadline of 30 s") as no_room:
        fetch_feed.fn(feed, config, 30)  # 30 s left cannot hold another 60 s attempt
    assert is_permanent(no_room.value)
    with pytest.raises(OutOfTime, match="no answer within the collect deadline"):
        fetch_feed.fn(feed, config, 0)  # an attempt that starts at the deadline stops there
    assert site.hits("/down.xml") == 2
