"""An editor in the loop, on a real `prefect server start` (the test run's shared one): the run pauses
after the script (or, with `before = "upload"`, after synthesis), and the test answers through the API
(`resume_flow_run` with run input) as the UI's Resume form does, after reading the form's description as
the UI shows it.

The flow runs in its own process (the sample day on loopback, one pick, OpenJTalk), tagged with a tag of
its own: the server holds other tests' runs of the same date and show, and the test reads only its own.
The test waits for its "Pausing flow" log line (no sleeps), finds the paused run through the API and
resumes it.
"""

from __future__ import annotations

import json
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

import pytest

from tasks.script import recap_name
from tests.faults.support import share_speech_cache, short_show
from zundacast.cli import main
from zundacast.review import TIMEOUT_AUTHOR
from zundacast.sample_day import SAMPLE_DATE, serve_sample_day
from zundacast.show import SHOWS_DIR, Show, load_show

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
PAUSED = "Pausing flow, execution will continue"


@pytest.fixture(scope="module")
def api_url(prefect_api_url: str) -> str:
    """The test run's shared Prefect server (pauses, run inputs and artifacts are the API's own)."""
    return prefect_api_url


class FlowProcess:
    """daily_episode in a child process, its flow run tagged `tag`; its output lines are collected as
    they come."""

    def __init__(self, show: Show, store: Path, api_url: str, home: Path, shared_speech: bool) -> None:
        self.tag = f"test-review-{uuid.uuid4()}"  # this run's, among every run on the shared server
        if shared_speech:  # the session's utterance cache: the run is about the review, not speech
            share_speech_cache(home / "zundacast")
        env = {**os.environ, "PREFECT_API_URL": api_url, "PREFECT_HOME": str(home / "prefect"),
               "ZUNDACAST_HOME": str(home / "zundacast"), "TEST_SHOW_JSON": show.model_dump_json(),
               "TEST_RUN_TAG": self.tag, "PYTHONUNBUFFERED": "1"}
        script = ("import os\nfrom prefect import tags\nfrom flows.daily_episode import daily_episode\n"
                  "from zundacast.show import Show\n"
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

    def wait_for_pause(self, count: int, timeout: float = 600) -> None:
        """Until the flow has logged its `count`-th pause (fails if the process ends first)."""
        def seen() -> bool:
            return sum(PAUSED in line for line in self.lines) >= count or "" in self.lines

        with self.changed:
            assert self.changed.wait_for(seen, timeout=timeout), "the run never paused"
            assert sum(PAUSED in line for line in self.lines) >= count, self.output[-4000:]

    def finish(self, timeout: float = 600) -> int:
        code = self.process.wait(timeout=timeout)
        self.reader.join(timeout=30)
        return code

    @property
    def output(self) -> str:
        return "".join(self.lines)


@contextmanager
def paused_run(tmp_path: Path, api_url: str, shared_speech: bool = True,
               **review: Any) -> Iterator[tuple[FlowProcess, Path]]:
    store = tmp_path / "public"
    with serve_sample_day(port=0) as base_url:
        show = short_show(base_url, picks=1, review={"before": "synthesize", **review})
        run = FlowProcess(show, store, api_url, tmp_path, shared_speech)
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


def test_a_drop_and_an_edit_from_the_api_are_checked_synthesized_and_recorded(
        tmp_path: Path, api_url: str) -> None:
    new_title = "ずんだ餅でもわかる新しい言語モデルのお話"
    new_sentence = "この記事は、ずんだ餅みたいに噛めば噛むほど味が出るお話なのだ。"
    with paused_run(tmp_path, api_url, timeout_s=900) as (run, store):
        run.wait_for_pause(1)
        # the article leaves; the next spare is summarized and scripted, and the form comes back
        resume(api_url, run, {"editor": "Aoi", "action": "drop", "drop": [1]})
        run.wait_for_pause(2)
        assert "dropped article: " in run.output
        # a sentence with a URL breaks a script rule: the form comes back and nothing is synthesized
        with_url = {"article": 1, "sentence": 3, "text": "詳しくは https://example.com なのだ。"}
        resume(api_url, run, {"editor": "Aoi", "action": "edit", "edits": [with_url]})
        run.wait_for_pause(3)
        assert "edits by Aoi not applied" in run.output and "URL" in run.output
        resume(api_url, run, {"editor": "Aoi", "action": "edit",
                         "edits": [{"article": 1, "text": new_title},
                                   {"article": 1, "sentence": 3, "text": new_sentence}]})
        assert run.finish() == 0, run.output[-4000:]
    record = json.loads((store / SAMPLE_DATE.isoformat() / "episode.json").read_text(encoding="utf-8"))
    review = record["review"]
    assert (review["decision"], review["author"]) == ("edited", "Aoi")
    assert len(review["edits"]) == 3 and new_title in review["edits"][1]
    old, new = review["edits"][0].removeprefix("dropped article: ").split(" → ")
    assert old != new and [pick["title"] for pick in record["picks"]] == [new]  # the spare took its place
    assert f"タイトルは「{new_title}」なのだ。" in record["transcript"]
    assert new_sentence in record["transcript"]
    assert recap_name(new_title) in record["transcript"].rsplit("----", 1)[-1]  # the recap says it too
    vtt = (store / SAMPLE_DATE.isoformat() / "transcript.vtt").read_text(encoding="utf-8")
    assert new_sentence in vtt  # synthesized from the edited script, not the cached one
    markdown = artifact_markdown(api_url, f"review-{record['show']}-{SAMPLE_DATE.isoformat()}", run)
    assert "edited" in markdown and "Aoi" in markdown


@pytest.mark.parametrize("before", ["synthesize", "upload"])
def test_a_rejection_from_the_api_publishes_nothing(tmp_path: Path, api_url: str, before: str) -> None:
    with paused_run(tmp_path, api_url, before=before, timeout_s=900) as (run, store):
        run.wait_for_pause(1)
        resume(api_url, run, {"editor": "Aoi", "action": "reject", "reason": "出典が一つだけなのだ"})
        assert run.finish() != 0
    rejected = (rf"ReviewRejected: review: the episode for {SAMPLE_DATE.isoformat()} was rejected by Aoi: "
                "出典が一つだけ")
    assert re.search(rejected, run.output), run.output[-4000:]
    assert published_nothing(store)
    rendered = list((tmp_path / "zundacast" / "work").rglob("episode-*.mp3"))
    assert len(rendered) == (1 if before == "upload" else 0)  # before upload: heard, then held back


def test_nobody_deciding_fails_the_run_by_default(tmp_path: Path, api_url: str) -> None:
    with paused_run(tmp_path, api_url, timeout_s=1) as (run, store):  # on_timeout: the default, "fail"
        assert run.finish() != 0
    assert PAUSED in run.output
    assert "rejected by (nobody: timeout): no decision within 1 s" in run.output, run.output[-4000:]
    assert not (store / "episodes.json").exists()


def test_before_upload_the_editor_hears_the_episode_and_an_edit_rendered_again(
        tmp_path: Path, api_url: str) -> None:
    new_sentence = "この記事は、ずんだ餅みたいに噛めば噛むほど味が出るお話なのだ。"
    # its own utterance cache: it counts what the edit's render synthesized (another test edits a sentence
    # into the same words)
    with paused_run(tmp_path, api_url, shared_speech=False, before="upload", timeout_s=900) as (run, store):
        run.wait_for_pause(1)
        first_mp3, first_stored, _, _ = listened(form_description(api_url, run))
        assert first_mp3.read_bytes()[:3] == b"ID3" and first_stored.read_bytes() == first_mp3.read_bytes()
        assert published_nothing(store)  # rendered, and waiting for the editor's ears
        resume(api_url, run, {"editor": "Aoi", "action": "edit",
                              "edits": [{"article": 1, "sentence": 3, "text": new_sentence}]})
        run.wait_for_pause(2)  # the edit is rendered again and the form comes back
        second = form_description(api_url, run)
        second_mp3, _, voiced, utterances = listened(second)
        assert second_mp3 != first_mp3 and second_mp3.is_file()
        assert 1 <= voiced < utterances  # only the changed sentence was synthesized; the rest cached
        assert new_sentence in second and published_nothing(store)
        resume(api_url, run, {"editor": "Aoi", "action": "approve"})
        assert run.finish() == 0, run.output[-4000:]
    day = store / SAMPLE_DATE.isoformat()
    record = json.loads((day / "episode.json").read_text(encoding="utf-8"))
    review = record["review"]
    assert (review["decision"], review["author"]) == ("edited", "Aoi")
    assert len(review["edits"]) == 1 and new_sentence in review["edits"][0]
    assert new_sentence in record["transcript"]
    assert published_mp3(store) == second_mp3.read_bytes()  # what the editor heard last
    assert new_sentence in (day / "transcript.vtt").read_text(encoding="utf-8")
    markdown = artifact_markdown(api_url, f"review-{record['show']}-{SAMPLE_DATE.isoformat()}", run)
    assert "edited" in markdown and "Aoi" in markdown and new_sentence in markdown


def test_nobody_deciding_publishes_unchanged_when_the_show_says_so(tmp_path: Path, api_url: str) -> None:
    with paused_run(tmp_path, api_url, before="upload", timeout_s=1, on_timeout="publish") as (run, store):
        assert run.finish() == 0, run.output[-4000:]
    assert PAUSED in run.output
    day = store / SAMPLE_DATE.isoformat()
    record = json.loads((day / "episode.json").read_text(encoding="utf-8"))
    review = record["review"]
    assert (review["decision"], review["author"], review["edits"]) == ("timed out", TIMEOUT_AUTHOR, [])
    assert SAMPLE_DATE.isoformat() in (store / "episodes.json").read_text(encoding="utf-8")
    [rendered] = (tmp_path / "zundacast" / "work").rglob("episode-*.mp3")  # rendered once, not again
    assert published_mp3(store) == rendered.read_bytes()
    markdown = artifact_markdown(api_url, f"review-{record['show']}-{SAMPLE_DATE.isoformat()}", run)
    assert "timed out" in markdown and TIMEOUT_AUTHOR in markdown


def test_a_bad_review_setting_is_one_error_line_naming_the_field(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (SHOWS_DIR / "zundamon-ai.toml").read_text(encoding="utf-8")
    assert "[review]" not in text
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text(text + '\n[review]\nbefore = "upload"\n', encoding="utf-8")
    bad.write_text(text + '\n[review]\nbefore = "after-upload"\n', encoding="utf-8")
    assert load_show(str(good)).review.before == "upload"
    assert main(["run", "--show", str(bad), "--store", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("zundacast: error:"), err
    assert "bad.toml" in err and "review.before" in err and "'upload'" in err, err
    assert not (tmp_path / "out").exists()
