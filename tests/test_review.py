"""An editor in the loop before synthesis, on a real `prefect server start` (the test run's shared one):
the run pauses after the script, and the test answers through the API (`resume_flow_run` with run input)
as the UI's Resume form does; the timeout's own resume, including when it fires before Prefect has set
the run Paused or saved its form. Before upload: tests/test_review_upload.py; the shared helpers:
tests/review_support.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tasks.script import recap_name
from tests.review_support import PAUSED, artifact_markdown, paused_run, published_nothing, resume
from zundacast.cli import main
from zundacast.review import TIMEOUT_AUTHOR
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


# Run in the flow's process before the flow: Prefect's resume_flow_run reports each refusal (and flags
# one whose message has REFUSAL in it); HOLD (Prefect's pause_flow_run, or the form's save, which
# pause_flow_run calls after setting the run Paused) waits until that refusal happened. So the timeout
# fires, deterministically, before the pause reaches the server or before the form's schema is saved.
_TIMEOUT_FIRST = """
import threading
import prefect.flow_runs
from prefect.input import RunInput

refused = threading.Event()
real_resume = prefect.flow_runs.resume_flow_run


def resume_flow_run(*args, **kwargs):
    try:
        return real_resume(*args, **kwargs)
    except Exception as exc:
        print(f"resume refused: {exc}", flush=True)
        if REFUSAL in str(exc):
            refused.set()
        raise


prefect.flow_runs.resume_flow_run = resume_flow_run
"""
_HOLD_PAUSE = """
real_pause = prefect.flow_runs.pause_flow_run


def pause_flow_run(*args, **kwargs):
    assert refused.wait(300), "the timeout's resume was never refused"
    return real_pause(*args, **kwargs)


prefect.flow_runs.pause_flow_run = pause_flow_run
"""
_HOLD_FORM = """
real_save = RunInput.save.__func__


def save(cls, *args, **kwargs):
    assert refused.wait(300), "the timeout's resume was never refused"
    return real_save(cls, *args, **kwargs)


RunInput.save = classmethod(save)
"""


@pytest.mark.parametrize(("refusal", "hold"), [("isn't paused", _HOLD_PAUSE),
                                               ("schema not found", _HOLD_FORM)],
                         ids=["before-the-run-is-paused", "before-the-form-is-saved"])
def test_a_timeout_firing_before_the_pause_is_registered_still_applies_the_fallback(
        tmp_path: Path, prefect_api_url: str, refusal: str, hold: str) -> None:
    prelude = f"REFUSAL = {refusal!r}\n{_TIMEOUT_FIRST}{hold}"
    with paused_run(tmp_path, prefect_api_url, prelude=prelude, timeout_s=1,
                    on_timeout="publish") as (run, store):
        # refused, the timeout asks again; without that the run waits out Prefect's own pause timeout
        # (timeout_s + PREFECT_GRACE_S) and fails although the show says to publish
        assert run.finish() == 0, run.output[-4000:]
    assert re.search(rf"resume refused: .*{refusal}", run.output), run.output[-4000:]
    record = json.loads((store / SAMPLE_DATE.isoformat() / "episode.json").read_text(encoding="utf-8"))
    assert (record["review"]["decision"], record["review"]["author"]) == ("timed out", TIMEOUT_AUTHOR)
