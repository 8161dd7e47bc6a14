"""A loopback server speaking the VOICEVOX engine's HTTP API (the parts zundacast uses), as strictly as
the real engine.

What the real engine does, and where that was read (VOICEVOX/voicevox_engine, commit d4b1b3e6; also
observed against the engine run with `--enable_mock`, see DESIGN.md "Seen here"):

- `GET /speakers` answers `list[Speaker]` (`voicevox_engine/metas/metas.py`): each speaker has `name`,
  `speaker_uuid`, `styles` (`name`, `id`, `type`: "talk" for speech), `version` and
  `supported_features`. ずんだもん's talk styles in the product engine: ノーマル 3, あまあま 1,
  ツンツン 7, セクシー 5, ささやき 22, ヒソヒソ 38, ヘロヘロ 75, なみだめ 76.
- `POST /audio_query?text=…&speaker=N` answers an `AudioQuery` (`voicevox_engine/model.py`,
  `app/routers/tts_pipeline.py`): `accent_phrases` of `moras` (text, consonant, consonant_length, vowel,
  vowel_length, pitch) with an optional silent `pause_mora` (vowel "pau") after a phrase that ends in
  punctuation; speedScale 1, pitchScale 0, intonationScale 1, volumeScale 1, pre/postPhonemeLength 0.1,
  pauseLength null, pauseLengthScale 1, outputSamplingRate 24000, outputStereo false, and `kana`
  (read-only: /synthesis ignores it).
- `POST /synthesis?speaker=N` with an AudioQuery body answers `audio/wav`, 16-bit mono, 24 kHz. Its length
  comes from the query's moras alone (`tts_pipeline/tts_engine.py`): prePhonemeLength and
  postPhonemeLength are added as silent moras, pauseLength/pauseLengthScale apply to "pau" moras, every
  consonant and vowel length is divided by speedScale, each is rounded (half to even) to frames of
  256 samples at 24 kHz (93.75 frames/s), then volumeScale scales the wave and outputSamplingRate
  resamples it. pitchScale multiplies each mora's pitch by 2**pitchScale.
- A style id the engine does not offer answers **422**
  `{"message": "指定されたスタイルが見つかりませんでした。"}` (`core/core_adapter.py`
  `CoreStyleIdError`, handled in `app/global_exceptions.py`), not 404.
- Request validation is FastAPI's: **422** `{"detail": [{"type", "loc", "msg", "input", …}]}` for a
  missing or mistyped query parameter or body field (pydantic's own errors, `loc` starting with "query"
  or "body"). Unknown body fields are ignored, as pydantic models do by default.
- Unknown paths answer 404 `{"detail": "Not Found"}`; an unhandled error answers 500 with the plain text
  `Internal Server Error`.

Here the "voice" is a buzz at each mora's pitch (silence for unvoiced and pause moras), so the audio's
length and level follow exactly what the client sent: a client that drops or mangles `accent_phrases`,
pauses or scales gets audio of the wrong length and fails a test. The fake's accent phrases: one mora per
character (a consonant and a vowel), phrases split at 、 and 。 with a pause mora after each.

Knobs for tests: `fail_next` (statuses the next /synthesis calls answer with, in order), `reject`
(text -> status /audio_query answers for it), `delay_s` (how long /synthesis takes, for the benchmark).
Every request is recorded (`requests`).
"""

from __future__ import annotations

import io
import json
import threading
import time
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

ENGINE_RATE = 24_000
FRAME_RATE = 93.75  # 24000 / 256: the engine's frames per second
STYLE_NOT_FOUND = "指定されたスタイルが見つかりませんでした。"
CONSONANT_S = 0.05  # the fake's lengths for each character's mora
VOWEL_S = 0.09
PAUSE_S = 0.3
PITCH = 5.6  # log f0, as the engine gives it (about 270 Hz)

ZUNDAMON_UUID = "388f246b-8c41-4ac1-8e2d-5d79f3ff56d9"
ZUNDAMON_STYLES = {"ノーマル": 3, "あまあま": 1, "ツンツン": 7, "セクシー": 5, "ささやき": 22, "ヒソヒソ": 38,
                   "ヘロヘロ": 75, "なみだめ": 76}
METAN_STYLES = {"ノーマル": 2, "あまあま": 0, "ツンツン": 6, "セクシー": 4, "ささやき": 36, "ヒソヒソ": 37}


def _speaker(name: str, uuid: str, styles: dict[str, int]) -> dict[str, Any]:
    return {"name": name, "speaker_uuid": uuid,
            "styles": [{"name": style, "id": style_id, "type": "talk"} for style, style_id in styles.items()],
            "version": "0.15.0", "supported_features": {"permitted_synthesis_morphing": "SELF_ONLY"}}


SPEAKERS: list[dict[str, Any]] = [
    _speaker("四国めたん", "7ffcb7ce-00ec-4bdc-82cd-45a8889e43ff", METAN_STYLES),
    _speaker("ずんだもん", ZUNDAMON_UUID, ZUNDAMON_STYLES),
]
STYLE_IDS = {style["id"] for speaker in SPEAKERS for style in speaker["styles"]}


# --- the engine's request models (voicevox_engine/tts_pipeline/model.py, voicevox_engine/model.py) -------

class Mora(BaseModel):
    text: str
    consonant: str | None = None
    consonant_length: float | None = None
    vowel: str
    vowel_length: float
    pitch: float


class AccentPhrase(BaseModel):
    moras: list[Mora]
    accent: int
    pause_mora: Mora | None = None
    is_interrogative: bool = False


class AudioQuery(BaseModel):
    accent_phrases: list[AccentPhrase]
    speedScale: float
    pitchScale: float
    intonationScale: float
    volumeScale: float
    prePhonemeLength: float
    postPhonemeLength: float
    pauseLength: float | None = None
    pauseLengthScale: float = Field(default=1)
    outputSamplingRate: int
    outputStereo: bool
    kana: str | None = None


# --- what the fake "says" ---------------------------------------------------------------------------------

def audio_query_for(text: str) -> dict[str, Any]:
    """An AudioQuery as the engine returns it for `text` (the engine's defaults; the fake's moras)."""
    phrases: list[dict[str, Any]] = []
    chunk: list[str] = []

    def close(pause: str | None) -> None:
        if not chunk:
            return
        moras = [{"text": ch, "consonant": "k", "consonant_length": CONSONANT_S, "vowel": "a",
                  "vowel_length": VOWEL_S, "pitch": PITCH} for ch in chunk]
        pause_mora = ({"text": pause, "consonant": None, "consonant_length": None, "vowel": "pau",
                       "vowel_length": PAUSE_S, "pitch": 0.0} if pause else None)
        phrases.append({"moras": moras, "accent": 1, "pause_mora": pause_mora, "is_interrogative": False})
        chunk.clear()

    for ch in text:
        if ch in "、。":
            close(ch)
        else:
            chunk.append(ch)
    close(None)
    kana = "/".join("".join(m["text"] for m in p["moras"]) + "'" for p in phrases)
    return {"accent_phrases": phrases, "speedScale": 1.0, "pitchScale": 0.0, "intonationScale": 1.0,
            "volumeScale": 1.0, "prePhonemeLength": 0.1, "postPhonemeLength": 0.1, "pauseLength": None,
            "pauseLengthScale": 1.0, "outputSamplingRate": ENGINE_RATE, "outputStereo": False, "kana": kana}


def _frames(seconds: float) -> int:
    return int(np.round(seconds * FRAME_RATE))  # numpy rounds half to even, as the engine does


def query_moras(query: AudioQuery) -> list[Mora]:
    """The moras the engine synthesizes, in order, with the query's pauses and speed applied."""
    moras = [mora.model_copy() for phrase in query.accent_phrases
             for mora in [*phrase.moras, *([phrase.pause_mora] if phrase.pause_mora else [])]]
    silence = {"text": "　", "vowel": "pau", "pitch": 0.0}
    moras = [Mora(vowel_length=query.prePhonemeLength, **silence), *moras,
             Mora(vowel_length=query.postPhonemeLength, **silence)]
    for mora in moras:
        if mora.vowel == "pau":
            if query.pauseLength is not None:
                mora.vowel_length = query.pauseLength
            mora.vowel_length *= query.pauseLengthScale
        mora.vowel_length /= query.speedScale
        if mora.consonant_length:
            mora.consonant_length /= query.speedScale
        mora.pitch *= 2 ** query.pitchScale
    return moras


def expected_seconds(query: dict[str, Any]) -> float:
    """How long the engine's audio for `query` is (before any resampling)."""
    moras = query_moras(AudioQuery.model_validate(query))
    frames = sum(_frames(m.vowel_length) + (_frames(m.consonant_length) if m.consonant_length else 0)
                 for m in moras)
    return frames * 256 / ENGINE_RATE


def synthesize(query: AudioQuery) -> bytes:
    """The WAV the fake answers: per mora, a buzz at its pitch (silence when unvoiced)."""
    pieces = []
    for mora in query_moras(query):
        frames = _frames(mora.vowel_length) + (_frames(mora.consonant_length) if mora.consonant_length else 0)
        n = frames * 256
        if mora.vowel == "pau" or mora.pitch <= 0 or n == 0:
            pieces.append(np.zeros(n))
            continue
        t = np.arange(n) / ENGINE_RATE
        f0 = float(np.exp(mora.pitch))
        buzz = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 8))
        envelope = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / (0.005 * ENGINE_RATE))
        pieces.append(0.25 * buzz * envelope)
    samples = np.concatenate(pieces) * query.volumeScale if pieces else np.zeros(0)
    rate = query.outputSamplingRate
    if rate != ENGINE_RATE and samples.size:
        positions = np.arange(round(samples.size * rate / ENGINE_RATE)) * ENGINE_RATE / rate
        samples = np.interp(positions, np.arange(samples.size), samples)
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    channels = 2 if query.outputStereo else 1
    if channels == 2:
        pcm = np.repeat(pcm, 2)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm.tobytes())
    return buffer.getvalue()


# --- the server -------------------------------------------------------------------------------------------

class FakeVoicevox:
    """The server's state; `with fake_voicevox() as fake:` starts it on 127.0.0.1 and a free port."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.requests: list[dict[str, Any]] = []  # {"method", "path", "params", "json", "status", "ok"}
        self.fail_next: list[int] = []  # statuses for the next /synthesis calls, consumed in order
        self.reject: dict[str, int] = {}  # text -> status /audio_query answers for it
        self.speakers: list[dict[str, Any]] = [dict(s) for s in SPEAKERS]  # what /speakers offers
        self.lock = threading.Lock()
        self.url = ""

    def count(self, path: str) -> int:
        with self.lock:
            return sum(1 for r in self.requests if r["path"] == path)

    def synthesized_texts(self) -> list[str]:
        """Texts of the successful /synthesis calls, read back from the moras the client sent."""
        with self.lock:
            bodies = [r["json"] for r in self.requests if r["path"] == "/synthesis" and r.get("ok")]
        return ["".join(m["text"] for p in body["accent_phrases"]
                        for m in [*p["moras"], *([p["pause_mora"]] if p.get("pause_mora") else [])])
                for body in bodies]

    def style_ids(self) -> set[int]:
        return {style["id"] for speaker in self.speakers for style in speaker["styles"]}


def _errors(exc: ValidationError, where: str) -> list[dict[str, Any]]:
    """pydantic's errors as FastAPI puts them in a 422 `detail` (loc prefixed, no docs URL)."""
    detail = []
    for error in exc.errors(include_url=False):
        item = {"type": error["type"], "loc": [where, *error["loc"]], "msg": error["msg"],
                "input": error.get("input")}
        if error.get("ctx"):
            item["ctx"] = {key: str(value) for key, value in error["ctx"].items()}
        detail.append(item)
    return detail


_INT = TypeAdapter(int)
_BOOL = TypeAdapter(bool)
_STR = TypeAdapter(str)


def _query_params(params: dict[str, str], required: dict[str, TypeAdapter], optional: dict[str, TypeAdapter]
                  ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    values: dict[str, Any] = {}
    detail: list[dict[str, Any]] = []
    for name, adapter in {**required, **optional}.items():
        if name not in params:
            if name in required:
                detail.append({"type": "missing", "loc": ["query", name], "msg": "Field required",
                               "input": None})
            continue
        try:
            values[name] = adapter.validate_python(params[name])
        except ValidationError as exc:
            detail += [{"type": e["type"], "loc": ["query", name], "msg": e["msg"], "input": params[name]}
                       for e in exc.errors(include_url=False)]
    return values, detail


def _handler(state: FakeVoicevox) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, body: bytes, content_type: str, record: dict[str, Any]) -> None:
            record["status"] = status
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, payload: Any, record: dict[str, Any]) -> None:
            self._send(status, json.dumps(payload, ensure_ascii=False).encode(), "application/json", record)

        def _record(self, method: str, body: Any = None) -> tuple[dict[str, Any], dict[str, str]]:
            parts = urlsplit(self.path)
            params = {k: v[0] for k, v in parse_qs(parts.query).items()}
            record = {"method": method, "path": parts.path, "params": params, "json": body, "ok": False}
            with state.lock:
                state.requests.append(record)
            return record, params

        def do_GET(self) -> None:
            record, _params = self._record("GET")
            if record["path"] == "/version":
                self._json(200, "0.25.0", record)
            elif record["path"] == "/speakers":
                record["ok"] = True
                self._json(200, state.speakers, record)
            elif record["path"] in ("/audio_query", "/synthesis"):
                self._json(405, {"detail": "Method Not Allowed"}, record)
            else:
                self._json(404, {"detail": "Not Found"}, record)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            record, params = self._record("POST", body)
            if record["path"] == "/audio_query":
                self._audio_query(params, record)
            elif record["path"] == "/synthesis":
                self._synthesis(params, raw, record)
            else:
                self._json(404, {"detail": "Not Found"}, record)

        def _unknown_style(self, speaker: int, record: dict[str, Any]) -> bool:
            if speaker in state.style_ids():
                return False
            self._json(422, {"message": STYLE_NOT_FOUND}, record)
            return True

        def _audio_query(self, params: dict[str, str], record: dict[str, Any]) -> None:
            values, detail = _query_params(params, {"text": _STR, "speaker": _INT},
                                           {"enable_katakana_english": _BOOL, "core_version": _STR})
            if detail:
                self._json(422, {"detail": detail}, record)
                return
            if self._unknown_style(values["speaker"], record):
                return
            text = values["text"]
            if text in state.reject:
                self._json(state.reject[text], {"detail": f"入力テキストが不正です: {text}"}, record)
                return
            record["ok"] = True
            self._json(200, audio_query_for(text), record)

        def _synthesis(self, params: dict[str, str], raw: bytes, record: dict[str, Any]) -> None:
            values, detail = _query_params(params, {"speaker": _INT},
                                           {"enable_interrogative_upspeak": _BOOL, "core_version": _STR})
            query: AudioQuery | None = None
            if not raw:
                detail.append({"type": "missing", "loc": ["body"], "msg": "Field required", "input": None})
            else:
                try:
                    query = AudioQuery.model_validate_json(raw)
                except ValidationError as exc:
                    detail += _errors(exc, "body")
            if detail:
                self._json(422, {"detail": detail}, record)
                return
            if self._unknown_style(values["speaker"], record):
                return
            with state.lock:
                status = state.fail_next.pop(0) if state.fail_next else 200
            if state.delay_s:
                time.sleep(state.delay_s)
            if status != 200:
                self._send(status, b"Internal Server Error", "text/plain; charset=utf-8", record)
                return
            assert query is not None
            record["ok"] = True
            self._send(200, synthesize(query), "audio/wav", record)

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # the benchmark opens many connections at once


@contextmanager
def fake_voicevox(delay_s: float = 0.0) -> Iterator[FakeVoicevox]:
    state = FakeVoicevox(delay_s=delay_s)
    server = _Server(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, name="fake-voicevox", daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
