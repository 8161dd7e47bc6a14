"""OpenAI text-to-speech (or any server speaking `/v1/audio/speech`).

Asks for `pcm` (raw 24 kHz 16-bit mono little-endian): the `wav` answer is
streamed with a placeholder size in its header, which WAV readers reject.
The client's own retries are off (it would retry an empty account's 429 like a rate limit). Errors as
the API means them: 401/403 (the key), 404 `model_not_found` (`voice.openai.model`), 400 naming the
parameter (`voice`, `speed`, `instructions`) and 429 `insufficient_quota` (add credit) are permanent;
a 429 rate limit is waited out here as `Retry-After` asks (`RATE_LIMIT_RETRIES` times); 5xx and
connection errors are `VoiceError`s the utterance loop retries.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from zundacast.show import Environment, OpenAITTSConfig, public_url
from zundacast.voices import PCM, PermanentVoiceError, VoiceError

PCM_RATE = 24_000  # what the API's "pcm" format is defined as
RATE_LIMIT_RETRIES = 3
SETTINGS = {"model": "voice.openai.model", "voice": "voice.openai.voice", "speed": "voice.openai.speed",
            "instructions": "voice.openai.instructions"}


def sleep(seconds: float) -> None:
    """The wait a rate limit asks for (tests patch it to record what was asked)."""
    time.sleep(seconds)


class OpenAIVoice:
    name = "openai"
    max_chars = 1000  # the API takes 4096; shorter requests fail and retry cheaply

    def __init__(self, config: OpenAITTSConfig | None = None, env: Environment | None = None,
                 concurrency: int = 2, timeout_s: float = 120.0) -> None:
        self.config = config or OpenAITTSConfig()
        self.env = env or Environment()
        self.concurrency = max(1, concurrency)
        self.timeout_s = timeout_s
        self._client = None
        self._client_lock = threading.Lock()

    def cache_key(self) -> str:
        c = self.config
        # The base URL picks the server (OpenAI or a compatible one), so it changes the sound; the key never
        # appears here.
        server = public_url(self.env.openai_base_url) if self.env.openai_base_url else "api.openai.com"
        return f"openai:{server}:{c.model}:{c.voice}:speed={c.speed}:instructions={c.instructions}"

    def client(self):
        with self._client_lock:
            if self._client is None:
                import openai

                key = self.env.openai_api_key.get_secret_value() if self.env.openai_api_key else ""
                if not key and not self.env.openai_base_url:
                    raise PermanentVoiceError(
                        "openai: OPENAI_API_KEY is not set (set it, or OPENAI_BASE_URL for a compatible "
                        "server, or choose voice.engine = \"openjtalk\" in the show file)")
                self._client = openai.OpenAI(api_key=key or "unused",
                                             base_url=self.env.openai_base_url or None,
                                             max_retries=0, timeout=self.timeout_s)
            return self._client

    def _refusal(self, exc: object, text: str) -> VoiceError:
        """The error for one refused request; a permanent one names what to fix (never the key)."""
        import openai

        from zundacast.llm.openai_writer import is_quota_error

        assert isinstance(exc, openai.APIStatusError)
        status, code, param = exc.status_code, exc.code or "", exc.param or ""
        where = (f"OPENAI_BASE_URL={public_url(self.env.openai_base_url)}" if self.env.openai_base_url
                 else "the OpenAI API")
        if status in (401, 403):
            return PermanentVoiceError(
                f"openai: {where} rejected the API key (HTTP {status} {code}): set a valid OPENAI_API_KEY, "
                "or choose voice.engine = \"openjtalk\" in the show file")
        if is_quota_error(exc):
            return PermanentVoiceError(
                f"openai: {where} answered HTTP 429 {code or exc.type}: the account of the key in "
                "OPENAI_API_KEY has no credit left or reached its spend limit; add credit or raise the limit "
                "in its billing settings, then run the date again (retrying cannot help)")
        if status == 404:
            return PermanentVoiceError(
                f"openai: {where} has no speech model {self.config.model!r} (HTTP 404 {code}): set "
                "voice.openai.model in the show file")
        if 400 <= status < 500 and status not in (408, 409, 429):
            setting = SETTINGS.get(param.split(".")[0])
            detail = (exc.body or {}).get("message", "") if isinstance(exc.body, dict) else ""
            fix = f": set {setting} in the show file" if setting else ""
            return PermanentVoiceError(f"openai: HTTP {status} {code} for 「{text}」 "
                                       f"(param {param or 'none'}: {str(detail)[:200]}){fix}")
        return VoiceError(f"openai: HTTP {status} {code} for 「{text}」")

    def synthesize(self, text: str) -> PCM:
        import openai

        from zundacast.llm.openai_writer import retry_delay

        c = self.config
        for retry in range(RATE_LIMIT_RETRIES + 1):
            try:
                response = self.client().audio.speech.create(
                    model=c.model, voice=c.voice, input=text, instructions=c.instructions or openai.omit,
                    response_format="pcm", speed=c.speed)
                data = response.content
                break
            except openai.APIStatusError as exc:
                error = self._refusal(exc, text)
                rate_limited = exc.status_code == 429 and not isinstance(error, PermanentVoiceError)
                if not rate_limited or retry == RATE_LIMIT_RETRIES:
                    raise error from None
                sleep(retry_delay(exc.response, retry + 1))
            except openai.APIError as exc:  # connection errors, timeouts
                raise VoiceError(f"openai: {type(exc).__name__} for 「{text}」: {exc}") from exc
        samples = np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0
        if samples.size == 0:
            raise VoiceError(f"openai: no audio returned for 「{text}」")
        return PCM(samples=samples, sample_rate=PCM_RATE)
