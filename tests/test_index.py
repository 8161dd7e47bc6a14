"""The index as a database: concurrent runs of many dates lose nothing, and a lost date is republished.

Concurrency here is real: threads (and processes) publishing through `publish_episode` into one
folder or one bucket of moto's S3 over HTTP. Interleavings the scheduler would hit only by luck are
forced with a store wrapper that runs another publish at the exact moment in between.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import feedparser
import pytest
from prefect import flow

from tasks.upload import published_state, upload, upload_staleness
from tests.fakes.s3 import FakeS3, running_s3
from tests.test_upload import publish, sample_inputs, sample_show
from tests.together import READY_THEN_WAIT, run_together
from zundacast.models import EpisodeRecord
from zundacast.publishing.feed import PODCAST, episode_guid, podcast_guid
from zundacast.publishing.index import (
    EPISODES_KEY,
    ShowIndex,
    parse_index,
    read_index,
    render_index,
    update_index,
)
from zundacast.runner import StageRunner
from zundacast.storage import Store, VersionConflict, open_store

FIRST = dt.date(2025, 7, 1)
N_DATES = 6
REPO = Path(__file__).resolve().parent.parent


def dates(n: int = N_DATES) -> list[dt.date]:
    return [FIRST + dt.timedelta(days=i) for i in range(n)]


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeS3]:
    with running_s3(monkeypatch) as fake:
        yield fake


def listed_dates(store: Store) -> tuple[list[dt.date], list[str]]:
    """The dates episodes.json lists and the item guids feed.xml lists (both newest first)."""
    index = parse_index(store.get(EPISODES_KEY) or b"")
    feed = feedparser.parse(store.get("feed.xml"))
    assert not feed.bozo, feed.bozo_exception
    return [record.date for record in index.episodes], [entry.id for entry in feed.entries]


def publish_concurrently(store_url: str, days: list[dt.date], work: Path) -> None:
    """One thread per date, all released at once, each with its own store client (as separate runs have)."""
    inputs = {day: sample_inputs(day, work / day.isoformat()) for day in days}  # MP3s made before the race
    start = threading.Barrier(len(days))
    errors: list[BaseException] = []

    def run(day: dt.date) -> None:
        try:
            from tasks.upload import publish_episode

            store = open_store(store_url)
            start.wait()
            publish_episode(*inputs[day], sample_show(), store)
        except BaseException as exc:  # reported below, with the date
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(day,)) for day in days]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors


def assert_all_listed(store: Store, days: list[dt.date]) -> None:
    newest_first = sorted(days, reverse=True)
    index_dates, feed_guids = listed_dates(store)
    assert index_dates == newest_first
    assert feed_guids == [episode_guid("zundamon-test", day) for day in newest_first]
    for day in days:
        assert published_state(store, day, read_record(store, day).sha256, "zundamon-test") == ""


def read_record(store: Store, day: dt.date) -> EpisodeRecord:
    return next(record for record in read_index(store)[0].episodes if record.date == day)


# --- many runs, many dates, one store ---------------------------------------------------------------------


def test_concurrent_runs_of_many_dates_into_one_folder_all_stay_listed(tmp_path: Path) -> None:
    store_url = str(tmp_path / "public")
    publish_concurrently(store_url, dates(), tmp_path / "work")
    assert_all_listed(open_store(store_url), dates())


def test_concurrent_runs_of_many_dates_into_one_bucket_all_stay_listed(s3: FakeS3, tmp_path: Path) -> None:
    publish_concurrently(s3.url, dates(), tmp_path / "work")
    assert_all_listed(open_store(s3.url), dates())


PUBLISH_ONE = """
import datetime as dt, sys
from pathlib import Path
from tasks.upload import publish_episode
from tests.test_upload import sample_inputs, sample_show
from zundacast.storage import open_store
day = dt.date.fromisoformat(sys.argv[1])
inputs = sample_inputs(day, Path(sys.argv[3]))
""" + READY_THEN_WAIT + """  # the test starts every process's publish at once
publish_episode(*inputs, sample_show(), open_store(sys.argv[2]))
"""


def test_concurrent_processes_of_many_dates_into_one_folder_all_stay_listed(tmp_path: Path) -> None:
    """Separate processes, as separate `zundacast run`s are: the folder's lock file is what orders them."""
    store_url = str(tmp_path / "public")
    days = dates(4)
    run_together([[sys.executable, "-c", PUBLISH_ONE, day.isoformat(), store_url,
                   str(tmp_path / "work" / day.isoformat())] for day in days], REPO)
    assert_all_listed(open_store(store_url), days)


# --- the interleavings that lost data, forced -------------------------------------------------------------


class Interleaving:
    """A real store that runs `meanwhile` once, right after this run's `nth` read of `key` or before its
    `nth` write of `key`: another run publishing at exactly that moment."""

    def __init__(self, store: Store, key: str, moment: str, meanwhile: Callable[[], object],
                 nth: int = 1) -> None:
        self.inner, self.url, self.key, self.moment, self.meanwhile = store, store.url, key, moment, meanwhile
        self.nth, self.seen = nth, 0
        self.puts: list[str] = []
        self.fired = False

    def _fire(self, key: str, moment: str) -> None:
        if key == self.key and moment == self.moment:
            self.seen += 1
            if self.seen == self.nth:
                self.fired = True
                self.meanwhile()

    def get_versioned(self, key: str) -> tuple[bytes | None, str | None]:
        answer = self.inner.get_versioned(key)
        self._fire(key, "after-read")
        return answer

    def put_if(self, key: str, data: bytes, content_type: str, expected: str | None,
               cache_control: str = "") -> str:
        self._fire(key, "before-write")
        self.puts.append(key)
        return self.inner.put_if(key, data, content_type, expected, cache_control)

    def put(self, key: str, data: bytes, content_type: str, cache_control: str = "") -> None:
        self._fire(key, "before-write")
        self.puts.append(key)
        self.inner.put(key, data, content_type, cache_control)

    def put_file(self, key: str, path: str, content_type: str, cache_control: str = "") -> None:
        self.puts.append(key)
        self.inner.put_file(key, path, content_type, cache_control)

    def get(self, key: str) -> bytes | None:
        return self.inner.get(key)

    def delete_if(self, key: str, expected: str) -> None:
        self.inner.delete_if(key, expected)

    def sha256(self, key: str) -> str | None:
        return self.inner.sha256(key)

    def public_url(self, key: str, base_url: str = "") -> str:
        return self.inner.public_url(key, base_url)

    def describe(self, key: str) -> str:
        return self.inner.describe(key)


@pytest.mark.parametrize("where", ["folder", "s3"])
def test_an_index_written_between_read_and_write_is_merged_not_overwritten(
        where: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = str(tmp_path / "public") if where == "folder" else request.getfixturevalue("s3").url
    store = open_store(url)
    days = dates(2)
    publish(days[0], tmp_path / "seed", store)  # an index exists, so the race is on replacing it
    late = dates(3)[2]
    # run A reads the index to update it (its 2nd read: the 1st plans the episode), with days[0] only;
    # run B publishes `late` completely; then A writes its index
    racing = Interleaving(store, EPISODES_KEY, "after-read", lambda: publish(late, tmp_path / "b", store),
                          nth=2)
    publish(days[1], tmp_path / "a", racing)
    assert racing.fired
    assert racing.puts.count(EPISODES_KEY) == 2  # A's first write was refused, its merge retried
    assert_all_listed(store, [days[0], days[1], late])


@pytest.mark.parametrize("where", ["folder", "s3"])
def test_a_feed_written_late_from_an_older_index_is_derived_again(
        where: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = str(tmp_path / "public") if where == "folder" else request.getfixturevalue("s3").url
    store = open_store(url)
    days = dates(2)
    # run A has written the index with days[0]; before its feed lands, run B publishes days[1] whole
    # (index and feed); A's feed, made from the older index, then lands last
    racing = Interleaving(store, "feed.xml", "before-write", lambda: publish(days[1], tmp_path / "b", store))
    publish(days[0], tmp_path / "a", racing)
    assert racing.fired
    assert racing.puts.count("feed.xml") == 2  # A saw the index move and wrote the feed again
    assert_all_listed(store, days)


def test_update_index_gives_up_loudly_when_the_index_never_settles(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "public"))

    class AlwaysConflicting:
        def __getattr__(self, name: str) -> object:
            return getattr(store, name)

        def put_if(self, *args: object, **kwargs: object) -> str:
            raise VersionConflict("someone else wrote it")

    from zundacast.publishing.index import IndexBusy

    naps: list[float] = []
    with pytest.raises(IndexBusy, match=r"episodes\.json changed under this run 5 times"):
        update_index(AlwaysConflicting(), lambda index: index.model_copy(update={"podcast_guid": "x"}),  # type: ignore[arg-type]
                     sleep=naps.append, attempts=5)
    assert len(naps) == 5 and all(0 <= nap <= 2.0 for nap in naps)


# --- podcast:guid -----------------------------------------------------------------------------------------


def channel_guid(store: Store) -> str:
    import xml.etree.ElementTree as ET

    return ET.fromstring(store.get("feed.xml") or b"").findtext(f"./channel/{{{PODCAST}}}guid") or ""


def test_podcast_guid_is_fixed_at_the_first_publish_and_kept_in_the_index(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "public"))
    days = dates(3)
    first, _ = publish(days[0], tmp_path / "w", store)  # no base URL yet: a file:// feed URL
    guid = podcast_guid(first.feed_url)
    assert channel_guid(store) == guid
    assert json.loads(store.get(EPISODES_KEY) or b"")["podcast_guid"] == guid

    moved = sample_show(base_url="https://podcast.example.com/zunda")
    second, _ = publish(days[1], tmp_path / "w", store, show=moved)
    assert second.feed_url == "https://podcast.example.com/zunda/feed.xml"
    assert podcast_guid(second.feed_url) != guid
    assert channel_guid(store) == guid  # the feed moved; the podcast is still the same podcast
    assert read_index(store)[0].podcast_guid == guid

    explicit = "917393e3-1b1e-5cef-ace4-edaa54e1f810"
    publish(days[2], tmp_path / "w", store, show=sample_show(podcast_guid=explicit))
    assert channel_guid(store) == explicit  # the show file's own guid wins
    assert read_index(store)[0].podcast_guid == guid


def test_an_index_in_the_old_list_format_is_read_and_upgraded(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "public"))
    days = dates(2)
    publish(days[0], tmp_path / "w", store)
    old = read_index(store)[0]
    store.put(EPISODES_KEY, json.dumps([r.model_dump(mode="json") for r in old.episodes]).encode(),
              "application/json")
    assert read_index(store)[0].episodes == old.episodes and read_index(store)[0].podcast_guid == ""
    publish(days[1], tmp_path / "w", store)
    upgraded = json.loads(store.get(EPISODES_KEY) or b"")
    assert set(upgraded) == {"podcast_guid", "episodes"}
    assert [e["date"] for e in upgraded["episodes"]] == [days[1].isoformat(), days[0].isoformat()]


# --- the upload stage checks the store before it trusts its cache ----------------------------------------


def drop_date(store: Store, day: dt.date) -> None:
    index, version = read_index(store)
    kept = ShowIndex(podcast_guid=index.podcast_guid, episodes=[r for r in index.episodes if r.date != day])
    store.put_if(EPISODES_KEY, render_index(kept).encode(), "application/json", expected=version)


@pytest.mark.parametrize("where", ["folder", "s3"])
def test_a_cached_upload_is_republished_when_the_store_lost_the_episode(
        where: str, tmp_path: Path, prefect_results: Path, request: pytest.FixtureRequest) -> None:
    """The flow's StageRunner with its store probe, around the real cached upload task."""
    url = str(tmp_path / "public") if where == "folder" else request.getfixturevalue("s3").url
    store = open_store(url)
    days = dates(2)
    inputs = {day: sample_inputs(day, tmp_path / "w" / day.isoformat()) for day in days}
    show = sample_show()
    said: list[str] = []

    @flow(name="upload-only")
    def upload_only(day: dt.date) -> str:
        run = StageRunner([], stale_checks={"upload": upload_staleness})
        run.say = said.append  # type: ignore[method-assign]
        run("upload", upload, *inputs[day], show, url)
        return run.reports["upload"].status

    assert upload_only(days[0]) == "computed"
    assert upload_only(days[1]) == "computed"
    assert upload_only(days[0]) == "cached"  # the store holds it intact: the cache is trusted

    drop_date(store, days[0])  # e.g. a run of an older zundacast overwrote the index
    assert listed_dates(store)[0] == [days[1]]
    said.clear()
    assert upload_only(days[0]) == "computed"
    assert any(line.startswith(f"↻ upload: {days[0].isoformat()} is not in") for line in said), said
    assert_all_listed(store, days)
    assert upload_only(days[0]) == "cached"

    record = read_record(store, days[0])
    store.put(record.files["vtt"], b"WEBVTT\n\n", "text/vtt")  # a file that changed
    assert "differs from the SHA-256" in published_state(store, days[0], record.sha256, "zundamon-test")
    assert upload_only(days[0]) == "computed"
    assert store.sha256(record.files["vtt"]) == record.file_sha256["vtt"]

    if where == "folder":
        (tmp_path / "public" / record.files["chapters"]).unlink()  # a file that went missing
    else:
        s3: FakeS3 = request.getfixturevalue("s3")
        s3.client().delete_object(Bucket=s3.bucket, Key=f"podcast/{record.files['chapters']}")
    assert published_state(store, days[0], record.sha256, "zundamon-test").endswith("is missing")
    assert upload_only(days[0]) == "computed"
    assert upload_only(days[0]) == "cached"
    assert_all_listed(store, days)


def test_the_record_keeps_every_files_sha256(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "public"))
    _, bundle = publish(FIRST, tmp_path / "w", store)
    record = read_record(store, FIRST)
    assert record.file_sha256["mp3"] == bundle.sha256
    assert set(record.file_sha256) == set(record.files) - {"episode"}
    for role, key in record.files.items():
        if role != "episode":
            assert store.sha256(key) == record.file_sha256[role], role
    episode_json = json.loads(store.get(record.files["episode"]) or b"")
    assert episode_json["file_sha256"] == record.file_sha256
