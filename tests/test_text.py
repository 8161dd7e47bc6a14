"""Text fit for XML and people: every code point class a feed or an LLM can send, through to a published feed.

The hostile text enters where real text enters (the records built from feeds and LLM answers, and an
old episodes.json read back) and the published feed.xml must parse with lxml's strict XML parser.
"""

from __future__ import annotations

import json
from pathlib import Path

import lxml.etree
import lxml.html
import pytest

from tasks.upload import publish_episode
from tests.test_upload import DAY1, DAY2, publish, sample_inputs, sample_show
from zundacast.models import Candidate, Chapter, Cue, EpisodeRecord, Pick, Ranking, Summary
from zundacast.publishing.catalog import EPISODES_KEY, FEED_KEY
from zundacast.publishing.feed import ITUNES
from zundacast.storage import open_store
from zundacast.text import clean_text

C0 = "".join(chr(c) for c in range(0x00, 0x20) if chr(c) not in "\t\n")
C1 = "".join(chr(c) for c in range(0x80, 0xA0))
DEL = "\x7f"
NONCHARACTERS = "\ufffe\uffff\ufdd0\ufde7\ufdef\U0001fffe\U0001ffff\U0010fffe\U0010ffff"
LONE_SURROGATES = "\ud800\udfff"  # a Python str holds them (surrogateescape, broken JSON); UTF-8 cannot
BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
COMBINING = "e\u0301 か\u3099"  # decomposed é and が: NFC composes them
ASTRAL = "😀🇯🇵𠮷"  # emoji, a flag (two regional indicators) and a CJK character outside the BMP
HOSTILE = f"Rust{C0}{C1}{DEL}と{NONCHARACTERS}{LONE_SURROGATES}{BIDI}Python {COMBINING} {ASTRAL}\tの比較"
CLEAN = "RustとPython é が 😀🇯🇵𠮷\tの比較"

STRICT = lxml.etree.XMLParser(recover=False, resolve_entities=False, no_network=True)


def test_clean_text_removes_each_class_and_composes() -> None:
    assert clean_text(HOSTILE) == CLEAN
    for part in (C0, C1, DEL, NONCHARACTERS, LONE_SURROGATES, BIDI):
        assert clean_text(f"a{part}b") == "ab", repr(part)
    assert clean_text("行1\n\t行2") == "行1\n\t行2"  # tab and newline are text
    assert clean_text(COMBINING) == "\u00e9 \u304c"
    assert clean_text(ASTRAL) == ASTRAL
    assert clean_text("\u200d\u200b👨\u200d👩") == "\u200d\u200b👨\u200d👩"  # joiners are not controls
    # every code point of every plane end is a non-character; the ones just before are not
    assert clean_text("".join(chr(p * 0x10000 + 0xFFFD) for p in range(17))) == "".join(
        chr(p * 0x10000 + 0xFFFD) for p in range(17))
    assert clean_text("".join(chr(p * 0x10000 + e) for p in range(17) for e in (0xFFFE, 0xFFFF))) == ""


def hostile_inputs(folder: Path):  # type: ignore[no-untyped-def]
    """The sample episode with HOSTILE in every text that reaches the feed, built as the stages build it."""
    bundle, script, ranking, summaries = sample_inputs(DAY2, folder)
    summaries = [Summary.model_validate({**s.model_dump(), "title": f"{HOSTILE} {n}", "summary": HOSTILE})
                 for n, s in enumerate(summaries)]
    picks = [Pick.model_validate({**p.model_dump(), "candidate": {**p.candidate.model_dump(),
                                                                  "title": HOSTILE}})
             for p in ranking.picks]
    chapters = [Chapter.model_validate({**c.model_dump(), "title": f"{HOSTILE} {c.title}"})
                for c in bundle.chapters]
    cues = [Cue.model_validate({**c.model_dump(), "text": HOSTILE}) for c in bundle.cues]
    bundle = bundle.model_validate({**bundle.model_dump(), "chapters": chapters, "cues": cues})
    script = script.model_validate({**script.model_dump(), "sections": [
        {**section.model_dump(), "title": HOSTILE} for section in script.sections]})
    return bundle, script, Ranking(picks=picks), summaries


def test_hostile_titles_publish_a_feed_that_strict_xml_parses(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "public"))
    bundle, script, ranking, summaries = hostile_inputs(tmp_path / "work")
    assert Candidate(url="https://e.example/", title=HOSTILE, source="x").title == CLEAN  # cleaned on entry
    publish_episode(bundle, script, ranking, summaries, sample_show(), store)

    feed = lxml.etree.fromstring(store.get(FEED_KEY), STRICT)  # raises on any character XML forbids
    item = feed.find("channel/item")
    assert item is not None
    title = item.findtext("title")
    assert title is not None and f"{CLEAN} 0 / {CLEAN} 1"[:40] in title
    assert item.findtext(f"{{{ITUNES}}}title") == title
    notes = item.findtext("description") or ""
    assert f"{CLEAN} 0" in notes and f"{CLEAN} 1" in notes
    # every text node and attribute holds only what clean_text keeps
    for element in feed.iter():
        for text in (element.text or "", element.tail or "", *element.attrib.values()):
            assert clean_text(text) == text

    # the side files and pages carry the same clean text
    day = DAY2.isoformat()
    chapters = json.loads(store.get(f"{day}/chapters.json"))  # type: ignore[arg-type]
    assert chapters["chapters"][0]["title"] == f"{CLEAN} オープニング"
    vtt = store.get(f"{day}/transcript.vtt").decode("utf-8")  # type: ignore[union-attr]
    assert CLEAN.replace("\t", " ") in vtt.replace("\t", " ") and "\x1b" not in vtt
    page = store.get(f"{day}/index.html").decode("utf-8")  # type: ignore[union-attr]
    assert clean_text(page) == page and CLEAN in lxml.html.document_fromstring(page).text_content()
    record = json.loads(store.get(EPISODES_KEY))["episodes"][0]  # type: ignore[arg-type]
    assert record["picks"][0]["title"] == f"{CLEAN} 0"


def test_an_old_index_holding_control_characters_heals_on_the_next_publish(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "public"))
    publish(DAY1, tmp_path / "work", store, show=sample_show())
    # an index written before the cleaning existed: valid JSON, but \u0001 cannot go into XML
    # (the old index format too: a plain list of records)
    old = json.loads(store.get(EPISODES_KEY))["episodes"]  # type: ignore[index]
    old[0]["title"] = "壊れた\u0001タイトル\u001b[31m"
    old[0]["picks"][0]["title"] = "\u202eトピック\ufffe"
    store.put(EPISODES_KEY, json.dumps(old, ensure_ascii=False).encode("utf-8"), "application/json")
    assert b"\\u0001" in store.get(EPISODES_KEY)  # type: ignore[operator]

    publish(DAY2, tmp_path / "work", store, show=sample_show())
    feed = lxml.etree.fromstring(store.get(FEED_KEY), STRICT)
    titles = [item.findtext("title") for item in feed.iter("item")]
    assert titles[1] == "壊れたタイトル[31m"
    healed = json.loads(store.get(EPISODES_KEY))["episodes"]  # type: ignore[index]
    assert [r["title"] for r in healed][1] == "壊れたタイトル[31m"
    assert healed[1]["picks"][0]["title"] == "トピック"
    assert EpisodeRecord.model_validate(healed[1]).title == "壊れたタイトル[31m"


@pytest.mark.parametrize("raw", ["\x01", "&#1;", "\ufffe"])
def test_a_feed_entry_title_with_a_control_character_is_cleaned_on_entry(raw: str) -> None:
    # "&#1;" is harmless text once a feed parser has decoded it: what reaches us is the character itself,
    # which is removed; the literal five characters stay text and the XML writer escapes them
    title = Candidate(url="https://e.example/", title=f"a{raw}b", source="x").title
    assert title == ("a&#1;b" if raw == "&#1;" else "ab")
