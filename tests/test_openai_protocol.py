"""The OpenAI wire protocol: the strict fake answers like the real API, and the product's requests pass it.

Chat completions (request validation, error bodies, finish reasons, usage details) and `/v1/audio/speech`
for OpenAI TTS: the request the voice sends, the audio it decodes, and each refusal (401, 404, 400,
429 rate limit vs 429 insufficient_quota) handled as the API means it.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from tests.fakes.openai_server import SPEECH_RATE, FakeOpenAI, Reply, fake_openai
from zundacast.show import Environment, OpenAITTSConfig, VoiceConfig
from zundacast.voices import PermanentVoiceError, VoiceError, get_voice, openai_tts
from zundacast.voices.openai_tts import RATE_LIMIT_RETRIES, OpenAIVoice

KEY = "sk-test-tts-NEVER-SHOWN-9d2f"
SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"],
          "additionalProperties": False}
GOOD = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "こんにちは"}],
        "response_format": {"type": "json_schema",
                            "json_schema": {"name": "A", "schema": SCHEMA, "strict": True}}}
LOOSE = {**SCHEMA, "additionalProperties": True}


@pytest.fixture
def api() -> Iterator[FakeOpenAI]:
    with fake_openai(lambda request: json.dumps({"a": "x"})) as fake:
        yield fake


def post(fake: FakeOpenAI, path: str, body: Any, key: str | None = KEY) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(fake.base_url + path, json=body, headers=headers, timeout=30)


def error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


# --- chat completions: requests the real server refuses ---------------------------------------------------


@pytest.mark.parametrize("body, param, code", [
    ({**GOOD, "temprature": 0.2}, "temprature", "unknown_parameter"),
    ({key: value for key, value in GOOD.items() if key != "model"}, "model", "missing_required_parameter"),
    ({key: value for key, value in GOOD.items() if key != "messages"}, "messages",
     "missing_required_parameter"),
    ({**GOOD, "temperature": "warm"}, "temperature", "invalid_type"),
    ({**GOOD, "temperature": 3}, "temperature", "decimal_above_max_value"),
    ({**GOOD, "messages": []}, "messages", "empty_array"),
    ({**GOOD, "messages": [{"role": "narrator", "content": "x"}]}, "messages[0].role", "invalid_value"),
    ({**GOOD, "messages": [{"role": "user", "content": "x", "speaker": "me"}]}, "messages[0].speaker",
     "unknown_parameter"),
    ({**GOOD, "response_format": {"type": "json_schema", "json_schema": {"schema": SCHEMA}}},
     "response_format.json_schema.name", "missing_required_parameter"),
    ({**GOOD, "response_format": {"type": "json_schema", "json_schema": {
        "name": "A", "strict": True, "schema": LOOSE}}}, "response_format", None),
    ({**GOOD, "response_format": {"type": "json_schema", "json_schema": {
        "name": "A", "strict": True, "schema": {**SCHEMA, "required": []}}}}, "response_format", None),
], ids=["unknown-field", "no-model", "no-messages", "type", "range", "empty-messages", "role",
        "unknown-message-field", "schema-name", "strict-additional-properties", "strict-required"])
def test_requests_the_real_server_refuses_are_400_naming_the_param(api: FakeOpenAI, body: dict[str, Any],
                                                                   param: str, code: str | None) -> None:
    response = post(api, "/chat/completions", body)
    assert response.status_code == 400
    problem = error(response)
    assert problem["type"] == "invalid_request_error"
    assert (problem["param"], problem["code"]) == (param, code)


def test_the_key_is_checked_first_and_never_echoed_whole() -> None:
    with fake_openai(api_key="sk-right-key-1234") as fake:
        missing = post(fake, "/chat/completions", GOOD, key=None)
        wrong = post(fake, "/chat/completions", {"model": 1}, key=KEY)  # the key before the body
    assert missing.status_code == 401 and error(missing)["code"] is None
    assert wrong.status_code == 401 and error(wrong)["code"] == "invalid_api_key"
    assert KEY not in wrong.text and KEY[-4:] in error(wrong)["message"]  # masked as the real server does


@pytest.mark.parametrize("reply, status, kind, code", [
    (Reply(status=429, code="insufficient_quota"), 429, "insufficient_quota", "insufficient_quota"),
    (Reply(status=429), 429, "tokens", "rate_limit_exceeded"),
    (Reply(status=503), 503, "server_error", None),
    (Reply(status=500), 500, "server_error", None),
], ids=["quota", "rate-limit", "503", "500"])
def test_scripted_errors_have_the_real_types_and_codes(api: FakeOpenAI, reply: Reply, status: int, kind: str,
                                                       code: str | None) -> None:
    api.queue.append(reply)
    response = post(api, "/chat/completions", GOOD)
    assert response.status_code == status
    assert (error(response)["type"], error(response)["code"]) == (kind, code)


def test_unknown_model_is_404_model_not_found_of_type_invalid_request_error(api: FakeOpenAI) -> None:
    response = post(api, "/chat/completions", {**GOOD, "model": "gpt-9-imaginary"})
    assert response.status_code == 404
    assert error(response) == {
        "message": "The model `gpt-9-imaginary` does not exist or you do not have access to it.",
        "type": "invalid_request_error", "param": None, "code": "model_not_found"}


def test_messages_longer_than_the_window_are_context_length_exceeded() -> None:
    with fake_openai(context_window=50) as fake:
        long_message = [{"role": "user", "content": "あ" * 80}]
        response = post(fake, "/chat/completions", {**GOOD, "messages": long_message})
    assert response.status_code == 400
    problem = error(response)
    assert (problem["param"], problem["code"]) == ("messages", "context_length_exceeded")
    assert "maximum context length is 50 tokens" in problem["message"]


@pytest.mark.parametrize("reply, content, refusal, finish", [
    (Reply(), '{"a": "x"}', None, "stop"),
    (Reply(finish_reason="length"), '{"a":', None, "length"),  # cut mid-JSON
    (Reply(finish_reason="content_filter"), None, None, "content_filter"),
    (Reply(refusal="I can't help with that."), None, "I can't help with that.", "stop"),
], ids=["stop", "length", "content_filter", "refusal"])
def test_answers_carry_finish_reason_refusal_and_token_details(
        api: FakeOpenAI, reply: Reply, content: str | None, refusal: str | None, finish: str) -> None:
    api.queue.append(Reply(finish_reason=reply.finish_reason, refusal=reply.refusal, cached_tokens=64,
                           reasoning_tokens=12))
    response = post(api, "/chat/completions", GOOD)
    assert response.status_code == 200
    body = response.json()
    [choice] = body["choices"]
    assert choice["finish_reason"] == finish
    assert choice["message"]["content"] == content and choice["message"]["refusal"] == refusal
    assert body["usage"]["prompt_tokens_details"]["cached_tokens"] == 64
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] == 12


def test_the_products_requests_pass_the_strict_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both writers' requests (summary and segment) and the TTS request are valid for the real API."""
    from tests.test_llm import article, responder
    from zundacast.llm.openai_writer import OpenAIWriter
    from zundacast.show import LLMConfig

    with fake_openai(responder, api_key=KEY) as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        writer = OpenAIWriter(LLMConfig(), model="gpt-4o-mini", env=Environment())
        summary = writer.summarize(article())
        lines, _ = writer.write_segment(summary, 0, 1)
        OpenAIVoice(env=Environment()).synthesize("ずんだもんなのだ")
    assert summary.writer == "gpt-4o-mini" and lines
    assert [request.path for request in fake.requests] == ["/v1/chat/completions"] * 2 + ["/v1/audio/speech"]
    assert all(request.json["response_format"]["json_schema"]["strict"] for request in fake.requests[:2])


# --- /v1/audio/speech: OpenAI TTS -------------------------------------------------------------------------


@pytest.fixture
def speech(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    with fake_openai(api_key=KEY) as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        yield fake


@pytest.fixture
def tts_waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    asked: list[float] = []
    monkeypatch.setattr(openai_tts, "sleep", asked.append)
    return asked


def test_openai_tts_sends_a_valid_request_and_decodes_the_audio(speech: FakeOpenAI) -> None:
    config = VoiceConfig(engine="openai", openai=OpenAITTSConfig(voice="nova", speed=1.1))
    voice = get_voice(config, Environment())
    text = "ずんだもんなのだ"
    pcm = voice.synthesize(text)
    assert pcm.sample_rate == SPEECH_RATE
    assert len(pcm.samples) == int(0.08 * len(text) * SPEECH_RATE)  # all of the answer, decoded as 16-bit
    assert float(np.max(np.abs(pcm.samples))) == pytest.approx(0.3, abs=0.01)
    [request] = speech.requests
    assert request.path == "/v1/audio/speech" and request.headers["authorization"] == f"Bearer {KEY}"
    assert request.json["model"] == "gpt-4o-mini-tts" and request.json["voice"] == "nova"
    assert request.json["input"] == text and request.json["response_format"] == "pcm"
    assert request.json["speed"] == 1.1 and request.json["instructions"]
    assert KEY not in voice.cache_key()


@pytest.mark.parametrize("response_format", ["mp3", "wav"])
def test_the_fake_speech_answers_real_audio(speech: FakeOpenAI, response_format: str) -> None:
    import imageio_ffmpeg

    response = post(speech, "/audio/speech", {"model": "tts-1", "input": "あいうえお", "voice": "alloy",
                                              "response_format": response_format})
    assert response.status_code == 200
    decoded = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i",
                              "pipe:0", "-f", "s16le", "-ac", "1", "-ar", str(SPEECH_RATE), "pipe:1"],
                             input=response.content, capture_output=True, check=True, timeout=60).stdout
    seconds = len(decoded) / 2 / SPEECH_RATE
    assert seconds == pytest.approx(0.4, abs=0.06)  # 5 characters at 80 ms


@pytest.mark.parametrize("body, param, code", [
    ({"model": "tts-1", "input": "あ", "voice": "zundamon"}, "voice", "invalid_value"),
    ({"model": "tts-1", "input": "", "voice": "alloy"}, "input", "empty_string"),
    ({"model": "tts-1", "input": "あ" * 4097, "voice": "alloy"}, "input", "string_above_max_length"),
    ({"model": "tts-1", "voice": "alloy"}, "input", "missing_required_parameter"),
    ({"model": "tts-1", "input": "あ", "voice": "alloy", "format": "pcm"}, "format", "unknown_parameter"),
    ({"model": "tts-1", "input": "あ", "voice": "alloy", "response_format": "ogg"}, "response_format",
     "invalid_value"),
    ({"model": "tts-1", "input": "あ", "voice": "alloy", "speed": 5}, "speed", "decimal_above_max_value"),
], ids=["voice", "empty", "too-long", "no-input", "unknown-field", "format", "speed"])
def test_speech_requests_the_real_server_refuses(speech: FakeOpenAI, body: dict[str, Any], param: str,
                                                 code: str) -> None:
    response = post(speech, "/audio/speech", body)
    assert response.status_code == 400
    assert (error(response)["param"], error(response)["code"]) == (param, code)


def test_openai_tts_rejected_key_401_names_the_variable_not_the_key(speech: FakeOpenAI,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key-NEVER-SHOWN-0000")
    with pytest.raises(PermanentVoiceError) as caught:
        OpenAIVoice(env=Environment()).synthesize("ずんだもんなのだ")
    message = str(caught.value)
    assert "OPENAI_API_KEY" in message and "401" in message
    assert "NEVER-SHOWN" not in message and len(speech.requests) == 1


def test_openai_tts_quota_429_is_permanent_and_says_add_credit(speech: FakeOpenAI,
                                                               tts_waits: list[float]) -> None:
    speech.queue = [Reply(status=429, code="insufficient_quota") for _ in range(5)]
    with pytest.raises(PermanentVoiceError) as caught:  # the utterance loop does not retry it either
        OpenAIVoice(env=Environment()).synthesize("ずんだもんなのだ")
    assert "insufficient_quota" in str(caught.value) and "credit" in str(caught.value)
    assert len(speech.requests) == 1 and tts_waits == []


def test_openai_tts_rate_limit_429_waits_what_retry_after_asks(speech: FakeOpenAI,
                                                               tts_waits: list[float]) -> None:
    speech.queue = [Reply(status=429, headers={"Retry-After": "3"}),
                    Reply(status=429, headers={"Retry-After": "5"})]
    pcm = OpenAIVoice(env=Environment()).synthesize("ずんだもんなのだ")
    assert len(pcm.samples) > 0 and len(speech.requests) == 3
    assert tts_waits == [3.0, 5.0]


def test_openai_tts_rate_limit_that_persists_is_a_transient_voice_error(speech: FakeOpenAI,
                                                                       tts_waits: list[float]) -> None:
    speech.queue = [Reply(status=429, headers={"Retry-After": "1"}) for _ in range(RATE_LIMIT_RETRIES + 3)]
    with pytest.raises(VoiceError) as caught:
        OpenAIVoice(env=Environment()).synthesize("ずんだもんなのだ")
    assert not isinstance(caught.value, PermanentVoiceError)  # the utterance loop may try again later
    assert len(speech.requests) == RATE_LIMIT_RETRIES + 1 and tts_waits == [1.0] * RATE_LIMIT_RETRIES


@pytest.mark.parametrize("config, setting", [
    (OpenAITTSConfig(voice="zundamon"), "voice.openai.voice"),
    (OpenAITTSConfig(model="tts-9"), "voice.openai.model"),
], ids=["unknown-voice-400", "unknown-model-404"])
def test_openai_tts_settings_the_server_refuses_are_named(speech: FakeOpenAI, config: OpenAITTSConfig,
                                                          setting: str) -> None:
    with pytest.raises(PermanentVoiceError, match=setting.replace(".", r"\.")):
        OpenAIVoice(config, env=Environment()).synthesize("ずんだもんなのだ")
    assert len(speech.requests) == 1


def test_openai_tts_server_error_is_transient(speech: FakeOpenAI, tts_waits: list[float]) -> None:
    speech.queue = [Reply(status=503)]
    with pytest.raises(VoiceError) as caught:
        OpenAIVoice(env=Environment()).synthesize("ずんだもんなのだ")
    assert not isinstance(caught.value, PermanentVoiceError) and "503" in str(caught.value)
    assert tts_waits == []  # the utterance loop owns the backoff for 5xx
