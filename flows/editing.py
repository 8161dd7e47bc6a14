"""The editor's part of the recipe: which picks become segments, and the script the gate lets through.

Plumbing beside `flows/daily_episode.py`: readable spares take the places of unreadable picks, and
articles the editorial gate (`zundacast.editorial`) still rejects after rewrites are replaced by spares,
and a script too short for its length band (on a day of short articles) gets spares as extra segments,
until the script passes, or the run fails naming the article or the rule and, for length, the band.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prefect.artifacts import create_markdown_artifact

from tasks.rank import promote_spares
from tasks.script import write_script
from tasks.summarize import summarize
from zundacast.editorial import Failure, check_script, rejected_articles, script_markdown
from zundacast.errors import EditorialGateError
from zundacast.llm.prompts import episode_bounds
from zundacast.models import Pick, Ranking, RuleFired, Script, Summary
from zundacast.scoring import unreadable_reason
from zundacast.show import Show

if TYPE_CHECKING:
    from zundacast.runner import StageRunner


def gated_script(run: StageRunner, show: Show, day: dt.date, ranking: Ranking, summaries: list[Summary],
                 summary_key: str, script_key: str) -> tuple[Ranking, list[Summary], Script]:
    """The script once every article passes the editorial gate and the whole script does.

    An article the gate still rejects after rewrites and the offline writer is replaced by the next
    spare (summarized, then the script is written again). A script that fails only on being shorter
    than its length band gets the next readable spare as one more segment, again and again while that
    brings it nearer the band (the show's picks count is a target, not a cap, here). With no spare
    left, or a script that fails otherwise, the run fails naming the article or the rule, and nothing
    is published. The script artifact is made here from the result, so a cached rerun leaves it too.
    """
    fired: list[RuleFired] = []  # what the gate did to the picks: replaced, or topped up
    shortfall: Shortfall | None = None  # the last too-short script's measure, while topping up
    while True:
        rejected = rejected_articles(summaries)
        script = None
        if not rejected:
            script = run("script", write_script, day, summaries, show.show, show.pronunciation, show.llm,
                         script_key)
            rejected = rejected_articles(summaries, script)
        if not rejected:
            assert script is not None
            failures = check_script(script, [s.title for s in summaries], [s.spoken_title for s in summaries],
                                    show.show.cohost, show.show.host)
            short = too_short(script, failures, len(summaries))
            if short is None or not ranking.spares or not nearer(short, shortfall):
                break
            shortfall = short
            spare = ranking.spares[0].candidate
            fired.append(RuleFired(rule="length", field="script", article=spare.url, action="spare added",
                                   detail=f"{short}: the spare {spare.title!r} added as one more segment"))
            run.say(f"editorial gate: {short}; adding the spare {spare.title} as one more segment")
            ranking = with_next_spare(ranking)
        else:
            promoted = promote_spares(ranking, set(rejected))
            titles = {pick.candidate.url: pick.candidate.title for pick in ranking.picks}
            if len(promoted.picks) < len(ranking.picks):
                url, rule = next(iter(rejected.items()))
                if shortfall is not None:  # a spare added for length failed itself: the day stays short
                    raise EditorialGateError(
                        f"the script for {day.isoformat()} is too short: {shortfall}, and the spare "
                        f"{titles.get(url, url)!r} added for length fails the editorial gate ({rule.rule}) "
                        f"with no readable spare left: nothing was published "
                        "(add feeds or spares to the show file, or rerun with --refresh collect)")
                raise EditorialGateError(
                    f"article {titles.get(url, url)!r} ({url}) fails the editorial gate "
                    f"({rule.rule}, {rule.field}: {rule.detail}) and no readable spare is left to replace "
                    "it: nothing was published "
                    "(add feeds or spares to the show file, or rerun with --refresh collect)")
            fired += [rule.model_copy(update={"action": "replaced by spare"}) for rule in rejected.values()]
            names = ", ".join(titles.get(url, url) for url in rejected)
            run.say(f"editorial gate: replacing {names} with spares")
            ranking = promoted
        done = {summary.url: summary for summary in summaries}
        fresh = [pick.candidate for pick in ranking.picks if pick.candidate.url not in done]
        done.update({summary.url: summary for summary in run.mapped(
            "summarize", summarize, fresh, llm=show.llm, writer_key=summary_key)})
        summaries = [done[pick.candidate.url] for pick in ranking.picks]
    quality = script.quality.model_copy(update={"rules_fired": [*fired, *script.quality.rules_fired]})
    script = script.model_copy(update={"quality": quality})
    create_markdown_artifact(
        key=f"script-{show.show.id}-{day.isoformat()}".lower(),
        markdown=script_markdown(script, failures, summaries),
        description=f"{show.show.title} {day.isoformat()}: script, quality, rules fired, token usage",
    )
    short = too_short(script, failures, len(summaries))
    if short is not None:
        why = ("no readable spare is left to add" if not ranking.spares else
               f"adding a spare took it further from its band ({shortfall}): the floor for one more "
               "article rose more than a short article adds")
        raise EditorialGateError(
            f"the script for {day.isoformat()} fails the editorial gate: it is too short: {short}, and "
            f"{why}: nothing was published (add feeds or spares to the show file)")
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


@dataclass(frozen=True)
class Shortfall:
    """A script whose only failure is being shorter than the length band for its number of articles."""

    articles: int
    chars: int
    low: int
    high: int

    @property
    def gap(self) -> int:
        return self.low - self.chars

    def __str__(self) -> str:
        return (f"{self.articles} articles make {self.chars} characters, below the {self.low}-{self.high} "
                f"band for {self.articles} articles")


def too_short(script: Script, failures: list[Failure], articles: int) -> Shortfall | None:
    """The shortfall when the script fails the gate only on its whole length, and by being short."""
    if not failures or any((f.rule, f.field) != ("length", "script") for f in failures):
        return None
    chars = sum(len(sentence.text) for section in script.sections for sentence in section.sentences)
    low, high = episode_bounds(articles)  # the band check_script applies to this many articles
    return Shortfall(articles, chars, low, high) if chars < low else None


def nearer(short: Shortfall, before: Shortfall | None) -> bool:
    """Whether adding articles still helps: the script came nearer its band than with one article fewer.

    The band's floor stays put past four articles (episode_chars); should it ever grow faster than a
    short article adds, one more spare would only leave the script further short, so the gate stops."""
    return before is None or short.gap < before.gap


def with_next_spare(ranking: Ranking) -> Ranking:
    """The ranking with its first spare made one more pick, told last (the ranks stay in order)."""
    return ranking.model_copy(update={"picks": [*ranking.picks, ranking.spares[0]],
                                      "spares": ranking.spares[1:]})
