"""Dates are computed, never guessed: the episode's date, weekday and window."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from zundacast.errors import PermanentError

EARLIEST_DATE = dt.date(2000, 1, 1)  # before RSS feeds were common; also keeps date windows computable
WEEKDAYS_JA = ("月曜日", "火曜日", "水曜日", "木曜日", "金曜日", "土曜日", "日曜日")


class InvalidDate(PermanentError):
    pass


def today_in(timezone: str) -> dt.date:
    return dt.datetime.now(ZoneInfo(timezone)).date()


def parse_episode_date(value: str | dt.date | None, timezone: str) -> dt.date:
    """The episode's date: given (YYYY-MM-DD) or today in the show's timezone; never in the future."""
    today = today_in(timezone)
    if value is None or value == "":
        return today
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, str):
        try:
            value = dt.date.fromisoformat(value.strip())
        except ValueError:
            raise InvalidDate(f"invalid date {value!r}: use YYYY-MM-DD, e.g. 2025-07-24") from None
    if value < EARLIEST_DATE:
        raise InvalidDate(f"date {value.isoformat()} is before {EARLIEST_DATE.isoformat()}: no news feed "
                          "reaches back that far; use a recent date in YYYY-MM-DD")
    if value > today:
        raise InvalidDate(f"date {value.isoformat()} is in the future (today is {today.isoformat()} "
                          f"in {timezone}): news for it does not exist yet")
    return value


def weekday_ja(day: dt.date) -> str:
    return WEEKDAYS_JA[day.weekday()]


def date_ja(day: dt.date) -> str:
    """2025年7月24日 (no zero padding, as the host says it)."""
    return f"{day.year}年{day.month}月{day.day}日"


def window(day: dt.date, timezone: str, cutoff: dt.time, hours: float) -> tuple[dt.datetime, dt.datetime]:
    """The [start, end) of the news window: `hours` before the cutoff time on `day`."""
    end = dt.datetime.combine(day, cutoff, tzinfo=ZoneInfo(timezone))
    return end - dt.timedelta(hours=hours), end
