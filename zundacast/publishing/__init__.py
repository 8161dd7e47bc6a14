"""Publishing: the episode index (catalog), the feed, the side files, and the no-secrets guard.

Nothing secret ever goes into a published file: `publish_episode` checks every object
against the secrets in the environment before writing it (`check_no_secrets`), and tests
or the CLI can scan a whole store with `find_secrets_in_store`.
"""

from __future__ import annotations

from collections.abc import Iterable

from zundacast.errors import PermanentError
from zundacast.show import secret_env_values
from zundacast.storage import Store

MIN_SECRET_CHARS = 12  # shorter values (e.g. "testing") would match ordinary text by chance


class SecretLeakError(PermanentError):
    """A file about to be published holds a secret; nothing more is written."""


def secret_values() -> dict[str, str]:
    """Name -> value of every secret in the environment (values long enough to look for)."""
    return {name: value for name, value in secret_env_values().items() if len(value) >= MIN_SECRET_CHARS}


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
