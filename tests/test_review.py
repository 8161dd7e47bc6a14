"""An editor in the loop before synthesis, on a real `prefect server start` (the test run's shared one):
the run pauses after the script, and the test answers through the API (`resume_flow_run` with run input)
as the UI's Resume form does; a rejection (before synthesis or upload) publishes nothing; nobody deciding
fails the run by default. Before upload, and the timeout that publishes: tests/test_review_upload.py;
the shared helpers: tests/review_support.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tasks.script import recap_name
from tests.review_support import PAUSED, artifact_markdown, paused_run, published_nothing, resume
from zundacast.cli import main
from zundacast.sample_day import SAMPLE_DATE
from zundacast.show import SHOWS_DIR, load_show

pytestmark = pytest.mark.slow


def test_a_drop_and_an_edit_from_the_api_are_checked_synthesized_and_recorded(
        tmp_path: Path, prefect_api_url: str) -> None:
    new_title = "ずんだ餅でもわかる新しい言語モデルのお話"
    new_sentence = "この記事は、ずんだ餅みたいに噛めば噛むほど味が出るお話なのだ。"
    with paused_run(tmp_path, prefect_api_url, timeout_s=900) as (run, store):
        run.wait_for_pause(1)
        # the article leaves; the next spare is summarized and scripted, and the form comes back
        resume(prefect_api_url, run, {"editor": "Aoi", "action": "drop", "drop": [1]})
        run.wait_for_pause(2)
        assert "dropped article: " in run.output
        # a sentence with a URL breaks a script rule: the form comes back and nothing is synthesized
        with_url = {"article": 1, "sentence": 3, "text": "詳しくは https://example.com なのだ。"}
        resume(prefect_api_url, run, {"editor": "Aoi", "action": "edit", "edits": [with_url]})
        run.wait_for_pause(3)
        assert "edits by Aoi not applied" in run.output and "URL" in run.output
        resume(prefect_api_url, run, {"editor": "Aoi", "action": "edit",
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
    markdown = artifact_markdown(prefect_api_url, f"review-{record['show']}-{SAMPLE_DATE.isoformat()}", run)
    assert "edited" in markdown and "Aoi" in markdown


@pytest.mark.parametrize("before", ["synthesize", "upload"])
def test_a_rejection_from_the_api_publishes_nothing(tmp_path: Path, prefect_api_url: str,
                                                    before: str) -> None:
    with paused_run(tmp_path, prefect_api_url, before=before, timeout_s=900) as (run, store):
        run.wait_for_pause(1)
        resume(prefect_api_url, run, {"editor": "Aoi", "action": "reject", "reason": "出典が一つだけなのだ"})
        assert run.finish() != 0
    rejected = (rf"ReviewRejected: review: the episode for {SAMPLE_DATE.isoformat()} was rejected by Aoi: "
                "出典が一つだけ")
    assert re.search(rejected, run.output), run.output[-4000:]
    assert published_nothing(store)
    rendered = list((tmp_path / "zundacast" / "work").rglob("episode-*.mp3"))
    assert len(rendered) == (1 if before == "upload" else 0)  # before upload: heard, then held back


def test_nobody_deciding_fails_the_run_by_default(tmp_path: Path, prefect_api_url: str) -> None:
    with paused_run(tmp_path, prefect_api_url, timeout_s=1) as (run, store):  # on_timeout: default, "fail"
        assert run.finish() != 0
    assert PAUSED in run.output
    assert "rejected by (nobody: timeout): no decision within 1 s" in run.output, run.output[-4000:]
    assert not (store / "episodes.json").exists()


def test_a_bad_review_setting_is_one_error_line_naming_the_field(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (SHOWS_DIR / "zundamon-ai.toml").read_text(encoding="utf-8")
    assert "[review]" not in text
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text(text + '\n[review]\nbefore = "upload"\npoll_s = 1.5\n', encoding="utf-8")
    bad.write_text(text + '\n[review]\nbefore = "after-upload"\n', encoding="utf-8")
    assert (load_show(str(good)).review.before, load_show(str(good)).review.poll_s) == ("upload", 1.5)
    assert main(["run", "--show", str(bad), "--store", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("zundacast: error:"), err
    assert "bad.toml" in err and "review.before" in err and "'upload'" in err, err
    assert not (tmp_path / "out").exists()



# Run in the flow's process before the flow: the timeout fires, says so, and its first resume waits until
# the run was Paused and an editor's answer has resumed it (the window before the paused run's next poll
# notices the answer).
_EDITOR_FIRST = """
import time
import prefect.flow_runs
from prefect.client.orchestration import get_client

real_resume = prefect.flow_runs.resume_flow_run
held = []


def resume_flow_run(flow_run_id, *args, **kwargs):
    if not held:
        held.append(flow_run_id)
        print("the timeout fired", flush=True)
        seen_paused = False
        with get_client(sync_client=True) as client:
            while not seen_paused or client.read_flow_run(flow_run_id).state.is_paused():
                seen_paused = seen_paused or client.read_flow_run(flow_run_id).state.is_paused()
                time.sleep(0.1)  # a polling interval in the patched child, not a measured time
        print("the timeout fires after the editor answered", flush=True)
    try:
        return real_resume(flow_run_id, *args, **kwargs)
    except Exception as exc:
        print(f"resume refused: {exc}", flush=True)
        raise


prefect.flow_runs.resume_flow_run = resume_flow_run
"""


def test_an_editor_answering_before_the_timeout_resumes_wins(tmp_path: Path, prefect_api_url: str) -> None:
    with paused_run(tmp_path, prefect_api_url, prelude=_EDITOR_FIRST, timeout_s=1,
                    on_timeout="publish") as (run, store):
        run.wait_for("the timeout fired")  # and waits for the editor's answer
        resume(prefect_api_url, run, {"editor": "Aoi", "action": "reject", "reason": "出典が一つだけなのだ"})
        assert run.finish() != 0
    assert "the timeout fires after the editor answered" in run.output, run.output[-4000:]
    assert re.search(r"resume refused: .*isn't paused", run.output), run.output[-4000:]
    assert "rejected by Aoi: 出典が一つだけ" in run.output, run.output[-4000:]
    assert published_nothing(store)  # the show's on_timeout would have published it
