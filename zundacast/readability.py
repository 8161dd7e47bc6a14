"""Is an extracted text an article a host can talk about? Measured on content, not on length alone.

A page can be long and say nothing (6 MB of one repeated character, a navigation list, a base64 blob,
one paragraph pasted twenty times) or short and be a real news brief (250 characters, three sentences).
`assess` measures:

- chars: characters other than white space; at least the floor (`collect.min_text_chars`, default 120);
- distinct: distinct characters; at least 20 (one repeated character, a row of digits);
- word_share: share of the characters inside Japanese words (kana, kanji) or English words (1–20 letters
  with a vowel, or an acronym); at least 0.6 (markup, code, blobs, number lists);
- compression: zlib-compressed size / UTF-8 size of the first 64 KB; at least 0.18 from 2 KB on
  (repetition: prose stays above 0.3; below 2 KB zlib's own overhead hides it);
- sentences: sentence ends (。！？!? and ". "); at least 2.

The first measure that fails is the reason; `Readability.reason` is "" for a readable text.
"""

from __future__ import annotations

import re
import zlib

from pydantic import BaseModel

MIN_CHARS = 120
MIN_DISTINCT = 20
MIN_WORD_SHARE = 0.6
MIN_COMPRESSION = 0.18
COMPRESSION_FROM_BYTES = 2048  # below this zlib's own overhead hides repetition: the other measures decide
SAMPLE_CHARS = 65_536
MIN_SENTENCES = 2

_JAPANESE = re.compile(r"[\u3005\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_LATIN = re.compile(r"[A-Za-z]+")
_SENTENCE_END = re.compile(r"[。！？!?]+|\.(?=\s|$|[」』）)\"'])")
_VOWEL = re.compile(r"[aeiouyAEIOUY]")


class Readability(BaseModel):
    chars: int
    distinct: int
    word_share: float
    compression: float
    sentences: int
    reason: str = ""

    @property
    def readable(self) -> bool:
        return not self.reason


def assess(text: str, min_chars: int = MIN_CHARS) -> Readability:
    """The measures of `text` and, when it is not readable prose, the first reason why (module docstring)."""
    sample = text[:SAMPLE_CHARS]
    compact = "".join(sample.split())
    chars = len("".join(text.split())) if len(text) > SAMPLE_CHARS else len(compact)
    distinct = len(set(compact))
    in_words = sum(len(run) for run in _JAPANESE.findall(compact))
    in_words += sum(len(word) for word in _LATIN.findall(sample) if _is_word(word))
    word_share = in_words / len(compact) if compact else 0.0
    raw = sample.encode("utf-8")
    compression = len(zlib.compress(raw, 6)) / len(raw) if raw else 0.0
    sentences = len(_SENTENCE_END.findall(sample))
    reason = ""
    if chars < min_chars:
        reason = f"{chars} characters of text, fewer than collect.min_text_chars ({min_chars})"
    elif distinct < MIN_DISTINCT:
        reason = f"only {distinct} distinct characters"
    elif word_share < MIN_WORD_SHARE:
        reason = f"only {word_share:.0%} of the text is Japanese or English words"
    elif len(raw) >= COMPRESSION_FROM_BYTES and compression < MIN_COMPRESSION:
        reason = f"the text repeats itself (compresses to {compression:.0%})"
    elif sentences < MIN_SENTENCES:
        reason = f"{sentences} sentence(s)"
    return Readability(chars=chars, distinct=distinct, word_share=round(word_share, 3),
                       compression=round(compression, 3), sentences=sentences, reason=reason)


def _is_word(word: str) -> bool:
    """An English word (up to 20 letters, with a vowel) or an acronym (up to 6 capitals: GPU, NVIDIA)."""
    if len(word) > 20:
        return False
    return bool(_VOWEL.search(word)) or (word.isupper() and len(word) <= 6)
