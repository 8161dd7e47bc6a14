"""One episode's record (what `{date}/episode.json` and its entry in `episodes.json` hold).

The index itself (reading, compare-and-swap, the feed derived from it) is
`zundacast.publishing.index`; its names are re-exported here for existing callers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from zundacast.dates import date_ja
from zundacast.models import AudioBundle, EpisodeRecord, Ranking, Script, Summary, Usage
from zundacast.publishing.index import (  # noqa: F401  (re-exported)
    EPISODES_KEY,
    CatalogError,
    ShowIndex,
    merge_record,
    parse_index,
    read_index,
    render_index,
    sorted_records,
)
from zundacast.show import Show
from zundacast.storage import Store

FEED_KEY = "feed.xml"
SHOW_PAGE_KEY = "index.html"
COVER_KEY = "cover.png"
TITLE_LIMIT = 120  # characters; podcast apps cut long titles anyway


def episode_keys(day: dt.date) -> dict[str, str]:
    """Role -> key (relative to the store's prefix) of one date's files."""
    folder = day.isoformat()
    return {
        "mp3": f"{folder}/episode.mp3",
        "vtt": f"{folder}/transcript.vtt",
        "chapters": f"{folder}/chapters.json",
        "episode": f"{folder}/episode.json",
        "page": f"{folder}/index.html",
    }


def parse_catalog(data: bytes, where: str = EPISODES_KEY) -> list[EpisodeRecord]:
    return parse_index(data, where).episodes


def read_catalog(store: Store) -> list[EpisodeRecord]:
    """Every published episode, newest first ([] for a new store)."""
    return read_index(store)[0].episodes


def render_catalog(records: list[EpisodeRecord], podcast_guid: str = "") -> str:
    return render_index(ShowIndex(podcast_guid=podcast_guid, episodes=records))


def episode_title(script: Script, titles: list[str]) -> str:
    """「2025年7月24日 木曜日: A / B / C」, cut to TITLE_LIMIT characters."""
    head = f"{date_ja(script.date)} {script.weekday}"
    title = f"{head}: {' / '.join(titles)}" if titles else head
    return title if len(title) <= TITLE_LIMIT else title[: TITLE_LIMIT - 1] + "…"


def first_published_at(show: Show, day: dt.date, now: Callable[[], dt.datetime] | None = None) -> dt.datetime:
    """When a date's episode counts as published: the show's cutoff time on that date, never in the future.

    Tied to the date (not to the run) so the feed's pubDates follow the dates even when past
    dates are published late, and a rerun does not move its episode.
    """
    current = (now or (lambda: dt.datetime.now(dt.UTC)))()
    scheduled = dt.datetime.combine(day, show.schedule.cutoff, tzinfo=show.tz)
    return min(scheduled, current).astimezone(dt.UTC)


def build_record(
    bundle: AudioBundle,
    script: Script,
    ranking: Ranking,
    summaries: list[Summary],
    show: Show,
    files: dict[str, str],
    published_at: dt.datetime | None = None,
) -> EpisodeRecord:
    """The record of one episode: what episode.json holds and what the feed and pages are made from."""
    summary_by_url = {summary.url: summary for summary in summaries}
    picks = []
    for pick in sorted(ranking.picks, key=lambda p: p.rank):
        candidate = pick.candidate
        summary = summary_by_url.get(candidate.url)
        picks.append(
            {
                "title": summary.title if summary else candidate.title,
                "url": candidate.url,
                "source": candidate.source,
            }
        )
    usage = script.usage
    for summary in summaries:
        usage = usage + summary.usage
    return EpisodeRecord(
        date=script.date,
        title=episode_title(script, [pick["title"] for pick in picks]),
        show=show.show.id,
        picks=picks,
        summaries=summaries,
        transcript=script.transcript(),
        duration_s=round(bundle.duration_s, 3),
        size_bytes=bundle.size_bytes,
        sha256=bundle.sha256,
        loudness_lufs=bundle.loudness_lufs,
        true_peak_dbtp=bundle.true_peak_dbtp,
        chapters=bundle.chapters,
        usage=usage if isinstance(usage, Usage) else Usage(),
        engine=bundle.engine,
        writer=script.writer,
        published_at=published_at or first_published_at(show, script.date),
        files=files,
    )
