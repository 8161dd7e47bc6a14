"""The silence alert: tell the operator when the day's episode is not published by the show's deadline.

The failure webhook (`zundacast.notify`) speaks only when a run fails. Nothing speaks when no run
happened at all (the server or worker was down, the deployment paused, the schedule wrong) or when
a run finished without publishing. So a check looks where listeners look: `episodes.json` in the
store. On a day the show's schedule fires (a weekday show is not missing on Saturday), from the
deadline on (`[alerts] deadline`, default 07:00 in the show's timezone), a date that is not in the
index gets ONE short, redacted message on `ZUNDACAST_WEBHOOK_URL` naming the show, the date, the store
and how to rerun it.

"Once" is kept in the store itself: before posting, the check creates `.alerts/{show}-{date}.json`
with the store's create-only write (`put_if(expected=None)`: S3 `If-None-Match: *`, a locked compare
in a folder). Only the check that created it posts, so two checks at once, or every later check of
the day, stay quiet; when the webhook does not answer, the marker is removed again so the next check
tries again.

Why a scheduled flow (`flows/silence_check.py`) and not a Prefect automation with a proactive
trigger ("expect prefect.flow-run.Completed within N seconds"): the automation hears only Prefect's
events, so a run that completed without publishing (or published into another store) looks healthy
to it; it needs a notification block on the server and the automations service (Prefect Cloud or a
server with its services running), and its clock is "N seconds after the last event", not "07:00 on
the schedule's days". The flow reads the store, knows the show's schedule and timezone, and runs
wherever the daily deployment runs.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Literal

from cronsim import CronSim, CronSimError
from pydantic import BaseModel

from zundacast.notify import MAX_MESSAGE_CHARS, notify_text, redact, webhook_secrets
from zundacast.publishing.index import EPISODES_KEY, read_index
from zundacast.show import Show
from zundacast.storage import Store, VersionConflict

logger = logging.getLogger(__name__)

MARKER_TYPE = "application/json; charset=utf-8"

Outcome = Literal["not a show day", "before the deadline", "published", "already alerted", "alerted",
                  "webhook failed", "no webhook"]


class SilenceCheck(BaseModel):
    """What one check found and did."""

    show: str
    date: dt.date
    deadline: dt.datetime  # on `date`, in the show's timezone
    outcome: Outcome
    message: str = ""  # the alert's text when one was (or would have been) sent


def marker_key(show_id: str, day: dt.date) -> str:
    return f".alerts/{show_id}-{day.isoformat()}.json"


def fires_on(cron: str, day: dt.date) -> bool:
    """Whether the schedule `cron` (wall-clock times in the show's timezone) starts a run on `day`."""
    start = dt.datetime.combine(day, dt.time.min) - dt.timedelta(seconds=1)  # so a 00:00 run counts
    try:
        return next(CronSim(cron, start)).date() == day
    except CronSimError as exc:
        raise ValueError(f"schedule.cron {cron!r} is not a cron expression: {exc}") from None
    except StopIteration:  # an expression that never fires (e.g. 30 February)
        return False


def deadline_on(show: Show, day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, show.alerts.deadline, tzinfo=show.tz)


def rerun_hint(show: Show, day: dt.date, store_url: str) -> str:
    return (f"rerun: zundacast run --show {show.show.id} --date {day.isoformat()} --store {store_url} "
            f"(or a Custom run of daily-episode/{show.show.id}-daily with episode_date {day.isoformat()})")


def silence_message(show: Show, day: dt.date, deadline: dt.datetime, store_url: str,
                    extra_secrets: tuple[str, ...] = ()) -> str:
    """Three short lines: what is missing, where it was looked for, what to do; redacted and cut."""
    text = (f"🔇 zundacast: {show.show.id} {day.isoformat()} has no episode at "
            f"{deadline.strftime('%H:%M')} {show.show.timezone} (the deadline)\n"
            f"store: {store_url} ({EPISODES_KEY} does not list {day.isoformat()})\n"
            f"{rerun_hint(show, day, store_url)}")
    text = redact(text, extra_secrets)
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1].rstrip() + "…"


def is_published(store: Store, day: dt.date) -> bool:
    index, _ = read_index(store)
    return any(record.date == day for record in index.episodes)


def check_silence(show: Show, store: Store, store_url: str, webhook_url: str,
                  now: dt.datetime) -> SilenceCheck:
    """Look for today's episode (today at `now` in the show's timezone) and alert once if it is late.

    `now` must be timezone-aware (the flow passes the clock; tests pass any instant).
    """
    if now.tzinfo is None:
        raise ValueError("check_silence needs an aware `now` (e.g. datetime.now(timezone.utc))")
    local = now.astimezone(show.tz)
    day = local.date()
    deadline = deadline_on(show, day)

    def result(outcome: Outcome, message: str = "") -> SilenceCheck:
        return SilenceCheck(show=show.show.id, date=day, deadline=deadline, outcome=outcome, message=message)

    if not fires_on(show.schedule.cron, day):
        return result("not a show day")
    if local < deadline:
        return result("before the deadline")
    if is_published(store, day):
        return result("published")
    secrets = webhook_secrets(webhook_url) if webhook_url else ()
    message = silence_message(show, day, deadline, store_url, secrets)
    if not webhook_url:
        logger.warning("%s (ZUNDACAST_WEBHOOK_URL is not set: nobody was told)", message.splitlines()[0])
        return result("no webhook", message)
    key = marker_key(show.show.id, day)
    marker = json.dumps({"show": show.show.id, "date": day.isoformat(), "alert": "silence",
                         "sent_at": now.astimezone(dt.UTC).isoformat()}).encode()
    try:
        version = store.put_if(key, marker, MARKER_TYPE, expected=None)
    except VersionConflict:  # another check created it first: that one posts (or has posted)
        return result("already alerted", message)
    if notify_text(webhook_url, message):
        return result("alerted", message)
    store.delete_if(key, version)  # the operator was not told: let the next check try again
    return result("webhook failed", message)
