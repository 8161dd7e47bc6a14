"""What the review tests (tests/test_review.py, tests/test_review_upload.py) share: a flow run in its own
process that pauses for an editor on the test run's shared Prefect server, and the API calls that find,
read and resume it as the UI's Resume form does.

The flow runs in its own process (the sample day on loopback, one pick, OpenJTalk), tagged with a tag of
its own: the server holds other tests' runs of the same date and show, and the test reads only its own.
The test waits for its "Pausing flow" log line (no sleeps), finds the paused run through the API and
resumes it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.faults.support import share_speech_cache, short_show
from zundacast.sample_day import SAMPLE_DATE, serve_sample_day
from zundacast.show import Show

ROOT = Path(__file__).resolve().parent.parent
PAUSED = "Pausing flow, execution will continue"


class FlowProcess:
    """daily_episode in a child process, its flow run tagged `tag`; its output lines are collected as
    they come. `prelude` is Python the child runs first (a test's patch of Prefect in that process)."""

    def __init__(self, show: Show, store: Path, api_url: str, home: Path, shared_speech: bool,
                 prelude: str = "") -> None:
        self.tag = f"test-review-{uuid.uuid4()}"  # this run's, among every run on the shared server
        if shared_speech:  # the session's utterance cache: the run is about the review, not speech
            share_speech_cache(home / "zundacast")
        env = {**os.environ, "PREFECT_API_URL": api_url, "PREFECT_HOME": str(home / "prefect"),
               "ZUNDACAST_HOME": str(home / "zundacast"), "TEST_SHOW_JSON": show.model_dump_json(),
               "TEST_RUN_TAG": self.tag, "PYTHONUNBUFFERED": "1"}
        script = (f"{prelude}\nimport os\nfrom prefect import tags\n"
                  "from flows.daily_episode import daily_episode\nfrom zundacast.show import Show\n"
                  "with tags(os.environ['TEST_RUN_TAG']):\n"
                  f"    daily_episode(episode_date={SAMPLE_DATE.isoformat()!r}, "
                  f"show=Show.model_validate_json(os.environ['TEST_SHOW_JSON']), store={str(store)!r})\n")
        self.process = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=ROOT, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()
        with self.changed:
            self.lines.append("")  # end of output
            self.changed.notify_all()

    def wait_for(self, text: str, count: int = 1, timeout: float = 600) -> None:
        """Until the flow has printed `text` on `count` lines (fails if the process ends first)."""
        def seen() -> bool:
            return sum(text in line for line in self.lines) >= count or "" in self.lines

        with self.changed:
            assert self.changed.wait_for(seen, timeout=timeout), f"the run never printed {text!r}"
            assert sum(text in line for line in self.lines) >= count, self.output[-4000:]

    def wait_for_pause(self, count: int, timeout: float = 600) -> None:
        """Until the flow has logged its `count`-th pause (fails if the process ends first)."""
        self.wait_for(PAUSED, count, timeout)

    def finish(self, timeout: float = 600) -> int:
        code = self.process.wait(timeout=timeout)
        self.reader.join(timeout=30)
        return code

    @property
    def output(self) -> str:
        return "".join(self.lines)


@contextmanager
def paused_run(tmp_path: Path, api_url: str, shared_speech: bool = True, prelude: str = "",
               **review: Any) -> Iterator[tuple[FlowProcess, Path]]:
    """A flow run of the sample day with `[review]` as given (`poll_s` 0.5: these tests are about the
    decision, and a resume is noticed up to `poll_s` later), and its store."""
    store = tmp_path / "public"
    with serve_sample_day(port=0) as base_url:
        show = short_show(base_url, picks=1, review={"before": "synthesize", "poll_s": 0.5, **review})
        run = FlowProcess(show, store, api_url, tmp_path, shared_speech, prelude)
        try:
            yield run, store
        finally:
            if run.process.poll() is None:
                run.process.kill()
                run.finish(timeout=60)


def flow_runs(api_url: str, run: FlowProcess, paused: bool = False) -> set[Any]:
    """The ids of the flow runs `run` made (tagged with its tag), only those Paused if `paused`."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
        FlowRunFilterTags,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.settings import PREFECT_API_URL, temporary_settings

    state = FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])) if paused else None
    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            tags=FlowRunFilterTags(all_=[run.tag]), state=state))
    return {flow_run.id for flow_run in runs}


def paused_flow_run_id(api_url: str, run: FlowProcess) -> Any:
    """This process's paused flow run, once the server holds it as Paused (the log line may come first).
    Polls the server; pytest-timeout bounds the wait."""
    while True:
        ours = flow_runs(api_url, run, paused=True)
        assert len(ours) <= 1, ours
        if ours:
            return next(iter(ours))
        assert run.process.poll() is None, run.output[-4000:]
        time.sleep(0.2)  # a polling interval, not a measured time


def resume(api_url: str, run: FlowProcess, run_input: dict[str, Any]) -> Any:
    from prefect.flow_runs import resume_flow_run
    from prefect.settings import PREFECT_API_URL, temporary_settings

    flow_run_id = paused_flow_run_id(api_url, run)
    form_description(api_url, run)  # the form is saved: the server resumes a run only against its schema
    with temporary_settings({PREFECT_API_URL: api_url}):
        resume_flow_run(flow_run_id, run_input=run_input)
    return flow_run_id


def form_description(api_url: str, run: FlowProcess) -> str:
    """The description of the form the paused run waits on, as the UI's Resume dialog shows it, once the
    form is saved (Prefect sets the run Paused, then saves the form's schema and description: polled;
    pytest-timeout bounds the wait)."""
    from prefect.client.orchestration import get_client
    from prefect.input.actions import read_flow_run_input
    from prefect.settings import PREFECT_API_URL, temporary_settings

    flow_run_id = paused_flow_run_id(api_url, run)
    with temporary_settings({PREFECT_API_URL: api_url}):
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(flow_run_id).state
        assert state is not None and state.state_details.run_input_keyset
        keys = state.state_details.run_input_keyset
        # the schema (what a resume is checked against) and the description, both saved
        while (read_flow_run_input(keys["schema"], flow_run_id) is None
               or (description := read_flow_run_input(keys["description"], flow_run_id)) is None):
            assert run.process.poll() is None, run.output[-4000:]
            time.sleep(0.2)  # a polling interval, not a measured time
    return str(description)


def listened(description: str) -> tuple[Path, Path, int, int]:
    """From a before-upload form: the MP3 on the run's machine, its copy in the store's work area, and
    how many of the episode's utterances were voiced for this render."""
    local = re.search(r"MP3 on the machine running this run: `([^`]+)`", description)
    stored = re.search(r"the same file in the store's work area: `([^`]+)`", description)
    voiced = re.search(r"(\d+) of (\d+) utterances voiced for this render", description)
    assert local and stored and voiced, description
    return Path(local[1]), Path(stored[1]), int(voiced[1]), int(voiced[2])


def published_nothing(store: Path) -> bool:
    day = store / SAMPLE_DATE.isoformat()
    return (not (store / "episodes.json").exists() and not (store / "feed.xml").exists()
            and not list(day.glob("*.mp3")))


def published_mp3(store: Path) -> bytes:
    [mp3] = (store / SAMPLE_DATE.isoformat()).glob("*.mp3")  # named {show}-{date}.mp3
    return mp3.read_bytes()


def artifact_markdown(api_url: str, key: str, run: FlowProcess) -> str:
    """The markdown of artifact `key` that `run`'s flow run made (other runs on the shared server write
    the same key)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort
    from prefect.settings import PREFECT_API_URL, temporary_settings

    ours = flow_runs(api_url, run)
    assert len(ours) == 1, ours
    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[key]), flow_run_id=ArtifactFilterFlowRunId(any_=list(ours))),
            sort=ArtifactSort.CREATED_DESC, limit=1)  # the newest: the run's decision
    assert found, f"no artifact {key} of run {ours}"
    return str(found[0].data)


