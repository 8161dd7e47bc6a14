"""Stage 6, upload: publish the episode to the store, then the index, the feed and the show page.

Order matters: the episode's own files first, then the cover, then `episodes.json` (merged by
compare-and-swap, see `zundacast.publishing.index`), then `feed.xml` and `index.html` derived from
the index that was written. The feed therefore never points at a missing file, and a failure
anywhere before feed.xml leaves the previous feed as it was; a rerun completes it (every write
replaces its key whole, so reruns are idempotent). Runs of other dates may publish at the same time.
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
    FEED_KEY,
    SHOW_PAGE_KEY,
    build_record,
    episode_keys,
    first_published_at,
)
from zundacast.publishing.feed import episode_guid, episode_mp3_key, podcast_guid, render_feed
from zundacast.publishing.formats import render_chapters_json, render_vtt
from zundacast.publishing.index import (
    EPISODES_KEY,
    ShowIndex,
    merge_record,
    read_index,
    render_index,
    update_index,
    write_derived,
)
from zundacast.show import Environment, Show
from zundacast.stage import stage_options
from zundacast.storage import Store, StoreError, open_store
from zundacast.storage.work import fetch_work_file

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


def local_bundle(bundle: AudioBundle, store: Store) -> AudioBundle:
    """The bundle with its MP3 on this machine: the local file when intact (a local run, as fast as
    ever), else the copy synthesis left in the store's work area, fetched and checked (a rerun of
    upload on another worker)."""
    try:
        check_bundle(bundle)
        return bundle
    except BundleMismatch:
        if not bundle.work_key:
            raise
    fetched = Environment().home / "work" / "fetched" / f"episode-{bundle.sha256[:12]}.mp3"
    try:
        path = fetch_work_file(store, bundle.work_key, bundle.sha256, bundle.size_bytes, fetched)
    except StoreError as exc:
        raise BundleMismatch(f"{exc}: rerun with `--refresh synthesize` to render it again") from exc
    if path is None:
        raise BundleMismatch(
            f"the episode MP3 is neither at {bundle.mp3_path} on this machine nor in the store's work area "
            f"({store.describe(bundle.work_key)}): rerun with `--refresh synthesize` to render it again")
    run_logger().info("episode MP3 fetched from %s (not on this machine)", store.describe(bundle.work_key))
    return bundle.model_copy(update={"mp3_path": str(path)})


def read_history(
    store: Store, before: dt.date | None = None, limit: int | None = None
) -> list[EpisodeRecord]:
    """Published episodes, newest first (for ranking: what was already covered).

    `before` keeps only earlier dates and `limit` the newest few of them: pass the episode's date and
    `show.rank.history_episodes`, so rank's cache key changes only with the history it reads (not when
    this date itself, or a later one, is published).
    """
    records = read_index(store)[0].episodes
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


def _text(key: str, body: str, content_type: str) -> PlannedWrite:
    return PlannedWrite(key=key, data=body.encode("utf-8"), content_type=content_type)


def plan_episode_files(
    bundle: AudioBundle, script: Script, ranking: Ranking, summaries: list[Summary], show: Show, store: Store
) -> tuple[EpisodeRecord, list[PlannedWrite], ShowIndex]:
    """The episode's record and its own files (and the cover), rendered before the first write."""
    bundle = local_bundle(bundle, store)
    day = script.date
    index, _ = read_index(store)  # a broken index stops us here, before anything is written
    previous = next((record for record in index.episodes if record.date == day), None)
    pages = pages_module()
    if pages is None:
        # TODO(lead): zundacast/publishing/pages.py is not there yet; episode and show pages are skipped
        run_logger().warning("%s not found: publishing without HTML pages", PAGES_MODULE)
    files = {**episode_keys(day), "mp3": episode_mp3_key(show.show.id, day)}
    if pages is None:
        files.pop("page")
    published_at = previous.published_at if previous else first_published_at(show, day)
    record = build_record(bundle, script, ranking, summaries, show, files, published_at=published_at)
    record = record.model_copy(update={"quality": script.quality})  # the editorial gate's figures

    plan = [
        PlannedWrite(
            key=files["mp3"], path=bundle.mp3_path, content_type=TYPES["mp3"], cache_control=IMMUTABLE_CACHE
        ),
        _text(files["vtt"], render_vtt(bundle.cues, speaker=show.show.host), TYPES["vtt"]),
        _text(
            files["chapters"],
            render_chapters_json(bundle.chapters, record.title, show.show.title),
            TYPES["json"],
        ),
    ]
    if pages is not None:
        plan.append(
            _text(files["page"], pages.render_episode_page(show.show, record, bundle.cues), TYPES["html"])
        )
    # what every file's bytes hash to, so a later run can tell the store still holds this episode
    roles = {write.key: role for role, write_key in files.items() for write in plan if write.key == write_key}
    hashes = {roles[write.key]: hashlib.sha256(write.body()).hexdigest() for write in plan if write.data}
    hashes["mp3"] = bundle.sha256
    record = record.model_copy(update={"file_sha256": dict(sorted(hashes.items()))})
    plan.insert(3, _text(files["episode"], record.model_dump_json(indent=1) + "\n", TYPES["json"]))
    cover = cover_file(show)
    if cover is not None:
        image = cover.read_bytes()
        if store.get(COVER_KEY) != image:
            plan.append(PlannedWrite(key=COVER_KEY, data=image, content_type=image_type(image, cover)))
    return record, plan, index


def with_episode(index: ShowIndex, record: EpisodeRecord, show: Show, feed_url: str) -> ShowIndex:
    """`index` with `record` merged in and the podcast guid fixed (the first publish sets it for good)."""
    guid = index.podcast_guid or show.show.podcast_guid or podcast_guid(feed_url)
    return index.model_copy(update={"podcast_guid": guid, "episodes": merge_record(index.episodes, record)})


def plan_derived(index: ShowIndex, show: Show, store: Store, cover_key: str | None) -> list[PlannedWrite]:
    """feed.xml and the show page, made from the index alone."""

    def url_for(key: str) -> str:
        return store.public_url(key, show.show.base_url)

    # the show file's explicit podcast_guid wins; else the one the index has kept since the first publish
    info = show.show
    if not info.podcast_guid:
        info = info.model_copy(update={"podcast_guid": index.podcast_guid})
    feed = render_feed(info, index.episodes, url_for(FEED_KEY), url_for, cover_key=cover_key)
    plan = [_text(FEED_KEY, feed, TYPES["rss"])]
    pages = pages_module()
    if pages is not None:
        plan.append(_text(SHOW_PAGE_KEY, pages.render_show_page(show.show, index.episodes), TYPES["html"]))
    return plan


def put_all(store: Store, plan: list[PlannedWrite], secrets: dict[str, str]) -> None:
    for write in plan:  # every object is checked before the first is written
        check_no_secrets(write.body(), store.describe(write.key), secrets)
    logger = run_logger()
    for write in plan:
        if write.data is not None:
            store.put(write.key, write.data, write.content_type, write.cache_control)
        else:
            store.put_file(write.key, write.path, write.content_type, write.cache_control)
        logger.info("published %s", store.describe(write.key))


def publish_episode(
    bundle: AudioBundle, script: Script, ranking: Ranking, summaries: list[Summary], show: Show, store: Store
) -> PublishResult:
    """Publish one date's episode, merge it into the index (compare-and-swap) and derive the feed and
    show page from the index that was written. Safe to rerun, and to run alongside runs of other dates."""
    record, plan, index = plan_episode_files(bundle, script, ranking, summaries, show, store)
    files = record.files
    feed_url = store.public_url(FEED_KEY, show.show.base_url)
    has_cover = cover_file(show) is not None or store.get(COVER_KEY) is not None
    cover_key = COVER_KEY if has_cover else None
    secrets = secret_values()
    # everything this run would publish, checked for secrets before the first write
    preview = with_episode(index, record, show, feed_url)
    preview_writes = [_text(EPISODES_KEY, render_index(preview), TYPES["json"])]
    for write in preview_writes + plan_derived(preview, show, store, cover_key):
        check_no_secrets(write.body(), store.describe(write.key), secrets)

    put_all(store, plan, secrets)  # 1. the episode's own files (and the cover): all the feed points at
    written, version = update_index(store, lambda newest: with_episode(newest, record, show, feed_url))
    run_logger().info("published %s (%d episodes)", store.describe(EPISODES_KEY), len(written.episodes))
    derived = plan_derived(written, show, store, cover_key)

    def write_feed_and_page(newest: ShowIndex) -> None:
        put_all(store, plan_derived(newest, show, store, cover_key), secrets)

    write_derived(store, written, version, write_feed_and_page)
    return PublishResult(
        episode_key=store.describe(files["episode"]),  # a path or s3:// URL, for the run summary
        episode_url=store.public_url(files["mp3"], show.show.base_url),
        feed_url=feed_url,
        page_url=store.public_url(files["page"], show.show.base_url) if "page" in files else "",
        written_keys=[write.key for write in plan] + [EPISODES_KEY] + [write.key for write in derived],
    )


def published_state(store: Store, day: dt.date, mp3_sha256: str, show_id: str) -> str:
    """Why the store does not hold this date's episode as published ("" when it does, intact).

    The date must be in the index with this render of the MP3, and every file its entry names must be
    there with the SHA-256 the entry records; the feed must list it.
    """
    index, _ = read_index(store)
    entry = next((record for record in index.episodes if record.date == day), None)
    where = store.describe(EPISODES_KEY)
    if entry is None:
        return f"{day.isoformat()} is not in {where}"
    if entry.sha256 != mp3_sha256:
        return f"{where} lists another render of {day.isoformat()}"
    if not entry.file_sha256:
        return f"{where} records no SHA-256 of {day.isoformat()}'s files (published by an older zundacast)"
    for role, key in entry.files.items():
        if role == "episode":
            data = store.get(key)
            if data is None or data.strip() != entry.model_dump_json(indent=1).encode("utf-8"):
                return f"{store.describe(key)} is missing or differs from its entry in {where}"
            continue
        found = store.sha256(key)
        if found is None:
            return f"{store.describe(key)} is missing"
        if found != entry.file_sha256.get(role):
            return f"{store.describe(key)} differs from the SHA-256 recorded in {where}"
    feed = store.get(FEED_KEY)
    if feed is None or episode_guid(show_id, day).encode("utf-8") not in feed:
        return f"{store.describe(FEED_KEY)} does not list {day.isoformat()}"
    return ""


def upload_staleness(
    bundle: AudioBundle,
    script: Script,
    ranking: Ranking,
    summaries: list[Summary],
    show: Show,
    store_url: str,
) -> str:
    """The flow's probe before it trusts upload's cache (same arguments as the task): "" = trust it."""
    return published_state(open_store(store_url), script.date, bundle.sha256, show.show.id)


# Cached like every stage (a rerun with the same episode writes nothing). The cache key does not see the
# store: the flow asks `upload_staleness` first and refreshes this stage when the store lost the episode
# (a probe, not a cache-key part: a key that included the store's state would differ between the run that
# publishes and the next one, so the next run would publish again instead of hitting the cache). The key
# does not see the feed/page renderers' code either: after changing those, rerun with `--refresh upload`.
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
