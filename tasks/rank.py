"""Rank: choose today's articles like a tech-news editor, and say why for every candidate.

Every candidate is scored (`zundacast.scoring`: popularity, relevance, recency, full text, times the
feed's weight). Readable candidates come first, best score first (ties broken by URL, so the ranking is
deterministic); every unreadable one (page refused, missing, not HTML, or text that is not prose:
`zundacast.scoring.unreadable_reason`) comes after them and is skipped with the reason, so it never
becomes a segment. A readable candidate is skipped when it was covered in one of the last
`rank.history_episodes` episodes before this date (same canonical URL or a near-identical title:
`zundacast.stories`), when it is the same story as one already chosen, or when its source already has
`rank.max_per_source` picks (the spares obey the same cap among themselves). The first `rank.picks`
survivors are the picks, the next `rank.spares` the spares (the flow's fallback when a pick cannot be
summarized). The table lists every candidate with its score parts, its verdict and the reason; the flow
publishes it as an artifact (`publish_picks_table`) from the ranking, so a cached rerun shows it too.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict

from prefect import task

from zundacast.dates import window
from zundacast.errors import NotEnoughCandidates
from zundacast.models import CandidateSnapshot, EpisodeRecord, Pick, Ranking, ScoredCandidate
from zundacast.scoring import WEIGHTS, score_parts, strongest_parts, unreadable_reason
from zundacast.show import Show
from zundacast.stage import stage_options
from zundacast.stories import TitleIndex, canonical_url

# ---- ranking -----------------------------------------------------------------------------------------

def rank_candidates(snapshot: CandidateSnapshot, show: Show, day: dt.date,
                    history: list[EpisodeRecord]) -> Ranking:
    """Score every candidate, choose `rank.picks` picks and `rank.spares` spares; see the module docstring."""
    start, end = window(day, show.show.timezone, show.schedule.cutoff, show.schedule.window_hours)
    covered = recent_coverage(history, day, show.rank.history_episodes)
    covered_urls = {url: position for position, (url, _, _) in enumerate(covered) if url}
    covered_titles = TitleIndex()
    for position, (_, title, _) in enumerate(covered):
        covered_titles.add(title, position)
    scored = []
    for candidate in snapshot.candidates:
        parts = score_parts(candidate, show, start, end)
        scored.append(ScoredCandidate(candidate=candidate, score=parts.pop("score"), parts=parts))
    # readable first: an unreadable candidate never takes a place a readable one could have
    scored.sort(key=lambda item: (bool(unreadable_reason(item.candidate)), -item.score, item.candidate.url))

    picks: list[Pick] = []
    spares: list[Pick] = []
    chosen_titles = TitleIndex()
    chosen_labels: list[str] = []  # "pick #n" / "spare #n", by position in chosen_titles
    per_source: dict[str, dict[str, int]] = {"pick": defaultdict(int), "spare": defaultdict(int)}
    cap = show.rank.max_per_source
    for item in scored:
        candidate = item.candidate
        why_not = unreadable_reason(candidate)
        if why_not:
            item.reason = f"unreadable: {why_not}"
            continue
        position = covered_urls.get(candidate.url)
        if position is not None:
            item.reason = f"covered on {covered[position][2]} (same URL)"
            continue
        position = covered_titles.find(candidate.title)
        if position is not None:
            item.reason = f"covered on {covered[position][2]} (same story: {covered[position][1]})"
            continue
        position = chosen_titles.find(candidate.title)
        if position is not None:
            item.reason = f"same story as {chosen_labels[position]}"
            continue
        open_slots = [(slot, chosen) for slot, chosen, size in (("pick", picks, show.rank.picks),
                                                                ("spare", spares, show.rank.spares))
                      if len(chosen) < size]
        if not open_slots:
            item.reason = f"below the picks and spares (score {item.score:.3f})"
            continue
        fitting = [(slot, chosen) for slot, chosen in open_slots if per_source[slot][candidate.source] < cap]
        if not fitting:
            item.reason = (f"{candidate.source} already has {cap} of the "
                           f"{' and '.join(slot + 's' for slot, _ in open_slots)} (rank.max_per_source)")
            continue
        slot, chosen = fitting[0]
        per_source[slot][candidate.source] += 1
        chosen.append(Pick(rank=0, candidate=candidate, score=item.score, parts=item.parts))  # numbered below
        label = f"{slot} #{len(chosen)}"
        chosen_titles.add(candidate.title, len(chosen_labels))
        chosen_labels.append(label)
        item.verdict = slot  # type: ignore[assignment]
        item.reason = f"{label}: {strongest_parts(item.parts)}"
    if not picks:
        unreadable = sum(1 for item in scored if item.reason.startswith("unreadable: "))
        raise NotEnoughCandidates(
            f"no article left to pick for {day.isoformat()}: {len(snapshot.candidates)} candidate(s), "
            f"{unreadable} unreadable (page refused, missing, not HTML, or not prose), the rest covered in "
            f"the last {show.rank.history_episodes} episodes or duplicates; add feeds to the show file or "
            "lower rank.history_episodes")
    for number, pick in enumerate([*picks, *spares], start=1):  # spares number on after the picks
        pick.rank = number
    return Ranking(picks=picks, spares=spares, table=scored)


def promote_spares(ranking: Ranking, failed_urls: set[str]) -> Ranking:
    """The ranking after picks failed downstream (no text, summary failed): spares take their places in
    order, and the episode order is renumbered. Failed spares are dropped too."""
    survivors = [pick for pick in ranking.picks if pick.candidate.url not in failed_urls]
    spares = [spare for spare in ranking.spares if spare.candidate.url not in failed_urls]
    missing = len(ranking.picks) - len(survivors)
    picks = [*survivors, *spares[:missing]]
    rest = spares[missing:]
    renumbered = [pick.model_copy(update={"rank": number}) for number, pick in enumerate([*picks, *rest], 1)]
    return ranking.model_copy(update={"picks": renumbered[:len(picks)], "spares": renumbered[len(picks):]})


def recent_coverage(history: list[EpisodeRecord], day: dt.date, episodes: int) -> list[tuple[str, str, str]]:
    """(canonical URL, title, date) of every pick in the last `episodes` episodes before `day`.

    Episodes on or after `day` are ignored: a rerun of a date must not exclude its own earlier picks."""
    earlier = sorted((record for record in history if record.date < day), key=lambda r: r.date, reverse=True)
    covered = []
    for record in earlier[:episodes]:
        for pick in record.picks:
            url = pick.get("url", "")
            title = pick.get("title", "")
            covered.append((canonical_url(url) if url else "", title, record.date.isoformat()))
    return covered


def table_rows(ranking: Ranking) -> list[dict[str, object]]:
    """The artifact's rows: every candidate, its score parts, verdict and reason."""
    rows = []
    for item in ranking.table:
        rows.append({
            "verdict": item.verdict,
            "score": round(item.score, 3),
            **{name: round(item.parts.get(name, 0.0), 2) for name in (*WEIGHTS, "source_weight")},
            "title": item.candidate.title,
            "source": item.candidate.source,
            "bookmarks": item.candidate.bookmarks if item.candidate.bookmarks is not None else "",
            "reason": item.reason,
            "url": item.candidate.url,
        })
    return rows


def artifact_key(show_id: str, day: dt.date) -> str:
    """`picks-<show>-<date>`, lowercase letters, digits and dashes only (Prefect's rule for keys)."""
    raw = f"picks-{show_id}-{day.isoformat()}".lower()
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", raw)).strip("-")


def publish_picks_table(ranking: Ranking, show: Show, day: dt.date) -> None:
    """The table artifact explaining every score; the flow calls it with the (possibly cached) ranking."""
    from prefect.artifacts import create_table_artifact

    create_table_artifact(
        table=table_rows(ranking), key=artifact_key(show.show.id, day),
        description=(f"{show.show.title} {day.isoformat()}: every candidate with its score parts "
                     "(score = source_weight × (0.35·popularity + 0.30·relevance + 0.20·recency "
                     "+ 0.15·fulltext)), its verdict and why; unreadable candidates come last"),
    )


@task(name="rank", **stage_options())
def rank(snapshot: CandidateSnapshot, show: Show, day: dt.date, history: list[EpisodeRecord]) -> Ranking:
    """Prefect task: `rank_candidates`, logging the picks (the flow publishes the table artifact)."""
    from prefect import get_run_logger

    ranking = rank_candidates(snapshot, show, day, history)
    logger = get_run_logger()
    for pick in ranking.picks:
        logger.info("pick #%d (%.3f) %s — %s", pick.rank, pick.score, pick.candidate.title,
                    pick.candidate.source)
    if len(ranking.picks) < show.rank.picks:
        logger.warning("only %d of %d picks: not enough distinct, uncovered, readable candidates",
                       len(ranking.picks), show.rank.picks)
    return ranking
