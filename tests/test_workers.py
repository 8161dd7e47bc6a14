"""Runs on any worker, tried as an operator would (README "Running it on workers").

A real `prefect server start` on loopback, a process work pool, the project's own prefect.yaml deployed
with `python -m deployments.deploy` from a checkout of a local git repository, two `prefect worker
start` processes with homes of their own, moto's S3 server for both the store and the result storage,
the sample day over loopback, the offline writer and OpenJTalk. A date is made on worker 1; worker 1's
home is deleted (as if it were another machine) and worker 2 reruns the date with `refresh=["upload"]`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.s3 import FAKE_SECRET_KEY, FakeS3, running_s3
from tests.faults.support import share_speech_cache, short_show
from tests.prefect_server import starting_prefect_server
from tests.system import require_system_tool

ROOT = Path(__file__).resolve().parent.parent
POOL = "zundacast"
DEPLOYMENT = "daily-episode/zundamon-ai-daily"
RESULTS_BUCKET = "zundacast-results"


def _run(command: list[str], env: dict[str, str], cwd: Path,
         timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def make_repository(dest: Path) -> Path:
    """A git repository (branch main) holding this working tree's files: what the workers clone."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    git = ["git", "-c", "user.name=zundacast test", "-c", "user.email=test@example.invalid"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(dest)], check=True)
    subprocess.run([*git, "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "the working tree under test"], cwd=dest, check=True)
    return dest


def operator_env(api: str | None, s3: FakeS3) -> dict[str, str]:
    """A shell as an operator has it: no settings of ours, the Prefect server (None: not yet), S3
    credentials."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("PREFECT_", "ZUNDACAST_", "OPENAI_", "VOICEVOX", "AWS_"))}
    env.update({
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": s3.endpoint,
        "AWS_CONFIG_FILE": "/nonexistent/aws-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    })
    if api is not None:
        env["PREFECT_API_URL"] = api
    return env


@pytest.fixture
def prefect_server_up(tmp_path: Path) -> Iterator[Callable[[], str]]:
    """A real server, starting while the test prepares; calling it waits until it answers (its API URL).

    Services: the API, and the task run recorder (the test reads the stages' task run states)."""
    with starting_prefect_server(tmp_path / "server-home", tmp_path / "server.log",
                                 needed=("task_run_recorder",)) as up:
        yield up


def prefect_only_python(root: Path, env: dict[str, str]) -> Path:
    """A virtual environment with Prefect (the locked version) and nothing of ours, as on a fresh worker:
    a run can only succeed if the flow runs from the clone's own environment."""
    constraints, venv = root / "constraints.txt", root / "worker-venv"
    # The versions come from this checkout's lock file; the environment is made in the worker's own
    # folder, where no project settings of ours apply (a worker machine has no checkout: our
    # `compile-bytecode` setting would compile 4881 files, ~5.5 CPU-s, for two worker processes).
    for command, cwd in ((["uv", "export", "--frozen", "--no-hashes", "--no-dev", "--no-emit-project",
                           "--quiet", "-o", str(constraints)], ROOT),
                         (["uv", "venv", "--quiet", "--python", sys.executable, str(venv)], root),
                         (["uv", "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
                           "-c", str(constraints), "prefect"], root)):
        done = _run(command, env, cwd)
        assert done.returncode == 0, (command, done.stderr[-3000:])
    python = venv / "bin" / "python"
    assert _run([str(python), "-c", "import pyopenjtalk"], env, root).returncode != 0
    return python


class Worker:
    """`prefect worker start --pool zundacast` with its own PREFECT_HOME and ZUNDACAST_HOME."""

    def __init__(self, name: str, root: Path, env: dict[str, str], python: Path) -> None:
        self.name = name
        self.home = root / name / "zundacast-home"
        self.log = root / f"{name}.log"
        (root / name / "prefect-home").mkdir(parents=True)
        path = [entry for entry in env["PATH"].split(os.pathsep) if entry != str(Path(sys.executable).parent)]
        env = {**env, "PREFECT_HOME": str(root / name / "prefect-home"), "ZUNDACAST_HOME": str(self.home),
               "PATH": os.pathsep.join([str(python.parent), *path]), "VIRTUAL_ENV": str(python.parent.parent)}
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [str(python), "-m", "prefect", "worker", "start", "--pool", POOL, "--name", name],
                env=env, cwd=root, stdout=out, stderr=subprocess.STDOUT)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    def stop(self) -> None:
        # Killed, not asked: its run is over (or the test failed), and on SIGTERM a worker waits out a
        # graceful shutdown that nothing here looks at (it used the helper's whole 20 s per worker).
        self.process.kill()
        self.process.wait()


def run_on(worker: Worker, api: str, parameters: dict[str, Any]) -> tuple[Any, float]:
    """Run the deployment (the only worker polling is `worker`) and wait for the end; the wall time."""
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    started = time.perf_counter()
    with temporary_settings({PREFECT_API_URL: api}):
        flow_run = run_deployment(DEPLOYMENT, parameters=parameters, timeout=900, poll_interval=2)
    seconds = time.perf_counter() - started
    assert flow_run.state is not None and flow_run.state.is_completed(), (flow_run.state, worker.tail())
    return flow_run, seconds


def read_deployment(api: str) -> Any:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        return client.read_deployment_by_name(DEPLOYMENT)


def deployment_names(api: str) -> list[str]:
    """The names of every deployment the server holds (what `prefect deployment ls` lists)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        return [deployment.name for deployment in client.read_deployments()]


def stage_states(api: str, flow_run_id: Any) -> dict[str, str]:
    """Stage task name -> its final state's name (e.g. "Cached", "Completed"), from the server."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        only_this_run = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        task_runs = client.read_task_runs(flow_run_filter=only_this_run)
    states: dict[str, list[str]] = {}
    for task_run in task_runs:
        stage = task_run.name.split("-")[0]
        states.setdefault(stage, []).append(task_run.state.name if task_run.state else "?")
    # summarize runs once per pick: it counts as cached only if every one was
    return {stage: names[0] if len(set(names)) == 1 else "/".join(sorted(names))
            for stage, names in states.items()}


def test_deploy_with_a_value_missing_fails_at_deploy_with_a_named_error(tmp_path: Path) -> None:
    checkout = make_repository(tmp_path / "checkout")
    unset = ("ZUNDACAST_STORE", "PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK", "ZUNDACAST_GIT_REPOSITORY")
    env = {name: value for name, value in os.environ.items() if name not in unset}
    done = _run([sys.executable, "-m", "deployments.deploy"], env, checkout, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert all(line.startswith("zundacast: error: ") for line in lines), done.stderr
    # all three missing values named at once: no origin remote, no store, no result storage block
    assert any("ZUNDACAST_GIT_REPOSITORY is not set" in line for line in lines)
    assert any("ZUNDACAST_STORE is not set" in line for line in lines)
    assert any("PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK is not set" in line for line in lines)
    assert "Traceback" not in done.stderr

    relative = _run([sys.executable, "-m", "deployments.deploy", "--check", "--repository",
                     checkout.as_uri(), "--branch", "main", "--store", "./public",
                     "--results-block", "s3-bucket/x"], env, checkout, timeout=120)
    assert relative.returncode == 2
    assert "ZUNDACAST_STORE='./public' is a relative path" in relative.stderr

    no_branch = _run([sys.executable, "-m", "deployments.deploy", "--value", "branch", "--repository",
                      checkout.as_uri(), "--branch", "release"], env, checkout, timeout=120)
    assert no_branch.returncode == 2
    assert "ZUNDACAST_GIT_BRANCH='release': no such branch" in no_branch.stderr


def test_upload_uses_the_local_mp3_first_then_fetches_the_work_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tasks.synthesize import keep_in_work_area
    from tasks.upload import BundleMismatch, publish_episode
    from tests.test_upload import DAY2, sample_inputs, sample_show
    from zundacast.publishing.feed import episode_mp3_key
    from zundacast.storage import open_store

    store = open_store(str(tmp_path / "public"))
    bundle, script, ranking, summaries = sample_inputs(DAY2, tmp_path / "machine-1")
    bundle = keep_in_work_area(bundle, store)
    assert bundle.work_key == f".work/{bundle.sha256}.mp3"
    work_copy = tmp_path / "public" / bundle.work_key
    assert work_copy.read_bytes() == Path(bundle.mp3_path).read_bytes()

    # the local file is there: it is what gets published, nothing is fetched
    monkeypatch.setenv("ZUNDACAST_HOME", str(tmp_path / "machine-2"))
    publish_episode(bundle, script, ranking, summaries, sample_show(), store)
    assert not (tmp_path / "machine-2").exists()

    # another machine: no local file, the work copy is fetched, checked and published
    shutil.rmtree(tmp_path / "machine-1")
    publish_episode(bundle, script, ranking, summaries, sample_show(), store)
    fetched = tmp_path / "machine-2" / "work" / "fetched" / f"episode-{bundle.sha256[:12]}.mp3"
    assert fetched.read_bytes() == work_copy.read_bytes()
    published = (tmp_path / "public" / episode_mp3_key("zundamon-test", DAY2)).read_bytes()
    assert published == work_copy.read_bytes()
    records = json.loads((tmp_path / "public" / "episodes.json").read_text())["episodes"]
    assert [record["sha256"] for record in records] == [bundle.sha256]
    assert ".work" not in (tmp_path / "public" / "feed.xml").read_text()

    # a work copy that is not what its name says is never published
    fetched.unlink()
    work_copy.write_bytes(b"something else")
    with pytest.raises(BundleMismatch, match="--refresh synthesize"):
        publish_episode(bundle, script, ranking, summaries, sample_show(), store)
    work_copy.unlink()
    with pytest.raises(BundleMismatch, match=r"neither at .* nor in the store's work area"):
        publish_episode(bundle, script, ranking, summaries, sample_show(), store)
    assert (tmp_path / "public" / episode_mp3_key("zundamon-test", DAY2)).read_bytes() == published


def test_a_run_on_a_worker_never_publishes_into_its_temporary_clone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.daily_episode import daily_episode
    from zundacast.sample_day import SAMPLE_DATE, sample_show
    from zundacast.storage import TemporaryStoreError, check_store_outlives_run

    clone = tmp_path / "tmpab12prefect" / "zundacast-main"
    clone.mkdir(parents=True)
    monkeypatch.chdir(clone)
    shared = tmp_path / "shared-store"
    # outside a worker (zundacast run, deployments.serve) a relative store is the user's own folder
    monkeypatch.delenv("PREFECT__WORKER_NAME", raising=False)
    check_store_outlives_run("./public", str(clone / "public"))

    monkeypatch.setenv("PREFECT__WORKER_NAME", "worker-1")
    for configured, resolved in (("./public", clone / "public"), (str(clone / "out"), clone / "out"),
                                 (clone.as_uri(), clone), ("public", clone / "public")):
        with pytest.raises(TemporaryStoreError, match=r"ZUNDACAST_STORE: .*temporary working folder"):
            check_store_outlives_run(configured, str(resolved))
    check_store_outlives_run(str(shared), str(shared))
    check_store_outlives_run("s3://bucket/zundamon-ai", "s3://bucket/zundamon-ai")

    # the flow checks before any stage runs: nothing is collected, nothing is written
    show = sample_show("http://127.0.0.1:9")
    with pytest.raises(TemporaryStoreError, match=r"deployments\.deploy --store"):
        daily_episode.fn(episode_date=SAMPLE_DATE, show=show, store="./public")
    assert list(clone.iterdir()) == []


@pytest.mark.system
@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_date_made_on_one_worker_is_rerun_on_another_and_published_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_server_up: Callable[[], str]) -> None:
    from zundacast.publishing.feed import episode_mp3_key
    from zundacast.sample_day import SAMPLE_DATE, serve_sample_day

    require_system_tool("git")  # the pull steps need git and uv on the worker's PATH, nothing else
    require_system_tool("uv")
    with running_s3(monkeypatch, prefix="zundamon-ai") as s3, serve_sample_day(port=0) as base_url, \
            ThreadPoolExecutor(max_workers=2) as meanwhile:
        s3.client().create_bucket(Bucket=RESULTS_BUCKET)
        # the workers' Python is made while the server starts and the operator deploys
        worker_python_made = meanwhile.submit(prefect_only_python, tmp_path, operator_env(None, s3))
        origin = make_repository(tmp_path / "origin")  # the repository the workers clone
        checkout = tmp_path / "checkout"  # the operator's clone, where they deploy from
        subprocess.run(["git", "clone", "-q", str(origin), str(checkout)], check=True)
        api = prefect_server_up()
        # The workers' clones sync into one environment folder: worker 1's pull step builds it from the
        # lock file (144 packages, their bytecode compiled: ~12 CPU-s), worker 2's finds it complete and
        # only installs its own clone of the project. What differs between machines (homes, work files)
        # stays apart.
        env = operator_env(api, s3)
        on_workers = {**env, "UV_PROJECT_ENVIRONMENT": str(tmp_path / "clone-venv")}
        deploying = {**env, "PREFECT_HOME": str(tmp_path / "deployer-home")}

        # the pool and the results block do not depend on each other: made side by side
        pool_made = meanwhile.submit(_run, [sys.executable, "-m", "prefect", "work-pool", "create", POOL,
                                            "--type", "process"], deploying, checkout)
        block = _run([sys.executable, "-m", "deployments.results_block", "--bucket", RESULTS_BUCKET,
                      "--endpoint-url", s3.endpoint], deploying, checkout)
        pool = pool_made.result()
        assert pool.returncode == 0, pool.stdout + pool.stderr
        assert block.returncode == 0, block.stderr
        results_block = block.stdout.strip().splitlines()[-1]
        assert results_block == "s3-bucket/zundacast-results"

        # worker 1 (the only worker polling until it stops) starts while the operator deploys
        worker_python = worker_python_made.result()
        # it speaks from the test run's utterance cache (this is about workers, not speech)
        share_speech_cache(tmp_path / "worker-1" / "zundacast-home")
        worker_1 = Worker("worker-1", tmp_path, on_workers, worker_python)
        try:
            # Plain `prefect deploy --all` with the store unset fails in prefect.yaml's build, naming it.
            bare = _run([sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"],
                        {**deploying, "PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK": results_block}, checkout)
            assert bare.returncode != 0
            assert "zundacast: error: ZUNDACAST_STORE is not set" in bare.stdout + bare.stderr, bare.stdout
            assert "zundamon-ai-daily" not in deployment_names(api)

            deployed = _run([sys.executable, "-m", "deployments.deploy", "--store", s3.url,
                             "--results-block", results_block], deploying, checkout)
            assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
            deployment = read_deployment(api)
            # fixed at deploy time, in the deployment itself: nothing left for a worker's shell to fill in
            assert deployment.pull_steps[0]["prefect.deployments.steps.git_clone"] == {
                "id": "clone-step", "repository": origin.as_uri(), "branch": "main"}
            assert deployment.pull_steps[1]["prefect.deployments.steps.run_shell_script"]["directory"] \
                == "{{ clone-step.directory }}"
            job_env = deployment.job_variables["env"]
            assert (job_env["ZUNDACAST_STORE"], job_env["PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK"]) \
                == (s3.url, results_block)
            assert not any(name.startswith("AWS_") for name in job_env)  # credentials stay on the workers

            show = short_show(base_url, picks=1).model_dump(mode="json")
            parameters = {"episode_date": SAMPLE_DATE.isoformat(), "show": show}
            first, first_s = run_on(worker_1, api, parameters)
        finally:
            worker_1.stop()
        first_record = json.loads(s3.client().get_object(
            Bucket=s3.bucket, Key=f"zundamon-ai/{SAMPLE_DATE}/episode.json")["Body"].read())
        shutil.rmtree(worker_1.home)  # worker 2 stands for another machine: nothing of worker 1's is left

        worker_2 = Worker("worker-2", tmp_path, on_workers, worker_python)
        try:
            second, second_s = run_on(worker_2, api, {**parameters, "refresh": ["upload"]})
        finally:
            worker_2.stop()

        first_stages, second_stages = stage_states(api, first.id), stage_states(api, second.id)
        keys = s3.keys()
        episodes = json.loads(s3.client().get_object(
            Bucket=s3.bucket, Key="zundamon-ai/episodes.json")["Body"].read())
        feed = s3.client().get_object(Bucket=s3.bucket, Key="zundamon-ai/feed.xml")["Body"].read().decode()
        mp3_head = s3.head(f"zundamon-ai/{episode_mp3_key('zundamon-ai', SAMPLE_DATE)}")
        results = s3.client()
        result_objects = [results.get_object(Bucket=RESULTS_BUCKET, Key=item["Key"])["Body"].read()
                          for page in results.get_paginator("list_objects_v2").paginate(Bucket=RESULTS_BUCKET)
                          for item in page.get("Contents", [])]

    report = {"worker-1": {"wall_s": round(first_s, 1), "flow_run_s": first.total_run_time.total_seconds(),
                           "stages": first_stages},
              "worker-2": {"wall_s": round(second_s, 1), "flow_run_s": second.total_run_time.total_seconds(),
                           "stages": second_stages}}
    print("two workers:", json.dumps(report, ensure_ascii=False))

    assert all(state == "Completed" for state in first_stages.values()), first_stages
    reused = ("collect", "rank", "summarize", "script", "synthesize")
    assert {stage: second_stages.get(stage) for stage in reused} == dict.fromkeys(reused, "Cached"), (
        second_stages)
    assert second_stages["upload"] == "Completed", second_stages
    # worker 2 synthesized nothing and found the MP3 in the store's work area, by its hash
    sha = first_record["sha256"]
    assert f"zundamon-ai/.work/{sha}.mp3" in keys
    assert (worker_2.home / "work" / "fetched" / f"episode-{sha[:12]}.mp3").is_file()
    assert not (worker_2.home / "tts").exists()
    # published once: one entry for the date, the same episode, nothing of the work area listed
    entries = episodes["episodes"] if isinstance(episodes, dict) else episodes
    assert [(entry["date"], entry["sha256"]) for entry in entries] == [(SAMPLE_DATE.isoformat(), sha)]
    assert mp3_head["Metadata"]["sha256"] == sha
    assert len(re.findall(r"<item[ >]", feed)) == 1 and ".work" not in feed
    # the workers' S3 secret is in neither Prefect's database (deployment, block) nor the shared results
    assert result_objects
    server_files = [path for path in (tmp_path / "server-home").rglob("*") if path.is_file()]
    assert server_files
    for blob in [*result_objects, *(path.read_bytes() for path in server_files)]:
        assert FAKE_SECRET_KEY.encode() not in blob
