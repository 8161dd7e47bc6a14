"""Voice engines: one small interface (text -> PCM), chosen in the show file.

An engine is a plain object with a name, an input limit, a concurrency limit, a
`cache_key` naming everything that changes its sound (so the per-utterance cache
never serves a sentence said with other settings) and `synthesize`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict

from zundacast.errors import PermanentError, ZundacastError

if TYPE_CHECKING:
    from collections.abc import Callable

    from zundacast.show import CohostConfig, Environment, VoiceConfig


class VoiceError(ZundacastError):
    """Synthesis failed; the message names the engine and the sentence."""


class PermanentVoiceError(VoiceError, PermanentError):
    """The engine refused the request (HTTP 4xx, bad text or settings): retrying cannot heal it."""


class PCM(BaseModel):
    """Mono audio: float32 samples in [-1, 1]."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    samples: np.ndarray
    sample_rate: int


class Voice(Protocol):
    name: str  # e.g. "openjtalk", "voicevox"
    max_chars: int  # longest text one request may carry
    concurrency: int  # how many requests at once the engine takes well

    def cache_key(self) -> str:
        """Engine + voice + parameters: everything but the text that changes the sound."""

    def synthesize(self, text: str) -> PCM:
        """Speak one utterance (already normalized for speech)."""


def get_voice(config: VoiceConfig, env: Environment) -> Voice:
    if config.engine == "voicevox":
        from zundacast.voices.voicevox import VoicevoxVoice

        return VoicevoxVoice(config.voicevox, url=env.voicevox_url or config.voicevox.url,
                             concurrency=config.concurrency)
    if config.engine == "openai":
        from zundacast.voices.openai_tts import OpenAIVoice

        return OpenAIVoice(config.openai, env=env, concurrency=config.concurrency)
    from zundacast.voices.openjtalk import OpenJTalkVoice

    return OpenJTalkVoice(config.openjtalk, concurrency=config.concurrency)


def cohost_voice_config(config: VoiceConfig, cohost: CohostConfig) -> VoiceConfig:
    """The show's [voice] with the cohost's own voice in each engine ([show.cohost.voicevox/openjtalk/
    openai]); the engine, its URL, concurrency and the other settings stay the host's."""
    return config.model_copy(update={
        "voicevox": config.voicevox.model_copy(update=cohost.voicevox.model_dump()),
        "openjtalk": config.openjtalk.model_copy(update=cohost.openjtalk.model_dump()),
        "openai": config.openai.model_copy(update=cohost.openai.model_dump()),
    })


def speaker_voices(config: VoiceConfig, env: Environment,
                   cohost: CohostConfig | None = None) -> tuple[Callable[[str], Voice], list[Voice]]:
    """Speaker's name -> the voice that says their sentences (the cohost's name gets hers, anyone else,
    "" included, the host's), and every voice made (to close)."""
    host = get_voice(config, env)
    if cohost is None:
        return (lambda _speaker: host), [host]
    hers = get_voice(cohost_voice_config(config, cohost), env)
    if hasattr(hers, "setting"):  # VOICEVOX names the show-file table to fix in its errors
        hers.setting = "show.cohost.voicevox"
    return (lambda speaker: hers if speaker == cohost.name else host), [host, hers]
