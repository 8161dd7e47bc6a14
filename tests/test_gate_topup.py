"""The gate tops a too-short script up with spares (flows/editing.py:gated_script), offline, no Prefect.

Short articles are the unseen day day-new-c's (300-450 characters each), read from its day file; a full
article is the sample day's vLLM story (tests/test_script.py).
"""

from __future__ import annotations

import datetime as dt
import tomllib
from typing import Any

import pytest

from evals.days import DAYS_DIR
from tasks.script import build_script
from tests.test_editorial import DirectRunner, _ranking
from tests.test_script import SHOW, candidate
from zundacast.editorial import Failure
from zundacast.errors import EditorialGateError
from zundacast.llm.offline import OfflineWriter
from zundacast.llm.prompts import episode_bounds
from zundacast.models import Candidate, Script, Summary

DAY = dt.date(2026, 12, 9)
SHORT = ("layoffs", "hospital-ransom", "ai-agent-survey", "outage-postmortem")  # Japanese, 300-450 chars


def short_article(slug: str) -> Candidate:
    """A day-new-c article as extraction leaves it: its paragraphs, headings and captions aside."""
    data = tomllib.loads((DAYS_DIR / "day-new-c.toml").read_text(encoding="utf-8"))
    article = next(a for a in data["articles"] if a["slug"] == slug)
    paragraphs = [" ".join(line.strip() for line in block.splitlines())
                  for block in article["body"].strip().split("\n\n")]
    text = "\n".join(p for p in paragraphs if p and not p.startswith(("## ", "写真", "（", "▼", "関連")))
    return Candidate(url=f"https://news.example.com/{slug}", title=article["title"], source=article["site"],
                     text=text)


def summaries_of(items: list[Candidate]) -> list[Summary]:
    writer = OfflineWriter()
    return [writer.summarize(item) for item in items]


def chars(script: Script) -> int:
    return sum(len(s.text) for section in script.sections for s in section.sentences)


@pytest.fixture
def artifacts(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    import flows.editing

    made: list[dict[str, Any]] = []
    monkeypatch.setattr(flows.editing, "create_markdown_artifact", lambda **kw: made.append(kw))
    return made


def test_a_short_script_gets_the_next_spare_as_one_more_segment(artifacts: list[dict[str, Any]]) -> None:
    from flows.editing import gated_script

    picks = [short_article(slug) for slug in SHORT[:3]]
    full = candidate("llm-inference")
    short_script = build_script(DAY, summaries_of(picks), SHOW.show, SHOW.pronunciation, OfflineWriter())
    assert chars(short_script) < episode_bounds(3)[0]  # the three alone are refused for length
    runner = DirectRunner()
    ranking, summaries, script = gated_script(runner, SHOW, DAY, _ranking(picks, [full]), summaries_of(picks),
                                              "offline", "offline")
    assert runner.calls == ["script", "summarize", "script"]  # refused short, the spare summarized, rewritten
    urls = [*(item.url for item in picks), full.url]
    assert [pick.candidate.url for pick in ranking.picks] == urls and ranking.spares == []
    assert [pick.rank for pick in ranking.picks] == [1, 2, 3, 4]
    assert [summary.url for summary in summaries] == urls
    assert [section.url for section in script.sections if section.kind == "article"] == urls
    low, high = episode_bounds(4)
    assert low <= chars(script) <= high
    added = [r for r in script.quality.rules_fired if r.action == "spare added"]
    assert [(r.rule, r.article) for r in added] == [("length", full.url)]
    assert f"{chars(short_script)} characters" in added[0].detail
    assert any("adding the spare" in line for line in runner.said)
    markdown = artifacts[-1]["markdown"]
    assert "spare added" in markdown and "**Validation:** passed" in markdown


def test_a_script_in_its_band_keeps_its_picks_and_spares(artifacts: list[dict[str, Any]]) -> None:
    from flows.editing import gated_script

    picks = [candidate(slug) for slug in ("llm-inference", "domestic-llm", "agent-ops")]
    spare = short_article("layoffs")
    runner = DirectRunner()
    ranking, _, script = gated_script(runner, SHOW, DAY, _ranking(picks, [spare]), summaries_of(picks),
                                      "offline", "offline")
    assert runner.calls == ["script"] and [p.candidate.url for p in ranking.spares] == [spare.url]
    assert len([s for s in script.sections if s.kind == "article"]) == 3  # the picks count is the target


def test_still_short_when_the_spares_run_out_is_refused_saying_why(artifacts: list[dict[str, Any]]) -> None:
    from flows.editing import gated_script

    picks = [short_article(slug) for slug in SHORT[:3]]
    spare = short_article(SHORT[3])
    runner = DirectRunner()
    with pytest.raises(EditorialGateError) as refused:
        gated_script(runner, SHOW, DAY, _ranking(picks, [spare]), summaries_of(picks), "offline", "offline")
    message = str(refused.value)
    low, high = episode_bounds(4)
    assert "too short: 4 articles make " in message
    assert f"below the {low}-{high} band for 4 articles" in message
    assert "no readable spare is left" in message and "nothing was published" in message
    assert "\n" not in message
    assert runner.calls == ["script", "summarize", "script"]  # the spare was tried before refusing
    assert "**Validation:** FAILED" in artifacts[-1]["markdown"]


def test_only_a_script_failing_on_length_alone_and_short_is_topped_up() -> None:
    from flows.editing import Shortfall, nearer, too_short

    script = build_script(DAY, summaries_of([short_article(slug) for slug in SHORT[:3]]), SHOW.show,
                          SHOW.pronunciation, OfflineWriter())
    length = Failure("length", "script", "length … is outside …")
    low, high = episode_bounds(3)
    assert too_short(script, [length], 3) == Shortfall(3, chars(script), low, high)
    assert too_short(script, [length, Failure("script.date", "weekday", "…")], 3) is None
    assert too_short(script, [Failure("length", "segment", "…")], 3) is None
    assert too_short(script, [], 3) is None
    assert too_short(script, [length], 1) is None  # over the one-article band: too long is not topped up
    # the gate stops adding once one more article leaves the script further from its (higher) band
    assert nearer(Shortfall(4, 2900, 3060, 5060), Shortfall(3, 2400, 3060, 5060))
    assert not nearer(Shortfall(5, 3400, 3825, 6325), Shortfall(4, 2900, 3060, 5060))
