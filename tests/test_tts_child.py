"""OpenJTalk synthesis in a child process (zundacast/audio/tts_child.py) and releasing pyopenjtalk's
dictionaries (zundacast/memory.py): same audio and readings as in this process, errors come back typed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from zundacast.audio.tts_child import synthesize_to_cache_in_child
from zundacast.audio.utterances import Utterance, load_utterance, synthesize_to_cache
from zundacast.memory import release_openjtalk_dictionaries
from zundacast.show import OpenJTalkConfig
from zundacast.voices import PermanentVoiceError
from zundacast.voices.openjtalk import OpenJTalkVoice, load_pyopenjtalk

# 上手 / 行った / 生物 have several readings: Sudachi's reading fix-up (pyopenjtalk-plus) picks one.
SENTENCES = ["上手な人が行った場所で生物を見たのだ。", "今日は良い天気なのだ。",
             "上手な人が行った場所で生物を見たのだ。"]


def utterances(texts: list[str]) -> list[Utterance]:
    return [Utterance(section=0, sentence=i, speech=text, text=text, section_title="オープニング")
            for i, text in enumerate(texts)]


def test_child_fills_the_cache_with_the_same_audio_as_this_process(tmp_path: Path) -> None:
    voice = OpenJTalkVoice(OpenJTalkConfig(speed=1.1), concurrency=2)
    here, made_here = synthesize_to_cache(voice, utterances(SENTENCES), tmp_path / "here")
    there, made_there = synthesize_to_cache_in_child(voice, utterances(SENTENCES), tmp_path / "child")
    assert made_here == made_there == 2  # the repeated sentence is synthesized once
    assert [p.name for p in there] == [p.name for p in here]  # same cache keys: same engine settings
    assert there[0] == there[2] and all(p.is_file() for p in there)
    for mine, theirs in zip(here, there, strict=True):
        assert np.array_equal(load_utterance(mine).samples, load_utterance(theirs).samples)


def test_nothing_to_synthesize_starts_no_child(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    voice = OpenJTalkVoice()
    first, _ = synthesize_to_cache(voice, utterances(SENTENCES[:2]), tmp_path)
    load_pyopenjtalk()  # as after the offline writer: the cache key's version is known without a child

    def no_child(*args: object, **kwargs: object) -> None:
        raise AssertionError("a child process was started although every utterance is cached")

    monkeypatch.setattr(subprocess, "Popen", no_child)
    assert synthesize_to_cache_in_child(voice, utterances(SENTENCES[:2]), tmp_path) == (first, 0)


def test_a_refused_utterance_comes_back_as_a_permanent_error_naming_it(tmp_path: Path) -> None:
    bad = [*utterances(SENTENCES[1:2]), Utterance(section=0, sentence=4, speech="　", text="（空白）",
                                                   section_title="ニュース")]
    with pytest.raises(PermanentVoiceError) as raised:
        synthesize_to_cache_in_child(OpenJTalkVoice(), bad, tmp_path)
    message = str(raised.value)
    assert "sentence 5 of section 「ニュース」" in message and "（空白）" in message
    assert "1 attempt, not retried" in message


def test_released_dictionaries_load_again_with_the_same_readings() -> None:
    pyopenjtalk = load_pyopenjtalk()

    def readings() -> list[tuple[str, str]]:
        return [(node["string"], node["pron"]) for node in pyopenjtalk.run_frontend(SENTENCES[0])]

    before = readings()
    assert release_openjtalk_dictionaries() is True
    assert pyopenjtalk._global_jtalk._instance is None
    assert release_openjtalk_dictionaries() is False  # nothing held any more
    assert readings() == before
    assert ("上手", "ジョーズ") in before  # not カミテ: Sudachi's fix-up is still in force after reloading


def test_dropped_dictionary_pages_come_back_on_use_with_the_same_readings() -> None:
    from zundacast.memory import drop_data_file_pages

    pyopenjtalk = load_pyopenjtalk()
    before = [pyopenjtalk.g2p(text, kana=True) for text in SENTENCES]  # maps MeCab's and Sudachi's files

    def resident_dictionary_kb() -> int:
        kb, current = 0, ""
        with open("/proc/self/smaps", encoding="utf-8") as smaps:
            for line in smaps:
                head = line.split()
                if not head[0].endswith(":"):
                    current = head[5] if len(head) > 5 else ""
                elif head[0] == "Rss:" and current.endswith(("system.dic", "sys.dic")):
                    kb += int(head[1])
        return kb

    assert resident_dictionary_kb() > 10_000
    assert drop_data_file_pages() > 0
    assert resident_dictionary_kb() < 1_000
    assert [pyopenjtalk.g2p(text, kana=True) for text in SENTENCES] == before
    assert resident_dictionary_kb() > 0  # mapped in again, as far as these sentences needed
