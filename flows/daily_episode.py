"""The recipe of one episode: collect, rank, summarize, script, synthesize, upload.

Each step is a Prefect task that retries and caches on its own (see
`zundacast.stage`), so a rerun of a date recomputes only what changed, and
`refresh` forces the named stages (and everything after them) to run again.
"""


import datetime as dt
import time
from pathlib import Path
from typing import Literal

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from flows.editing import gated_script, with_readable_picks
from tasks.collect import collect
from tasks.rank import publish_picks_table, rank
from tasks.summarize import summarize
from tasks.synthesize import synthesize
from tasks.upload import read_history, upload, upload_staleness
from zundacast.dates import parse_episode_date
from zundacast.llm import get_writer
from zundacast.models import EpisodeRecord, RunSummary
from zundacast.notify import install_log_redaction, notify_failure
from zundacast.review import maybe_review, maybe_review_audio
from zundacast.runlock import run_lock
from zundacast.runner import StageRunner
from zundacast.show import Environment, Show, load_show
from zundacast.storage import Store, check_store_outlives_run, open_store, resolve_store_url

Stage = Literal["collect", "rank", "summarize", "script", "synthesize", "upload"]


def _run_name() -> str:
    from prefect.runtime import flow_run

    params = flow_run.parameters
    show = params.get("show", "show")
    if isinstance(show, Show):
        show_id = show.show.id
    elif isinstance(show, dict):
        show_id = show.get("show", {}).get("id", "show")
    else:
        show_id = Path(str(show)).stem
    return f"{show_id}-{params.get('episode_date') or 'today'}"


@flow(name="daily-episode", flow_run_name=_run_name, validate_parameters=True)
def daily_episode(
    episode_date: dt.date | None = None,
    show: str | Show = "zundamon-ai",
    refresh: list[Stage] | None = None,
    store: str = "",
) -> RunSummary:
    """Make and publish one episode of `show` for `episode_date` (default: today in the show's timezone).

    `refresh` lists stages to recompute even if cached; the stages after them follow.
    `store` overrides where the episode is published (else ZUNDACAST_STORE, else the show file).
    """
    install_log_redaction()  # served and worker runs too: no secret reaches a log or Prefect's database
    env = Environment()
    show_cfg = show if isinstance(show, Show) else load_show(show)
    day = parse_episode_date(episode_date, show_cfg.show.timezone)
    configured_store = store or env.zundacast_store or show_cfg.storage.url
    store_url = resolve_store_url(configured_store)
    check_store_outlives_run(configured_store, store_url)  # on a worker: never into its temporary clone
    run = StageRunner(refresh or [], stale_checks={"upload": upload_staleness})
    try:
        store_of_run = open_store(store_url)
        with run_lock(store_of_run, show_cfg.show.id, day, say=run.say, run_name=_run_name()) as lock:
            run.guard = lock.check
            return make_episode(show_cfg, day, store_url, env, run)
    except BaseException as exc:
        if env.zundacast_webhook_url:
            notify_failure(env.zundacast_webhook_url.get_secret_value(), show_cfg.show.id, day,
                           run.current or "setup", f"{type(exc).__name__}: {exc}")
        raise


def make_episode(show: Show, day: dt.date, store_url: str, env: Environment,
                 run: "StageRunner") -> RunSummary:
    started = time.perf_counter()
    store = open_store(store_url)
    summary_writer = get_writer(show, env, stage="summarize")
    script_writer = get_writer(show, env, stage="script")
    if not env.llm_configured:
        run.say("no OPENAI_API_KEY or OPENAI_BASE_URL: the offline writer writes today's episode")

    snapshot = run("collect", collect, show, day, store_url, refresh="collect" in run.refreshed)
    ranking = run("rank", rank, snapshot, show, day, recent_history(store, show, day))
    publish_picks_table(ranking, show, day)  # from the result, so a cached rerun shows it too
    ranking = with_readable_picks(ranking)
    summaries = run.mapped("summarize", summarize, [pick.candidate for pick in ranking.picks],
                           llm=show.llm, writer_key=summary_writer.cache_key)
    ranking, summaries, script = gated_script(run, show, day, ranking, summaries, summary_writer.cache_key,
                                              script_writer.cache_key)
    script, ranking, summaries = maybe_review(run, show, day, ranking, summaries, script)  # [review]
    bundle = run("synthesize", synthesize, script, show.voice, show.audio, show.show, store_url)
    script, ranking, summaries, bundle = maybe_review_audio(  # [review] before = "upload"
        run, show, day, ranking, summaries, script, bundle, store_url)
    published = run("upload", upload, bundle, script, ranking, summaries, show, store_url)

    create_markdown_artifact(
        key=f"episode-{show.show.id}-{day.isoformat()}",
        markdown=(f"# {show.show.title} {day.isoformat()}\n\n"
                  f"- episode: {published.episode_url}\n- feed: {published.feed_url}\n"
                  f"- page: {published.page_url}\n- duration: {bundle.duration_s:.0f} s, "
                  f"{bundle.loudness_lufs:.1f} LUFS\n"),
        description="Where today's episode was published",
    )
    return RunSummary(
        episode=published.episode_key, date=day, stages=run.reports,
        duration_s=round(time.perf_counter() - started, 3),
        mp3=published.episode_url, feed=published.feed_url,
    )


def recent_history(store: Store, show: Show, day: dt.date) -> list[EpisodeRecord]:
    """The episodes before `day` that ranking must not repeat; a rerun of `day` sees the same list."""
    earlier = sorted((record for record in read_history(store) if record.date < day),
                     key=lambda record: record.date, reverse=True)
    return earlier[: show.rank.history_episodes]
