"""ID3 chapters every player reads: the project's ffmpeg and mutagen list every chapter, of any length."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from pathlib import Path

import pytest
from imageio_ffmpeg import get_ffmpeg_exe
from mutagen.id3 import ID3, Encoding

from zundacast.audio.tags import write_tags
from zundacast.models import Chapter, Script, Section, Sentence
from zundacast.show import ShowInfo

SHOW = ShowInfo(id="zundamon-ai", title="株式会社ずんだもん技術室AI放送局")
# 6 to 96 characters: a v2.4 TIT2 of 42+ Japanese characters (128+ bytes in UTF-8) is what ffmpeg dropped
TITLES = [
    "オープニング",
    "国産大規模言語モデルが日本語ベンチマークで最高性能を達成し商用利用可能なライセンスで公開された件について",
    "クラウド障害の原因は設定変更の誤りで複数のリージョンにまたがって数時間にわたりサービスが停止し多くの企業に影響が出た件の詳細な振り返りと今後の再発防止策",
    ("生成AIの導入に関する企業調査の結果、約七割の企業が何らかの形で業務に取り入れていると回答したが、"
     "セキュリティとガバナンスの課題が残り、専門人材の不足も深刻であることが明らかになった 🚀 e\u0301"),
    "エンディング",
]


def metadata_chapters(path: Path) -> list[tuple[int, str]]:
    """(start in ms, title) of every chapter ffmpeg finds, from its ffmetadata dump."""
    done = subprocess.run([get_ffmpeg_exe(), "-nostdin", "-i", str(path), "-f", "ffmetadata", "-"],
                          capture_output=True, check=True)
    text = done.stdout.decode("utf-8")
    chapters = []
    for block in text.split("[CHAPTER]")[1:]:
        start = int(re.search(r"^START=(\d+)$", block, re.M).group(1))  # type: ignore[union-attr]
        title = re.search(r"^title=(.*)$", block, re.M).group(1)  # type: ignore[union-attr]
        chapters.append((start, title))
    return chapters


@pytest.fixture
def tagged(tmp_path: Path) -> tuple[Path, list[Chapter]]:
    """A real 10 s MP3 with five chapters whose titles run up to 96 characters."""
    path = tmp_path / "episode.mp3"
    subprocess.run([get_ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
                    "sine=frequency=440:duration=10", "-b:a", "64k", str(path)], check=True)
    chapters = [Chapter(title=title, start_s=2.0 * n, end_s=2.0 * (n + 1),
                        url="https://example.com/a" if 0 < n < 4 else "")
                for n, title in enumerate(TITLES)]
    sentences = [Sentence(text="本文なのだ。", speech="ほんぶん")]
    sections = [Section(kind="article", title=t, url="https://example.com/a", sentences=sentences)
                for t in TITLES]
    script = Script(date=dt.date(2026, 11, 20), weekday="金曜日", show_title=SHOW.title, sections=sections)
    write_tags(path, script, SHOW, chapters)
    return path, chapters


def test_ffmpeg_lists_every_long_japanese_chapter_title(tagged: tuple[Path, list[Chapter]]) -> None:
    path, chapters = tagged
    assert len(TITLES[2]) >= 60 and len(TITLES[3]) >= 90
    # ffmpeg lists CHAP frames in file order (it ignores the CTOC): they must be written in time order
    listed = metadata_chapters(path)
    assert [title for _, title in listed] == [chapter.title for chapter in chapters]
    # ffmpeg moves starts back by the MP3 encoder delay (about 25 ms); the order and spacing stay
    for (start_ms, _), chapter in zip(listed, chapters, strict=True):
        assert abs(start_ms - chapter.start_s * 1000) <= 60


def test_mutagen_reads_the_chapters_back_as_id3v23_utf16(tagged: tuple[Path, list[Chapter]]) -> None:
    path, chapters = tagged
    tags = ID3(str(path))
    assert tags.version[:2] == (2, 3)
    (toc,) = tags.getall("CTOC")
    frames = {frame.element_id: frame for frame in tags.getall("CHAP")}
    ordered = [frames[element_id] for element_id in toc.child_element_ids]
    assert [frame.sub_frames["TIT2"].text[0] for frame in ordered] == [chapter.title for chapter in chapters]
    assert [frame.start_time for frame in ordered] == [round(c.start_s * 1000) for c in chapters]
    # v2.3 has no UTF-8: Japanese must be written as UTF-16, in the chapters and the episode's own tags
    assert {frame.sub_frames["TIT2"].encoding for frame in ordered} == {Encoding.UTF16}
    assert tags["TIT2"].encoding == Encoding.UTF16 and "2026年11月20日" in tags["TIT2"].text[0]
    assert str(tags["TDRC"].text[0]).startswith("2026")  # saved as TYER/TDAT, read back as a date
    assert [frame.sub_frames.getall("WXXX")[0].url for frame in ordered[1:4]] == ["https://example.com/a"] * 3
