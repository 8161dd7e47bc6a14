"""The finished MP3's check: nothing is published that does not pass it.

Podcast pipelines have published 0-second, truncated and 260-byte episodes;
this decodes the whole file with ffmpeg and rejects it when ffmpeg reports an
error, when the decoded length differs from the assembled one by more than 1%,
or when it holds a silence longer than the longest pause the layout intended.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel

from zundacast.audio.master import decode
from zundacast.errors import EpisodeCheckError

SILENCE_DBFS = -50.0  # quieter than this (RMS over 10 ms frames) counts as silence
DURATION_TOLERANCE = 0.01
MIN_DURATION_S = 1.0
CHECK_RATE = 44100


class Mp3Check(BaseModel):
    duration_s: float
    size_bytes: int
    longest_silence_s: float
    longest_silence_at_s: float


def _clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes):02d}:{rest:06.3f}"


def longest_silence(samples: np.ndarray, rate: int,
                    threshold_dbfs: float = SILENCE_DBFS) -> tuple[float, float]:
    """(length, start) in seconds of the longest run of 10 ms frames quieter than threshold_dbfs."""
    frame = rate // 100
    count = len(samples) // frame
    if count == 0:
        return len(samples) / rate, 0.0
    frames = samples[: count * frame].astype(np.float64).reshape(count, frame)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    quiet = np.concatenate(([0], (rms < 10 ** (threshold_dbfs / 20)).astype(np.int8), [0]))
    edges = np.flatnonzero(np.diff(quiet))
    starts, ends = edges[0::2], edges[1::2]
    tail = len(samples) - count * frame  # a final partial frame extends a trailing silence
    if starts.size == 0:
        return 0.0, 0.0
    lengths = (ends - starts).astype(np.float64) * frame
    if ends[-1] == count:
        lengths[-1] += tail
    best = int(np.argmax(lengths))
    return float(lengths[best] / rate), float(starts[best] * frame / rate)


def check_mp3(path: Path | str, expected_duration_s: float, max_silence_s: float,
              decoded: np.ndarray | None = None) -> Mp3Check:
    """Decode the MP3 end to end and reject it (EpisodeCheckError naming the problem) unless it is sound.

    `decoded`: this very file already decoded cleanly (no ffmpeg error) at CHECK_RATE, e.g. by mastering's
    verification; it saves decoding the episode a second time.
    """
    path = Path(path)
    if not path.is_file():
        raise EpisodeCheckError(f"episode MP3 {path} does not exist")
    size = path.stat().st_size
    if size == 0:
        raise EpisodeCheckError(f"episode MP3 {path.name} is empty (0 bytes)")
    if decoded is not None:
        samples, errors, code = decoded, "", 0
    else:
        samples, errors, code = decode(path, CHECK_RATE)
    if code != 0 or errors:
        first = errors.splitlines()[0] if errors else f"exit code {code}"
        raise EpisodeCheckError(f"episode MP3 {path.name} ({size} bytes) does not decode cleanly: {first}")
    duration = len(samples) / CHECK_RATE
    if duration < MIN_DURATION_S:
        raise EpisodeCheckError(
            f"episode MP3 {path.name} ({size} bytes) decodes to {duration:.2f} s of audio")
    off_by = abs(duration - expected_duration_s)
    if expected_duration_s > 0 and off_by > DURATION_TOLERANCE * expected_duration_s:
        raise EpisodeCheckError(
            f"episode MP3 {path.name} decodes to {duration:.2f} s but {expected_duration_s:.2f} s "
            "were assembled "
            f"(more than {DURATION_TOLERANCE:.0%} apart: truncated or padded)")
    silence, at = longest_silence(samples, CHECK_RATE)
    if silence > max_silence_s:
        raise EpisodeCheckError(
            f"episode MP3 {path.name} holds {silence:.2f} s of silence at {_clock(at)} (the longest intended "
            f"pause is {max_silence_s:.2f} s): a sentence is missing or the audio dropped out")
    return Mp3Check(duration_s=round(duration, 3), size_bytes=size, longest_silence_s=round(silence, 3),
                    longest_silence_at_s=round(at, 3))
