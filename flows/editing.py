"""The editor's part of the recipe: which picks become segments, and the script the gate lets through.

Plumbing beside `flows/daily_episode.py`: readable spares take the places of unreadable picks, and
articles the editorial gate (`zundacast.editorial`) still rejects after rewrites are replaced by spares
until the script passes, or the run fails naming the article and the rule.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from prefect.artifacts import create_markdown_artifact

from tasks.rank import promote_spares
from tasks.script import write_script
from tasks.summarize import summarize
from zundacast.editorial import check_script, rejected_articles, script_markdown
from zundacast.errors import EditorialGateError
from zundacast.models import Pick, Ranking, RuleFired, Script, Summary
from zundacast.scoring import unreadable_reason
from zundacast.show import Show

if TYPE_CHECKING:
    from zundacast.runner import StageRunner


def gated_script(run: StageRunner, show: Show, day: dt.date, ranking: Ranking, summaries: list[Summary],
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
    failures = check_script(script, [s.title for s in summaries], [s.spoken_title for s in summaries],
                            show.show.cohost, show.show.host)
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
