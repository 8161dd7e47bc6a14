"""OpenJTalk, in-process (pyopenjtalk-plus): the offline default voice.

Text analysis (MeCab, NJD, labels) uses pyopenjtalk's one global front end, the
one the offline writer already loaded: a second front end would page in its own
copy of the ~100 MB dictionary (issue 14: about 100 MB per worker thread). Its
calls are serialized by the library's lock, and they are the cheap part. The
expensive part, the HTS engine, is per worker thread: the library's global engine
is held under a lock for a whole synthesis, while separate engines run side by side
in C, so both cores stay busy.
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


_local = threading.local()  # one HTS engine per thread, shared by all voices


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

    def _engine(self):
        """This thread's HTS engine (the voice model is small; the dictionary is not loaded here)."""
        if not hasattr(_local, "hts"):
            pyopenjtalk = load_pyopenjtalk()
            from pyopenjtalk.htsengine import HTSEngine

            voice = pyopenjtalk.DEFAULT_HTS_VOICE
            _local.hts = HTSEngine(voice if isinstance(voice, bytes) else str(voice).encode())
        return _local.hts

    def synthesize(self, text: str) -> PCM:
        if not text.strip():
            raise PermanentVoiceError("openjtalk: nothing to say (empty text)")
        pyopenjtalk = load_pyopenjtalk()
        hts = self._engine()
        try:
            labels = pyopenjtalk.extract_fullcontext(text)  # the shared front end (see the module docstring)
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
