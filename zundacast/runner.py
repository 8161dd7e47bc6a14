"""Runs the stage tasks of one episode: refreshes, the store probe before a trusted cache, reports.

`StageRunner(refresh)` is called like a task (`run("rank", rank, ...)`): it forces a refresh of
the first refreshed stage and every stage after it, refreshes a stage whose `stale_checks` probe
says the store lost its work (the cache remembers an upload the store no longer holds), calls
`guard` before each stage (the run lock: a run that lost its lease stops), and reports each stage
as computed or cached through the run logger and, with ZUNDACAST_PROGRESS set, on stderr.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from prefect import get_run_logger
from prefect.futures import wait

from zundacast.memory import limit_malloc_arenas, release_free_memory
from zundacast.models import STAGES, StageReport

# stage -> probe taking the stage's own arguments, answering why its cached result cannot be trusted
StaleCheck = Callable[..., str]


class StageRunner:
    """Runs each stage task, forcing a refresh from the first refreshed stage on, and reports on it."""

    def __init__(self, refresh: list[str], stale_checks: Mapping[str, StaleCheck] | None = None) -> None:
        unknown = sorted(set(refresh) - set(STAGES))
        if unknown:
            raise ValueError(f"unknown stage(s) to refresh: {', '.join(unknown)} "
                             f"(stages: {', '.join(STAGES)})")
        first = min((STAGES.index(stage) for stage in refresh), default=len(STAGES))
        self.refreshed = set(STAGES[first:])
        self.stale_checks = dict(stale_checks or {})
        self.guard: Callable[[], None] = lambda: None
        self.reports: dict[str, StageReport] = {}
        self.current = ""
        limit_malloc_arenas()  # before the stages' threads start: each would keep its own arena

    def say(self, line: str) -> None:
        get_run_logger().info(line)
        if os.environ.get("ZUNDACAST_PROGRESS"):
            print(line, file=sys.stderr, flush=True)

    def _task(self, name: str, task: Any) -> Any:
        self.guard()
        self.current = name
        self.say(f"▶ {name}")
        return task.with_options(refresh_cache=True) if name in self.refreshed else task

    def _done(self, name: str, started: float, cached: bool) -> None:
        report = StageReport(status="cached" if cached else "computed",
                             seconds=round(time.perf_counter() - started, 3))
        self.reports[name] = report
        release_free_memory()  # a stage's transient memory (imports, models' work) goes back to the system
        self.say(f"✓ {name}: {report.status} in {report.seconds:.2f} s")

    def __call__(self, name: str, task: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        state = self._task(name, task)(*args, return_state=True, **kwargs)
        check = self.stale_checks.get(name)
        if state.name == "Cached" and check is not None:
            # the cache remembers work the store may have lost since: probe it before trusting the cache
            reason = check(*args, **kwargs)
            if reason:
                self.say(f"↻ {name}: {reason}; running it again")
                state = task.with_options(refresh_cache=True)(*args, return_state=True, **kwargs)
        result = state.result()  # raises the stage's error when it failed
        self._done(name, started, cached=state.name == "Cached")
        return result

    def mapped(self, name: str, task: Any, items: list[Any], **kwargs: Any) -> list[Any]:
        """One task run per item, concurrently; the stage counts as cached only if every run was."""
        started = time.perf_counter()
        runnable = self._task(name, task)
        futures = [runnable.submit(item, **kwargs) for item in items]
        wait(futures)
        states = [future.state for future in futures]
        results = [state.result() for state in states]
        self._done(name, started, cached=all(state.name == "Cached" for state in states))
        return results
