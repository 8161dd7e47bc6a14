"""OpenJTalk, in-process (pyopenjtalk-plus): the offline default voice.

Every worker thread gets its own OpenJTalk front end and HTS engine: the
library's global instances sit behind one lock, so sharing them would
serialize the pool, while separate instances release the GIL in C.
"""

from __future__ import annotations

import contextlib
import io
import sys
import threading
import warnings

import numpy as np

from zundacast.show import OpenJTalkConfig
from zundacast.voices import PCM, PermanentVoiceError, VoiceError

# tts() returns float64 scaled like int16 that overshoots full scale (peaks of 40-47k seen).
# A fixed 6 dB of headroom keeps every utterance unclipped and all of them at the same level;
# mastering sets the loudness afterwards anyway.
_SCALE = 0.5 / 32768.0


_local = threading.local()  # per thread, shared by all voices: loading the dictionary takes a while


# pyopenjtalk-plus prints these two lines on stdout when onnxruntime is absent: it would only read 何 as
# ナン/ナニ by context, which no listener misses, so the advice to install it is noise for our users.
_ONNX_NOTICE = ("Warning: ONNX Runtime is not installed", "Please install ONNX Runtime by")
_import_lock = threading.Lock()


def load_pyopenjtalk():
    """The pyopenjtalk module, imported without its onnxruntime notice (use it, not `import pyopenjtalk`)."""
    if "pyopenjtalk" not in sys.modules:
        with _import_lock:
            if "pyopenjtalk" not in sys.modules:
                _import_quietly()
    import pyopenjtalk

    return pyopenjtalk


def _import_quietly() -> None:
    """Import pyopenjtalk without its onnxruntime notice; anything else it prints still goes out, and
    import errors are raised as they are."""
    printed = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(printed):
            warnings.simplefilter("ignore")
            import pyopenjtalk  # noqa: F401
    finally:
        for line in printed.getvalue().splitlines():
            if not line.startswith(_ONNX_NOTICE):
                print(line)


class OpenJTalkVoice:
    name = "openjtalk"
    max_chars = 400

    def __init__(self, config: OpenJTalkConfig | None = None, concurrency: int = 2) -> None:
        self.config = config or OpenJTalkConfig()
        self.concurrency = max(1, concurrency)

    def cache_key(self) -> str:
        version = getattr(load_pyopenjtalk(), "__version__", "?")
        return f"openjtalk:{version}:mei_normal:speed={self.config.speed}:half_tone={self.config.half_tone}"

    def _engines(self):
        if not hasattr(_local, "engines"):
            pyopenjtalk = load_pyopenjtalk()
            from pyopenjtalk.htsengine import HTSEngine
            from pyopenjtalk.openjtalk import OpenJTalk

            def as_bytes(path: str | bytes) -> bytes:
                return path if isinstance(path, bytes) else str(path).encode()

            _local.engines = (OpenJTalk(dn_mecab=as_bytes(pyopenjtalk.OPEN_JTALK_DICT_DIR)),
                                   HTSEngine(as_bytes(pyopenjtalk.DEFAULT_HTS_VOICE)))
        return _local.engines

    def synthesize(self, text: str) -> PCM:
        if not text.strip():
            raise PermanentVoiceError("openjtalk: nothing to say (empty text)")
        pyopenjtalk = load_pyopenjtalk()
        jtalk, hts = self._engines()
        try:
            labels = pyopenjtalk.extract_fullcontext(text, jtalk=jtalk)
            hts.set_speed(self.config.speed)
            hts.add_half_tone(self.config.half_tone)  # sets (not adds to) the engine's extra half tones
            raw = hts.synthesize(labels)
            rate = int(hts.get_sampling_frequency())
        except Exception as exc:  # the C engine raises plain RuntimeError/ValueError
            raise VoiceError(f"openjtalk failed on 「{text}」: {exc}") from exc
        samples = np.clip(np.asarray(raw, dtype=np.float64) * _SCALE, -1.0, 1.0).astype(np.float32)
        if samples.size == 0:
            raise PermanentVoiceError(f"openjtalk produced no audio for 「{text}」")
        return PCM(samples=samples, sample_rate=rate)
