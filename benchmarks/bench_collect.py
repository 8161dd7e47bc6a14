"""Benchmark: concurrent collection against a one-at-a-time baseline, over loopback with real latency.

20 feeds of 50 items and 60 article pages are served by a `ThreadingHTTPServer` on 127.0.0.1 that
waits 200 ms before every answer (a far-away site). `collect_candidates` runs with the show's
concurrency (default 8) and with concurrency 1 (the baseline), three times each in this process;
the report gives the medians and their ratio.

    .venv/bin/python benchmarks/bench_collect.py            # prints a JSON report
    from benchmarks.bench_collect import run; run()         # the same dict, for a suite
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runnable as a script from anywhere

from tasks.collect import collect_candidates
from tests.fakes.web import FakeSite, Item, article_page, rss2
from zundacast.show import Show, parse_show

FEEDS, ITEMS, PAGES, LATENCY_S, REPEATS = 20, 50, 60, 0.2, 3
DAY = dt.date(2025, 7, 24)
JST = dt.timezone(dt.timedelta(hours=9))
NOW = dt.datetime(2025, 7, 24, 6, 5, tzinfo=JST)
WORDS = ("model agent inference cluster latency tokenizer compiler kernel vector search cache shard "  # noqa: SIM905
         "rollout canary schema index replica quantized sparse dense retrieval prompt budget router "
         "gateway runtime sandbox fuzzing patch release benchmark dataset pipeline scheduler storage "
         "encoder decoder attention memory bandwidth throughput fleet region edge mobile browser").split()


def serve_sample_day(site: FakeSite, seed: int = 7) -> list[dict[str, Any]]:
    """20 RSS feeds of 50 dated items each; every item links to an article page on the site."""
    rng = random.Random(seed)
    published = dt.datetime(2025, 7, 23, 7, 0, tzinfo=JST)
    paragraphs = [" ".join(rng.choice(WORDS) for _ in range(60)) + "." for _ in range(8)]
    feeds = []
    for f in range(FEEDS):
        items = []
        for i in range(ITEMS):
            title = " ".join(rng.choice(WORDS).capitalize() for _ in range(7))
            path = f"/f{f}/a{i}"
            site.route(path, article_page(title, paragraphs, lang="en"))
            stamp = published + dt.timedelta(minutes=rng.randrange(0, 22 * 60))
            items.append(Item(title, site.url(path), stamp, summary=" ".join(rng.sample(WORDS, 12))))
        site.route(f"/feed{f}.xml", rss2(items, title=f"Feed {f}"), content_type="application/rss+xml")
        feeds.append({"name": f"Feed {f}", "url": site.url(f"/feed{f}.xml")})
    return feeds


def make_show(feeds: list[dict[str, Any]], host: str, concurrency: int) -> Show:
    return parse_show({
        "show": {"id": "bench", "title": "bench"},
        "collect": {"max_pages": PAGES, "concurrency": concurrency, "timeout_s": 5, "allow_hosts": [host],
                    "min_text_chars": 100},
        "rank": {"topics": ["model", "agent", "inference"]},
        "feeds": feeds,
    })


def timed(show: Show) -> tuple[float, int, int]:
    started = time.perf_counter()
    snapshot = collect_candidates(show, DAY, now=NOW)
    elapsed = time.perf_counter() - started
    with_text = sum(1 for c in snapshot.candidates if c.text and not c.extraction_error)
    return elapsed, len(snapshot.candidates), with_text


def run(repeats: int = REPEATS, concurrency: int = 8) -> dict[str, Any]:
    os.environ.setdefault("ZUNDACAST_HOME", tempfile.mkdtemp(prefix="bench-collect-"))
    with FakeSite(latency_s=LATENCY_S) as site:
        feeds = serve_sample_day(site)
        concurrent_show = make_show(feeds, site.host, concurrency)
        serial_show = make_show(feeds, site.host, 1)
        concurrent, serial = [], []
        candidates = with_text = 0
        for _ in range(repeats):  # interleaved, so drift on a shared machine hits both alike
            elapsed, candidates, with_text = timed(concurrent_show)
            concurrent.append(elapsed)
            serial.append(timed(serial_show)[0])
        requests = len(site.requests)
    concurrent_s, serial_s = statistics.median(concurrent), statistics.median(serial)
    return {
        "feeds": FEEDS, "items_per_feed": ITEMS, "pages": PAGES, "latency_s": LATENCY_S,
        "concurrency": concurrency, "repeats": repeats,
        "candidates": candidates, "pages_with_text": with_text, "requests_served": requests,
        "concurrent_s": round(concurrent_s, 3), "one_at_a_time_s": round(serial_s, 3),
        "speedup": round(serial_s / concurrent_s, 2),
        "concurrent_runs_s": [round(x, 3) for x in concurrent],
        "one_at_a_time_runs_s": [round(x, 3) for x in serial],
        "latency_floor_one_at_a_time_s": round((FEEDS + PAGES) * LATENCY_S, 2),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))


# --- issue 14: a feed that never answers, against the collect deadline -----------------------------------

class SilentServer:
    """Accepts connections on 127.0.0.1 and never sends a byte (a hung feed host)."""

    def __init__(self) -> None:
        import socket
        import threading

        self.listener = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections: list[Any] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.connections.append(self.listener.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.listener.close()
        for connection in self.connections:
            connection.close()


def run_deadline(timeout_s: float = 5.0, feeds: int = 5, repeats: int = 1) -> dict[str, Any]:
    """Collect through the Prefect path (one fetch-feed task per feed, with its retries), `feeds` fast
    feeds alone and then with one feed that never answers; the extra time in units of the fetch timeout."""
    from prefect import flow

    from tasks.collect import deadline_s, read_feeds_as_tasks

    os.environ.setdefault("ZUNDACAST_HOME", tempfile.mkdtemp(prefix="bench-collect-"))
    silent = SilentServer()
    with FakeSite(latency_s=LATENCY_S) as site:
        all_feeds = serve_sample_day(site)[:feeds]

        def show(with_silent: bool) -> Show:
            listed = all_feeds + ([{"name": "Silent", "url": f"http://{silent.host}/feed.xml"}]
                                  if with_silent else [])
            return parse_show({"show": {"id": "bench", "title": "bench"},
                               "collect": {"max_pages": 5, "timeout_s": timeout_s, "min_text_chars": 100,
                                           "allow_hosts": [site.host, silent.host]},
                               "feeds": listed})

        @flow(name="bench-collect-deadline")
        def measure() -> dict[str, Any]:
            fast, slow, errors = [], [], {}
            for _ in range(repeats):
                for with_silent, times in ((False, fast), (True, slow)):
                    started = time.perf_counter()
                    snapshot = collect_candidates(show(with_silent), DAY, now=NOW,
                                                  read_feeds=read_feeds_as_tasks)
                    times.append(time.perf_counter() - started)
                    errors = snapshot.feed_errors if with_silent else errors
            return {"fast": statistics.median(fast), "slow": statistics.median(slow), "errors": errors}

        measured = measure()
    silent.close()
    extra = measured["slow"] - measured["fast"]
    return {"timeout_s": timeout_s, "deadline_s": deadline_s(show(True).collect), "fast_feeds": feeds,
            "fast_collect_s": round(measured["fast"], 2), "slow_collect_s": round(measured["slow"], 2),
            "slow_over_fast": round(measured["slow"] / measured["fast"], 2),
            "extra_s": round(extra, 2), "extra_in_timeouts": round(extra / timeout_s, 2),
            "silent_feed_error": measured["errors"].get("Silent", "")}
