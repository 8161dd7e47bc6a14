"""Stage 5, synthesize: script -> a mastered, tagged, checked MP3 (an `AudioBundle`).

Every sentence is one utterance, synthesized once and cached on disk, so a
rerun after an edit re-synthesizes only the sentences that changed. The
utterances are assembled with pauses and jingles, mastered to -16 LUFS and
-1 dBTP, encoded to mono MP3 with ID3 chapters, and checked end to end before
the bundle is returned. The MP3's name is its content hash: it never changes
once written. The task also copies it into the store's private work area, so a
rerun of upload on another machine (results shared) finds it there.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from prefect import task

from zundacast.audio import (
    assemble_to_file,
    check_mp3,
    cover_image,
    load_utterance,
    master_file,
    mix_music_into,
    plan_utterances,
    prune_cache,
    write_tags,
)
from zundacast.audio.assemble import decode_audio_file
from zundacast.audio.master import ffmpeg_exe
from zundacast.audio.tts_child import synthesize_to_cache_in_child
from zundacast.audio.utterances import Utterance, synthesize_to_cache, synthesize_voices
from zundacast.errors import PermanentError
from zundacast.memory import release_free_memory, release_openjtalk_dictionaries
from zundacast.models import AudioBundle, Script
from zundacast.show import AudioConfig, Environment, ShowInfo, VoiceConfig
from zundacast.stage import stage_options
from zundacast.storage import Store, open_store
from zundacast.storage.work import put_work_file
from zundacast.voices import Voice, speaker_voices
from zundacast.voices.openjtalk import OpenJTalkVoice

log = logging.getLogger(__name__)

SILENCE_MARGIN_S = 0.4  # on top of the longest intended pause: engines pause inside sentences too


class ScriptAudioError(PermanentError):
    """The script cannot be voiced (no sentence has anything to say)."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def episode_work_dir(show: ShowInfo, script: Script, env: Environment | None = None) -> Path:
    return (env or Environment()).home / "work" / show.id / script.date.isoformat()


def _fill_cache(voice: Voice, utterances: list[Utterance], cache_root: Path, *, attempts: int,
                backoff_s: float) -> tuple[list[Path], int]:
    """One voice's utterances into the cache. OpenJTalk's dictionaries live in a child process that ends
    with it (tts_child), so they are not resident during assembly; HTTP engines (and wrapped or test
    voices) hold little and run here."""
    if type(voice) is OpenJTalkVoice:
        release_openjtalk_dictionaries()  # the offline writer's: neither synthesis nor assembly needs them
        return synthesize_to_cache_in_child(voice, utterances, cache_root, attempts=attempts,
                                            backoff_s=backoff_s)
    found = synthesize_to_cache(voice, utterances, cache_root, attempts=attempts, backoff_s=backoff_s)
    release_openjtalk_dictionaries()  # an in-process OpenJTalk's, not needed for assembly
    return found


def synthesize_script(script: Script, voice: Voice, audio: AudioConfig, show: ShowInfo,
                      work_dir: Path | None = None, *, attempts: int = 4,
                      backoff_s: float = 0.5, voices: Callable[[str], Voice] | None = None) -> AudioBundle:
    """Voice the script and write `work_dir/episode-<sha12>.mp3`; the bundle describes the checked file.

    `voices` gives each sentence's speaker a voice (a two-host episode); without it `voice` says all."""
    env = Environment()
    work_dir = Path(work_dir) if work_dir is not None else episode_work_dir(show, script, env)
    timings: dict[str, float] = {}
    started = time.perf_counter()

    utterances = plan_utterances(script, voice.max_chars)
    if not utterances:
        raise ScriptAudioError(f"the script for {script.date} has no sentence with anything to say "
                               "(every Sentence.speech is empty or punctuation)")
    cache_root = env.home / "tts"
    # Only cache paths are held: assembly reads the utterances back one at a time (memory stays flat).
    paths, synthesized = synthesize_voices(voices or (lambda _speaker: voice), utterances, cache_root,
                                           attempts=attempts, backoff_s=backoff_s, fill=_fill_cache)
    timings["tts"] = time.perf_counter() - started
    release_free_memory()  # the TTS threads' freed buffers go back before assembly and mastering allocate

    mark = time.perf_counter()
    work_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=work_dir, prefix=".episode-", suffix=".mp3")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with tempfile.TemporaryDirectory(prefix=".assembly-", dir=work_dir) as scratch:
            raw = Path(scratch) / "episode.f32"  # the assembled episode (raw float32), never all in memory
            timeline = assemble_to_file(script, utterances, lambda i: load_utterance(paths[i]), audio, raw)
            if audio.music:
                music = decode_audio_file(Path(audio.music), timeline.sample_rate, ffmpeg_exe())
                mix_music_into(raw, timeline, music)
            timings["assemble"] = time.perf_counter() - mark
            mark = time.perf_counter()
            cover = cover_image(show)
            # Tags go on before mastering's verification decode, so that one decode is of the final file
            # and also serves the check below (no second decode of the whole episode).
            mastered, scan = master_file(
                raw, timeline.sample_rate, audio, tmp,
                finish=lambda path: write_tags(path, script, show, timeline.chapters, cover))
        timings["master"] = time.perf_counter() - mark
        mark = time.perf_counter()
        # Background music fills the pauses, so only the voice-only layout bounds the silences.
        checked = check_mp3(tmp, timeline.duration_s, timeline.longest_pause_s + SILENCE_MARGIN_S,
                            decoded=scan)
        timings["check"] = time.perf_counter() - mark
        sha = _sha256(tmp)
        final = work_dir / f"episode-{sha[:12]}.mp3"
        os.replace(tmp, final)  # same content, same name: a rerun that changed nothing rewrites nothing new
    except BaseException:
        tmp.unlink(missing_ok=True)  # a rejected or half-written file never keeps a final name
        raise

    removed = prune_cache(cache_root)
    log.info("synthesized %d of %d utterances with %s; %.1f s of audio, %.2f LUFS, %.2f dBTP; timings %s%s",
             synthesized, len(utterances), voice.name, checked.duration_s, mastered.loudness_lufs,
             mastered.true_peak_dbtp, {k: round(v, 2) for k, v in timings.items()},
             f"; pruned {removed} stale cached utterances" if removed else "")
    return AudioBundle(
        mp3_path=str(final), sha256=sha, size_bytes=checked.size_bytes,
        duration_s=round(timeline.duration_s, 3),
        loudness_lufs=mastered.loudness_lufs, true_peak_dbtp=mastered.true_peak_dbtp, engine=voice.name,
        chapters=timeline.chapters, cues=timeline.cues, utterances=len(utterances), synthesized=synthesized)


def keep_in_work_area(bundle: AudioBundle, store: Store) -> AudioBundle:
    """Copy the MP3 into the store's private work area, so any machine can publish this bundle."""
    key = put_work_file(store, bundle.mp3_path, bundle.sha256, "mp3", "audio/mpeg")
    return bundle.model_copy(update={"work_key": key})


@task(name="synthesize", **stage_options(retries=2))
def synthesize(script: Script, voice: VoiceConfig, audio: AudioConfig, show: ShowInfo,
               store_url: str = "") -> AudioBundle:
    """Prefect task: build the engine the show file names, then `synthesize_script`; with a store, the
    MP3 also goes to its work area (the cached result must not depend on this machine's disk)."""
    voice_of, engines = speaker_voices(voice, Environment(), show.cohost)
    try:
        bundle = synthesize_script(script, engines[0], audio, show, voices=voice_of)
    finally:
        for engine in engines:
            close = getattr(engine, "close", None)
            if callable(close):
                close()
    return keep_in_work_area(bundle, open_store(store_url)) if store_url else bundle
