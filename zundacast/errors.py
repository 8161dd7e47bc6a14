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


class EnvironmentProblem(PermanentError):
    """The machine is not fit to run: a folder not writable, a disk full, an endpoint not reachable.
    The message names the variable or option, the path or URL, and what to do."""


def os_error_message(exc: OSError, places: dict[str, str] | None = None) -> str:
    """One line for a failed file operation: the path, which setting put it there, and what to do.

    `places` maps a setting (e.g. "ZUNDACAST_HOME", "--store") to the folder it names; the deepest
    folder holding the failed path is the one named.
    """
    import errno
    from pathlib import Path

    path = str(exc.filename or "")
    setting = ""
    if path:
        holders = [(name, folder) for name, folder in (places or {}).items()
                   if folder and (path == folder or path.startswith(folder.rstrip("/") + "/"))]
        if holders:
            setting = max(holders, key=lambda item: len(item[1]))[0]
    where = f"{path} ({setting})" if setting else (path or "a file")
    elsewhere = f"or point {setting} at another folder" if setting else "or use another folder"
    code = exc.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on the device holding {where}: free some space there {elsewhere}"
    if code == errno.EROFS:
        return f"{where} is on a read-only filesystem: remount it writable {elsewhere}"
    if code in (errno.EACCES, errno.EPERM):
        return f"no permission to write {where}: fix its permissions {elsewhere}"
    if code == errno.ENOTDIR or (code == errno.EEXIST and path and not Path(path).is_dir()):
        return f"{where} is a file where a folder is needed: remove it {elsewhere}"
    reason = exc.strerror or type(exc).__name__
    return f"{where}: {reason}: check that it exists and can be written, {elsewhere}"


class EditorialGateError(PermanentError):
    """The editorial gate rejected the episode (an article no spare could replace, or the whole script):
    nothing is published; the message names the article and the rule."""
