"""Credits a voice's terms require wherever its audio is published.

VOICEVOX's characters may be used in published works on condition of the credit
「VOICEVOX:キャラクター名」 (for this show's host: 「VOICEVOX:ずんだもん」); the feed, each
episode's notes and the pages carry it whenever an episode was voiced by VOICEVOX.
"""

from __future__ import annotations

from collections.abc import Iterable

from zundacast.models import EpisodeRecord
from zundacast.show import ShowInfo

VOICEVOX_ENGINE = "voicevox"


def voice_credit(engine: str, character: str) -> str:
    """「VOICEVOX:ずんだもん」 for an episode voiced by VOICEVOX; "" when the engine asks for no credit."""
    return f"VOICEVOX:{character or 'ずんだもん'}" if engine == VOICEVOX_ENGINE else ""


def episode_credit(show: ShowInfo, episode: EpisodeRecord) -> str:
    credit = voice_credit(episode.engine, show.host)
    if credit and show.cohost is not None:  # [show.cohost]: her VOICEVOX character is credited too
        credit += "、" + voice_credit(episode.engine, show.cohost.voicevox.speaker_name)
    return credit


def show_credit(show: ShowInfo, episodes: Iterable[EpisodeRecord]) -> str:
    """The credit for the show as a whole: needed while any published episode used a credited voice."""
    credits = {episode_credit(show, episode) for episode in episodes} - {""}
    return " / ".join(sorted(credits))
