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

from tasks.collect import collect
from tasks.rank import promote_spares, publish_picks_table, rank
from tasks.script import write_script
from tasks.summarize import summarize
from tasks.synthesize import synthesize
from tasks.upload import read_history, upload, upload_staleness
from zundacast.dates import parse_episode_date
from zundacast.editorial import check_script, rejected_articles, script_markdown
from zundacast.errors import EditorialGateError
from zundacast.llm import get_writer
from zundacast.models import EpisodeRecord, Pick, Ranking, RuleFired, RunSummary, Script, Summary
from zundacast.notify import install_log_redaction, notify_failure
from zundacast.runlock import run_lock
from zundacast.runner import StageRunner
from zundacast.scoring import unreadable_reason
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
    bundle = run("synthesize", synthesize, script, show.voice, show.audio, show.show, store_url)
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


def gated_script(run: "StageRunner", show: Show, day: dt.date, ranking: Ranking, summaries: list[Summary],
                 summary_key: str, script_key: str) -> tuple[Ranking, list[Summary], Script]:
    """The script once every article passes the editorial gate and the whole script does.

    An article the gate still rejects after rewrites and the offline writer is replaced by the next
    spare (summarized, then the script is written again); with no spare left, or a script that fails
    as a whole, the run fails naming the article and the rule, and nothing is published. The script
    artifact is made here from the result, so a cached rerun leaves it too.
    """
    replaced: list[RuleFired] = []
    while True:
        rejected = rejected_articles(summaries)
        script = None
        if not rejected:
            script = run("script", write_script, day, summaries, show.show, show.pronunciation, show.llm,
                         script_key)
            rejected = rejected_articles(summaries, script)
        if not rejected:
            break
        promoted = promote_spares(ranking, set(rejected))
        titles = {pick.candidate.url: pick.candidate.title for pick in ranking.picks}
        if len(promoted.picks) < len(ranking.picks):
            url, rule = next(iter(rejected.items()))
            raise EditorialGateError(
                f"article {titles.get(url, url)!r} ({url}) fails the editorial gate "
                f"({rule.rule}, {rule.field}: {rule.detail}) and no readable spare is left to replace it: "
                "nothing was published "
                "(add feeds or spares to the show file, or rerun with --refresh collect)")
        replaced += [rule.model_copy(update={"action": "replaced by spare"}) for rule in rejected.values()]
        names = ", ".join(titles.get(url, url) for url in rejected)
        run.say(f"editorial gate: replacing {names} with spares")
        ranking = promoted
        done = {summary.url: summary for summary in summaries}
        fresh = [pick.candidate for pick in ranking.picks if pick.candidate.url not in done]
        done.update({summary.url: summary for summary in run.mapped(
            "summarize", summarize, fresh, llm=show.llm, writer_key=summary_key)})
        summaries = [done[pick.candidate.url] for pick in ranking.picks]
    assert script is not None  # the loop leaves only with a script no rule rejects
    quality = script.quality.model_copy(update={"rules_fired": [*replaced, *script.quality.rules_fired]})
    script = script.model_copy(update={"quality": quality})
    failures = check_script(script, [s.title for s in summaries], [s.spoken_title for s in summaries])
    create_markdown_artifact(
        key=f"script-{show.show.id}-{day.isoformat()}".lower(),
        markdown=script_markdown(script, failures, summaries),
        description=f"{show.show.title} {day.isoformat()}: script, quality, rules fired, token usage",
    )
    if failures:
        raise EditorialGateError(
            f"the script for {day.isoformat()} fails the editorial gate: {failures[0]}"
            + (f" (and {len(failures) - 1} more; see the script artifact)" if len(failures) > 1 else "")
            + ": nothing was published")
    return ranking, summaries, script


def with_readable_picks(ranking: Ranking) -> Ranking:
    """Readable spares take the places of picks whose page could not be fetched or held too little
    text, as many as there are; a pick no spare can replace stays, told from its feed's summary."""

    def unreadable(pick: Pick) -> bool:  # the rank stage's rule (it never picks these when it can help it)
        return bool(unreadable_reason(pick.candidate))

    readable_spares = sum(not unreadable(spare) for spare in ranking.spares)
    failed = [pick.candidate.url for pick in ranking.picks if unreadable(pick)][:readable_spares]
    failed_spares = [spare.candidate.url for spare in ranking.spares if unreadable(spare)]
    return promote_spares(ranking, {*failed, *failed_spares})


def recent_history(store: Store, show: Show, day: dt.date) -> list[EpisodeRecord]:
    """The episodes before `day` that ranking must not repeat; a rerun of `day` sees the same list."""
    earlier = sorted((record for record in read_history(store) if record.date < day),
                     key=lambda record: record.date, reverse=True)
    return earlier[: show.rank.history_episodes]
