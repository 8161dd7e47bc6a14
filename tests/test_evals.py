"""The evals' news days are test inputs: the offline writer's episode of every day keeps issue 10's promises.

Each day (evals/days/*.toml and the bundled sample day) goes the flow's way: served over loopback HTTP,
collected, ranked, summarized offline and scripted through the editorial gate (`evals.run.run_day`).
Every day's episode must be published (a refusal fails the test, unless the day file's `refused` names
the refusal it expects), and its script is checked: no sentence said twice, the host's endings, no byline,
dateline or injected text, and the length target when three readable articles hold enough text. The ranker
does not pick every trap (the brief, the English articles), so a second episode per day tells all of the
day's readable articles in one go, through the same script stage.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections import Counter

import pytest

from evals.days import DAYS_DIR, load_day
from evals.run import SAMPLE, Result, day_names, run_day
from tasks.script import build_script
from tasks.summarize import summarize_article
from zundacast.editorial import sentence_form
from zundacast.llm.offline import OfflineWriter
from zundacast.llm.prompts import episode_chars
from zundacast.models import Script, Summary
from zundacast.show import load_show
from zundacast.speech import persona_ratio

pytestmark = pytest.mark.slow  # about 40 s: four days collected over HTTP and written, twice
SHOW = load_show("zundamon-ai")
ENOUGH_TEXT = 1000  # characters of article text for a full segment (the sample day's hold 1,230+)
ENDING = re.compile(r"(なのだ|のだ)(よね|よ|ね)?ー*([。！？!?…]*)$")


def endings(sentences: list[str]) -> Counter[str]:
    found: Counter[str] = Counter()
    for sentence in sentences:
        match = ENDING.search(sentence.strip().rstrip("」』）)"))
        if match:
            found[match.group(1) + (match.group(2) or "") + (match.group(3)[:1] or "。")] += 1
    return found


def texts(script: Script) -> list[str]:
    return [s.text for section in script.sections for s in section.sentences]


@pytest.fixture(scope="module", params=day_names())
def day(request: pytest.FixtureRequest) -> Result:
    return run_day(request.param, "offline")


def _every_readable_article(result: Result) -> tuple[Script, list[Summary]]:
    """One episode telling every readable candidate of the day (picks and spares), written offline."""
    writer = OfflineWriter(seed="all")
    summaries = [summarize_article(candidate, writer) for candidate in result.candidates]
    date = result.script.date if result.script else dt.date(2026, 11, 20)
    return build_script(date, summaries, SHOW.show, SHOW.pronunciation, writer), summaries


def _assert_promises(script: Script, forbidden: list[str], what: str) -> None:
    sentences = texts(script)
    repeated = [text for text, count in Counter(map(sentence_form, sentences)).items() if count > 1]
    assert repeated == [], f"{what}: repeated sentences {repeated}"
    assert persona_ratio(sentences) >= 0.9, what
    if len(sentences) >= 40:
        assert len(endings(sentences)) >= 4, f"{what}: endings {endings(sentences)}"
    transcript = "\n".join(sentences)
    leaked = [text for text in forbidden if text.lower() in transcript.lower()]
    assert leaked == [], f"{what}: byline/dateline/injected text reached the transcript: {leaked}"
    # no dateline of the 「2026年11月24日 経済部」 or 「2026/11/24 08:30」 kind, whatever the desk
    dateline = re.compile(r"\d{4}年\d{1,2}月\d{1,2}日\s*\S{0,6}部|\d{4}/\d{2}/\d{2} \d{2}:\d{2}")
    assert not dateline.search(transcript), what


def test_the_days_episode_keeps_the_promises(day: Result) -> None:
    assert day.script is not None, day.error  # a script was written (the gate may still refuse it)
    forbidden = day.forbidden + _injected(day)
    _assert_promises(day.script, forbidden, f"{day.day} episode")
    articles = [section for section in day.script.sections if section.kind == "article"]
    by_url = {candidate.url: candidate for candidate in day.candidates}
    told = [by_url.get(section.url) for section in articles]
    enough = len(told) == 3 and all(c is not None and c.language.startswith("ja") and
                                    len(c.text) >= ENOUGH_TEXT for c in told)
    chars = sum(map(len, texts(day.script)))
    expected = _expected_refusal(day)
    if expected:
        assert expected in day.error, f"{day.day}: expected a refusal saying {expected!r}, got {day.error!r}"
    else:  # a day of readable news is published: more, shorter articles if need be, never nothing
        assert day.error == "", f"{day.day} was refused: {day.error}"
    if enough:
        assert 3400 <= chars <= 4600, f"{day.day}: {chars} characters from three full articles"
    else:  # thinner articles: never padded past the target for as many articles as are told
        assert chars <= episode_chars(len(articles))[1], f"{day.day}: {chars} chars, {len(articles)} articles"
    for candidate_group in _duplicates(day):
        assert sum(url in candidate_group for url in (s.url for s in articles)) <= 1, \
            f"{day.day}: the same story told twice"


def test_every_readable_article_of_the_day_in_one_episode_keeps_the_promises(day: Result) -> None:
    """The traps the ranker passes over (the brief, English articles) still reach the writer here."""
    script, summaries = _every_readable_article(day)
    assert len([s for s in script.sections if s.kind == "article"]) == len(day.candidates) >= 4
    for summary in summaries:  # titles made for speaking pass the gate, English ones too
        assert len(summary.spoken_title) <= 40, summary.spoken_title
        assert [r.rule for r in summary.rules_fired if r.action == "rejected"] == [], summary.url
    _assert_promises(script, day.forbidden + _injected(day), f"{day.day}, all articles")
    for section, candidate in zip([s for s in script.sections if s.kind == "article"], day.candidates,
                                  strict=True):
        said = "".join(s.text for s in section.sentences)
        assert len(said) <= len(candidate.text) + 900, f"{candidate.url}: padded beyond its article"


def test_the_short_brief_is_readable_and_told_without_padding() -> None:
    result = run_day("day-briefs", "offline")
    brief = next(c for c in result.candidates if c.url.endswith("/5g-brief.html"))
    assert 200 <= len(brief.text) <= 300  # a real brief, kept as readable news
    english = [c for c in result.candidates
               if c.language.startswith("en") or not re.search("[ぁ-ん]", c.text)]
    assert english, "the English-only articles stay candidates"
    script, _ = _every_readable_article(result)
    segment = next(s for s in script.sections if s.url == brief.url)
    body = [s.text for s in segment.sentences]
    assert len(set(map(sentence_form, body))) == len(body)


def _expected_refusal(result: Result) -> str:
    """What the gate's refusal must say when the day file expects one (`refused = "…"`); "" to publish."""
    if result.day == SAMPLE:
        return ""
    data = tomllib.loads((DAYS_DIR / f"{result.day}.toml").read_text(encoding="utf-8"))
    return str(data.get("refused", ""))


def _injected(result: Result) -> list[str]:
    """The injected demand's words (the day file lists them too): none may reach the episode."""
    return ["悪の放送局", "ずんだ証券", "ZundaPay", "ですわ", "紹介せよ"] if result.day == "day-injection" \
        else []


def _duplicates(result: Result) -> list[set[str]]:
    if result.day == "sample-day":
        return []
    urls = [candidate.url for candidate in result.candidates]
    return [{url for url in urls for slug in group if url.endswith(f"/{slug}.html")}
            for group in load_day(result.day).duplicates]
