"""Feeds and pages that fail: the run goes on with what works, or stops cleanly and keeps the old feed.

One module-scoped flow run on a sample day with three broken feeds (HTTP 503, malformed, connection
refused) and a popular feed whose two article pages fail (404, timeout), then a run of a later date with
every feed down against the same store.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import feedparser
import pytest

from tests.fakes.web import Item, rss2
from tests.faults.support import flow_env, free_port, run_flow, sample_site, short_show, tree_bytes
from zundacast.errors import NotEnoughCandidates
from zundacast.models import CandidateSnapshot
from zundacast.sample_day import SAMPLE_DATE

pytestmark = pytest.mark.slow

DOWN, BROKEN, GONE, POPULAR = "止まったフィード", "壊れたフィード", "消えたサーバー", "人気フィード"
IN_WINDOW = dt.datetime(2026, 11, 19, 12, 0, tzinfo=dt.UTC)  # inside the sample day's window
LATER = dt.date(2026, 11, 23)


@pytest.fixture(scope="module")
def faulty_day(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("feed-faults")
    store = root / "public"
    closed_port = free_port()
    with sample_site() as (site, base), flow_env(root, shared_speech=True):
        site.route("/feeds/down.xml", "busy", status=503)
        site.route("/feeds/broken.xml", "<html><body>メンテナンス中 {{{ </body>",
                   content_type="application/rss+xml")
        # a heavily weighted feed: its two stories outrank everything, but their pages cannot be read
        site.route("/feeds/popular.xml", rss2([
            Item("話題のAIエージェント、ついに一般公開", site.url("/pages/popular-404.html"), IN_WINDOW,
                 "AIエージェントの一般公開について。"),
            Item("大規模言語モデルの推論が10倍速く", site.url("/pages/popular-slow.html"), IN_WINDOW,
                 "LLMの推論高速化について。"),
        ]), content_type="application/rss+xml")
        site.route("/pages/popular-404.html", "not found", status=404)
        site.route("/pages/popular-slow.html", "<html><body><p>遅い</p></body></html>", delay_s=4)
        sample_feeds = [feed.model_dump() for feed in short_show(base).feeds]
        feeds = [*sample_feeds,
                 {"name": DOWN, "url": site.url("/feeds/down.xml")},
                 {"name": BROKEN, "url": site.url("/feeds/broken.xml")},
                 {"name": GONE, "url": f"http://127.0.0.1:{closed_port}/feed.xml"},
                 {"name": POPULAR, "url": site.url("/feeds/popular.xml"), "weight": 5.0}]
        show = short_show(base, picks=1, feeds=feeds, allow_hosts=[site.host, f"127.0.0.1:{closed_port}"],
                          collect={"timeout_s": 1.0})
        summary = run_flow(show, store)
        published = tree_bytes(store)

        # later, every feed is down (503, malformed, refused): nothing may change in the store
        dead = short_show(base, feeds=[{"name": DOWN, "url": site.url("/feeds/down.xml")},
                                       {"name": BROKEN, "url": site.url("/feeds/broken.xml")},
                                       {"name": GONE, "url": f"http://127.0.0.1:{closed_port}/feed.xml"}],
                          allow_hosts=[site.host, f"127.0.0.1:{closed_port}"], collect={"timeout_s": 1.0})
        later_store = root / "later"
        shutil.copytree(store, later_store)
        with pytest.raises(NotEnoughCandidates) as all_down:
            run_flow(dead, later_store, day=LATER)
        yield {"summary": summary, "store": store, "site": site, "show": show, "published": published,
               "all_down": all_down.value, "later_store": later_store}


def snapshot(run: dict[str, Any]) -> CandidateSnapshot:
    return CandidateSnapshot.model_validate_json(
        (run["store"] / SAMPLE_DATE.isoformat() / "candidates.json").read_bytes())


def episode(run: dict[str, Any]) -> dict[str, Any]:
    return json.loads((run["store"] / SAMPLE_DATE.isoformat() / "episode.json").read_text("utf-8"))


# --- row 1: one feed down or malformed ------------------------------------------------------------------


def test_feed_down_or_malformed_is_recorded_and_the_run_goes_on(faulty_day: dict[str, Any]) -> None:
    errors = snapshot(faulty_day).feed_errors
    assert set(errors) == {DOWN, BROKEN, GONE}
    assert "503" in errors[DOWN]
    assert "Connection refused" in errors[GONE] or "ConnectError" in errors[GONE]
    assert errors[BROKEN]  # says why (not a readable feed, or no items)
    feed = feedparser.parse((faulty_day["store"] / "feed.xml").read_bytes())
    assert len(feed.entries) == 1  # the episode was published from the feeds that worked
    assert {pick["source"] for pick in episode(faulty_day)["picks"]} <= {
        feed.name for feed in faulty_day["show"].feeds if feed.name not in (DOWN, BROKEN, GONE)}


def test_the_down_feed_was_retried_before_being_skipped(faulty_day: dict[str, Any]) -> None:
    assert faulty_day["site"].hits("/feeds/down.xml") >= 3  # fetch-feed: 1 try + 2 retries


# --- row 3: an article page 404 or timeout --------------------------------------------------------------


def test_unreadable_pages_are_recorded_with_why(faulty_day: dict[str, Any]) -> None:
    by_path = {c.url.rsplit("/", 1)[-1]: c for c in snapshot(faulty_day).candidates}
    assert "HTTP 404" in by_path["popular-404.html"].extraction_error
    assert "no answer within" in by_path["popular-slow.html"].extraction_error  # timed out


def test_an_unreadable_page_is_never_picked_while_a_readable_one_remains(faulty_day: dict[str, Any]) -> None:
    from flows.editing import with_readable_picks
    from tasks.rank import rank_candidates

    ranking = rank_candidates(snapshot(faulty_day), faulty_day["show"], SAMPLE_DATE, [])
    # the popular story's page is a 404: rank skips it, with the reason, for a readable one
    skipped = {row.candidate.url.rsplit("/", 1)[-1]: row for row in ranking.table if row.verdict == "skip"}
    assert "popular-404.html" in skipped
    assert skipped["popular-404.html"].reason.startswith("unreadable:")
    assert "404" in skipped["popular-404.html"].reason
    assert all(not pick.candidate.extraction_error for pick in [*ranking.picks, *ranking.spares])
    assert with_readable_picks(ranking) == ranking  # nothing left to replace
    assert [pick["url"] for pick in episode(faulty_day)["picks"]] == [ranking.picks[0].candidate.url]


def test_the_spare_that_takes_the_place_is_readable(faulty_day: dict[str, Any]) -> None:
    by_url = {c.url: c for c in snapshot(faulty_day).candidates}
    published = [pick["url"] for pick in episode(faulty_day)["picks"]]
    assert len(published) == 1
    assert not by_url[published[0]].extraction_error, published[0]


# --- row 2: all feeds down ----------------------------------------------------------------------------


def test_all_feeds_down_names_every_feed_and_why(faulty_day: dict[str, Any]) -> None:
    message = str(faulty_day["all_down"])
    assert "collect.min_candidates" in message
    for name, why in ((DOWN, "503"), (BROKEN, BROKEN), (GONE, "refused")):
        assert name in message and why.lower() in message.lower(), (name, message)


def test_all_feeds_down_publishes_nothing_and_keeps_the_old_feed(faulty_day: dict[str, Any]) -> None:
    later: Path = faulty_day["later_store"]
    after = tree_bytes(later)
    assert after == faulty_day["published"]  # feed.xml, episodes.json, pages: byte for byte
    assert not (later / LATER.isoformat()).exists()
