"""Ranking like an editor: popularity, relevance, history, source caps, spares, and a table for everything."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tasks.rank import artifact_key, promote_spares, rank_candidates, table_rows
from zundacast.errors import NotEnoughCandidates
from zundacast.models import Candidate, CandidateSnapshot, EpisodeRecord, Usage
from zundacast.scoring import score_parts, topic_pattern
from zundacast.show import Show, parse_show
from zundacast.stories import same_story

DAY = dt.date(2025, 7, 24)
JST = dt.timezone(dt.timedelta(hours=9))
NOON = dt.datetime(2025, 7, 23, 12, 0, tzinfo=JST)
TEXT = "本文。" * 200


def make_show(**rank: Any) -> Show:
    return parse_show({
        "show": {"id": "zundamon-ai", "title": "テスト"},
        "rank": {"picks": 3, "spares": 2, "max_per_source": 2, "history_episodes": 3,
                 "topics": ["AI", "GPU", "LLM", "生成AI"], **rank},
        "feeds": [{"name": "A", "url": "https://a.example/feed"}, {"name": "B", "url": "https://b.example/feed"},
                  {"name": "C", "url": "https://c.example/feed"},
                  {"name": "Heavy", "url": "https://h.example/feed", "weight": 2.0}],
    })


def candidate(slug: str, title: str = "", source: str = "A", bookmarks: int | None = None,
              text: str = TEXT, published: dt.datetime = NOON, **extra: Any) -> Candidate:
    fields: dict[str, Any] = {"sources": [source], **extra}
    return Candidate(url=f"https://{source.lower()}.example/{slug}", title=title or f"記事 {slug}",
                     source=source, bookmarks=bookmarks, text=text, published=published, **fields)


def snapshot(*candidates: Candidate) -> CandidateSnapshot:
    return CandidateSnapshot(date=DAY, show="zundamon-ai", collected_at=NOON, candidates=list(candidates))


def episode(day: dt.date, picks: list[tuple[str, str]]) -> EpisodeRecord:
    return EpisodeRecord(
        date=day, title="t", show="zundamon-ai",
        picks=[{"title": t, "url": u, "source": "A"} for t, u in picks],
        transcript="", duration_s=1, size_bytes=1, sha256="0" * 64, loudness_lufs=-16, true_peak_dbtp=-1,
        chapters=[], usage=Usage(), engine="openjtalk", writer="offline",
        published_at=dt.datetime(2025, 7, 1, tzinfo=dt.UTC),
    )


def urls(picks: list[Any]) -> list[str]:
    return [p.candidate.url for p in picks]


def test_popular_relevant_articles_rank_first() -> None:
    show = make_show()
    ranking = rank_candidates(snapshot(
        candidate("plain", "今日の天気", source="A", bookmarks=300),
        candidate("hot-ai", "生成AIの新しいLLM", source="B", bookmarks=300),
        candidate("cold-ai", "生成AIの別の話題", source="C", bookmarks=2),
        candidate("mid-ai", "GPUとAIの話", source="A", bookmarks=40),
    ), show, DAY, [])
    # popularity orders the on-topic stories; on-topic beats popular but off-topic
    assert urls(ranking.picks) == ["https://b.example/hot-ai", "https://a.example/mid-ai",
                                   "https://c.example/cold-ai"]
    assert ranking.picks[0].parts["popularity"] > ranking.picks[1].parts["popularity"]
    assert ranking.picks[0].parts["relevance"] == 1.0
    assert ranking.table[3].candidate.url == "https://a.example/plain"
    assert ranking.table[3].parts["relevance"] == 0.0
    assert ranking.table[3].verdict == "spare"


def test_score_parts_follow_the_documented_formula() -> None:
    show = make_show()
    start = dt.datetime(2025, 7, 23, 6, 0, tzinfo=JST)
    end = start + dt.timedelta(hours=24)
    parts = score_parts(candidate("x", "AI と GPU", source="Heavy", bookmarks=500), show, start, end)
    assert parts["popularity"] == 1.0
    assert parts["relevance"] == 1.0  # two topics in the title: 4 points
    assert parts["recency"] == 0.25  # 12:00 is a quarter into a window starting at 06:00
    assert parts["fulltext"] == 1.0
    assert parts["source_weight"] == 2.0
    assert parts["score"] == pytest.approx(2.0 * (0.35 + 0.30 + 0.20 * 0.25 + 0.15))
    bare = score_parts(candidate("y", "天気", bookmarks=0, text="", published=None),  # type: ignore[arg-type]
                       show, start, end)
    assert bare["popularity"] == bare["relevance"] == bare["fulltext"] == 0.0
    assert bare["recency"] == 0.5
    uncounted = score_parts(candidate("z", "天気"), show, start, end)  # a feed without bookmark counts
    assert uncounted["popularity"] == 0.4
    shared = score_parts(candidate("s", "天気", sources=["A", "B"]), show, start, end)
    assert shared["popularity"] == 0.55  # + 0.15 for the second feed carrying it


def test_history_excludes_recently_covered_stories() -> None:
    show = make_show()
    history = [
        episode(DAY - dt.timedelta(days=1), [("既出の記事", "https://a.example/covered?utm_source=feed")]),
        episode(DAY - dt.timedelta(days=2), [("OpenAI、新モデル「GPT-5」を発表", "https://z.example/other")]),
        episode(DAY - dt.timedelta(days=9), [("ずっと前の記事", "https://b.example/long-ago")]),
        episode(DAY - dt.timedelta(days=3), []), episode(DAY - dt.timedelta(days=4), []),
        episode(DAY, [("当日の記事", "https://c.example/today")]),  # this date's own earlier run
    ]
    ranking = rank_candidates(snapshot(
        candidate("covered", "既出の記事の続報", source="A", bookmarks=900),
        candidate("gpt5", "OpenAIが新モデル「GPT-5」を発表", source="B", bookmarks=900),
        candidate("long-ago", "ずっと前の記事", source="B", bookmarks=1),
        candidate("today", "当日の記事", source="C", bookmarks=1),
        candidate("fresh", "新しい記事", source="C", bookmarks=1),
    ), show, DAY, history)
    table = {item.candidate.url: item for item in ranking.table}
    assert table["https://a.example/covered"].verdict == "skip"
    assert "same URL" in table["https://a.example/covered"].reason
    assert table["https://b.example/gpt5"].verdict == "skip"
    assert "covered on 2025-07-22" in table["https://b.example/gpt5"].reason
    # older than history_episodes (3) episodes before the date, or the date itself: not excluded
    assert set(urls(ranking.picks)) == {"https://b.example/long-ago", "https://c.example/today",
                                        "https://c.example/fresh"}


def test_at_most_max_per_source_and_one_pick_per_story() -> None:
    show = make_show(max_per_source=2)
    ranking = rank_candidates(snapshot(
        candidate("a1", "AI一", source="A", bookmarks=900),
        candidate("a2", "AI二", source="A", bookmarks=800),
        candidate("a3", "AI三", source="A", bookmarks=700),
        candidate("b1", "AIの大型アップデートが公開", source="B", bookmarks=600),
        candidate("c1", "AIの大型アップデートが公開!", source="C", bookmarks=500),
        candidate("c2", "天気", source="C", bookmarks=1),
    ), show, DAY, [])
    assert urls(ranking.picks) == ["https://a.example/a1", "https://a.example/a2", "https://b.example/b1"]
    assert [p.rank for p in ranking.picks] == [1, 2, 3]
    assert urls(ranking.spares) == ["https://a.example/a3", "https://c.example/c2"]
    assert [p.rank for p in ranking.spares] == [4, 5]
    table = {item.candidate.url: item for item in ranking.table}
    assert "same story as pick #3" in table["https://c.example/c1"].reason


def test_source_cap_skips_when_every_slot_is_capped() -> None:
    show = make_show(picks=2, spares=1, max_per_source=1)
    ranking = rank_candidates(snapshot(*(candidate(f"a{i}", f"AI記事{i}", source="A", bookmarks=100 - i)
                                         for i in range(4))), show, DAY, [])
    assert urls(ranking.picks) == ["https://a.example/a0"]
    assert urls(ranking.spares) == ["https://a.example/a1"]
    skipped = [item for item in ranking.table if item.verdict == "skip"]
    assert len(skipped) == 2 and all("max_per_source" in item.reason for item in skipped)


def test_the_table_covers_every_candidate_with_a_reason() -> None:
    show = make_show(picks=2, spares=1)
    candidates = [candidate(f"n{i}", f"ニュース{i}", source="ABC"[i % 3], bookmarks=i) for i in range(8)]
    ranking = rank_candidates(snapshot(*candidates), show, DAY, [])
    assert len(ranking.table) == 8
    assert {item.candidate.url for item in ranking.table} == {c.url for c in candidates}
    assert [item.verdict for item in ranking.table].count("pick") == 2
    assert [item.verdict for item in ranking.table].count("spare") == 1
    assert all(item.reason for item in ranking.table)
    scores = [item.score for item in ranking.table]
    assert scores == sorted(scores, reverse=True)
    rows = table_rows(ranking)
    assert len(rows) == 8 and {"verdict", "score", "popularity", "relevance", "recency", "fulltext",
                               "source_weight", "title", "reason", "url"} <= set(rows[0])


def test_ties_are_broken_by_url_and_the_result_is_stable() -> None:
    show = make_show(picks=2, spares=0, max_per_source=5)
    same = [candidate(slug, f"同点{slug}") for slug in ("c", "a", "b")]
    first = rank_candidates(snapshot(*same), show, DAY, [])
    second = rank_candidates(snapshot(*reversed(same)), show, DAY, [])
    assert urls(first.picks) == urls(second.picks) == ["https://a.example/a", "https://a.example/b"]


def test_nothing_left_to_pick_says_what_to_do() -> None:
    show = make_show()
    history = [episode(DAY - dt.timedelta(days=1), [("唯一の記事", "https://a.example/only")])]
    with pytest.raises(NotEnoughCandidates, match="history_episodes"):
        rank_candidates(snapshot(candidate("only", "唯一の記事")), show, DAY, history)


@pytest.mark.parametrize(("a", "b", "same"), [
    ("OpenAI、新モデル「GPT-5」を発表", "OpenAIが新モデル「GPT-5」を発表 | ITmedia AI+", True),
    ("Python 3.13 released", "Python 3.14 released", False),
    ("Gemini 2.5 の新機能", "Claude 4 の新機能", False),
    ("", "", False),
])
def test_same_story(a: str, b: str, same: bool) -> None:
    assert same_story(a, b) is same


def test_topics_match_whole_words_for_ascii() -> None:
    assert topic_pattern("AI").search("OpenAI の AI 戦略")
    assert not topic_pattern("AI").search("he said it")
    assert topic_pattern("model").search("Two new Models")
    assert topic_pattern("生成AI").search("生成AIの活用")


def test_artifact_key_is_lowercase_dashes() -> None:
    assert artifact_key("zundamon-ai", DAY) == "picks-zundamon-ai-2025-07-24"


def test_spares_take_over_failed_picks_in_order() -> None:
    show = make_show(picks=3, spares=2, max_per_source=5)
    candidates = [candidate(f"n{i}", f"AI記事{i}", bookmarks=100 - i) for i in range(6)]
    ranking = rank_candidates(snapshot(*candidates), show, DAY, [])
    assert urls(ranking.picks) == [f"https://a.example/n{i}" for i in range(3)]
    after = promote_spares(ranking, {"https://a.example/n1", "https://a.example/n3"})
    assert urls(after.picks) == ["https://a.example/n0", "https://a.example/n2", "https://a.example/n4"]
    assert [p.rank for p in after.picks] == [1, 2, 3]
    assert after.spares == []
    assert len(after.table) == 6  # the explanation is untouched


def test_title_index_finds_what_comparing_every_pair_finds() -> None:
    """The LSH-backed index against the exhaustive definition, on 600 news titles with re-carried stories
    and version bumps: the same story for every title."""
    from benchmarks.bench_dedup import news_titles
    from zundacast.stories import TitleIndex, normalize_title, similar_normalized, title_numbers

    titles = news_titles(600, seed=3)
    forms = [(normalize_title(title), title_numbers(title)) for title in titles]
    index, firsts, expected, found = TitleIndex(), [], [], []
    for position, title in enumerate(titles):
        expected.append(next((first for first in firsts
                              if similar_normalized(forms[first][0], forms[position][0], forms[first][1],
                                                    forms[position][1])), position))
        key = index.find(title)
        found.append(position if key is None else key)
        if key is None:
            index.add(title, position)
        if expected[-1] == position:
            firsts.append(position)
    assert sum(1 for position, story in enumerate(expected) if story != position) > 60  # duplicates exist
    assert found == expected


def test_unreadable_candidates_rank_after_every_readable_one_and_are_never_chosen() -> None:
    show = make_show(picks=3, spares=2, max_per_source=5)
    ranking = rank_candidates(snapshot(
        candidate("refused", "AIの記事1", bookmarks=400, text="",
                  extraction_error="page not fetched: http://169.254.169.254/: refused"),
        candidate("gone", "AIの記事2", bookmarks=300, text="", extraction_error="page not fetched: HTTP 404"),
        candidate("blob", "AIの記事3", bookmarks=200,
                  extraction_error="not readable prose: only 1 distinct characters"),
        candidate("unfetched", "AIの記事4", bookmarks=100, text=""),  # beyond collect.max_pages
        candidate("brief", "GPUの短信", bookmarks=1),
        candidate("plain", "今日の天気", bookmarks=0),
    ), show, DAY, [])
    assert urls(ranking.picks) == ["https://a.example/brief", "https://a.example/plain"]
    assert ranking.spares == []  # an unreadable candidate is no fallback either
    assert [item.candidate.url.rsplit("/", 1)[-1] for item in ranking.table] == [
        "brief", "plain", "refused", "gone", "blob", "unfetched"]
    skipped = ranking.table[2:]
    assert all(item.verdict == "skip" and item.reason.startswith("unreadable: ") for item in skipped)
    assert "404" in skipped[1].reason and "distinct characters" in skipped[2].reason
    assert "not fetched" in skipped[3].reason
    assert min(item.score for item in skipped) > ranking.picks[0].score  # only readability kept them out


def test_nothing_readable_to_pick_says_so() -> None:
    show = make_show()
    with pytest.raises(NotEnoughCandidates, match="1 unreadable"):
        rank_candidates(snapshot(candidate("x", "AI", text="", extraction_error="page not fetched: 404")),
                        show, DAY, [])
