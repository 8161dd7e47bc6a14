"""The cold demo episode's peak memory, whole process tree: `python benchmarks/bench_peak.py [--runs 3]`.

Each run is `bench_pipeline.py episode` in fresh homes (what `run.py` calls a cold episode). Reported per run:
- `wait4_mb`: ru_maxrss from wait4, the larger of the episode process and its waited-for descendants
  (what `run.py` reports as the cold peak);
- `self_mb`: the episode process alone (VmHWM, read from /proc while it runs);
- `largest_child_mb`: the largest VmHWM of any descendant (Prefect's API server, a synthesis child, ffmpeg);
- `tree_mb`: the largest sum of VmRSS over the episode process and all its descendants at one sample
  (every 0.1 s, so a short spike may be missed): what the run holds at once;
- `audio_sha256`: the hash of the published MP3's decoded audio. It differs between two cold runs of the
  same tree (seen 2026-12-01), so it does not show that two trees read alike; it shows when a run is
  reproducible. (Same readings: tests/test_tts_child.py compares the audio utterance by utterance.)
Measurement only: nothing here asserts a size.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.run import PIPELINE, child_env, free_port  # noqa: E402


def _status_kb(pid: int | str, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            line = next((line for line in status if line.startswith(field + ":")), "")
    except OSError:
        return None
    return int(line.split()[1]) if line else None


def _descendants(pid: int | str) -> list[str]:
    found: list[str] = []
    todo = [str(pid)]
    while todo:
        parent = todo.pop()
        try:
            for thread in os.listdir(f"/proc/{parent}/task"):
                with open(f"/proc/{parent}/task/{thread}/children", encoding="ascii") as children:
                    kids = children.read().split()
                    found += kids
                    todo += kids
        except OSError:
            pass
    return found


def _audio_sha256(mp3: Path) -> str:
    import imageio_ffmpeg

    decoded = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(mp3), "-map", "0:a:0",
                              "-f", "s16le", "-"], capture_output=True, check=True).stdout
    return hashlib.sha256(decoded).hexdigest()[:16]


def cold_episode(scratch: Path) -> dict[str, float]:
    env = child_env(scratch / "prefect", scratch / "home")
    argv = [sys.executable, str(PIPELINE), "episode", "--port", str(free_port()), "--store",
            str(scratch / "store")]
    started = time.time()
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    peaks = {"self": 0, "child": 0, "tree": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.1):
            own = _status_kb(proc.pid, "VmHWM") or 0
            peaks["self"] = max(peaks["self"], own)
            tree = _status_kb(proc.pid, "VmRSS") or 0
            for child in _descendants(proc.pid):
                peaks["child"] = max(peaks["child"], _status_kb(child, "VmHWM") or 0)
                tree += _status_kb(child, "VmRSS") or 0
            peaks["tree"] = max(peaks["tree"], tree)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    assert proc.stdout is not None
    out = proc.stdout.read()  # not communicate(): it would reap the child before wait4 sees its rusage
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    stop.set()
    sampler.join()
    wall = time.time() - started
    if proc.returncode != 0:
        raise RuntimeError(f"episode failed: exit {proc.returncode}")
    answer = json.loads(next(line for line in reversed(out.splitlines()) if line.startswith("{")))
    run = answer["runs"][0]["summary"]
    name = Path(str(run.get("mp3", "")).removeprefix("file://")).name
    found = (path for path in (scratch / "store").rglob(name) if path.is_file()) if name else iter(())
    published = next(found, None)
    sha = _audio_sha256(published) if published else ""
    return {"wall_s": round(wall, 1), "wait4_mb": round(usage.ru_maxrss / 1024),
            "self_mb": round(peaks["self"] / 1024), "largest_child_mb": round(peaks["child"] / 1024),
            "tree_mb": round(peaks["tree"] / 1024),
            "audio_sha256": sha}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    load_before = os.getloadavg()
    runs = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="zundacast-peak-") as scratch:
            runs.append(cold_episode(Path(scratch)))
            print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    load_after = os.getloadavg()
    medians = {key: statistics.median(run[key] for run in runs) for key in runs[0] if key != "audio_sha256"}
    print(json.dumps({"median": medians, "runs": runs, "load_before": [round(x, 2) for x in load_before],
                      "load_after": [round(x, 2) for x in load_after]}))


if __name__ == "__main__":
    main()
