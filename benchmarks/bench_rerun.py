"""What a rerun costs: `zundacast demo` cold, warm on the temporary API, warm with `zundacast server` up.

    uv run python benchmarks/bench_rerun.py [--cold 1] [--warm 3] [--json FILE]

Every run is a real `python -m zundacast.cli demo` process (what a user pays). The cold run has fresh
homes. The warm runs reuse its ZUNDACAST_HOME and result storage, so every stage is cached; they alternate
(temporary API, server up, ...) so both kinds see the same load on a shared machine. The server has a
Prefect home of its own (its database), with the same result storage, so a warm run without it finds no
server and starts the temporary API as a plain `zundacast demo` does.

Reported per kind: median wall seconds and median CPU seconds (the run's process and its reaped
children, i.e. the temporary API; for the server-up runs plus the server's own CPU during the run, read
from /proc), peak RSS, and the ratios warm/cold; a warm run counts only when every stage was cached.
Prints a markdown table and ends with one JSON line. Measurement only:
nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# A shell's settings that would point a run at another API, store or model than its own.
CLEARED = ("PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_RESULTS_LOCAL_STORAGE_PATH", "OPENAI_API_KEY",
           "OPENAI_BASE_URL", "VOICEVOX_URL", "ZUNDACAST_STORE", "ZUNDACAST_WEBHOOK_URL",
           "ZUNDACAST_BASE_URL", "ZUNDACAST_PRIVATE_PREFECT_API", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
           "AWS_PROFILE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def say(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def process_cpu_s(pid: int | None) -> float:
    """CPU seconds (user + system) a running process and its reaped children have used so far."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return (utime + stime + cutime + cstime) / CLOCK_TICKS


def run_demo_measured(env: dict[str, str], store: Path, label: str, server_pid: int | None = None
                      ) -> dict[str, Any]:
    """`demo` with the child's own resource usage: wait4 needs the child unreaped, so Popen runs here."""
    say(f"{label} ...")
    server_cpu = process_cpu_s(server_pid)
    started = time.perf_counter()
    command = [sys.executable, "-m", "zundacast.cli", "demo", "--store", str(store), "--json"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = _drain(process)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    returncode = os.waitstatus_to_exitcode(status)
    stderr = err.decode("utf-8", "replace")
    if returncode != 0:
        raise RuntimeError(f"{label} failed (exit {returncode}):\n{stderr[-3000:]}")
    summary = json.loads(out.decode("utf-8").strip().splitlines()[-1])
    statuses = sorted({report["status"] for report in summary["stages"].values()})
    server_cpu = process_cpu_s(server_pid) - server_cpu
    result = {"wall_s": round(wall, 3), "cpu_s": round(usage.ru_utime + usage.ru_stime + server_cpu, 3),
              "server_cpu_s": round(server_cpu, 3), "max_rss_mb": round(usage.ru_maxrss / 1024, 1),
              "flow_duration_s": summary["duration_s"], "statuses": statuses,
              "computed": [name for name, report in summary["stages"].items()
                           if report["status"] == "computed"],
              "used_server": "(zundacast server)" in stderr}
    say(f"{label}: {wall:.1f} s wall, {result['cpu_s']:.1f} s CPU, stages {','.join(statuses)}")
    return result


def _drain(process: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    """Read stdout and stderr to their ends without reaping the process (communicate() would wait)."""
    import selectors

    assert process.stdout is not None and process.stderr is not None
    chunks: dict[int, list[bytes]] = {process.stdout.fileno(): [], process.stderr.fileno(): []}
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        selector.register(process.stderr, selectors.EVENT_READ)
        while selector.get_map():
            for key, _ in selector.select():
                data = os.read(key.fd, 65536)
                if data:
                    chunks[key.fd].append(data)
                else:
                    selector.unregister(key.fileobj)
    return b"".join(chunks[process.stdout.fileno()]), b"".join(chunks[process.stderr.fileno()])


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "zundacast.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False)


def median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [run[key] for run in runs if run.get(key) is not None]
    return round(statistics.median(values), 3) if values else None


def measure(cold_runs: int, warm_runs: int, scratch: Path) -> dict[str, Any]:
    base = {name: value for name, value in os.environ.items() if name not in CLEARED}
    base.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1", PYTHONUNBUFFERED="1")
    results: dict[str, Any] = {"load_start": load_average(), "cold": [], "warm_ephemeral": [],
                               "warm_server": []}
    warm_env: dict[str, str] = {}
    for i in range(cold_runs):
        homes = scratch / f"cold-{i}"
        env = {**base, "ZUNDACAST_HOME": str(homes / "home"), "PREFECT_HOME": str(homes / "prefect"),
               "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(homes / "results")}
        results["cold"].append(run_demo_measured(env, homes / "store", f"cold {i + 1}/{cold_runs}"))
        warm_env = warm_env or env
    store = scratch / "cold-0" / "store"
    server_env = {**warm_env, "PREFECT_HOME": str(scratch / "server-prefect")}  # its own database
    started = time.perf_counter()
    start = cli(server_env, "server", "start", "--port", "0")
    results["server_start_s"] = round(time.perf_counter() - started, 3)
    if start.returncode != 0:
        raise RuntimeError(f"zundacast server start failed:\n{start.stderr[-3000:]}")
    state = json.loads((scratch / "server-prefect" / "zundacast-server.json").read_text())
    say(f"server up in {results['server_start_s']:.1f} s: {state['api_url']}")
    try:
        for j in range(warm_runs):  # alternating, so both kinds share the machine's load
            results["warm_ephemeral"].append(
                run_demo_measured(warm_env, store, f"warm, temporary API {j + 1}/{warm_runs}"))
            results["warm_server"].append(
                run_demo_measured(server_env, store, f"warm, server up {j + 1}/{warm_runs}", state["pid"]))
    finally:
        cli(server_env, "server", "stop")
    results["load_end"] = load_average()
    cold_wall, cold_cpu = median(results["cold"], "wall_s"), median(results["cold"], "cpu_s")
    for kind in ("cold", "warm_ephemeral", "warm_server"):
        # A warm run counts only when every stage was cached: the sample day's feeds are on a fixed port
        # unless another process holds it, and then their URLs, and the cache keys, differ.
        counted = [run for run in results[kind] if kind == "cold" or run["statuses"] == ["cached"]]
        results[f"{kind}_counted"] = len(counted)
        results[f"{kind}_wall_s"] = median(counted, "wall_s")
        results[f"{kind}_cpu_s"] = median(counted, "cpu_s")
        results[f"{kind}_max_rss_mb"] = median(counted, "max_rss_mb")
    for kind in ("warm_ephemeral", "warm_server"):
        wall, cpu = results[f"{kind}_wall_s"], results[f"{kind}_cpu_s"]
        results[f"{kind}_over_cold_wall"] = round(wall / cold_wall, 3) if wall and cold_wall else None
        results[f"{kind}_over_cold_cpu"] = round(cpu / cold_cpu, 3) if cpu and cold_cpu else None
        results[f"{kind}_all_cached"] = all(run["statuses"] == ["cached"] for run in results[kind])
    results["warm_server_used_server"] = all(run["used_server"] for run in results["warm_server"])
    results["warm_ephemeral_used_server"] = any(run["used_server"] for run in results["warm_ephemeral"])
    return results


def run(cold: int = 1, warm: int = 2) -> dict[str, Any]:
    """`measure` in a scratch folder of its own (benchmarks/run.py calls this in a child process)."""
    with tempfile.TemporaryDirectory(prefix="zundacast-bench-rerun-") as tmp:
        return measure(max(1, cold), max(1, warm), Path(tmp))


def table(r: dict[str, Any]) -> str:
    def row(kind: str, label: str, runs: int) -> str:
        ratio = "" if kind == "cold" else (f"{r[f'{kind}_over_cold_wall']} wall, "
                                           f"{r[f'{kind}_over_cold_cpu']} CPU")
        cached = "" if kind == "cold" else f"{r[f'{kind}_counted']} of {runs} runs all cached (counted)"
        return (f"| {label} | {r[f'{kind}_wall_s']} s | {r[f'{kind}_cpu_s']} s | "
                f"{r[f'{kind}_max_rss_mb']} MB | {runs} | {ratio} | {cached} |")

    lines = ["| zundacast demo | wall (median) | CPU (median) | peak RSS | runs | / cold | notes |",
             "|---|---|---|---|---|---|---|",
             row("cold", "cold (fresh homes)", len(r["cold"])),
             row("warm_ephemeral", "warm, temporary API", len(r["warm_ephemeral"])),
             row("warm_server", "warm, `zundacast server` up", len(r["warm_server"])),
             f"| `zundacast server start` (once) | {r['server_start_s']} s | | | 1 | | fresh database |",
             f"| load average (1/5/15 min) | {r['load_start']} → {r['load_end']} | | | | | 2 cores |"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", type=int, default=1, help="cold runs (each costs a minute or more)")
    parser.add_argument("--warm", type=int, default=3, help="warm runs of each kind")
    parser.add_argument("--json", type=Path, help="also write every raw number to this file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="zundacast-bench-rerun-") as tmp:
        results = measure(max(1, args.cold), max(1, args.warm), Path(tmp))
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(json.dumps(results), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
