"""Retry delays: exponential backoff, and the test suite's scale for it.

ZUNDACAST_RETRY_DELAY_SCALE multiplies every retry delay (stage retries, feed fetches, utterances); it is
for tests only, which set it to 0 so a retry test waits for nothing and asserts the delays asked for (the
tasks' options, the logs), never elapsed time.
"""

from __future__ import annotations

import os

DELAY_SCALE_ENV = "ZUNDACAST_RETRY_DELAY_SCALE"


def retry_delay_scale() -> float:
    """The factor from ZUNDACAST_RETRY_DELAY_SCALE (default 1: the delays as written)."""
    raw = os.environ.get(DELAY_SCALE_ENV, "").strip()
    try:
        return max(0.0, float(raw)) if raw else 1.0
    except ValueError:
        return 1.0


def backoff_delays(backoff_s: float, retries: int) -> list[float]:
    """As Prefect's `exponential_backoff`: backoff_s * 2**n before retry n+1, times the scale."""
    scale = retry_delay_scale()
    return [backoff_s * 2**n * scale for n in range(retries)]
