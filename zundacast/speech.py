"""Spoken-text normalization (placeholder; being written in tests/test_speech.py's issue)."""

from __future__ import annotations


def to_speech(text: str, dictionary: dict[str, str] | None = None) -> str:
    return text
