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
import gc
import threading

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
    """Give freed heap pages back to the system, and drop the resident pages of large read-only data files
    (`drop_data_file_pages`); True if glibc released any heap."""
    drop_data_file_pages()
    libc = _glibc()
    return bool(libc and libc.malloc_trim(0))


_MADV_DONTNEED = 4  # madvise(2): for a read-only file mapping, the pages are read from the file again
DATA_FILE_MIN_BYTES = 16 << 20  # dictionaries and models, not the libraries' own read-only data


def drop_data_file_pages() -> int:
    """Unmap the resident pages of every large shared read-only file mapping; the bytes of those mappings.

    OpenJTalk's MeCab dictionary and Sudachi's (used by the offline writer) are such mappings: loading
    Sudachi touches ~115 MB, while a script's sentences need about half of it afterwards. The pages stay in
    the kernel's page cache (shared, reclaimable, not this process's) and the next access maps them again,
    so only what is really used comes back into the resident set. No-op where /proc or madvise are missing.
    """
    libc = _glibc()
    if libc is None:
        return 0
    dropped = 0
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            lines = maps.readlines()
    except OSError:
        return 0
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or not fields[5].startswith("/"):
            continue
        # Shared and read-only: its pages are the page cache's own, so dropping them can lose nothing. (A
        # private read-only mapping may hold pages written before it became read-only, e.g. a library's
        # relocated data: those are left alone.)
        if fields[1] != "r--s":
            continue
        start, end = (int(bound, 16) for bound in fields[0].split("-"))
        if end - start < DATA_FILE_MIN_BYTES:
            continue
        if libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), _MADV_DONTNEED) == 0:
            dropped += end - start
    return dropped


def release_openjtalk_dictionaries() -> bool:
    """Let go of pyopenjtalk's MeCab front end and Sudachi dictionary in this process; True if any was held.

    Both are file mappings (~50 MB and ~120 MB once touched) that pyopenjtalk-plus keeps for the life of the
    process. After the offline writer is done and synthesis ran in its own process (audio/tts_child.py),
    nothing here needs them; the library loads them again on its next use. Reaches into the library's
    module globals, so it checks each one and does nothing where they are not as expected.
    """
    import sys

    pyopenjtalk = sys.modules.get("pyopenjtalk")
    if pyopenjtalk is None:
        return False
    released = False
    manager = getattr(pyopenjtalk, "_global_jtalk", None)
    condition = getattr(manager, "_condition", None)
    if condition is not None and hasattr(manager, "_instance"):
        with condition:
            if manager._instance is not None and getattr(manager, "_active_leases", 1) == 0:
                manager._instance = None  # the next borrower makes a new one (the manager's lazy factory)
                released = True
    utils = sys.modules.get("pyopenjtalk.utils")
    lock = getattr(utils, "_SUDACHI_DICTIONARY_LOCK", None)
    if lock is not None and getattr(utils, "_SUDACHI_DICTIONARY", None) is not None:
        with lock:
            utils._SUDACHI_DICTIONARY = None  # get_sudachi_tokenizer() loads it again when needed
            # A new thread-local: the old one, and every thread's tokenizer on it, is dropped with it.
            utils._SUDACHI_TOKENIZER_LOCAL = threading.local()
            released = True
    if released:
        gc.collect()  # the dictionaries are unmapped when their last reference goes
        release_free_memory()
    return released
