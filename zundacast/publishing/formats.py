"""The episode's side files: the WebVTT transcript and Podcasting 2.0 JSON chapters.

WebVTT: https://www.w3.org/TR/webvtt1/ (cue text escapes `&`, `<`, `>`; a blank line ends a cue,
so cue text never holds one; `-->` is not allowed inside it). Each cue names its speaker with a
voice span (`<v ずんだもん>…`), which players show and screen readers announce.
Chapters: https://github.com/Podcastindex-org/podcast-namespace/blob/main/docs/examples/chapters/jsonChapters.md
"""

from __future__ import annotations

import json
import re
from html import escape, unescape

from zundacast.models import Chapter, Cue

CHAPTERS_VERSION = "1.2.0"


def vtt_timestamp(seconds: float) -> str:
    """HH:MM:SS.mmm (hours always present, so any length of episode reads the same way)."""
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def vtt_text(text: str) -> str:
    """Cue text as WebVTT wants it: escaped, no blank lines, no arrow."""
    text = escape(text, quote=False)  # &amp; &lt; &gt;: WebVTT's character references are HTML's
    lines = [line.strip() for line in text.replace("\r", "\n").split("\n")]
    return "\n".join(line for line in lines if line) or " "


def vtt_voice(speaker: str) -> str:
    """The opening voice tag for `speaker` ("" for none); the annotation holds no `&`, `>` or line end."""
    name = " ".join(escape(speaker, quote=False).split())
    return f"<v {name}>" if name else ""


def render_vtt(cues: list[Cue], speaker: str = "") -> str:
    """A WebVTT file: one numbered cue per utterance, in time order; end never before start; each cue in
    its own speaker's voice span (a two-host episode), else in `speaker`'s when one is given."""
    blocks = ["WEBVTT"]
    for number, cue in enumerate(sorted(cues, key=lambda c: c.start_s), start=1):
        end_s = max(cue.end_s, cue.start_s)
        voice = vtt_voice(cue.speaker or speaker)
        blocks.append(
            f"{number}\n{vtt_timestamp(cue.start_s)} --> {vtt_timestamp(end_s)}\n{voice}{vtt_text(cue.text)}"
        )
    return "\n\n".join(blocks) + "\n"


_VOICE = re.compile(r"^<v(?:\.[^ \t>]*)?[ \t][^>]*>|</v>$")
_VOICE_NAME = re.compile(r"^<v(?:\.[^ \t>]*)?[ \t]([^>]*)>")
_VTT_TIMING = re.compile(r"^(\d{2,}):(\d{2}):(\d{2})\.(\d{3}) --> (\d{2,}):(\d{2}):(\d{2})\.(\d{3})")


def parse_vtt(text: str) -> list[Cue]:
    """The cues of a WebVTT file written by `render_vtt` (for pages of past episodes and for tests), each
    with its `<v …>` voice as its speaker."""
    cues: list[Cue] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        lines = block.strip("\n").split("\n")
        for index, line in enumerate(lines):
            match = _VTT_TIMING.match(line)
            if match:
                h1, m1, s1, ms1, h2, m2, s2, ms2 = (int(part) for part in match.groups())
                raw = "\n".join(lines[index + 1 :])
                voice = _VOICE_NAME.match(raw)
                body = unescape(_VOICE.sub("", raw))
                cues.append(
                    Cue(
                        start_s=h1 * 3600 + m1 * 60 + s1 + ms1 / 1000,
                        end_s=h2 * 3600 + m2 * 60 + s2 + ms2 / 1000,
                        text=body,
                        speaker=unescape(voice.group(1)).strip() if voice else "",
                    )
                )
                break
    return cues


def render_chapters_json(chapters: list[Chapter], title: str = "", podcast_name: str = "") -> str:
    """Podcasting 2.0 JSON chapters (version 1.2.0): startTime/endTime in seconds, title, url when known."""
    items = []
    for chapter in sorted(chapters, key=lambda c: c.start_s):
        item: dict[str, object] = {"startTime": round(chapter.start_s, 3), "title": chapter.title}
        if chapter.end_s > chapter.start_s:
            item["endTime"] = round(chapter.end_s, 3)
        if chapter.url:
            item["url"] = chapter.url
        items.append(item)
    document: dict[str, object] = {"version": CHAPTERS_VERSION}
    if title:
        document["title"] = title
    if podcast_name:
        document["podcastName"] = podcast_name
    document["chapters"] = items
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"
