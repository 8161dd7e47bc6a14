"""Serve the daily deployment: `python -m deployments.serve [--show NAME] [--store URL]`.

Runs next to a Prefect server (`PREFECT_API_URL`) and executes scheduled runs
(the show's cron, in the show's timezone) and "Custom run"s from the Prefect UI,
where `episode_date` and `refresh` can be set for any past date. Beside it, the
silence check (flows/silence_check.py): hourly from the show's `[alerts] deadline`,
it posts to ZUNDACAST_WEBHOOK_URL once when the day's episode is still missing.
"""

from __future__ import annotations

import argparse
import os

import prefect
from prefect.schedules import Cron

from flows.daily_episode import daily_episode
from flows.silence_check import check_cron, silence_check
from zundacast.show import Show, load_show


def deployment_name(show_id: str) -> str:
    return f"{show_id}-daily"


def silence_deployment_name(show_id: str) -> str:
    return f"{show_id}-silence-check"


def serve(show_name: str | Show = "zundamon-ai", store: str = "") -> None:
    """Serve the show's daily deployment and its silence check until interrupted (a show name, path,
    or a Show record)."""
    show = show_name if isinstance(show_name, Show) else load_show(show_name)
    parameters: dict[str, object] = {
        "show": show_name if isinstance(show_name, str) else show.model_dump(mode="json"),
    }
    if store:
        parameters["store"] = store
    daily = daily_episode.to_deployment(
        name=deployment_name(show.show.id),
        schedules=[Cron(show.schedule.cron, timezone=show.show.timezone)],
        parameters=parameters,
        description=f"{show.show.title}: today's episode every morning ({show.schedule.cron}, "
                    f"{show.show.timezone}); a custom run can pick any past date and stages to refresh.",
        tags=["zundacast", show.show.id],
        concurrency_limit=1,  # one episode render at a time per deployment on this machine
    )
    silence = silence_check.to_deployment(
        name=silence_deployment_name(show.show.id),
        schedules=[Cron(check_cron(show), timezone=show.show.timezone)],
        parameters=parameters,
        description=f"{show.show.title}: tells ZUNDACAST_WEBHOOK_URL once when the day's episode is not "
                    f"published by {show.alerts.deadline.strftime('%H:%M')} ({show.show.timezone}).",
        tags=["zundacast", show.show.id],
    )
    prefect.serve(daily, silence)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m deployments.serve", description=__doc__.splitlines()[0])
    parser.add_argument("--show", default=os.environ.get("ZUNDACAST_SHOW", "zundamon-ai"))
    parser.add_argument("--store", default="", help="override the store for scheduled runs")
    args = parser.parse_args()
    serve(args.show, args.store)


if __name__ == "__main__":
    main()
