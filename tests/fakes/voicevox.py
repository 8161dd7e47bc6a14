"""A loopback server speaking the VOICEVOX engine's HTTP API (the parts zundacast uses).

`POST /audio_query?text=...&speaker=N` answers an AudioQuery (JSON) shaped like
the engine's; `POST /synthesis?speaker=N` with an AudioQuery body answers a
real 16-bit mono WAV. Requests the engine would refuse are refused the same
way (HTTP 422 with a FastAPI-style `detail`). Every request is recorded.

The WAV is a voiced buzz, a few "syllables" per character, whose length
follows the query's speedScale and pre/post phoneme lengths and whose level
follows volumeScale, so a client that forgets to apply the settings is caught.

Knobs for tests: `fail_next` (statuses the next /synthesis calls answer with,
in order), `reject` (text -> status for /audio_query), `delay_s` (how long
/synthesis takes, for the benchmark).
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

AUDIO_QUERY_FIELDS = ("accent_phrases", "speedScale", "pitchScale", "intonationScale", "volumeScale",
                      "prePhonemeLength", "postPhonemeLength", "outputSamplingRate", "outputStereo")
SECONDS_PER_CHAR = 0.11  # at speedScale 1.0
SPEAKERS = {3: "ずんだもん ノーマル", 1: "ずんだもん あまあま", 2: "四国めたん ノーマル"}


def speech_like_wav(text: str, query: dict[str, Any]) -> bytes:
    """A WAV whose duration and level follow the query: silence, a buzz per character, silence."""
    rate = int(query.get("outputSamplingRate") or 24000)
    speed = float(query["speedScale"]) or 1.0
    pre, post = float(query["prePhonemeLength"]), float(query["postPhonemeLength"])
    voiced = max(1, len(text)) * SECONDS_PER_CHAR / speed
    t = np.arange(int(voiced * rate)) / rate
    f0 = 220.0 * np.exp(float(query["pitchScale"]))  # the engine adds pitchScale to log-f0
    buzz = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 8))
    syllables = 0.55 + 0.45 * np.sin(2 * np.pi * (speed / SECONDS_PER_CHAR) * t) ** 2
    body = 0.25 * float(query["volumeScale"]) * buzz * syllables
    fade = min(len(body) // 4, int(0.01 * rate))
    if fade:
        body[:fade] *= np.linspace(0, 1, fade)
        body[-fade:] *= np.linspace(1, 0, fade)
    samples = np.concatenate([np.zeros(int(pre * rate)), body, np.zeros(int(post * rate))])
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    channels = 2 if query.get("outputStereo") else 1
    if channels == 2:
        pcm = np.repeat(pcm, 2)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm.tobytes())
    return buffer.getvalue()


def audio_query_for(text: str) -> dict[str, Any]:
    """An AudioQuery as the engine returns it (defaults: speed 1.0, 24 kHz), moras simplified.

    `kana` holds the text itself (the engine puts AquesTalk notation there): clients send the query back
    unchanged apart from the scales, which lets /synthesis know what to "say".
    """
    phrases = []
    for chunk in [c for c in text.replace("。", "、").split("、") if c]:
        moras = [{"text": ch, "consonant": None, "consonant_length": None, "vowel": "a", "vowel_length": 0.1,
                  "pitch": 5.5} for ch in chunk]
        phrases.append({"moras": moras, "accent": 1, "pause_mora": None, "is_interrogative": False})
    return {"accent_phrases": phrases, "speedScale": 1.0, "pitchScale": 0.0, "intonationScale": 1.0,
            "volumeScale": 1.0, "prePhonemeLength": 0.1, "postPhonemeLength": 0.1, "pauseLength": None,
            "pauseLengthScale": 1.0, "outputSamplingRate": 24000, "outputStereo": False,
            "kana": text}


class FakeVoicevox:
    """The server's state; `with fake_voicevox() as fake:` starts it on 127.0.0.1 and a free port."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.requests: list[dict[str, Any]] = []  # {"method", "path", "params", "json"}
        self.fail_next: list[int] = []  # statuses for the next /synthesis calls, consumed in order
        self.reject: dict[str, int] = {}  # text -> status /audio_query answers for it
        self.lock = threading.Lock()
        self.url = ""

    def count(self, path: str) -> int:
        with self.lock:
            return sum(1 for r in self.requests if r["path"] == path)

    def synthesized_texts(self) -> list[str]:
        """Texts of the successful /synthesis calls (the fake puts the text in the query's `kana`)."""
        with self.lock:
            return [r["json"]["kana"] for r in self.requests if r["path"] == "/synthesis" and r.get("ok")]


def _handler(state: FakeVoicevox) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, payload: Any) -> None:
            self._send(status, json.dumps(payload, ensure_ascii=False).encode(), "application/json")

        def _missing(self, where: str, name: str) -> None:
            self._json(422, {"detail": [{"loc": [where, name], "msg": "Field required", "type": "missing"}]})

        def do_GET(self) -> None:
            if urlsplit(self.path).path == "/version":
                self._json(200, "0.25.0")
            else:
                self._json(404, {"detail": "Not Found"})

        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            params = {k: v[0] for k, v in parse_qs(parts.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body: Any = None
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = "<invalid json>"
            record = {"method": "POST", "path": parts.path, "params": params, "json": body, "ok": False}
            with state.lock:
                state.requests.append(record)
            if parts.path == "/audio_query":
                self._audio_query(params, record)
            elif parts.path == "/synthesis":
                self._synthesis(params, body, record)
            else:
                self._json(404, {"detail": "Not Found"})

        def _speaker(self, params: dict[str, str]) -> int | None:
            if "speaker" not in params:
                self._missing("query", "speaker")
                return None
            try:
                speaker = int(params["speaker"])
            except ValueError:
                self._json(422, {"detail": [{"loc": ["query", "speaker"], "msg": "Input should be a valid "
                                             "integer", "type": "int_parsing"}]})
                return None
            if speaker not in SPEAKERS:
                self._json(404, {"detail": f"該当するスタイル(style_id={speaker})が見つかりません"})
                return None
            return speaker

        def _audio_query(self, params: dict[str, str], record: dict[str, Any]) -> None:
            if "text" not in params:
                self._missing("query", "text")
                return
            speaker = self._speaker(params)
            if speaker is None:
                return
            text = params["text"]
            if text in state.reject:
                status = state.reject[text]
                self._json(status, {"detail": f"入力テキストが不正です: {text}"})
                return
            record["ok"] = True
            self._json(200, audio_query_for(text))

        def _synthesis(self, params: dict[str, str], body: Any, record: dict[str, Any]) -> None:
            speaker = self._speaker(params)
            if speaker is None:
                return
            if not isinstance(body, dict):
                self._missing("body", "query")
                return
            for name in AUDIO_QUERY_FIELDS:
                if name not in body:
                    self._missing("body", name)
                    return
            with state.lock:
                status = state.fail_next.pop(0) if state.fail_next else 200
            if state.delay_s:
                time.sleep(state.delay_s)
            if status != 200:
                self._json(status, {"detail": "Internal Server Error"})
                return
            record["ok"] = True
            self._send(200, speech_like_wav(str(body.get("kana", "")), body), "audio/wav")

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
