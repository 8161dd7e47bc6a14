"""One run per show and date, whatever started it: a lock object kept in the store, with a lease.

The lock is `.locks/{show}-{date}.json` in the store the run publishes to, so every run that could
overwrite the same episode sees it: from the CLI or a served deployment or a worker, with or without
a Prefect server, on one machine or several. It is taken and handed over only by the store's
compare-and-swap (`Store.put_if`):

- take: create the object only if it does not exist (S3 `If-None-Match: *`; a folder: flock + rename);
- hold: a heartbeat thread renews the lease (`If-Match` on the version it last wrote);
- a holder that died stops renewing; once its lease has expired the next run replaces the object
  (`If-Match` on the expired lease's version), so only one waiting run takes it over. A holder that
  ran in this very PID namespace of this boot and whose process is gone is known dead at once (a
  rerun right after a crash does not wait out the lease);
- release: delete the object (`If-Match`), so a lease taken over meanwhile is left alone.

Lease times are wall-clock seconds (`clock`), so machines sharing a bucket need roughly synchronized
clocks (NTP); the lease is long against any skew that NTP leaves.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel, ValidationError

from zundacast.errors import PermanentError
from zundacast.storage import Store, StoreError, VersionConflict

LEASE_S = 60.0  # a dead holder blocks the date for at most this long
POLL_S = 2.0  # how often a waiting run looks at the lock again
LOCK_TYPE = "application/json"


class LockLost(PermanentError):
    """This run's lease lapsed and another run took the lock: stop before publishing over it."""


class Lease(BaseModel):
    """What the lock object holds: who has it, since when, and until when unless renewed."""

    token: str  # this holder, across renewals
    owner: str  # host, pid and run name, for the people waiting
    node: str = ""  # boot id + PID namespace: where `pid` means this process ("" = unknown)
    pid: int = 0
    acquired_at: float
    expires_at: float


def lock_key(show_id: str, day: dt.date) -> str:
    return f".locks/{show_id}-{day.isoformat()}.json"


def this_node() -> str:
    """This boot's id and this PID namespace: two processes with equal nodes see the same PIDs."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""  # not Linux: no fast path, the lease decides
    return f"{boot}/{namespace}"


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


def when(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class RunLock:
    """The lock of one show and date in one store; `acquire`, then `release` (or use `run_lock`)."""

    def __init__(
        self,
        store: Store,
        key: str,
        owner: str,
        say: Callable[[str], None] = print,
        lease_s: float = LEASE_S,
        poll_s: float = POLL_S,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        beat_wait: Callable[[float], bool] | None = None,
    ) -> None:
        self.store, self.key, self.say = store, key, say
        self.lease_s, self.poll_s, self.clock, self.sleep = lease_s, poll_s, clock, sleep
        self.where = store.describe(key)
        self.token = uuid.uuid4().hex
        self.owner = owner
        self.node = this_node()
        self.version: str | None = None
        self.lease: Lease | None = None
        self.lost = ""  # why the lease was lost, once it is
        self._guard = threading.Lock()  # the heartbeat thread and release() both move self.version
        self._stop = threading.Event()
        # the heartbeat's pause between renewals; True = stop (tests pass their own to step it)
        self.beat_wait = beat_wait or self._stop.wait
        self._beat: threading.Thread | None = None

    def _new_lease(self, now: float, since: float | None = None) -> Lease:
        return Lease(token=self.token, owner=self.owner, node=self.node, pid=os.getpid(),
                     acquired_at=now if since is None else since, expires_at=now + self.lease_s)

    def _dead(self, holder: Lease, now: float) -> str:
        """Why `holder` no longer holds the lock ("" while it may)."""
        if holder.expires_at <= now:
            return f"{holder.owner}'s lease expired at {when(holder.expires_at)}"
        if self.node and holder.node == self.node and holder.pid and process_gone(holder.pid):
            return f"{holder.owner} is no longer running"
        return ""

    def _holder(self, data: bytes) -> Lease | None:
        try:
            return Lease.model_validate_json(data)
        except ValidationError:
            return None  # not a lease (cut short by a crash?): treat it as expired

    def acquire(self) -> None:
        """Wait until this run holds the lock (saying for whom it waits), then hold it."""
        announced = ""
        while True:
            data, version = self.store.get_versioned(self.key)
            now = self.clock()
            lease = self._new_lease(now)
            try:
                if data is None:
                    self.version = self.store.put_if(self.key, lease.model_dump_json().encode(), LOCK_TYPE,
                                                     expected=None)
                    self.lease = lease
                    return
                holder = self._holder(data)
                if holder is not None and holder.token == self.token:  # our own create, retried by the client
                    self.version, self.lease = version, holder
                    return
                dead = self._dead(holder, now) if holder is not None else "it held no readable lease"
                if dead:
                    self.version = self.store.put_if(self.key, lease.model_dump_json().encode(), LOCK_TYPE,
                                                     expected=version)
                    self.lease = lease
                    self.say(f"took over the run lock {self.where}: {dead}")
                    return
            except VersionConflict:
                continue  # another run moved first: look again
            if announced != holder.token:
                announced = holder.token
                self.say(f"⏳ waiting for the run lock {self.where}: held by {holder.owner} since "
                         f"{when(holder.acquired_at)}, lease until {when(holder.expires_at)} "
                         f"(renewed while that run lives)")
            self.sleep(max(0.0, min(self.poll_s, holder.expires_at - now)))

    def renew(self) -> bool:
        """Extend the lease; False (and `lost` set) when another run has taken the lock."""
        with self._guard:
            if self.lost or self.lease is None:
                return False
            lease = self._new_lease(self.clock(), since=self.lease.acquired_at)
            for _ in range(2):
                try:
                    self.version = self.store.put_if(self.key, lease.model_dump_json().encode(), LOCK_TYPE,
                                                     expected=self.version)
                    self.lease = lease
                    break
                except VersionConflict:
                    # the client may have resent a renewal whose first answer was lost: then the lock
                    # holds our own lease, under a version not seen yet; adopt it and renew again
                    data, version = self.store.get_versioned(self.key)
                    holder = self._holder(data) if data is not None else None
                    if holder is None or holder.token != self.token:
                        self.lost = self._taken_over()
                        break
                    self.version, self.lease = version, holder
                except StoreError as exc:  # the store is unreachable for now: try again at the next beat
                    if self.clock() >= self.lease.expires_at:
                        self.lost = f"this run's lease on {self.where} lapsed: renewing it failed ({exc})"
                    break
            return not self.lost

    def _taken_over(self) -> str:
        return f"another run took the run lock {self.where} after this run's lease lapsed"

    def check(self) -> None:
        """Raise LockLost when another run may be publishing this date now."""
        if self.lost:
            raise LockLost(f"{self.lost}; this run stops so the two do not both publish; rerun the date")

    def start_heartbeat(self) -> None:
        def beat() -> None:
            while not self.beat_wait(self.lease_s / 3) and self.renew():
                pass

        self._beat = threading.Thread(target=beat, name=f"lease {self.key}", daemon=True)
        self._beat.start()

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        with self._guard:
            if self.lost or self.version is None:
                return
            try:
                self.store.delete_if(self.key, self.version)
            except VersionConflict:
                self.lost = self._taken_over()
            self.version = None


def owner_name(run_name: str = "") -> str:
    me = f"{socket.gethostname()} pid {os.getpid()}"
    return f"{run_name} ({me})" if run_name else me


@contextmanager
def run_lock(
    store: Store,
    show_id: str,
    day: dt.date,
    say: Callable[[str], None] = print,
    run_name: str = "",
    lease_s: float = LEASE_S,
    poll_s: float = POLL_S,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[RunLock]:
    """Hold the show's and date's lock in `store` for the block (renewed meanwhile, deleted after)."""
    lock = RunLock(store, lock_key(show_id, day), owner_name(run_name), say=say, lease_s=lease_s,
                   poll_s=poll_s, clock=clock, sleep=sleep)
    lock.acquire()
    lock.start_heartbeat()
    say(f"🔒 holding the run lock {lock.where} (lease {lease_s:.0f} s, renewed every {lease_s / 3:.0f} s)")
    try:
        yield lock
    finally:
        lock.release()
        say(f"🔓 released the run lock {lock.where}")
    lock.check()
