"""The synthesis stage's audio work: utterances, assembly, mastering, tags and the MP3 check.

`tasks/synthesize.py` chains these; each module is usable on its own.
"""

from __future__ import annotations

from zundacast.audio.assemble import (
    Layout,
    Timeline,
    assemble,
    assemble_to_file,
    loudness,
    make_jingle,
    mix_music,
    mix_music_into,
)
from zundacast.audio.check import Mp3Check, Scan, check_mp3, longest_silence, scan_mp3
from zundacast.audio.master import (
    Mastered,
    decode,
    ffmpeg_exe,
    master_and_decode,
    master_file,
    master_to_mp3,
    true_peak_dbtp,
)
from zundacast.audio.tags import cover_image, episode_title, write_tags
from zundacast.audio.utterances import (
    Utterance,
    load_utterance,
    plan_utterances,
    prune_cache,
    split_speech,
    synthesize_to_cache,
    synthesize_utterances,
)

__all__ = [
    "Layout",
    "Mastered",
    "Mp3Check",
    "Scan",
    "Timeline",
    "Utterance",
    "assemble",
    "assemble_to_file",
    "check_mp3",
    "cover_image",
    "decode",
    "episode_title",
    "ffmpeg_exe",
    "load_utterance",
    "longest_silence",
    "loudness",
    "make_jingle",
    "master_and_decode",
    "master_file",
    "master_to_mp3",
    "mix_music",
    "mix_music_into",
    "plan_utterances",
    "prune_cache",
    "scan_mp3",
    "split_speech",
    "synthesize_to_cache",
    "synthesize_utterances",
    "true_peak_dbtp",
    "write_tags",
]
