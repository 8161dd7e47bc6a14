"""Run both writers over the sample day and the written news days; print (and optionally write) the table.

    uv run python -m evals.run                 # print the table
    uv run python -m evals.run --write         # and rewrite EVALS.md
    uv run python -m evals.run --writer offline --day day-injection

Each day goes the project's own way: its feeds and pages are served over loopback HTTP, collected
(`collect_candidates`), ranked, the unreadable picks replaced, summarized and scripted through the
editorial gate (`flows.daily_episode.gated_script`, spares replacing rejected articles). No audio.
The LLM writer runs against the project's loopback fake (tests/fakes/openai_server.py, `faithful_model`):
no real LLM is reachable here, so its row measures the gate and the frame around a careful paraphraser,
not a real model's prose.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python evals/run.py` as well as `python -m evals.run`
    sys.path.insert(0, str(ROOT))

from evals.days import Day, feed_paths, load_day, render_day  # noqa: E402
from evals.days import day_names as written_days  # noqa: E402
from zundacast.models import Candidate, Script, Summary  # noqa: E402
from zundacast.show import Show, load_show, parse_show  # noqa: E402

SAMPLE = "sample-day"
WRITERS = ("offline", "llm-fake")
FALLBACK_WRITER = "offline-fallback"


@dataclass
class Result:
    writer: str
    day: str
    trap: str = ""
    script: Script | None = None
    summaries: list[Summary] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)  # the readable candidates (picks + spares)
    error: str = ""
    seconds: float = 0.0
    forbidden: list[str] = field(default_factory=list)

    @property
    def transcript(self) -> list[str]:
        return [s.text for section in self.script.sections for s in section.sentences] if self.script else []


def day_names() -> list[str]:
    return [SAMPLE, *written_days()]


# --- serving a day over loopback HTTP ------------------------------------------------------------------


@contextlib.contextmanager
def serve(files: dict[str, bytes]) -> Iterator[str]:
    """The files on 127.0.0.1 (any free port), with the sample day's handler (404s, content types)."""
    from zundacast.sample_day import _handler

    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler({}, ""))
    server.daemon_threads = True
    base_url = f"http://127.0.0.1:{server.server_address[1]}"
    server.RequestHandlerClass = _handler(files, base_url)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield base_url
    finally:
        server.shutdown()
        server.server_close()


def _show(base_url: str, feeds: list[dict]) -> Show:
    show = load_show("zundamon-ai")
    raw = show.model_dump(mode="json")
    raw["feeds"] = feeds
    raw["collect"]["allow_hosts"] = [base_url.split("//", 1)[1]]  # the SSRF guard allows this host only
    return parse_show(raw, show.source_path)


def day_source(name: str) -> tuple[dt.date, str, dict[str, bytes], Callable[[str], list[dict]], list[str]]:
    """(date, trap, files, feeds for a base URL, forbidden text) of a day."""
    if name == SAMPLE:
        from zundacast import sample_day

        def sample_feeds(base_url: str) -> list[dict]:
            return [{"name": sample_day.TECHNEWS_FEED_NAME, "url": base_url + sample_day.TECHNEWS_FEED_PATH,
                     "weight": 1.0, "language": "ja"},
                    {"name": sample_day.HATENA_FEED_NAME, "url": base_url + sample_day.HATENA_FEED_PATH,
                     "weight": 1.2, "language": "ja"}]

        return (sample_day.SAMPLE_DATE, "the bundled sample day (PDF link, utm link, English article, sale)",
                sample_day.sample_files(), sample_feeds, ["2026年11月19日 14時00分", "文：高橋"])
    day: Day = load_day(name)

    def day_feeds(base_url: str) -> list[dict]:
        return [{"name": feed["name"], "url": base_url + path, "weight": feed.get("weight", 1.0),
                 "language": feed.get("language", "ja")} for feed, path in feed_paths(day)]

    return day.date, day.trap, render_day(day), day_feeds, day.forbidden


# --- one writer over one day -------------------------------------------------------------------------------


class DirectRunner:
    """The flow's StageRunner shape, calling the stage functions directly (no Prefect server needed)."""

    def __init__(self) -> None:
        self.said: list[str] = []
        self.last_script: Script | None = None  # measured even when the gate then refuses the episode

    def __call__(self, name: str, task: Any, *args: Any, **kwargs: Any) -> Any:
        value = task.fn(*args, **kwargs)
        if name == "script":
            self.last_script = value
        return value

    def mapped(self, name: str, task: Any, items: list[Any], **kwargs: Any) -> list[Any]:
        return [task.fn(item, **kwargs) for item in items]

    def say(self, line: str) -> None:
        self.said.append(line)


@contextlib.contextmanager
def _environment(writer: str) -> Iterator[None]:
    """A fresh ZUNDACAST_HOME; for the LLM writer the loopback fake LLM as OPENAI_BASE_URL."""
    import flows.daily_episode
    import flows.editing

    saved = {key: os.environ.get(key) for key in ("ZUNDACAST_HOME", "OPENAI_BASE_URL", "OPENAI_API_KEY")}
    with tempfile.TemporaryDirectory(prefix="zundacast-evals-") as home, contextlib.ExitStack() as stack:
        for module in (flows.daily_episode, flows.editing):  # no Prefect API in the evals
            stack.enter_context(mock.patch.object(module, "create_markdown_artifact", lambda **kwargs: None))
        os.environ["ZUNDACAST_HOME"] = home
        for key in ("OPENAI_BASE_URL", "OPENAI_API_KEY"):
            os.environ.pop(key, None)
        if writer == "llm-fake":
            from tests.fakes.openai_server import faithful_model, fake_openai

            server = stack.enter_context(fake_openai(faithful_model))
            os.environ["OPENAI_BASE_URL"] = server.base_url
            os.environ["OPENAI_API_KEY"] = "sk-evals-loopback-fake"
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def run_day(name: str, writer: str) -> Result:
    """One episode's script for `name` by `writer`, the way the flow makes it (collect → gated script)."""
    from flows.daily_episode import gated_script, with_readable_picks
    from tasks.collect import collect_candidates
    from tasks.rank import rank_candidates
    from tasks.summarize import summarize
    from zundacast.llm import get_writer
    from zundacast.scoring import unreadable_reason
    from zundacast.show import Environment

    day, trap, files, feeds, forbidden = day_source(name)
    result = Result(writer=writer, day=name, trap=trap, forbidden=forbidden)
    started = time.perf_counter()
    with _environment(writer):
        with serve(files) as base_url:
            show = _show(base_url, feeds(base_url))
            tz = ZoneInfo(show.show.timezone)
            now = dt.datetime.combine(day, show.schedule.cutoff, tzinfo=tz) + dt.timedelta(minutes=5)
            snapshot = collect_candidates(show, day, now=now)
        ranking = with_readable_picks(rank_candidates(snapshot, show, day, []))
        result.candidates = [pick.candidate for pick in ranking.picks + ranking.spares
                             if not unreadable_reason(pick.candidate)]
        env = Environment()
        summary_key = get_writer(show, env, stage="summarize").cache_key
        script_key = get_writer(show, env, stage="script").cache_key
        runner = DirectRunner()
        summaries = runner.mapped("summarize", summarize, [pick.candidate for pick in ranking.picks],
                                  llm=show.llm, writer_key=summary_key)
        try:
            _ranking, result.summaries, result.script = gated_script(
                runner, show, day, ranking, summaries, summary_key, script_key)
        except Exception as exc:  # the gate refused the episode: that is a measured outcome, not a crash
            result.error = f"{type(exc).__name__}: {exc}"
            result.summaries = summaries
            result.script = runner.last_script
    result.seconds = round(time.perf_counter() - started, 2)
    return result


# --- the table ------------------------------------------------------------------------------------------


def row(result: Result) -> dict[str, str]:
    if result.script is None:
        return {"writer": result.writer, "day": result.day, "verdict": "REFUSED: " + result.error[:160]}
    quality = result.script.quality
    fired = Counter(r.rule for r in quality.rules_fired if r.action != "replaced by spare")
    replaced = sum(r.action == "replaced by spare" for r in quality.rules_fired)
    fallbacks = len(result.script.fallbacks) + sum(s.writer == FALLBACK_WRITER for s in result.summaries)
    return {
        "writer": result.writer, "day": result.day,
        "articles": str(sum(section.kind == "article" for section in result.script.sections)),
        "chars": str(quality.characters), "sentences": str(quality.sentences),
        "persona": f"{quality.persona_ratio:.2f}", "distinct": f"{quality.distinct_sentence_ratio:.2f}",
        "endings": str(quality.ending_kinds),
        "grounded": f"{quality.grounded_claim_ratio:.2f} ({quality.claims})",
        "rules fired": ", ".join(f"{rule}×{count}" for rule, count in fired.most_common()) or "none",
        "fallbacks": str(fallbacks), "replaced": str(replaced),
        "verdict": "REFUSED: " + _gate_reason(result.error) if result.error else "published",
    }


def _gate_reason(error: str) -> str:
    """The first failure of a refused episode, short ("[length] script: length 2925 characters …")."""
    found = re.search(r"\[[a-z._]+\][^:]*: [^:]*", error)
    return (found.group(0) if found else error)[:110]


COLUMNS = ("writer", "day", "articles", "chars", "sentences", "persona", "distinct", "endings", "grounded",
           "rules fired", "fallbacks", "replaced", "verdict")


def table(results: list[Result]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for result in results:
        cells = row(result)
        lines.append("| " + " | ".join(cells.get(column, "") for column in COLUMNS) + " |")
    return "\n".join(lines)


def details(results: list[Result]) -> str:
    lines = []
    for result in results:
        lines.append(f"- **{result.writer} · {result.day}** ({result.trap}; {result.seconds:.1f} s)")
        if result.script:
            quality = result.script.quality
            lines.append("  - endings: " + ", ".join(f"{end} {n}" for end, n in quality.endings.items()))
            titles = [s.spoken_title for s in result.summaries]
            lines.append("  - titles: " + " / ".join(f"「{title}」" for title in titles))
            for item in result.script.fallbacks:
                lines.append(f"  - fallback: {item}")
            for fired in quality.rules_fired:
                if fired.action == "replaced by spare":
                    lines.append(f"  - replaced by spare: {fired.article} ({fired.rule}, {fired.field})")
        if result.error:
            lines.append(f"  - {result.error}")
    return "\n".join(lines)


HEADER = """# Evals: what the writers make of a news day

Measured {when} with `uv run python -m evals.run --write` ({seconds:.0f} s). Machine: {machine};
load average (1/5/15 min) at start {load_start}, at end {load_end} (2 cores, shared with other engineers).

**The LLM rows are not a real model.** No LLM endpoint is reachable here: `llm-fake` is the project's
loopback fake speaking the OpenAI wire protocol (tests/fakes/openai_server.py, `faithful_model`: it
paraphrases the article's own sentences, respells numbers and names, shortens titles). Its rows measure
the gate, the frame and the fallbacks around a careful writer; judge a real model's prose by pointing
`OPENAI_BASE_URL` at it and running the same command.

Each day: feeds and pages served over loopback HTTP → `collect_candidates` → `rank_candidates` →
unreadable picks replaced → `summarize` → `gated_script` (the flow's editorial gate, spares replacing
rejected articles). Figures are `Script.quality` (the gate's own measure): characters and sentences of
the whole script, persona ratio (sentences ending in のだ/なのだ), distinct-sentence ratio,
sentence-ending kinds, grounded-claim ratio (numbers and Latin names found in the article / all), rules
fired (rule × times, every attempt counted), segments or summaries the offline writer took over, articles
replaced by a spare.

The days (evals/days/*.toml, written for the project; the sample day is zundacast/sample_day):

{days}

{table}

Reading it: `REFUSED` is the flow's outcome too: the editorial gate failed the whole script and
nothing would be published (the row still measures the script the gate saw). `length×N` counts every
attempt: an LLM segment is asked up to three times, then written offline. "Enough text" for the
3,400–4,600 band means three Japanese articles of about 1,000+ characters each (the sample day's hold
1,230+); days of 500–800-character news make shorter episodes, never padded ones.

## Details

{details}
"""


def write_markdown(results: list[Result], path: Path, seconds: float, load_start: str, load_end: str) -> None:
    days = []
    for name in dict.fromkeys(result.day for result in results):
        trap = next(result.trap for result in results if result.day == name)
        days.append(f"- `{name}`: {trap}")
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    path.write_text(HEADER.format(
        when=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), seconds=seconds, machine=machine,
        load_start=load_start, load_end=load_end, days="\n".join(days), table=table(results),
        details=details(results)), encoding="utf-8")


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="evals.run", description=__doc__.split("\n")[0])
    parser.add_argument("--writer", choices=WRITERS, action="append", help="only this writer (repeatable)")
    parser.add_argument("--day", action="append",
                        help=f"only this day (repeatable): {', '.join(day_names())}")
    parser.add_argument("--write", action="store_true", help="rewrite EVALS.md with the measured table")
    parser.add_argument("--details", action="store_true", help="print endings, titles, fallbacks per run")
    args = parser.parse_args(argv)
    import logging

    logging.disable(logging.WARNING)  # the gate's warnings are in the table; keep the output readable
    load_start, started = _load(), time.perf_counter()
    print("LLM writer: the loopback fake LLM (tests/fakes/openai_server.py faithful_model); "
          "no real LLM is reachable here", file=sys.stderr)
    results = []
    for writer in args.writer or WRITERS:
        for name in args.day or day_names():
            print(f"{writer} · {name} …", file=sys.stderr, flush=True)
            results.append(run_day(name, writer))
    print(table(results))
    if args.details:
        print("\n" + details(results))
    if args.write:
        write_markdown(results, ROOT / "EVALS.md", time.perf_counter() - started, load_start, _load())
        print(f"wrote {ROOT / 'EVALS.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
