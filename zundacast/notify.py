"""Tell a chat channel that a run failed (or finished without publishing).

One POST of Slack/Discord-compatible JSON: Slack reads `text`, Discord reads
`content`. The message names the show, the date, the stage and the cause, and
never a secret: `redact` removes the values of the secret environment variables
and anything shaped like an API key or a bearer token first (the same helper
serves for logs). A webhook that fails only logs a warning and returns False:
it must never hide the run's real error.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable
from typing import Literal
from urllib.parse import urlsplit

import httpx

from zundacast.show import SECRET_URL_PARTS, secret_env_values, url_secret_parts

logger = logging.getLogger(__name__)

REDACTED = "[REDACTED]"
MAX_MESSAGE_CHARS = 500
# Shorter values are not secrets worth the name, and replacing them would shred ordinary text.
_MIN_SECRET_CHARS = 6

_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # OpenAI-style keys: sk-..., sk-proj-..., sk-test-...
    (re.compile(r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_\-]{6,}"), REDACTED),
    # Authorization header values, whatever the scheme
    (
        re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(?:(?:bearer|basic|token|digest)\s+)?[^\s\"',;]+"),
        rf"\g<1>{REDACTED}",
    ),
    # bearer tokens anywhere else
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=\-]{6,}"), rf"\g<1>{REDACTED}"),
    # chat webhooks carry their secret in the path
    (re.compile(r"https?://hooks\.slack\.com/\S+"), REDACTED),
    (re.compile(r"https?://(?:\w+\.)?discord(?:app)?\.com/api/webhooks/\S+"), REDACTED),
    # credentials in URLs (user:password@host, or a token as the user) and signed or keyed query parameters
    (re.compile(r"(?i)(\b[a-z][a-z0-9+.\-]*://)[^\s/?#@]+@"), rf"\g<1>{REDACTED}@"),
    (
        re.compile(
            r"(?i)([?&](?:x-amz-signature|x-amz-credential|x-amz-security-token|signature|sig|token|"
            r"access_token|api[_-]?key|key|secret|password)=)[^&\s\"']+"
        ),
        rf"\g<1>{REDACTED}",
    ),
    # AWS access key ids (not secret alone, but they name the account and pair with one)
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), REDACTED),
)


def _secret_values(extra: Iterable[str]) -> list[str]:
    values = [*secret_env_values().values(), *extra]
    cleaned = {value.strip() for value in values if value and len(value.strip()) >= _MIN_SECRET_CHARS}
    # longest first, so a secret that contains another is removed whole
    return sorted(cleaned, key=len, reverse=True)


def redact(text: str, extra_secrets: Iterable[str] = ()) -> str:
    """`text` without the secret environment variables' values, `extra_secrets`, keys or tokens."""
    for value in _secret_values(extra_secrets):
        text = text.replace(value, REDACTED)
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the record's message and traceback (it never drops a record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not fit its format: leave it to logging
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install_log_redaction(logger_names: Iterable[str] = ("", "prefect", "prefect.flow_runs",
                                                         "prefect.task_runs", "prefect.extra")) -> None:
    """Redact every record the handlers of these loggers write: the terminal and Prefect's API log
    handler (whose lines land in Prefect's database). Idempotent."""
    for name in logger_names:
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(existing, RedactingFilter) for existing in handler.filters):
                handler.addFilter(RedactingFilter())


def _truncate(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def failure_message(
    show_id: str,
    day: dt.date,
    stage: str,
    cause: str | BaseException,
    *,
    outcome: Literal["failed", "unpublished"] = "failed",
    extra_secrets: Iterable[str] = (),
) -> str:
    """The two-line message, redacted and cut to `MAX_MESSAGE_CHARS`."""
    if isinstance(cause, BaseException):
        cause = f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__
    # redact before cutting: a secret cut in half would no longer match and half of it would leak
    cause_line = " ".join(redact(cause, extra_secrets).split()) or "(no cause given)"
    if outcome == "unpublished":
        head = f"⚠️ zundacast: {show_id} {day.isoformat()} finished without publishing (stage: {stage})"
    else:
        head = f"❌ zundacast: {show_id} {day.isoformat()} failed at stage {stage}"
    return _truncate(redact(head, extra_secrets) + "\n" + cause_line)


def _slack_text(message: str) -> str:
    # Slack reads &, < and > as markup (<!channel> pings everyone); its docs ask for these escapes
    return message.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _discord_content(message: str) -> str:
    # a zero-width space after @ keeps @everyone, @here and <@id> in a cause from pinging anyone
    return message.replace("@", "@\u200b")


def notify_failure(
    webhook_url: str,
    show_id: str,
    day: dt.date,
    stage: str,
    cause: str | BaseException,
    *,
    timeout_s: float = 5,
    outcome: Literal["failed", "unpublished"] = "failed",
) -> bool:
    """POST the failure (or, with outcome="unpublished", the unpublished run) to a Slack/Discord webhook.

    True when the webhook answered 2xx. Any failure of the webhook itself is logged as a
    warning (without the webhook's URL, whose path is its secret) and returns False.
    """
    if not webhook_url:
        return False
    # the webhook's URL and its parts (its path is its key), even when it was not given by the environment
    secrets = (webhook_url, *url_secret_parts(webhook_url, SECRET_URL_PARTS["ZUNDACAST_WEBHOOK_URL"]))
    message = failure_message(show_id, day, stage, cause, outcome=outcome, extra_secrets=secrets)
    payload = {"text": _slack_text(message), "content": _discord_content(message)}
    try:
        host = urlsplit(webhook_url).hostname or "?"
    except ValueError:
        host = "?"
    try:
        response = httpx.post(webhook_url, json=payload, timeout=timeout_s, follow_redirects=False)
    except Exception as exc:  # any failure here must not replace the run's own error
        logger.warning("failure webhook (host %s) not reached: %s", host,
                       redact(f"{type(exc).__name__}: {exc}", secrets))
        return False
    if not response.is_success:
        logger.warning("failure webhook (host %s) answered HTTP %d: %s", host, response.status_code,
                       redact(response.text[:200], secrets))
        return False
    return True
