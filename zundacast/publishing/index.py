"""`episodes.json`, the show's database: read it with its version, change it by compare-and-swap.

The index is a JSON object: the show's `podcast_guid` (fixed at the first publish) and every
published episode, newest first, one per date. Any number of runs, for any dates, started in any
way, may publish into one store at once; none loses another's entry, because every change is

    read (bytes + version) -> merge one entry -> write only if the version is still the one read

(`Store.put_if`: S3 `If-Match`/`If-None-Match`, a locked compare in a folder), retried on conflict.
The files derived from the index (feed.xml, the show page) are written after it and re-derived
until the index they came from is still the newest, so the last feed written lists every date.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable

from pydantic import BaseModel, Field, ValidationError

from zundacast.errors import PermanentError
from zundacast.models import EpisodeRecord
from zundacast.storage import Store, StoreError, VersionConflict

EPISODES_KEY = "episodes.json"
INDEX_TYPE = "application/json; charset=utf-8"
INDEX_CACHE = "public, max-age=300"
MAX_ATTEMPTS = 50  # conflicts only come from other runs' index writes: each retry sees one more entry
DERIVE_ROUNDS = 20


class CatalogError(PermanentError):
    """episodes.json exists but cannot be read: publishing over it would lose the other episodes."""


class IndexBusy(StoreError):
    """The index kept changing under us for MAX_ATTEMPTS tries (a retry of the stage usually gets through)."""


class ShowIndex(BaseModel):
    podcast_guid: str = ""  # Podcasting 2.0 channel guid, kept from the first publish on
    episodes: list[EpisodeRecord] = Field(default_factory=list)


def sorted_records(records: list[EpisodeRecord]) -> list[EpisodeRecord]:
    return sorted(records, key=lambda record: record.date, reverse=True)


def merge_record(records: list[EpisodeRecord], record: EpisodeRecord) -> list[EpisodeRecord]:
    """The index with `record` in place of any entry of its date; other dates stay as they were."""
    return sorted_records([*(r for r in records if r.date != record.date), record])


def parse_index(data: bytes, where: str = EPISODES_KEY) -> ShowIndex:
    """The index from its JSON; a plain list of records (the format before podcast_guid) reads too."""
    try:
        raw = json.loads(data)
        index = ShowIndex(episodes=raw) if isinstance(raw, list) else ShowIndex.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise CatalogError(
            f"{where} is not a valid episode index ({exc.error_count()} problem(s), first: {first['msg']} "
            f"at {'.'.join(str(p) for p in first['loc'])}); restore it from a backup or "
            f"the episodes' own {{date}}/episode.json files, or delete it to start a new index"
        ) from None
    except ValueError as exc:  # not JSON at all (JSONDecodeError, bad UTF-8)
        raise CatalogError(
            f"{where} is not JSON ({exc}); restore it from a backup or the episodes' own "
            f"{{date}}/episode.json files, or delete it to start a new index"
        ) from None
    return index.model_copy(update={"episodes": sorted_records(index.episodes)})


def render_index(index: ShowIndex) -> str:
    payload = {
        "podcast_guid": index.podcast_guid,
        "episodes": [record.model_dump(mode="json") for record in sorted_records(index.episodes)],
    }
    return json.dumps(payload, ensure_ascii=False, indent=1) + "\n"


def read_index(store: Store) -> tuple[ShowIndex, str | None]:
    """The index and its version (None: there is no index yet, and the index is empty)."""
    data, version = store.get_versioned(EPISODES_KEY)
    if data is None:
        return ShowIndex(), None
    return parse_index(data, store.describe(EPISODES_KEY)), version


def update_index(
    store: Store,
    change: Callable[[ShowIndex], ShowIndex],
    sleep: Callable[[float], None] = time.sleep,
    attempts: int = MAX_ATTEMPTS,
) -> tuple[ShowIndex, str | None]:
    """Apply `change` to the newest index and write it with compare-and-swap; returns what was written.

    `change` is applied again to the index as re-read after every conflict, so it must be a merge
    (put one entry in place), never a replacement of the whole list.
    """
    for attempt in range(attempts):
        index, version = read_index(store)
        updated = change(index)
        if updated == index and version is not None:
            return index, version  # already there (a rerun, or our own write retried by the client)
        try:
            return updated, store.put_if(EPISODES_KEY, render_index(updated).encode("utf-8"), INDEX_TYPE,
                                         expected=version, cache_control=INDEX_CACHE)
        except VersionConflict:
            sleep(random.uniform(0.0, min(2.0, 0.05 * 2**attempt)))  # jitter: racing runs spread out
    raise IndexBusy(
        f"{store.describe(EPISODES_KEY)} changed under this run {attempts} times in a row "
        f"(many runs publishing at once?); the upload stage retries, or rerun the date"
    )


def write_derived(
    store: Store,
    index: ShowIndex,
    version: str | None,
    write: Callable[[ShowIndex], None],
    rounds: int = DERIVE_ROUNDS,
) -> ShowIndex:
    """Write the files derived from `index` (feed, pages) until the index they came from is the newest.

    Another run may write the index between our index write and our feed write, and its feed may land
    before ours: so after writing, look at the index's version again and, if it moved, derive again.
    Whichever run writes last has then seen the final index. Returns the index last derived from.
    """
    for _ in range(rounds):
        write(index)
        newest, newest_version = read_index(store)
        if newest_version == version:
            return index
        index, version = newest, newest_version
    raise IndexBusy(
        f"{store.describe(EPISODES_KEY)} kept changing while this run wrote the feed ({rounds} rounds); "
        f"the last run to finish writes the complete feed, or rerun the date"
    )
