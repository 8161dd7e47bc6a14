"""The listeners' pages: structure, links, escaping, and nothing loaded from other hosts."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
from html.parser import HTMLParser

import lxml.html
import pytest

from zundacast.models import Chapter, Cue, EpisodeRecord, Summary, Usage
from zundacast.publishing.pages import (
    episode_page_key,
    format_duration,
    render_episode_page,
    render_show_page,
    safe_href,
)
from zundacast.show import ShowInfo

EVIL = '<script>alert("x")</script>'
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _StructureChecker(HTMLParser):
    """Fails on unclosed or misnested elements (lxml would silently repair them)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.doctype = ""

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()


def assert_well_formed(page: str) -> lxml.html.HtmlElement:
    checker = _StructureChecker()
    checker.feed(page)
    checker.close()
    assert checker.doctype.lower() == "doctype html"
    assert checker.problems == []
    assert checker.stack == []
    return lxml.html.document_fromstring(page)


def show_info(**changes: object) -> ShowInfo:
    values: dict[str, object] = {
        "id": "zundamon-ai",
        "title": "株式会社ずんだもん技術室AI放送局",
        "author": "株式会社ずんだもん技術室",
        "description": "ずんだもんが毎朝ニュースを紹介するのだ。",
    }
    values.update(changes)
    return ShowInfo.model_validate(values)


def episode(day: dt.date, **changes: object) -> EpisodeRecord:
    values: dict[str, object] = {
        "date": day,
        "title": f"{day.month}月{day.day}日のAIニュース",
        "show": "zundamon-ai",
        "picks": [
            {"title": f"FastVLM {EVIL}", "url": "https://example.com/fastvlm?a=1&b=2", "source": "Apple ML"},
            {"title": "Kimi-K2 が NIM に", "url": "http://example.org/kimi", "source": "NVIDIA Blog"},
            {"title": "怪しいリンク", "url": "javascript:alert(1)", "source": "どこか"},
        ],
        "summaries": [
            Summary(url="https://example.com/fastvlm?a=1&b=2", source="Apple ML", title="FastVLM",
                    spoken_title="ファストブイエルエム", summary=f"画像認識が85倍速くなったのだ。{EVIL}",
                    key_points=["最大85倍速い", "オンデバイスで動く"]),
        ],
        "transcript": "オープニングなのだ。\n----\n一つ目なのだ。",
        "duration_s": 725.4,
        "size_bytes": 1000,
        "sha256": "0" * 64,
        "loudness_lufs": -16.0,
        "true_peak_dbtp": -1.2,
        "chapters": [
            Chapter(title="オープニング", start_s=0.0, end_s=5.0),
            Chapter(title=f"FastVLM {EVIL}", start_s=5.0, end_s=12.0, url="https://example.com/fastvlm?a=1&b=2"),
            Chapter(title="Kimi-K2", start_s=12.25, end_s=20.0, url="http://example.org/kimi"),
        ],
        "usage": Usage(),
        "engine": "openjtalk",
        "writer": "offline",
        "published_at": dt.datetime(2025, 7, 24, 6, 30, tzinfo=dt.UTC),
    }
    values.update(changes)
    return EpisodeRecord.model_validate(values)


CUES = [
    Cue(start_s=0.0, end_s=2.0, text="やっほー、ずんだもんなのだ。"),
    Cue(start_s=5.5, end_s=8.0, text=f"タイトルは「FastVLM {EVIL}」なのだ。"),
    Cue(start_s=12.25, end_s=15.0, text="二つ目の記事なのだ。"),
]

PICK_URLS = {"https://example.com/fastvlm?a=1&b=2", "http://example.org/kimi"}
RESOURCE_ATTRS = ("src", "href", "poster", "srcset", "data", "action", "formaction", "background")


def absolute_urls(doc: lxml.html.HtmlElement) -> list[tuple[str, str, str]]:
    """(tag, attribute, value) of every attribute pointing at another host, plus CSS url()s."""
    found = []
    for element in doc.iter():
        if not isinstance(element.tag, str):
            continue
        for name, value in element.attrib.items():
            if name in RESOURCE_ATTRS and re.match(r"^\s*([a-z][a-z0-9+.\-]*:|//)", value, re.IGNORECASE):
                found.append((element.tag, name, value))
    for style in doc.iter("style"):
        for url in re.findall(r"url\(([^)]*)\)", style.text or ""):
            found.append(("style", "url()", url))
        assert "@import" not in (style.text or "")
    return found


def inline_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@pytest.fixture
def episode_doc() -> tuple[str, lxml.html.HtmlElement]:
    page = render_episode_page(show_info(), episode(dt.date(2025, 7, 24)), CUES)
    return page, assert_well_formed(page)


def test_episode_page_head_is_utf8_japanese_and_responsive(episode_doc) -> None:
    _, doc = episode_doc
    assert doc.get("lang") == "ja"
    assert doc.xpath("//meta[@charset]")[0].get("charset").lower() == "utf-8"
    assert "width=device-width" in doc.xpath("//meta[@name='viewport']")[0].get("content")
    assert doc.findtext(".//title").startswith("7月24日のAIニュース")
    assert doc.xpath("//link[@rel='alternate']")[0].get("href") == "../feed.xml"


def test_episode_page_player_plays_the_mp3_with_the_transcript_track(episode_doc) -> None:
    _, doc = episode_doc
    (audio,) = doc.xpath("//audio")
    assert audio.get("src") == "episode.mp3"
    assert audio.get("preload") == "metadata"
    assert audio.get("controls") is not None
    (track,) = audio.xpath("track")
    assert (track.get("kind"), track.get("srclang"), track.get("src")) == ("captions", "ja", "transcript.vtt")


def test_episode_page_chapters_seek_to_their_starts(episode_doc) -> None:
    _, doc = episode_doc
    buttons = doc.xpath("//ol[contains(@class,'chapters')]//*[@data-start]")
    assert [float(b.get("data-start")) for b in buttons] == [0.0, 5.0, 12.25]
    labels = [b.text_content() for b in buttons]
    assert "オープニング" in labels[0]
    assert EVIL in labels[1]  # shown as text, not markup
    assert labels[2].startswith("0:12")


def test_episode_page_transcript_cues_are_clickable_under_their_chapters(episode_doc) -> None:
    _, doc = episode_doc
    (section,) = doc.xpath("//section[contains(@class,'transcript')]")
    cues = section.xpath(".//*[@data-start]")
    assert [float(c.get("data-start")) for c in cues] == [0.0, 5.5, 12.25]
    assert [c.text_content().split(" ", 1)[1] for c in cues] == [cue.text for cue in CUES]
    headings = [h.text_content() for h in section.xpath(".//h3")]
    assert headings == ["オープニング", f"FastVLM {EVIL}", "Kimi-K2"]


def test_episode_page_links_every_safe_pick_and_drops_unsafe_urls(episode_doc) -> None:
    _, doc = episode_doc
    links = doc.xpath("//ol[contains(@class,'sources')]//a")
    article_links = {a.get("href"): a.text_content() for a in links}
    assert article_links == {
        "https://example.com/fastvlm?a=1&b=2": f"FastVLM {EVIL}",
        "http://example.org/kimi": "Kimi-K2 が NIM に",
    }
    notes = doc.xpath("//ol[contains(@class,'sources')]")[0].text_content()
    assert "怪しいリンク" in notes  # the pick stays, without its javascript: link
    assert "最大85倍速い" in notes and "Apple ML" in notes
    assert not [a for a in doc.xpath("//a") if "javascript" in (a.get("href") or "").lower()]


def test_episode_page_escapes_data_and_runs_only_its_own_script(episode_doc) -> None:
    page, doc = episode_doc
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    scripts = doc.xpath("//script")
    assert len(scripts) == 1 and scripts[0].get("src") is None
    assert "alert" not in scripts[0].text
    elements = [el for el in doc.iter() if isinstance(el.tag, str)]
    assert not [el for el in elements if any(name.startswith("on") for name in el.attrib)]  # no onclick=...


def test_episode_page_loads_nothing_from_other_hosts(episode_doc) -> None:
    _, doc = episode_doc
    foreign = absolute_urls(doc)
    assert foreign, "the article links should be found by the check"
    assert all(tag == "a" and name == "href" and value in PICK_URLS for tag, name, value in foreign), foreign
    local = {(el.tag, el.get("src") or el.get("href")) for el in doc.xpath("//img|//link[@rel='icon']|//a")}
    assert ("img", "../cover.png") in local
    assert ("link", "../cover.png") in local
    assert ("a", "../index.html") in local


def test_content_security_policy_allows_exactly_the_inline_style_and_script(episode_doc) -> None:
    _, doc = episode_doc
    policy = doc.xpath("//meta[@http-equiv='Content-Security-Policy']")[0].get("content")
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["media-src"] == "'self'" and directives["img-src"] == "'self'"
    assert directives["style-src"] == inline_hash(doc.xpath("//style")[0].text)
    assert directives["script-src"] == inline_hash(doc.xpath("//script")[0].text)


def test_a_two_host_episode_page_names_the_speaker_of_each_line() -> None:
    from zundacast.publishing.formats import parse_vtt, render_vtt

    two_hosts = [Cue(start_s=0.0, end_s=2.0, text="今日のニュースなのだ。", speaker="ずんだもん"),
                 Cue(start_s=2.0, end_s=4.0, text="それは何かしら？", speaker="四国めたん"),
                 Cue(start_s=5.5, end_s=8.0, text="説明するのだ。", speaker="ずんだもん")]
    # the page of a past episode is made from its published VTT: the voices come back as speakers
    cues = parse_vtt(render_vtt(two_hosts, speaker="ずんだもん"))
    assert [cue.speaker for cue in cues] == ["ずんだもん", "四国めたん", "ずんだもん"]
    page = render_episode_page(show_info(), episode(dt.date(2025, 7, 24)), cues)
    doc = assert_well_formed(page)
    lines = doc.xpath("//section[contains(@class,'transcript')]//*[@data-start]")
    assert [[span.text_content() for span in line.xpath(".//span[@class='who']")] for line in lines] == [
        ["ずんだもん"], ["四国めたん"], ["ずんだもん"]]
    assert lines[1].text_content().endswith("四国めたん それは何かしら？")
    # one host: every cue is hers or his alone, and no name is repeated on each line
    single = render_episode_page(show_info(), episode(dt.date(2025, 7, 24)),
                                 parse_vtt(render_vtt(CUES, speaker="ずんだもん")))
    assert 'class="who"' not in single


def test_episode_page_without_cues_shows_the_plain_transcript() -> None:
    page = render_episode_page(show_info(), episode(dt.date(2025, 7, 24), chapters=[]), [])
    doc = assert_well_formed(page)
    (section,) = doc.xpath("//section[contains(@class,'transcript')]")
    assert [p.text_content() for p in section.xpath(".//p")] == ["オープニングなのだ。", "一つ目なのだ。"]
    assert not doc.xpath("//ol[contains(@class,'chapters')]")


def test_show_page_lists_latest_episodes_newest_first_with_players() -> None:
    start = dt.date(2025, 1, 1)
    history = [episode(start + dt.timedelta(days=n)) for n in range(35)]
    page = render_show_page(show_info(), list(reversed(history[::2])) + history[1::2])
    doc = assert_well_formed(page)
    items = doc.xpath("//ol[contains(@class,'episodes')]/li")
    days = [item.xpath(".//time")[0].get("datetime") for item in items]
    expected = [(start + dt.timedelta(days=n)).isoformat() for n in range(34, 4, -1)]
    assert days == expected  # 30 newest, newest first
    first = items[0]
    assert first.xpath(".//h3/a")[0].get("href") == f"{expected[0]}/index.html"
    assert first.xpath(".//audio")[0].get("src") == f"{expected[0]}/episode.mp3"
    assert "12:05" in first.xpath(".//*[contains(@class,'duration')]")[0].text_content()
    assert episode_page_key(start) == "2025-01-01/index.html"


def test_show_page_keeps_one_episode_per_date_the_latest_published() -> None:
    day = dt.date(2025, 7, 24)
    old = episode(day, title="古いタイトル", published_at=dt.datetime(2025, 7, 24, 6, 0, tzinfo=dt.UTC))
    new = episode(day, title="新しいタイトル", published_at=dt.datetime(2025, 7, 24, 9, 0, tzinfo=dt.UTC))
    doc = assert_well_formed(render_show_page(show_info(), [new, old]))
    titles = [a.text_content() for a in doc.xpath("//ol[contains(@class,'episodes')]//h3/a")]
    assert titles == ["新しいタイトル"]


def test_show_page_links_feed_and_cover_and_escapes_show_settings() -> None:
    show = show_info(title="AI<b>放送局</b>", description=EVIL)
    page = render_show_page(show, [episode(dt.date(2025, 7, 24))])
    doc = assert_well_formed(page)
    assert "<b>" not in page and "<script>alert" not in page
    assert doc.xpath("//h1")[0].text_content() == "AI<b>放送局</b>"
    assert [a.get("href") for a in doc.xpath("//a[contains(@class,'subscribe')]")] == ["feed.xml"]
    assert doc.xpath("//img[contains(@class,'cover')]")[0].get("src") == "cover.png"
    foreign = absolute_urls(doc)
    assert foreign == []  # pick titles are listed, their links live on the episode pages


def test_show_page_without_episodes_says_so() -> None:
    doc = assert_well_formed(render_show_page(show_info(), []))
    assert "まだエピソードはありません" in doc.text_content()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.com/a?b=1", "https://example.com/a?b=1"),
        (" http://example.com/ ", "http://example.com/"),
        ("javascript:alert(1)", None),
        ("JaVaScRiPt:alert(1)", None),
        ("java\nscript:alert(1)", None),
        ("data:text/html,hi", None),
        ("//evil.example/x", None),
        ("/relative", None),
        ("https://", None),
        ("https://exa mple.com", None),
        ("", None),
    ],
)
def test_safe_href_keeps_only_absolute_http_urls(url: str, expected: str | None) -> None:
    assert safe_href(url) == expected


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0:00"), (59.6, "1:00"), (725.4, "12:05"), (3723, "1:02:03")]
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_pages_play_the_mp3_under_its_own_file_name() -> None:
    day = dt.date(2026, 11, 20)
    files = {"mp3": "2026-11-20/zundamon-ai-2026-11-20.mp3", "page": "2026-11-20/index.html"}
    named = episode(day, files=files)
    doc = assert_well_formed(render_episode_page(show_info(), named, CUES))
    assert doc.xpath("//audio")[0].get("src") == "zundamon-ai-2026-11-20.mp3"  # the page sits next to it
    assert doc.xpath("//a[@download]")[0].get("href") == "zundamon-ai-2026-11-20.mp3"
    show_doc = assert_well_formed(render_show_page(show_info(), [named]))
    assert show_doc.xpath("//audio")[0].get("src") == "2026-11-20/zundamon-ai-2026-11-20.mp3"


def test_voicevox_credit_is_on_the_pages_of_voicevox_episodes() -> None:
    day = dt.date(2025, 7, 24)
    voiced, offline = episode(day, engine="voicevox"), episode(day - dt.timedelta(days=1))
    page = assert_well_formed(render_episode_page(show_info(), voiced, CUES))
    assert "音声: VOICEVOX:ずんだもん" in page.xpath("//footer")[0].text_content()
    assert "VOICEVOX" not in render_episode_page(show_info(), offline, CUES)
    show_page = assert_well_formed(render_show_page(show_info(), [voiced, offline]))
    assert "VOICEVOX:ずんだもん" in show_page.xpath("//footer")[0].text_content()
    assert "VOICEVOX" not in render_show_page(show_info(), [offline])
