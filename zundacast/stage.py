"""How every stage task retries and caches (shared policy, one place).

Each stage task is `@task(**stage_options(...))`: it caches across flow runs on
the inputs that matter plus its own source (results persisted, so a second
process finds them), and network stages retry with exponential backoff and
jitter, except on errors that cannot heal.
"""

from __future__ import annotations

from typing import Any

from prefect.cache_policies import INPUTS, TASK_SOURCE, CachePolicy

from zundacast.backoff import backoff_delays
from zundacast.errors import PermanentError

STAGE_CACHE: CachePolicy = INPUTS + TASK_SOURCE


def is_permanent(exc: BaseException | None) -> bool:
    """True for failures a retry cannot heal: ours, and HTTP 401/403/404 from any client."""
    if exc is None:
        return False
    if isinstance(exc, PermanentError):
        return True
    status = getattr(exc, "status_code", None)
    response = getattr(exc, "response", None)
    if status is None and response is not None:
        status = getattr(response, "status_code", None)
    return status in (400, 401, 403, 404, 410, 422)


def retry_unless_permanent(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect `retry_condition_fn`: retry everything but permanent failures."""
    exc = state.data if isinstance(state.data, BaseException) else None
    if exc is None:
        try:
            result = state.result(raise_on_failure=False)
            exc = result if isinstance(result, BaseException) else None
        except Exception:  # an unreadable result says nothing about healing: retry
            return True
    return not is_permanent(exc)


def stage_options(retries: int = 0, backoff_s: float = 2.0, cache: CachePolicy = STAGE_CACHE,
                  **extra: Any) -> dict[str, Any]:
    """Keyword arguments for `@task` shared by the stages."""
    options: dict[str, Any] = {
        "cache_policy": cache,
        "persist_result": True,
        "retries": retries,
        "retry_condition_fn": retry_unless_permanent,
        **extra,
    }
    if retries:
        options["retry_delay_seconds"] = backoff_delays(backoff_s, retries)
        options["retry_jitter_factor"] = 0.5
    return options
