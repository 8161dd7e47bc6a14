"""`zundacast server start|status|stop` against a real `prefect server start` on loopback, and a CLI run
that finds it: a real flow run recorded by that server, whose cached rerun's task runs are `Cached`.

Every command runs as a user runs it (a subprocess of `python -m zundacast.cli`) with a Prefect home of
its own, so no developer's server is touched and no server outlives a test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.faults.support import share_speech_cache
from tests.prefect_server import seed_home, services_off
from tests.test_runlock_e2e import show_file
from zundacast import prefect_api
from zundacast.sample_day import SAMPLE_DATE, serve_sample_day

ROOT = Path(__file__).resolve().parent.parent


def cli(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "zundacast.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def homes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The environment of a shell with its own Prefect and zundacast homes; the server is stopped after.

    The server it starts runs only the services these tests use (the API, and the task run recorder: the
    rerun's task run states are read); the runs speak from the test run's utterance cache (not about speech).
    """
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    env = {name: value for name, value in os.environ.items() if name != "PREFECT_API_URL"}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"),
               ZUNDACAST_HOME=str(share_speech_cache(tmp_path / "home")),
               **services_off(("task_run_recorder",)))
    try:
        yield env
    finally:
        prefect_api.stop_server()  # the test's own server, by the PID its start recorded


def health(api_url: str) -> int | None:
    try:
        return httpx.get(f"{api_url}/health", timeout=5).status_code
    except httpx.HTTPError:
        return None


def test_server_start_status_stop(homes: dict[str, str]) -> None:
    down = cli(homes, "server", "status")
    assert down.returncode == 1 and down.stdout.startswith("not running"), down.stdout + down.stderr

    started = cli(homes, "server", "start", "--port", "0")
    assert started.returncode == 0, started.stderr[-3000:]
    state = prefect_api.read_state()
    assert state is not None and started.stdout.startswith(f"started: {state.api_url} (pid {state.pid})")
    assert state.api_url.startswith("http://127.0.0.1:") and state.prefect_home == homes["PREFECT_HOME"]
    assert health(state.api_url) == 200  # `start` returns only once the server answers
    assert prefect_api.is_our_server(state.pid)

    status = cli(homes, "server", "status")
    assert status.returncode == 0 and status.stdout.startswith(f"running: {state.api_url} (pid {state.pid}")

    again = cli(homes, "server", "start", "--port", "0")  # one server per Prefect home
    assert again.returncode == 0
    assert again.stdout.startswith(f"already running: {state.api_url} (pid {state.pid})")

    taken = cli({**homes, "PREFECT_HOME": homes["PREFECT_HOME"] + "-other"}, "server", "start",
                "--port", str(state.port))
    assert taken.returncode == 2
    assert taken.stderr.startswith(f"zundacast: error: port {state.port} on 127.0.0.1 is taken")

    stopped = cli(homes, "server", "stop")
    assert stopped.returncode == 0
    assert stopped.stdout.startswith(f"stopped: {state.api_url} (pid {state.pid})")
    assert health(state.api_url) is None and not prefect_api.is_our_server(state.pid)
    assert prefect_api.read_state() is None
    after = cli(homes, "server", "status")
    assert after.returncode == 1 and after.stdout.startswith("not running")
    assert cli(homes, "server", "stop").stdout.startswith("not running")


def test_a_state_file_without_its_server_falls_back_to_the_temporary_api(
        homes: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    port = prefect_api._free_port()
    state = prefect_api.ServerState(pid=os.getpid(), port=port, api_url=f"http://127.0.0.1:{port}/api",
                                    prefect_home=homes["PREFECT_HOME"], log="")
    prefect_api.state_path().parent.mkdir(parents=True, exist_ok=True)
    prefect_api.state_path().write_text(state.model_dump_json(), encoding="utf-8")
    assert prefect_api.use_running_server() is None  # this PID is pytest, not a Prefect server
    assert "PREFECT_API_URL" not in os.environ
    status = cli(homes, "server", "status")
    assert status.returncode == 1
    assert status.stdout.startswith(f"not running (process {os.getpid()} is not its server any more)")

    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:1/api")  # a person's choice wins
    assert prefect_api.use_running_server() is None
    assert os.environ["PREFECT_API_URL"] == "http://127.0.0.1:1/api"


def _post(api_url: str, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = httpx.post(f"{api_url}{path}", json=body, timeout=30)
    response.raise_for_status()
    return response.json()


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_cli_run_with_the_server_up_is_a_flow_run_it_records(homes: dict[str, str], tmp_path: Path) -> None:
    # A Prefect home whose database was made before (the test run's migrated template, when there is
    # one): this test is about the runs the server records; test_server_start_status_stop starts a
    # server on a fresh home.
    seed_home(Path(homes["PREFECT_HOME"]))
    started = cli(homes, "server", "start", "--port", "0")
    assert started.returncode == 0, started.stderr[-3000:]
    state = prefect_api.read_state()
    assert state is not None

    # `zundacast run` of the sample day's date, with one pick: about recording runs, not length
    # (tests/test_flow.py makes the full episode)
    with serve_sample_day(port=0) as base_url:
        show = show_file(tmp_path, base_url, [base_url.removeprefix("http://")])
        runs = [cli(homes, "run", "--show", str(show), "--date", SAMPLE_DATE.isoformat(),
                    "--store", str(tmp_path / "store"), "--json", timeout=1500) for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr[-3000:]
        assert f"Prefect server {state.api_url} (zundacast server)" in run.stderr
    summaries = [json.loads(run.stdout.strip().splitlines()[-1]) for run in runs]
    assert {report["status"] for report in summaries[1]["stages"].values()} == {"cached"}

    flow_runs = _post(state.api_url, "/flow_runs/filter", {"sort": "EXPECTED_START_TIME_ASC"})
    assert [run["name"] for run in flow_runs] == ["zundamon-ai-2026-11-20"] * 2
    assert [run["state"]["type"] for run in flow_runs] == ["COMPLETED", "COMPLETED"]
    states = []  # per flow run: {task run name up to its first "-": state names}
    for flow_run in flow_runs:
        task_runs = _post(state.api_url, "/task_runs/filter",
                          {"flow_runs": {"id": {"any_": [flow_run["id"]]}}})
        named: dict[str, list[str]] = {}
        for task_run in task_runs:
            named.setdefault(task_run["name"].split("-", 1)[0], []).append(task_run["state"]["name"])
        states.append(named)
    first, rerun = states
    stages = {"collect", "rank", "summarize", "script", "synthesize", "upload"}
    assert stages <= set(first) and "Completed" in first["synthesize"]  # the first run filled the caches
    # The rerun: every stage's task run (summarize once per pick) and nothing else, all `Cached` (the
    # first run's collect also ran its feeds' own tasks inside it; a cached collect runs none).
    assert set(rerun) == stages and len(rerun["summarize"]) == len(first["summarize"]) >= 1
    assert {name for names in rerun.values() for name in names} == {"Cached"}, rerun
