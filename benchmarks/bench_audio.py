"""Audio-work benchmark: our own assembly + mastering + encode + check against the audio's length, and
the synthesis stage's peak memory, for this tree and a baseline revision in the same run.

Each measurement is its own process (one after another, never in parallel), running `synthesize_script`
from one source tree with the interpreter of this one:
- **audio work**: a ~12-minute OpenJTalk episode whose utterances are already cached, so what is timed is
  only assembly, mastering, the MP3 encode(s), tags and the check; wall time and CPU time (the process and
  its ffmpeg children: steadier than wall time on a shared machine), each divided by the audio's length;
- **peak memory, cold**: the same stage with an empty utterance cache (OpenJTalk, 2 workers), as ru_maxrss
  of that process, next to what its imports alone cost (the flow's imports and the OpenJTalk voice), and
  the largest of its child processes (ffmpeg; the OpenJTalk synthesis process, audio/tts_child.py).

The baseline is the same code at another revision (`--baseline REV`, default the merge base with main),
exported with `git archive` into a temporary folder, so before and after see the same machine load.

Run: `python benchmarks/bench_audio.py [--baseline REV] [--rounds N] [--script SCRIPT.json] [--no-cold]`;
prints a table and one JSON line. Measurement only: nothing here asserts a time.
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

# Runs inside the child, with the tree under test first on sys.path. It uses only names that exist in
# the baseline too (synthesize_script, make_script, the models), so both trees run the same code here.
CHILD = r"""
import json, os, resource, sys, tempfile, time
tree, mode, script_json = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, tree)
os.chdir(tree)

def peak_mb(who=resource.RUSAGE_SELF):
    return resource.getrusage(who).ru_maxrss / 1024

def cpu_s():
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

import flows.daily_episode  # what the episode process imports before the stage runs
from benchmarks.bench_synthesize import SHOW, make_script
from tasks.synthesize import synthesize_script
from zundacast.models import Script
from zundacast.show import AudioConfig
from zundacast.voices.openjtalk import OpenJTalkVoice
import pyopenjtalk  # noqa: F401  (its dictionary is part of what every synthesis process holds)

script = Script.model_validate_json(open(script_json).read()) if script_json != "-" else make_script()
imports_mb = peak_mb()
started, cpu_started = time.perf_counter(), cpu_s()
bundle = synthesize_script(script, OpenJTalkVoice(concurrency=2), AudioConfig(), SHOW,
                           work_dir=tempfile.mkdtemp(prefix="bench-audio-work-"))
print(json.dumps({"wall_s": time.perf_counter() - started, "cpu_s": cpu_s() - cpu_started,
                  "duration_s": bundle.duration_s, "synthesized": bundle.synthesized,
                  "loudness_lufs": bundle.loudness_lufs, "true_peak_dbtp": bundle.true_peak_dbtp,
                  "imports_mb": imports_mb, "peak_mb": peak_mb(),
                  "children_peak_mb": peak_mb(resource.RUSAGE_CHILDREN)}))
"""


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def export_tree(revision: str) -> Path:
    """The repository at `revision`, as files in a temporary folder."""
    target = Path(tempfile.mkdtemp(prefix="bench-audio-baseline-"))
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def child(tree: Path, home: Path, script_json: str) -> dict[str, Any]:
    env = {**os.environ, "ZUNDACAST_HOME": str(home), "PYTHONWARNINGS": "ignore"}
    result = subprocess.run([sys.executable, "-c", CHILD, str(tree), "run", script_json], env=env,
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"benchmark child in {tree} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run(baseline: str, rounds: int = 2, script_json: str = "-", cold: bool = True) -> dict[str, Any]:
    trees = {"after": ROOT, "before": export_tree(baseline)}
    results: dict[str, Any] = {"baseline": baseline, "load_start": load_average()}
    home = Path(tempfile.mkdtemp(prefix="bench-audio-home-"))
    say("filling the utterance cache (OpenJTalk, this tree) ...")
    warmup = child(ROOT, home, script_json)
    results["episode_duration_s"] = round(warmup["duration_s"], 1)
    samples: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    for n in range(rounds):  # alternated, so both see the same load
        for name in ("before", "after") if n % 2 == 0 else ("after", "before"):
            say(f"audio work, {name}, round {n + 1}/{rounds} ...")
            measured = child(trees[name], home, script_json)
            assert measured["synthesized"] == 0, "the utterance cache was not warm"
            samples[name].append(measured)
    for name, runs in samples.items():
        duration = runs[0]["duration_s"]
        wall, cpu = statistics.median(r["wall_s"] for r in runs), statistics.median(r["cpu_s"] for r in runs)
        results[f"{name}_audio_work_wall_s"] = round(wall, 2)
        results[f"{name}_audio_work_wall_fraction"] = round(wall / duration, 4)
        results[f"{name}_audio_work_cpu_s"] = round(cpu, 2)
        results[f"{name}_audio_work_cpu_fraction"] = round(cpu / duration, 4)
        results[f"{name}_loudness_lufs"] = runs[-1]["loudness_lufs"]
        results[f"{name}_true_peak_dbtp"] = runs[-1]["true_peak_dbtp"]
        results[f"{name}_warm_peak_mb"] = round(max(r["peak_mb"] for r in runs))
    if cold:
        for name in ("before", "after"):
            say(f"cold synthesis (empty utterance cache), {name} ...")
            measured = child(trees[name], Path(tempfile.mkdtemp(prefix="bench-audio-cold-")), script_json)
            results[f"{name}_cold_imports_mb"] = round(measured["imports_mb"])
            results[f"{name}_cold_peak_mb"] = round(measured["peak_mb"])
            # the largest child process: ffmpeg, and the OpenJTalk synthesis process where there is one
            results[f"{name}_cold_children_peak_mb"] = round(measured["children_peak_mb"])
            results[f"{name}_cold_wall_s"] = round(measured["wall_s"], 1)
    results["load_end"] = load_average()
    return results


def merge_base() -> str:
    found = subprocess.run(["git", "-C", str(ROOT), "merge-base", "HEAD", "main"], capture_output=True,
                           text=True, check=False)
    return found.stdout.strip() or "HEAD~1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="", help="git revision to compare with (default: merge base)")
    parser.add_argument("--rounds", type=int, default=2, help="audio-work runs per tree (alternated)")
    parser.add_argument("--script", default="-", help="a Script as JSON (default: a generated ~12-min one)")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold peak-memory runs")
    args = parser.parse_args()
    started = time.time()
    results = run(args.baseline or merge_base(), max(1, args.rounds), args.script, not args.no_cold)
    results["bench_wall_s"] = round(time.time() - started, 1)
    width = max(len(k) for k in results)
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()


def run_work(articles: int = 2, per_article: int = 52) -> dict[str, Any]:
    """This tree only: the audio work (assembly + mastering + encode + check) of a shorter generated episode
    as a share of its length, once its utterances are cached (the suite's quick figure; `run` compares
    with a baseline on the full ~12-minute episode)."""
    from benchmarks.bench_synthesize import make_script

    home = Path(tempfile.mkdtemp(prefix="bench-audio-home-"))
    script = home / "script.json"
    script.write_text(make_script(articles, per_article).model_dump_json(), encoding="utf-8")
    load_start = load_average()
    cold = child(ROOT, home, str(script))  # fills the utterance cache
    warm = child(ROOT, home, str(script))
    assert warm["synthesized"] == 0, "the utterance cache was not warm"
    return {"duration_s": round(warm["duration_s"], 1), "audio_work_wall_s": round(warm["wall_s"], 2),
            "audio_work_wall_fraction": round(warm["wall_s"] / warm["duration_s"], 4),
            "audio_work_cpu_s": round(warm["cpu_s"], 2),
            "audio_work_cpu_fraction": round(warm["cpu_s"] / warm["duration_s"], 4),
            "cold_synthesis_peak_mb": round(cold["peak_mb"]), "cold_imports_mb": round(cold["imports_mb"]),
            "cold_synthesis_children_peak_mb": round(cold["children_peak_mb"]),
            "load_start": load_start, "load_end": load_average()}
