"""Keep the episode process's resident memory near what it uses (issue 14: a cold episode under 400 MB).

glibc gives every thread that allocates its own malloc arena and keeps freed memory in it: the flow's
task-runner threads, the OpenJTalk workers and the upload threads each held tens of MB no longer in use.
`limit_malloc_arenas` caps the arenas for the threads started afterwards; `release_free_memory` hands
the free pages of every arena back to the system (malloc_trim), called between stages. Both are no-ops
where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

_M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)


@functools.lru_cache(maxsize=1)
def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim, libc.mallopt  # noqa: B018 - glibc only: musl and macOS have neither
    except (OSError, AttributeError):
        return None
    return libc


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """At most `arenas` malloc arenas for this process (like MALLOC_ARENA_MAX); True if applied."""
    libc = _glibc()
    return bool(libc and libc.mallopt(_M_ARENA_MAX, arenas))


def release_free_memory() -> bool:
    """Give freed heap pages back to the system; True if glibc released any."""
    libc = _glibc()
    return bool(libc and libc.malloc_trim(0))
