"""The silence check: is today's episode in the store by the show's deadline? If not, say so once.

Served beside the daily deployment (`python -m deployments.serve`) and deployed to the work pool
(prefect.yaml `zundamon-ai-silence-check`): it runs every hour from the deadline (`[alerts] deadline`,
default 07:00 in the show's timezone) to midnight, so a check missed while the server restarted is
made up by the next one. Each run reads `episodes.json` and, on the schedule's days, posts one
message to ZUNDACAST_WEBHOOK_URL for a date that is still missing (see `zundacast.alerts`, which also
says why this is a flow and not a Prefect automation).
"""

from __future__ import annotations

import datetime as dt

from prefect import flow, get_run_logger

from zundacast.alerts import SilenceCheck, check_silence
from zundacast.notify import install_log_redaction
from zundacast.show import Environment, Show, load_show
from zundacast.storage import open_store, resolve_store_url


def check_cron(show: Show) -> str:
    """Every hour at the deadline's minute, from the deadline's hour to 23 (the show's timezone)."""
    deadline = show.alerts.deadline
    return f"{deadline.minute} {deadline.hour}-23 * * *"


@flow(name="silence-check", log_prints=False)
def silence_check(show: str | Show = "zundamon-ai", store: str = "",
                  now: dt.datetime | None = None) -> SilenceCheck:
    """Alert once when today's episode of `show` is not in `store`'s episodes.json by the deadline.

    `store` as for daily-episode (else ZUNDACAST_STORE, else the show file); `now` is the clock
    (default: the current time; set it to check a past morning).
    """
    install_log_redaction()
    env = Environment()
    show_cfg = show if isinstance(show, Show) else load_show(show)
    store_url = resolve_store_url(store or env.zundacast_store or show_cfg.storage.url)
    webhook = env.zundacast_webhook_url.get_secret_value() if env.zundacast_webhook_url else ""
    result = check_silence(show_cfg, open_store(store_url), store_url, webhook,
                           now or dt.datetime.now(dt.UTC))
    logger = get_run_logger()
    say = logger.warning if result.outcome in ("alerted", "webhook failed", "no webhook") else logger.info
    say("%s %s: %s (deadline %s)", result.show, result.date.isoformat(), result.outcome,
        result.deadline.isoformat(timespec="minutes"))
    return result
