"""The whole flow on the bundled sample day: the suite's one cold full episode, then a rerun from cache.

The cold run is the session's plain `zundacast demo --json` (tests/conftest.py `plain_demo`: a newcomer's
first command, nothing set, Prefect's temporary API), which computes every stage and speaks every sentence
into the test run's utterance cache. The rerun is this process's own flow run of the same show, date and
store on the session's Prefect server, reading the demo's result storage: every stage comes from cache.
Each full run synthesizes minutes of audio, so the runs are made once and inspected many ways
(`--refresh synthesize` is tested on a one-pick run, in test_archives).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import feedparser
import pytest

from zundacast.models import STAGES, RunSummary
from zundacast.speech import persona_ratio

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(plain_demo: dict[str, Any], prefect_harness: None) -> Iterator[dict[str, Any]]:
    from prefect.settings import PREFECT_RESULTS_LOCAL_STORAGE_PATH, temporary_settings

    from flows.daily_episode import daily_episode
    from zundacast.sample_day import SAMPLE_DATE, sample_show

    done = plain_demo["done"]
    assert done.returncode == 0, done.stderr[-3000:]
    first = json.loads(done.stdout.strip().splitlines()[-1])
    # the demo serves the sample day on its fixed port, or on a free one when that is taken: the show (and
    # with it every stage's cache key) names the URL it was served at
    served = re.search(r"^sample day \S+ served at (\S+)$", done.stderr, re.MULTILINE)
    assert served, done.stderr[-3000:]
    store = plain_demo["store"]
    mp = pytest.MonkeyPatch()
    mp.setenv("ZUNDACAST_HOME", str(plain_demo["home"]))
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "VOICEVOX_URL", "ZUNDACAST_STORE",
                 "ZUNDACAST_WEBHOOK_URL"):
        mp.delenv(name, raising=False)
    # the demo's results, where its fresh PREFECT_HOME keeps them (Prefect's default: $PREFECT_HOME/storage);
    # the sample day is no longer served: a stage that missed its cache would fail to collect
    with temporary_settings({PREFECT_RESULTS_LOCAL_STORAGE_PATH: plain_demo["prefect_home"] / "storage"}):
        second_state = daily_episode(episode_date=SAMPLE_DATE, show=sample_show(served[1]), store=str(store),
                                     return_state=True)
        second = second_state.result()
    mp.undo()
    yield {"first": first, "second": second, "second_run_id": second_state.state_details.flow_run_id,
           "store": store, "date": SAMPLE_DATE}


def _statuses(summary: RunSummary) -> dict[str, str]:
    return {name: report.status for name, report in summary.stages.items()}


def test_a_cached_rerun_leaves_the_three_artifacts(runs: dict[str, Any]) -> None:
    """The README promises the picks table, the script and the links on every run: the rerun whose
    stages all came from cache made them too (from the stage results, in the flow), on the API server."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    assert set(_statuses(runs["second"]).values()) == {"cached"}
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[runs["second_run_id"]])))
    by_prefix = {artifact.key.split("-")[0]: artifact for artifact in artifacts if artifact.key}
    assert set(by_prefix) >= {"picks", "script", "episode"}, sorted(a.key or "" for a in artifacts)
    assert by_prefix["picks"].type == "table" and "score" in str(by_prefix["picks"].data)
    script = str(by_prefix["script"].data)
    assert "バイバイ" in script and "persona" in script  # the script itself, with its quality figures
    assert runs["second"].feed in str(by_prefix["episode"].data)


def test_first_run_computes_every_stage(runs: dict[str, Any]) -> None:
    """The demo's fresh Prefect home holds no results: every stage computes, each said on its JSON line."""
    first = {name: stage["status"] for name, stage in runs["first"]["stages"].items()}
    assert first == dict.fromkeys(STAGES, "computed")


def test_second_run_is_served_from_cache(runs: dict[str, Any]) -> None:
    assert _statuses(runs["second"]) == dict.fromkeys(STAGES, "cached")


def test_store_holds_the_episode_and_a_feed_with_its_real_size(runs: dict[str, Any]) -> None:
    day_dir = runs["store"] / runs["date"].isoformat()
    mp3 = f"zundamon-ai-{runs['date'].isoformat()}.mp3"  # a file name of its own per show and date
    for name in (mp3, "transcript.vtt", "episode.json", "chapters.json", "candidates.json",
                 "index.html"):
        assert (day_dir / name).is_file(), name
    feed = feedparser.parse((runs["store"] / "feed.xml").read_bytes())
    assert not feed.bozo, feed.get("bozo_exception")
    assert len(feed.entries) == 1
    enclosure = feed.entries[0].enclosures[0]
    assert int(enclosure["length"]) == (day_dir / mp3).stat().st_size


def test_episode_json_describes_the_episode(runs: dict[str, Any]) -> None:
    record = json.loads((runs["store"] / runs["date"].isoformat() / "episode.json").read_text("utf-8"))
    assert record["date"] == "2026-11-20"
    assert record["duration_s"] >= 120
    assert len(record["picks"]) == 3 and all(p["url"] and p["title"] for p in record["picks"])
    assert record["chapters"][0]["title"] == "オープニング"
    assert len(record["chapters"]) == len(record["picks"]) + 2
    assert record["usage"]["prompt_tokens"] == 0  # offline writer


def test_script_names_the_weekday_and_each_pick_in_order(runs: dict[str, Any]) -> None:
    record = json.loads((runs["store"] / runs["date"].isoformat() / "episode.json").read_text("utf-8"))
    transcript: str = record["transcript"]
    assert "2026年11月20日、金曜日" in transcript
    segments = transcript.split("----")[1:]
    assert len(segments) >= len(record["picks"])
    positions = [transcript.find(summary["spoken_title"]) for summary in record["summaries"]]
    assert all(p > 0 for p in positions) and positions == sorted(positions)


def test_persona_ratio_over_ninety_percent(runs: dict[str, Any]) -> None:
    from zundacast.speech import split_sentences

    record = json.loads((runs["store"] / runs["date"].isoformat() / "episode.json").read_text("utf-8"))
    sentences = [s for line in record["transcript"].split("\n") if line != "----"
                 for s in split_sentences(line)]
    assert persona_ratio(sentences) >= 0.9


def test_rerun_replaces_the_episode_instead_of_adding_one(runs: dict[str, Any]) -> None:
    feed = feedparser.parse((runs["store"] / "feed.xml").read_bytes())
    assert len(feed.entries) == 1
    episodes = json.loads((runs["store"] / "episodes.json").read_text("utf-8"))["episodes"]
    assert len(episodes) == 1


def test_cli_demo_json_summary_is_the_last_line(plain_demo: dict[str, Any]) -> None:
    """The CLI contract other tooling relies on, in a real subprocess (Prefect's temporary API): the
    session's plain `zundacast demo --json` (tests/conftest.py)."""
    done = plain_demo["done"]
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(summary) >= {"episode", "date", "stages", "duration_s"}
    assert summary["date"] == "2026-11-20"
    assert set(summary["stages"]) == set(STAGES)
    assert all(stage["status"] in ("computed", "cached") for stage in summary["stages"].values())
    assert Path(summary["episode"]).is_file()
    assert "▶ collect" in done.stderr and "✓ upload" in done.stderr
