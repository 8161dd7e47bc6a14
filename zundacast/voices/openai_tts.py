"""OpenAI text-to-speech (or any server speaking `/v1/audio/speech`).

Asks for `pcm` (raw 24 kHz 16-bit mono little-endian): the `wav` answer is
streamed with a placeholder size in its header, which WAV readers reject.
The client's own retries are off; the utterance loop retries transient failures.
"""

from __future__ import annotations

import threading

import numpy as np

from zundacast.show import Environment, OpenAITTSConfig, public_url
from zundacast.voices import PCM, PermanentVoiceError, VoiceError

PCM_RATE = 24_000  # what the API's "pcm" format is defined as


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

    def synthesize(self, text: str) -> PCM:
        import openai

        c = self.config
        try:
            response = self.client().audio.speech.create(
                model=c.model, voice=c.voice, input=text, instructions=c.instructions or openai.omit,
                response_format="pcm", speed=c.speed)
            data = response.content
        except openai.APIStatusError as exc:
            message = f"openai: HTTP {exc.status_code} for 「{text}」: {exc.message}"
            if 400 <= exc.status_code < 500 and exc.status_code not in (408, 409, 429):
                raise PermanentVoiceError(message) from exc
            raise VoiceError(message) from exc
        except openai.APIError as exc:  # connection errors, timeouts
            raise VoiceError(f"openai: {type(exc).__name__} for 「{text}」: {exc}") from exc
        samples = np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0
        if samples.size == 0:
            raise VoiceError(f"openai: no audio returned for 「{text}」")
        return PCM(samples=samples, sample_rate=PCM_RATE)
