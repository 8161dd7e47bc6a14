"""Collect: the day's candidate articles from the show's feeds, with the full text of the best ones.

1. Every feed is fetched concurrently (`zundacast.web.fetch`: SSRF guard, timeouts, size cap) and
   parsed by feedparser (RSS 2.0, RSS 1.0/RDF with `hatena:bookmarkcount`, Atom). A feed that fails,
   times out, is malformed or empty is logged, recorded in `feed_errors` and skipped. The feeds share
   one deadline (`collect.deadline_s`, default twice `timeout_s`): a feed not in by then is recorded
   as failed ("no answer within the collect deadline") and the episode is made from the rest; a failed
   fetch is retried only when the retry (backoff plus one full timeout) fits before the deadline, so a
   feed that never answers costs one timeout, not three plus the backoff.
2. Items are kept when published inside the day's window (`schedule.window_hours` before
   `schedule.cutoff` on the episode's date, in the show's timezone). Undated items count from when
   collection first saw them (remembered in `<home>/seen/<show>.json`); a run that starts up to
   `LATE_GRACE` after the cutoff still keeps undated items it sees for the first time. A feed's
   `topics`, when given, keep only items mentioning one of them.
3. URLs are made canonical (`zundacast.web.canonical_url`) and the same story carried by several
   feeds (same URL, or a near-identical title: `zundacast.stories`) becomes one candidate whose
   `sources` name every feed and whose `bookmarks` is the highest count seen.
4. The most promising candidates (the rank score without history, best `collect.max_pages`) get
   their page fetched (`collect.concurrency` at a time, HTML only) and their main text, author, site
   name and language extracted (`zundacast.extraction`: trafilatura, then bylines, datelines, credits,
   share and related lines dropped). The page's final URL (after redirects) becomes the candidate's
   URL. A page that fails (refused, 404, not HTML) or whose text is not readable prose
   (`zundacast.readability`: length floor `collect.min_text_chars`, distinct characters, word share,
   repetition, sentences) keeps the candidate, with `extraction_error` saying why; ranking never picks
   it while a readable candidate remains.
5. Fewer than `collect.min_candidates` candidates fail the run (`NotEnoughCandidates`, naming the
   feeds that failed and why).

`collect` (the Prefect task) snapshots the result in the store as `{date}/candidates.json` and
reuses that snapshot unless asked to refresh, so a rerun of a past date picks the same articles
after the feeds have moved on.

A date with no snapshot whose window ended `zundacast.archives.ARCHIVE_AFTER` ago or more is read from
the feeds' archives too (`archive_url`/`archive_format`): each candidate's `origin` says which.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for_futures
from pathlib import Path
from typing import Any

import feedparser
from lxml import html as lxml_html
from prefect import task
from prefect.cache_policies import INPUTS, NONE, TASK_SOURCE
from pydantic import BaseModel, ValidationError

from zundacast import archives, extraction, readability
from zundacast.backoff import backoff_delays
from zundacast.dates import window
from zundacast.errors import NotEnoughCandidates, PermanentError
from zundacast.models import Candidate, CandidateSnapshot
from zundacast.scoring import score_parts, topic_pattern
from zundacast.show import CollectConfig, Environment, FeedConfig, Show
from zundacast.stage import retry_unless_permanent, stage_options
from zundacast.storage import Store, open_store
from zundacast.stories import canonical_url, merge_same_stories
from zundacast.web import HTML_TYPES, FetchError, FetchTimeout, fetch

LATE_GRACE = dt.timedelta(hours=6)  # undated items first seen this long after the cutoff still count
SEEN_KEEP = dt.timedelta(days=30)  # first-seen memory is pruned after this
FEED_MAX_BYTES = 5_000_000  # a feed larger than this is cut (and most likely malformed at the cut)
SUMMARY_CHARS = 1000
UNREADABLE_SAMPLE_CHARS = 2000  # of an unreadable page's text, kept in the snapshot for the record
RETRY_DELAYS_S = tuple(backoff_delays(1.0, 2))  # fetch-feed's backoff before its 2nd and 3rd attempts
RETRY_JITTER = 0.5  # Prefect stretches each delay by up to this share

log = logging.getLogger(__name__)


class MalformedFeed(PermanentError):
    """The feed's XML could not be parsed into any item."""


class OutOfTime(PermanentError):
    """A feed failure that would heal with a retry, but the retry would not finish before the deadline."""


class FeedResult(BaseModel):
    """One feed's fetch: its items (all of them, before the window filter), or why it failed."""

    feed: str
    items: list[Candidate] = []
    error: str = ""


FeedReader = Callable[[list[FeedConfig], CollectConfig], list[FeedResult]]
# Waits on the feeds' futures for at most the given seconds (tests inject one that waits on events).
FeedWaiter = Callable[[list[Future], float], object]


def deadline_s(config: CollectConfig) -> float:
    """Seconds the feeds get, all together: `collect.deadline_s`, else twice the fetch timeout (and at
    least one timeout plus the retry backoff, so a feed that fails at once can still be retried)."""
    if config.deadline_s is not None:
        return config.deadline_s
    return max(2 * config.timeout_s, config.timeout_s + sum(RETRY_DELAYS_S) * (1 + RETRY_JITTER))


def late_error(config: CollectConfig) -> str:
    return f"no answer within the collect deadline of {deadline_s(config):g} s"


# ---- feeds -------------------------------------------------------------------------------------------

def read_feed(feed: FeedConfig, config: CollectConfig, time_left_s: float | None = None) -> list[Candidate]:
    """Fetch and parse one feed into candidates (canonical URLs, plain-text summaries); raises on failure.

    `time_left_s` caps the whole fetch (the collect deadline); each connect and read is still bounded by
    `timeout_s`."""
    total = 3 * config.timeout_s if time_left_s is None else max(0.01, min(3 * config.timeout_s, time_left_s))
    result = fetch(feed.url, timeout_s=min(config.timeout_s, total), max_bytes=FEED_MAX_BYTES,
                   allow_hosts=config.allow_hosts, accept=None, user_agent=config.user_agent,
                   total_timeout_s=total)
    return parse_feed(result.content, feed, content_type=result.content_type)


def parse_feed(data: bytes, feed: FeedConfig, content_type: str = "") -> list[Candidate]:
    headers = {"content-type": content_type} if content_type else {}
    parsed = feedparser.parse(data, response_headers=headers)
    if parsed.bozo and not parsed.entries:
        reason = parsed.get("bozo_exception") or "not a feed"
        raise MalformedFeed(f"{feed.name}: {feed.url} is not a readable RSS/Atom feed ({reason})")
    items = []
    for entry in parsed.entries:
        link = (entry.get("link") or entry.get("id") or "").strip()
        title = " ".join((entry.get("title") or "").split())
        if not link.startswith(("http://", "https://")) or not title:
            continue
        items.append(Candidate(
            url=canonical_url(link), title=title, source=feed.name, sources=[feed.name], feed_url=feed.url,
            language=feed.language, published=_entry_time(entry), feed_summary=_plain_text(entry),
            bookmarks=_bookmarks(entry),
        ))
    return items


def _entry_time(entry: Any) -> dt.datetime | None:
    for field in ("published_parsed", "updated_parsed", "created_parsed"):
        stamp = entry.get(field)
        if stamp:
            try:  # feedparser normalizes every date format to a UTC struct_time
                return dt.datetime(*stamp[:6], tzinfo=dt.UTC)
            except (TypeError, ValueError):
                continue
    return None


def _bookmarks(entry: Any) -> int | None:
    value = entry.get("hatena_bookmarkcount")
    try:
        return int(str(value).strip()) if value not in (None, "") else None
    except ValueError:
        return None


def _plain_text(entry: Any) -> str:
    raw = entry.get("summary") or ""
    if "<" in raw:
        with contextlib.suppress(ValueError, TypeError, lxml_html.etree.ParserError):
            raw = lxml_html.fromstring(raw).text_content()
    return " ".join(raw.split())[:SUMMARY_CHARS]


def read_feeds_in_threads(feeds: list[FeedConfig], config: CollectConfig,
                          wait: FeedWaiter = wait_for_futures) -> list[FeedResult]:
    """Every feed at once (`collect.concurrency` at a time), one result per feed, in the show's order;
    a feed not in by the deadline is a failed feed (its thread is left to its own timeouts)."""
    ends_at = time.monotonic() + deadline_s(config)

    def one(feed: FeedConfig) -> FeedResult:
        left = ends_at - time.monotonic()
        try:
            return FeedResult(feed=feed.name, items=read_feed(feed, config, left))
        except FetchTimeout as exc:  # cut short by the deadline rather than by the feed's own timeout: late
            why = late_error(config) if left < config.timeout_s else _why(exc)
            return FeedResult(feed=feed.name, error=why)
        except Exception as exc:  # one bad feed never fails the run
            return FeedResult(feed=feed.name, error=_why(exc))

    pool = ThreadPoolExecutor(max_workers=min(config.concurrency, max(len(feeds), 1)),
                              thread_name_prefix="feed")
    try:
        futures = [pool.submit(one, feed) for feed in feeds]
        wait(futures, max(0.0, ends_at - time.monotonic()))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # never wait for a late feed
    return [future.result() if future.done() and not future.cancelled()
            else FeedResult(feed=feed.name, error=late_error(config))
            for feed, future in zip(feeds, futures, strict=True)]


@task(name="fetch-feed", retries=len(RETRY_DELAYS_S), retry_delay_seconds=list(RETRY_DELAYS_S),
      retry_jitter_factor=RETRY_JITTER, retry_condition_fn=retry_unless_permanent, cache_policy=NONE,
      persist_result=False, task_run_name="fetch-feed-{feed.name}")
def fetch_feed(feed: FeedConfig, config: CollectConfig, budget_s: float | None = None,
               run_key: str = "") -> list[Candidate]:
    """Prefect task: one feed, retried with backoff unless the failure is permanent or the retry would
    not finish within `budget_s` of the task's first attempt (the collect deadline; counted from the
    task's own start, so time spent waiting for the orchestrator is not the feed's)."""
    if budget_s is None:
        return read_feed(feed, config)
    with _started_lock:
        first_started = _started.setdefault((run_key, feed.name), time.time()) if run_key else time.time()
    ends_at = first_started + budget_s
    left = ends_at - time.time()
    if left <= 0:
        raise OutOfTime(f"{feed.url}: {late_error(config)}")
    try:
        return read_feed(feed, config, left)
    except FetchError as exc:
        if isinstance(exc, PermanentError):
            raise
        if isinstance(exc, FetchTimeout) and left < config.timeout_s:  # the deadline cut it short
            raise OutOfTime(f"{feed.url}: {late_error(config)}") from exc
        attempt = _attempt()
        if attempt > len(RETRY_DELAYS_S):
            raise
        retry_ends = time.time() + RETRY_DELAYS_S[attempt - 1] * (1 + RETRY_JITTER) + config.timeout_s
        if retry_ends > ends_at:  # a retry could only end at the deadline: the failure stands
            raise OutOfTime(f"{exc} (not retried: another attempt would not finish within the collect "
                            f"deadline of {budget_s:g} s)") from exc
        raise


_started: dict[tuple[str, str], float] = {}  # (collect run, feed) -> first attempt's start (retries share it)
_started_lock = threading.Lock()


def _attempt() -> int:
    """Which attempt of the running task this is (1 for the first)."""
    from prefect.context import TaskRunContext

    context = TaskRunContext.get()
    return max(1, context.task_run.run_count) if context and context.task_run else 1


def read_feeds_as_tasks(feeds: list[FeedConfig], config: CollectConfig) -> list[FeedResult]:
    """One `fetch_feed` task run per feed, submitted together; a failed run becomes a feed error. Each
    run ends within the collect deadline of its own start (see `fetch_feed`)."""
    run_key = uuid.uuid4().hex
    futures = [fetch_feed.submit(feed, config, deadline_s(config), run_key) for feed in feeds]
    results = []
    for feed, future in zip(feeds, futures, strict=True):
        try:
            results.append(FeedResult(feed=feed.name, items=future.result()))
        except Exception as exc:
            results.append(FeedResult(feed=feed.name, error=_why(exc)))
    with _started_lock:
        for feed in feeds:
            _started.pop((run_key, feed.name), None)
    return results


# ---- collection --------------------------------------------------------------------------------------

def collect_candidates(show: Show, day: dt.date, now: dt.datetime | None = None, *,
                       read_feeds: FeedReader | None = None) -> CandidateSnapshot:
    """The day's candidates with full text for the most promising ones (see the module docstring)."""
    now = now or dt.datetime.now(dt.UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)  # a naive time is taken as UTC
    config = show.collect
    start, end = window(day, show.show.timezone, show.schedule.cutoff, show.schedule.window_hours)
    logger = _logger()
    results = (read_feeds or read_feeds_in_threads)(show.feeds, config)
    if archives.window_passed(end, now):  # a past day: the live feeds moved on, read what the sources kept
        results += [FeedResult(feed=r.feed, items=r.items, error=r.error) for r in archives.read_archives(
            show.feeds, config, start, end, show.show.timezone, FEED_MAX_BYTES)]

    seen_path = Environment().home / "seen" / f"{show.show.id}.json"
    seen = load_seen(seen_path)
    seen_before = dict(seen)
    feed_errors: dict[str, str] = {}
    kept: list[Candidate] = []
    feeds_by_name = {feed.name: feed for feed in show.feeds}
    for result in results:
        if result.error:
            feed_errors[result.feed] = result.error
            logger.warning("feed %s: skipped: %s", result.feed, result.error)
            continue
        if not result.items:
            feed_errors[result.feed] = "the feed has no items"
            logger.warning("feed %s: skipped: no items", result.feed)
            continue
        feed = feeds_by_name[result.feed]
        feed_kept = [item for item in result.items
                     if _in_window(item, seen, now, start, end) and _on_topic(item, feed)]
        kept.extend(feed_kept)
        logger.info("feed %s: %d items, %d kept", result.feed, len(result.items), len(feed_kept))
    if seen != seen_before:
        save_seen(seen_path, seen, now)

    candidates = merge_same_stories(kept, show)
    candidates.sort(key=lambda c: (-score_parts(c, show, start, end)["score"], c.url))
    fetched = extract_pages(candidates[: config.max_pages], config)
    # pages may have redirected two links to one article: merge by (final) URL once more
    candidates = merge_same_stories(fetched + candidates[config.max_pages:], show, by_title=False)
    if len(candidates) < config.min_candidates:
        raise NotEnoughCandidates(not_enough_message(show, len(candidates), start, end, feed_errors))
    with_text = sum(1 for c in candidates if c.text and not c.extraction_error)
    logger.info("%d candidates from %d feeds (%d failed), full text for %d", len(candidates), len(results),
                len(feed_errors), with_text)
    return CandidateSnapshot(date=day, show=show.show.id, collected_at=now, candidates=candidates,
                             feed_errors=feed_errors)


def not_enough_message(show: Show, found: int, start: dt.datetime, end: dt.datetime,
                       feed_errors: dict[str, str]) -> str:
    failures = "; ".join(f"{name}: {why}" for name, why in feed_errors.items()) or "none"
    return (f"only {found} candidate article(s) for {show.show.id} between {start.isoformat()} and "
            f"{end.isoformat()}, need collect.min_candidates = {show.collect.min_candidates}. "
            f"Feeds that failed ({len({name.removesuffix(' (archive)') for name in feed_errors})} of "
            f"{len(show.feeds)}): {failures}. "
            "Check the feed URLs in the show file, add feeds, or lower collect.min_candidates.")


def _in_window(item: Candidate, seen: dict[str, str], now: dt.datetime, start: dt.datetime,
               end: dt.datetime) -> bool:
    if item.published is not None:
        return start <= item.published < end
    first_seen = dt.datetime.fromisoformat(seen.setdefault(item.url, now.isoformat()))
    item.first_seen = first_seen
    return start <= first_seen < end + LATE_GRACE


def _on_topic(item: Candidate, feed: FeedConfig) -> bool:
    if not feed.topics:
        return True
    text = f"{item.title}\n{item.feed_summary}"
    return any(topic_pattern(topic).search(text) for topic in feed.topics)


# ---- pages -------------------------------------------------------------------------------------------

def extract_pages(candidates: list[Candidate], config: CollectConfig) -> list[Candidate]:
    """Fetch and extract each candidate's page, `collect.concurrency` at a time, in the given order."""
    if not candidates:
        return []
    with ThreadPoolExecutor(max_workers=min(config.concurrency, len(candidates))) as pool:
        return list(pool.map(lambda c: extract_article(c, config), candidates))


def extract_article(candidate: Candidate, config: CollectConfig) -> Candidate:
    """The candidate with its page's main text and metadata, or with `extraction_error` saying why not."""
    try:
        page = fetch(candidate.url, timeout_s=config.timeout_s, max_bytes=config.max_bytes,
                     allow_hosts=config.allow_hosts, accept=HTML_TYPES, user_agent=config.user_agent)
    except FetchError as exc:
        return candidate.model_copy(update={"extraction_error": f"page not fetched: {exc}"})
    update: dict[str, Any] = {"url": canonical_url(page.final_url)}
    try:
        article = extraction.extract_article(page.text if page.charset else page.content, page.final_url,
                                             candidate.title)
    except Exception as exc:  # trafilatura on hostile HTML: a page problem, not a run problem
        return candidate.model_copy(update={**update, "extraction_error": f"extraction failed: {exc!r}"})
    if article is None:
        return candidate.model_copy(update={**update, "extraction_error": "no main text found on the page"})
    measured = readability.assess(article.text, config.min_text_chars)
    update.update({
        # an unreadable text is kept only as a sample, for the record (it may be megabytes of one character)
        "text": article.text if measured.readable else article.text[:UNREADABLE_SAMPLE_CHARS],
        "title": candidate.title or article.title,
        "author": article.author or candidate.author,
        "site_name": article.sitename or candidate.site_name,
        "language": article.language or candidate.language,
    })
    if candidate.published is None and article.date:
        update["published"] = _page_date(article.date, candidate.first_seen)
    if not measured.readable:
        update["extraction_error"] = f"not readable prose: {measured.reason}"
    if page.truncated:
        log.info("%s: page larger than %d bytes, extracted from the first part", page.final_url,
                 config.max_bytes)
    return candidate.model_copy(update=update)


def _page_date(value: str, fallback: dt.datetime | None) -> dt.datetime | None:
    try:
        day = dt.date.fromisoformat(value[:10])
    except ValueError:
        return fallback
    return dt.datetime.combine(day, dt.time(0, 0), tzinfo=dt.UTC)


# ---- first-seen memory -------------------------------------------------------------------------------

def load_seen(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def save_seen(path: Path, seen: dict[str, str], now: dt.datetime) -> None:
    """Write atomically, dropping entries older than `SEEN_KEEP`."""
    oldest = now - SEEN_KEEP
    fresh = {}
    for url, stamp in seen.items():
        try:
            if dt.datetime.fromisoformat(stamp) >= oldest:
                fresh[url] = stamp
        except ValueError:
            continue
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".seen-", suffix=".json")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        json.dump(fresh, out, ensure_ascii=False, indent=0, sort_keys=True)
    os.replace(temp, path)


# ---- snapshot and the Prefect task -------------------------------------------------------------------

def snapshot_key(day: dt.date) -> str:
    return f"{day.isoformat()}/candidates.json"


def load_or_collect(show: Show, day: dt.date, store: Store, refresh: bool = False,
                    now: dt.datetime | None = None,
                    read_feeds: FeedReader | None = None) -> CandidateSnapshot:
    """The stored snapshot of `day` unless `refresh`; else collect now and store the snapshot."""
    logger = _logger()
    key = snapshot_key(day)
    if not refresh:
        stored = read_snapshot(store, key)
        if stored is not None and stored.show == show.show.id and stored.date == day:
            where = store.describe(key) if hasattr(store, "describe") else key
            logger.info("reusing the candidates collected at %s (%s); refresh collect to collect again",
                        stored.collected_at.isoformat(), where)
            return stored
    snapshot = collect_candidates(show, day, now, read_feeds=read_feeds)
    store.put(key, snapshot.model_dump_json(indent=1).encode("utf-8"), "application/json")
    return snapshot


def read_snapshot(store: Store, key: str) -> CandidateSnapshot | None:
    data = store.get(key)
    if data is None:
        return None
    try:
        return CandidateSnapshot.model_validate_json(data)
    except ValidationError as exc:
        _logger().warning("ignoring the unreadable snapshot %s: %s", key, exc.errors()[0].get("msg", exc))
        return None


@task(name="collect", **stage_options(retries=2, cache=(INPUTS - "refresh") + TASK_SOURCE))
def collect(show: Show, day: dt.date, store_url: str, refresh: bool = False) -> CandidateSnapshot:
    """Prefect task: the day's snapshot from the store, or collected now (one `fetch-feed` run per feed)."""
    started = time.perf_counter()
    store = open_store(store_url)
    snapshot = load_or_collect(show, day, store, refresh=refresh, read_feeds=read_feeds_as_tasks)
    _logger().info("collect: %d candidates in %.2f s", len(snapshot.candidates),
                   time.perf_counter() - started)
    return snapshot


def _why(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, FetchError | PermanentError) else f"{type(exc).__name__}: {text}"


def _logger() -> Any:
    """Prefect's run logger inside a flow or task run, the module's logger otherwise."""
    from prefect.context import FlowRunContext, TaskRunContext

    if TaskRunContext.get() or FlowRunContext.get():
        from prefect import get_run_logger

        return get_run_logger()
    return log
