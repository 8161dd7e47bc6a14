"""Benchmark children for the whole pipeline; `benchmarks/run.py` starts each in its own process.

Each mode is one real process start (what a user pays), prints progress to stderr and ends with one
JSON line on stdout:

    python benchmarks/bench_pipeline.py episode --port P --store DIR [--runs K]
        the sample day's episode through `flows.daily_episode`, K times in this one process (the first
        run pays Prefect's ephemeral API start-up, the later ones find it up); the caller picks
        ZUNDACAST_HOME and PREFECT_HOME (fresh for a cold run, reused for a warm one) and keeps the port
        fixed, since the feed URLs, and with them the cache keys, carry it.
    python benchmarks/bench_pipeline.py prefect [--tasks N] [--llm-latency S]
        Prefect's own costs: process start to the first task, a trivial flow with the API already up,
        the per-task overhead (N trivial task runs in one flow vs N plain calls; no cache, stage cache
        computing, stage cache hit), and the summarize stage mapped vs one article at a time.

Measurement only: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

PROCESS_STARTED = time.time()  # close to the interpreter's start: this module is the main script
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runnable as a script from anywhere

# The environment the CLI sets before Prefect is imported (see zundacast/cli.py).
PREFECT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "DO_NOT_TRACK": "1",
}
for _name, _value in PREFECT_DEFAULTS.items():
    os.environ.setdefault(_name, _value)

# A structured-output answer the summary writer accepts (the shape of tests/test_llm.py's).
SUMMARY_JSON = {
    "spoken_title": "国産LLM『ツバキ2』公開、日本語ベンチマークで首位",
    "summary": "ツバキAI研究所が、日本語に強い大規模言語モデル「Tsubaki-2」を11月16日に公開しました。"
               "パラメーター数は32Bで、同じ規模のオープンモデルの中で日本語の性能が一番高いそうです。"
               "ライセンスはApache 2.0なので、企業が商用で使うこともできます。",
    "key_points": ["日本語の知識を問うベンチマークJMMLUで78.4点を記録しました。",
                   "学習にはNVIDIA H100を2,048基使い、期間は52日間でした。",
                   "扱える文脈の長さは128Kトークンで、長い契約書の要約にも使えます。"],
    "why_it_matters": "商用利用できる強い日本語モデルが手元で動くので、"
                      "社内データを外に出さずにAIを使えます。",
}


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# --- episode ---------------------------------------------------------------------------------------

def episode(port: int, store: str, runs: int) -> dict[str, Any]:
    """The sample day's episode `runs` times in this process; wall time and stage report of each."""
    imported = time.time()
    from flows.daily_episode import daily_episode
    from zundacast.sample_day import SAMPLE_DATE, sample_show, serve_sample_day

    results: dict[str, Any] = {"import_s": round(time.time() - imported, 3),
                               "process_to_imported_s": round(time.time() - PROCESS_STARTED, 3), "runs": []}
    with serve_sample_day(port=port) as base_url:
        show = sample_show(base_url)
        for _ in range(runs):
            started = time.time()
            summary = daily_episode(episode_date=SAMPLE_DATE, show=show, store=store)
            results["runs"].append({"wall_s": round(time.time() - started, 3), "started_at": started,
                                    "summary": summary.model_dump(mode="json")})
    return results


# --- prefect ---------------------------------------------------------------------------------------

def _prefect_tasks() -> dict[str, Any]:
    """Trivial tasks and flows, built after the clock for `import prefect` started."""
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE

    from zundacast.stage import stage_options

    first_task_at: list[float] = []

    def plain(i: int) -> int:
        return i * 2

    @task(cache_policy=NO_CACHE)
    def trivial(i: int) -> int:
        if not first_task_at:
            first_task_at.append(time.time())
        return i * 2

    @task(**stage_options())
    def trivial_stage(i: int) -> int:  # the stages' policy: cached on inputs + source, result persisted
        return i * 2

    @flow(name="bench-one-task")
    def one_task() -> int:
        return trivial(1)

    @flow(name="bench-many-tasks")
    def many_tasks(n: int, cached_like_stages: bool) -> float:
        """Seconds for n task runs one after another, timed inside the flow (its own start and end apart)."""
        runnable = trivial_stage if cached_like_stages else trivial
        started = time.perf_counter()
        for i in range(n):
            runnable(i)
        return time.perf_counter() - started

    return {"plain": plain, "one_task": one_task, "many_tasks": many_tasks, "first_task_at": first_task_at}


def _timed(call: Any, *args: Any, **kwargs: Any) -> float:
    started = time.perf_counter()
    call(*args, **kwargs)
    return time.perf_counter() - started


def prefect_costs(n_tasks: int, llm_latency_s: float) -> dict[str, Any]:
    started = time.time()
    import prefect  # noqa: F401  (the import is what is timed)

    import_prefect_s = time.time() - started
    t = _prefect_tasks()
    flow_called = time.time()
    first_flow_s = _timed(t["one_task"])
    results: dict[str, Any] = {
        "import_prefect_s": round(import_prefect_s, 3),
        "process_to_flow_call_s": round(flow_called - PROCESS_STARTED, 3),
        "flow_call_to_first_task_s": round(t["first_task_at"][0] - flow_called, 3),
        "process_to_first_task_s": round(t["first_task_at"][0] - PROCESS_STARTED, 3),
        "first_trivial_flow_s": round(first_flow_s, 3),
        "trivial_flow_api_up_s": round(statistics.median(_timed(t["one_task"]) for _ in range(3)), 3),
    }
    plain_s = _timed(lambda: [t["plain"](i) for i in range(n_tasks)])
    empty_flow_s = _timed(t["many_tasks"], 0, False)  # a flow run's own cost with the API up
    no_cache_s = t["many_tasks"](n_tasks, False)
    computing_s = t["many_tasks"](n_tasks, True)
    cached_s = t["many_tasks"](n_tasks, True)

    def per_task_ms(in_flow_s: float) -> float:
        return round((in_flow_s - plain_s) / n_tasks * 1000, 2)

    results.update(
        tasks=n_tasks, empty_flow_s=round(empty_flow_s, 3), plain_calls_s=round(plain_s, 6),
        task_overhead_no_cache_ms=per_task_ms(no_cache_s),
        task_overhead_stage_cache_computing_ms=per_task_ms(computing_s),
        task_overhead_stage_cache_hit_ms=per_task_ms(cached_s),
    )
    results.update(summarize_costs(llm_latency_s))
    return results


def summarize_costs(llm_latency_s: float) -> dict[str, Any]:
    """The sample day's picks summarized by the flow's mapped tasks vs one at a time with the plain function,
    by the offline writer (CPU only) and by an OpenAI-protocol loopback fake answering after a delay."""
    from prefect import flow
    from prefect.futures import wait

    from tasks.collect import collect_candidates
    from tasks.rank import rank_candidates
    from tasks.summarize import summarize, summarize_article
    from tests.fakes.openai_server import fake_openai
    from zundacast.llm import writer_for
    from zundacast.sample_day import SAMPLE_DATE, sample_show, serve_sample_day
    from zundacast.show import Environment

    with serve_sample_day(port=0) as base_url:
        show = sample_show(base_url)
        snapshot = collect_candidates(show, SAMPLE_DATE)
    candidates = [pick.candidate for pick in rank_candidates(snapshot, show, SAMPLE_DATE, []).picks]

    @flow(name="bench-summarize")
    def mapped(writer_key: str) -> float:
        """Seconds for the mapped stage, timed inside the flow as the flow's StageRunner times it."""
        runnable = summarize.with_options(refresh_cache=True)  # measure the work, not the cache
        started = time.perf_counter()
        wait([runnable.submit(candidate, llm=show.llm, writer_key=writer_key) for candidate in candidates])
        return time.perf_counter() - started

    def one_at_a_time() -> None:
        writer = writer_for(show.llm, Environment(), stage="summarize")
        for candidate in candidates:
            summarize_article(candidate, writer)

    results: dict[str, Any] = {"summarize_articles": len(candidates), "llm_latency_s": llm_latency_s}
    offline_key = writer_for(show.llm, Environment(), stage="summarize").cache_key
    results["summarize_offline_mapped_s"] = round(mapped(offline_key), 3)
    results["summarize_offline_one_at_a_time_s"] = round(_timed(one_at_a_time), 3)

    def answer(request: dict[str, Any]) -> str:
        time.sleep(llm_latency_s)  # a far-away model's time to answer
        return json.dumps(SUMMARY_JSON, ensure_ascii=False)

    with fake_openai(answer) as fake:
        os.environ["OPENAI_BASE_URL"] = fake.base_url
        os.environ["OPENAI_API_KEY"] = "sk-bench-not-a-key"
        try:
            llm_key = writer_for(show.llm, Environment(), stage="summarize").cache_key
            results["summarize_llm_mapped_s"] = round(mapped(llm_key), 3)
            results["summarize_llm_one_at_a_time_s"] = round(_timed(one_at_a_time), 3)
            results["summarize_llm_requests"] = len(fake.requests)
        finally:
            del os.environ["OPENAI_BASE_URL"], os.environ["OPENAI_API_KEY"]
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    ep = modes.add_parser("episode")
    ep.add_argument("--port", type=int, required=True)
    ep.add_argument("--store", required=True)
    ep.add_argument("--runs", type=int, default=1)
    pf = modes.add_parser("prefect")
    pf.add_argument("--tasks", type=int, default=200)
    pf.add_argument("--llm-latency", type=float, default=0.5)
    args = parser.parse_args(argv)
    if args.mode == "episode":
        result = episode(args.port, args.store, args.runs)
    else:
        result = prefect_costs(args.tasks, args.llm_latency)
    print(json.dumps(result, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
