"""The benchmark suite, one command: `python benchmarks/run.py` (or `uv run python benchmarks/run.py`).

Every measurement runs in its own process (a real process start, as a user pays it). By default, issue 14's
figures, each as a ratio measured in this one run: the sample day's episode cold (fresh ZUNDACAST_HOME and
Prefect home) and warm (everything cached) and the cold run's peak memory; the audio work against the
audio's length (`bench_audio.run_work`); collect with a feed that never answers against collect without
it (`bench_collect.run_deadline`); de-duplication of 20,000 items (`bench_dedup`); the VOICEVOX client's
efficiency against a 300 ms fake (`bench_synthesize.run_voicevox`). `--thorough` adds the older stage
figures: the warm rerun inside one process (Prefect's API already up), Prefect's own costs, collect,
OpenJTalk and summarize against one-at-a-time baselines. It prints markdown tables and writes them, with
the machine and the date, to BENCHMARKS.md at the repository root.

    python benchmarks/run.py                  # issue 14's figures: about 4-5 min on this 2-core machine
    python benchmarks/run.py --thorough       # and the older stage figures (about 20 min)
    python benchmarks/run.py --quick          # fewer repeats and smaller sizes
    python benchmarks/run.py --cold 2 --warm 3 --json results.json --no-write

Measurement only: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # runnable as a script from anywhere

from benchmarks.bench_pipeline import PREFECT_DEFAULTS  # noqa: E402
from zundacast.models import STAGES  # noqa: E402

PIPELINE = ROOT / "benchmarks" / "bench_pipeline.py"
# Variables that would point a child at a real service or a shared cache instead of its own.
CLEARED = ("PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_RESULTS_LOCAL_STORAGE_PATH", "OPENAI_API_KEY",
           "OPENAI_BASE_URL", "VOICEVOX_URL", "ZUNDACAST_STORE", "ZUNDACAST_WEBHOOK_URL",
           "ZUNDACAST_PRIVATE_PREFECT_API", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE")


@dataclass
class Sizes:
    """How much to run. One cold episode by default: a cold run costs minutes (synthesis dominates)."""

    cold: int = 1
    warm: int = 1
    in_process: bool = False  # the warm rerun again inside one process (Prefect's API already up)
    stages: bool = False  # Prefect's costs, collect concurrency, OpenJTalk speed-up (--thorough)
    tasks: int = 50
    llm_latency_s: float = 0.5
    collect: dict[str, Any] = field(default_factory=lambda: {"repeats": 1})
    synthesize: dict[str, Any] = field(default_factory=lambda: {"mastering_runs": 1, "openjtalk_rounds": 1,
                                                                "voicevox_concurrency": [4],
                                                                "one_worker_share": 0.5})


# The default fits the issue's 5 minutes on this 2-core machine; --thorough repeats more for steadier medians.
THOROUGH = Sizes(cold=2, warm=5, in_process=True, stages=True, tasks=200, collect={"repeats": 3},
                 synthesize={"mastering_runs": 2, "openjtalk_rounds": 2, "voicevox_concurrency": [2, 4]})
QUICK = Sizes(cold=1, warm=1, tasks=50, collect={"repeats": 1},
              synthesize={"mastering_runs": 1, "voicevox_concurrency": [4]})


DEDUP = {"repeats": 1, "sizes": [20_000], "baseline_repeats": 0}  # issue 14's size only, no old index


# --- children --------------------------------------------------------------------------------------

@dataclass
class Child:
    """One finished child process: its JSON answer, wall time, peak RSS and timestamped stderr lines."""

    result: dict[str, Any]
    wall_s: float
    max_rss_mb: float
    started_at: float
    stderr: list[tuple[float, str]]
    returncode: int
    # VmHWM read from /proc while it ran (sampled, so a peak in its last ~0.2 s may be missed): the episode
    # process alone, and the largest of its child processes (Prefect's ephemeral API server, ffmpeg)
    self_peak_mb: float | None = None
    children_peak_mb: float | None = None

    def first_line_at(self, prefix: str) -> float | None:
        """Seconds from the process start to the first stderr line starting with `prefix`."""
        return next((at - self.started_at for at, line in self.stderr if line.startswith(prefix)), None)


def child_env(prefect_home: Path, zundacast_home: Path) -> dict[str, str]:
    prefect_home.parent.mkdir(parents=True, exist_ok=True)  # Prefect makes its home, but not the parents
    env = {name: value for name, value in os.environ.items() if name not in CLEARED}
    env.update(PREFECT_DEFAULTS)
    env.update(PREFECT_HOME=str(prefect_home), ZUNDACAST_HOME=str(zundacast_home), ZUNDACAST_PROGRESS="1",
               PYTHONUNBUFFERED="1")
    return env


def _vm_hwm_mb(pid: int | str) -> float | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            line = next((line for line in status if line.startswith("VmHWM:")), "")
    except OSError:
        return None
    return int(line.split()[1]) / 1024 if line else None


def _child_pids(pid: int) -> list[str]:
    pids: list[str] = []
    try:
        for thread in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{thread}/children", encoding="ascii") as children:
                pids += children.read().split()
    except OSError:
        pass
    return pids


def sample_peaks(pid: int, peaks: dict[str, float], stop: threading.Event) -> None:
    """Keep the largest VmHWM of `pid` ("self") and of any of its children ("children") until `stop`."""
    while not stop.wait(0.2):
        own = _vm_hwm_mb(pid)
        if own is not None:
            peaks["self"] = max(peaks.get("self", 0.0), own)
        for child in _child_pids(pid):
            theirs = _vm_hwm_mb(child)
            if theirs is not None:
                peaks["children"] = max(peaks.get("children", 0.0), theirs)


def run_child(argv: list[str], env: dict[str, str], label: str) -> Child:
    """Run one child to its end; its own peak RSS comes from wait4 (ru_maxrss of that process alone,
    or of a waited-for grandchild if that was larger), not from the whole machine."""
    print(f"[{time.strftime('%H:%M:%S')}] {label} ...", file=sys.stderr, flush=True)
    started = time.time()
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, bufsize=1)
    stderr: list[tuple[float, str]] = []
    stdout: list[str] = []

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            stderr.append((time.time(), line.rstrip("\n")))

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    peaks: dict[str, float] = {}
    stop = threading.Event()
    sampler = threading.Thread(target=sample_peaks, args=(proc.pid, peaks, stop), daemon=True)
    sampler.start()
    assert proc.stdout is not None
    stdout.extend(proc.stdout)
    reader.join()
    stop.set()
    sampler.join()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.time() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    answer = next((line for line in reversed(stdout) if line.startswith("{")), "")
    if proc.returncode != 0 or not answer:
        log = Path(tempfile.gettempdir()) / f"zundacast-bench-failed-{int(started)}.log"
        log.write_text("\n".join(line for _, line in stderr), encoding="utf-8")
        tail = "\n".join(line for _, line in stderr[-25:])
        raise RuntimeError(f"{label} failed (exit {proc.returncode}; its stderr: {log}):\n{tail}")
    print(f"[{time.strftime('%H:%M:%S')}] {label}: {wall:.1f} s", file=sys.stderr, flush=True)
    return Child(json.loads(answer), round(wall, 3), round(usage.ru_maxrss / 1024, 1), started, stderr,
                 proc.returncode, *(round(peaks[k], 1) if k in peaks else None for k in ("self", "children")))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def python_call(module: str, kwargs: dict[str, Any], function: str = "run") -> list[str]:
    """argv running `module.function(**kwargs)` in a child and printing its dict as JSON."""
    code = ("import json, sys\n"
            f"from {module} import {function} as run\n"
            "print(json.dumps(run(**json.loads(sys.argv[1])), ensure_ascii=False, default=str))\n")
    return [sys.executable, "-c", code, json.dumps(kwargs)]


def known_kwargs(module: str,
                 wanted: dict[str, Any], function: str = "run") -> tuple[dict[str, Any], list[str]]:
    """The knobs `module.run` accepts, and the names of those it lacks (reported, not fatal); read from the
    source, so the parent does not import the stage's heavy dependencies."""
    path = ROOT / (module.replace(".", "/") + ".py")
    run_def = next(node for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                   if isinstance(node, ast.FunctionDef) and node.name == function)
    params = {arg.arg for arg in run_def.args.args + run_def.args.kwonlyargs}
    return ({k: v for k, v in wanted.items() if k in params}, [k for k in wanted if k not in params])


# --- the suite -------------------------------------------------------------------------------------

def episodes(sizes: Sizes, scratch: Path) -> dict[str, Any]:
    """Cold runs, each in fresh homes; the warm runs reuse the first cold run's homes, store and port."""
    found: dict[str, Any] = {"cold": [], "warm": [], "in_process": None, "errors": []}

    def attempt(kind: str, argv: list[str], env: dict[str, str], label: str) -> bool:
        try:
            child = run_child(argv, env, label)
        except RuntimeError as exc:  # one failed run (e.g. the API start timed out) does not end the suite
            found["errors"].append(str(exc).splitlines()[0] + " " + str(exc).splitlines()[-1])
            return False
        if kind == "in_process":
            found[kind] = child
        else:
            found[kind].append(child)
        return True

    for i in range(sizes.cold):
        base = scratch / f"episode-{i}"
        env = child_env(base / "prefect", base / "home")
        argv = [sys.executable, str(PIPELINE), "episode", "--port", str(free_port()), "--store",
                str(base / "store")]
        cold_done = attempt("cold", argv, env, f"episode cold {i + 1}/{sizes.cold}")
        if cold_done and not found["warm"]:
            for j in range(sizes.warm):
                attempt("warm", argv, env, f"episode warm {j + 1}/{sizes.warm}")
            if sizes.in_process:
                attempt("in_process", [*argv, "--runs", str(sizes.warm + 1)], env,
                        f"episode warm x{sizes.warm + 1} in one process")
    return found


def prefect_costs(sizes: Sizes, scratch: Path) -> Child:
    base = scratch / "prefect-costs"
    env = child_env(base / "prefect", base / "home")  # a fresh Prefect home: start-up with migrations
    return run_child([sys.executable, str(PIPELINE), "prefect", "--tasks", str(sizes.tasks),
                      "--llm-latency", str(sizes.llm_latency_s)], env, "prefect costs + summarize")


def stage_benchmark(module: str,
                    wanted: dict[str, Any], scratch: Path, function: str = "run") -> dict[str, Any]:
    """Another engineer's `run()` (or `function`) in a child; an error becomes a note in the table."""
    base = scratch / f"{module.rsplit('.', 1)[-1]}-{function}"
    try:
        kwargs, missing = known_kwargs(module, wanted, function)
        child = run_child(python_call(module, kwargs, function), child_env(base / "prefect", base / "home"),
                          f"{module}.{function}")
    except Exception as exc:
        print(f"{module}: {exc}", file=sys.stderr)
        return {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
    return {**child.result, "_wall_s": child.wall_s, "_missing_knobs": missing, "_kwargs": kwargs}


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# --- the table -------------------------------------------------------------------------------------

def med(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value: float | None, unit: str = "s", digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f} {unit}".rstrip()


def ratio(slow: float | None, fast: float | None) -> str:
    return "n/a" if not slow or not fast else f"{slow / fast:.2f}×"


Row = tuple[str, str, str, str]  # figure, this run, goal, how


def figure_row(name: str, goal: str, result: dict[str, Any],
               value_and_how: Callable[[dict[str, Any]], tuple[str, str]]) -> Row:
    """One issue-14 row from a step's result; a failed (or missing) step is "n/a" with its error."""
    if "error" in result or not result:
        return (name, "n/a", goal, result.get("error", "not run"))
    value, how = value_and_how(result)
    return (name, value, goal, how)


def _rerun(rr: dict[str, Any]) -> tuple[str, str]:
    return (f"{rr['warm_server_over_cold_wall']}",
            f"`zundacast demo` processes: {fmt(rr['warm_server_wall_s'])} / {fmt(rr['cold_wall_s'])} "
            f"(CPU {rr['warm_server_over_cold_cpu']}); {rr['warm_server_counted']} warm runs all cached, "
            f"server used: {rr['warm_server_used_server']}; on Prefect's temporary API instead: "
            f"{rr['warm_ephemeral_over_cold_wall']} ({fmt(rr['warm_ephemeral_wall_s'])}), the API's "
            "start-up being most of it")


def _audio_work(audio: dict[str, Any]) -> tuple[str, str]:
    return (f"{audio['audio_work_wall_fraction'] * 100:.2f} %",
            f"wall {fmt(audio['audio_work_wall_s'])} for {audio['duration_s']} s of audio; CPU "
            f"{audio['audio_work_cpu_fraction'] * 100:.2f} % (process + ffmpeg), the steadier figure "
            "under load")


def _collect_deadline(dl: dict[str, Any]) -> tuple[str, str]:
    return (f"{dl['slow_over_fast']:.2f}×",
            f"{fmt(dl['slow_collect_s'])} vs {fmt(dl['fast_collect_s'])}: +{dl['extra_in_timeouts']:.2f} "
            f"fetch timeouts ({dl['timeout_s']:g} s; deadline {dl['deadline_s']:g} s); {dl['fast_feeds']} "
            "fast feeds + 1 that never answers, Prefect fetch-feed tasks with retries")


def _dedup(dd: dict[str, Any]) -> tuple[str, str]:
    news, soup = dd.get("news", {}), dd.get("word-soup", {})
    return (fmt(news.get("20000_items_s")),
            f"news titles (CPU {fmt(news.get('20000_items_cpu_s'))}); word-soup titles "
            f"{fmt(soup.get('20000_items_s'))} (CPU {fmt(soup.get('20000_items_cpu_s'))})")


def _voicevox(vv: dict[str, Any]) -> tuple[str, str]:
    return (f"{vv['efficiency']:.2f}",
            f"{vv['utterances']} utterances × {vv['delay_s'] * 1000:.0f} ms / concurrency "
            f"{vv['concurrency']} = {fmt(vv['ideal_s'])} vs {fmt(vv['wall_s'])}; against the fake engine's "
            f"own time (its CPU included): {vv['efficiency_vs_engine_time']:.2f}")


def _peak_memory(cold: list[Child], audio: dict[str, Any]) -> Row:
    how = "ru_maxrss of the episode process via wait4 (the larger of it and its waited-for children)"
    alone = [c.self_peak_mb for c in cold if c.self_peak_mb is not None]
    if alone:
        server = [c.children_peak_mb or 0.0 for c in cold]
        how += (f"; the episode process alone (VmHWM): {fmt(med(alone), 'MB', 0)}, Prefect's API server "
                f"child: {fmt(med(server), 'MB', 0)}")
    if "cold_synthesis_peak_mb" in audio:
        how += (f"; the synthesis stage alone, cold: {audio['cold_synthesis_peak_mb']} MB (imports "
                f"{audio['cold_imports_mb']} MB)")
    if "cold_synthesis_children_peak_mb" in audio:
        how += (f", its largest child (OpenJTalk synthesis process or ffmpeg): "
                f"{audio['cold_synthesis_children_peak_mb']} MB")
    peak = fmt(med([c.max_rss_mb for c in cold]), "MB", 0)
    return ("peak memory, cold demo episode", peak, "≤ 400 MB", how)


def issue14_rows(results: dict[str, Any]) -> list[Row]:
    """Each issue-14 figure as a ratio from this one run, beside its goal."""
    cold, warm = results["episodes"]["cold"], results["episodes"]["warm"]
    cold_s, warm_s = med([c.wall_s for c in cold]), med([c.wall_s for c in warm])
    audio = results.get("audio_work", {})
    return [
        figure_row("warm / cold, `zundacast server` up", "≤ 0.10", results.get("rerun", {}), _rerun),
        ("warm / cold episode, temporary API (process wall)", ratio(warm_s, cold_s).rstrip("×"),
         "(≤ 0.10 with the server)",
         f"{fmt(warm_s)} / {fmt(cold_s)}; {len(warm)} warm, {len(cold)} cold (benchmarks/bench_pipeline.py, "
         "no server)"),
        figure_row("audio work / audio length", "≤ 2 %", audio, _audio_work),
        _peak_memory(cold, audio),
        figure_row("slow-feed collect / fast-feed collect", "≤ 1 timeout extra",
                   results.get("collect_deadline", {}), _collect_deadline),
        figure_row("dedup 20,000 items", "≤ 2 s", results.get("dedup", {}), _dedup),
        figure_row("VOICEVOX efficiency", "≥ 0.9", results.get("voicevox", {}), _voicevox),
    ]


def issue14_table(results: dict[str, Any]) -> str:
    lines = ["| issue 14 figure | this run | goal | how |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in issue14_rows(results)]
    return "\n".join(lines)


def table(results: dict[str, Any]) -> str:
    ep = results["episodes"]
    cold, warm, inproc = ep["cold"], ep["warm"], ep["in_process"]
    col, syn = results.get("collect", {"skipped": True}), results.get("synthesize", {"skipped": True})
    p = results.get("prefect", {"skipped": True})
    p = p.result if isinstance(p, Child) else p
    nc, nw = len(cold), len(warm)
    rows: list[tuple[str, str, str, str]] = []

    def row(name: str, value: str, runs: str, note: str = "") -> None:
        rows.append((name, value, runs, note))

    def summaries(children: list[Child]) -> list[dict[str, Any]]:
        return [run["summary"] for child in children for run in child.result["runs"]]

    row("episode, cold: process wall", fmt(med([c.wall_s for c in cold])), f"{nc} cold",
        "fresh ZUNDACAST_HOME + PREFECT_HOME (migrations, no caches)")
    row("episode, warm: process wall", fmt(med([c.wall_s for c in warm])), f"{nw} warm",
        "same homes and store: every stage cached")
    later = inproc.result["runs"][1:] if inproc else []
    row("episode, warm, API already up: flow call", fmt(med([r["wall_s"] for r in later])),
        f"{len(later)} in 1 process", "the same rerun with Prefect's ephemeral API started")
    if inproc:
        row("… first flow call in that process", fmt(inproc.result["runs"][0]["wall_s"]), "1",
            "includes the ephemeral API start-up")
    row("process start → first stage starts, cold", fmt(med([c.first_line_at("▶ ") for c in cold])),
        f"{nc} cold", "interpreter + imports + Prefect API start (fresh DB)")
    row("process start → first stage starts, warm", fmt(med([c.first_line_at("▶ ") for c in warm])),
        f"{nw} warm", "the same with an existing Prefect DB")
    for kind, children in (("cold", cold), ("warm", warm)):
        row(f"flow duration_s (RunSummary), {kind}", fmt(med([s["duration_s"] for s in summaries(children)])),
            f"{len(children)} {kind}")
    for stage in STAGES:
        cold_s = med([s["stages"][stage]["seconds"] for s in summaries(cold) if stage in s["stages"]])
        warm_s = med([s["stages"][stage]["seconds"] for s in summaries(warm) if stage in s["stages"]])
        statuses = [",".join(sorted({s["stages"][stage]["status"] for s in summaries(children)
                                     if stage in s["stages"]})) or "n/a" for children in (cold, warm)]
        row(f"stage {stage}: cold → warm", f"{fmt(cold_s)} → {fmt(warm_s)}", f"{nc} / {nw}",
            " → ".join(statuses))
    row("peak RSS, episode process, cold", fmt(med([c.max_rss_mb for c in cold]), "MB", 0), f"{nc} cold",
        "ru_maxrss via wait4 (the ephemeral API server process is separate)")
    row("peak RSS, episode process, warm", fmt(med([c.max_rss_mb for c in warm]), "MB", 0), f"{nw} warm")
    for label, key in (("episode process alone", "self_peak_mb"), ("its largest child (API server)",
                                                                   "children_peak_mb")):
        found = [getattr(c, key) for c in cold if getattr(c, key) is not None]
        row(f"peak RSS, cold, {label}", fmt(med(found), "MB", 0) if found else "n/a", f"{len(found)} cold",
            "VmHWM sampled from /proc every 0.2 s while it ran")

    for error in ep.get("errors", []):
        row("episode run failed", "n/a", "", error)
    if "error" in p:
        row("Prefect costs and summarize", "n/a", "", p["error"])
        p = {}
    if not p.get("skipped"):
        row("import prefect", fmt(p.get("import_prefect_s")), "1")
        row("process start → first task, fresh Prefect home", fmt(p.get("process_to_first_task_s")), "1",
            f"flow call → first task {fmt(p.get('flow_call_to_first_task_s'))}")
        row("trivial flow (1 task), API up", fmt(p.get("trivial_flow_api_up_s")), "3", "median")
        tasks = f"{p.get('tasks')} tasks"
        row("Prefect overhead per task, no cache", fmt(p.get("task_overhead_no_cache_ms"), "ms"), tasks,
            "(time in flow − plain calls) / N")
        row("… stage cache policy, computing + persisting",
            fmt(p.get("task_overhead_stage_cache_computing_ms"), "ms"), tasks,
            "INPUTS + TASK_SOURCE, persist_result")
        row("… stage cache policy, cache hit", fmt(p.get("task_overhead_stage_cache_hit_ms"), "ms"), tasks,
            "the second flow over the same inputs")
    if not col.get("skipped") and not syn.get("skipped"):
        if "error" in col:
            row("collect: concurrent vs one at a time", "n/a", "", col["error"])
        else:
            row("collect: concurrent vs one at a time", f"{col['speedup']:.2f}×", f"{col['repeats']} each",
                f"{fmt(col['concurrent_s'])} vs {fmt(col['one_at_a_time_s'])}; {col['feeds']} feeds × "
                f"{col['items_per_feed']} items, {col['pages']} pages, {col['latency_s'] * 1000:.0f} ms "
                f"latency, "
                f"concurrency {col['concurrency']}")
        if "error" in syn:
            row("synthesize benchmark", "n/a", "", syn["error"])
        else:
            one, two = syn.get("openjtalk_rtf_1w"), syn.get("openjtalk_rtf_2w")
            row("synthesize: OpenJTalk 2 workers vs 1", ratio(two, one), "1 each",
                f"real-time factor {one}× vs {two}× ({syn.get('utterances')} utterances, "
                f"{syn.get('episode_duration_s')} s of audio)")
            row("synthesize: assembly + mastering + encode", fmt(syn.get("post_tts_s_median")),
                f"{syn.get('_kwargs', {}).get('mastering_runs', '?')}",
                f"{syn.get('post_tts_fraction_of_audio', 0) * 100:.2f} % of the audio's length")
            for key in sorted(k for k in syn if k.startswith("voicevox_c") and k.endswith("_efficiency")):
                conc = key.removeprefix("voicevox_c").removesuffix("_efficiency")
                row(f"synthesize: VOICEVOX fake 300 ms, concurrency {conc}",
                    fmt(syn.get(f"voicevox_c{conc}_wall_s")), "1",
                    f"ideal {fmt(syn.get(f'voicevox_c{conc}_ideal_s'))}, efficiency {syn[key]:.2f}")
    if not p.get("skipped"):
        row("summarize (offline writer): mapped vs one at a time",
            ratio(p.get("summarize_offline_one_at_a_time_s"), p.get("summarize_offline_mapped_s")), "1 each",
            f"{fmt(p.get('summarize_offline_mapped_s'))} vs "
            f"{fmt(p.get('summarize_offline_one_at_a_time_s'))}, "
            f"{p.get('summarize_articles')} picks; CPU-only work, so it is task overhead")
        row(f"summarize (LLM fake, {(p.get('llm_latency_s') or 0) * 1000:.0f} ms): mapped vs one at a time",
            ratio(p.get("summarize_llm_one_at_a_time_s"), p.get("summarize_llm_mapped_s")), "1 each",
            f"{fmt(p.get('summarize_llm_mapped_s'))} vs {fmt(p.get('summarize_llm_one_at_a_time_s'))}, "
            "OpenAI protocol over loopback")
    row("load average (1/5/15 min), start → end", f"{results['load_start']} → {results['load_end']}", "",
        "2 cores: above 2 means others compete")
    row("whole suite", fmt(results["total_s"], "s", 0), "", results["mode"])

    lines = ["| measure | median | runs | notes |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines)


def machine() -> dict[str, str]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown")
    mem_kb = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), 0)
    os_release = Path("/etc/os-release").read_text().splitlines()
    os_name = next((line.split("=", 1)[1].strip('"') for line in os_release
                    if line.startswith("PRETTY_NAME=")), platform.system())
    return {"cpu": cpu, "cores": str(os.cpu_count()), "ram": f"{mem_kb / 1024 / 1024:.1f} GiB",
            "python": platform.python_version(), "prefect": metadata.version("prefect"),
            "os": f"{os_name}, Linux {platform.release()}"}


def markdown(results: dict[str, Any], the_table: str) -> str:
    m = results["machine"]
    steps = ", ".join(f"{name} {seconds} s" for name, seconds in results.get("step_s", {}).items())
    flag = "" if results["mode"] == "default" else f" --{results['mode']}"
    return f"""# Benchmarks

Measured {results['date']} with `python benchmarks/run.py{flag}` \
({results['sizes']}).

Machine: {m['cpu']}, {m['cores']} cores, {m['ram']} RAM;
Python {m['python']}, Prefect {m['prefect']}; {m['os']}.
Shared with other engineers' test runs: read the load average row before comparing numbers.

{the_table}

Where the suite's time went: {steps}.

## How to run

    uv run python benchmarks/run.py            # issue 14's figures (about 3-5 min); rewrites this file
    uv run python benchmarks/run.py --thorough # and the older stage figures
    uv run python benchmarks/run.py --quick    # fewer repeats, smaller sizes
    uv run python benchmarks/run.py --cold 2 --warm 5 --no-write --json /tmp/bench.json

Each measurement is its own process, run one after another (never in parallel, so they do not compete
for the 2 cores). Progress goes to stderr; the table to stdout. Nothing asserts a time: this is measurement.

## What the numbers mean

- **issue 14 figures** (the first table), each from this one run: **warm / cold, server up** is a warm
  `zundacast demo` process's wall time, with `zundacast server` running (the command line uses it instead
  of starting Prefect's temporary API), over a cold demo's (`bench_rerun`); the same on the temporary API
  is the next row; **audio work / audio length** is assembly + mastering + MP3
  encode + tags + check of a generated episode whose utterances are cached (`bench_audio.run_work`; the
  CPU share, process + ffmpeg, is steadier than wall time on a loaded machine); **peak memory** is the cold
  episode process's `ru_maxrss`; **slow-feed / fast-feed collect** runs collect through the Prefect
  fetch-feed tasks (with their retries) on fast loopback feeds, alone and beside one server that accepts
  the connection and never answers, and gives the extra time in fetch timeouts; **dedup** is
  `merge_same_stories` over 20,000 generated items (`bench_dedup`); **VOICEVOX efficiency** is
  (utterances × 300 ms / concurrency) over the wall time against the loopback fake, and beside it the same
  against the fake engine's own time per utterance (the delay plus the CPU it spends making the query and
  the WAV, measured inside it), which is what the engine's concurrency can deliver.
- **episode, cold**: `flows.daily_episode` on the bundled sample day (loopback feeds and pages, offline
  writer, OpenJTalk, local store) in a new process with a fresh `ZUNDACAST_HOME` and a fresh `PREFECT_HOME`
  (database migrations, empty result storage and utterance cache): what a first `zundacast demo` costs.
  **warm**: the same command again with the same homes and store; every stage ends `Cached`, so what is
  left is the process start, imports and Prefect's ephemeral API start-up. **API already up**: the warm rerun
  called again inside one process, which separates Prefect's start-up from the flow's own work.
- **process start → first stage starts**: from spawning the process to the flow's first `▶ collect` line.
- **stage X: cold → warm**: `RunSummary.stages[X].seconds` as the flow timed it (the status column says
  computed or cached).
- **peak RSS**: the episode process's maximum resident set (`ru_maxrss` from `wait4`). Prefect's ephemeral
  API runs as its own server process on top of this.
- **Prefect overhead per task**: N trivial task runs one after another inside one flow, minus N calls of the
  same plain function, divided by N; with no cache, with the stages' cache policy computing (and writing
  the result), and with a cache hit.
- **concurrent vs one at a time**: collection (`benchmarks/bench_collect.py`), OpenJTalk real-time factor
  with 2 workers vs 1 (`benchmarks/bench_synthesize.py`), and the summarize stage's mapped task runs vs the
  plain function one article at a time, with the offline writer (CPU only) and with an OpenAI-protocol fake
  that answers after a fixed delay (the case mapping exists for). Above 1× means the concurrent one is faster.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and smaller sizes")
    parser.add_argument("--thorough", action="store_true", help="more repeats (about 15 minutes)")
    parser.add_argument("--cold", type=int, help="cold episode runs (default 1; each costs minutes)")
    parser.add_argument("--warm", type=int, help="warm episode runs (default 2)")
    parser.add_argument("--tasks", type=int, help="trivial tasks for the per-task overhead (default 50)")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave BENCHMARKS.md alone")
    parser.add_argument("--json", type=Path, help="also write every raw number to this file")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else THOROUGH if args.thorough else Sizes()
    sizes.cold = max(1, args.cold or sizes.cold)
    sizes.warm = max(1, args.warm or sizes.warm)
    sizes.tasks = args.tasks or sizes.tasks

    suite_started = time.time()
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "mode": "quick" if args.quick else "thorough" if args.thorough else "default",
        "sizes": f"{sizes.cold} cold + {sizes.warm} warm episode runs, {sizes.tasks} trivial tasks",
        "machine": machine(), "load_start": load_average(),
    }
    print(f"load average at start: {results['load_start']}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="zundacast-bench-") as tmp:
        scratch = Path(tmp)
        steps: list[tuple[str, Callable[[], Any]]] = [
            ("episodes", lambda: episodes(sizes, scratch)),
            ("rerun", lambda: stage_benchmark("benchmarks.bench_rerun", {"cold": 1, "warm": sizes.warm},
                                              scratch)),
            ("collect_deadline", lambda: stage_benchmark("benchmarks.bench_collect", {}, scratch,
                                                         "run_deadline")),
            ("voicevox", lambda: stage_benchmark("benchmarks.bench_synthesize", {}, scratch, "run_voicevox")),
            ("dedup", lambda: stage_benchmark("benchmarks.bench_dedup", DEDUP, scratch)),
            ("audio_work", lambda: stage_benchmark("benchmarks.bench_audio", {}, scratch, "run_work")),
        ]
        if sizes.stages:  # the older stage figures: --thorough
            steps += [
                ("prefect", lambda: prefect_costs(sizes, scratch)),
                ("collect", lambda: stage_benchmark("benchmarks.bench_collect", sizes.collect, scratch)),
                ("synthesize", lambda: stage_benchmark("benchmarks.bench_synthesize", sizes.synthesize,
                                                       scratch)),
            ]
        results["step_s"] = {}
        for name, step in steps:
            step_started = time.time()
            try:
                results[name] = step()
            except Exception as exc:  # the table says what failed; the other measurements still count
                print(f"{name}: {exc}", file=sys.stderr)
                results[name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[-1]}"}
            results["step_s"][name] = round(time.time() - step_started)
        if "error" in results["episodes"]:
            results["episodes"] = {"cold": [], "warm": [], "in_process": None,
                                   "errors": [results["episodes"]["error"]]}
    results["load_end"] = load_average()
    results["total_s"] = time.time() - suite_started
    print(f"load average at end: {results['load_end']}", file=sys.stderr)

    the_table = issue14_table(results) + "\n\n## Everything measured\n\n" + table(results)
    print(the_table)
    if not args.no_write:
        (ROOT / "BENCHMARKS.md").write_text(markdown(results, the_table), encoding="utf-8")
        print(f"wrote {ROOT / 'BENCHMARKS.md'}", file=sys.stderr)
    if args.json:
        raw = json.dumps(results, default=_raw, ensure_ascii=False, indent=2)
        args.json.write_text(raw, encoding="utf-8")
    return 0


def _raw(value: Any) -> Any:
    if isinstance(value, Child):
        return {"result": value.result, "wall_s": value.wall_s, "max_rss_mb": value.max_rss_mb,
                "self_peak_mb": value.self_peak_mb, "children_peak_mb": value.children_peak_mb,
                "first_stage_s": value.first_line_at("▶ ")}
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
