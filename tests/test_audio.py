"""The synthesis stage: utterance cache, assembly, mastering, tags and the MP3 check, on real audio."""

from __future__ import annotations

import datetime as dt
import itertools
import math
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
from mutagen.id3 import ID3
from mutagen.mp3 import MP3

from tasks.synthesize import synthesize_script
from tests.fakes.voicevox import fake_voicevox
from zundacast.audio import (
    check_mp3,
    cover_image,
    decode,
    episode_title,
    make_jingle,
    master_and_decode,
    split_speech,
    write_tags,
)
from zundacast.audio.utterances import plan_utterances, synthesize_utterances
from zundacast.errors import EpisodeCheckError
from zundacast.models import AudioBundle, Script, Section, Sentence
from zundacast.show import AudioConfig, OpenJTalkConfig, ShowInfo, VoicevoxConfig
from zundacast.stage import is_permanent
from zundacast.voices import PCM, PermanentVoiceError
from zundacast.voices.openjtalk import OpenJTalkVoice
from zundacast.voices.voicevox import VoicevoxVoice

SHOW = ShowInfo(id="zundamon-ai", title="株式会社ずんだもん技術室AI放送局", host="ずんだもん")


def sentence(text: str) -> Sentence:
    return Sentence(text=text, speech=text)


def make_script() -> Script:
    return Script(
        date=dt.date(2025, 7, 24), weekday="木曜日", show_title=SHOW.title,
        sections=[
            Section(kind="opening", title="オープニング",
                    sentences=[sentence("こんにちは、ずんだもんなのだ。"),
                               sentence("今日は7月24日、木曜日なのだ！")]),
            Section(kind="article", title="新しいGPUの話", url="https://example.com/gpu",
                    sentences=[Sentence(text="タイトルは「新しいGPU」なのだ。",
                                        speech="タイトルは「新しいジーピーユー」なのだ。"),
                               sentence("とても速いらしいのだ。")]),
            Section(kind="article", title="AIエージェント入門", url="https://example.com/agent",
                    sentences=[Sentence(text="タイトルは「AIエージェント入門」なのだ。",
                                        speech="タイトルは「エーアイエージェント入門」なのだ。"),
                               sentence("みんなも試してみるのだ。")]),
            Section(kind="closing", title="エンディング",
                    sentences=[sentence("今日はここまでなのだ。"), sentence("バイバイなのだ！")]),
        ])


class CountingVoice:
    """Wraps an engine and records every text it is asked to speak."""

    def __init__(self, inner: OpenJTalkVoice) -> None:
        self.inner = inner
        self.name = inner.name
        self.max_chars = inner.max_chars
        self.concurrency = inner.concurrency
        self.spoken: list[str] = []
        self._lock = threading.Lock()

    def cache_key(self) -> str:
        return self.inner.cache_key()

    def synthesize(self, text: str) -> PCM:
        with self._lock:
            self.spoken.append(text)
        return self.inner.synthesize(text)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AudioBundle, Path]]:
    """One OpenJTalk episode shared by the read-only tests (the home is this module's own)."""
    home = tmp_path_factory.mktemp("audio-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ZUNDACAST_HOME", str(home))
        bundle = synthesize_script(make_script(), OpenJTalkVoice(), AudioConfig(), SHOW)
    yield bundle, home


@pytest.fixture
def warm_speech(rendered: tuple[AudioBundle, Path], isolated_env: Path) -> Path:
    """This test's home holding the utterances `rendered` spoke (make_script's eight), for tests about
    something other than speaking them: assembly, editing, music, memory."""
    shutil.copytree(rendered[1] / "tts", isolated_env / "tts", dirs_exist_ok=True)
    return isolated_env


def ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def decode_at(path: Path, rate: int) -> np.ndarray:
    out = subprocess.run([ffmpeg(), "-v", "error", "-i", str(path), "-ac", "1", "-af", f"aresample={rate}",
                          "-f", "f32le", "pipe:1"], capture_output=True, check=True).stdout
    return np.frombuffer(out, dtype="<f4")


# --- the finished episode ----------------------------------------------------------------------------------

def test_episode_is_mastered_to_minus_16_lufs_and_minus_1_dbtp(rendered: tuple[AudioBundle, Path]) -> None:
    bundle, _ = rendered
    path = Path(bundle.mp3_path)
    samples = decode_at(path, 44100)
    lufs = pyloudnorm.Meter(44100).integrated_loudness(samples.astype(np.float64))
    assert lufs == pytest.approx(-16.0, abs=1.0)
    assert bundle.loudness_lufs == pytest.approx(lufs, abs=0.2)
    oversampled = decode_at(path, 192000)  # 4x+: the peaks between samples
    true_peak = 20 * math.log10(float(np.max(np.abs(oversampled))))
    assert true_peak <= -1.0
    assert bundle.true_peak_dbtp <= -1.0


def test_episode_is_a_mono_96k_mp3_named_by_its_hash(rendered: tuple[AudioBundle, Path]) -> None:
    import hashlib

    bundle, home = rendered
    path = Path(bundle.mp3_path)
    assert path.parent == home / "work" / "zundamon-ai" / "2025-07-24"
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == bundle.sha256
    assert path.name == f"episode-{bundle.sha256[:12]}.mp3"
    assert bundle.size_bytes == len(data)
    info = MP3(path).info
    assert info.channels == 1 and info.sample_rate == 44100 and info.bitrate == 96000
    assert info.length == pytest.approx(bundle.duration_s, rel=0.01)
    assert len(decode(path)[0]) / 44100 == pytest.approx(bundle.duration_s, abs=0.03)  # gapless: no padding
    assert bundle.engine == "openjtalk" and bundle.utterances == 8 and bundle.synthesized == 8
    assert list(path.parent.glob(".episode-*")) == []  # no temporary left behind


def test_chapters_in_the_mp3_match_the_transcript(rendered: tuple[AudioBundle, Path]) -> None:
    bundle, _ = rendered
    tags = ID3(bundle.mp3_path)
    (toc,) = tags.getall("CTOC")
    chaps = {frame.element_id: frame for frame in tags.getall("CHAP")}
    ordered = [chaps[element_id] for element_id in toc.child_element_ids]
    titles = [frame.sub_frames["TIT2"].text[0] for frame in ordered]
    assert titles == ["オープニング", "新しいGPUの話", "AIエージェント入門", "エンディング"]
    assert [c.title for c in bundle.chapters] == titles
    assert ordered[1].sub_frames.getall("WXXX")[0].url == "https://example.com/gpu"
    # every chapter starts with its first sentence (the first one at 0, before the opening jingle)
    first_cues = [bundle.cues[0], bundle.cues[2], bundle.cues[4], bundle.cues[6]]
    assert first_cues[1].text == "タイトルは「新しいGPU」なのだ。"  # cues show the display text
    assert ordered[0].start_time == 0
    for frame, cue in zip(ordered[1:], first_cues[1:], strict=True):
        assert abs(frame.start_time / 1000 - cue.start_s) <= 0.05
    for earlier, later in itertools.pairwise(ordered):
        assert earlier.end_time == later.start_time
    assert ordered[-1].end_time / 1000 == pytest.approx(bundle.duration_s, abs=0.05)
    # and the audio agrees: quiet just before each chapter's first sentence, speech right after it
    samples = decode(Path(bundle.mp3_path))[0]
    for cue in first_cues:
        at = int(cue.start_s * 44100)
        before = samples[at - int(0.2 * 44100): at - int(0.04 * 44100)]
        after = samples[at: at + int(0.4 * 44100)]
        assert np.sqrt(np.mean(before**2)) < 0.01 < np.sqrt(np.mean(after**2)), cue.text


def test_cues_follow_each_other_with_the_configured_pauses(rendered: tuple[AudioBundle, Path]) -> None:
    bundle, _ = rendered
    cues = bundle.cues
    assert len(cues) == 8
    assert all(c.end_s > c.start_s for c in cues)
    assert all(a.end_s <= b.start_s for a, b in itertools.pairwise(cues))
    within_section = cues[1].start_s - cues[0].end_s
    assert within_section == pytest.approx(AudioConfig().sentence_pause_s, abs=0.002)
    between_articles = cues[4].start_s - cues[3].end_s  # section pause + jingle + gap
    assert between_articles > AudioConfig().section_pause_s + 1.0


def test_tags_name_the_episode_the_show_and_the_sources(rendered: tuple[AudioBundle, Path]) -> None:
    bundle, _ = rendered
    tags = ID3(bundle.mp3_path)
    assert tags.version[:2] == (2, 3)
    assert tags["TIT2"].text[0] == episode_title(make_script(), SHOW)
    assert "2025年7月24日" in tags["TIT2"].text[0]
    assert tags["TALB"].text[0] == SHOW.title and tags["TPE1"].text[0] == "ずんだもん"
    assert str(tags["TDRC"].text[0]).startswith("2025")
    (comment,) = tags.getall("COMM")
    assert "https://example.com/gpu" in comment.text[0] and "AIエージェント入門" in comment.text[0]
    assert bool(tags.getall("APIC")) == (cover_image(SHOW) is not None)


def test_the_check_accepts_the_finished_episode(rendered: tuple[AudioBundle, Path]) -> None:
    bundle, _ = rendered
    checked = check_mp3(bundle.mp3_path, bundle.duration_s, max_silence_s=1.5)
    assert checked.duration_s == pytest.approx(bundle.duration_s, rel=0.01)
    assert 0.9 < checked.longest_silence_s < 1.5  # the section pause, not more


# --- the utterance cache -----------------------------------------------------------------------------------

def test_same_script_twice_synthesizes_nothing_the_second_time(tmp_path: Path) -> None:
    first = CountingVoice(OpenJTalkVoice())
    bundle = synthesize_script(make_script(), first, AudioConfig(), SHOW, work_dir=tmp_path)
    assert len(first.spoken) == 8 and bundle.synthesized == 8
    second = CountingVoice(OpenJTalkVoice())
    again = synthesize_script(make_script(), second, AudioConfig(), SHOW, work_dir=tmp_path)
    assert second.spoken == [] and again.synthesized == 0 and again.utterances == 8
    assert again.sha256 == bundle.sha256 and again.mp3_path == bundle.mp3_path  # identical file, same name


def test_changing_one_sentence_resynthesizes_only_that_utterance(tmp_path: Path, warm_speech: Path) -> None:
    # the cache already holds the unedited script's utterances (warm_speech: `rendered` spoke them)
    edited = make_script()
    edited.sections[1].sentences[1] = sentence("とても速くて安いらしいのだ。")
    counting = CountingVoice(OpenJTalkVoice())
    bundle = synthesize_script(edited, counting, AudioConfig(), SHOW, work_dir=tmp_path)
    assert counting.spoken == ["とても速くて安いらしいのだ。"]
    assert bundle.synthesized == 1 and bundle.cues[3].text == "とても速くて安いらしいのだ。"
    # other settings are another cache: nothing is reused across voices
    other = CountingVoice(OpenJTalkVoice(OpenJTalkConfig(speed=1.3)))
    pcms, synthesized = synthesize_utterances(other, plan_utterances(edited, 400)[:2], warm_speech / "tts")
    assert synthesized == 2 and len(other.spoken) == 2 and len(pcms) == 2


# --- VOICEVOX end to end, retries and refusals -------------------------------------------------------------

def test_voicevox_episode_retries_server_errors(tmp_path: Path) -> None:
    with fake_voicevox() as fake:
        fake.fail_next = [500, 500]  # the first two synthesis calls fail, then the engine recovers
        voice = VoicevoxVoice(VoicevoxConfig(), url=fake.url, concurrency=1)
        bundle = synthesize_script(make_script(), voice, AudioConfig(), SHOW, work_dir=tmp_path,
                                   backoff_s=0.01)
        voice.close()
    assert bundle.engine == "voicevox" and bundle.synthesized == 8
    assert fake.count("/synthesis") == 8 + 2
    assert sorted(fake.synthesized_texts()) == sorted(u.speech for u in plan_utterances(make_script(), 300))
    assert bundle.loudness_lufs == pytest.approx(-16.0, abs=1.0) and bundle.true_peak_dbtp <= -1.0
    assert Path(bundle.mp3_path).is_file()


def test_voicevox_refusal_fails_at_once_naming_the_sentence_and_engine(tmp_path: Path) -> None:
    script = make_script()
    with fake_voicevox() as fake:
        fake.reject["とても速いらしいのだ。"] = 422
        voice = VoicevoxVoice(VoicevoxConfig(), url=fake.url, concurrency=2)
        with pytest.raises(PermanentVoiceError) as caught:
            synthesize_script(script, voice, AudioConfig(), SHOW, work_dir=tmp_path, backoff_s=0.01)
        voice.close()
    message = str(caught.value)
    assert "voicevox" in message and "とても速いらしいのだ。" in message and "新しいGPUの話" in message
    assert "HTTP 422" in message
    assert is_permanent(caught.value)
    refused = [r for r in fake.requests if r["params"].get("text") == "とても速いらしいのだ。"]
    assert len(refused) == 1  # a refusal is not retried
    assert list(tmp_path.glob("*.mp3")) == []


def test_voicevox_outage_fails_after_the_retries(tmp_path: Path) -> None:
    with fake_voicevox() as fake:
        fake.fail_next = [503] * 50
        voice = VoicevoxVoice(VoicevoxConfig(), url=fake.url, concurrency=1)
        with pytest.raises(Exception) as caught:
            synthesize_script(make_script(), voice, AudioConfig(), SHOW, work_dir=tmp_path, attempts=3,
                              backoff_s=0.01)
        voice.close()
    assert "voicevox" in str(caught.value) and "3 attempts" in str(caught.value)
    assert not is_permanent(caught.value)  # Prefect's task retries may still heal an outage
    assert 3 <= fake.count("/synthesis") <= 3 + 1  # the one failing utterance; at most one more had started


# --- the MP3 check rejects broken files --------------------------------------------------------------------

def test_check_rejects_a_truncated_mp3(rendered: tuple[AudioBundle, Path], tmp_path: Path) -> None:
    bundle, _ = rendered
    data = Path(bundle.mp3_path).read_bytes()
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(EpisodeCheckError, match="decodes to"):
        check_mp3(cut, bundle.duration_s, max_silence_s=1.5)


def test_check_rejects_a_silent_mp3(tmp_path: Path) -> None:
    silent = tmp_path / "silent.mp3"
    subprocess.run([ffmpeg(), "-v", "error", "-f", "lavfi", "-i", "anullsrc=r=44100:cl=mono", "-t", "10",
                    "-c:a", "libmp3lame", "-b:a", "96k", str(silent)], check=True)
    with pytest.raises(EpisodeCheckError, match="silence"):
        check_mp3(silent, 10.0, max_silence_s=1.5)


def test_check_rejects_tiny_and_missing_files(tmp_path: Path) -> None:
    tiny = tmp_path / "tiny.mp3"
    tiny.write_bytes(b"ID3\x04\x00\x00\x00\x00\x01\x76" + bytes(250))  # a 260-byte "episode": tags, no audio
    with pytest.raises(EpisodeCheckError):
        check_mp3(tiny, 600.0, max_silence_s=1.5)
    with pytest.raises(EpisodeCheckError, match="does not exist"):
        check_mp3(tmp_path / "nothing.mp3", 600.0, max_silence_s=1.5)


def test_check_rejects_a_dropout_in_the_middle(tmp_path: Path) -> None:
    rate = 44100
    t = np.arange(12 * rate) / rate
    tone = 0.3 * np.sin(2 * np.pi * 440 * t)
    tone[5 * rate: 8 * rate] = 0.0  # three seconds gone
    path = tmp_path / "dropout.mp3"
    subprocess.run([ffmpeg(), "-v", "error", "-f", "f32le", "-ar", str(rate), "-ac", "1", "-i", "pipe:0",
                    "-c:a", "libmp3lame", "-b:a", "96k", str(path)], input=tone.astype("<f4").tobytes(),
                   check=True)
    with pytest.raises(EpisodeCheckError, match=r"silence at 00:05"):
        check_mp3(path, 12.0, max_silence_s=1.5)
    assert check_mp3(path, 12.0, max_silence_s=3.5).longest_silence_s == pytest.approx(3.0, abs=0.1)


def test_mastering_decodes_the_tagged_file_once_and_the_check_reuses_it(tmp_path: Path) -> None:
    rate = 44100
    t = np.arange(12 * rate) / rate
    tone = (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    tone[5 * rate: 8 * rate] = 0.0
    path = tmp_path / "episode.mp3"
    mastered, decoded = master_and_decode(
        tone, rate, AudioConfig(), path, finish=lambda p: write_tags(p, make_script(), SHOW, [], None))
    assert mastered.passes == 1  # the common case: one encode
    assert mastered.loudness_lufs == pytest.approx(-16.0, abs=0.2)
    assert mastered.true_peak_dbtp <= -1.0
    assert str(ID3(path)["TIT2"]) == episode_title(make_script(), SHOW)  # tagged by `finish`
    fresh, errors, code = decode(path, rate)
    assert (code, errors) == (0, "")
    np.testing.assert_array_equal(decoded, fresh)
    assert check_mp3(path, 12.0, max_silence_s=3.5, decoded=decoded).longest_silence_s == pytest.approx(
        3.0, abs=0.1)
    with pytest.raises(EpisodeCheckError, match=r"silence at 00:05"):
        check_mp3(path, 12.0, max_silence_s=1.5, decoded=decoded)


# --- pieces ------------------------------------------------------------------------------------------------

def test_long_speech_is_split_at_sentence_ends_then_commas() -> None:
    text = "これは一つ目の文なのだ。" * 3 + "とても、とても、とても長い文なのだ。"
    parts = split_speech(text, 30)
    assert "".join(parts) == text
    assert all(len(p) <= 30 for p in parts)
    assert parts[0].endswith("。")
    assert split_speech("あ" * 70, 30) == ["あ" * 30, "あ" * 30, "あ" * 10]
    assert split_speech("短いのだ。", 30) == ["短いのだ。"]


def test_punctuation_only_sentences_are_not_sent_to_the_engine() -> None:
    script = make_script()
    script.sections[0].sentences.append(Sentence(text="……", speech="……"))
    assert len(plan_utterances(script, 300)) == 8


def test_jingle_is_deterministic_and_fades_out() -> None:
    first, second = make_jingle(44100), make_jingle(44100)
    np.testing.assert_array_equal(first, second)
    assert 1.0 <= len(first) / 44100 <= 2.0
    assert float(np.max(np.abs(first))) == pytest.approx(0.5, abs=1e-3)
    assert float(np.max(np.abs(first[-100:]))) < 1e-3


def test_background_music_is_ducked_under_the_voice() -> None:
    from zundacast.audio import mix_music
    from zundacast.audio.assemble import Timeline
    from zundacast.models import Cue

    rate = 8000
    voice = np.zeros(10 * rate, dtype=np.float32)
    voice[4 * rate: 6 * rate] = 0.5 * np.sin(2 * np.pi * 300 * np.arange(2 * rate) / rate)
    timeline = Timeline(samples=voice, sample_rate=rate, cues=[Cue(start_s=4.0, end_s=6.0, text="x")],
                        chapters=[], longest_pause_s=1.0)
    music = np.sin(2 * np.pi * 1000 * np.arange(rate) / rate).astype(np.float32)  # one second, looped
    mixed = mix_music(timeline, music)
    bed = mixed - voice

    def level(a: float, b: float) -> float:
        return float(np.sqrt(np.mean(bed[int(a * rate): int(b * rate)] ** 2)))

    assert len(mixed) == len(voice)
    assert level(4.5, 5.5) < level(2.5, 3.0) / 2.5  # ducked by about 10 dB while the host speaks
    assert level(8.5, 9.0) > 0  # back between sentences (the last two seconds fade out)
    assert level(0.0, 0.05) < level(2.5, 3.0) / 5  # fades in


# --- streaming: the stage never holds the episode --------------------------------------------------------

def test_streamed_assembly_writes_exactly_what_the_in_memory_one_builds(tmp_path: Path,
                                                                         warm_speech: Path) -> None:
    from zundacast.audio import assemble, assemble_to_file, load_utterance, synthesize_to_cache

    script = make_script()
    utterances = plan_utterances(script, OpenJTalkVoice.max_chars)
    paths, _ = synthesize_to_cache(OpenJTalkVoice(), utterances, warm_speech / "tts")
    pcms = [load_utterance(path) for path in paths]
    assert pcms[0].sample_rate == 48000 and pcms[0].samples.dtype == np.float32  # resampled per utterance
    timeline = assemble(script, utterances, pcms, AudioConfig())
    raw = tmp_path / "episode.f32"
    layout = assemble_to_file(script, utterances, lambda i: load_utterance(paths[i]), AudioConfig(), raw)
    streamed = np.fromfile(raw, dtype="<f4")
    np.testing.assert_array_equal(streamed, timeline.samples)
    assert layout.cues == timeline.cues and layout.chapters == timeline.chapters
    assert layout.length == len(timeline.samples) and layout.duration_s == timeline.duration_s
    assert layout.peak == pytest.approx(float(np.max(np.abs(timeline.samples))))


def test_music_mixed_into_the_file_chunk_by_chunk_equals_the_whole_mix(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    from zundacast.audio.assemble import Layout, Timeline, mix_music, mix_music_into
    from zundacast.models import Cue

    rate = 8000
    voice = np.zeros(10 * rate + 123, dtype=np.float32)
    voice[4 * rate: 6 * rate] = 0.5 * np.sin(2 * np.pi * 300 * np.arange(2 * rate) / rate)
    cues = [Cue(start_s=4.0, end_s=6.0, text="x")]
    music = np.sin(2 * np.pi * 1000 * np.arange(int(1.3 * rate)) / rate).astype(np.float32)
    whole = mix_music(Timeline(samples=voice, sample_rate=rate, cues=cues, chapters=[], longest_pause_s=1.0),
                      music)
    raw = tmp_path / "episode.f32"
    voice.astype("<f4").tofile(raw)
    # chunk edges inside the fades too (the package's `assemble` is the function: import the module)
    monkeypatch.setattr(importlib.import_module("zundacast.audio.assemble"), "CHUNK_SAMPLES", 4099)
    layout = Layout(sample_rate=rate, length=len(voice), cues=cues, chapters=[], longest_pause_s=1.0,
                    peak=float(np.max(np.abs(voice))))
    mix_music_into(raw, layout, music)
    np.testing.assert_allclose(np.fromfile(raw, dtype="<f4"), whole, atol=1e-6)
    assert not np.allclose(whole, voice)  # the music is really there


def test_one_streamed_decode_measures_like_the_reference_meters(tmp_path: Path) -> None:
    from scipy.signal import resample_poly

    from zundacast.audio import scan_mp3
    from zundacast.audio.check import longest_silence

    rate = 44100
    t = np.arange(40 * rate) / rate
    tone = (0.2 * np.sin(2 * np.pi * 440 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.7 * t))).astype(np.float32)
    tone[21 * rate: 24 * rate] = 0.0
    tone[30 * rate: 30 * rate + 300] = 0.9  # a burst: the true peak is there
    path = tmp_path / "tone.mp3"
    subprocess.run([ffmpeg(), "-v", "error", "-f", "f32le", "-ar", str(rate), "-ac", "1", "-i", "pipe:0",
                    "-c:a", "libmp3lame", "-b:a", "96k", str(path)], input=tone.astype("<f4").tobytes(),
                   check=True)
    scan = scan_mp3(path)  # read in chunks of about 20 s: runs and peaks across chunk edges count
    decoded, errors, code = decode(path, rate)
    assert (scan.exit_code, scan.errors, code, errors) == (0, "", 0, "")
    assert scan.samples == len(decoded)
    assert (scan.longest_silence_s, scan.longest_silence_at_s) == longest_silence(decoded, rate)
    assert scan.longest_silence_s == pytest.approx(3.0, abs=0.05)
    reference = pyloudnorm.Meter(rate).integrated_loudness(decoded.astype(np.float64))
    assert scan.loudness_lufs == pytest.approx(reference, abs=0.1)
    reference_peak = 20 * math.log10(float(np.max(np.abs(resample_poly(decoded, 4, 1)))))
    assert scan.true_peak_dbtp == pytest.approx(reference_peak, abs=0.2)


def test_the_stage_holds_no_copy_of_the_episode(tmp_path: Path, warm_speech: Path) -> None:
    import tracemalloc

    sentences = [s for section in make_script().sections for s in section.sentences]
    long_script = make_script()
    for section in long_script.sections:  # about 8 minutes from 8 distinct sentences
        section.sentences = [sentences[(i * 3 + len(section.title)) % len(sentences)] for i in range(40)]
    synthesize_utterances(OpenJTalkVoice(), plan_utterances(long_script, 400), warm_speech / "tts")
    tracemalloc.start()
    try:
        bundle = synthesize_script(long_script, OpenJTalkVoice(), AudioConfig(), SHOW, work_dir=tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    one_copy = bundle.duration_s * 44100 * 4  # the episode as float32
    assert bundle.duration_s > 300 and bundle.synthesized == 0 and bundle.utterances == 160
    assert peak < one_copy / 3, f"{peak / 1e6:.1f} MB traced for a {one_copy / 1e6:.1f} MB episode"
    assert bundle.loudness_lufs == pytest.approx(-16.0, abs=0.5) and bundle.true_peak_dbtp <= -1.0


def test_the_stage_mixes_background_music_into_the_streamed_episode(
        tmp_path: Path, warm_speech: Path, rendered: tuple[AudioBundle, Path]) -> None:
    rate = 44100
    music_file = tmp_path / "music.wav"
    tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(3 * rate) / rate)).astype("<f4")
    subprocess.run([ffmpeg(), "-v", "error", "-f", "f32le", "-ar", str(rate), "-ac", "1", "-i", "pipe:0",
                    str(music_file)], input=tone.tobytes(), check=True)
    plain = rendered[0]  # the same script, voice and settings without music
    mixed = synthesize_script(make_script(), OpenJTalkVoice(), AudioConfig(music=str(music_file)), SHOW,
                              work_dir=tmp_path / "b")
    assert mixed.cues == plain.cues and mixed.chapters == plain.chapters  # music moves nothing
    assert mixed.loudness_lufs == pytest.approx(-16.0, abs=0.5) and mixed.true_peak_dbtp <= -1.0

    def pause_level(bundle: AudioBundle) -> float:  # between the first two sentences
        samples = decode(Path(bundle.mp3_path))[0]
        a, b = int(bundle.cues[0].end_s * rate) + 2000, int(bundle.cues[1].start_s * rate) - 2000
        return float(np.sqrt(np.mean(samples[a:b] ** 2)))

    assert pause_level(plain) < 0.003 < pause_level(mixed)


# --- runs on one machine share the utterance cache ---------------------------------------------------------

# A run in its own process: `synthesize_to_cache` with an engine that logs every sentence it voices.
# argv: cache folder, log file, role ("first": its first sentence waits until the second run has found
# the cache empty; "second": it says when it has).
VOICING_RUN = """
import sys, time
from pathlib import Path
import numpy as np
import zundacast.audio.utterances as utterances
from zundacast.voices import PCM

cache, log, role, folder = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
TEXTS = ["ずんだもんは今日いちばん長い文を読むのだ。", "二つ目の文なのだ。", "三つ目なのだ。"]

class LoggedVoice:
    name, max_chars, concurrency = "logged", 400, 1
    def cache_key(self): return "logged-voice"
    def synthesize(self, text):
        with log.open("a", encoding="utf-8") as out:
            out.write(f"{role} {text}\\n")
        if role == "first" and text == TEXTS[0]:
            (folder / "first-is-voicing").touch()
            while not (folder / "second-found-it-missing").exists():
                time.sleep(0.01)  # waits for the other process (pytest-timeout bounds the test)
        return PCM(samples=np.full(4800, 0.1, dtype=np.float32), sample_rate=48000)

if role == "second":
    found = utterances._missing
    def missing_then_say(*args):
        result = found(*args)
        (folder / "second-found-it-missing").touch()
        return result
    utterances._missing = missing_then_say

units = [utterances.Utterance(section=0, sentence=n, speech=t, text=t) for n, t in enumerate(TEXTS)]
paths, voiced = utterances.synthesize_to_cache(LoggedVoice(), units, cache)
assert all(utterances.load_cached(path) is not None for path in paths)
print(voiced)
"""


def test_two_runs_needing_the_same_sentences_at_once_voice_each_only_once(tmp_path: Path) -> None:
    """The second run finds the cache empty while the first is voicing: it waits for the sentence the
    first is saying and loads it, instead of voicing it again (what used to happen)."""
    import sys

    cache, log = tmp_path / "tts", tmp_path / "voiced.log"

    def start(role: str) -> subprocess.Popen[str]:
        command = [sys.executable, "-c", VOICING_RUN, str(cache), str(log), role, str(tmp_path)]
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    first = start("first")
    while not (tmp_path / "first-is-voicing").exists():  # pytest-timeout bounds the wait
        assert first.poll() is None, first.communicate()[1][-3000:]
        threading.Event().wait(0.01)
    second = start("second")
    outputs = [process.communicate(timeout=120) for process in (first, second)]
    for process, (_out, err) in zip((first, second), outputs, strict=True):
        assert process.returncode == 0, err[-3000:]
    voiced = [line.split(" ", 1)[1] for line in log.read_text("utf-8").splitlines()]
    assert sorted(voiced) == sorted(set(voiced)) and len(voiced) == 3  # each sentence voiced once, in all
    assert int(outputs[0][0]) + int(outputs[1][0]) == 3  # each run counts what it voiced itself
    assert (tmp_path / "second-found-it-missing").exists()  # the second did start before the first was done
