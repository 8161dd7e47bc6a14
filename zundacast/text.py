"""Text fit for XML and for people: one cleaning rule, applied where text enters the records.

XML 1.0 cannot hold most control characters at all (not even as `&#1;`), so one stray byte
in a feed title breaks the whole feed for every reader. Bidi overrides and isolates let a
title display reversed or spoof what follows it; non-characters and lone surrogates are not
text. `clean_text` removes all of these and composes the rest (NFC), so the same title
compares, sorts and displays the same everywhere. `CleanStr` applies it inside the pydantic
records, so feeds, LLM answers and an old `episodes.json` read again all come out clean.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator

# C0 controls except tab and newline, DEL and C1 controls; a carriage return is a control too
# (line ends are \n inside the records).
_CONTROLS = "\x00-\x08\x0b-\x1f\x7f-\x9f"
# Bidi embeddings/overrides (LRE RLE PDF LRO RLO) and isolates (LRI RLI FSI PDI).
_BIDI = "\u202a-\u202e\u2066-\u2069"
# Lone surrogates (a str can hold them; UTF-8 cannot) and the non-characters of the BMP.
_NOT_TEXT = "\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff"
_UNWANTED = re.compile(f"[{_CONTROLS}{_BIDI}{_NOT_TEXT}]")


def _is_plane_end(char: str) -> bool:
    """U+1FFFE, U+1FFFF ... U+10FFFF: the last two code points of every plane are non-characters."""
    return ord(char) & 0xFFFE == 0xFFFE


def clean_text(text: str) -> str:
    """`text` without control characters (tab and newline kept), non-characters, lone surrogates and
    bidi overrides/isolates, in Unicode NFC."""
    text = _UNWANTED.sub("", text)
    if any(ord(char) > 0xFFFF and _is_plane_end(char) for char in text):
        text = "".join(char for char in text if not (ord(char) > 0xFFFF and _is_plane_end(char)))
    return unicodedata.normalize("NFC", text)


CleanStr = Annotated[str, AfterValidator(clean_text)]
"""A `str` field that is cleaned by `clean_text` whenever a record is built or read back."""
