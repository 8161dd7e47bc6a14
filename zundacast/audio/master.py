"""Mastering and encoding: -16 LUFS integrated, true peak at most -1 dBTP, mono MP3.

Everything streams through ffmpeg from the assembled episode's raw float32
file, so Python never holds the episode. Loudness and true peak are measured by
ffmpeg's EBU R128 meter (ebur128: BS.1770 gating, 4x true peak) on the way
through each pass, not by reading the audio back:

1. measure the assembled episode's loudness;
2. gain, then ffmpeg's lookahead limiter running at 4x the sample rate (so it
   sees the inter-sample peaks a true-peak meter counts), into a second raw
   file, measured on the way out. The gain aims past the target by about what
   the limiter takes back, so that step 3 turns the level down, never up (a
   gain after the limiter moves its peaks with it);
3. the exact remaining gain and the one MP3 encode (libmp3lame);
4. `finish` (the tags), then one streamed decode that measures the MP3 as
   published and also serves the episode check (`check.scan_mp3`).

The encoder adds its own overshoot (up to 2.3 dB seen around limited bursts) and
loses about 0.4 dB of level (measured: LAME mono, a plain sine too), so the
ceiling sits ENCODER_MARGIN_DB below the limit and the PCM aims that much
louder: one encode is enough in the common case. In the rare case the MP3
misses (true peak over the limit, loudness off by more than
LOUDNESS_TOLERANCE_LU) the ceiling or gain is corrected and it is encoded again.
"""

from __future__ import annotations

import logging
import math
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import imageio_ffmpeg
import numpy as np
from pydantic import BaseModel

from zundacast.audio.check import CHECK_RATE, Scan, r128_filter, r128_readings, scan_mp3
from zundacast.errors import EpisodeCheckError
from zundacast.show import AudioConfig

log = logging.getLogger(__name__)

LOUDNESS_TOLERANCE_LU = 0.2  # the MP3 is encoded again when further than this from the target
# Room for the MP3 encoder's overshoot above the limiter's ceiling: 0.1 dB on short clean speech, but up
# to 1.4 dB seen around OpenJTalk's occasional vocoder bursts (raw peaks at 2.5x full scale). 1.0 dB made
# long episodes encode twice; at 1.5 dB a 12-minute episode landed at -1.2 to -1.5 dBTP in one encode
# by a resample_poly meter, but ffmpeg's ebur128 (192 kHz) read the 642 s demo episode at -0.95 dBTP
# (a second encode); at 2.0 dB it reads -1.5. The sample day's episode of 2026-12-01 (headings no longer
# read as sentences) overshot by 2.34 dB at 2.0 (-0.66 dBTP: a second limiter run and encode, +9 s);
# at 2.5 dB it encodes once, at -1.59 dBTP and -16.02 LUFS.
ENCODER_MARGIN_DB = 2.5
MAX_LIMITER_PASSES = 3
# What the limiter takes back from the loudness: 0.5-1 LU measured on OpenJTalk episodes at a -2.5 dBFS
# ceiling. Aiming this much louder into it leaves a small cut after it (a cut lowers the peaks too).
LIMITER_LOSS_GUESS_LU = 1.2
# A raise after the limiter lifts its peaks by as much: tolerated up to this (inside the encoder margin),
# beyond it the limiter runs again, louder.
MAX_RAISE_AFTER_LIMITER_DB = 0.25
# d(loudness)/d(gain) into the limiter: 0.71-0.74 on OpenJTalk episodes (it takes back about a quarter).
LIMITER_SLOPE = 0.75
# LAME (mono, via ffmpeg) decodes about 0.45 dB quieter than its input at 96 kbps (0.26 dB at 192 kbps),
# even for a plain sine: aim the PCM that much higher, then correct from the measured MP3.
ENCODER_LOUDNESS_LOSS_LU = 0.4
MAX_PASSES = 4


class Mastered(BaseModel):
    loudness_lufs: float
    true_peak_dbtp: float
    gain_db: float
    ceiling_dbfs: float
    passes: int


def ffmpeg_exe() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


def decode(path: Path, rate: int = 44100) -> tuple[np.ndarray, str, int]:
    """Decode any audio file with ffmpeg -> (mono float32 at rate, ffmpeg's error output, exit code)."""
    result = subprocess.run(
        [ffmpeg_exe(), "-nostdin", "-hide_banner", "-v", "error", "-i", str(path), "-map", "0:a:0",
         "-ac", "1", "-ar", str(rate), "-f", "f32le", "pipe:1"],
        capture_output=True, check=False)
    samples = np.frombuffer(result.stdout[: len(result.stdout) // 4 * 4], dtype="<f4").copy()
    return samples, result.stderr.decode("utf-8", errors="replace").strip(), result.returncode


def true_peak_dbtp(samples: np.ndarray, oversample: int = 4, chunk: int = 1 << 20) -> float:
    """BS.1770 true peak: the largest magnitude after 4x oversampling, in dBTP (chunked to bound memory)."""
    if samples.size == 0:
        return float("-inf")
    from scipy import signal  # scipy loads in ~1 s: only when audio is really measured

    overlap = 64
    peak = 0.0
    for start in range(0, len(samples), chunk):
        # float32 is plenty for a peak (same result to 1e-5 dB) and oversamples about 40% faster
        piece = samples[max(0, start - overlap): start + chunk + overlap].astype(np.float32)
        peak = max(peak, float(np.max(np.abs(signal.resample_poly(piece, oversample, 1)))))
    return 20 * math.log10(peak) if peak > 0 else float("-inf")


def _run_ffmpeg(arguments: list[str], what: str, cwd: Path) -> None:
    result = subprocess.run([ffmpeg_exe(), "-nostdin", "-hide_banner", "-v", "error", *arguments],
                            cwd=cwd, capture_output=True, check=False)
    if result.returncode != 0:
        raise EpisodeCheckError(f"ffmpeg {what} failed: {result.stderr.decode(errors='replace')[-500:]}")


def _raw_input(path: Path, rate: int) -> list[str]:
    return ["-f", "f32le", "-ar", str(rate), "-ac", "1", "-i", str(path.resolve())]


def raw_loudness(path: Path, rate: int, scratch: Path) -> float:
    """Integrated loudness (LUFS) of a raw float32 mono file; -inf when nothing passes the gate."""
    _run_ffmpeg([*_raw_input(path, rate), "-af", r128_filter(true_peak=False), "-f", "null", "-"],
                "measuring the loudness", scratch)
    return r128_readings(scratch)[0]


def limit_to_file(source: Path, rate: int, length: int, gain_db: float, ceiling_dbfs: float, out: Path,
                  scratch: Path) -> float:
    """Gain, then ffmpeg's lookahead limiter at 4x the rate (delay compensated: timings do not move),
    into `out` (raw float32, exactly `length` samples); returns the limited audio's loudness."""
    ceiling = min(1.0, max(0.0625, 10 ** (ceiling_dbfs / 20)))
    filters = (f"volume={gain_db:.4f}dB,aresample={rate * 4},"
               f"alimiter=limit={ceiling:.6f}:attack=1.5:release=60:level=false:latency=true,"
               f"aresample={rate},{r128_filter(true_peak=False)}")
    _run_ffmpeg([*_raw_input(source, rate), "-af", filters, "-f", "f32le", "-y", str(out.resolve())],
                "limiter", scratch)
    made = out.stat().st_size // 4
    if abs(made - length) > rate // 100:
        raise EpisodeCheckError(f"ffmpeg's limiter returned {made} samples for {length}")
    with out.open("r+b") as handle:
        handle.truncate(length * 4)  # exactly the input's length (zeros if short): cues stay where they are
    return r128_readings(scratch)[0]


def encode_mp3(source: Path, rate: int, gain_db: float, path: Path, bitrate_kbps: int, scratch: Path) -> None:
    """Mono CBR MP3 with a LAME/Xing header (decoders trim the encoder delay: gapless, exact length)."""
    _run_ffmpeg([*_raw_input(source, rate), "-af", f"volume={gain_db:.4f}dB",
                 "-c:a", "libmp3lame", "-b:a", f"{bitrate_kbps}k", "-map_metadata", "-1", "-bitexact",
                 "-id3v2_version", "0", "-write_xing", "1", "-f", "mp3", "-y", str(path.resolve())],
                f"could not encode the MP3 ({path.name})", scratch)


def master_file(source: Path, rate: int, audio: AudioConfig, path: Path,
                finish: Callable[[Path], None] | None = None) -> tuple[Mastered, Scan]:
    """Master the raw float32 mono episode in `source` into the MP3 `path`.

    Returns what the published file measures and its `Scan` (a streamed decode at CHECK_RATE, for the
    episode check). `finish(path)` runs on every fresh encode before it is decoded (e.g. writing the
    tags), so the decode that is measured is the one of the file as it will be published.
    """
    length = source.stat().st_size // 4
    target = audio.target_lufs
    with tempfile.TemporaryDirectory(prefix=".mastering-", dir=path.parent) as scratch_name:
        scratch = Path(scratch_name)
        measured_in = raw_loudness(source, rate, scratch)
        if not math.isfinite(measured_in):
            raise EpisodeCheckError(
                "the assembled episode is silent (no measurable loudness): nothing to master")
        limited = scratch / "limited.f32"
        pcm_target = target + ENCODER_LOUDNESS_LOSS_LU  # what the PCM must measure for the MP3 to hit target
        gain_db = pcm_target - measured_in + LIMITER_LOSS_GUESS_LU
        ceiling = audio.true_peak_dbtp - ENCODER_MARGIN_DB
        limited_lufs = float("nan")
        relimit = True
        lufs = peak = float("nan")
        scan: Scan | None = None
        for attempt in range(1, MAX_PASSES + 1):
            if relimit:
                for limiter_pass in range(1, MAX_LIMITER_PASSES + 1):
                    limited_lufs = limit_to_file(source, rate, length, gain_db, ceiling, limited, scratch)
                    if not math.isfinite(limited_lufs):
                        raise EpisodeCheckError("the limited episode measures silent: nothing to encode")
                    raise_db = pcm_target - limited_lufs
                    if raise_db <= MAX_RAISE_AFTER_LIMITER_DB or limiter_pass == MAX_LIMITER_PASSES:
                        break
                    gain_db += raise_db / LIMITER_SLOPE  # the limiter took more than guessed
                relimit = False
            encode_mp3(limited, rate, pcm_target - limited_lufs, path, audio.bitrate_kbps, scratch)
            if finish is not None:
                finish(path)
            scan = scan_mp3(path, CHECK_RATE)
            if scan.exit_code != 0 or scan.errors:
                raise EpisodeCheckError(
                    f"the freshly encoded MP3 does not decode cleanly: {scan.errors[:300]}")
            lufs, peak = scan.loudness_lufs, scan.true_peak_dbtp
            log.info("mastering pass %d: gain %+.2f dB, ceiling %.2f dBFS, after the limiter %+.2f dB -> "
                     "%.2f LUFS, %.2f dBTP", attempt, gain_db, ceiling, pcm_target - limited_lufs, lufs, peak)
            loud_ok = abs(lufs - target) <= LOUDNESS_TOLERANCE_LU
            peak_ok = peak <= audio.true_peak_dbtp
            if loud_ok and peak_ok:
                return Mastered(loudness_lufs=round(lufs, 2), true_peak_dbtp=round(peak, 2),
                                gain_db=round(gain_db + pcm_target - limited_lufs, 2),
                                ceiling_dbfs=round(ceiling, 2), passes=attempt), scan
            if not peak_ok:
                # The encoder's overshoot varies from pass to pass: step well past the miss, or a
                # miss of a few hundredths of a dB can repeat until the passes run out.
                ceiling -= 2 * (peak - audio.true_peak_dbtp) + 0.25
                relimit = True
            pcm_target += target - lufs
        assert scan is not None
        if abs(lufs - target) <= 1.0 and peak <= audio.true_peak_dbtp:
            return Mastered(loudness_lufs=round(lufs, 2), true_peak_dbtp=round(peak, 2),
                            gain_db=round(gain_db + pcm_target - limited_lufs, 2),
                            ceiling_dbfs=round(ceiling, 2), passes=MAX_PASSES), scan
    raise EpisodeCheckError(
        f"mastering missed its targets after {MAX_PASSES} passes: {lufs:.2f} LUFS (target "
        f"{target}), true peak {peak:.2f} dBTP (limit {audio.true_peak_dbtp})")


def master_to_mp3(samples: np.ndarray, rate: int, audio: AudioConfig, path: Path,
                  finish: Callable[[Path], None] | None = None) -> Mastered:
    """Write the mastered MP3 to `path` from samples in memory; returns what the decoded MP3 measures."""
    with tempfile.TemporaryDirectory(prefix=".assembled-", dir=path.parent) as scratch:
        raw = Path(scratch) / "episode.f32"
        np.ascontiguousarray(samples, dtype="<f4").tofile(raw)
        return master_file(raw, rate, audio, path, finish)[0]


def master_and_decode(samples: np.ndarray, rate: int, audio: AudioConfig, path: Path,
                      finish: Callable[[Path], None] | None = None) -> tuple[Mastered, np.ndarray]:
    """`master_to_mp3`, also returning the final file decoded at `rate` (small episodes and tests: the
    stage itself streams with `master_file`)."""
    mastered = master_to_mp3(samples, rate, audio, path, finish)
    decoded, errors, code = decode(path, rate)
    if code != 0 or errors:
        raise EpisodeCheckError(f"the freshly encoded MP3 does not decode cleanly: {errors[:300]}")
    return mastered, decoded
