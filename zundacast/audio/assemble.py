"""Assembly: utterance PCM -> one episode timeline, with its cues and chapters.

The episode is streamed: each utterance is read, resampled to the output rate,
trimmed and written at its place (`assemble_to_file` writes raw float32 to a
file), so memory holds one utterance at a time, never the whole episode.

Layout: jingle, opening; then for every article a section pause, the jingle
and the article; then the closing and the jingle again as an outro. Sentences
are followed by `sentence_pause_s`. Every utterance is trimmed of the silence
engines put around it (OpenJTalk: about 0.2 s before, 0.3 s after), so the
pauses are the configured ones whatever the engine.

Chapters start where their first sentence starts (the first one at 0): a
listener who skips to an article hears its title right away.
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from zundacast.audio.utterances import Utterance
from zundacast.models import Chapter, Cue, Script
from zundacast.show import AudioConfig
from zundacast.voices import PCM

TRIM_THRESHOLD_DB = -45.0  # below the utterance's peak: engine padding, breath noise
TRIM_KEEP_S = 0.03  # kept around the speech so consonant onsets and fade-outs survive
PART_PAUSE_S = 0.15  # between the parts of a sentence split for a length-limited engine
JINGLE_GAP_S = 0.45  # from the jingle's end to the next sentence
LEAD_IN_S = 0.0  # the jingle opens the file: no dead air before it
TAIL_S = 0.4
JINGLE_BELOW_VOICE_LU = 4.0  # a chime, not a fanfare


class Timeline(BaseModel):
    """The assembled episode before mastering."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    samples: np.ndarray  # float32 mono
    sample_rate: int
    cues: list[Cue]
    chapters: list[Chapter]
    longest_pause_s: float  # the longest silence the layout puts in on purpose

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


def to_rate(pcm: PCM, rate: int) -> np.ndarray:
    """The samples at `rate` (polyphase resampling, exact ratio: 48000 -> 44100 is 147/160)."""
    samples = np.asarray(pcm.samples, dtype=np.float32)
    if pcm.sample_rate == rate:
        return samples
    divisor = math.gcd(pcm.sample_rate, rate)
    from scipy.signal import resample_poly  # scipy loads in ~1 s: only when audio is really made

    return resample_poly(samples, rate // divisor, pcm.sample_rate // divisor).astype(np.float32)


def trim_silence(samples: np.ndarray, rate: int, threshold_db: float = TRIM_THRESHOLD_DB,
                 keep_s: float = TRIM_KEEP_S) -> np.ndarray:
    """Cut leading/trailing stretches quieter than threshold_db below the peak (keeping keep_s of them)."""
    if samples.size == 0:
        return samples
    magnitude = np.abs(samples)
    peak = float(magnitude.max())
    if peak <= 0:
        return samples[:0]
    loud = np.flatnonzero(magnitude > peak * 10 ** (threshold_db / 20))
    keep = int(keep_s * rate)
    start = max(0, int(loud[0]) - keep)
    end = min(len(samples), int(loud[-1]) + 1 + keep)
    return samples[start:end]


def make_jingle(rate: int, duration_s: float = 1.6) -> np.ndarray:
    """A short rising chime (G5 C6 E6 G6, bell-like partials, soft decay), peak 0.5.

    Generated here from numbers alone, so it is the project's own (same licence as the code)
    and identical on every run.
    """
    t = np.arange(int(duration_s * rate), dtype=np.float64) / rate
    out = np.zeros_like(t)
    notes = ((783.99, 0.00, 0.8), (1046.50, 0.13, 0.8), (1318.51, 0.26, 0.85), (1567.98, 0.39, 1.0))
    partials = ((1.0, 1.0), (2.0, 0.35), (3.01, 0.12), (4.2, 0.05))  # slightly inharmonic: a bell
    for freq, start, gain in notes:
        local = t - start
        on = local >= 0
        tt = local[on]
        attack = np.minimum(tt / 0.006, 1.0)
        decay = np.exp(-tt / 0.32)
        tone = sum(weight * np.sin(2 * np.pi * freq * ratio * tt) * np.exp(-tt * (ratio - 1) * 2.5)
                   for ratio, weight in partials)
        out[on] += gain * attack * decay * tone
    fade = int(0.25 * rate)  # end on silence, not a click
    out[-fade:] *= np.linspace(1.0, 0.0, fade) ** 2
    return (out * (0.5 / np.max(np.abs(out)))).astype(np.float32)


def loudness(samples: np.ndarray, rate: int) -> float:
    """Integrated loudness (BS.1770, LUFS); -inf for silence or audio shorter than one 400 ms block."""
    if len(samples) < int(0.4 * rate) + 1:
        return float("-inf")
    import pyloudnorm  # pulls in scipy: only when audio is really measured

    return float(pyloudnorm.Meter(rate).integrated_loudness(np.asarray(samples, dtype=np.float64)))


JINGLE_SAMPLE_MAX_S = 10.0  # of voice the jingle is matched to: a stable reading, about 12 MB to measure


def jingle_for(clips: list[np.ndarray], rate: int) -> np.ndarray:
    """The jingle, JINGLE_BELOW_VOICE_LU quieter than the voice (measured on `clips`, a spread of it)."""
    jingle = make_jingle(rate)
    voice = loudness(np.concatenate(clips), rate) if clips else float("-inf")
    if not math.isfinite(voice):
        return jingle
    gain_db = voice - JINGLE_BELOW_VOICE_LU - loudness(jingle, rate)
    return jingle * np.float32(10 ** (gain_db / 20))


class Layout(BaseModel):
    """Where everything went in an assembled episode (the samples themselves are elsewhere)."""

    sample_rate: int
    length: int  # samples
    cues: list[Cue]
    chapters: list[Chapter]
    longest_pause_s: float
    peak: float  # the largest magnitude placed (voice and jingles)

    @property
    def duration_s(self) -> float:
        return self.length / self.sample_rate


def lay_out(script: Script, utterances: list[Utterance], clip_at: Callable[[int], np.ndarray],
            audio: AudioConfig, put: Callable[[int, np.ndarray], None]) -> Layout:
    """Lay the utterances out with pauses and jingles; cues per sentence, chapters per section.

    `clip_at(i)` gives utterance i trimmed at the output rate; it is asked for each one once, in order,
    and `put(offset, clip)` receives it at once, so no more than one utterance is held at a time. The
    jingles are put last (their level comes from the voice), into slots left silent for them. Pieces
    never overlap: `put` may write them anywhere, the rest of the episode is silence.
    """
    rate = audio.sample_rate
    sentence_pause = round(audio.sentence_pause_s * rate)
    section_pause = round(audio.section_pause_s * rate)
    part_pause = round(PART_PAUSE_S * rate)
    jingle_length = len(make_jingle(rate)) if audio.jingle else 0
    jingle_gap = round(JINGLE_GAP_S * rate) if audio.jingle else 0

    by_section: dict[int, list[int]] = {}
    for index, utterance in enumerate(utterances):
        by_section.setdefault(utterance.section, []).append(index)

    step = max(1, len(utterances) // 30)  # the voice the jingle is matched to: a spread of utterances
    voice_sample: list[np.ndarray] = []
    sampled = 0
    jingle_slots: list[int] = []
    cue_spans: list[tuple[int, int, str, str]] = []  # start, end, text, speaker
    section_starts: list[tuple[int, int]] = []  # (section index, sample where its speech starts)
    cursor = int(LEAD_IN_S * rate)
    longest_pause = 0
    peak = 0.0

    def place_jingle() -> None:
        nonlocal cursor
        jingle_slots.append(cursor)
        cursor += jingle_length + jingle_gap

    if audio.jingle:
        place_jingle()
    spoken_sections = [i for i in range(len(script.sections)) if i in by_section]
    for position, s_index in enumerate(spoken_sections):
        section = script.sections[s_index]
        if position > 0:
            cursor += section_pause
            longest_pause = max(longest_pause, section_pause)
            if section.kind == "article" and audio.jingle:
                place_jingle()
        section_starts.append((s_index, cursor))
        indices = by_section[s_index]
        for k, index in enumerate(indices):
            utterance = utterances[index]
            start = cursor
            clip = clip_at(index)
            if clip.size:
                put(cursor, clip)
                peak = max(peak, float(np.max(np.abs(clip))))
                if index % step == 0 and sampled < JINGLE_SAMPLE_MAX_S * rate:
                    voice_sample.append(clip)
                    sampled += clip.size
            cursor += len(clip)
            next_index = indices[k + 1] if k + 1 < len(indices) else None
            last_of_sentence = next_index is None or utterances[next_index].sentence != utterance.sentence
            if cue_spans and utterance.part > 0:  # a later part of a split sentence extends its cue
                first, _, text, speaker = cue_spans[-1]
                cue_spans[-1] = (first, cursor, text, speaker)
            else:
                cue_spans.append((start, cursor, utterance.text, utterance.speaker))
            if k + 1 < len(indices):
                gap = sentence_pause if last_of_sentence else part_pause
                cursor += gap
                longest_pause = max(longest_pause, gap)
    if audio.jingle and spoken_sections:
        cursor += section_pause
        jingle_slots.append(cursor)
        cursor += jingle_length
    cursor += int(TAIL_S * rate)

    if jingle_slots:
        jingle = jingle_for(voice_sample, rate)
        peak = max(peak, float(np.max(np.abs(jingle))))
        for offset in jingle_slots:
            put(offset, jingle)
    del voice_sample

    cues = [Cue(start_s=round(a / rate, 3), end_s=round(b / rate, 3), text=text, speaker=speaker)
            for a, b, text, speaker in cue_spans]
    chapters: list[Chapter] = []
    for n, (s_index, start) in enumerate(section_starts):
        section = script.sections[s_index]
        begin = 0 if n == 0 else start
        end = section_starts[n + 1][1] if n + 1 < len(section_starts) else cursor
        chapters.append(Chapter(title=section.title, start_s=round(begin / rate, 3),
                                end_s=round(end / rate, 3), url=section.url))
    longest = max(longest_pause, jingle_gap, int(TAIL_S * rate)) / rate + 2 * TRIM_KEEP_S
    return Layout(sample_rate=rate, length=cursor, cues=cues, chapters=chapters, longest_pause_s=longest,
                  peak=peak)


def assemble(script: Script, utterances: list[Utterance], pcms: list[PCM], audio: AudioConfig) -> Timeline:
    """The episode in memory (small episodes and tests; the stage streams with `assemble_to_file`)."""
    rate = audio.sample_rate
    placements: list[tuple[int, np.ndarray]] = []
    layout = lay_out(script, utterances, lambda i: trim_silence(to_rate(pcms[i], rate), rate), audio,
                     lambda offset, clip: placements.append((offset, clip)))
    samples = np.zeros(layout.length, dtype=np.float32)
    for offset, clip in placements:
        samples[offset:offset + len(clip)] += clip
    return Timeline(samples=samples, sample_rate=rate, cues=layout.cues, chapters=layout.chapters,
                    longest_pause_s=layout.longest_pause_s)


def assemble_to_file(script: Script, utterances: list[Utterance], load: Callable[[int], PCM],
                     audio: AudioConfig, path: Path) -> Layout:
    """Assemble straight into `path` as raw float32 mono (little-endian) at the output rate.

    `load(i)` gives utterance i (e.g. read from the utterance cache): each is resampled, trimmed and
    written at its place, so memory holds one utterance, not the episode.
    """
    rate = audio.sample_rate
    with path.open("wb") as handle:

        def put(offset: int, clip: np.ndarray) -> None:
            handle.seek(offset * 4)
            handle.write(np.ascontiguousarray(clip, dtype="<f4").tobytes())

        layout = lay_out(script, utterances, lambda i: trim_silence(to_rate(load(i), rate), rate), audio, put)
        handle.truncate(layout.length * 4)  # the unwritten rest reads as zeros: silence
    return layout


def speech_mask(timeline_length: int, rate: int, cues: list[Cue]) -> np.ndarray:
    """1.0 where someone speaks, per 10 ms frame."""
    frames = math.ceil(timeline_length / rate * 100)
    mask = np.zeros(frames, dtype=np.float32)
    for cue in cues:
        mask[int(cue.start_s * 100):math.ceil(cue.end_s * 100)] = 1.0
    return mask


def decode_audio_file(path: Path, rate: int, ffmpeg: str) -> np.ndarray:
    """Any audio file ffmpeg reads -> mono float32 at `rate`."""
    result = subprocess.run([ffmpeg, "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0", "-ac", "1",
                             "-ar", str(rate), "-f", "f32le", "pipe:1"], capture_output=True, check=False)
    if result.returncode != 0 or not result.stdout:
        why = result.stderr.decode(errors="replace")[:300]
        raise ValueError(f"cannot read background music {path} (AudioConfig.music): {why}")
    return np.frombuffer(result.stdout, dtype="<f4").copy()


CHUNK_SAMPLES = 1 << 20  # about 24 s at 44.1 kHz: 4 MB of float32 per chunk in flight


class MusicBed(BaseModel):
    """Background music looped under an episode, with its ducking gain per 10 ms frame."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    music: np.ndarray  # float32, scaled so the looped bed peaks at 1
    frame_gain: np.ndarray  # linear, per 10 ms frame
    length: int
    rate: int
    level: float  # the voice's peak: the bed's levels are relative to it

    def span(self, start: int, stop: int) -> np.ndarray:
        """The ducked, faded music for samples start..stop of the episode."""
        index = np.arange(start, stop)
        bed = self.music[index % len(self.music)]
        gain = np.interp(index / self.rate * 100, np.arange(len(self.frame_gain)),
                         self.frame_gain).astype(np.float32)
        fade = min(self.length // 2, int(2.0 * self.rate))
        if fade:
            ramp = np.linspace(0, 1, fade, dtype=np.float32)
            head = index < fade
            gain[head] *= ramp[index[head]]
            tail = index >= self.length - fade
            gain[tail] *= ramp[::-1][index[tail] - (self.length - fade)]
        return bed * gain * np.float32(self.level)


def music_bed(music: np.ndarray, length: int, rate: int, cues: list[Cue], voice_peak: float,
              under_voice_db: float = -24.0, between_db: float = -14.0) -> MusicBed:
    """The ducking plan: the speech mask comes from the cues, so ducking needs no detection: it starts
    0.3 s before a sentence and eases back over about half a second after it."""
    music = np.asarray(music, dtype=np.float32)
    looped = music[:length] if len(music) >= length else music  # what np.resize would repeat
    peak = float(np.max(np.abs(looped))) or 1.0
    mask = speech_mask(length, rate, cues)
    from scipy.ndimage import maximum_filter1d, uniform_filter1d

    mask = maximum_filter1d(mask, size=61)  # hold through short pauses, start early (30 frames each side)
    mask = uniform_filter1d(mask, size=25)  # 250 ms ramps
    gain_db = between_db + (under_voice_db - between_db) * mask
    return MusicBed(music=music / np.float32(peak), frame_gain=(10 ** (gain_db / 20)).astype(np.float32),
                    length=length, rate=rate, level=voice_peak or 1.0)


def mix_music(timeline: Timeline, music: np.ndarray, under_voice_db: float = -24.0,
              between_db: float = -14.0) -> np.ndarray:
    """Loop `music` under the episode, ducked while the host speaks (levels relative to the voice's peak)."""
    length = len(timeline.samples)
    if music.size == 0:
        return timeline.samples
    voice_peak = float(np.max(np.abs(timeline.samples))) if length else 0.0
    bed = music_bed(music, length, timeline.sample_rate, timeline.cues, voice_peak, under_voice_db,
                    between_db)
    return timeline.samples + bed.span(0, length)


def mix_music_into(path: Path, layout: Layout, music: np.ndarray) -> None:
    """`mix_music` on an episode assembled into a raw float32 file, in place, a chunk at a time."""
    if music.size == 0 or layout.length == 0:
        return
    bed = music_bed(music, layout.length, layout.sample_rate, layout.cues, layout.peak)
    with path.open("r+b") as handle:
        for start in range(0, layout.length, CHUNK_SAMPLES):
            stop = min(layout.length, start + CHUNK_SAMPLES)
            handle.seek(start * 4)
            voice = np.frombuffer(handle.read((stop - start) * 4), dtype="<f4")
            handle.seek(start * 4)
            handle.write((voice + bed.span(start, stop)).astype("<f4").tobytes())
