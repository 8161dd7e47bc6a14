"""Story matching: which feed items and past picks are the same story.

- **Same URL.** `canonical_url` names a story: lowercased scheme and host, no default port, no fragment,
  no tracking parameters (courlan's list), remaining parameters sorted.
- **Near-identical title.** Two titles name the same story when their normalized forms (NFKC, lowercase,
  no punctuation or spaces, no trailing " | Site name") have a `difflib.SequenceMatcher` ratio of at least
  0.85 and carry the same numbers (so "Python 3.13" and "Python 3.14" stay different stories).

`TitleIndex` finds an earlier title naming the same story without comparing every pair, so a 20,000-item
day stays near-linear: equal normalized titles meet in a dict; for the rest, rensa's MinHash LSH (Rust)
over character trigrams proposes the few titles that look alike, rapidfuzz's Indel similarity (C) drops
those that cannot reach 0.85 (it is an upper bound of SequenceMatcher's ratio, whose matching blocks are
a common subsequence), and SequenceMatcher itself decides, so the verdict is the one above. With 32 bands
of 4 rows a pair is proposed with probability 1 - (1 - J⁴)³², J being the Jaccard similarity of the two
titles' trigram sets: 0.87 at J = 0.5, 0.99 at 0.6, above 0.9998 from 0.7. A story carried again with a site
name, a tag or a particle changed is at 0.7 and more; a short title (16 characters or fewer) with one
character changed can fall to 0.45, and measured 93% of those were found; the trigram index before it found
them all, at 100 s for 20,000 items. benchmarks/bench_dedup.py measures time and agreement with it.

`merge_same_stories` turns a day's feed items into one candidate per story.
"""

from __future__ import annotations

import re
import unicodedata
from difflib import SequenceMatcher
from urllib.parse import urlsplit, urlunsplit

from courlan import normalize_url
from rapidfuzz import process
from rapidfuzz.distance import Indel
from rensa import RMinHash, RMinHashLSH

from zundacast.models import Candidate
from zundacast.show import Show

SAME_STORY_RATIO = 0.85
LSH_PERMUTATIONS, LSH_BANDS, LSH_SEED = 128, 32, 20250724  # 32 bands of 4 rows (see the module docstring)
_SITE_SUFFIX = re.compile(r"\s*(?:\||｜|\s[-–—]\s)\s*[^|｜]{1,30}$")
_NUMBERS = re.compile(r"\d+(?:[.,]\d+)*")
_NOT_LETTER_OR_NUMBER = re.compile(r"[\W_]+")  # exactly the characters outside Unicode's L* and N* categories


# ---- URLs --------------------------------------------------------------------------------------------

def canonical_url(url: str) -> str:
    """The URL that names a story: lowercased scheme and host, no default port, no fragment, and no
    tracking parameters (utm_*, fbclid, gclid, ref, ...: courlan's list); remaining parameters sorted."""
    url = url.strip()
    try:
        normalized = normalize_url(url, strict=False, trailing_slash=True)
    except (ValueError, AttributeError):
        normalized = url
    parts = urlsplit(normalized)
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", parts.query, ""))


# ---- titles ------------------------------------------------------------------------------------------

def normalize_title(title: str) -> str:
    """NFKC, lowercase, no trailing " | Site name", no punctuation, symbols or spaces."""
    text = unicodedata.normalize("NFKC", title).strip()
    stripped = _SITE_SUFFIX.sub("", text)
    if len(stripped) >= 10:
        text = stripped
    return _NOT_LETTER_OR_NUMBER.sub("", text.lower())


def title_numbers(title: str) -> frozenset[str]:
    return frozenset(_NUMBERS.findall(unicodedata.normalize("NFKC", title)))


def same_story(title_a: str, title_b: str, threshold: float = SAME_STORY_RATIO) -> bool:
    """True when two titles name the same story (near-identical after normalizing, same numbers)."""
    a, b = normalize_title(title_a), normalize_title(title_b)
    return similar_normalized(a, b, title_numbers(title_a), title_numbers(title_b), threshold)


def similar_normalized(a: str, b: str, numbers_a: frozenset[str], numbers_b: frozenset[str],
                       threshold: float = SAME_STORY_RATIO) -> bool:
    """Equal normalized titles, or the same numbers and a SequenceMatcher ratio of at least `threshold`."""
    if not a or not b:
        return False
    if a == b:
        return True
    if numbers_a != numbers_b:
        return False
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    return (matcher.real_quick_ratio() >= threshold and matcher.quick_ratio() >= threshold
            and matcher.ratio() >= threshold)


def _signature(normalized: str) -> RMinHash:
    signature = RMinHash(num_perm=LSH_PERMUTATIONS, seed=LSH_SEED)
    signature.update([normalized[i:i + 3] for i in range(max(1, len(normalized) - 2))])
    return signature


class TitleIndex:
    """Titles added under a key; `find` returns the key of one naming the same story (see the module doc)."""

    def __init__(self) -> None:
        self._entries: list[tuple[str, frozenset[str], int]] = []  # normalized, numbers, key
        self._texts: list[str] = []  # the normalized titles alone, by position
        self._exact: dict[str, int] = {}  # normalized title -> first position
        self._lsh = RMinHashLSH(threshold=0.5, num_perm=LSH_PERMUTATIONS, num_bands=LSH_BANDS)
        self._last: tuple[str, str, RMinHash | None] = ("", "", None)  # title, normalized, signature: find's,
        # reused by the add that follows

    def __len__(self) -> int:
        return len(self._entries)

    def find(self, title: str) -> int | None:
        """The key of an indexed title naming the same story, or None (the most similar one wins)."""
        normalized = self._normalized(title)
        if not normalized:
            return None
        position = self._exact.get(normalized)
        if position is not None:
            return self._entries[position][2]
        signature = self._signature(title, normalized)
        proposed = self._lsh.query(signature)
        if not proposed:
            return None
        texts = {position: self._texts[position] for position in proposed}
        close = process.extract(normalized, texts, scorer=Indel.normalized_similarity, limit=None,
                                score_cutoff=SAME_STORY_RATIO - 1e-9)
        numbers = title_numbers(title)
        for _, position in sorted((-score, position) for _, score, position in close):
            other, other_numbers, key = self._entries[position]
            if similar_normalized(normalized, other, numbers, other_numbers):
                return key
        return None

    def add(self, title: str, key: int) -> None:
        normalized = self._normalized(title)
        if not normalized:
            return
        position = len(self._entries)
        self._entries.append((normalized, title_numbers(title), key))
        self._texts.append(normalized)
        if normalized in self._exact:
            return  # an equal title is indexed already and is found first
        self._exact[normalized] = position
        self._lsh.insert(position, self._signature(title, normalized))

    def _normalized(self, title: str) -> str:
        if self._last[0] != title:
            self._last = (title, normalize_title(title), None)
        return self._last[1]

    def _signature(self, title: str, normalized: str) -> RMinHash:
        signature = self._last[2] if self._last[0] == title else None
        if signature is None:
            signature = _signature(normalized)
            self._last = (title, normalized, signature)
        return signature


# ---- candidates --------------------------------------------------------------------------------------

def merge_same_stories(candidates: list[Candidate], show: Show, by_title: bool = True) -> list[Candidate]:
    """One candidate per story: same canonical URL or near-identical title; order of first appearance."""
    weights = {feed.name: feed.weight for feed in show.feeds}
    stories: list[Candidate] = []
    by_url: dict[str, int] = {}
    titles = TitleIndex()
    for candidate in candidates:
        position = by_url.get(candidate.url)
        if position is None and by_title:
            position = titles.find(candidate.title)
        if position is None:
            by_url[candidate.url] = len(stories)
            if by_title:
                titles.add(candidate.title, len(stories))
            stories.append(candidate)
            continue
        stories[position] = merge_pair(stories[position], candidate, weights)
        by_url[candidate.url] = position
    return stories


def merge_pair(first: Candidate, second: Candidate, weights: dict[str, float]) -> Candidate:
    """The same story twice: the better-weighted feed's entry (or the one with text) leads; counts merge."""
    def rank_key(c: Candidate) -> tuple[bool, float]:
        return (bool(c.text and not c.extraction_error), weights.get(c.source, 1.0))

    lead, other = (second, first) if rank_key(second) > rank_key(first) else (first, second)
    counts = [c.bookmarks for c in (first, second) if c.bookmarks is not None]
    dates = [c.published for c in (first, second) if c.published is not None]
    seen = [c.first_seen for c in (first, second) if c.first_seen is not None]
    return lead.model_copy(update={
        "sources": list(dict.fromkeys([*lead.sources, *other.sources])),
        "bookmarks": max(counts) if counts else None,
        "published": min(dates) if dates else None,
        "first_seen": min(seen) if seen else None,
        "feed_summary": max((lead.feed_summary, other.feed_summary), key=len),
    })
