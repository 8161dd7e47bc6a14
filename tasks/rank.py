"""Rank: choose today's articles like a tech-news editor, and say why for every candidate.

Every candidate gets a score from four parts, each in [0, 1], weighted and then multiplied by the
weight of the feed it came from:

    score = source_weight × (0.35·popularity + 0.30·relevance + 0.20·recency + 0.15·fulltext)

| part | measure (each part in [0, 1]) | weight |
| --- | --- | --- |
| popularity | log(1 + bookmarks) / log(1 + 500) (no count: 0.4), + 0.15 per extra feed with it | 0.35 |
| relevance | `rank.topics` hits: 2 points in the title, else 1 in summary/text; points / 4 | 0.30 |
| recency | place of the publication (or first-seen) time in the window: 0 start, 1 end | 0.20 |
| fulltext | 1 when the main text was extracted, else 0 | 0.15 |
| source_weight | the feed's `weight` (the highest of the feeds that carried the story) | × |

500 Hatena bookmarks is a hot story (full popularity); a story from a feed that carries no counts
gets 0.4 (about a dozen bookmarks): unknown is not unpopular. Topics match case-insensitively, ASCII
topics as whole words with an optional plural "s" ("AI" does not hit "said"). An item without any
date scores recency 0.5.

Then, best score first (ties broken by URL, so the ranking is deterministic), a candidate is
skipped when it was covered in one of the last `rank.history_episodes` episodes before this date
(same canonical URL or a near-identical title), when it is the same story as one already chosen
(near-identical title), or when its source already has `rank.max_per_source` picks (the spares
obey the same cap among themselves). The first `rank.picks` survivors are the picks, the next
`rank.spares` the spares (the flow's fallback when a pick cannot be summarized). The table lists
every candidate with its score parts, its verdict and the reason.

Two titles are "near-identical" when their normalized forms (NFKC, lowercase, no punctuation or
spaces, no trailing " | Site name") have a `difflib.SequenceMatcher` ratio of at least 0.85 and
carry the same numbers (so "Python 3.13" and "Python 3.14" stay different stories).
"""

from __future__ import annotations

import datetime as dt
import math
import re
import unicodedata
from collections import Counter, defaultdict
from difflib import SequenceMatcher
from functools import lru_cache
from itertools import chain

from prefect import task

from zundacast.dates import window
from zundacast.errors import NotEnoughCandidates
from zundacast.models import Candidate, CandidateSnapshot, EpisodeRecord, Pick, Ranking, ScoredCandidate
from zundacast.show import Show
from zundacast.stage import stage_options
from zundacast.web import canonical_url

WEIGHTS: dict[str, float] = {"popularity": 0.35, "relevance": 0.30, "recency": 0.20, "fulltext": 0.15}
POPULAR_BOOKMARKS = 500  # this many bookmarks scores full popularity
UNKNOWN_POPULARITY = 0.4  # feeds without counts (Zenn, arXiv ...): neither hot nor ignored
EXTRA_SOURCE_BONUS = 0.15  # popularity added per extra feed carrying the same story
TITLE_POINTS, BODY_POINTS, RELEVANCE_FULL = 2, 1, 4
BODY_CHARS = 4000  # relevance looks at the summary and the start of the text only
SAME_STORY_RATIO = 0.85


# ---- score -------------------------------------------------------------------------------------------

def score_parts(candidate: Candidate, show: Show, start: dt.datetime, end: dt.datetime) -> dict[str, float]:
    """The parts of `candidate`'s score (see the module docstring) and the total under "score"."""
    extra_sources = max(len(set(candidate.sources)) - 1, 0)
    if candidate.bookmarks is None:
        counted = UNKNOWN_POPULARITY
    else:
        counted = math.log1p(max(candidate.bookmarks, 0)) / math.log1p(POPULAR_BOOKMARKS)
    popularity = min(1.0, counted + EXTRA_SOURCE_BONUS * extra_sources)
    relevance = topic_points(candidate, tuple(show.rank.topics)) / RELEVANCE_FULL
    moment = candidate.published or candidate.first_seen
    span = (end - start).total_seconds()
    recency = 0.5 if moment is None or span <= 0 else (moment - start).total_seconds() / span
    fulltext = 1.0 if candidate.text and not candidate.extraction_error else 0.0
    parts = {
        "popularity": popularity,
        "relevance": min(1.0, relevance),
        "recency": min(1.0, max(0.0, recency)),
        "fulltext": fulltext,
    }
    weight = source_weight(candidate, show)
    parts = {name: round(value, 4) for name, value in parts.items()}
    parts["source_weight"] = weight
    parts["score"] = round(weight * sum(WEIGHTS[name] * parts[name] for name in WEIGHTS), 6)
    return parts


def source_weight(candidate: Candidate, show: Show) -> float:
    weights = {feed.name: feed.weight for feed in show.feeds}
    names = [candidate.source, *candidate.sources]
    return max((weights[name] for name in names if name in weights), default=1.0)


def topic_points(candidate: Candidate, topics: tuple[str, ...]) -> int:
    body = f"{candidate.feed_summary}\n{candidate.text[:BODY_CHARS]}"
    points = 0
    for topic in topics:
        pattern = topic_pattern(topic)
        if pattern.search(candidate.title):
            points += TITLE_POINTS
        elif pattern.search(body):
            points += BODY_POINTS
    return points


@lru_cache(maxsize=512)
def topic_pattern(topic: str) -> re.Pattern[str]:
    """ASCII topics match as whole words ("AI" not in "said"; "model" also as "models"); others as text."""
    escaped = re.escape(topic.strip())
    if topic.isascii():
        return re.compile(rf"(?<![A-Za-z0-9]){escaped}(?:e?s)?(?![A-Za-z0-9])", re.IGNORECASE)
    return re.compile(escaped, re.IGNORECASE)


# ---- same story --------------------------------------------------------------------------------------

_SITE_SUFFIX = re.compile(r"\s*(?:\||｜|\s[-–—]\s)\s*[^|｜]{1,30}$")
_NUMBERS = re.compile(r"\d+(?:[.,]\d+)*")


def normalize_title(title: str) -> str:
    """NFKC, lowercase, no trailing " | Site name", no punctuation, symbols or spaces."""
    text = unicodedata.normalize("NFKC", title).strip()
    stripped = _SITE_SUFFIX.sub("", text)
    if len(stripped) >= 10:
        text = stripped
    return "".join(ch for ch in text.lower() if unicodedata.category(ch)[0] in "LN")


def same_story(title_a: str, title_b: str, threshold: float = SAME_STORY_RATIO) -> bool:
    """True when two titles name the same story (near-identical after normalizing, same numbers)."""
    a, b = normalize_title(title_a), normalize_title(title_b)
    return _similar_normalized(a, b, _numbers(title_a), _numbers(title_b), threshold)


def _numbers(title: str) -> frozenset[str]:
    return frozenset(_NUMBERS.findall(unicodedata.normalize("NFKC", title)))


def _similar_normalized(a: str, b: str, numbers_a: frozenset[str], numbers_b: frozenset[str],
                        threshold: float = SAME_STORY_RATIO) -> bool:
    if not a or not b:
        return False
    if a == b:
        return True
    if numbers_a != numbers_b:
        return False
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    return (matcher.real_quick_ratio() >= threshold and matcher.quick_ratio() >= threshold
            and matcher.ratio() >= threshold)


class TitleIndex:
    """Finds an earlier title naming the same story without comparing every pair (character trigrams)."""

    def __init__(self) -> None:
        self._entries: list[tuple[str, frozenset[str], int]] = []  # normalized, numbers, key
        self._grams: dict[str, list[int]] = defaultdict(list)

    def find(self, title: str) -> int | None:
        """The key of an indexed title naming the same story, or None."""
        normalized, numbers = normalize_title(title), _numbers(title)
        if not normalized:
            return None
        grams = _trigrams(normalized)
        shared = Counter(chain.from_iterable(self._grams.get(gram, ()) for gram in grams))
        # near-identical strings share most trigrams; only those are worth a SequenceMatcher
        needed = max(1, int(len(grams) * 0.5))
        close = sorted((p for p, count in shared.items() if count >= needed), key=lambda p: (-shared[p], p))
        for position in close:
            other, other_numbers, key = self._entries[position]
            if _similar_normalized(normalized, other, numbers, other_numbers):
                return key
        return None

    def add(self, title: str, key: int) -> None:
        normalized = normalize_title(title)
        position = len(self._entries)
        self._entries.append((normalized, _numbers(title), key))
        for gram in _trigrams(normalized):
            self._grams[gram].append(position)


def _trigrams(text: str) -> set[str]:
    if len(text) < 3:
        return {text}
    return {text[i:i + 3] for i in range(len(text) - 2)}


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
    scored.sort(key=lambda item: (-item.score, item.candidate.url))

    picks: list[Pick] = []
    spares: list[Pick] = []
    chosen_titles = TitleIndex()
    chosen_labels: list[str] = []  # "pick #n" / "spare #n", by position in chosen_titles
    per_source: dict[str, dict[str, int]] = {"pick": defaultdict(int), "spare": defaultdict(int)}
    cap = show.rank.max_per_source
    for item in scored:
        candidate = item.candidate
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
        raise NotEnoughCandidates(
            f"no article left to pick for {day.isoformat()}: {len(snapshot.candidates)} candidate(s), "
            f"all covered in the last {show.rank.history_episodes} episodes or duplicates; "
            "add feeds to the show file or lower rank.history_episodes")
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


def strongest_parts(parts: dict[str, float]) -> str:
    shares = sorted(((WEIGHTS[name] * parts[name], name) for name in WEIGHTS), reverse=True)
    return ", ".join(f"{name} {parts[name]:.2f}" for share, name in shares[:2] if share > 0) or "no signal"


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


@task(name="rank", **stage_options())
def rank(snapshot: CandidateSnapshot, show: Show, day: dt.date, history: list[EpisodeRecord]) -> Ranking:
    """Prefect task: `rank_candidates` plus a table artifact explaining every score."""
    from prefect import get_run_logger
    from prefect.artifacts import create_table_artifact

    ranking = rank_candidates(snapshot, show, day, history)
    create_table_artifact(
        table=table_rows(ranking), key=artifact_key(show.show.id, day),
        description=(f"{show.show.title} {day.isoformat()}: every candidate with its score parts "
                     "(score = source_weight × (0.35·popularity + 0.30·relevance + 0.20·recency "
                     "+ 0.15·fulltext)) and why it was or was not picked"),
    )
    logger = get_run_logger()
    for pick in ranking.picks:
        logger.info("pick #%d (%.3f) %s — %s", pick.rank, pick.score, pick.candidate.title,
                    pick.candidate.source)
    if len(ranking.picks) < show.rank.picks:
        logger.warning("only %d of %d picks: not enough distinct, uncovered candidates",
                       len(ranking.picks), show.rank.picks)
    return ranking
