"""The finished MP3's check: nothing is published that does not pass it.

Podcast pipelines have published 0-second, truncated and 260-byte episodes;
this decodes the whole file with ffmpeg and rejects it when ffmpeg reports an
error, when the decoded length differs from the assembled one by more than 1%,
or when it holds a silence longer than the longest pause the layout intended.

The decode is streamed (`scan_mp3`): Python reads ffmpeg's output a chunk at a
time and keeps one flag per 10 ms frame, while ffmpeg's EBU R128 meter
(ebur128, BS.1770 with 4x true peak) measures the same decode's loudness and
true peak on the way through. One decode serves mastering's verification and
the check, and memory stays flat however long the episode.
"""

from __future__ import annotations

import math
import re
import subprocess
import tempfile
from pathlib import Path

import imageio_ffmpeg
import numpy as np
from pydantic import BaseModel

from zundacast.errors import EpisodeCheckError

SILENCE_DBFS = -50.0  # quieter than this (RMS over 10 ms frames) counts as silence
DURATION_TOLERANCE = 0.01
MIN_DURATION_S = 1.0
CHECK_RATE = 44100
SCAN_CHUNK_FRAMES = 2048  # 10 ms frames per read: about 20 s, 3.6 MB at 44.1 kHz
R128_METADATA = "r128.txt"  # ffmpeg writes the meter's readings here, in its working directory


class Mp3Check(BaseModel):
    duration_s: float
    size_bytes: int
    longest_silence_s: float
    longest_silence_at_s: float


class Scan(BaseModel):
    """What one streamed decode of an audio file measured."""

    samples: int  # decoded length at `rate`
    rate: int
    longest_silence_s: float
    longest_silence_at_s: float
    loudness_lufs: float  # integrated (BS.1770 gated); -inf when nothing passes the gate
    true_peak_dbtp: float
    errors: str  # ffmpeg's error output (empty when the file decodes cleanly)
    exit_code: int

    @property
    def duration_s(self) -> float:
        return self.samples / self.rate


def _clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes):02d}:{rest:06.3f}"


def quiet_frames(samples: np.ndarray, rate: int, threshold_dbfs: float = SILENCE_DBFS) -> np.ndarray:
    """One flag per whole 10 ms frame: RMS below threshold_dbfs."""
    frame = rate // 100
    count = len(samples) // frame
    frames = samples[: count * frame].astype(np.float64).reshape(count, frame)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    return rms < 10 ** (threshold_dbfs / 20)


def longest_quiet_run(quiet: np.ndarray, rate: int, tail: int) -> tuple[float, float]:
    """(length, start) in seconds of the longest run of quiet frames; `tail` samples past the last
    whole frame extend a run that reaches the end."""
    frame = rate // 100
    count = len(quiet)
    padded = np.concatenate(([0], quiet.astype(np.int8), [0]))
    edges = np.flatnonzero(np.diff(padded))
    starts, ends = edges[0::2], edges[1::2]
    if starts.size == 0:
        return 0.0, 0.0
    lengths = (ends - starts).astype(np.float64) * frame
    if ends[-1] == count:
        lengths[-1] += tail
    best = int(np.argmax(lengths))
    return float(lengths[best] / rate), float(starts[best] * frame / rate)


def longest_silence(samples: np.ndarray, rate: int,
                    threshold_dbfs: float = SILENCE_DBFS) -> tuple[float, float]:
    """(length, start) in seconds of the longest run of 10 ms frames quieter than threshold_dbfs."""
    frame = rate // 100
    count = len(samples) // frame
    if count == 0:
        return len(samples) / rate, 0.0
    return longest_quiet_run(quiet_frames(samples, rate, threshold_dbfs), rate, len(samples) - count * frame)


def _last_reading(text: str, key: str) -> float | None:
    found = re.findall(rf"^lavfi\.r128\.{re.escape(key)}=(\S+)$", text[-4000:], flags=re.MULTILINE)
    return float(found[-1]) if found else None


def r128_readings(directory: Path) -> tuple[float, float]:
    """(integrated LUFS, true peak dBTP) from the last frame ffmpeg's ebur128 meter printed there."""
    path = directory / R128_METADATA
    text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    integrated, peak = _last_reading(text, "I"), _last_reading(text, "true_peak")
    lufs = integrated if integrated is not None and integrated > -69.95 else float("-inf")  # -70: gated out
    dbtp = 20 * math.log10(peak) if peak else float("-inf")
    return lufs, dbtp


def r128_filter(true_peak: bool) -> str:
    """ebur128 passes the audio through and prints its running readings for every 100 ms frame."""
    peak = ":peak=true" if true_peak else ""
    return f"ebur128=metadata=1{peak},ametadata=mode=print:file={R128_METADATA}"


def scan_mp3(path: Path | str, rate: int = CHECK_RATE) -> Scan:
    """Decode `path` once, streamed: length, longest silence, loudness and true peak, and ffmpeg's errors."""
    frame = rate // 100
    with tempfile.TemporaryDirectory(prefix="zundacast-scan-") as scratch:
        command = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-hide_banner", "-v", "error", "-i",
                   str(Path(path).resolve()), "-map", "0:a:0", "-ac", "1", "-ar", str(rate),
                   "-af", r128_filter(true_peak=True), "-f", "f32le", "pipe:1"]
        with tempfile.TemporaryFile() as errors_file:
            process = subprocess.Popen(command, cwd=scratch, stdout=subprocess.PIPE, stderr=errors_file,
                                       stdin=subprocess.DEVNULL)
            assert process.stdout is not None
            flags: list[np.ndarray] = []
            rest = b""
            total = 0
            while True:
                block = process.stdout.read(SCAN_CHUNK_FRAMES * frame * 4)
                if not block:
                    break
                data = rest + block
                usable = len(data) // (frame * 4) * frame * 4
                rest = data[usable:]
                samples = np.frombuffer(data[:usable], dtype="<f4")
                total += len(samples)
                flags.append(quiet_frames(samples, rate))
            code = process.wait()
            errors_file.seek(0)
            errors = errors_file.read().decode("utf-8", errors="replace").strip()
        tail = len(rest) // 4
        total += tail
        lufs, peak = r128_readings(Path(scratch))
    quiet = np.concatenate(flags) if flags else np.zeros(0, dtype=bool)
    if len(quiet) == 0:
        silence, at = total / rate, 0.0
    else:
        silence, at = longest_quiet_run(quiet, rate, tail)
    return Scan(samples=total, rate=rate, longest_silence_s=silence, longest_silence_at_s=at,
                loudness_lufs=lufs, true_peak_dbtp=peak, errors=errors, exit_code=code)


def check_mp3(path: Path | str, expected_duration_s: float, max_silence_s: float,
              decoded: np.ndarray | Scan | None = None) -> Mp3Check:
    """Decode the MP3 end to end and reject it (EpisodeCheckError naming the problem) unless it is sound.

    `decoded`: this very file already decoded at CHECK_RATE, e.g. by mastering's verification (its
    `Scan`, or the samples of a clean decode); it saves decoding the episode a second time.
    """
    path = Path(path)
    if not path.is_file():
        raise EpisodeCheckError(f"episode MP3 {path} does not exist")
    size = path.stat().st_size
    if size == 0:
        raise EpisodeCheckError(f"episode MP3 {path.name} is empty (0 bytes)")
    if isinstance(decoded, np.ndarray):
        silence, at = longest_silence(decoded, CHECK_RATE)
        scan = Scan(samples=len(decoded), rate=CHECK_RATE, longest_silence_s=silence, longest_silence_at_s=at,
                    loudness_lufs=float("nan"), true_peak_dbtp=float("nan"), errors="", exit_code=0)
    else:
        scan = decoded if decoded is not None else scan_mp3(path, CHECK_RATE)
    if scan.exit_code != 0 or scan.errors:
        first = scan.errors.splitlines()[0] if scan.errors else f"exit code {scan.exit_code}"
        raise EpisodeCheckError(f"episode MP3 {path.name} ({size} bytes) does not decode cleanly: {first}")
    duration = scan.duration_s
    if duration < MIN_DURATION_S:
        raise EpisodeCheckError(
            f"episode MP3 {path.name} ({size} bytes) decodes to {duration:.2f} s of audio")
    off_by = abs(duration - expected_duration_s)
    if expected_duration_s > 0 and off_by > DURATION_TOLERANCE * expected_duration_s:
        raise EpisodeCheckError(
            f"episode MP3 {path.name} decodes to {duration:.2f} s but {expected_duration_s:.2f} s "
            "were assembled "
            f"(more than {DURATION_TOLERANCE:.0%} apart: truncated or padded)")
    silence, at = scan.longest_silence_s, scan.longest_silence_at_s
    if silence > max_silence_s:
        raise EpisodeCheckError(
            f"episode MP3 {path.name} holds {silence:.2f} s of silence at {_clock(at)} (the longest intended "
            f"pause is {max_silence_s:.2f} s): a sentence is missing or the audio dropped out")
    return Mp3Check(duration_s=round(duration, 3), size_bytes=size, longest_silence_s=round(silence, 3),
                    longest_silence_at_s=round(at, 3))
