"""Utterances: every sentence of the script, spoken once and cached on disk.

The cache lives under `home/tts/<hash of the engine's cache_key>/<hash of the
spoken text>.npz`, so changing one sentence re-synthesizes only that sentence
and changing the voice settings never serves audio made with the old ones.
Utterances are synthesized concurrently (bounded by the engine's concurrency);
transient failures are retried with backoff, permanent ones (HTTP 4xx) fail at
once; either way the error names the engine and the sentence.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import random
import re
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from zundacast.backoff import retry_delay_scale
from zundacast.models import Script
from zundacast.voices import PCM, PermanentVoiceError, Voice, VoiceError

log = logging.getLogger(__name__)

CACHE_MAX_AGE_DAYS = 30  # cached utterances unused for this long are deleted after a run
_SPEAKABLE = re.compile(r"\w")  # kana, kanji, digits: something the engines can say
_STRONG_BREAK = re.compile(r"(?<=[。！？!?])")
_WEAK_BREAK = re.compile(r"(?<=[、，,；;：:])")


class Utterance(BaseModel):
    """One request to the engine: a sentence, or part of one too long for the engine."""

    section: int  # index in script.sections
    sentence: int  # index in the section's sentences
    part: int = 0  # > 0 only for sentences split because they exceed the engine's max_chars
    speech: str  # what the engine reads
    text: str  # the sentence as displayed (for cues and error messages)
    section_title: str = ""


def split_speech(speech: str, max_chars: int) -> list[str]:
    """Cut a text longer than max_chars at sentence ends, then commas, then anywhere."""
    if len(speech) <= max_chars:
        return [speech]
    parts: list[str] = []
    for pattern in (_STRONG_BREAK, _WEAK_BREAK, None):
        pieces = [p for p in pattern.split(speech) if p] if pattern else [
            speech[i:i + max_chars] for i in range(0, len(speech), max_chars)]
        if len(pieces) > 1:
            merged: list[str] = []
            for piece in pieces:  # greedily pack neighbours back together up to the limit
                if merged and len(merged[-1]) + len(piece) <= max_chars:
                    merged[-1] += piece
                else:
                    merged.append(piece)
            for piece in merged:
                parts.extend(split_speech(piece, max_chars) if len(piece) > max_chars else [piece])
            return parts
    return [speech]


def plan_utterances(script: Script, max_chars: int) -> list[Utterance]:
    """Every sentence with something to say, in order, split only where the engine needs it."""
    utterances: list[Utterance] = []
    for s_index, section in enumerate(script.sections):
        for n, sentence in enumerate(section.sentences):
            speech = sentence.speech.strip()
            if not _SPEAKABLE.search(speech):  # punctuation only: nothing to say
                continue
            for part, piece in enumerate(split_speech(speech, max_chars)):
                if _SPEAKABLE.search(piece):
                    utterances.append(Utterance(section=s_index, sentence=n, part=part, speech=piece,
                                                text=sentence.text, section_title=section.title))
    return utterances


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def engine_cache_dir(root: Path, voice: Voice) -> Path:
    return root / _digest(voice.cache_key(), 16)


def cache_path(engine_dir: Path, speech: str) -> Path:
    return engine_dir / f"{_digest(speech, 32)}.npz"


def load_cached(path: Path) -> PCM | None:
    """The cached utterance, or None (missing or unreadable: a torn write just means synthesize again)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            samples = data["samples"].astype(np.float32) * np.float32(data["scale"])
            rate = int(data["sample_rate"])
    except (OSError, ValueError, KeyError, EOFError):
        return None
    with contextlib.suppress(OSError):
        os.utime(path)  # the age that pruning looks at is "last used"
    return PCM(samples=samples, sample_rate=rate)


def store_cached(path: Path, pcm: PCM) -> PCM:
    """`write_cached`, returning the PCM as a later run will load it (so a fresh run and a cached one
    build identical files)."""
    quantized, scale = write_cached(path, pcm)
    return PCM(samples=quantized.astype(np.float32) * np.float32(scale), sample_rate=pcm.sample_rate)


def write_cached(path: Path, pcm: PCM) -> tuple[np.ndarray, float]:
    """Save as int16 scaled to the utterance's peak (half the size of float32, inaudibly different)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    peak = float(np.max(np.abs(pcm.samples))) if pcm.samples.size else 0.0
    scale = peak / 32767.0 if peak > 0 else 1.0
    quantized = np.round(pcm.samples / scale).astype(np.int16)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, samples=quantized, scale=np.float64(scale),
                     sample_rate=np.int64(pcm.sample_rate))
        os.replace(tmp, path)  # atomic: concurrent runs never read half a file
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return quantized, scale


def prune_cache(root: Path, max_age_days: float = CACHE_MAX_AGE_DAYS) -> int:
    """Delete cached utterances unused for max_age_days; returns how many went."""
    if max_age_days <= 0 or not root.is_dir():
        return 0
    cutoff = time.time() - max_age_days * 86400
    removed = 0
    for path in root.glob("*/*.npz"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except OSError:
            continue
    return removed


def _with_retries(voice: Voice, utterance: Utterance, attempts: int, backoff_s: float,
                  stop: threading.Event) -> PCM:
    last: Exception | None = None
    for attempt in range(1, attempts + 1):
        if stop.is_set():
            raise VoiceError(f"{voice.name}: cancelled after another utterance failed")
        try:
            pcm = voice.synthesize(utterance.speech)
            samples = np.asarray(pcm.samples, dtype=np.float32).reshape(-1)
            if samples.size == 0 or not np.all(np.isfinite(samples)):
                raise VoiceError(f"{voice.name} returned empty or invalid audio")
            return PCM(samples=np.clip(samples, -1.0, 1.0), sample_rate=pcm.sample_rate)
        except PermanentVoiceError as exc:
            last = exc
            break
        except Exception as exc:  # any engine failure may be transient: retry it
            last = exc
            if attempt < attempts:
                delay = backoff_s * 2 ** (attempt - 1) * random.uniform(0.75, 1.25)
                log.warning("%s: attempt %d/%d failed for 「%s」 (%s); retrying in %.1f s",
                            voice.name, attempt, attempts, utterance.speech, exc, delay)
                stop.wait(delay * retry_delay_scale())  # the scale is 1 except in the test suite
    where = f"sentence {utterance.sentence + 1} of section 「{utterance.section_title}」"
    tries = "1 attempt, not retried" if isinstance(last, PermanentVoiceError) else f"{attempts} attempts"
    message = (f"voice engine {voice.name!r} could not synthesize {where}: 「{utterance.text}」 "
               f"(spoken as 「{utterance.speech}」; {tries}): {last}")
    if isinstance(last, PermanentVoiceError):
        raise PermanentVoiceError(message) from last
    raise VoiceError(message) from last


def synthesize_to_cache(voice: Voice, utterances: list[Utterance], cache_root: Path, attempts: int = 4,
                        backoff_s: float = 0.5,
                        on_progress: Callable[[int, int], None] | None = None) -> tuple[list[Path], int]:
    """The cache file of every utterance (synthesizing the missing ones) and how many were synthesized now.

    Nothing is kept in memory: a 10-minute episode is about 115 MB of float32 at 48 kHz, so assembly
    reads the utterances back one at a time.
    """
    engine_dir = engine_cache_dir(cache_root, voice)
    engine_dir.mkdir(parents=True, exist_ok=True)
    key_file = engine_dir / "engine.txt"  # for humans browsing the cache
    if not key_file.exists():
        key_file.write_text(voice.cache_key() + "\n", encoding="utf-8")

    paths = {u.speech: cache_path(engine_dir, u.speech) for u in utterances}
    missing: dict[str, Utterance] = {}
    for utterance in utterances:
        if utterance.speech in missing:
            continue
        path = paths[utterance.speech]
        if not path.is_file() or load_cached(path) is None:  # also refreshes its "last used" time
            missing[utterance.speech] = utterance

    stop = threading.Event()

    def job(utterance: Utterance) -> None:
        pcm = _with_retries(voice, utterance, attempts, backoff_s, stop)
        write_cached(paths[utterance.speech], pcm)

    if missing:
        done_count = 0
        # Exactly `concurrency` threads: OpenJTalk gives every thread its own front end, whose ~100 MB
        # dictionary is paged in per instance (an extra storing thread cost more memory than it saved).
        with ThreadPoolExecutor(max_workers=max(1, voice.concurrency), thread_name_prefix="tts") as pool:
            # Longest first: the last utterance to finish is a short one, so both workers stay busy
            # to the end (the order of the results does not depend on it).
            ordered = sorted(missing.values(), key=lambda u: len(u.speech), reverse=True)
            pending = {pool.submit(job, u) for u in ordered}
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    if future.exception() is not None:
                        stop.set()  # the others stop retrying; queued ones never start
                        for other in pending:
                            other.cancel()
                        raise future.exception()  # type: ignore[misc]
                    done_count += 1
                if on_progress:
                    on_progress(done_count, len(missing))
    return [paths[u.speech] for u in utterances], len(missing)


def load_utterance(path: Path) -> PCM:
    """One utterance from the cache that `synthesize_to_cache` filled."""
    pcm = load_cached(path)
    if pcm is None:
        raise VoiceError(f"cached utterance {path} vanished or is unreadable (another run pruned it?): "
                         "run the stage again")
    return pcm


def synthesize_utterances(voice: Voice, utterances: list[Utterance], cache_root: Path, attempts: int = 4,
                          backoff_s: float = 0.5,
                          on_progress: Callable[[int, int], None] | None = None) -> tuple[list[PCM], int]:
    """PCM for every utterance (from the cache where possible) and how many were synthesized now."""
    paths, synthesized = synthesize_to_cache(voice, utterances, cache_root, attempts, backoff_s, on_progress)
    loaded = {path: load_utterance(path) for path in dict.fromkeys(paths)}
    return [loaded[path] for path in paths], synthesized
