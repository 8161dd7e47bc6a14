"""ID3v2.3 tags with mutagen: title, show, host, date, cover, sources and chapters.

Chapters are ID3 CHAP frames (start/end in milliseconds, a TIT2 title and a
WXXX link for articles) listed in order by one top-level CTOC, which is what
podcast apps that read chapters from the file expect.

Why v2.3, not v2.4: ffmpeg's ID3 demuxer (so VLC, mpv and every player built on
libavformat) drops a v2.4 CHAP whose title sub-frame is 128 bytes or more (about 42
Japanese characters in UTF-8); it reads v2.3 chapters of any length, as do Apple
Podcasts and mutagen. v2.3 has no UTF-8, so text is UTF-16 (with a BOM), and the date
goes out as TYER/TDAT (mutagen converts TDRC on save).

ffmpeg also ignores the CTOC and lists chapters in the order their CHAP frames sit in the
file, while mutagen writes frames smallest first: `_TimeOrderedID3` writes the CHAP frames
last, in time order, so ffprobe and the players that do not sort list them in order.
"""

from __future__ import annotations

from pathlib import Path

from mutagen.id3 import (
    APIC,
    CHAP,
    COMM,
    CTOC,
    ID3,
    TALB,
    TCON,
    TDRC,
    TIT2,
    TLAN,
    TPE1,
    WXXX,
    CTOCFlags,
    Encoding,
    ID3Tags,
)

from zundacast.models import Chapter, Script
from zundacast.show import ShowInfo

BUNDLED_COVER = Path(__file__).resolve().parent.parent / "assets" / "cover.png"
NO_OFFSET = 0xFFFFFFFF  # CHAP byte offsets unused: times only
ID3_VERSION = 3  # see the module docstring
UTF16 = Encoding.UTF16  # the only Unicode encoding ID3v2.3 has


class _TimeOrderedID3(ID3):
    """ID3 whose CHAP frames are written after the others, in start-time order.

    mutagen orders frames by size in `_write` (its hook for the frame bytes: there is no public
    way to order frames), so each CHAP is serialized on its own through the same hook.
    tests/test_tags.py pins the result as ffmpeg reads it.
    """

    def _write(self, config):  # type: ignore[no-untyped-def]
        chapters = sorted(self.getall("CHAP"), key=lambda frame: frame.start_time)
        self.delall("CHAP")
        try:
            data = super()._write(config)
            for chapter in chapters:
                single = ID3Tags()
                single.add(chapter)
                data += single._write(config)
        finally:
            for chapter in chapters:
                self.add(chapter)
        return data


def episode_title(script: Script, show: ShowInfo) -> str:
    """The episode's title as tagged: show title and the date with its weekday."""
    d = script.date
    weekday = script.weekday[:1] if script.weekday else ""
    suffix = f"({weekday})" if weekday else ""
    return f"{show.title} {d.year}年{d.month}月{d.day}日{suffix}"


def cover_image(show: ShowInfo) -> Path | None:
    """The show's cover if it names an existing file (absolute path), else the bundled one, else None."""
    if show.cover and Path(show.cover).is_file():
        return Path(show.cover)
    return BUNDLED_COVER if BUNDLED_COVER.is_file() else None


def sources_text(script: Script) -> str:
    lines = [f"{section.title} {section.url}" for section in script.sections
             if section.kind == "article" and section.url]
    return "\n".join(lines)


def write_tags(path: Path, script: Script, show: ShowInfo, chapters: list[Chapter],
               cover: Path | None = None) -> None:
    tags = _TimeOrderedID3()
    tags.add(TIT2(encoding=UTF16, text=episode_title(script, show)))
    tags.add(TALB(encoding=UTF16, text=show.title))
    tags.add(TPE1(encoding=UTF16, text=show.host or show.author))
    tags.add(TDRC(encoding=UTF16, text=script.date.isoformat()))
    tags.add(TCON(encoding=UTF16, text="Podcast"))
    tags.add(TLAN(encoding=UTF16, text="jpn" if show.language.startswith("ja") else show.language))
    sources = sources_text(script)
    if sources:
        tags.add(COMM(encoding=UTF16, lang="jpn", desc="sources", text=sources))
    if cover is not None and cover.is_file():
        mime = "image/png" if cover.suffix.lower() == ".png" else "image/jpeg"
        tags.add(APIC(encoding=UTF16, mime=mime, type=3, desc="cover", data=cover.read_bytes()))
    ids = [f"chp{n}" for n in range(len(chapters))]
    if chapters:
        tags.add(CTOC(element_id="toc", flags=CTOCFlags.TOP_LEVEL | CTOCFlags.ORDERED, child_element_ids=ids,
                      sub_frames=[TIT2(encoding=UTF16, text="Chapters")]))
    for element_id, chapter in zip(ids, chapters, strict=True):
        sub_frames = [TIT2(encoding=UTF16, text=chapter.title)]
        if chapter.url:
            sub_frames.append(WXXX(encoding=UTF16, desc="", url=chapter.url))
        tags.add(CHAP(element_id=element_id, start_time=round(chapter.start_s * 1000),
                      end_time=round(chapter.end_s * 1000), start_offset=NO_OFFSET, end_offset=NO_OFFSET,
                      sub_frames=sub_frames))
    tags.save(str(path), v2_version=ID3_VERSION)
