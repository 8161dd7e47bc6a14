"""The synthesis stage's audio work: utterances, assembly, mastering, tags and the MP3 check.

`tasks/synthesize.py` chains these; each module is usable on its own.
"""

from __future__ import annotations

from zundacast.audio.assemble import Timeline, assemble, loudness, make_jingle, mix_music
from zundacast.audio.check import Mp3Check, check_mp3, longest_silence
from zundacast.audio.master import (
    Mastered,
    decode,
    ffmpeg_exe,
    master_and_decode,
    master_to_mp3,
    true_peak_dbtp,
)
from zundacast.audio.tags import cover_image, episode_title, write_tags
from zundacast.audio.utterances import (
    Utterance,
    plan_utterances,
    prune_cache,
    split_speech,
    synthesize_utterances,
)

__all__ = [
    "Mastered",
    "Mp3Check",
    "Timeline",
    "Utterance",
    "assemble",
    "check_mp3",
    "cover_image",
    "decode",
    "episode_title",
    "ffmpeg_exe",
    "longest_silence",
    "loudness",
    "make_jingle",
    "master_and_decode",
    "master_to_mp3",
    "mix_music",
    "plan_utterances",
    "prune_cache",
    "split_speech",
    "synthesize_utterances",
    "true_peak_dbtp",
    "write_tags",
]
