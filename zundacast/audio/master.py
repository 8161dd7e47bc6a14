"""Mastering and encoding: -16 LUFS integrated, true peak at most -1 dBTP, mono MP3.

Loudness is measured with pyloudnorm (BS.1770) and set with a plain gain;
peaks are held under a ceiling by ffmpeg's lookahead limiter running at 4x the
sample rate (so it sees the inter-sample peaks a true-peak meter counts). The
limiter takes back part of the gain (about 0.5-1 LU on OpenJTalk's peaky speech),
so the gain is refined on the limited PCM (a secant step along the measured
gain -> loudness curve) before the MP3 encode. The encoder adds its own
overshoot (up to 1.4 dB around limited bursts) and loses about 0.4 dB of level
(measured: LAME mono, a plain sine too), so the ceiling sits ENCODER_MARGIN_DB
below the limit and the PCM aims that much louder: one encode is enough in the
common case. The MP3 is then decoded once (the same decode serves the episode
check) and measured; in the rare case it misses (true peak over the limit,
loudness off by more than LOUDNESS_TOLERANCE_LU) the ceiling or gain is
corrected and it is encoded again.
"""

from __future__ import annotations

import logging
import math
import subprocess
from collections.abc import Callable
from pathlib import Path

import imageio_ffmpeg
import numpy as np
from pydantic import BaseModel

from zundacast.audio.assemble import loudness
from zundacast.errors import EpisodeCheckError
from zundacast.show import AudioConfig

log = logging.getLogger(__name__)

LOUDNESS_TOLERANCE_LU = 0.2  # the MP3 is encoded again when further than this from the target
PCM_TOLERANCE_LU = 0.15  # the limited PCM is good enough to encode when this close
# Room for the MP3 encoder's overshoot above the limiter's ceiling: 0.1 dB on short clean speech, but up
# to 1.4 dB seen around OpenJTalk's occasional vocoder bursts (raw peaks at 2.5x full scale). 1.0 dB made
# long episodes encode twice; at 1.5 dB a 12-minute episode landed at -1.2 to -1.5 dBTP in one encode.
ENCODER_MARGIN_DB = 1.5
MAX_LIMITER_PASSES = 4
# d(loudness)/d(gain) of the limited PCM before a second point gives the secant: measured 0.71-0.74 on
# OpenJTalk episodes at a -2.5 dBFS ceiling (the limiter takes back about a quarter of each added dB).
# Starting at 1.0 undershot and cost a third limiter pass; on cleaner audio (slope near 1) the first
# step overshoots by a third of the remaining error, still inside PCM_TOLERANCE_LU or fixed by the secant.
FIRST_LIMITER_SLOPE = 0.75
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


def limit(samples: np.ndarray, rate: int, gain_db: float, ceiling_dbfs: float) -> np.ndarray:
    """Gain, then ffmpeg's lookahead limiter at 4x the rate (delay compensated: timings do not move)."""
    ceiling = min(1.0, max(0.0625, 10 ** (ceiling_dbfs / 20)))
    filters = (f"volume={gain_db:.4f}dB,aresample={rate * 4},"
               f"alimiter=limit={ceiling:.6f}:attack=1.5:release=60:level=false:latency=true,"
               f"aresample={rate}")
    result = subprocess.run(
        [ffmpeg_exe(), "-nostdin", "-hide_banner", "-v", "error", "-f", "f32le", "-ar", str(rate), "-ac", "1",
         "-i", "pipe:0", "-af", filters, "-f", "f32le", "pipe:1"],
        input=np.ascontiguousarray(samples, dtype="<f4").tobytes(), capture_output=True, check=False)
    if result.returncode != 0:
        raise EpisodeCheckError(f"ffmpeg's limiter failed: {result.stderr.decode(errors='replace')[-500:]}")
    limited = np.frombuffer(result.stdout, dtype="<f4")
    if abs(len(limited) - len(samples)) > rate // 100:
        raise EpisodeCheckError(f"ffmpeg's limiter returned {len(limited)} samples for {len(samples)}")
    out = np.zeros(len(samples), dtype=np.float32)  # exactly the input's length: cues stay where they are
    out[: min(len(out), len(limited))] = limited[: len(out)]
    return out


def encode_mp3(samples: np.ndarray, rate: int, path: Path, bitrate_kbps: int) -> None:
    """Mono CBR MP3 with a LAME/Xing header (decoders trim the encoder delay: gapless, exact length)."""
    command = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-v", "error", "-y",
               "-f", "f32le", "-ar", str(rate), "-ac", "1", "-i", "pipe:0",
               "-c:a", "libmp3lame", "-b:a", f"{bitrate_kbps}k", "-map_metadata", "-1", "-bitexact",
               "-id3v2_version", "0", "-write_xing", "1", "-f", "mp3", str(path)]
    result = subprocess.run(command, input=np.ascontiguousarray(samples, dtype="<f4").tobytes(),
                            capture_output=True, check=False)
    if result.returncode != 0:
        raise EpisodeCheckError(f"ffmpeg could not encode the MP3 ({path.name}): "
                                f"{result.stderr.decode(errors='replace')[-500:]}")


def _limited_to_target(samples: np.ndarray, rate: int, target: float, gain_db: float,
                       ceiling: float) -> tuple[np.ndarray, float, float]:
    """Limit, measure, refine the gain (up to MAX_LIMITER_PASSES); returns (limited, gain, its loudness)."""
    previous: tuple[float, float] | None = None
    for limiter_pass in range(1, MAX_LIMITER_PASSES + 1):
        limited = limit(samples, rate, gain_db, ceiling)
        measured = loudness(limited, rate)
        if abs(measured - target) <= PCM_TOLERANCE_LU or limiter_pass == MAX_LIMITER_PASSES:
            break  # (the returned gain is always the one `limited` was made with)
        slope = FIRST_LIMITER_SLOPE
        if previous is not None and abs(gain_db - previous[0]) > 1e-3:
            slope = min(1.0, max(0.2, (measured - previous[1]) / (gain_db - previous[0])))
        previous = (gain_db, measured)
        gain_db += (target - measured) / slope
    log.debug("limiter pass %d: gain %+.2f dB -> %.2f LUFS (PCM target %.2f)", limiter_pass, gain_db,
              measured, target)
    return limited, gain_db, measured


def master_to_mp3(samples: np.ndarray, rate: int, audio: AudioConfig, path: Path,
                  finish: Callable[[Path], None] | None = None) -> Mastered:
    """Write the mastered MP3 to `path`; returns what the decoded MP3 measures."""
    return master_and_decode(samples, rate, audio, path, finish)[0]


def master_and_decode(samples: np.ndarray, rate: int, audio: AudioConfig, path: Path,
                      finish: Callable[[Path], None] | None = None) -> tuple[Mastered, np.ndarray]:
    """`master_to_mp3`, also returning the final file decoded at `rate` (for the episode check).

    `finish(path)` runs on every fresh encode before it is decoded (e.g. writing the tags), so the
    decode that is measured and returned is the one of the file as it will be published.
    """
    measured_in = loudness(samples, rate)
    if not math.isfinite(measured_in):
        raise EpisodeCheckError("the assembled episode is silent (no measurable loudness): nothing to master")
    target = audio.target_lufs
    pcm_target = target + ENCODER_LOUDNESS_LOSS_LU  # what the PCM must measure for the MP3 to measure target
    gain_db = pcm_target - measured_in
    ceiling = audio.true_peak_dbtp - ENCODER_MARGIN_DB
    lufs = peak = float("nan")
    decoded = np.zeros(0, dtype=np.float32)
    for attempt in range(1, MAX_PASSES + 1):
        limited, gain_db, _ = _limited_to_target(samples, rate, pcm_target, gain_db, ceiling)
        encode_mp3(limited, rate, path, audio.bitrate_kbps)
        del limited
        if finish is not None:
            finish(path)
        decoded, errors, code = decode(path, rate)
        if code != 0 or errors:
            raise EpisodeCheckError(f"the freshly encoded MP3 does not decode cleanly: {errors[:300]}")
        lufs, peak = loudness(decoded, rate), true_peak_dbtp(decoded)
        log.info("mastering pass %d: gain %+.2f dB, ceiling %.2f dBFS -> %.2f LUFS, %.2f dBTP",
                 attempt, gain_db, ceiling, lufs, peak)
        loud_ok = abs(lufs - target) <= LOUDNESS_TOLERANCE_LU
        peak_ok = peak <= audio.true_peak_dbtp
        if loud_ok and peak_ok:
            result = Mastered(loudness_lufs=round(lufs, 2), true_peak_dbtp=round(peak, 2),
                              gain_db=round(gain_db, 2), ceiling_dbfs=round(ceiling, 2), passes=attempt)
            return result, decoded
        if not peak_ok:
            # The encoder's overshoot varies from pass to pass: step well past the miss, or a
            # miss of a few hundredths of a dB can repeat until the passes run out.
            ceiling -= 2 * (peak - audio.true_peak_dbtp) + 0.25
        pcm_target += target - lufs
        gain_db += target - lufs
    if abs(lufs - target) <= 1.0 and peak <= audio.true_peak_dbtp:
        result = Mastered(loudness_lufs=round(lufs, 2), true_peak_dbtp=round(peak, 2),
                          gain_db=round(gain_db, 2), ceiling_dbfs=round(ceiling, 2), passes=MAX_PASSES)
        return result, decoded
    raise EpisodeCheckError(
        f"mastering missed its targets after {MAX_PASSES} passes: {lufs:.2f} LUFS (target "
        f"{target}), true peak {peak:.2f} dBTP (limit {audio.true_peak_dbtp})")
