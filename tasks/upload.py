"""Stage 6, upload: publish the episode to the store, then the index, the feed and the show page.

Order matters: the episode's own files first, then the cover, then `episodes.json`, then
`feed.xml`, then `index.html`. The feed therefore never points at a missing file, and a
failure anywhere before feed.xml leaves the previous feed as it was; a rerun completes it
(every write replaces its key whole, so reruns are idempotent).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import importlib.util
import logging
from pathlib import Path
from types import ModuleType

from prefect import get_run_logger, task
from prefect.exceptions import MissingContextError
from pydantic import BaseModel

import zundacast
from zundacast.errors import PermanentError
from zundacast.models import AudioBundle, EpisodeRecord, PublishResult, Ranking, Script, Summary
from zundacast.publishing import check_no_secrets, secret_values
from zundacast.publishing.catalog import (
    COVER_KEY,
    EPISODES_KEY,
    FEED_KEY,
    SHOW_PAGE_KEY,
    build_record,
    episode_keys,
    first_published_at,
    merge_record,
    read_catalog,
    render_catalog,
)
from zundacast.publishing.feed import render_feed
from zundacast.publishing.formats import render_chapters_json, render_vtt
from zundacast.show import Show
from zundacast.stage import stage_options
from zundacast.storage import Store, open_store

SHORT_CACHE = "public, max-age=300"  # feed, index, pages: listeners see a new episode within minutes
IMMUTABLE_CACHE = "public, max-age=31536000, immutable"  # the MP3: one render per date, versioned in the feed
BUNDLED_COVER = Path(zundacast.__file__).resolve().parent / "assets" / "cover.png"
PAGES_MODULE = "zundacast.publishing.pages"

TYPES = {
    "mp3": "audio/mpeg",
    "vtt": "text/vtt; charset=utf-8",
    "json": "application/json; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "rss": "application/rss+xml; charset=utf-8",
}

log = logging.getLogger(__name__)


def run_logger() -> logging.Logger | logging.LoggerAdapter:
    """Prefect's run logger inside a flow or task run (so the UI shows it), the module's logger elsewhere."""
    try:
        return get_run_logger()
    except MissingContextError:
        return log


class BundleMismatch(PermanentError):
    """The synthesized MP3 is gone or changed since synthesis."""


def check_bundle(bundle: AudioBundle) -> None:
    """The MP3 the bundle names exists, with the size and SHA-256 synthesis recorded."""
    path = Path(bundle.mp3_path)
    fix = "rerun with `--refresh synthesize` to render it again"
    if not path.is_file():
        raise BundleMismatch(f"the episode MP3 {path} does not exist (work files were cleaned?): {fix}")
    digest = hashlib.sha256()
    with path.open("rb") as src:
        for block in iter(lambda: src.read(1024 * 1024), b""):
            digest.update(block)
    if digest.hexdigest() != bundle.sha256 or path.stat().st_size != bundle.size_bytes:
        raise BundleMismatch(
            f"the episode MP3 {path} changed since it was synthesized (SHA-256 or size differs): {fix}"
        )


def read_history(
    store: Store, before: dt.date | None = None, limit: int | None = None
) -> list[EpisodeRecord]:
    """Published episodes, newest first (for ranking: what was already covered).

    `before` keeps only earlier dates and `limit` the newest few of them: pass the episode's date and
    `show.rank.history_episodes`, so rank's cache key changes only with the history it reads (not when
    this date itself, or a later one, is published).
    """
    records = read_catalog(store)
    if before is not None:
        records = [record for record in records if record.date < before]
    return records[:limit] if limit is not None else records


def pages_module() -> ModuleType | None:
    """The HTML pages renderer, when it exists (its own import errors are not hidden)."""
    if importlib.util.find_spec(PAGES_MODULE) is None:
        return None
    return importlib.import_module(PAGES_MODULE)


def cover_file(show: Show) -> Path | None:
    """The show's cover: its own (relative to the show file) or the bundled one; None when neither exists."""
    if show.show.cover:
        path = Path(show.show.cover).expanduser()
        if not path.is_absolute() and show.source_path:
            path = Path(show.source_path).resolve().parent / path
        if not path.is_file():
            where = show.source_path or "the show file"
            raise PermanentError(
                f"show.cover: {path} does not exist (fix the path in {where}, "
                f"or remove it to use the bundled cover)"
            )
        return path
    return BUNDLED_COVER if BUNDLED_COVER.is_file() else None


def image_type(data: bytes, where: Path) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    raise PermanentError(f"cover {where} is neither PNG nor JPEG (podcast apps accept only those)")


class PlannedWrite(BaseModel):
    """One object to write: bytes or a local file, with its headers."""

    key: str
    content_type: str
    cache_control: str = SHORT_CACHE
    data: bytes | None = None
    path: str = ""

    def body(self) -> bytes:
        return self.data if self.data is not None else Path(self.path).read_bytes()


def plan_publication(
    bundle: AudioBundle, script: Script, ranking: Ranking, summaries: list[Summary], show: Show, store: Store
) -> tuple[list[PlannedWrite], PublishResult]:
    """Everything to write, in write order, rendered before the first write (so nothing half-renders)."""
    check_bundle(bundle)
    day = script.date
    history = read_catalog(store)  # a broken index stops us here, before anything is written
    previous = next((record for record in history if record.date == day), None)
    pages = pages_module()
    if pages is None:
        # TODO(lead): zundacast/publishing/pages.py is not there yet; episode and show pages are skipped
        run_logger().warning("%s not found: publishing without HTML pages", PAGES_MODULE)
    files = episode_keys(day)
    if pages is None:
        files.pop("page")
    published_at = previous.published_at if previous else first_published_at(show, day)
    record = build_record(bundle, script, ranking, summaries, show, files, published_at=published_at)
    record = record.model_copy(update={"quality": script.quality})  # the editorial gate's figures
    catalog = merge_record(history, record)

    def url_for(key: str) -> str:
        return store.public_url(key, show.show.base_url)

    def text(key: str, body: str, content_type: str) -> PlannedWrite:
        return PlannedWrite(key=key, data=body.encode("utf-8"), content_type=content_type)

    # 1. the episode's own files: everything the feed item will point at
    plan = [
        PlannedWrite(
            key=files["mp3"], path=bundle.mp3_path, content_type=TYPES["mp3"], cache_control=IMMUTABLE_CACHE
        ),
        text(files["vtt"], render_vtt(bundle.cues), TYPES["vtt"]),
        text(
            files["chapters"],
            render_chapters_json(bundle.chapters, record.title, show.show.title),
            TYPES["json"],
        ),
        text(files["episode"], record.model_dump_json(indent=1) + "\n", TYPES["json"]),
    ]
    if pages is not None:
        plan.append(
            text(files["page"], pages.render_episode_page(show.show, record, bundle.cues), TYPES["html"])
        )
    # 2. the cover, only when new or changed
    cover_key: str | None = None
    cover = cover_file(show)
    if cover is not None:
        image = cover.read_bytes()
        if store.get(COVER_KEY) != image:
            plan.append(PlannedWrite(key=COVER_KEY, data=image, content_type=image_type(image, cover)))
        cover_key = COVER_KEY
    elif store.get(COVER_KEY) is not None:
        cover_key = COVER_KEY
    # 3. the index, 4. the feed, 5. the show page
    feed_url = url_for(FEED_KEY)
    plan.append(text(EPISODES_KEY, render_catalog(catalog), TYPES["json"]))
    plan.append(
        text(FEED_KEY, render_feed(show.show, catalog, feed_url, url_for, cover_key=cover_key), TYPES["rss"])
    )
    if pages is not None:
        plan.append(text(SHOW_PAGE_KEY, pages.render_show_page(show.show, catalog), TYPES["html"]))
    result = PublishResult(
        episode_key=store.describe(files["episode"]),  # a path or s3:// URL, for the run summary
        episode_url=url_for(files["mp3"]),
        feed_url=feed_url,
        page_url=url_for(files["page"]) if "page" in files else "",
        written_keys=[write.key for write in plan],
    )
    return plan, result


def publish_episode(
    bundle: AudioBundle, script: Script, ranking: Ranking, summaries: list[Summary], show: Show, store: Store
) -> PublishResult:
    """Publish one date's episode and refresh the index, feed and show page. Safe to rerun."""
    plan, result = plan_publication(bundle, script, ranking, summaries, show, store)
    secrets = secret_values()
    logger = run_logger()
    for write in plan:  # every object is checked before the first is written
        check_no_secrets(write.body(), store.describe(write.key), secrets)
    for write in plan:
        if write.data is not None:
            store.put(write.key, write.data, write.content_type, write.cache_control)
        else:
            store.put_file(write.key, write.path, write.content_type, write.cache_control)
        logger.info("published %s", store.describe(write.key))
    return result


# Cached like every stage (a rerun with the same episode writes nothing). The cache key does not see the
# store's contents or the feed/page renderers' code: after changing those, rerun with `--refresh upload`.
@task(name="upload", **stage_options(retries=3))
def upload(
    bundle: AudioBundle,
    script: Script,
    ranking: Ranking,
    summaries: list[Summary],
    show: Show,
    store_url: str,
) -> PublishResult:
    return publish_episode(bundle, script, ranking, summaries, show, open_store(store_url))
