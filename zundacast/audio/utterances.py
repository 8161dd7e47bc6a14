"""Utterances: every sentence of the script, spoken once and cached on disk.

The cache lives under `home/tts/<hash of the engine's cache_key>/<hash of the
spoken text>.npz`, so changing one sentence re-synthesizes only that sentence
and changing the voice settings never serves audio made with the old ones.
Utterances are synthesized concurrently (bounded by the engine's concurrency);
transient failures are retried with backoff, permanent ones (HTTP 4xx) fail at
once; either way the error names the engine and the sentence. Runs on one machine
that share the cache (two shows, a rerun started beside a served run) voice each
sentence once: whoever starts it holds a lock, the others wait and load the file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import random
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel

from zundacast.backoff import retry_delay_scale
from zundacast.models import Script
from zundacast.voices import PCM, PermanentVoiceError, Voice, VoiceError

log = logging.getLogger(__name__)
T = TypeVar("T")

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
    speaker: str = ""  # the sentence's speaker ("" is the host): whose voice says it


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
                                                text=sentence.text, section_title=section.title,
                                                speaker=sentence.speaker))
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


@contextlib.contextmanager
def voicing(path: Path) -> Iterator[None]:
    """Held while this process voices the utterance cached at `path`: another run on this machine that
    needs it waits, then loads the file instead of voicing it again. An flock (one of 256 per engine
    folder, by the file's name): released when the holder exits, even killed. Where locks are refused
    (a read-only share), runs just do not wait for each other."""
    try:
        locks = path.parent / ".locks"
        locks.mkdir(exist_ok=True)
        handle = (locks / f"{path.name[:2]}.lock").open("a+b")
    except OSError:
        yield
        return
    with handle:
        with contextlib.suppress(OSError):
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


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


def _checked(voice: Voice, pcm: PCM) -> PCM:
    samples = np.asarray(pcm.samples, dtype=np.float32).reshape(-1)
    if samples.size == 0 or not np.all(np.isfinite(samples)):
        raise VoiceError(f"{voice.name} returned empty or invalid audio")
    return PCM(samples=np.clip(samples, -1.0, 1.0), sample_rate=pcm.sample_rate)


def _with_retries(voice: Voice, utterance: Utterance, attempts: int, backoff_s: float,
                  stop: threading.Event, call: Callable[[], T] | None = None) -> T:
    """`call` (default: synthesize and check the utterance) with retries and backoff; the error names the
    engine and the sentence."""
    last: Exception | None = None
    for attempt in range(1, attempts + 1):
        if stop.is_set():
            raise VoiceError(f"{voice.name}: cancelled after another utterance failed")
        try:
            if call is not None:
                return call()
            return _checked(voice, voice.synthesize(utterance.speech))  # type: ignore[return-value]
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
    missing = _missing(utterances, paths)

    stop = threading.Event()
    voiced = len(missing)
    if missing:
        # Longest first: the last utterance to finish is a short one, so every worker stays busy to the
        # end (the order of the results does not depend on it).
        ordered = sorted(missing.values(), key=lambda u: len(u.speech), reverse=True)
        if _can_pipeline(voice):
            _pipelined(voice, ordered, paths, attempts, backoff_s, stop, on_progress)
        else:
            voiced = _in_workers(voice, ordered, paths, attempts, backoff_s, stop, on_progress)
    return [paths[u.speech] for u in utterances], voiced


def _missing(utterances: list[Utterance], paths: dict[str, Path]) -> dict[str, Utterance]:
    """The utterances whose cache file is missing or unreadable, one per spoken text."""
    missing: dict[str, Utterance] = {}
    for utterance in utterances:
        if utterance.speech in missing:
            continue
        path = paths[utterance.speech]
        if not path.is_file() or load_cached(path) is None:  # also refreshes its "last used" time
            missing[utterance.speech] = utterance
    return missing


def cached_paths(voice: Voice, utterances: list[Utterance], cache_root: Path) -> list[Path] | None:
    """Every utterance's cache file if all of them are cached and readable, else None (nothing written)."""
    engine_dir = engine_cache_dir(cache_root, voice)
    paths = {u.speech: cache_path(engine_dir, u.speech) for u in utterances}
    return None if _missing(utterances, paths) else [paths[u.speech] for u in utterances]


def _can_pipeline(voice: Voice) -> bool:
    """An engine over HTTP whose request and decoding are separate steps (VOICEVOX)."""
    return all(callable(getattr(voice, name, None)) for name in ("audio_query", "render", "decode"))


def _drain(pending: set[Future], stop: threading.Event, count: Callable[[Future], int],
           on_progress: Callable[[int, int], None] | None, total: int) -> None:
    """Wait for every future (more may be added to `pending` by `count`); the first failure stops the
    others (they stop retrying, queued ones never start) and is raised."""
    done_count = 0
    while pending:
        done, _ = wait(set(pending), return_when=FIRST_EXCEPTION)
        for future in done:
            pending.discard(future)
            if future.exception() is not None:
                stop.set()
                for other in pending:
                    other.cancel()
                raise future.exception()  # type: ignore[misc]
            done_count += count(future)
        if on_progress and done:
            on_progress(done_count, total)


def _in_workers(voice: Voice, ordered: list[Utterance], paths: dict[str, Path], attempts: int,
                backoff_s: float, stop: threading.Event,
                on_progress: Callable[[int, int], None] | None) -> int:
    """Each of `concurrency` threads synthesizes, checks and stores one utterance at a time (OpenJTalk:
    the work is CPU, one thread per core); how many this process voiced (not those another run voiced
    while this one waited for them)."""

    voiced: list[Utterance] = []

    def job(utterance: Utterance) -> None:
        path = paths[utterance.speech]
        with voicing(path):
            if path.is_file() and load_cached(path) is not None:  # another run voiced it meanwhile
                return
            write_cached(path, _with_retries(voice, utterance, attempts, backoff_s, stop))
        voiced.append(utterance)

    with ThreadPoolExecutor(max_workers=max(1, voice.concurrency), thread_name_prefix="tts") as pool:
        _drain({pool.submit(job, u) for u in ordered}, stop, lambda _: 1, on_progress, len(ordered))
    return len(voiced)


def _pipelined(voice: Any, ordered: list[Utterance], paths: dict[str, Path], attempts: int,
               backoff_s: float, stop: threading.Event,
               on_progress: Callable[[int, int], None] | None) -> None:
    """Three stages, so the engine always has `concurrency` syntheses to work on: queries are asked
    ahead (two threads), `concurrency` threads only wait for /synthesis, and one thread decodes and
    stores the WAVs. A WAV that does not decode is made again, query and all, with retries."""
    ahead = ThreadPoolExecutor(max_workers=2, thread_name_prefix="tts-query")
    requests = ThreadPoolExecutor(max_workers=max(1, voice.concurrency), thread_name_prefix="tts")
    storer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tts-store")

    def store(utterance: Utterance, data: bytes) -> None:
        try:
            pcm = _checked(voice, voice.decode(utterance.speech, data))
        except PermanentVoiceError:
            raise
        except VoiceError:
            pcm = _with_retries(voice, utterance, attempts, backoff_s, stop)
        write_cached(paths[utterance.speech], pcm)

    def request(utterance: Utterance, query: Future) -> Future:
        def first_try() -> bytes:  # the query asked ahead; a retry asks again
            if tries:
                return voice.render(utterance.speech, voice.audio_query(utterance.speech))
            tries.append(1)
            return voice.render(utterance.speech, query.result())

        tries: list[int] = []
        data = _with_retries(voice, utterance, attempts, backoff_s, stop, first_try)
        return storer.submit(store, utterance, data)

    def ask(utterance: Utterance) -> dict:
        return voice.audio_query(utterance.speech)

    def count(future: Future) -> int:
        result = future.result()
        if isinstance(result, Future):  # a request done: its storing is what counts
            pending.add(result)
            return 0
        return 1

    try:
        queries = [ahead.submit(ask, u) for u in ordered]
        pending = {requests.submit(request, u, q) for u, q in zip(ordered, queries, strict=True)}
        _drain(pending, stop, count, on_progress, len(ordered))
    finally:
        for pool in (ahead, requests, storer):
            pool.shutdown(wait=True, cancel_futures=True)


def synthesize_voices(voices: Callable[[str], Voice], utterances: list[Utterance], cache_root: Path,
                      attempts: int = 4, backoff_s: float = 0.5,
                      fill: Callable[..., tuple[list[Path], int]] | None = None) -> tuple[list[Path], int]:
    """`fill` (default `synthesize_to_cache`) per speaker, each in the voice `voices(speaker)` gives: the
    cache file of every utterance in order, and how many were synthesized now. Each voice has its own
    cache folder (keyed by its settings), so the host's and the cohost's takes of one sentence never
    collide."""
    fill = fill or synthesize_to_cache
    by_voice: dict[str, list[int]] = {}
    for index, utterance in enumerate(utterances):
        by_voice.setdefault(utterance.speaker, []).append(index)
    paths: list[Path | None] = [None] * len(utterances)
    synthesized = 0
    for speaker, indices in by_voice.items():
        found, made = fill(voices(speaker), [utterances[i] for i in indices], cache_root,
                           attempts=attempts, backoff_s=backoff_s)
        for index, path in zip(indices, found, strict=True):
            paths[index] = path
        synthesized += made
    return [path for path in paths if path is not None], synthesized


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
