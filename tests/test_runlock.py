"""The run lock kept in the store: holders never overlap, a dead holder's lease lapses, waiters say why.

Both stores: a folder and moto's S3 over HTTP. Contention is forced with events (the waiting run's
own "waiting" line releases the holder), and lease expiry runs on an injected clock, so no test
sleeps to synchronize or asserts a time of day.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.s3 import running_s3
from tests.together import READY_THEN_WAIT, run_together
from zundacast.runlock import Lease, LockLost, RunLock, lock_key, run_lock
from zundacast.runner import StageRunner
from zundacast.storage import Store, open_store

DAY = dt.date(2025, 7, 24)
SHOW = "zundamon-test"
KEY = lock_key(SHOW, DAY)
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["folder", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    if request.param == "folder":
        yield open_store(str(tmp_path / "public"))
        return
    with running_s3(monkeypatch) as fake:
        yield open_store(fake.url)


class FakeClock:
    """Wall-clock seconds that move only when a waiting run 'sleeps' (or the test says so)."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now
        self.naps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.naps.append(seconds)
        self.now += max(seconds, 0.001)


def test_a_second_run_waits_for_the_holder_and_says_for_whom(store: Store) -> None:
    events: list[str] = []
    holder_in, other_waiting = threading.Event(), threading.Event()
    waiting_lines: list[str] = []

    def holder() -> None:
        with run_lock(store, SHOW, DAY, say=events.append, run_name="cli-run", poll_s=0.01):
            events.append("enter cli-run")
            holder_in.set()
            assert other_waiting.wait(timeout=60)  # leave only once the other run is seen waiting
            events.append("exit cli-run")

    def other() -> None:
        assert holder_in.wait(timeout=60)

        def say(line: str) -> None:
            if line.startswith("⏳"):
                waiting_lines.append(line)
                other_waiting.set()

        with run_lock(store, SHOW, DAY, say=say, run_name="served-run", poll_s=0.01):
            events.append("enter served-run")
            events.append("exit served-run")

    threads = [threading.Thread(target=holder), threading.Thread(target=other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert [e for e in events if e.startswith(("enter", "exit"))] == [
        "enter cli-run", "exit cli-run", "enter served-run", "exit served-run"]
    assert events[0].startswith(f"🔒 holding the run lock {store.describe(KEY)}")
    assert any(e == f"🔓 released the run lock {store.describe(KEY)}" for e in events)
    assert len(waiting_lines) == 1  # said once per holder, not once per poll
    line = waiting_lines[0]
    assert line.startswith(f"⏳ waiting for the run lock {store.describe(KEY)}: held by cli-run (")
    assert " since " in line and ", lease until " in line and line.count(" UTC") == 2
    assert store.get(KEY) is None  # released: nothing is left in the store


def test_many_runs_of_one_date_never_overlap(store: Store) -> None:
    """Four threads, three turns each, all contending: at most one is ever inside."""
    inside, most_inside, turns = [0], [0], []
    count_lock = threading.Lock()
    start = threading.Barrier(4)

    def run(name: str) -> None:
        start.wait()
        for turn in range(3):
            own_client = open_store(store.url)  # each run has its own connection to the store
            with run_lock(own_client, SHOW, DAY, say=lambda line: None, run_name=name, poll_s=0.005):
                with count_lock:
                    inside[0] += 1
                    most_inside[0] = max(most_inside[0], inside[0])
                    turns.append(("enter", name, turn))
                store.get("episodes.json")  # some store traffic while holding the lock
                with count_lock:
                    inside[0] -= 1
                    turns.append(("exit", name, turn))

    threads = [threading.Thread(target=run, args=(f"run-{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert most_inside[0] == 1
    assert len(turns) == 24
    for enter, leave in zip(turns[::2], turns[1::2], strict=True):  # strictly enter/exit of the same turn
        assert enter[0] == "enter" and leave == ("exit", *enter[1:])
    assert store.get(KEY) is None


def test_a_dead_holders_lease_lapses_and_the_next_run_takes_over(store: Store) -> None:
    clock = FakeClock()
    dead = RunLock(store, KEY, "crashed run (host-a pid 1)", say=lambda line: None, lease_s=60, clock=clock)
    dead.acquire()  # ... and then the process died: no heartbeat, no release
    said: list[str] = []
    died_at = clock.now
    nextrun = RunLock(store, KEY, "next run (host-b pid 2)", say=said.append, lease_s=60, poll_s=5,
                      clock=clock, sleep=clock.sleep)
    nextrun.acquire()
    assert clock.now >= died_at + 60  # not before the lease ran out
    assert said[0].startswith("⏳ waiting for the run lock")
    assert "held by crashed run (host-a pid 1)" in said[0]
    assert said[-1].startswith("took over the run lock")
    assert "crashed run (host-a pid 1)'s lease expired" in said[-1]
    holder = Lease.model_validate_json(store.get(KEY) or b"")
    assert holder.owner == "next run (host-b pid 2)" and holder.expires_at == clock.now + 60

    # the "dead" run was only paused: it finds out, stops, and leaves the new holder's lock alone
    assert dead.renew() is False
    with pytest.raises(LockLost, match="another run took the run lock"):
        dead.check()
    dead.release()
    assert Lease.model_validate_json(store.get(KEY) or b"").owner == "next run (host-b pid 2)"
    nextrun.release()
    assert store.get(KEY) is None


def test_a_renewed_lease_is_not_taken_over(store: Store) -> None:
    clock = FakeClock()
    alive = RunLock(store, KEY, "alive run", say=lambda line: None, lease_s=60, clock=clock)
    alive.acquire()
    renewals = []

    def heartbeat_while_waiting(seconds: float) -> None:
        clock.sleep(seconds)
        if clock.now < 1_000_000.0 + 300 and clock.now - (renewals[-1] if renewals else 1_000_000.0) >= 20:
            assert alive.renew()  # what the heartbeat thread does every lease/3
            renewals.append(clock.now)

    waiting = RunLock(store, KEY, "waiting run", say=lambda line: None, lease_s=60, poll_s=5, clock=clock,
                      sleep=heartbeat_while_waiting)
    waiting.acquire()
    assert renewals and clock.now >= renewals[-1] + 60  # only once the renewals stopped and a lease ran out
    assert alive.renew() is False


def test_the_stage_runner_stops_a_run_that_lost_its_lock(store: Store) -> None:
    clock = FakeClock()
    lock = RunLock(store, KEY, "slow run", say=lambda line: None, lease_s=60, clock=clock)
    lock.acquire()
    clock.now += 61
    RunLock(store, KEY, "next run", say=lambda line: None, lease_s=60, clock=clock).acquire()
    runner = StageRunner([])
    runner.guard = lock.check
    assert lock.renew() is False
    with pytest.raises(LockLost, match="rerun the date"):
        runner("upload", object())  # refused before the stage starts


HOLD_IN_A_PROCESS = """
import datetime as dt, os, sys
from zundacast.runlock import run_lock
from zundacast.storage import open_store
store, log, name = open_store(sys.argv[1]), sys.argv[2], sys.argv[3]
""" + READY_THEN_WAIT + """  # every process starts contending at once
for turn in range(3):
    with run_lock(store, "zundamon-test", dt.date(2025, 7, 24), say=lambda line: None, run_name=name,
                  poll_s=0.005):
        with open(log, "a") as out:
            out.write(f"enter {name} {turn}\\n")
        store.get("episodes.json")
        with open(log, "a") as out:
            out.write(f"exit {name} {turn}\\n")
"""


def test_runs_in_separate_processes_never_overlap(store: Store, tmp_path: Path) -> None:
    log = tmp_path / "events.log"
    run_together([[sys.executable, "-c", HOLD_IN_A_PROCESS, store.url, str(log), f"p{i}"] for i in range(3)],
                 REPO)
    lines = log.read_text().splitlines()
    assert len(lines) == 18
    for enter, leave in zip(lines[::2], lines[1::2], strict=True):
        assert enter.startswith("enter ") and leave == "exit " + enter.removeprefix("enter ")


DIE_HOLDING = """
import datetime as dt, os, sys
from zundacast.runlock import RunLock, lock_key
from zundacast.storage import open_store
RunLock(open_store(sys.argv[1]), lock_key("zundamon-test", dt.date(2025, 7, 24)), "killed run",
        say=lambda line: None).acquire()
os._exit(0)  # gone without releasing, as after SIGKILL
"""


def test_a_rerun_on_the_same_machine_after_a_crash_does_not_wait_out_the_lease(store: Store) -> None:
    subprocess.run([sys.executable, "-c", DIE_HOLDING, store.url], cwd=REPO, check=True, timeout=120)
    left = Lease.model_validate_json(store.get(KEY) or b"")
    assert left.owner == "killed run" and left.node  # it is still there, with a lease not yet expired
    clock = FakeClock(now=left.acquired_at + 1)
    said: list[str] = []
    rerun = RunLock(store, KEY, "rerun", say=said.append, clock=clock, sleep=clock.sleep)
    rerun.acquire()
    assert clock.naps == []  # no waiting at all
    assert said == [f"took over the run lock {store.describe(KEY)}: killed run is no longer running"]
    rerun.release()


def test_a_holder_on_another_machine_is_waited_for_even_if_its_pid_is_free_here(store: Store) -> None:
    clock = FakeClock()
    elsewhere = Lease(token="t", owner="run on host-b", node="another-boot/pid:[1]", pid=2**22 + 7,
                      acquired_at=clock.now, expires_at=clock.now + 60)
    store.put_if(KEY, elsewhere.model_dump_json().encode(), "application/json", expected=None)
    said: list[str] = []
    RunLock(store, KEY, "here", say=said.append, poll_s=5, clock=clock, sleep=clock.sleep).acquire()
    assert sum(clock.naps) >= 60  # the lease, not the PID, decides for a holder elsewhere
    assert said[0].startswith("⏳ waiting") and "run on host-b's lease expired at" in said[-1]


def test_a_renewal_the_client_sent_twice_does_not_count_as_a_lost_lock(store: Store) -> None:
    """botocore resends a request whose answer was lost; the resent If-Match then fails with 412."""
    clock = FakeClock()
    lock = RunLock(store, KEY, "holder", say=lambda line: None, clock=clock)
    lock.acquire()
    seen_version = lock.version
    clock.now += 20
    assert lock.renew()
    lock.version = seen_version  # as if the first answer never arrived: we still hold the old version
    clock.now += 20
    assert lock.renew()  # 412 on the old version, but the lock holds our own lease: still ours
    assert lock.lost == "" and Lease.model_validate_json(store.get(KEY) or b"").expires_at == clock.now + 60
    lock.release()
    assert store.get(KEY) is None


def test_the_heartbeat_thread_renews_the_lease_every_third_of_it(store: Store) -> None:
    import queue

    clock = FakeClock()
    paused: queue.Queue[float] = queue.Queue()  # the heartbeat reports each pause it starts ...
    steps: queue.Queue[bool] = queue.Queue()  # ... and the test ends it: False = beat, True = stop

    def beat_wait(seconds: float) -> bool:
        paused.put(seconds)
        return steps.get(timeout=60)

    lock = RunLock(store, KEY, "holder", say=lambda line: None, lease_s=60, clock=clock, beat_wait=beat_wait)
    lock.acquire()
    lock.start_heartbeat()
    assert paused.get(timeout=60) == 20
    for _ in range(3):
        clock.now += 20
        steps.put(False)
        assert paused.get(timeout=60) == 20  # the renewal is done when the next pause starts
        assert Lease.model_validate_json(store.get(KEY) or b"").expires_at == clock.now + 60
    steps.put(True)
    lock.release()
    assert store.get(KEY) is None
