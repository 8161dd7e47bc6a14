"""Publishing: the episode index (catalog), the feed, the side files, and the no-secrets guard.

Nothing secret ever goes into a published file: `publish_episode` checks every object
against the secrets in the environment before writing it (`check_no_secrets`), and tests
or the CLI can scan a whole store with `find_secrets_in_store`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from zundacast.errors import PermanentError
from zundacast.show import Environment
from zundacast.storage import Store

MIN_SECRET_CHARS = 12  # shorter values (e.g. "testing") would match ordinary text by chance
# Secrets boto3 reads from the environment; the project's own come from `Environment`.
AWS_SECRET_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")


class SecretLeakError(PermanentError):
    """A file about to be published holds a secret; nothing more is written."""


def secret_values(env: Environment | None = None) -> dict[str, str]:
    """Name -> value of every secret in the environment (values long enough to look for)."""
    env = env or Environment()
    found: dict[str, str] = {}
    if env.openai_api_key:
        found["OPENAI_API_KEY"] = env.openai_api_key.get_secret_value()
    if env.zundacast_webhook_url:
        found["ZUNDACAST_WEBHOOK_URL"] = env.zundacast_webhook_url.get_secret_value()
    for name in AWS_SECRET_VARIABLES:
        if os.environ.get(name):
            found[name] = os.environ[name]
    return {name: value for name, value in found.items() if len(value) >= MIN_SECRET_CHARS}


def find_secrets(data: bytes, secrets: dict[str, str]) -> list[str]:
    """The names (never the values) of the secrets that occur in `data`."""
    return [name for name, value in secrets.items() if value.encode("utf-8") in data]


def check_no_secrets(data: bytes, where: str, secrets: dict[str, str]) -> None:
    leaked = find_secrets(data, secrets)
    if leaked:
        raise SecretLeakError(
            f"refusing to publish {where}: it contains the value of {', '.join(leaked)}; find where that "
            f"value entered the episode (show file, feed text, prompt) and remove it"
        )


def find_secrets_in_store(
    store: Store, keys: Iterable[str], secrets: dict[str, str] | None = None
) -> dict[str, list[str]]:
    """Key -> names of the secrets found in it, for every key of `keys` that holds one ({} = clean)."""
    secrets = secret_values() if secrets is None else secrets
    leaks: dict[str, list[str]] = {}
    for key in keys:
        data = store.get(key)
        names = find_secrets(data, secrets) if data is not None else []
        if names:
            leaks[key] = names
    return leaks
