"""Errors that say what to fix.

`PermanentError` marks failures that retrying cannot heal (HTTP 401/403/404, a
bad show file, an invalid date): the stages' retry policy gives up at once on
them, so the user sees the cause immediately instead of after every backoff.
"""

from __future__ import annotations


class ZundacastError(RuntimeError):
    """Base of the project's errors; the message is meant for the user."""


class PermanentError(ZundacastError):
    """Retrying cannot heal this; the message names what to fix."""


class NotEnoughCandidates(PermanentError):
    """Too few articles survived collection to make an episode."""


class EpisodeCheckError(PermanentError):
    """The finished MP3 failed its check; nothing is published."""


class EditorialGateError(PermanentError):
    """The editorial gate rejected the episode (an article no spare could replace, or the whole script):
    nothing is published; the message names the article and the rule."""
