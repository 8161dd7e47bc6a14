"""The VOICEVOX engine over HTTP: the real Zundamon voice.

The voice is a style of a speaker, found once by name in the engine's `GET /speakers`
(`[voice.voicevox] speaker_name = "ずんだもん"`, `style = "ノーマル"`): style ids differ between
engines and versions. An explicit numeric `speaker` (a style id) skips the lookup.
Then two calls per utterance, as the engine's API defines them (`audio_query`, `render`; `decode` makes
the WAV PCM: `zundacast.audio.utterances` pipelines the three so that `concurrency` syntheses are always
in flight):
`POST /audio_query?text=...&speaker=N` returns an AudioQuery (JSON) that we
adjust with the show's speed/pitch/intonation/volume/pauses, then
`POST /synthesis?speaker=N` with that query returns a WAV.
The engine does not retry: HTTP 4xx raises `PermanentVoiceError` (the text or
settings are wrong; an unknown style is the engine's 422 `{"message": …}`, request
validation its 422 `{"detail": [...]}`), 5xx and connection failures raise `VoiceError`,
and the caller's utterance loop retries those with backoff.
"""

from __future__ import annotations

import io
import threading
import wave

import httpx
import numpy as np

from zundacast.show import VoicevoxConfig
from zundacast.voices import PCM, PermanentVoiceError, VoiceError


def decode_wav(data: bytes) -> PCM:
    """16-bit (or 8/32-bit) PCM WAV bytes -> mono float32 PCM; stereo is averaged."""
    try:
        with wave.open(io.BytesIO(data)) as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            frames = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise VoiceError(f"not a WAV file ({len(data)} bytes): {exc}") from exc
    if width == 2:
        samples = np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0
    elif width == 4:
        samples = np.frombuffer(frames, dtype="<i4").astype(np.float32) / 2147483648.0
    elif width == 1:
        samples = (np.frombuffer(frames, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    else:
        raise VoiceError(f"unsupported WAV sample width: {width} bytes")
    if channels > 1:
        samples = samples[: len(samples) // channels * channels].reshape(-1, channels).mean(axis=1)
    return PCM(samples=np.ascontiguousarray(samples, dtype=np.float32), sample_rate=rate)


def _engine_says(response: httpx.Response) -> str:
    """What the engine's error body says: `message` (its own errors), FastAPI's `detail` (a string, or
    validation items whose `input` is left out: it echoes the whole query), else the text."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):
        items = [f"{'.'.join(str(part) for part in item.get('loc', []))}: {item.get('msg', '')}"
                 for item in detail if isinstance(item, dict)]
        return "; ".join(items)[:300]
    if isinstance(detail, str):
        return detail[:300]
    return response.text[:300]


def _is_engine_message(response: httpx.Response) -> bool:
    """The engine's own refusal (`{"message": …}`: an unknown style, a missing core), not FastAPI's
    request validation (`{"detail": …}`)."""
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and "message" in body


class VoicevoxVoice:
    name = "voicevox"
    max_chars = 300  # the engine takes more, but long queries are slow and fail as a whole

    def __init__(self, config: VoicevoxConfig | None = None, url: str = "", concurrency: int = 2,
                 timeout_s: float = 60.0) -> None:
        self.config = config or VoicevoxConfig()
        self.url = (url or self.config.url).rstrip("/")
        self.concurrency = max(1, concurrency)
        self.timeout_s = timeout_s
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()
        self._style_id: int | None = self.config.speaker
        self._style_lock = threading.Lock()
        self._style_refused: PermanentVoiceError | None = None
        self.setting = "voice.voicevox"  # where the show file sets this voice (named in errors)

    def cache_key(self) -> str:
        c = self.config
        # The URL is not part of the key: any engine serving the same voice sounds the same. The voice is
        # named as the show names it (a style id means different voices in different engines).
        voice = f"speaker={c.speaker}" if c.speaker is not None else f"voice={c.speaker_name}/{c.style}"
        return (f"voicevox:{voice}:speed={c.speed_scale}:pitch={c.pitch_scale}"
                f":intonation={c.intonation_scale}:volume={c.volume_scale}"
                f":pre={c.pre_phoneme_length}:post={c.post_phoneme_length}")

    def client(self) -> httpx.Client:
        with self._client_lock:  # one pooled client shared by the worker threads
            if self._client is None:
                self._client = httpx.Client(
                    base_url=self.url, timeout=self.timeout_s,
                    limits=httpx.Limits(max_connections=self.concurrency + 2,
                                        max_keepalive_connections=self.concurrency + 2))
            return self._client

    def close(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def style_id(self) -> int:
        """The style id to speak with: the show's `speaker`, else looked up once by name in /speakers."""
        with self._style_lock:
            if self._style_refused is not None:  # the engine's answer will not change: ask it once
                raise self._style_refused
            if self._style_id is None:
                try:
                    self._style_id = self._look_up_style()
                except PermanentVoiceError as exc:
                    self._style_refused = exc
                    raise
            return self._style_id

    def _look_up_style(self) -> int:
        c = self.config
        try:
            response = self.client().get("/speakers")
        except httpx.HTTPError as exc:
            raise VoiceError(f"voicevox at {self.url}: /speakers failed: {type(exc).__name__}: {exc} "
                             "(is the engine running? VOICEVOX_URL names it)") from exc
        if response.status_code >= 400:
            message = f"voicevox at {self.url}: /speakers answered HTTP {response.status_code}: " \
                      f"{_engine_says(response)}"
            if response.status_code >= 500:
                raise VoiceError(message)
            raise PermanentVoiceError(message + " (is VOICEVOX_URL a VOICEVOX engine?)")
        try:
            speakers = response.json()
            offered = {str(speaker["name"]): speaker for speaker in speakers}
        except (ValueError, TypeError, KeyError) as exc:
            raise VoiceError(f"voicevox at {self.url}: /speakers answered no speaker list") from exc
        speaker = offered.get(c.speaker_name)
        if speaker is None:
            raise PermanentVoiceError(
                f"voicevox at {self.url} offers no speaker {c.speaker_name!r} (it offers: "
                f"{', '.join(offered) or 'none'}): set {self.setting}.speaker_name in the show file")
        styles = {str(style.get("name")): style.get("id") for style in speaker.get("styles", [])
                  if isinstance(style, dict) and style.get("type", "talk") == "talk"}
        style_id = styles.get(c.style)
        if not isinstance(style_id, int):
            listed = ", ".join(f"{name} ({number})" for name, number in styles.items()) or "none"
            raise PermanentVoiceError(
                f"voicevox at {self.url}: {c.speaker_name} has no style {c.style!r} (it has: {listed}): "
                f"set {self.setting}.style in the show file")
        return style_id

    def _post(self, path: str, text: str, **kwargs: object) -> httpx.Response:
        try:
            response = self.client().post(path, **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            raise VoiceError(f"voicevox at {self.url}: {path} failed for 「{text}」: "
                             f"{type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            message = (f"voicevox at {self.url}: {path} answered HTTP {response.status_code} "
                       f"for 「{text}」: {_engine_says(response)}")
            style_refused = response.status_code == 422 and _is_engine_message(response)
            if style_refused:
                message += (f" (style id {self.style_id()}: check {self.setting}.speaker, speaker_name and "
                            "style in the show file against the engine's /speakers)")
            if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                refusal = PermanentVoiceError(message)
                if style_refused:  # every later sentence would be refused the same way: ask no more
                    with self._style_lock:
                        self._style_refused = refusal
                raise refusal
            raise VoiceError(message)
        return response

    def audio_query(self, text: str) -> dict:
        response = self._post("/audio_query", text, params={"text": text, "speaker": self.style_id()})
        try:
            query = response.json()
        except ValueError as exc:
            raise VoiceError(f"voicevox at {self.url}: /audio_query answered no JSON for 「{text}」") from exc
        if not isinstance(query, dict) or "accent_phrases" not in query:
            raise VoiceError(f"voicevox at {self.url}: /audio_query returned no AudioQuery for 「{text}」")
        c = self.config
        query.update(speedScale=c.speed_scale, pitchScale=c.pitch_scale, intonationScale=c.intonation_scale,
                     volumeScale=c.volume_scale, prePhonemeLength=c.pre_phoneme_length,
                     postPhonemeLength=c.post_phoneme_length, outputStereo=False)
        return query

    def render(self, text: str, query: dict) -> bytes:
        """`POST /synthesis` with an adjusted AudioQuery: the engine's WAV, not yet decoded."""
        return self._post("/synthesis", text, params={"speaker": self.style_id()}, json=query).content

    def decode(self, text: str, data: bytes) -> PCM:
        """The engine's WAV as PCM (done off the request threads when the utterances are pipelined)."""
        try:
            pcm = decode_wav(data)
        except VoiceError as exc:
            raise VoiceError(f"voicevox at {self.url}: /synthesis for 「{text}」: {exc}") from exc
        if pcm.samples.size == 0:
            raise VoiceError(f"voicevox at {self.url}: /synthesis returned no audio for 「{text}」")
        return pcm

    def synthesize(self, text: str) -> PCM:
        return self.decode(text, self.render(text, self.audio_query(text)))
