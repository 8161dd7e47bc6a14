"""Benchmark: story de-duplication (`zundacast.stories.merge_same_stories`) at 5,000, 10,000 and 20,000
feed items, against the trigram-counting index it replaced (kept below as `TrigramTitleIndex`, quadratic
when titles share their trigrams), and how often the two agree.

Two kinds of feed items, generated with a fixed seed:

- `news`: Japanese and English tech-news titles from templates (company, product, version, topic, verb),
  15% of them the same story again as another feed would carry it (a site name appended, 「、」 become
  「が」, a 【速報】 tag, a word changed) and some the same title with another version number (a different
  story);
- `word-soup`: seven words drawn from 48 (the collect benchmark's titles): every title shares most of its
  trigrams with thousands of others, the case that made the old index quadratic (issue 14: 20,000 items
  100 s).

    .venv/bin/python benchmarks/bench_dedup.py            # prints a JSON report
    from benchmarks.bench_dedup import run; run()         # the same dict, for a suite
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import random
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from itertools import chain
from pathlib import Path
from typing import Any
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runnable as a script from anywhere

from zundacast import stories
from zundacast.models import Candidate
from zundacast.show import Show, parse_show
from zundacast.stories import normalize_title, similar_normalized, title_numbers

SIZES = (5_000, 10_000, 20_000)
BASELINE_SIZE = 5_000
REPEATS = 5
DUPLICATE_SHARE = 0.15
PUBLISHED = dt.datetime(2025, 7, 23, 12, 0, tzinfo=dt.UTC)

COMPANIES = ("OpenAI", "Google", "Microsoft", "NVIDIA", "AWS", "Meta", "Anthropic", "Apple", "Cloudflare",
             "GitHub", "Mistral AI", "KDDI", "Preferred Networks", "Sony", "IBM", "NEC",
             "さくらインターネット", "富士通", "ソフトバンク", "楽天", "LINEヤフー", "日立", "NTTデータ",
             "サイバーエージェント")
PRODUCTS = ("GPT", "Gemini", "Claude", "Llama", "Copilot", "Tsubaki", "Kestrel", "Aoba", "Midori", "Hibari",
            "vLLM", "TypeScript", "Python", "Rust", "Kubernetes", "PostgreSQL", "Next.js", "Deno", "Bun",
            "Terraform", "Grafana", "Redis", "Qwen", "Phi", "Gemma", "Whisper", "Stable Diffusion")
TOPICS = ("生成AI", "エージェント", "推論", "GPUクラウド", "データセンター", "検索", "セキュリティ",
          "開発者向け", "国内", "企業向け", "無料枠", "API", "オンデバイス", "学習", "評価", "ベンチマーク",
          "RAG", "画像生成", "音声認識", "量子化", "コード補完", "ログ分析", "サプライチェーン",
          "ゼロトラスト")
VERBS_JA = ("発表", "公開", "提供開始", "正式リリース", "値下げ", "障害", "脆弱性を修正", "買収", "提携",
            "ベータ版を公開", "新機能を追加", "対応", "強化", "提供終了", "延期", "刷新",
            "オープンソース化")
VERBS_EN = ("launches", "ships", "delays", "open-sources", "cuts prices of", "acquires", "patches",
            "previews", "deprecates", "benchmarks")
WORDS = ("model agent inference cluster latency tokenizer compiler kernel vector search cache shard "  # noqa: SIM905
         "rollout canary schema index replica quantized sparse dense retrieval prompt budget router "
         "gateway runtime sandbox fuzzing patch release benchmark dataset pipeline scheduler storage "
         "encoder decoder attention memory bandwidth throughput fleet region edge mobile browser").split()
SITES = (" | ITmedia AI+", " - Publickey", " | Zenn", " - GIGAZINE", " | The Verge", " - TechNews Daily")


def news_title(rng: random.Random) -> str:
    version = f"{rng.randint(1, 9)}.{rng.randint(0, 9)}"
    if rng.random() < 0.6:
        return (f"{rng.choice(COMPANIES)}、{rng.choice(TOPICS)}向けの{rng.choice(PRODUCTS)} {version}を"
                f"{rng.choice(VERBS_JA)}　{rng.choice(TOPICS)}と{rng.choice(TOPICS)}も{rng.choice(VERBS_JA)}")
    return (f"{rng.choice(COMPANIES)} {rng.choice(VERBS_EN)} {rng.choice(PRODUCTS)} {version} with "
            + " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 6))))


def same_story_again(title: str, rng: random.Random) -> str:
    """The title as another feed carries the same story."""
    kind = rng.randrange(4)
    if kind == 0:
        return title + rng.choice(SITES)
    if kind == 1:
        return title.replace("、", "が", 1) if "、" in title else title.replace(" with ", " featuring ", 1)
    if kind == 2:
        return "【速報】" + title
    return title.replace(" ", "  ", 2) + "!"


def news_titles(count: int, seed: int = 14) -> list[str]:
    rng = random.Random(seed)
    titles: list[str] = []
    while len(titles) < count:
        roll = rng.random()
        if titles and roll < DUPLICATE_SHARE:
            titles.append(same_story_again(rng.choice(titles), rng))
        elif titles and roll < DUPLICATE_SHARE + 0.02:  # another version: a different story
            earlier = rng.choice(titles)
            bumped = earlier.replace(".", f".{rng.randint(0, 9)}", 1)
            titles.append(bumped if bumped != earlier else earlier + " 2")
        else:
            titles.append(news_title(rng))
    return titles


def word_soup_titles(count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS).capitalize() for _ in range(7)) for _ in range(count)]


def candidates(titles: list[str]) -> list[Candidate]:
    feeds = ("Hatena", "TechNews", "Zenn", "arXiv")
    return [Candidate(url=f"https://news.example/{i}", title=title, source=feeds[i % 4],
                      sources=[feeds[i % 4]], published=PUBLISHED) for i, title in enumerate(titles)]


def bench_show() -> Show:
    return parse_show({"show": {"id": "bench", "title": "bench"},
                       "feeds": [{"name": name, "url": f"https://{name.lower()}.example/feed"}
                                 for name in ("Hatena", "TechNews", "Zenn", "arXiv")]})


class TrigramTitleIndex:
    """The index this benchmark compares against (tasks/rank.py before issue 14): every title sharing
    half of the query's character trigrams is counted through the trigram posting lists."""

    def __init__(self) -> None:
        self._entries: list[tuple[str, frozenset[str], int]] = []
        self._grams: dict[str, list[int]] = defaultdict(list)

    def find(self, title: str) -> int | None:
        normalized, numbers = normalize_title(title), title_numbers(title)
        if not normalized:
            return None
        grams = _trigrams(normalized)
        shared = Counter(chain.from_iterable(self._grams.get(gram, ()) for gram in grams))
        needed = max(1, int(len(grams) * 0.5))
        close = sorted((p for p, count in shared.items() if count >= needed), key=lambda p: (-shared[p], p))
        for position in close:
            other, other_numbers, key = self._entries[position]
            if similar_normalized(normalized, other, numbers, other_numbers):
                return key
        return None

    def add(self, title: str, key: int) -> None:
        normalized = normalize_title(title)
        position = len(self._entries)
        self._entries.append((normalized, title_numbers(title), key))
        for gram in _trigrams(normalized):
            self._grams[gram].append(position)


def _trigrams(text: str) -> set[str]:
    return {text} if len(text) < 3 else {text[i:i + 3] for i in range(len(text) - 2)}


def timed(items: list[Candidate], show: Show,
          index: Callable[[], Any] | None = None) -> tuple[float, float, list[str]]:
    """Wall and CPU seconds for one `merge_same_stories` over `items`, and the stories' URLs (in order).

    CPU time is reported beside wall time because this machine is shared: under load the wall clock
    measures the neighbours too."""
    with mock.patch.object(stories, "TitleIndex", index) if index else contextlib.nullcontext():
        started, cpu = time.perf_counter(), time.process_time()
        merged = stories.merge_same_stories(items, show)
        elapsed, cpu_elapsed = time.perf_counter() - started, time.process_time() - cpu
    return elapsed, cpu_elapsed, [c.url for c in merged]


def run(repeats: int = REPEATS, sizes: tuple[int, ...] = SIZES, baseline_repeats: int = 3) -> dict[str, Any]:
    show = bench_show()
    report: dict[str, Any] = {"repeats": repeats, "unit": "seconds, median (wall; cpu)",
                              "load_average_1min_at_start": round(os.getloadavg()[0], 2)}
    for kind, make in (("news", news_titles), ("word-soup", word_soup_titles)):
        section: dict[str, Any] = {}
        for size in sizes:
            items = candidates(make(size))
            times, cpu_times, stories_found = [], [], []
            for _ in range(repeats):
                elapsed, cpu, urls = timed(items, show)
                times.append(elapsed)
                cpu_times.append(cpu)
                stories_found = urls
            section[f"{size}_items_s"] = round(statistics.median(times), 3)
            section[f"{size}_items_cpu_s"] = round(statistics.median(cpu_times), 3)
            section[f"{size}_stories"] = len(stories_found)
            if size == BASELINE_SIZE:
                old_times, old_cpu, old_urls = [], [], []
                for _ in range(baseline_repeats):
                    elapsed, cpu, old_urls = timed(items, show, TrigramTitleIndex)
                    old_times.append(elapsed)
                    old_cpu.append(cpu)
                old = statistics.median(old_times)
                section[f"{size}_items_old_s"] = round(old, 3)
                section[f"{size}_items_old_cpu_s"] = round(statistics.median(old_cpu), 3)
                section[f"{size}_old_over_new"] = round(old / statistics.median(times), 1)
                section[f"{size}_old_over_new_cpu"] = round(statistics.median(old_cpu)
                                                            / statistics.median(cpu_times), 1)
                section[f"{size}_stories_old"] = len(old_urls)
                section[f"{size}_same_stories_as_old"] = stories_found == old_urls
        report[kind] = section
    return report


if __name__ == "__main__":
    print(json.dumps(run(), indent=2, ensure_ascii=False))
