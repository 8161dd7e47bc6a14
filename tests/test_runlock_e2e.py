"""A CLI-started run and a served-deployment run of the same show and date never overlap.

The CLI run (`zundacast run`) and the deployment served next to a real Prefect server know nothing
of each other: the CLI's flow run is no run of the deployment, so no Prefect concurrency limit orders
them (both report to the one server, which spares the CLI a temporary API of its own); only the lock
in the store they share orders them. The CLI run is held inside its collect stage (its feeds come
through a gate) until the served run says it is waiting for the lock, so the two really do contend;
then the timestamps of "holding" and "released" in both logs must give two disjoint intervals. Both run
the same show file and share one result storage, as on one machine: the served run, once it holds the lock,
finds the stages the CLI run made (the lock is taken before any stage, so it still waits the same way).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO

import pytest

from tests.faults.support import share_speech_cache, short_show_text
from tests.prefect_server import stop

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
STAMP = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) \| \w+ +\| .* - (🔒 holding|🔓 released|⏳ waiting)")


class Gate:
    """A loopback proxy to the sample day that holds every request until opened."""

    def __init__(self, upstream: str) -> None:
        self.opened = threading.Event()
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                gate.opened.wait()  # opened by the test, or by close() at its end
                with urllib.request.urlopen(upstream + self.path, timeout=30) as answer:
                    body, kind = answer.read(), answer.headers.get("Content-Type", "")
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.opened.set()
        self.server.shutdown()
        self.server.server_close()


def show_file(folder: Path, feeds_base: str, allowed: list[str], fetch_timeout_s: int = 10) -> Path:
    """The default show file with one pick, reading the sample day's feeds from `feeds_base`."""
    from zundacast import sample_day as sample

    text = (ROOT / "shows" / "zundamon-ai.toml").read_text("utf-8")
    text = text[: text.index("\n[[feeds]]") + 1]
    text = short_show_text(text)  # about the lock, not length or sound: one pick, 24 kHz
    assert "\ntimeout_s = 10\n" in text
    text = text.replace("\ntimeout_s = 10\n", f"\ntimeout_s = {fetch_timeout_s}\n", 1)
    assert "allow_hosts = []" in text
    text = text.replace("allow_hosts = []", f"allow_hosts = {allowed!r}".replace("'", '"'), 1)
    for name, path, weight in ((sample.TECHNEWS_FEED_NAME, sample.TECHNEWS_FEED_PATH, 1.0),
                               (sample.HATENA_FEED_NAME, sample.HATENA_FEED_PATH, 1.2)):
        text += f'[[feeds]]\nname = "{name}"\nurl = "{feeds_base}{path}"\n'
        text += f'weight = {weight}\nlanguage = "ja"\n\n'

    show_path = folder / "zundamon-ai.toml"
    show_path.write_text(text, "utf-8")
    return show_path


def follow(stream: IO[str], log: Path, watch: dict[str, threading.Event]) -> threading.Thread:
    """Copy a process's output to `log`, setting each event when a line containing its key appears."""

    def run() -> None:
        with log.open("w", encoding="utf-8") as out:
            for line in stream:
                out.write(line)
                out.flush()
                for needle, event in watch.items():
                    if needle in line:
                        event.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def lock_times(log: Path) -> dict[str, list[float]]:
    """'holding' / 'released' / 'waiting' -> seconds of the day of each such line (Prefect's log format)."""
    found: dict[str, list[float]] = {"holding": [], "released": [], "waiting": []}
    for line in log.read_text("utf-8", errors="replace").splitlines():
        match = STAMP.match(line)
        if match:
            hours, minutes, seconds, millis, what = match.groups()
            seconds_of_day = int(hours) * 3600 + int(minutes) * 60 + int(seconds) + int(millis) / 1000
            found[what.split()[1]].append(seconds_of_day)
    return found


@pytest.fixture
def sample_day() -> Iterator[str]:
    from zundacast.sample_day import serve_sample_day

    with serve_sample_day(port=0) as base_url:
        yield base_url


def test_a_cli_run_and_a_served_run_of_one_date_never_overlap(
        tmp_path: Path, served_deployment_client: dict[str, str], sample_day: str) -> None:
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from zundacast.sample_day import SAMPLE_DATE
    from zundacast.show import load_show

    store = tmp_path / "public"
    # shared: the second run reuses the first's synthesized utterances (the test run's utterance cache:
    # about the lock, not speech)
    home = share_speech_cache(tmp_path / "home")
    gate = Gate(sample_day)
    hosts = [gate.url.removeprefix("http://"), sample_day.removeprefix("http://")]
    # the feeds wait behind the gate until the served run queues for the lock: no fetch timeout meanwhile
    cli_show = show_file(tmp_path, gate.url, hosts, fetch_timeout_s=300)
    base_env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_API")}
    # One machine's result storage for both (as one Prefect home would give them): the served run, the
    # same show file and date, finds the stages the CLI run made and does not make the episode again.
    base_env.update({"ZUNDACAST_HOME": str(home), "PYTHONUNBUFFERED": "1",
                     "PREFECT_API_URL": served_deployment_client["PREFECT_API_URL"],
                     "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(tmp_path / "prefect-results")})

    cli_holds, served_waits = threading.Event(), threading.Event()
    cli = subprocess.Popen(
        [sys.executable, "-m", "zundacast.cli", "run", "--verbose", "--show", str(cli_show),
         "--date", SAMPLE_DATE.isoformat(), "--store", str(store)],
        env={**base_env, "PREFECT_HOME": str(tmp_path / "prefect-cli")}, cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, encoding="utf-8")
    assert cli.stderr is not None
    cli_log = tmp_path / "cli.log"
    cli_reader = follow(cli.stderr, cli_log, {"| INFO    | Flow run": threading.Event(),
                                               "🔒 holding the run lock": cli_holds})

    show = load_show(str(cli_show))  # the CLI run's show file (its feeds behind the gate, open by then)
    # the runner asks for scheduled runs every second (Prefect's default: every 10)
    served_env = {**base_env, **served_deployment_client, "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    script = f"from deployments.serve import serve; serve({str(cli_show)!r}, store={str(store)!r})"
    server = subprocess.Popen([sys.executable, "-c", script], env=served_env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, encoding="utf-8")
    assert server.stdout is not None
    served_log = tmp_path / "served.log"
    # Prefect prints "… is being served" (one deployment) or "… are being served" (several) once registered
    registered = threading.Event()
    served_reader = follow(server.stdout, served_log, {"⏳ waiting for the run lock": served_waits,
                                                       "being served": registered})
    opener = threading.Thread(target=lambda: (served_waits.wait(), gate.opened.set()),
                              daemon=True)
    opener.start()
    try:
        threading.Thread(target=lambda: (cli.wait(), cli_holds.set()), daemon=True).start()
        cli_holds.wait()  # it holds the lock, or it ended (no clock: pytest-timeout bounds every wait)
        assert cli.poll() is None, cli_log.read_text(errors="replace")[-3000:]
        threading.Thread(target=lambda: (server.wait(), registered.set()), daemon=True).start()
        registered.wait()  # or the serve process ended: pytest-timeout bounds the wait, never a clock
        assert server.poll() is None, served_log.read_text(errors="replace")[-3000:]
        with temporary_settings({PREFECT_API_URL: served_deployment_client["PREFECT_API_URL"]}):
            flow_run = run_deployment(f"daily-episode/{show.show.id}-daily",
                                      parameters={"episode_date": SAMPLE_DATE.isoformat()},
                                      timeout=None, poll_interval=1)
        assert cli.wait() == 0, cli_log.read_text(errors="replace")[-3000:]
    finally:
        gate.close()
        if cli.poll() is None:
            cli.kill()
        stop(server)
        cli_reader.join(timeout=30)
        served_reader.join(timeout=30)
    assert flow_run.state is not None and flow_run.state.is_completed(), served_log.read_text()[-3000:]

    cli_times, served_times = lock_times(cli_log), lock_times(served_log)
    assert len(cli_times["holding"]) == 1 and len(cli_times["released"]) == 1, cli_times
    assert len(served_times["holding"]) == 1 and len(served_times["released"]) == 1, served_times
    assert served_waits.is_set() and served_times["waiting"], "the served run never had to wait"
    waiting_line = next(line for line in served_log.read_text("utf-8").splitlines() if "⏳ waiting" in line)
    assert f"pid {cli.pid})" in waiting_line  # it names the CLI run as the holder
    cli_span = (cli_times["holding"][0], cli_times["released"][0])
    served_span = (served_times["holding"][0], served_times["released"][0])
    assert served_times["waiting"][0] < cli_span[1]  # it asked while the CLI run held the lock ...
    assert cli_span[1] <= served_span[0]  # ... and held it only after the CLI run let go
    assert SAMPLE_DATE.isoformat() in (store / "feed.xml").read_text("utf-8")
