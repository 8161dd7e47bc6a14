"""The silence alert: a real folder store and S3 (moto over HTTP), a loopback webhook, an injected clock."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.s3 import running_s3
from tests.faults.support import WebhookReceiver, free_port
from zundacast.alerts import SilenceCheck, check_silence, fires_on, marker_key
from zundacast.models import EpisodeRecord
from zundacast.publishing.index import merge_record, update_index
from zundacast.show import Show, load_show, parse_show
from zundacast.storage import Store, open_store

THURSDAY = dt.date(2025, 7, 24)
SATURDAY = dt.date(2025, 7, 26)
TOKYO = dt.timezone(dt.timedelta(hours=9))


def at_tokyo(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    """An instant, given as UTC (the flow's clock), that is `hour:minute` in Tokyo on `day`."""
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=TOKYO).astimezone(dt.UTC)


@pytest.fixture(params=["folder", "s3"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "folder":
        yield str(tmp_path / "public")
    else:
        with running_s3(monkeypatch) as s3:
            yield s3.url


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def show() -> Show:
    return load_show("zundamon-ai")  # weekdays 06:00 Asia/Tokyo; no [alerts]: deadline 07:00


def publish_record(store: Store, day: dt.date, show_id: str = "zundamon-ai") -> None:
    """Put an entry for `day` into episodes.json the way the upload stage does (compare-and-swap)."""
    record = EpisodeRecord.model_validate({
        "date": day.isoformat(), "title": f"{day.isoformat()} のニュース", "show": show_id, "picks": [],
        "transcript": "こんにちはなのだ。", "duration_s": 600.0, "size_bytes": 1000, "sha256": "0" * 64,
        "loudness_lufs": -16.0, "true_peak_dbtp": -1.5, "chapters": [],
        "usage": {}, "engine": "openjtalk", "writer": "offline",
        "published_at": dt.datetime.combine(day, dt.time(6, 5), tzinfo=TOKYO).isoformat(),
    })
    update_index(store, lambda index: index.model_copy(update={"episodes": merge_record(index.episodes,
                                                                                       record)}))


def check(show: Show, store_url: str, webhook_url: str, now: dt.datetime) -> SilenceCheck:
    return check_silence(show, open_store(store_url), store_url, webhook_url, now)


def test_a_missing_episode_is_told_once(show: Show, store_url: str, webhook: WebhookReceiver) -> None:
    first = check(show, store_url, webhook.url, at_tokyo(THURSDAY, 7, 5))
    second = check(show, store_url, webhook.url, at_tokyo(THURSDAY, 8, 5))  # the next hourly check
    assert (first.outcome, second.outcome) == ("alerted", "already alerted")
    assert len(webhook.payloads) == 1
    (payload,) = webhook.payloads
    for text in (payload["text"], payload["content"]):
        assert "zundamon-ai" in text and "2025-07-24" in text and "07:00 Asia/Tokyo" in text
        assert store_url in text
        assert "zundacast run --show zundamon-ai --date 2025-07-24" in text  # what to do
        assert "hook-secret-path" not in text
    assert len(payload["content"].splitlines()) == 3
    marker = open_store(store_url).get(marker_key("zundamon-ai", THURSDAY))
    assert marker is not None and json.loads(marker)["date"] == "2025-07-24"


def test_a_published_episode_is_not_told(show: Show, store_url: str, webhook: WebhookReceiver) -> None:
    publish_record(open_store(store_url), THURSDAY)
    result = check(show, store_url, webhook.url, at_tokyo(THURSDAY, 7, 5))
    assert result.outcome == "published"
    assert webhook.payloads == []
    assert open_store(store_url).get(marker_key("zundamon-ai", THURSDAY)) is None


def test_only_that_date_counts(show: Show, store_url: str, webhook: WebhookReceiver) -> None:
    publish_record(open_store(store_url), THURSDAY - dt.timedelta(days=1))  # yesterday's is no alibi
    assert check(show, store_url, webhook.url, at_tokyo(THURSDAY, 9)).outcome == "alerted"
    assert len(webhook.payloads) == 1


def test_nothing_before_the_deadline(show: Show, store_url: str, webhook: WebhookReceiver) -> None:
    assert check(show, store_url, webhook.url, at_tokyo(THURSDAY, 6, 59)).outcome == "before the deadline"
    assert webhook.payloads == []
    assert check(show, store_url, webhook.url, at_tokyo(THURSDAY, 7, 0)).outcome == "alerted"
    assert len(webhook.payloads) == 1


def test_nothing_on_a_day_the_schedule_skips(show: Show, store_url: str, webhook: WebhookReceiver) -> None:
    result = check(show, store_url, webhook.url, at_tokyo(SATURDAY, 12))
    assert (result.date, result.outcome) == (SATURDAY, "not a show day")
    assert webhook.payloads == []


def test_the_deadline_and_the_date_are_the_show_timezones(tmp_path: Path, webhook: WebhookReceiver) -> None:
    raw = load_show("zundamon-ai").model_dump(mode="json")
    raw.pop("source_path")
    raw["show"]["timezone"] = "America/New_York"
    raw["schedule"]["cron"] = "30 5 * * 1-5"
    raw["alerts"] = {"deadline": "08:30"}  # as written in a show file: deadline = "08:30"
    show = parse_show(raw, "test show")
    store_url = str(tmp_path / "public")
    # Thursday 08:29 in New York (EDT, UTC-4) is 12:29 UTC; in Tokyo it is already Thursday evening
    before = check(show, store_url, webhook.url, dt.datetime(2025, 7, 24, 12, 29, tzinfo=dt.UTC))
    assert (before.date, before.outcome) == (THURSDAY, "before the deadline")
    assert before.deadline.utcoffset() == dt.timedelta(hours=-4)
    assert webhook.payloads == []
    after = check(show, store_url, webhook.url, dt.datetime(2025, 7, 24, 12, 30, tzinfo=dt.UTC))
    assert (after.date, after.outcome) == (THURSDAY, "alerted")
    assert "08:30 America/New_York" in webhook.payloads[0]["content"]
    # Friday 01:00 UTC is still Thursday 21:00 in New York: the same date, already told
    late = check(show, store_url, webhook.url, dt.datetime(2025, 7, 25, 1, 0, tzinfo=dt.UTC))
    assert (late.date, late.outcome) == (THURSDAY, "already alerted")
    # and Saturday 02:00 UTC is Friday evening in New York: a show day, and Friday has no episode
    friday = check(show, store_url, webhook.url, dt.datetime(2025, 7, 26, 2, 0, tzinfo=dt.UTC))
    assert (friday.date, friday.outcome) == (dt.date(2025, 7, 25), "alerted")
    assert len(webhook.payloads) == 2


def test_a_webhook_that_fails_is_tried_again_by_the_next_check(show: Show, tmp_path: Path,
                                                                 webhook: WebhookReceiver) -> None:
    store_url = str(tmp_path / "public")
    dead = f"http://127.0.0.1:{free_port()}/services/T0/B0/dead-hook-secret"
    assert check(show, store_url, dead, at_tokyo(THURSDAY, 7)).outcome == "webhook failed"
    assert open_store(store_url).get(marker_key("zundamon-ai", THURSDAY)) is None  # not marked as told
    assert check(show, store_url, webhook.url, at_tokyo(THURSDAY, 8)).outcome == "alerted"
    assert len(webhook.payloads) == 1


def test_secrets_never_reach_the_message(show: Show, tmp_path: Path, webhook: WebhookReceiver,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-test-silence-0123456789abcdef"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    store_url = str(tmp_path / secret)  # a folder named like a key: the message names the store
    check(show, store_url, webhook.url, at_tokyo(THURSDAY, 7))
    body = json.dumps(webhook.payloads)
    assert secret not in body and "0123456789abcdef" not in body
    assert "[REDACTED]" in body


def test_schedule_days_follow_the_cron() -> None:
    weekdays = [THURSDAY + dt.timedelta(days=n) for n in range(7)]  # Thursday .. Wednesday
    assert [fires_on("0 6 * * 1-5", day) for day in weekdays] == [True, True, False, False, True, True, True]
    assert fires_on("0 0 * * 6", SATURDAY)  # a run at midnight belongs to its own day
    assert not fires_on("0 6 1 * *", THURSDAY) and fires_on("0 6 24 * *", THURSDAY)


def test_the_flow_checks_the_store_it_is_given(
        tmp_path: Path, webhook: WebhookReceiver, monkeypatch: pytest.MonkeyPatch,
        prefect_harness: None) -> None:
    from flows.silence_check import silence_check

    monkeypatch.setenv("ZUNDACAST_WEBHOOK_URL", webhook.url)
    store_url = str(tmp_path / "public")
    first = silence_check(show="zundamon-ai", store=store_url, now=at_tokyo(THURSDAY, 7, 30))
    again = silence_check(show="zundamon-ai", store=store_url, now=at_tokyo(THURSDAY, 8, 30))
    assert (first.outcome, again.outcome) == ("alerted", "already alerted")
    assert len(webhook.payloads) == 1
