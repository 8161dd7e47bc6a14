"""feed.xml, chapters.json and the WebVTT transcript, read back by feedparser, ElementTree and ffmpeg."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import feedparser
from imageio_ffmpeg import get_ffmpeg_exe

from tests.test_upload import DAY1, DAY2, sample_inputs, sample_show
from zundacast.models import Chapter, Cue, EpisodeRecord
from zundacast.publishing.catalog import (
    build_record,
    episode_keys,
    merge_record,
    parse_catalog,
    render_catalog,
)
from zundacast.publishing.feed import (
    ATOM,
    CONTENT,
    ITUNES,
    PODCAST,
    episode_mp3_key,
    podcast_guid,
    render_feed,
)
from zundacast.publishing.formats import (
    parse_vtt,
    render_chapters_json,
    render_vtt,
    vtt_timestamp,
    vtt_voice,
)

BASE = "https://podcast.example.com/zunda"
FEED_URL = f"{BASE}/feed.xml"


def url_for(key: str) -> str:
    return f"{BASE}/{key}"


def record_for(day: dt.date, folder: Path, frequency: int = 440) -> EpisodeRecord:
    bundle, script, ranking, summaries = sample_inputs(day, folder, frequency)
    return build_record(bundle, script, ranking, summaries, sample_show(), episode_keys(day))


def test_feed_has_every_field_apple_and_podcast_apps_need(tmp_path: Path) -> None:
    show = sample_show()
    records = [record_for(DAY1, tmp_path), record_for(DAY2, tmp_path, 550)]
    xml = render_feed(show.show, records, FEED_URL, url_for)
    feed = feedparser.parse(xml.encode("utf-8"))
    assert not feed.bozo, feed.bozo_exception

    channel = feed.feed
    assert channel.title == "ずんだもん試験放送 & <テスト>"  # escaped in the XML, intact once parsed
    assert channel.link == f"{BASE}/index.html"
    assert channel.language == "ja"
    assert channel.author == "ずんだもん技術室"
    assert channel.publisher_detail == {"name": "ずんだもん技術室", "email": "owner@example.com"}
    assert channel.image.href == f"{BASE}/cover.png"
    assert {tag.term for tag in channel.tags} == {"News", "Tech News"}
    assert channel.itunes_type == "episodic"
    assert channel.summary == "テスト用の番組なのだ。"
    self_link = {"rel": "self", "href": FEED_URL, "type": "application/rss+xml"}
    assert self_link.items() <= channel.links[1].items()

    assert [entry.id for entry in feed.entries] == [  # newest first
        "zundacast:zundamon-test:2025-07-24", "zundacast:zundamon-test:2025-07-23"]
    for entry, record in zip(feed.entries, reversed(records), strict=True):
        assert entry.guidislink is False
        enclosure = entry.enclosures[0]
        frequency = 440 if record.date == DAY1 else 550
        mp3 = tmp_path / f"episode-{record.date}-{frequency}.mp3"
        assert int(enclosure.length) == record.size_bytes == mp3.stat().st_size
        assert enclosure.type == "audio/mpeg"
        assert enclosure.href == f"{BASE}/{record.date}/episode.mp3?v={record.sha256[:12]}"
        assert entry.itunes_duration == "2"
        assert entry.itunes_episodetype == "full"
        assert entry.published_parsed is not None
        assert entry.link == f"{BASE}/{record.date}/index.html"
        assert entry.title.startswith(f"{record.date.year}年{record.date.month}月{record.date.day}日")
        # show notes: the source articles with their links
        assert "https://example.com/a?x=1&y=2" in entry.summary
        html = entry.content[0].value
        assert '<a href="https://example.com/a?x=1&amp;y=2">Rust &amp; &lt;Python&gt;: 速さの比較</a>' in html

    root = ET.fromstring(xml.encode("utf-8"))
    channel_el = root.find("channel")
    assert channel_el is not None
    assert channel_el.findtext(f"{{{ITUNES}}}explicit") == "false"
    category = channel_el.find(f"{{{ITUNES}}}category")
    assert category is not None and category.get("text") == "News"
    subcategory = category.find(f"{{{ITUNES}}}category")
    assert subcategory is not None and subcategory.get("text") == "Tech News"
    assert channel_el.findtext(f"{{{ITUNES}}}owner/{{{ITUNES}}}email") == "owner@example.com"
    assert channel_el.find(f"{{{ATOM}}}link").get("rel") == "self"  # type: ignore[union-attr]
    assert channel_el.findtext(f"{{{PODCAST}}}guid") == podcast_guid(FEED_URL)
    locked = channel_el.find(f"{{{PODCAST}}}locked")
    assert locked is not None and locked.text == "yes" and locked.get("owner") == "owner@example.com"
    for item in channel_el.findall("item"):
        day = item.findtext("guid", "").rsplit(":", 1)[1]
        transcript = item.find(f"{{{PODCAST}}}transcript")
        chapters = item.find(f"{{{PODCAST}}}chapters")
        assert transcript is not None and transcript.attrib == {
            "url": f"{BASE}/{day}/transcript.vtt", "type": "text/vtt", "language": "ja", "rel": "captions"}
        assert chapters is not None and chapters.attrib == {
            "url": f"{BASE}/{day}/chapters.json", "type": "application/json+chapters"}
        assert item.find(f"{{{CONTENT}}}encoded") is not None
        assert item.find("guid").get("isPermaLink") == "false"  # type: ignore[union-attr]


def test_titles_with_markup_characters_are_escaped(tmp_path: Path) -> None:
    record = record_for(DAY2, tmp_path).model_copy(update={"title": 'A & B <script>alert("x")</script> ]]>'})
    xml = render_feed(sample_show().show, [record], FEED_URL, url_for)
    assert "<script>" not in xml and "&lt;script&gt;" in xml and "A &amp; B" in xml
    feed = feedparser.parse(xml.encode("utf-8"))
    assert not feed.bozo
    assert ET.fromstring(xml.encode("utf-8")).findtext("channel/item/title") == record.title


def test_podcast_guid_follows_the_namespace_spec() -> None:
    # the spec's recipe: UUIDv5, namespace ead4c236-..., feed URL without scheme and trailing slashes
    namespace = uuid.UUID("ead4c236-bf58-58c6-a2c6-a6b28d128cb6")
    expected = str(uuid.uuid5(namespace, "podcast.example.com/zunda/feed.xml"))
    assert podcast_guid("https://podcast.example.com/zunda/feed.xml/") == expected
    assert podcast_guid("http://podcast.example.com/zunda/feed.xml") == expected
    # a value published by another project for its feed, computed independently
    assert podcast_guid("https://bigal.github.io/breakfast-wrap-feed/breakfast-wrap.xml") == (
        "f95d7b89-e1ee-554c-be7f-f126f0b92dae")


def test_show_settings_win(tmp_path: Path) -> None:
    show = sample_show(podcast_guid="917393e3-1b1e-5cef-ace4-edaa54e1f810", locked=False, explicit=True,
                       owner_email="")
    xml = render_feed(show.show, [record_for(DAY2, tmp_path)], FEED_URL, url_for, cover_key=None)
    channel = ET.fromstring(xml.encode("utf-8")).find("channel")
    assert channel is not None
    assert channel.findtext(f"{{{PODCAST}}}guid") == "917393e3-1b1e-5cef-ace4-edaa54e1f810"
    locked = channel.find(f"{{{PODCAST}}}locked")
    assert locked is not None and locked.text == "no" and locked.attrib == {}
    assert channel.findtext(f"{{{ITUNES}}}explicit") == "true"
    assert channel.find(f"{{{ITUNES}}}image") is None  # no cover in the store: no dangling artwork link


def test_catalog_merges_one_entry_per_date_newest_first(tmp_path: Path) -> None:
    older, newer = record_for(DAY1, tmp_path), record_for(DAY2, tmp_path)
    rerendered = record_for(DAY1, tmp_path, 660)
    catalog = merge_record(merge_record(merge_record([], newer), older), rerendered)
    assert [(r.date, r.sha256) for r in catalog] == [(DAY2, newer.sha256), (DAY1, rerendered.sha256)]
    assert parse_catalog(render_catalog(catalog).encode()) == catalog


def test_vtt_is_valid_and_round_trips() -> None:
    cues = [Cue(start_s=3725.5, end_s=3727.25, text="後の字幕 --> & <b>"),
            Cue(start_s=0.0, end_s=1.5, text="最初の\n\n字幕")]
    vtt = render_vtt(cues)
    lines = vtt.split("\n")
    assert lines[0] == "WEBVTT" and lines[1] == ""
    assert "1\n00:00:00.000 --> 00:00:01.500\n最初の\n字幕\n" in vtt  # no blank line inside a cue
    assert "2\n01:02:05.500 --> 01:02:07.250\n後の字幕 --&gt; &amp; &lt;b&gt;\n" in vtt
    assert [(c.start_s, c.end_s, c.text) for c in parse_vtt(vtt)] == [
        (0.0, 1.5, "最初の\n字幕"), (3725.5, 3727.25, "後の字幕 --> & <b>")]
    assert vtt_timestamp(59.9996) == "00:01:00.000"


def test_chapters_json_is_podcasting_2_0() -> None:
    chapters = [Chapter(title="記事", start_s=12.3456, end_s=80.0, url="https://example.com/a"),
                Chapter(title="オープニング", start_s=0.0, end_s=12.3456)]
    document = json.loads(render_chapters_json(chapters, title="回", podcast_name="番組"))
    assert document["version"] == "1.2.0"
    assert document["chapters"] == [
        {"startTime": 0.0, "title": "オープニング", "endTime": 12.346},
        {"startTime": 12.346, "title": "記事", "endTime": 80.0, "url": "https://example.com/a"},
    ]
    assert document["title"] == "回" and document["podcastName"] == "番組"


def test_vtt_cues_carry_the_speaker_and_stay_valid(tmp_path: Path) -> None:
    cues = [Cue(start_s=0.0, end_s=1.5, text="最初の\n字幕 & <b>"),
            Cue(start_s=2.0, end_s=3.0, text="次なのだ。")]
    vtt = render_vtt(cues, speaker="ずんだもん")
    assert "1\n00:00:00.000 --> 00:00:01.500\n<v ずんだもん>最初の\n字幕 &amp; &lt;b&gt;\n" in vtt
    assert "2\n00:00:02.000 --> 00:00:03.000\n<v ずんだもん>次なのだ。\n" in vtt
    assert [(c.start_s, c.text) for c in parse_vtt(vtt)] == [(0.0, "最初の\n字幕 & <b>"), (2.0, "次なのだ。")]
    assert vtt_voice("A&B > C\nD") == "<v A&amp;B &gt; C D>"  # the annotation holds no & > or line end
    # ffmpeg's WebVTT demuxer (what libavformat players use) reads every cue, the voice span understood
    path = tmp_path / "transcript.vtt"
    path.write_text(vtt, encoding="utf-8")
    command = [get_ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-i", str(path), "-f", "srt", "-"]
    srt = subprocess.run(command, capture_output=True, check=True).stdout.decode("utf-8")
    assert srt.split("\n\n")[:2] == ["1\n00:00:00,000 --> 00:00:01,500\n最初の\n字幕 & <b>",
                                     "2\n00:00:02,000 --> 00:00:03,000\n次なのだ。"]


def test_voicevox_episodes_carry_the_credit_in_the_feed_and_notes(tmp_path: Path) -> None:
    show = sample_show(host="ずんだもん")
    voiced = record_for(DAY2, tmp_path).model_copy(update={"engine": "voicevox"})
    offline = record_for(DAY1, tmp_path)
    xml = render_feed(show.show, [voiced, offline], FEED_URL, url_for)
    channel = ET.fromstring(xml.encode("utf-8")).find("channel")
    assert channel is not None
    assert "VOICEVOX:ずんだもん" in channel.findtext("description", "")
    assert "VOICEVOX:ずんだもん" in channel.findtext(f"{{{ITUNES}}}summary", "")
    voiced_item, offline_item = channel.findall("item")
    for tag in ("description", f"{{{ITUNES}}}summary", f"{{{CONTENT}}}encoded"):
        assert "VOICEVOX:ずんだもん" in voiced_item.findtext(tag, ""), tag
        assert "VOICEVOX" not in offline_item.findtext(tag, ""), tag
    # no VOICEVOX episode in the feed: no credit anywhere
    assert "VOICEVOX" not in render_feed(show.show, [offline], FEED_URL, url_for)


def test_the_mp3_has_a_file_name_of_its_own(tmp_path: Path) -> None:
    key = episode_mp3_key("zundamon-ai", dt.date(2026, 11, 20))
    assert key == "2026-11-20/zundamon-ai-2026-11-20.mp3"
    record = record_for(DAY2, tmp_path)
    files = {**record.files, "mp3": episode_mp3_key("zundamon-test", DAY2)}
    record = record.model_copy(update={"files": files})
    feed = feedparser.parse(render_feed(sample_show().show, [record], FEED_URL, url_for).encode("utf-8"))
    assert feed.entries[0].enclosures[0].href.startswith(f"{BASE}/2025-07-24/zundamon-test-2025-07-24.mp3?v=")
