"""Deploy the daily episode to the `zundacast` work pool: `python -m deployments.deploy [options]`.

A run on a worker sees only what the deployment holds and what the worker's environment gives it. So
every value that must be the same on every worker is fixed here, at deploy time, and checked before
anything is saved: a missing or unusable value fails the deploy with one line
`zundacast: error: ...` (exit 2), never a run.

- the repository the workers clone: `--repository` / ZUNDACAST_GIT_REPOSITORY (default: `origin`);
- its branch: `--branch` / ZUNDACAST_GIT_BRANCH (default: this checkout's branch);
- where episodes are published: `--store` / ZUNDACAST_STORE (required);
- the shared result storage: `--results-block` / PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK (required).

Credentials are not among them: each worker brings its own (AWS_*, OPENAI_API_KEY, ...).

With no `--check`/`--value`, the values are checked and `prefect deploy --all` runs with them; its
build steps (prefect.yaml) call `--value NAME` to read each one, so a plain `prefect deploy --all`
resolves and checks exactly the same values.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

ROOT = Path(__file__).resolve().parent.parent
WORK_POOL = "zundacast"
VALUES = ("repository", "branch", "store", "results-block")


class DeployError(Exception):
    """A value the deployment needs is missing or unusable; the message says which and what to do."""


@dataclass(frozen=True)
class DeploySettings:
    repository: str
    branch: str
    store: str
    results_block: str

    def value(self, name: str) -> str:
        return getattr(self, name.replace("-", "_"))

    def environment(self) -> dict[str, str]:
        """The variables `prefect deploy` (and our build steps) read."""
        return {"ZUNDACAST_GIT_REPOSITORY": self.repository, "ZUNDACAST_GIT_BRANCH": self.branch,
                "ZUNDACAST_STORE": self.store, "PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK": self.results_block}


def _git(*args: str, cwd: Path = ROOT) -> str:
    """A git command's output, or "" when it fails (no git, not a checkout, no such remote)."""
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def resolve_repository(env: Mapping[str, str]) -> str:
    repository = env.get("ZUNDACAST_GIT_REPOSITORY", "").strip() or _git("remote", "get-url", "origin")
    if not repository:
        raise DeployError(
            "ZUNDACAST_GIT_REPOSITORY is not set and this checkout has no `origin` remote: set it (or pass "
            "--repository) to the git URL every worker can clone, e.g. https://github.com/you/zundacast.git")
    if "://" not in repository and not repository.startswith("git@"):
        path = Path(repository).expanduser()
        if not path.is_absolute():
            raise DeployError(
                f"ZUNDACAST_GIT_REPOSITORY={repository!r} is a relative path: workers clone from their own "
                "folders; give a URL (https://, ssh://, git@host:..., file:///absolute/path)")
        repository = path.resolve().as_uri()
    return repository


def resolve_branch(env: Mapping[str, str], repository: str) -> str:
    branch = env.get("ZUNDACAST_GIT_BRANCH", "").strip() or _git("rev-parse", "--abbrev-ref", "HEAD")
    if not branch or branch == "HEAD":
        raise DeployError(
            "ZUNDACAST_GIT_BRANCH is not set and this checkout is on no branch: set it (or pass --branch) "
            "to the branch the workers run, e.g. main")
    if not _git("ls-remote", "--heads", repository, branch):
        raise DeployError(
            f"ZUNDACAST_GIT_BRANCH={branch!r}: no such branch in {repository} (or it cannot be read from "
            "here): push the branch, or fix ZUNDACAST_GIT_REPOSITORY / ZUNDACAST_GIT_BRANCH")
    return branch


def resolve_store(env: Mapping[str, str]) -> str:
    store = env.get("ZUNDACAST_STORE", "").strip()
    if not store:
        raise DeployError(
            "ZUNDACAST_STORE is not set: set it (or pass --store) to where every worker publishes, "
            "s3://bucket/prefix or an absolute path all workers share; a run's own folder is a temporary "
            "clone, deleted after the run")
    if store.startswith("s3://"):
        parsed = urlparse(store)
        if not parsed.netloc or "@" in parsed.netloc or parsed.query:
            raise DeployError(f"ZUNDACAST_STORE={store!r}: expected s3://bucket or s3://bucket/prefix "
                              "(credentials come from each worker's environment, never the URL)")
        return store.rstrip("/")
    path = Path(unquote(urlparse(store).path)) if store.startswith("file://") else Path(store).expanduser()
    if not path.is_absolute():
        raise DeployError(
            f"ZUNDACAST_STORE={store!r} is a relative path: on a worker it would resolve inside the run's "
            "temporary clone and the episode would be deleted with it; use s3://bucket/prefix or an "
            "absolute path every worker shares")
    return str(path)


def resolve_results_block(env: Mapping[str, str]) -> str:
    block = env.get("PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK", "").strip()
    create = ("create one with `uv run --extra aws-results python -m deployments.results_block --bucket "
              "BUCKET` and pass the name it prints")
    if not block:
        raise DeployError(
            "PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK is not set: workers share stage results (a rerun on any "
            f"worker reuses them) only through a result storage block; {create}")
    slug, _, name = block.partition("/")
    if not slug or not name or "/" in name:
        raise DeployError(f"PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK={block!r}: expected BLOCK-TYPE/NAME, "
                          "e.g. s3-bucket/zundacast-results")
    return block


def check_block_exists(block: str) -> None:
    """The result storage block is saved on the Prefect server the deployment goes to."""
    try:
        from prefect.client.orchestration import get_client
        from prefect.exceptions import ObjectNotFound
    except ImportError:  # a deploying environment without Prefect: `prefect deploy` will say so
        return
    from prefect.settings import get_current_settings

    api = get_current_settings().api.url
    if not api:
        raise DeployError("PREFECT_API_URL is not set: workers take their runs from a Prefect server (or "
                          "Prefect Cloud); set it, e.g. http://127.0.0.1:4200/api")
    slug, _, name = block.partition("/")
    try:
        with get_client(sync_client=True) as client:
            client.read_block_document_by_name(name=name, block_type_slug=slug)
    except ObjectNotFound:
        raise DeployError(
            f"PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK={block!r}: no such block on the Prefect server "
            f"({api}); create it with `uv run --extra aws-results python -m deployments.results_block "
            "--bucket BUCKET`") from None
    except Exception as exc:  # connection refused, timeouts, HTTP errors: the server is not usable
        raise DeployError(f"PREFECT_API_URL={api}: cannot read blocks from the Prefect server "
                          f"({type(exc).__name__}: {exc}); is it running?") from exc


def resolve_settings(env: Mapping[str, str]) -> DeploySettings:
    """Every value, checked; all the problems at once, one per line."""
    problems: list[str] = []

    def attempt(resolve: Callable[[], str]) -> str:
        try:
            return resolve()
        except DeployError as exc:
            problems.append(str(exc))
            return ""

    repository = attempt(lambda: resolve_repository(env))
    # without a repository there is no branch to look up: that problem is already reported
    branch = attempt(lambda: resolve_branch(env, repository)) if repository else ""
    store = attempt(lambda: resolve_store(env))
    results_block = attempt(lambda: resolve_results_block(env))
    if problems:
        raise DeployError("\n".join(problems))
    return DeploySettings(repository, branch, store, results_block)


def resolve_value(name: str, env: Mapping[str, str]) -> str:
    """One value (for a build step of prefect.yaml)."""
    if name == "repository":
        return resolve_repository(env)
    if name == "branch":
        return resolve_branch(env, resolve_repository(env))
    if name == "store":
        return resolve_store(env)
    return resolve_results_block(env)


def deploy(settings: DeploySettings, prefect_file: Path = ROOT / "prefect.yaml") -> int:
    """`prefect deploy --all` from prefect.yaml, with the checked values in its environment."""
    if not prefect_file.is_file():
        raise DeployError(f"{prefect_file} does not exist: deploy from a checkout of the repository "
                          "(git clone …; uv run python -m deployments.deploy …)")
    env = {**os.environ, **settings.environment()}
    command = [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all",
               "--prefect-file", str(prefect_file)]
    return subprocess.run(command, cwd=prefect_file.parent, env=env).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployments.deploy", description=__doc__.splitlines()[0])
    parser.add_argument("--repository", help="git URL the workers clone (ZUNDACAST_GIT_REPOSITORY)")
    parser.add_argument("--branch", help="branch the workers run (ZUNDACAST_GIT_BRANCH)")
    parser.add_argument("--store", help="s3://bucket/prefix or a shared absolute path (ZUNDACAST_STORE)")
    parser.add_argument("--results-block", help="e.g. s3-bucket/zundacast-results "
                                                "(PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK)")
    parser.add_argument("--check", action="store_true", help="only check the values (prefect.yaml's build)")
    parser.add_argument("--value", choices=VALUES, help="print one checked value (prefect.yaml's build)")
    parser.add_argument("--verbose", action="store_true", help="tracebacks on errors")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    for flag, variable in (("repository", "ZUNDACAST_GIT_REPOSITORY"), ("branch", "ZUNDACAST_GIT_BRANCH"),
                           ("store", "ZUNDACAST_STORE"),
                           ("results_block", "PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK")):
        if getattr(args, flag):
            env[variable] = getattr(args, flag)
    try:
        if args.value:
            print(resolve_value(args.value, env))
            return 0
        settings = resolve_settings(env)
        check_block_exists(settings.results_block)
        return 0 if args.check else deploy(settings)
    except DeployError as exc:
        if args.verbose:
            raise
        for line in str(exc).splitlines():
            print(f"zundacast: error: {line}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
