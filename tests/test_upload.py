"""The upload stage over S3 (moto's HTTP server) and a local folder: layout, headers, order, reruns."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import feedparser
import imageio_ffmpeg
import pytest
from prefect.utilities.collections import visit_collection

from tasks.upload import (
    IMMUTABLE_CACHE,
    SHORT_CACHE,
    BundleMismatch,
    pages_module,
    publish_episode,
    read_history,
    upload,
)
from zundacast.errors import PermanentError
from zundacast.models import (
    AudioBundle,
    Candidate,
    Chapter,
    Cue,
    Pick,
    PublishResult,
    Ranking,
    Script,
    Section,
    Sentence,
    Summary,
    Usage,
)
from zundacast.publishing import SecretLeakError, find_secrets_in_store, secret_values
from zundacast.publishing.catalog import CatalogError
from zundacast.publishing.feed import episode_guid
from zundacast.show import Show, parse_show
from zundacast.storage import Store, StoreError, open_store

# moto and boto3 load in the s3 fixture: the publishing processes of test_index import this module
if TYPE_CHECKING:
    from tests.fakes.s3 import FakeS3

DAY1 = dt.date(2025, 7, 23)
DAY2 = dt.date(2025, 7, 24)
HAS_PAGES = pages_module() is not None
HAS_COVER = (Path(__file__).resolve().parent.parent / "zundacast" / "assets" / "cover.png").is_file()

# --- sample episode inputs (also used by test_feed.py and test_gpodder.py) ------------------------------


_ENCODED: dict[tuple[float, int], bytes] = {}  # (seconds, frequency) -> the MP3 ffmpeg made for it


def make_mp3(path: Path, seconds: float = 2.0, frequency: int = 440) -> Path:
    """A real MP3 (a sine tone) made by the ffmpeg binary in imageio-ffmpeg.

    ffmpeg encodes each tone once per process; later calls write the same bytes (its output for one
    tone is the same every time), so tests that publish many dates do not spawn an encoder per date.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    encoded = _ENCODED.get((seconds, frequency))
    if encoded is not None:
        path.write_bytes(encoded)
        return path
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
               "-i", f"sine=frequency={frequency}:duration={seconds}", "-c:a", "libmp3lame", "-b:a", "64k",
               str(path)]
    subprocess.run(command, check=True, capture_output=True)
    _ENCODED[(seconds, frequency)] = path.read_bytes()
    return path


def sample_show(**show_fields: object) -> Show:
    fields = {"id": "zundamon-test", "title": "ずんだもん試験放送 & <テスト>", "author": "ずんだもん技術室",
              "owner_email": "owner@example.com", "description": "テスト用の番組なのだ。",
              "category": "News", "subcategory": "Tech News", **show_fields}
    return parse_show({"show": fields, "feeds": [{"name": "Example", "url": "http://127.0.0.1:9/feed.xml"}]})


def sample_inputs(day: dt.date, folder: Path, frequency: int = 440
                  ) -> tuple[AudioBundle, Script, Ranking, list[Summary]]:
    """A two-article episode with a real MP3, as synthesize would hand it over."""
    mp3 = make_mp3(folder / f"episode-{day.isoformat()}-{frequency}.mp3", frequency=frequency)
    data = mp3.read_bytes()
    articles = [
        ("Rust & <Python>: 速さの比較", "https://example.com/a?x=1&y=2", "Zenn"),
        ("GPUの新しい推論エンジン", "https://example.org/b", "Publickey"),
    ]
    picks = [Pick(rank=i + 1, score=1.0 - i / 10,
                  candidate=Candidate(url=url, title=title, source=source))
             for i, (title, url, source) in enumerate(articles)]
    summaries = [Summary(url=url, source=source, title=title, spoken_title=title,
                         summary=f"{title}についての要約なのだ。",
                         usage=Usage(requests=1, prompt_tokens=100, completion_tokens=50))
                 for title, url, source in articles]
    sections = [Section(kind="opening", title="オープニング",
                        sentences=[Sentence(text="こんにちは、ずんだもんなのだ。", speech="こんにちは")])]
    sections += [Section(kind="article", title=title, url=url,
                         sentences=[Sentence(text=f"タイトルは「{title}」なのだ。", speech="たいとる")])
                 for title, url, _ in articles]
    script = Script(date=day, weekday="水曜日" if day == DAY1 else "木曜日", show_title="ずんだもん試験放送",
                    sections=sections, usage=Usage(requests=1, prompt_tokens=10, completion_tokens=5))
    chapters = [Chapter(title="オープニング", start_s=0.0, end_s=0.5),
                Chapter(title=articles[0][0], start_s=0.5, end_s=1.2, url=articles[0][1]),
                Chapter(title=articles[1][0], start_s=1.2, end_s=2.0, url=articles[1][1])]
    cues = [Cue(start_s=0.0, end_s=0.5, text="こんにちは、ずんだもんなのだ。"),
            Cue(start_s=0.5, end_s=1.2, text=f"タイトルは「{articles[0][0]}」なのだ。"),
            Cue(start_s=1.2, end_s=2.0, text=f"タイトルは「{articles[1][0]}」なのだ。")]
    bundle = AudioBundle(mp3_path=str(mp3), sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data),
                         duration_s=2.0, loudness_lufs=-16.0, true_peak_dbtp=-1.0, engine="openjtalk",
                         chapters=chapters, cues=cues, utterances=3, synthesized=3)
    return bundle, script, Ranking(picks=picks), summaries


def publish(day: dt.date, folder: Path, store: Store, show: Show | None = None,
            frequency: int = 440) -> tuple[PublishResult, AudioBundle]:
    bundle, script, ranking, summaries = sample_inputs(day, folder, frequency)
    return publish_episode(bundle, script, ranking, summaries, show or sample_show(), store), bundle


# --- fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeS3]:
    from tests.fakes.s3 import running_s3

    with running_s3(monkeypatch) as fake:
        yield fake


class FailingStore:
    """A real store that fails one key's write, as a network error or a crash at that moment would."""

    def __init__(self, store: Store, fail_key: str) -> None:
        self.inner, self.fail_key, self.url = store, fail_key, store.url

    def put(self, key: str, data: bytes, content_type: str, cache_control: str = "") -> None:
        if key == self.fail_key:
            raise StoreError(f"injected failure writing {key}")
        self.inner.put(key, data, content_type, cache_control)

    def put_file(self, key: str, path: str, content_type: str, cache_control: str = "") -> None:
        if key == self.fail_key:
            raise StoreError(f"injected failure writing {key}")
        self.inner.put_file(key, path, content_type, cache_control)

    def get(self, key: str) -> bytes | None:
        return self.inner.get(key)

    def get_versioned(self, key: str) -> tuple[bytes | None, str | None]:
        return self.inner.get_versioned(key)

    def put_if(self, key: str, data: bytes, content_type: str, expected: str | None,
               cache_control: str = "") -> str:
        if key == self.fail_key:
            raise StoreError(f"injected failure writing {key}")
        return self.inner.put_if(key, data, content_type, expected, cache_control)

    def delete_if(self, key: str, expected: str) -> None:
        self.inner.delete_if(key, expected)

    def sha256(self, key: str) -> str | None:
        return self.inner.sha256(key)

    def public_url(self, key: str, base_url: str = "") -> str:
        return self.inner.public_url(key, base_url)

    def describe(self, key: str) -> str:
        return self.inner.describe(key)


def feed_items(feed_xml: bytes) -> list[ET.Element]:
    return ET.fromstring(feed_xml).findall("./channel/item")


# --- tests ------------------------------------------------------------------------------------------------


def test_layout_headers_and_write_order_on_s3(s3: FakeS3, tmp_path: Path) -> None:
    store = open_store(s3.url)
    result, bundle = publish(DAY2, tmp_path, store)

    episode_files = ["zundamon-test-2025-07-24.mp3", "transcript.vtt", "chapters.json", "episode.json"]
    if HAS_PAGES:
        episode_files.append("index.html")
    expected_order = [f"2025-07-24/{name}" for name in episode_files]
    if HAS_COVER:
        expected_order.append("cover.png")
    expected_order += ["episodes.json", "feed.xml"] + (["index.html"] if HAS_PAGES else [])
    assert result.written_keys == expected_order
    assert s3.keys() == sorted(f"podcast/{key}" for key in expected_order)

    expected_types = {
        "2025-07-24/zundamon-test-2025-07-24.mp3": ("audio/mpeg", IMMUTABLE_CACHE),
        "2025-07-24/transcript.vtt": ("text/vtt; charset=utf-8", SHORT_CACHE),
        "2025-07-24/chapters.json": ("application/json; charset=utf-8", SHORT_CACHE),
        "2025-07-24/episode.json": ("application/json; charset=utf-8", SHORT_CACHE),
        "2025-07-24/index.html": ("text/html; charset=utf-8", SHORT_CACHE),
        "cover.png": ("image/png", SHORT_CACHE),
        "episodes.json": ("application/json; charset=utf-8", SHORT_CACHE),
        "feed.xml": ("application/rss+xml; charset=utf-8", SHORT_CACHE),
        "index.html": ("text/html; charset=utf-8", SHORT_CACHE),
    }
    for key in expected_order:
        head = s3.head(f"podcast/{key}")
        assert (head["ContentType"], head["CacheControl"]) == expected_types[key], key

    assert store.get("2025-07-24/zundamon-test-2025-07-24.mp3") == Path(bundle.mp3_path).read_bytes()
    assert result.feed_url == f"{s3.endpoint}/{s3.bucket}/podcast/feed.xml"
    assert result.episode_url == f"{s3.endpoint}/{s3.bucket}/podcast/2025-07-24/zundamon-test-2025-07-24.mp3"
    assert result.episode_key == f"s3://{s3.bucket}/podcast/2025-07-24/episode.json"

    episode = json.loads(store.get("2025-07-24/episode.json") or b"")
    assert episode["date"] == "2025-07-24"
    assert episode["picks"] == [
        {"title": "Rust & <Python>: 速さの比較", "url": "https://example.com/a?x=1&y=2", "source": "Zenn"},
        {"title": "GPUの新しい推論エンジン", "url": "https://example.org/b", "source": "Publickey"},
    ]
    assert "タイトルは「GPUの新しい推論エンジン」なのだ。" in episode["transcript"]
    assert episode["duration_s"] == 2.0
    assert episode["chapters"][0]["title"] == "オープニング"
    assert episode["usage"]["prompt_tokens"] == 10 + 2 * 100  # script + both summaries
    assert episode["sha256"] == bundle.sha256

    chapters = json.loads(store.get("2025-07-24/chapters.json") or b"")
    assert chapters["version"] == "1.2.0" and chapters["chapters"][1]["startTime"] == 0.5

    vtt = (store.get("2025-07-24/transcript.vtt") or b"").decode()
    assert vtt.startswith("WEBVTT\n") and "00:00:00.500 --> 00:00:01.200" in vtt
    assert "Rust &amp; &lt;Python&gt;" in vtt

    feed = feedparser.parse(store.get("feed.xml"))
    assert not feed.bozo, feed.bozo_exception
    assert [e.enclosures[0].href.split("?")[0] for e in feed.entries] == [result.episode_url]


def test_failure_before_the_feed_keeps_the_old_feed_and_a_rerun_completes(s3: FakeS3, tmp_path: Path) -> None:
    store = open_store(s3.url)
    publish(DAY1, tmp_path, store)
    old_feed, old_index = store.get("feed.xml"), store.get("episodes.json")

    with pytest.raises(StoreError, match="injected"):
        publish(DAY2, tmp_path, FailingStore(store, "episodes.json"))
    assert store.get("feed.xml") == old_feed  # the old feed is intact ...
    assert store.get("episodes.json") == old_index
    # ... while the new episode's files are up
    assert store.get("2025-07-24/zundamon-test-2025-07-24.mp3") is not None

    with pytest.raises(StoreError, match="injected"):
        publish(DAY2, tmp_path, FailingStore(store, "feed.xml"))
    assert store.get("feed.xml") == old_feed

    publish(DAY2, tmp_path, store)  # the rerun completes it
    items = feed_items(store.get("feed.xml") or b"")
    assert [item.findtext("guid") for item in items] == [episode_guid("zundamon-test", DAY2),
                                                        episode_guid("zundamon-test", DAY1)]


def test_rerun_is_idempotent(s3: FakeS3, tmp_path: Path) -> None:
    store = open_store(s3.url)
    first, _ = publish(DAY2, tmp_path, store)
    keys_after_first, feed_after_first = s3.keys(), store.get("feed.xml")
    second, _ = publish(DAY2, tmp_path, store)
    assert s3.keys() == keys_after_first
    assert store.get("feed.xml") == feed_after_first  # same guid, same pubDate, same everything
    items = feed_items(store.get("feed.xml") or b"")
    assert len(items) == 1 and items[0].findtext("guid") == "zundacast:zundamon-test:2025-07-24"
    assert len(read_history(store)) == 1
    assert "cover.png" not in second.written_keys  # unchanged cover is not uploaded again
    assert first.written_keys[:4] == second.written_keys[:4]


def test_two_dates_stay_in_date_order_and_a_rerun_never_deletes_the_other(s3: FakeS3, tmp_path: Path) -> None:
    store = open_store(s3.url)
    publish(DAY2, tmp_path, store)
    publish(DAY1, tmp_path, store)  # a past date published after a newer one
    _, rerendered = publish(DAY1, tmp_path, store, frequency=660)  # a re-render of the earlier date

    items = feed_items(store.get("feed.xml") or b"")
    assert [item.findtext("guid") for item in items] == ["zundacast:zundamon-test:2025-07-24",
                                                        "zundacast:zundamon-test:2025-07-23"]
    pub_dates = [feedparser.parse(store.get("feed.xml")).entries[i].published_parsed for i in (0, 1)]
    assert pub_dates[0] > pub_dates[1]  # pubDates follow the dates, whatever order they were published in
    assert [record.date for record in read_history(store)] == [DAY2, DAY1]
    assert [record.date for record in read_history(store, before=DAY2)] == [DAY1]
    assert read_history(store, before=DAY1) == []
    assert [record.date for record in read_history(store, limit=1)] == [DAY2]
    assert store.get("2025-07-24/zundamon-test-2025-07-24.mp3") is not None
    assert store.get("2025-07-23/zundamon-test-2025-07-23.mp3") == Path(rerendered.mp3_path).read_bytes()
    enclosure = items[1].find("enclosure")
    assert enclosure is not None and enclosure.get("url", "").endswith(f"?v={rerendered.sha256[:12]}")
    assert enclosure.get("length") == str(rerendered.size_bytes)


def test_publish_to_a_local_folder(tmp_path: Path) -> None:
    public = tmp_path / "public"
    store = open_store(str(public))
    result, bundle = publish(DAY2, tmp_path / "work", store)
    mp3 = public / "2025-07-24" / "zundamon-test-2025-07-24.mp3"
    assert mp3.read_bytes() == Path(bundle.mp3_path).read_bytes()
    for name in ("feed.xml", "episodes.json", "2025-07-24/transcript.vtt", "2025-07-24/chapters.json",
                 "2025-07-24/episode.json"):
        assert (public / name).is_file(), name
    assert result.feed_url == (public / "feed.xml").as_uri()
    assert Path(result.episode_key) == public / "2025-07-24" / "episode.json"
    assert [record.date for record in read_history(store)] == [DAY2]
    assert read_history(open_store(str(tmp_path / "empty"))) == []


def test_base_url_is_used_for_every_public_link(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "public"))
    show = sample_show(base_url="https://podcast.example.com/zunda/")
    result, _ = publish(DAY2, tmp_path / "work", store, show=show)
    assert result.feed_url == "https://podcast.example.com/zunda/feed.xml"
    feed = feedparser.parse(store.get("feed.xml"))
    assert feed.entries[0].enclosures[0].href.startswith("https://podcast.example.com/zunda/2025-07-24/zundamon-test-2025-07-24.mp3?v=")
    assert feed.feed.link == "https://podcast.example.com/zunda/index.html"


def test_a_changed_or_missing_mp3_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "public"))
    bundle, script, ranking, summaries = sample_inputs(DAY2, tmp_path / "work")
    Path(bundle.mp3_path).write_bytes(b"not the rendered episode")
    with pytest.raises(BundleMismatch, match="--refresh synthesize"):
        publish_episode(bundle, script, ranking, summaries, sample_show(), store)
    Path(bundle.mp3_path).unlink()
    with pytest.raises(PermanentError, match="--refresh synthesize"):
        publish_episode(bundle, script, ranking, summaries, sample_show(), store)
    assert not (tmp_path / "public").exists()


def test_a_broken_index_stops_before_any_write(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "public"))
    store.put("episodes.json", b'[{"date": "not a date"}]', "application/json")
    with pytest.raises(CatalogError, match=r"episodes\.json"):
        publish(DAY2, tmp_path / "work", store)
    assert sorted(p.name for p in (tmp_path / "public").iterdir()) == ["episodes.json"]


def test_secrets_never_reach_a_published_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-test-0123456789abcdefSECRET"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-value-0123456789")
    store = open_store(str(tmp_path / "public"))
    result, _ = publish(DAY2, tmp_path / "work", store)
    assert find_secrets_in_store(store, result.written_keys) == {}
    assert set(secret_values()) == {"OPENAI_API_KEY", "AWS_SECRET_ACCESS_KEY"}

    bundle, script, ranking, summaries = sample_inputs(DAY1, tmp_path / "work")
    summaries[0] = summaries[0].model_copy(update={"summary": f"鍵は {secret} なのだ"})
    with pytest.raises(SecretLeakError) as caught:
        publish_episode(bundle, script, ranking, summaries, sample_show(), store)
    assert "OPENAI_API_KEY" in str(caught.value) and secret not in str(caught.value)
    assert store.get("2025-07-23/zundamon-test-2025-07-23.mp3") is None  # checked before the first write


def test_upload_task_is_the_stage_and_its_result_survives_prefect(tmp_path: Path) -> None:
    assert upload.name == "upload"
    assert upload.retries == 3
    from zundacast.storage.s3 import S3Store

    assert isinstance(open_store("s3://bucket/p"), S3Store)
    result, _ = publish(DAY2, tmp_path / "work", open_store(str(tmp_path / "public")))
    # Prefect walks every task result like this when the task finishes; a model with a `keys`
    # field once broke it ("'list' object is not callable")
    assert visit_collection(result, lambda value: value, return_data=True, max_depth=1) == result
