"""The voice engine down: every utterance is retried, then the run fails naming the engine and the sentence,
and nothing is published. Against the fake VOICEVOX engine (HTTP 500) and a port nobody listens on.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tasks.script import build_script
from tasks.synthesize import synthesize_script
from tests.fakes.voicevox import fake_voicevox
from tests.faults.support import flow_env, free_port, run_flow, sample_site, short_show
from zundacast.llm.offline import OfflineWriter
from zundacast.models import Summary
from zundacast.sample_day import SAMPLE_DATE
from zundacast.show import AudioConfig, ShowInfo, VoicevoxConfig
from zundacast.stage import is_permanent
from zundacast.voices import PermanentVoiceError, VoiceError
from zundacast.voices.voicevox import VoicevoxVoice

SENTENCE = re.compile(r"「[^」]+」")


@pytest.fixture(scope="module")
def engine_down(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("tts-faults")
    with sample_site() as (_site, base), fake_voicevox() as engine:
        engine.fail_next = [500] * 10_000  # every /synthesis answers 500
        with flow_env(root, VOICEVOX_URL=engine.url):
            show = short_show(base, voice={"engine": "voicevox"})
            with pytest.raises(VoiceError) as failed:
                run_flow(show, root / "public")
        yield {"error": failed.value, "engine": engine, "store": root / "public", "root": root}


@pytest.mark.slow
def test_engine_answering_500_is_retried_then_the_run_fails_naming_engine_and_sentence(
        engine_down: dict[str, Any]) -> None:
    message = str(engine_down["error"])
    assert "voicevox" in message and engine_down["engine"].url in message
    assert "HTTP 500" in message
    assert SENTENCE.search(message), message  # the sentence that could not be said
    # each task attempt retries the utterance 4 times; Prefect runs the stage 3 times (2 retries)
    assert engine_down["engine"].count("/synthesis") >= 3 * 4


@pytest.mark.slow
def test_engine_down_publishes_nothing(engine_down: dict[str, Any]) -> None:
    store: Path = engine_down["store"]
    assert not (store / "feed.xml").exists()
    assert not (store / SAMPLE_DATE.isoformat() / f"zundamon-ai-{SAMPLE_DATE}.mp3").exists()
    assert not list((engine_down["root"] / "home").rglob("*.mp3"))  # no half-made episode either


def test_engine_not_listening_is_retried_then_fails_naming_engine_and_sentence(tmp_path: Path) -> None:
    show = ShowInfo(id="zundamon-test", title="テスト放送")
    summary = Summary(url="https://example.com/a", source="例", title="ずんだ餅の新レシピ",
                      spoken_title="ずんだ餅の新レシピ", summary="ずんだ餅の新しいレシピが出たのだ。" * 5,
                      key_points=["枝豆を使うのだ。"], why_it_matters="おいしいのだ。")
    script = build_script(dt.date(2026, 11, 20), [summary], show, {}, OfflineWriter())
    url = f"http://127.0.0.1:{free_port()}"
    attempts: list[str] = []

    class CountingVoice(VoicevoxVoice):
        # every attempt starts with the engine's /audio_query (the pipelined path and synthesize() alike)
        def audio_query(self, text: str) -> Any:
            attempts.append(text)
            return super().audio_query(text)

    voice = CountingVoice(url=url, concurrency=1)
    with pytest.raises(VoiceError) as failed:
        synthesize_script(script, voice, AudioConfig(jingle=False), show, tmp_path / "work", attempts=3,
                          backoff_s=0.01)
    message = str(failed.value)
    assert "voicevox" in message and url in message and "ConnectError" in message
    assert SENTENCE.search(message)
    # the error names a sentence that was tried three times (queries run ahead, so others interleave)
    tries = Counter(attempts)
    assert max(tries.values()) == 3, tries
    assert any(f"「{text}」" in message for text, count in tries.items() if count == 3), (message, tries)
    assert not list((tmp_path / "work").glob("*.mp3"))


def _one_segment_script() -> Any:
    show = ShowInfo(id="zundamon-test", title="テスト放送")
    summary = Summary(url="https://example.com/a", source="例", title="ずんだ餅の新レシピ",
                      spoken_title="ずんだ餅の新レシピ", summary="ずんだ餅の新しいレシピが出たのだ。" * 5,
                      key_points=["枝豆を使うのだ。"], why_it_matters="おいしいのだ。")
    return show, build_script(dt.date(2026, 11, 20), [summary], show, {}, OfflineWriter())


@pytest.mark.parametrize(("config", "field"), [
    (VoicevoxConfig(style="ハイテンション"), "voice.voicevox.style"),
    (VoicevoxConfig(speaker_name="ずんだもんV2"), "voice.voicevox.speaker_name"),
    (VoicevoxConfig(speaker=4242), "voice.voicevox.speaker"),
])
def test_a_voice_the_engine_does_not_offer_fails_at_once_naming_the_field(
        config: VoicevoxConfig, field: str, tmp_path: Path) -> None:
    show, script = _one_segment_script()
    with fake_voicevox() as engine:
        voice = VoicevoxVoice(config, url=engine.url, concurrency=2)
        with pytest.raises(PermanentVoiceError) as failed:
            synthesize_script(script, voice, AudioConfig(jingle=False), show, tmp_path / "work", attempts=3,
                              backoff_s=0.01)
        voice.close()
    message = str(failed.value)
    assert field in message and engine.url in message
    assert is_permanent(failed.value)
    assert engine.count("/synthesis") == 0  # not one sentence said with another voice
    assert engine.count("/speakers") + engine.count("/audio_query") <= 2  # no retries of a refusal
    assert not list((tmp_path / "work").glob("*.mp3"))
