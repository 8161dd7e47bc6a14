"""Scoring: how much a candidate deserves a place in today's episode, in parts an editor can read.

    score = source_weight × (0.35·popularity + 0.30·relevance + 0.20·recency + 0.15·fulltext)

| part | measure (each part in [0, 1]) | weight |
| --- | --- | --- |
| popularity | log(1 + bookmarks) / log(1 + 500) (no count: 0.4), + 0.15 per extra feed with it | 0.35 |
| relevance | `rank.topics` hits: 2 points in the title, else 1 in summary/text; points / 4 | 0.30 |
| recency | place of the publication (or first-seen) time in the window: 0 start, 1 end | 0.20 |
| fulltext | 1 when readable main text was extracted, else 0 | 0.15 |
| source_weight | the feed's `weight` (the highest of the feeds that carried the story) | × |

500 Hatena bookmarks is a hot story (full popularity); a story from a feed that carries no counts
gets 0.4 (about a dozen bookmarks): unknown is not unpopular. Topics match case-insensitively, ASCII
topics as whole words with an optional plural "s" ("AI" does not hit "said"). An item without any
date scores recency 0.5.

Readability is not a part of the score but a gate: `unreadable_reason` says why a candidate cannot
become a segment (its page was refused, missing, not HTML, or its text is not prose: collect records
that in `extraction_error`), and ranking puts every such candidate after every readable one.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from functools import lru_cache

from zundacast.models import Candidate
from zundacast.show import Show

WEIGHTS: dict[str, float] = {"popularity": 0.35, "relevance": 0.30, "recency": 0.20, "fulltext": 0.15}
POPULAR_BOOKMARKS = 500  # this many bookmarks scores full popularity
UNKNOWN_POPULARITY = 0.4  # feeds without counts (Zenn, arXiv ...): neither hot nor ignored
EXTRA_SOURCE_BONUS = 0.15  # popularity added per extra feed carrying the same story
TITLE_POINTS, BODY_POINTS, RELEVANCE_FULL = 2, 1, 4
BODY_CHARS = 4000  # relevance looks at the summary and the start of the text only


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
    fulltext = 0.0 if unreadable_reason(candidate) else 1.0
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


def unreadable_reason(candidate: Candidate) -> str:
    """Why the candidate cannot become a segment ("" when its main text was extracted and is prose)."""
    if candidate.extraction_error:
        return candidate.extraction_error
    if not candidate.text.strip():
        return "no main text (the page was not fetched)"
    return ""


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


def strongest_parts(parts: dict[str, float]) -> str:
    shares = sorted(((WEIGHTS[name] * parts[name], name) for name in WEIGHTS), reverse=True)
    return ", ".join(f"{name} {parts[name]:.2f}" for share, name in shares[:2] if share > 0) or "no signal"
