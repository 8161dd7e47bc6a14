"""Reading a past day from the sources' archives, for dates whose live feeds have moved on.

A feed in the show file may say where its source keeps past days and in what shape:

    archive_url = "https://b.hatena.ne.jp/hotentry/it/{date:%Y%m%d}"
    archive_format = "hatena-hotentry"

The URL is a template. `{date:FORMAT}` makes one URL per calendar day (in the show's timezone) that
the window touches; `{start:FORMAT}` / `{end:FORMAT}` make one URL for the whole window, with the
window's edges in UTC (`%s` is seconds since the epoch; no format spec gives ISO 8601, `…Z`). Formats:

| format | what it reads | popularity |
| --- | --- | --- |
| `hatena-hotentry` | Hatena Bookmark's hot-entry page of a category and day (HTML) | bookmark count |
| `arxiv-atom` | arXiv's query API by `submittedDate` range (Atom) | none |
| `hn-algolia` | Hacker News stories by `created_at_i` range (Algolia's search API, JSON) | points |
| `rss` | any RSS/Atom feed that keeps old items (a dated archive, a paged feed) | `hatena:bookmarkcount` |

Every archive is fetched by `zundacast.web.fetch` like a live feed (SSRF guard, `collect.allow_hosts`,
`collect.timeout_s`, the feed size cap) and must be of its format's content type; an archive larger
than the cap is refused rather than read in part (a cut day page would silently lose entries). Items
are kept only when dated inside [start, end): an archive item without a date cannot be placed in the
window. A failure that may heal (timeout, 429, 5xx) is retried twice, with backoff, as live feeds are;
one archive failing never fails the run: its error is reported as `"<feed> (archive)"`.

Archives are read only once the window is `ARCHIVE_AFTER` old: until then the live feeds still hold
the day, and the scheduled run stays as it was.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import random
import re
import string
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin
from zoneinfo import ZoneInfo

import feedparser
from lxml import html as lxml_html
from pydantic import BaseModel

from zundacast.errors import PermanentError
from zundacast.models import Candidate
from zundacast.stories import canonical_url
from zundacast.web import HTML_TYPES, FetchError, FetchResult, fetch

if TYPE_CHECKING:
    from zundacast.show import CollectConfig, FeedConfig

ARCHIVE_AFTER = dt.timedelta(hours=6)  # the live feeds still hold a window this young
RETRIES = 2  # as a live feed's fetch-feed task: timeouts, connection errors, 429 and 5xx heal
RETRY_DELAY_S = 1.0  # then 2 s, each with up to 50 % jitter
SUMMARY_CHARS = 1000
HATENA_TZ = ZoneInfo("Asia/Tokyo")  # the times on Hatena Bookmark's pages
FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/rdf+xml", "application/xml",
              "text/xml")
JSON_TYPES = ("application/json",)
TEMPLATE_FIELDS = ("date", "start", "end")
ARXIV_ID = re.compile(r"arxiv\.org/(?:abs|pdf)/([^?#]+?)(?:v\d+)?(?:\.pdf)?$")


class MalformedArchive(PermanentError):
    """The archive answered, but not in the shape its format promises."""


class ArchiveTooLarge(PermanentError):
    """The archive is larger than the feed size cap."""


class ArchiveResult(BaseModel):
    """One feed's archive: its items inside the window, or why it could not be read."""

    feed: str  # the feed's name; "<name> (archive)" on failure, so the live feed's own error stays
    items: list[Candidate] = []
    error: str = ""


# ---- when, and which URLs ----------------------------------------------------------------------------

def window_passed(end: dt.datetime, now: dt.datetime) -> bool:
    """Is the window old enough that its day is read from the archives too?"""
    return now >= end + ARCHIVE_AFTER


class _Template(string.Formatter):
    """str.format with `%s` (epoch seconds) that does not depend on the machine's timezone."""

    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, dt.datetime):
            if not format_spec:  # ISO 8601 in UTC, "Z" (a "+" in a query string would read as a space)
                return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            return value.strftime(format_spec.replace("%s", str(int(value.timestamp()))))
        return super().format_field(value, format_spec)


def fill_template(template: str, *, date: dt.date | None = None, start: dt.datetime | None = None,
                  end: dt.datetime | None = None) -> str:
    return _Template().format(template, date=date, start=start, end=end)


def template_fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def template_problem(template: str) -> str:
    """Why `template` cannot be an archive URL ("" when it can)."""
    try:
        fields = template_fields(template)
    except ValueError as exc:
        return f"{template!r} is not a valid URL template: {exc}"
    unknown = fields - set(TEMPLATE_FIELDS)
    if unknown:
        return (f"{template!r} names {', '.join(sorted(unknown))}: an archive URL takes only {{date:...}}, "
                "{start:...} and {end:...}")
    if not fields:
        return f"{template!r} names no date: use {{date:%Y%m%d}} or {{start:...}}/{{end:...}}"
    if "date" in fields and fields & {"start", "end"}:
        return f"{template!r}: use either {{date:...}} (one URL a day) or {{start:...}}/{{end:...}}, not both"
    if not template.startswith(("http://", "https://")):
        return f"{template!r} is not an http(s) URL"
    return ""


def archive_urls(template: str, start: dt.datetime, end: dt.datetime, timezone: str) -> list[str]:
    """The URLs to read for the window [start, end): one per local day for {date}, else one."""
    if "date" not in template_fields(template):
        return [fill_template(template, start=start.astimezone(dt.UTC), end=end.astimezone(dt.UTC))]
    zone = ZoneInfo(timezone)
    first = start.astimezone(zone).date()
    last = (end - dt.timedelta(microseconds=1)).astimezone(zone).date()
    days = [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
    return list(dict.fromkeys(fill_template(template, date=day) for day in days))


# ---- reading -----------------------------------------------------------------------------------------

def read_archive(feed: FeedConfig, config: CollectConfig, start: dt.datetime, end: dt.datetime,
                 timezone: str, max_bytes: int) -> list[Candidate]:
    """The feed's archived items dated inside [start, end); raises on the first URL that fails."""
    if not feed.archive_url or not feed.archive_format:
        return []
    parse = PARSERS[feed.archive_format]
    items: list[Candidate] = []
    for url in archive_urls(feed.archive_url, start, end, timezone):
        result = _fetch_retrying(url, config, max_bytes, ACCEPT[feed.archive_format])
        if result.truncated:
            raise ArchiveTooLarge(f"{url}: larger than {max_bytes} bytes, refused (a cut archive loses "
                                  "items)")
        items.extend(parse(result.content, feed, result.final_url))
    kept = [item for item in items if item.published is not None and start <= item.published < end]
    by_url = {item.url: item for item in reversed(kept)}  # an item on two day pages: its first sighting
    return [item for item in kept if by_url[item.url] is item]


def _fetch_retrying(url: str, config: CollectConfig, max_bytes: int, accept: tuple[str, ...]) -> FetchResult:
    """`fetch`, retried like a live feed's task (twice, with backoff) unless the failure is permanent."""
    for attempt in range(RETRIES + 1):
        try:
            return fetch(url, timeout_s=config.timeout_s, max_bytes=max_bytes, allow_hosts=config.allow_hosts,
                         accept=accept, user_agent=config.user_agent)
        except FetchError as exc:
            if isinstance(exc, PermanentError) or attempt == RETRIES:
                raise
            time.sleep(RETRY_DELAY_S * 2**attempt * random.uniform(1.0, 1.5))
    raise AssertionError("unreachable")


def read_archives(feeds: list[FeedConfig], config: CollectConfig, start: dt.datetime, end: dt.datetime,
                  timezone: str, max_bytes: int) -> list[ArchiveResult]:
    """Every feed's archive at once (`collect.concurrency` at a time); feeds without one are left out."""
    with_archive = [feed for feed in feeds if feed.archive_url and feed.archive_format]
    if not with_archive:
        return []

    def one(feed: FeedConfig) -> ArchiveResult:
        label = f"{feed.name} (archive)"
        try:
            items = read_archive(feed, config, start, end, timezone, max_bytes)
        except Exception as exc:  # one archive failing never fails the run
            why = str(exc) if isinstance(exc, FetchError | PermanentError) else f"{type(exc).__name__}: {exc}"
            return ArchiveResult(feed=label, error=why)
        if not items:
            why = f"no items between {start.isoformat()} and {end.isoformat()}"
            return ArchiveResult(feed=label, error=why)
        return ArchiveResult(feed=feed.name, items=items)

    with ThreadPoolExecutor(max_workers=min(config.concurrency, len(with_archive))) as pool:
        return list(pool.map(one, with_archive))


# ---- parsers: bytes -> candidates (every one dated when the source dates it) --------------------------

def _candidate(feed: FeedConfig, fmt: str, url: str, title: str, **fields: Any) -> Candidate:
    return Candidate(url=canonical_url(url), title=" ".join(title.split()), source=feed.name,
                     sources=[feed.name], feed_url=feed.archive_url, language=feed.language,
                     origin=f"archive:{fmt}", **fields)


def _has_class(name: str) -> str:
    return f"contains(concat(' ', normalize-space(@class), ' '), ' {name} ')"


def parse_hatena_hotentry(data: bytes, feed: FeedConfig, page_url: str) -> list[Candidate]:
    """Hatena Bookmark's hot-entry day page: per entry a title link, a users count, a description and
    the date it was first bookmarked (`YYYY/MM/DD HH:MM`, Japan time)."""
    try:
        document = lxml_html.fromstring(data)
    except (ValueError, lxml_html.etree.ParserError) as exc:
        raise MalformedArchive(f"{page_url}: not an HTML page ({exc})") from exc
    entries = document.xpath(f"//*[{_has_class('entrylist-contents')}]")
    if not entries:
        raise MalformedArchive(f"{page_url}: no hot-entry list on the page (has Hatena changed its layout?)")
    items = []
    for entry in entries:
        links = entry.xpath(f".//*[{_has_class('entrylist-contents-title')}]//a[@href]")
        if not links:
            continue
        link = urljoin(page_url, links[0].get("href").strip())
        title = links[0].get("title") or links[0].text_content()
        if not link.startswith(("http://", "https://")) or not title.strip():
            continue
        users = entry.xpath(f"string(.//*[{_has_class('entrylist-contents-users')}])")
        count = re.search(r"\d[\d,]*", users)
        description = entry.xpath(f"string(.//*[{_has_class('entrylist-contents-description')}])")
        stamp = entry.xpath(f"string(.//*[{_has_class('entrylist-contents-date')}])").strip()
        items.append(_candidate(
            feed, "hatena-hotentry", link, title, published=_hatena_time(stamp),
            bookmarks=int(count.group().replace(",", "")) if count else None,
            feed_summary=" ".join(description.split())[:SUMMARY_CHARS],
        ))
    return items


def _hatena_time(stamp: str) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(stamp, "%Y/%m/%d %H:%M").replace(tzinfo=HATENA_TZ)
    except ValueError:
        return None


def _feed_entries(data: bytes, page_url: str) -> list[Any]:
    parsed = feedparser.parse(data)
    if not parsed.entries and (parsed.bozo or not parsed.version):  # HTML is not bozo, but has no version
        reason = parsed.get("bozo_exception") or "no RSS/Atom document found"
        raise MalformedArchive(f"{page_url}: not a readable RSS/Atom feed ({reason})")
    return list(parsed.entries)


def _entry_time(entry: Any) -> dt.datetime | None:
    for field in ("published_parsed", "updated_parsed", "created_parsed"):
        stamp = entry.get(field)
        if stamp:
            with contextlib.suppress(TypeError, ValueError):  # feedparser gives UTC struct_times
                return dt.datetime(*stamp[:6], tzinfo=dt.UTC)
    return None


def _plain(raw: str) -> str:
    if "<" in raw:
        with contextlib.suppress(ValueError, TypeError, lxml_html.etree.ParserError):
            raw = lxml_html.fromstring(raw).text_content()
    return " ".join(raw.split())[:SUMMARY_CHARS]


def parse_arxiv_atom(data: bytes, feed: FeedConfig, page_url: str) -> list[Candidate]:
    """arXiv's query API answer (Atom): one entry per paper, `published` = first submission. Links are
    made `https://arxiv.org/abs/ID` without the version, as the live arXiv feeds link them."""
    items = []
    for entry in _feed_entries(data, page_url):
        entry_id = entry.get("id") or ""
        if "/api/errors" in entry_id:  # the API reports a bad query as a one-entry feed
            why = _plain(entry.get("summary") or "")
            raise MalformedArchive(f"{page_url}: arXiv refused the query: {why}")
        link = entry.get("link") or entry_id
        paper = ARXIV_ID.search(link) or ARXIV_ID.search(entry_id)
        if paper:
            link = f"https://arxiv.org/abs/{paper.group(1)}"
        title = entry.get("title") or ""
        if not link.startswith(("http://", "https://")) or not title.strip():
            continue
        authors = ", ".join(a.get("name", "") for a in entry.get("authors") or [] if a.get("name"))
        items.append(_candidate(feed, "arxiv-atom", link, title, published=_entry_time(entry),
                                feed_summary=_plain(entry.get("summary") or ""), author=authors[:200],
                                site_name="arXiv"))
    return items


def parse_hn_algolia(data: bytes, feed: FeedConfig, page_url: str) -> list[Candidate]:
    """Algolia's Hacker News search answer: `hits[]` with title, url, points, created_at_i, objectID.
    A story without a URL (Ask HN) links to its discussion; points are its popularity."""
    try:
        hits = json.loads(data)["hits"]
        if not isinstance(hits, list):
            raise TypeError("hits is not a list")
    except (ValueError, KeyError, TypeError) as exc:
        raise MalformedArchive(f"{page_url}: not an Algolia search answer with hits ({exc})") from exc
    items = []
    for hit in hits:
        if not isinstance(hit, dict):
            continue
        story = hit.get("objectID")
        link = hit.get("url") or (f"https://news.ycombinator.com/item?id={story}" if story else "")
        title = hit.get("title") or ""
        if not str(link).startswith(("http://", "https://")) or not str(title).strip():
            continue
        created = hit.get("created_at_i")
        points = hit.get("points")
        items.append(_candidate(
            feed, "hn-algolia", str(link), str(title),
            published=dt.datetime.fromtimestamp(created, dt.UTC) if isinstance(created, int) else None,
            bookmarks=points if isinstance(points, int) else None,
            feed_summary=_plain(str(hit.get("story_text") or "")), author=str(hit.get("author") or ""),
        ))
    return items


def parse_rss(data: bytes, feed: FeedConfig, page_url: str) -> list[Candidate]:
    """Any RSS 2.0, RSS 1.0 (RDF, with `hatena:bookmarkcount`) or Atom archive."""
    items = []
    for entry in _feed_entries(data, page_url):
        link = (entry.get("link") or entry.get("id") or "").strip()
        title = entry.get("title") or ""
        if not link.startswith(("http://", "https://")) or not title.strip():
            continue
        count = str(entry.get("hatena_bookmarkcount") or "").strip()
        items.append(_candidate(feed, "rss", link, title, published=_entry_time(entry),
                                feed_summary=_plain(entry.get("summary") or ""),
                                bookmarks=int(count) if count.isdigit() else None))
    return items


Parser = Callable[[bytes, "FeedConfig", str], list[Candidate]]
PARSERS: dict[str, Parser] = {
    "hatena-hotentry": parse_hatena_hotentry,
    "arxiv-atom": parse_arxiv_atom,
    "hn-algolia": parse_hn_algolia,
    "rss": parse_rss,
}
ACCEPT: dict[str, tuple[str, ...]] = {
    "hatena-hotentry": HTML_TYPES,
    "arxiv-atom": FEED_TYPES,
    "hn-algolia": JSON_TYPES,
    "rss": FEED_TYPES,
}
