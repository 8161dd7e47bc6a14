"""Voice engines: real OpenJTalk, and VOICEVOX / OpenAI TTS through loopback servers speaking their APIs."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.fakes.voicevox import (
    CONSONANT_S,
    PAUSE_S,
    STYLE_NOT_FOUND,
    VOWEL_S,
    ZUNDAMON_STYLES,
    audio_query_for,
    expected_seconds,
    fake_voicevox,
)
from tests.faults.support import short_show_text
from zundacast.show import Environment, OpenAITTSConfig, OpenJTalkConfig, VoiceConfig, VoicevoxConfig
from zundacast.stage import is_permanent
from zundacast.voices import PermanentVoiceError, VoiceError, get_voice
from zundacast.voices.openai_tts import OpenAIVoice
from zundacast.voices.openjtalk import OpenJTalkVoice
from zundacast.voices.voicevox import VoicevoxVoice, decode_wav

SENTENCE = "今日は2025年7月24日、木曜日なのだ。エヌビディアの新しいジーピーユーを紹介するのだ！"


def rms_db(samples: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(np.square(samples, dtype=np.float64))) + 1e-12))


# --- OpenJTalk ---------------------------------------------------------------------------------------------

def test_openjtalk_speaks_a_japanese_sentence() -> None:
    pcm = OpenJTalkVoice(OpenJTalkConfig(speed=1.0, half_tone=0.0)).synthesize(SENTENCE)
    assert pcm.sample_rate == 48000
    assert pcm.samples.dtype == np.float32 and pcm.samples.ndim == 1
    assert float(np.max(np.abs(pcm.samples))) <= 1.0
    assert 3.0 < len(pcm.samples) / pcm.sample_rate < 15.0  # about 40 morae
    assert rms_db(pcm.samples) > -35  # speech, not silence
    assert float(np.max(np.abs(pcm.samples))) > 0.1


def test_openjtalk_settings_change_the_sound_and_the_cache_key() -> None:
    slow = OpenJTalkVoice(OpenJTalkConfig(speed=1.0))
    fast = OpenJTalkVoice(OpenJTalkConfig(speed=1.6))
    assert slow.cache_key() != fast.cache_key()
    assert len(fast.synthesize(SENTENCE).samples) < 0.8 * len(slow.synthesize(SENTENCE).samples)


def test_openjtalk_threads_give_the_same_audio_as_one_thread() -> None:
    from concurrent.futures import ThreadPoolExecutor

    voice = OpenJTalkVoice(concurrency=2)
    texts = ["ずんだもんなのだ。", "ジーピーユーは速いのだ。"] * 2
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(voice.synthesize, texts))
    np.testing.assert_array_equal(results[0].samples, results[2].samples)
    np.testing.assert_array_equal(results[1].samples, results[3].samples)


# --- VOICEVOX ----------------------------------------------------------------------------------------------

def test_voicevox_speaks_through_the_engine_api_with_the_show_settings() -> None:
    config = VoicevoxConfig(speed_scale=1.25, pitch_scale=0.05, intonation_scale=1.2,
                            volume_scale=0.8, pre_phoneme_length=0.2, post_phoneme_length=0.3)
    text = "ずんだもんなのだ。今日も元気なのだ"
    with fake_voicevox() as fake:
        voice = VoicevoxVoice(config, url=fake.url)
        pcm = voice.synthesize(text)
        voice.close()
    assert pcm.sample_rate == 24000
    speakers, query, synthesis = fake.requests
    assert (speakers["method"], speakers["path"]) == ("GET", "/speakers")  # ずんだもん ノーマル, by name
    assert query["path"] == "/audio_query"
    assert query["params"] == {"text": text, "speaker": "3"}
    assert synthesis["path"] == "/synthesis" and synthesis["params"] == {"speaker": "3"}
    assert synthesis["status"] == 200
    sent = synthesis["json"]
    assert sent["speedScale"] == 1.25 and sent["pitchScale"] == 0.05 and sent["intonationScale"] == 1.2
    assert sent["volumeScale"] == 0.8 and sent["prePhonemeLength"] == 0.2 and sent["postPhonemeLength"] == 0.3
    assert sent["accent_phrases"] == audio_query_for(text)["accent_phrases"]  # the engine's, unchanged
    # the length the engine gives these moras, pauses and scales
    assert len(pcm.samples) / pcm.sample_rate == pytest.approx(expected_seconds(sent), abs=1e-6)
    moras = len(text) - 1  # one per character; 。 is the pause mora
    spoken = (moras * (CONSONANT_S + VOWEL_S) + PAUSE_S) / 1.25 + (0.2 + 0.3) / 1.25
    half_frames = (2 * moras + 3) * 0.5 / 93.75  # each phoneme is rounded to the engine's frames
    assert len(pcm.samples) / pcm.sample_rate == pytest.approx(spoken, abs=half_frames)


@pytest.mark.parametrize(("style", "style_id"), sorted(ZUNDAMON_STYLES.items(), key=lambda item: item[1]))
def test_voicevox_finds_each_zundamon_style_by_name(style: str, style_id: int) -> None:
    with fake_voicevox() as fake:
        voice = VoicevoxVoice(VoicevoxConfig(speaker_name="ずんだもん", style=style), url=fake.url)
        voice.synthesize("ずんだもんなのだ")
        voice.close()
    assert [r["params"]["speaker"] for r in fake.requests if r["method"] == "POST"] == [str(style_id)] * 2
    assert fake.count("/speakers") == 1


def test_voicevox_looks_up_the_style_once_for_many_utterances() -> None:
    from concurrent.futures import ThreadPoolExecutor

    with fake_voicevox() as fake:
        voice = VoicevoxVoice(VoicevoxConfig(style="ささやき"), url=fake.url, concurrency=3)
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(voice.synthesize, ["いちなのだ", "になのだ", "さんなのだ", "よんなのだ"]))
        voice.close()
    assert fake.count("/speakers") == 1
    assert {r["params"]["speaker"] for r in fake.requests if r["method"] == "POST"} == {"22"}


def test_voicevox_explicit_style_id_skips_the_lookup() -> None:
    with fake_voicevox() as fake:
        voice = VoicevoxVoice(VoicevoxConfig(speaker=76), url=fake.url)
        voice.synthesize("なみだめなのだ")
        voice.close()
    assert fake.count("/speakers") == 0
    assert [r["params"]["speaker"] for r in fake.requests] == ["76", "76"]


@pytest.mark.parametrize(("config", "named", "listed"), [
    (VoicevoxConfig(speaker_name="ずんだもん", style="ハイテンション"), "voice.voicevox.style",
     "なみだめ (76)"),
    (VoicevoxConfig(speaker_name="ずんだもんX"), "voice.voicevox.speaker_name", "四国めたん, ずんだもん"),
])
def test_voicevox_unknown_speaker_or_style_names_the_field_and_what_is_offered(
        config: VoicevoxConfig, named: str, listed: str) -> None:
    with fake_voicevox() as fake:
        voice = VoicevoxVoice(config, url=fake.url)
        with pytest.raises(PermanentVoiceError) as caught:
            voice.synthesize("ずんだもんなのだ")
        voice.close()
    message = str(caught.value)
    assert named in message and listed in message and fake.url in message
    assert is_permanent(caught.value)
    assert fake.count("/audio_query") == 0  # nothing spoken with a wrong voice


def test_voicevox_style_the_engine_lacks_is_its_422_message() -> None:
    with fake_voicevox() as fake:
        voice = VoicevoxVoice(VoicevoxConfig(speaker=4242), url=fake.url)
        with pytest.raises(PermanentVoiceError) as caught:
            voice.synthesize("ずんだもんなのだ")
        voice.close()
        (request,) = fake.requests
    assert request["status"] == 422
    message = str(caught.value)
    assert "HTTP 422" in message and STYLE_NOT_FOUND in message and "voice.voicevox.speaker" in message


def test_fake_voicevox_answers_like_the_engine() -> None:
    """The fake's wire behaviour, case by case (DESIGN.md "Seen here"; the engine's FastAPI routers)."""
    import copy

    import httpx

    with fake_voicevox() as fake, httpx.Client(base_url=fake.url) as http:
        speakers = http.get("/speakers").json()
        zundamon = next(s for s in speakers if s["name"] == "ずんだもん")
        assert {s["name"]: s["id"] for s in zundamon["styles"]} == {
            "ノーマル": 3, "あまあま": 1, "ツンツン": 7, "セクシー": 5, "ささやき": 22, "ヒソヒソ": 38,
            "ヘロヘロ": 75, "なみだめ": 76}
        assert all(s["type"] == "talk" for s in zundamon["styles"]) and zundamon["speaker_uuid"]
        unknown = http.post("/audio_query", params={"text": "あ", "speaker": 99999})
        assert unknown.status_code == 422 and unknown.json() == {"message": STYLE_NOT_FOUND}
        query = http.post("/audio_query", params={"text": "ずんだ、もちなのだ。", "speaker": 3}).json()
        assert query["outputSamplingRate"] == 24000 and query["pauseLength"] is None
        assert [p["pause_mora"]["vowel"] for p in query["accent_phrases"]] == ["pau", "pau"]
        missing = http.post("/audio_query", params={"text": "あ"})
        assert missing.status_code == 422
        assert missing.json()["detail"] == [{"type": "missing", "loc": ["query", "speaker"],
                                             "msg": "Field required", "input": None}]
        not_int = http.post("/audio_query", params={"text": "あ", "speaker": "three"})
        (item,) = not_int.json()["detail"]
        assert item["type"] == "int_parsing" and item["input"] == "three"
        broken = {k: v for k, v in copy.deepcopy(query).items() if k != "speedScale"}
        broken["accent_phrases"][0]["moras"][0]["vowel_length"] = "long"
        refused = http.post("/synthesis", params={"speaker": 3}, json=broken)
        assert refused.status_code == 422
        detail = {tuple(item["loc"]): item for item in refused.json()["detail"]}
        assert detail[("body", "speedScale")]["type"] == "missing"
        assert "input" in detail[("body", "speedScale")]
        assert detail[("body", "accent_phrases", 0, "moras", 0, "vowel_length")]["input"] == "long"
        assert http.post("/synthesis", params={"speaker": 3}).json()["detail"][0]["loc"] == ["body"]
        wrong_style = http.post("/synthesis", params={"speaker": 99999}, json=query)
        assert wrong_style.status_code == 422 and wrong_style.json() == {"message": STYLE_NOT_FOUND}
        audio = http.post("/synthesis", params={"speaker": 3}, json=query)
        assert audio.status_code == 200 and audio.headers["content-type"] == "audio/wav"
        pcm = decode_wav(audio.content)
        assert pcm.sample_rate == 24000
        assert len(pcm.samples) / 24000 == pytest.approx(expected_seconds(query), abs=1e-9)
        assert http.get("/nothing").status_code == 404


@pytest.mark.parametrize("mangle", ["drop a phrase", "drop the pauses", "shorten the vowels", "kana only"])
def test_a_client_that_mangles_the_query_gets_audio_of_the_wrong_length(mangle: str) -> None:
    """The fake's audio follows the moras the client sends, not the text it asked about."""
    import httpx

    with fake_voicevox() as fake, httpx.Client(base_url=fake.url) as http:
        asked = {"text": "ずんだもちは、おいしいのだ。", "speaker": 3}
        query = http.post("/audio_query", params=asked).json()
        right = decode_wav(http.post("/synthesis", params={"speaker": 3}, json=query).content)
        phrases = query["accent_phrases"]
        if mangle == "drop a phrase":
            query["accent_phrases"] = phrases[:1]
        elif mangle == "drop the pauses":
            for phrase in phrases:
                phrase["pause_mora"] = None
        elif mangle == "shorten the vowels":
            for phrase in phrases:
                for mora in phrase["moras"]:
                    mora["vowel_length"] /= 2
        else:
            query["accent_phrases"] = []  # the text survives only in `kana`, which the engine ignores
        wrong = decode_wav(http.post("/synthesis", params={"speaker": 3}, json=query).content)
    assert len(wrong.samples) < len(right.samples) - 0.1 * 24000


def test_voicevox_refusal_is_permanent_and_names_the_text() -> None:
    with fake_voicevox() as fake:
        fake.reject["だめなのだ"] = 422
        voice = VoicevoxVoice(url=fake.url)
        with pytest.raises(PermanentVoiceError) as caught:
            voice.synthesize("だめなのだ")
    message = str(caught.value)
    assert "HTTP 422" in message and "だめなのだ" in message and "voicevox" in message
    assert is_permanent(caught.value)


def test_voicevox_server_error_is_transient() -> None:
    with fake_voicevox() as fake:
        fake.fail_next = [503]
        voice = VoicevoxVoice(url=fake.url)
        with pytest.raises(VoiceError) as caught:
            voice.synthesize("ずんだもんなのだ")
        assert not isinstance(caught.value, PermanentVoiceError)
        assert len(voice.synthesize("ずんだもんなのだ").samples) > 0  # the next call heals


def test_voicevox_unreachable_engine_is_transient() -> None:
    with fake_voicevox() as fake:
        url = fake.url
    voice = VoicevoxVoice(url=url, timeout_s=2)  # the server is gone: connection refused
    with pytest.raises(VoiceError) as caught:
        voice.synthesize("ずんだもんなのだ")
    assert not is_permanent(caught.value) and url in str(caught.value)


def test_get_voice_uses_voicevox_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with fake_voicevox() as fake:
        monkeypatch.setenv("VOICEVOX_URL", fake.url)
        voice = get_voice(VoiceConfig(engine="voicevox", concurrency=3), Environment())
        assert voice.name == "voicevox" and voice.concurrency == 3
        assert voice.synthesize("ずんだもんなのだ").sample_rate == 24000
    assert fake.count("/synthesis") == 1


def test_decode_wav_averages_stereo() -> None:
    import io
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(24000)
        wav.writeframes(np.array([16384, 0, 16384, 0], dtype="<i2").tobytes())
    pcm = decode_wav(buffer.getvalue())
    assert pcm.sample_rate == 24000
    np.testing.assert_allclose(pcm.samples, [0.25, 0.25])
    with pytest.raises(VoiceError):
        decode_wav(b"not a wav")


# --- OpenAI TTS --------------------------------------------------------------------------------------------

class _SpeechAPI:
    """A loopback `/v1/audio/speech` endpoint: answers 24 kHz 16-bit PCM, records the requests."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []  # statuses for the next calls


@pytest.fixture
def speech_api() -> Iterator[tuple[_SpeechAPI, str]]:
    state = _SpeechAPI()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            state.requests.append({"path": self.path, "json": body,
                                   "authorization": self.headers.get("Authorization")})
            status = state.statuses.pop(0) if state.statuses else 200
            if self.path != "/v1/audio/speech":
                status = 404
            if status != 200:
                payload = json.dumps({"error": {"message": "nope", "type": "invalid_request_error"}}).encode()
                content_type = "application/json"
            else:
                t = np.arange(int(0.5 * 24000)) / 24000
                payload = (0.3 * np.sin(2 * np.pi * 200 * t) * 32767).astype("<i2").tobytes()
                content_type = "application/octet-stream"
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_openai_tts_requests_pcm_with_the_show_voice(speech_api: tuple[_SpeechAPI, str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    state, base_url = speech_api
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
    monkeypatch.setenv("OPENAI_BASE_URL", base_url)
    env = Environment()
    voice = get_voice(VoiceConfig(engine="openai", openai=OpenAITTSConfig(voice="nova", speed=1.1)), env)
    pcm = voice.synthesize("ずんだもんなのだ")
    assert pcm.sample_rate == 24000 and len(pcm.samples) == 12000
    assert float(np.max(np.abs(pcm.samples))) == pytest.approx(0.3, abs=0.01)
    (request,) = state.requests
    assert request["json"]["model"] == "gpt-4o-mini-tts" and request["json"]["voice"] == "nova"
    assert request["json"]["input"] == "ずんだもんなのだ" and request["json"]["response_format"] == "pcm"
    assert request["json"]["speed"] == 1.1 and request["json"]["instructions"]
    assert request["authorization"] == "Bearer sk-test-key"
    assert "sk-test-key" not in voice.cache_key()


def test_openai_tts_errors_are_classified(speech_api: tuple[_SpeechAPI, str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    state, base_url = speech_api
    monkeypatch.setenv("OPENAI_BASE_URL", base_url)
    voice = OpenAIVoice(env=Environment())
    state.statuses = [400]
    with pytest.raises(PermanentVoiceError, match="HTTP 400"):
        voice.synthesize("ずんだもんなのだ")
    state.statuses = [500]
    with pytest.raises(VoiceError) as caught:
        voice.synthesize("ずんだもんなのだ")
    assert not isinstance(caught.value, PermanentVoiceError)


def test_openai_tts_without_a_key_says_what_to_set() -> None:
    with pytest.raises(PermanentVoiceError, match="OPENAI_API_KEY"):
        OpenAIVoice(env=Environment()).synthesize("ずんだもんなのだ")


def test_openjtalk_says_nothing_about_onnx_runtime() -> None:
    """pyopenjtalk-plus prints advice to install onnxruntime when it is absent; our users need none."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("from zundacast.voices.openjtalk import OpenJTalkVoice\n"
            "import importlib.util\n"
            "print('onnxruntime', importlib.util.find_spec('onnxruntime') is not None)\n"
            "print('samples', len(OpenJTalkVoice().synthesize('何なのだ').samples) > 0)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["onnxruntime False", "samples True"]  # nothing else on stdout
    assert "ONNX" not in done.stderr


@pytest.mark.slow
def test_demo_with_the_voicevox_voice_speaks_through_the_engine(tmp_path: Path, prefect_api_url: str) -> None:
    """`zundacast demo --voice voicevox` in a subprocess, against the fake engine: every sentence goes
    through /audio_query and /synthesis with ずんだもん ノーマル found in /speakers, and the episode is
    published with the engine's name in its record. Its utterance cache is empty (the subject is speech);
    its Prefect API is the session's (the subject is not Prefect's temporary API). `--show` is the bundled
    show with one pick at 24 kHz (the subject is the voice, not the episode's length or sound): --voice wins
    over its engine."""
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    bundled = (repo / "shows" / "zundamon-ai.toml").read_text("utf-8")
    assert "\npicks = 3\n" in bundled and '\nengine = "openjtalk" ' in bundled
    one_pick = tmp_path / "one-pick.toml"
    one_pick.write_text(short_show_text(bundled), "utf-8")  # one pick, 24 kHz: VOICEVOX's own rate
    with fake_voicevox() as fake:
        env = {name: value for name, value in os.environ.items()
               if not name.startswith(("AWS_", "OPENAI_", "ZUNDACAST_", "VOICEVOX_"))}
        env.update(PYTHONPATH=str(repo), ZUNDACAST_HOME=str(tmp_path / "home"), VOICEVOX_URL=fake.url,
                   PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_API_URL=prefect_api_url)
        done = subprocess.run([sys.executable, "-m", "zundacast.cli", "demo", "--voice", "voicevox",
                               "--show", str(one_pick), "--store", str(tmp_path / "public"), "--json"],
                              cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "ONNX" not in done.stdout + done.stderr  # quiet by default (the offline writer uses OpenJTalk too)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["stages"]["synthesize"]["status"] == "computed"
    assert fake.count("/speakers") >= 1
    spoken = fake.count("/synthesis")
    assert spoken >= 20 and fake.count("/audio_query") == spoken
    assert {r["params"]["speaker"] for r in fake.requests if r["method"] == "POST"} == {"3"}
    record = json.loads((tmp_path / "public" / summary["date"] / "episode.json").read_text("utf-8"))
    assert "voicevox" in json.dumps(record, ensure_ascii=False)
    assert len(record["picks"]) == 1  # the show file's [rank] picks


def test_voicevox_error_bodies_are_read_as_the_engine_writes_them() -> None:
    import httpx

    from zundacast.voices.voicevox import _engine_says

    own = httpx.Response(422, json={"message": STYLE_NOT_FOUND})
    validation = httpx.Response(422, json={"detail": [
        {"type": "missing", "loc": ["body", "speedScale"], "msg": "Field required",
         "input": {"accent_phrases": ["a very long query echoed back"]}},
        {"type": "int_parsing", "loc": ["query", "speaker"], "msg": "Input should be a valid integer",
         "input": "three"}]})
    assert _engine_says(own) == STYLE_NOT_FOUND
    said = _engine_says(validation)
    assert said == "body.speedScale: Field required; query.speaker: Input should be a valid integer"
    assert _engine_says(httpx.Response(404, json={"detail": "Not Found"})) == "Not Found"
    assert _engine_says(httpx.Response(500, text="Internal Server Error")) == "Internal Server Error"


# --- issue 14: pipelined VOICEVOX utterances, one shared OpenJTalk front end ------------------------------

def test_voicevox_utterances_are_pipelined_with_decoding_off_the_request_threads(tmp_path: Path) -> None:
    from zundacast.audio.utterances import Utterance, load_utterance, synthesize_to_cache

    texts = [f"ずんだもんは{n}個のニュースを読むのだ。" for n in range(12)]
    utterances = [Utterance(section=0, sentence=n, speech=text, text=text) for n, text in enumerate(texts)]
    with fake_voicevox() as fake:
        voice = VoicevoxVoice(VoicevoxConfig(), url=fake.url, concurrency=3)
        threads: dict[str, set[str]] = {"render": set(), "decode": set()}
        render, decode = voice.render, voice.decode

        def recorded(step: str, call: Any) -> Any:
            def wrapper(*args: Any) -> Any:
                threads[step].add(threading.current_thread().name)
                return call(*args)
            return wrapper

        voice.render, voice.decode = recorded("render", render), recorded("decode", decode)  # type: ignore[method-assign]
        paths, synthesized = synthesize_to_cache(voice, utterances, tmp_path / "tts")
        one_by_one = [voice.synthesize(text) for text in texts[:2]]  # the unpipelined path, for comparison
        voice.close()

    assert synthesized == len(texts) and sorted(fake.synthesized_texts()[:len(texts)]) == sorted(texts)
    assert all(name.startswith("tts-store") for name in threads["decode"] - {threading.current_thread().name})
    assert threads["render"] and not any(name.startswith("tts-store") for name in threads["render"])
    assert len({name for name in threads["render"] if name.startswith("tts_")}) <= 3  # `concurrency` requests
    for pcm, path in zip(one_by_one, paths[:2], strict=True):  # the cache holds what synthesize says
        cached = load_utterance(path)
        assert cached.sample_rate == pcm.sample_rate and len(cached.samples) == len(pcm.samples)
        np.testing.assert_allclose(cached.samples, pcm.samples, atol=1e-3)


def test_openjtalk_worker_threads_share_one_front_end_and_keep_their_own_engines() -> None:
    """A second front end would page in another copy of the ~100 MB dictionary; the HTS engines stay per
    thread so that both cores synthesize."""
    import resource
    from concurrent.futures import ThreadPoolExecutor

    from zundacast.voices.openjtalk import load_pyopenjtalk

    pyopenjtalk = load_pyopenjtalk()
    pyopenjtalk.run_frontend("今日は晴れなのだ。")  # the offline writer's use: loads the global front end
    front_end = pyopenjtalk._global_jtalk._instance
    voice = OpenJTalkVoice(concurrency=2)
    engines: list[Any] = []

    def speak(text: str) -> int:
        engines.append(voice._engine())
        return len(voice.synthesize(text).samples)

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with ThreadPoolExecutor(2) as pool:
        assert all(list(pool.map(speak, [f"{n}番目の文なのだ。" for n in range(6)])))
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert pyopenjtalk._global_jtalk._instance is front_end  # no other front end was made for the pool
    assert 1 <= len({id(engine) for engine in engines}) <= 2  # one engine per worker thread
    assert grown_mb < 60  # far less than another dictionary (~100 MB)
