"""A broken environment or bad input: one `zundacast: error:` line naming the setting and what to do, exit 2,
no traceback (unless --verbose).

Each row runs `zundacast run` in a subprocess, as a user would. Full and read-only disks are real: tmpfs
mounts made for the test (this needs root and `mount`; with ZUNDACAST_REQUIRE_SYSTEM_TESTS set, their
absence fails instead of skipping). The S3 endpoint is a loopback port nobody listens on.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.faults.support import free_port
from tests.system import system_unavailable

ROOT = Path(__file__).resolve().parents[2]
VALID_SHOW = ROOT / "shows" / "zundamon-ai.toml"
ERROR_LINE = "zundacast: error: "


@dataclass
class Outcome:
    status: int
    stderr: str
    stdout: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith(ERROR_LINE)]


def zundacast(*args: str, env: dict[str, str], cwd: Path = ROOT, timeout: float = 120) -> Outcome:
    done = subprocess.run([sys.executable, "-m", "zundacast.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    return Outcome(done.returncode, done.stderr, done.stdout)


def base_env(tmp: Path) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("AWS_", "OPENAI_", "ZUNDACAST_", "VOICEVOX_"))}
    env.update(ZUNDACAST_HOME=str(tmp / "home"), PREFECT_HOME=str(tmp / "prefect"),
               PYTHONPATH=str(ROOT))
    return env


def _require_mounts() -> None:
    if os.geteuid() != 0 or not shutil.which("mount"):
        system_unavailable("mounting a tmpfs needs root and mount")


@contextmanager
def tmpfs(where: Path, *, full: bool = False, read_only: bool = False) -> Iterator[Path]:
    """A 256 KiB tmpfs at `where`: filled to the last byte (`full`) or mounted read-only."""
    _require_mounts()
    where.mkdir(parents=True, exist_ok=True)
    options = "size=256k" + (",ro" if read_only else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        system_unavailable(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        if full:
            try:
                with (where / "filler").open("wb") as filler:
                    while True:
                        filler.write(b"\0" * 4096)
                        filler.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def show_with(tmp: Path, *replacements: tuple[str, str], name: str = "show.toml") -> Path:
    """The bundled show file with `old` -> `new` applied (each `old` must be there)."""
    text = VALID_SHOW.read_text("utf-8")
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")
    return path


@dataclass
class Row:
    """One bad environment: `prepare(tmp, env, mounts)` sets it up (mounts entered on `mounts`) and returns
    the CLI's arguments; the error line must hold every string in `named`."""

    prepare: Callable[[Path, dict[str, str], ExitStack], list[str]]
    named: list[str] = field(default_factory=list)


def _full_store(tmp: Path, env: dict[str, str], mounts: ExitStack) -> list[str]:
    store = tmp / "full-store"
    mounts.enter_context(tmpfs(store, full=True))
    return ["run", "--store", str(store)]


def _read_only_store(tmp: Path, env: dict[str, str], mounts: ExitStack) -> list[str]:
    store = tmp / "ro-store"
    mounts.enter_context(tmpfs(store, read_only=True))
    return ["run", "--store", str(store / "public")]


def _store_is_a_file(tmp: Path, env: dict[str, str], mounts: ExitStack) -> list[str]:
    (tmp / "a-file").write_text("not a folder")
    env["ZUNDACAST_STORE"] = str(tmp / "a-file")
    return ["run"]


def _full_home(tmp: Path, env: dict[str, str], mounts: ExitStack) -> list[str]:
    mounts.enter_context(tmpfs(tmp / "full-home", full=True))
    env["ZUNDACAST_HOME"] = str(tmp / "full-home" / "zundacast")
    return ["run", "--store", str(tmp / "public")]


def _read_only_home(tmp: Path, env: dict[str, str], mounts: ExitStack) -> list[str]:
    mounts.enter_context(tmpfs(tmp / "ro-home", read_only=True))
    env["ZUNDACAST_HOME"] = str(tmp / "ro-home")
    return ["run", "--store", str(tmp / "public")]


def _read_only_prefect_home(tmp: Path, env: dict[str, str], mounts: ExitStack) -> list[str]:
    mounts.enter_context(tmpfs(tmp / "ro-prefect", read_only=True))
    env["PREFECT_HOME"] = str(tmp / "ro-prefect" / "prefect")
    return ["run", "--store", str(tmp / "public")]


def _unreachable_s3(tmp: Path, env: dict[str, str], mounts: ExitStack) -> list[str]:
    env.update(AWS_ENDPOINT_URL_S3=f"http://127.0.0.1:{free_port()}",
               AWS_ACCESS_KEY_ID="AKIAFAKEFORTESTS0001", AWS_SECRET_ACCESS_KEY="fake-secret-for-tests-0000")
    return ["run", "--store", "s3://zundacast-test/show"]


def _number(old: str, new: str) -> Callable[[Path, dict[str, str], ExitStack], list[str]]:
    def prepare(tmp: Path, env: dict[str, str], mounts: ExitStack) -> list[str]:
        return ["run", "--show", str(show_with(tmp, (old, new))), "--store", str(tmp / "public")]

    return prepare


def _args(*args: str) -> Callable[[Path, dict[str, str], ExitStack], list[str]]:
    return lambda tmp, env, mounts: [arg.replace("{tmp}", str(tmp)) for arg in args]


def _store_in_show(url: str) -> Callable[[Path, dict[str, str], ExitStack], list[str]]:
    def prepare(tmp: Path, env: dict[str, str], mounts: ExitStack) -> list[str]:
        show = show_with(tmp, ('# url = "s3://my-bucket/zundamon-ai"', f'url = "{url}"'),
                         name="shows/mine.toml")
        return ["run", "--show", str(show)]

    return prepare


AUDIO = "[audio]\nbitrate_kbps = 96\n"
ROWS: dict[str, Row] = {
    "full store disk": Row(_full_store, ["no space left", "full-store", "--store"]),
    "read-only store": Row(_read_only_store, ["read-only", "ro-store", "--store"]),
    "store path is a file": Row(_store_is_a_file, ["a-file", "ZUNDACAST_STORE"]),
    "full ZUNDACAST_HOME": Row(_full_home, ["ZUNDACAST_HOME", "full-home"]),
    "read-only ZUNDACAST_HOME": Row(_read_only_home, ["ZUNDACAST_HOME", "read-only"]),
    "read-only PREFECT_HOME": Row(_read_only_prefect_home, ["PREFECT_HOME", "read-only"]),
    "unreachable S3 endpoint": Row(_unreachable_s3,
                                   ["AWS_ENDPOINT_URL_S3", "not reachable", "zundacast-test"]),
    "date 0001-01-01": Row(_args("run", "--date", "0001-01-01", "--store", "{tmp}/public"),
                           ["0001-01-01", "YYYY-MM-DD"]),
    "sample_rate = 0": Row(_number(AUDIO, AUDIO + "sample_rate = 0\n"), ["audio.sample_rate", "44100"]),
    "sentence_pause_s = 1e6": Row(_number(AUDIO, AUDIO + "sentence_pause_s = 1e6\n"),
                                  ["audio.sentence_pause_s", "less than or equal to 5"]),
    "section_pause_s = -1": Row(_number(AUDIO, AUDIO + "section_pause_s = -1\n"), ["audio.section_pause_s"]),
    "bitrate_kbps = 100000": Row(_number(AUDIO, "[audio]\nbitrate_kbps = 100000\n"), ["audio.bitrate_kbps"]),
    "target_lufs = 0": Row(_number("target_lufs = -16.0", "target_lufs = 0"), ["audio.target_lufs"]),
    "voice concurrency = 100000": Row(_number("concurrency = 2", "concurrency = 100000"),
                                      ["voice.concurrency"]),
    "collect concurrency = 0": Row(_number("concurrency = 8", "concurrency = 0"), ["collect.concurrency"]),
    "collect max_bytes = 1e12": Row(_number("max_bytes = 3000000", "max_bytes = 1000000000000"),
                                    ["collect.max_bytes"]),
    "collect timeout_s = 1e9": Row(_number("timeout_s = 10", "timeout_s = 1e9"), ["collect.timeout_s"]),
    "window_hours = 1e9": Row(_number("window_hours = 24", "window_hours = 1e9"), ["schedule.window_hours"]),
    "voicevox speed_scale = 50": Row(_number("speed_scale = 1.1", "speed_scale = 50"),
                                     ["voice.voicevox.speed_scale"]),
    "llm concurrency = 1000": Row(_number("concurrency = 4", "concurrency = 1000"), ["llm.concurrency"]),
    "--store s3://bucket/../x": Row(_args("run", "--store", "s3://bucket/../x"), ["--store", "'..'"]),
    "--store with .. in a folder": Row(_args("run", "--store", "{tmp}/a/../../b"), ["--store", "'..'"]),
    '[storage] url = "../../etc"': Row(_store_in_show("../../etc"), ["storage.url", "'..'", "mine.toml"]),
}


@pytest.mark.parametrize("row", list(ROWS), ids=list(ROWS))
def test_bad_environment_row_is_one_named_error_line(row: str, tmp_path: Path) -> None:
    env = base_env(tmp_path)
    with ExitStack() as mounts:
        args = ROWS[row].prepare(tmp_path, env, mounts)
        outcome = zundacast(*args, env=env)
    assert outcome.status == 2, outcome.stderr
    assert len(outcome.error_lines) == 1, outcome.stderr
    assert "Traceback" not in outcome.stderr
    (line,) = outcome.error_lines
    for named in ROWS[row].named:
        assert named in line, (named, line)
    assert not (tmp_path / "prefect" / "prefect.db").exists()  # refused before Prefect started


def test_verbose_adds_the_traceback_before_the_same_line(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    args = ["run", "--store", "s3://bucket/../x"]
    quiet, verbose = zundacast(*args, env=env), zundacast(*args, "--verbose", env=env)
    assert verbose.status == quiet.status == 2
    assert "Traceback" in verbose.stderr
    assert verbose.error_lines == quiet.error_lines
    assert verbose.stderr.rstrip().splitlines()[-1] == quiet.error_lines[0]


def test_a_relative_store_in_a_show_file_is_beside_the_file(tmp_path: Path) -> None:
    """Run from another folder: the error names the store beside the show file, not one in the cwd."""
    from zundacast.show import load_show

    show = show_with(tmp_path, ('# url = "s3://my-bucket/zundamon-ai"', 'url = "episodes"'),
                     name="podcast/show.toml")
    assert load_show(str(show)).storage.url == str((tmp_path / "podcast" / "episodes").resolve())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "podcast" / "episodes").write_text("a file where the store folder should be")
    outcome = zundacast("run", "--show", str(show), env=base_env(tmp_path), cwd=elsewhere)
    assert outcome.status == 2 and len(outcome.error_lines) == 1, outcome.stderr
    assert str(tmp_path / "podcast" / "episodes") in outcome.error_lines[0]
    assert "show.toml" in outcome.error_lines[0]  # the setting that chose it
    assert not (elsewhere / "episodes").exists()


def test_an_unset_store_stays_in_the_working_folder(tmp_path: Path) -> None:
    from zundacast.show import load_show

    assert load_show(str(VALID_SHOW)).storage.url == "./public"


@pytest.mark.slow
def test_a_failure_inside_a_prefect_task_is_one_line_without_prefect_tracebacks(
        tmp_path: Path, prefect_api_url: str) -> None:
    """Every feed refused (a loopback address, not allowed): the collect task fails inside Prefect.
    Prefect logs the task's and the flow's failure with tracebacks; without --verbose none of it shows.
    (The session's Prefect API: the failure comes from the task, whichever API records it.)"""
    show = tmp_path / "lonely.toml"
    show.write_text('[show]\nid = "lonely"\ntitle = "ひとり放送"\n\n'
                    '[[feeds]]\nname = "nowhere"\nurl = "http://127.0.0.1:9/feed.xml"\n', "utf-8")
    outcome = zundacast("run", "--show", str(show), "--store", str(tmp_path / "public"),
                        env={**base_env(tmp_path), "PREFECT_API_URL": prefect_api_url}, timeout=300)
    assert outcome.status == 2, outcome.stderr
    assert len(outcome.error_lines) == 1, outcome.stderr
    assert "Traceback" not in outcome.stderr
    assert "Finished in state Failed" not in outcome.stderr
    line = outcome.error_lines[0]
    assert "nowhere" in line and "min_candidates" in line, line  # the feed and the setting
    assert "▶ collect" in outcome.stderr  # it did start: the failure came from inside the task
    assert not (tmp_path / "public" / "feed.xml").exists()


# --- how the CLI reports what escapes a run (in-process: the mapping itself) --------------------------------

def _reported(exc: BaseException, capsys: pytest.CaptureFixture[str],
              verbose: bool = False) -> tuple[int, str]:
    from zundacast.cli import _report

    try:
        raise exc
    except BaseException as raised:  # a real traceback, as a failed run has
        status = _report(raised, verbose=verbose)
    return status, capsys.readouterr().err


def test_a_disk_error_wrapped_by_a_library_names_the_setting_that_put_the_path_there(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZUNDACAST_HOME", str(tmp_path / "home"))
    full = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "home" / "tts" / "ab.npz"))
    wrapped = RuntimeError("task failed")
    wrapped.__cause__ = full
    status, err = _reported(wrapped, capsys)
    (line,) = err.splitlines()
    assert status == 2 and line.startswith(ERROR_LINE)
    assert "no space left" in line and "ZUNDACAST_HOME" in line and "ab.npz" in line


def test_an_unexpected_error_is_one_line_asking_for_a_report_with_exit_1(
        capsys: pytest.CaptureFixture[str]) -> None:
    status, err = _reported(TypeError("unsupported operand"), capsys)
    assert status == 1
    assert err.splitlines() == [f"{ERROR_LINE}unexpected TypeError: unsupported operand (a bug: rerun with "
                                "--verbose for the traceback and report it)"]


def test_a_multi_line_message_becomes_one_line_and_secrets_are_redacted(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from zundacast.errors import ZundacastError

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-cli-secret-1234567")
    status, err = _reported(ZundacastError("first\nsecond with sk-test-cli-secret-1234567"), capsys)
    assert status == 2 and err.splitlines() == [f"{ERROR_LINE}first second with [REDACTED]"]


def test_verbose_puts_the_traceback_before_the_line(capsys: pytest.CaptureFixture[str]) -> None:
    from zundacast.errors import ZundacastError

    status, err = _reported(ZundacastError("store refused"), capsys, verbose=True)
    assert status == 2 and "Traceback" in err and err.splitlines()[-1] == f"{ERROR_LINE}store refused"


def test_the_readme_sets_what_an_offline_prefect_server_needs() -> None:
    """The README's server commands turn telemetry off (offline it logs an error every 10 minutes), as
    the CLI does for the temporary API it starts."""
    import re

    from zundacast.cli import _PREFECT_DEFAULTS

    readme = (ROOT / "README.md").read_text("utf-8")
    section = readme.split("## Running it as a service (Prefect)", 1)[1].split("\n## ", 1)[0]
    commands = re.search(r"```sh\n(.*?)```", section, re.S)
    assert commands, "the section starts with its commands"
    block = commands.group(1)
    for name in ("PREFECT_SERVER_ANALYTICS_ENABLED", "DO_NOT_TRACK"):
        assert f"{name}={_PREFECT_DEFAULTS[name]}" in block, name
        # set before the server starts
        assert block.index(f"{name}=") < block.index("prefect server start")


def test_an_s3_store_whose_bucket_is_missing_or_without_credentials_is_named(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Against moto's S3 over HTTP: a bucket that does not exist, then no credentials at all; and a
    bucket that exists passes the check (so the check asks the right question)."""
    from tests.fakes.s3 import running_s3

    with running_s3(monkeypatch) as s3:
        env = base_env(tmp_path)
        env.update({name: value for name, value in os.environ.items() if name.startswith("AWS_")})
        missing = zundacast("run", "--store", "s3://no-such-bucket-zc/show", env=env)
        assert missing.status == 2 and len(missing.error_lines) == 1, missing.stderr
        assert "'no-such-bucket-zc' does not exist" in missing.error_lines[0]
        assert s3.endpoint in missing.error_lines[0] and "--store" in missing.error_lines[0]

        anonymous = {name: value for name, value in env.items()
                     if name not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
        anonymous["AWS_EC2_METADATA_DISABLED"] = "true"  # no instance-metadata lookup for credentials
        unsigned = zundacast("run", "--store", s3.url, env=anonymous)
        assert unsigned.status == 2 and len(unsigned.error_lines) == 1, unsigned.stderr
        assert "AWS_ACCESS_KEY_ID" in unsigned.error_lines[0]

        from zundacast.preflight import check_s3_store

        check_s3_store(s3.url, "--store")  # the bucket exists: no complaint
