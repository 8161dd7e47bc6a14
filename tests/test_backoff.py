"""Retry delays are asked for as documented; the suite scales the waits to nothing (zundacast/backoff.py).

No clock: these tests assert the delays the code asks for (its options and its log lines), never how long
anything took.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from zundacast.audio.utterances import Utterance, synthesize_utterances
from zundacast.backoff import DELAY_SCALE_ENV, backoff_delays, retry_delay_scale
from zundacast.stage import stage_options
from zundacast.voices import PCM


def test_the_suite_runs_with_retry_waits_scaled_to_nothing() -> None:
    assert retry_delay_scale() == 0.0  # set by tests/conftest.py (subprocesses given os.environ inherit it)


@pytest.mark.parametrize(("raw", "scale"), [("", 1.0), ("1", 1.0), ("0.5", 0.5), ("0", 0.0),
                                            ("-3", 0.0), ("soon", 1.0)])
def test_the_scale_comes_from_the_environment(raw: str, scale: float,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DELAY_SCALE_ENV, raw)
    assert retry_delay_scale() == scale


def test_stage_retries_ask_for_exponential_backoff_with_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DELAY_SCALE_ENV)
    options = stage_options(retries=3, backoff_s=2.0)
    assert options["retries"] == 3
    assert options["retry_delay_seconds"] == [2.0, 4.0, 8.0]  # as prefect.tasks.exponential_backoff(2.0)
    assert options["retry_jitter_factor"] == 0.5
    assert "retry_delay_seconds" not in stage_options()  # no retries, no delays
    monkeypatch.setenv(DELAY_SCALE_ENV, "0.25")
    assert backoff_delays(2.0, 3) == [0.5, 1.0, 2.0]


class FailingVoice:
    """An engine that fails `failures` times, then speaks half a second of silence."""

    name = "flaky"
    max_chars = 100
    concurrency = 1

    def __init__(self, failures: int) -> None:
        self.failures, self.calls = failures, 0

    def cache_key(self) -> str:
        return "flaky-engine"

    def synthesize(self, text: str) -> PCM:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("engine restarting")
        return PCM(samples=np.zeros(12_000, dtype=np.float32), sample_rate=24_000)


def test_utterance_retries_ask_for_doubling_delays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr("zundacast.audio.utterances.random.uniform", lambda low, high: 1.0)  # no jitter
    voice = FailingVoice(failures=3)
    utterance = Utterance(section=0, sentence=0, speech="ずんだもんなのだ。", text="ずんだもんなのだ。")
    with caplog.at_level(logging.WARNING, logger="zundacast.audio.utterances"):
        pcms, synthesized = synthesize_utterances(voice, [utterance], tmp_path, attempts=4, backoff_s=0.5)
    assert voice.calls == 4 and synthesized == 1 and len(pcms) == 1
    asked = [line.rsplit("retrying in ", 1)[1] for line in caplog.messages if "retrying in" in line]
    assert asked == ["0.5 s", "1.0 s", "2.0 s"]
