"""An editor in the loop before upload, on the test run's shared Prefect server: the editor hears the
rendered episode (and an edit rendered again) before approving it, and a show that says so publishes
unchanged when nobody decides, also when the timeout fires before Prefect has set the run Paused or
saved its form (a rejection at either point: tests/test_review.py). Helpers: tests/review_support.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.review_support import (
    PAUSED,
    artifact_markdown,
    form_description,
    listened,
    paused_run,
    published_mp3,
    published_nothing,
    resume,
)
from zundacast.review import TIMEOUT_AUTHOR
from zundacast.sample_day import SAMPLE_DATE

pytestmark = pytest.mark.slow


def test_nobody_deciding_publishes_unchanged_when_the_show_says_so(tmp_path: Path,
                                                                   prefect_api_url: str) -> None:
    with paused_run(tmp_path, prefect_api_url, before="upload", timeout_s=1,
                    on_timeout="publish") as (run, store):
        assert run.finish() == 0, run.output[-4000:]
    assert PAUSED in run.output
    day = store / SAMPLE_DATE.isoformat()
    record = json.loads((day / "episode.json").read_text(encoding="utf-8"))
    review = record["review"]
    assert (review["decision"], review["author"], review["edits"]) == ("timed out", TIMEOUT_AUTHOR, [])
    assert SAMPLE_DATE.isoformat() in (store / "episodes.json").read_text(encoding="utf-8")
    [rendered] = (tmp_path / "zundacast" / "work").rglob("episode-*.mp3")  # rendered once, not again
    assert published_mp3(store) == rendered.read_bytes()
    markdown = artifact_markdown(prefect_api_url, f"review-{record['show']}-{SAMPLE_DATE.isoformat()}", run)
    assert "timed out" in markdown and TIMEOUT_AUTHOR in markdown


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
    # on_timeout "fail" (the default): the fallback decision, a rejection, ends the run before synthesis
    # (test_nobody_deciding_publishes_unchanged_when_the_show_says_so publishes on timeout)
    with paused_run(tmp_path, prefect_api_url, prelude=prelude, timeout_s=1) as (run, store):
        # refused, the timeout asks again; without that the run waits out Prefect's own pause timeout
        # (timeout_s + PREFECT_GRACE_S) and fails with FlowPauseTimeout, not with the show's fallback
        assert run.finish() != 0
    assert re.search(rf"resume refused: .*{refusal}", run.output), run.output[-4000:]
    assert "rejected by (nobody: timeout): no decision within 1 s" in run.output, run.output[-4000:]
    assert "never resumed" not in run.output
    assert not (store / "episodes.json").exists()


# Last in the module: by then the other runs have put the episode's utterances in the test run's cache.
def test_before_upload_the_editor_hears_the_episode_and_an_edit_rendered_again(
        tmp_path: Path, prefect_api_url: str) -> None:
    # words no other test speaks: the test run's utterance cache never holds them before this edit, so the
    # edit's render synthesizes them and takes the rest of the episode from the cache
    new_sentence = "この記事は、枝豆みたいにゆでればゆでるほど甘くなるお話なのだ。"
    with paused_run(tmp_path, prefect_api_url, before="upload", timeout_s=900) as (run, store):
        run.wait_for_pause(1)
        first_mp3, first_stored, _, _ = listened(form_description(prefect_api_url, run))
        assert first_mp3.read_bytes()[:3] == b"ID3" and first_stored.read_bytes() == first_mp3.read_bytes()
        assert published_nothing(store)  # rendered, and waiting for the editor's ears
        resume(prefect_api_url, run, {"editor": "Aoi", "action": "edit",
                              "edits": [{"article": 1, "sentence": 3, "text": new_sentence}]})
        run.wait_for_pause(2)  # the edit is rendered again and the form comes back
        second = form_description(prefect_api_url, run)
        second_mp3, _, voiced, utterances = listened(second)
        assert second_mp3 != first_mp3 and second_mp3.is_file()
        assert 1 <= voiced < utterances  # only the changed sentence was synthesized; the rest cached
        assert new_sentence in second and published_nothing(store)
        resume(prefect_api_url, run, {"editor": "Aoi", "action": "approve"})
        assert run.finish() == 0, run.output[-4000:]
    day = store / SAMPLE_DATE.isoformat()
    record = json.loads((day / "episode.json").read_text(encoding="utf-8"))
    review = record["review"]
    assert (review["decision"], review["author"]) == ("edited", "Aoi")
    assert len(review["edits"]) == 1 and new_sentence in review["edits"][0]
    assert new_sentence in record["transcript"]
    assert published_mp3(store) == second_mp3.read_bytes()  # what the editor heard last
    assert new_sentence in (day / "transcript.vtt").read_text(encoding="utf-8")
    markdown = artifact_markdown(prefect_api_url, f"review-{record['show']}-{SAMPLE_DATE.isoformat()}", run)
    assert "edited" in markdown and "Aoi" in markdown and new_sentence in markdown
