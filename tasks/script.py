"""Stage 5: the summaries become Zundamon's script, validated before synthesis.

The frame (greeting, show name, date and weekday, article count, separators, recap, sign-off) is
computed from facts, never generated; the writer writes one segment per article. A segment that
fails validation goes back to the writer with the failures as feedback, up to `max_attempts`, then
the offline writer takes it over (recorded in `Script.fallbacks`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import random
import re

from prefect import task

from zundacast.dates import date_ja, weekday_ja
from zundacast.llm import LLMError, Writer, writer_for
from zundacast.llm.offline import OfflineWriter
from zundacast.llm.prompts import PERSONA_MIN_RATIO, episode_bounds, segment_bounds
from zundacast.models import Script, Section, Sentence, Summary, Usage
from zundacast.show import Environment, LLMConfig, ShowInfo
from zundacast.speech import ascii_letters, persona_ratio, split_sentences, to_speech
from zundacast.stage import stage_options

log = logging.getLogger(__name__)

COUNTS_JA = ("一つ", "二つ", "三つ", "四つ", "五つ", "六つ", "七つ", "八つ", "九つ", "十")
WEEKDAY_NAMES = ("月曜日", "火曜日", "水曜日", "木曜日", "金曜日", "土曜日", "日曜日")
MIN_SEGMENT_SENTENCES = 5
MAX_SEGMENT_SENTENCES = 40
MAX_SENTENCE_CHARS = 120

_URL = re.compile(r"https?://|www\.|[A-Za-z0-9-]+\.(?:com|jp|dev|io|org|net)\b/?")
_MARKDOWN = re.compile(r"\*\*|__|`|^#{1,6}\s|^\s*[-*+]\s|\[[^\]]*\]\([^)]*\)|^>|^-{3,}$|\|")
_EMOJI = re.compile(
    "[\U0001f000-\U0001faff\U0001fc00-\U0001ffff\u2600-\u27bf\u2300-\u23ff\u2b00-\u2bff\ufe0f\u200d]"
)


def count_ja(number: int) -> str:
    return COUNTS_JA[number - 1] if 1 <= number <= len(COUNTS_JA) else f"{number}つ"


def ordinal_ja(index: int) -> str:
    """0 → 一つ目."""
    return f"{count_ja(index + 1)}目"


def _rng(*parts: str) -> random.Random:
    return random.Random(int(hashlib.sha256("|".join(parts).encode()).hexdigest()[:16], 16))


# --- the frame (facts only) -----------------------------------------------------------------------------


def opening_lines(day: dt.date, show: ShowInfo, articles: int) -> list[str]:
    rng = _rng(show.id, day.isoformat(), "opening")
    host = show.host
    greeting = rng.choice((
        [f"おーっす、みんな！ぼく、{host}なのだ！", f"「{show.title}」、今日も元気に始めるのだ！"],
        [f"やっほー、みんな元気なのだ？ぼくは{host}なのだ。", f"「{show.title}」にようこそなのだ！"],
        [f"みんな、おはようなのだ！{host}なのだ。", f"「{show.title}」の時間なのだ！"],
    ))
    count = count_ja(articles)
    return [
        *greeting,
        f"今日は{date_ja(day)}、{weekday_ja(day)}なのだ！",
        rng.choice((
            "ぼくは今、技術室から、みんなに今日のホットなテックニュースをお届けするのだ。",
            "今日も、新人エンジニアのみんなと一緒に、最新のテックニュースを見ていくのだ。",
            "今日も一日、がんばるみんなのために、気になるニュースを集めてきたのだ。",
        )),
        rng.choice((
            f"今日は、みんなに{count}の記事を紹介するのだ。",
            f"さて、今日紹介する記事は{count}なのだ。",
            f"今日のトレンド記事から、{count}の記事を選んできたのだ。",
        )),
        rng.choice((
            "どれも新人エンジニアのみんなに役立つお話だから、最後まで聞いてほしいのだ！",
            "とっておきの情報ばかりだから、楽しみにしててほしいのだ！",
            "それじゃあ、さっそく始めるのだ！",
        )),
    ]


def segment_header(summary: Summary, index: int, total: int, day: dt.date) -> list[str]:
    rng = _rng(summary.url, day.isoformat(), "header")
    ordinal = ordinal_ja(index)
    if index == 0:
        lead = rng.choice((f"じゃあ、さっそく{ordinal}の記事なのだ。", f"まずは{ordinal}の記事なのだ。"))
    elif index == total - 1:
        lead = rng.choice(("さあ、いよいよ最後の記事なのだ。", f"最後は{ordinal}の記事なのだ。"))
    else:
        lead = rng.choice((f"続いて{ordinal}の記事なのだ。", f"次の記事に行くのだ！{ordinal}の記事なのだ。"))
    return [lead, f"タイトルは「{summary.spoken_title}」なのだ。"]


def closing_lines(day: dt.date, show: ShowInfo, summaries: list[Summary]) -> list[str]:
    rng = _rng(show.id, day.isoformat(), "closing")
    lines = [f"さて、今日は{count_ja(len(summaries))}の記事を紹介したのだ。"]
    for index, summary in enumerate(summaries):
        lines.append(f"{ordinal_ja(index)}は、「{summary.spoken_title}」のお話だったのだ。")
    lines += [
        rng.choice(("どれも興味深い内容だったのだ！", "どれもワクワクするお話だったのだ！")),
        rng.choice((
            "番組の感想や、取り上げてほしい記事があったら、ぜひ送ってほしいのだ！",
            "みんなの感想も楽しみに待ってるのだ！感想や取り上げてほしい記事を、ぜひ送ってほしいのだ！",
        )),
        "それじゃあ、今日はここまでなのだ。また会えるのを楽しみにしているのだ！",
        "バイバイなのだ！",
    ]
    return lines


# --- validation -------------------------------------------------------------------------------------------


def spoken_text_problems(text: str) -> list[str]:
    problems = []
    if _URL.search(text):
        problems.append("URL")
    if _MARKDOWN.search(text):
        problems.append("markdown")
    if _EMOJI.search(text):
        problems.append("emoji")
    return problems


def validate_segment(lines: list[str], summary: Summary, total: int) -> list[str]:
    """What is wrong with one segment's body (the header is the script's): feedback for the writer."""
    failures: list[str] = []
    if not MIN_SEGMENT_SENTENCES <= len(lines) <= MAX_SEGMENT_SENTENCES:
        failures.append(f"文の数が{len(lines)}文です（{MIN_SEGMENT_SENTENCES}〜{MAX_SEGMENT_SENTENCES}文にすること）")
    ratio = persona_ratio(lines)
    if ratio < PERSONA_MIN_RATIO:
        failures.append(f"「のだ」「なのだ」で終わる文が{ratio:.0%}しかありません（すべての文を「のだ」で終えること）")
    low, high = segment_bounds(total)
    chars = sum(len(line) for line in lines) + 20 + len(summary.spoken_title)
    if not low <= chars <= high:
        failures.append(f"長さが{chars}文字です（{low}〜{high}文字にすること）")
    for line in lines:
        problems = spoken_text_problems(line)
        if problems:
            failures.append(f"「{line[:40]}」に{'・'.join(problems)}が含まれています（使わないこと）")
        if "----" in line or "バイバイ" in line:
            failures.append(f"「{line[:40]}」は番組の区切りや締めの言葉です（書かないこと）")
    unique = list(dict.fromkeys(failures))
    return unique[:6] + ([f"ほかに{len(unique) - 6}件の問題があります"] if len(unique) > 6 else [])


def validate_script(script: Script, expected_titles: list[str],
                    spoken_titles: list[str] | None = None) -> list[str]:
    """Every rule the script must meet before synthesis; [] when it passes."""
    failures: list[str] = []
    weekday = weekday_ja(script.date)
    if script.weekday != weekday:
        failures.append(f"weekday is {script.weekday}, but {script.date} is a {weekday}")
    sections = script.sections
    if not sections or sections[0].kind != "opening":
        failures.append("the script does not start with the opening")
    else:
        opening = "".join(s.text for s in sections[0].sentences)
        if date_ja(script.date) not in opening:
            failures.append(f"the opening does not say the date {date_ja(script.date)}")
        wrong = [name for name in WEEKDAY_NAMES if name in opening and name != weekday]
        if weekday not in opening or wrong:
            failures.append(f"the opening says {wrong or 'no weekday'}, expected {weekday}")
    if not sections or sections[-1].kind != "closing":
        failures.append("the script does not end with the closing")
    elif "バイバイ" not in "".join(s.text for s in sections[-1].sentences):
        failures.append("the closing does not sign off (バイバイなのだ)")
    articles = [section for section in sections if section.kind == "article"]
    if [section.title for section in articles] != list(expected_titles):
        failures.append(f"segments {[s.title for s in articles]} do not match the picks "
                        f"{list(expected_titles)} (one segment per pick, in order)")
    for index, section in enumerate(articles):
        names = {expected_titles[index]} if index < len(expected_titles) else {section.title}
        if spoken_titles and index < len(spoken_titles):
            names.add(spoken_titles[index])
        head = "".join(s.text for s in section.sentences[:3])
        if not any(f"「{name}」" in head for name in names):
            failures.append(f"segment {index + 1} does not name its title 「{section.title}」")
    all_text = [s.text for section in sections for s in section.sentences]
    ratio = persona_ratio(all_text)
    if ratio < PERSONA_MIN_RATIO:
        failures.append(f"persona ratio {ratio:.2f} < {PERSONA_MIN_RATIO} (sentences ending in のだ/なのだ)")
    chars = sum(len(text) for text in all_text)
    low, high = episode_bounds(len(expected_titles))
    if not low <= chars <= high:
        failures.append(f"length {chars} characters is outside {low}-{high} "
                        f"for {len(expected_titles)} articles")
    for section in sections:
        for sentence in section.sentences:
            problems = spoken_text_problems(sentence.text) + spoken_text_problems(sentence.speech)
            if problems:
                failures.append(f"{'/'.join(sorted(set(problems)))} in spoken text: {sentence.text[:60]!r}")
            letters = ascii_letters(sentence.speech)
            if letters:
                failures.append(f"ASCII letters {letters[:3]} left in speech: {sentence.speech[:60]!r}")
    return failures


# --- building ---------------------------------------------------------------------------------------------


def _sentences(lines: list[str], pronunciation: dict[str, str]) -> list[Sentence]:
    out = []
    for line in lines:
        for piece in split_sentences(line, max_chars=MAX_SENTENCE_CHARS):
            out.append(Sentence(text=piece, speech=to_speech(piece, pronunciation)))
    return out


def _clean_lines(lines: list[str]) -> list[str]:
    """One sentence per item, as the validator counts them (a model sometimes packs several in one)."""
    out = []
    for line in lines:
        out.extend(piece for piece in split_sentences(line.strip(), max_chars=400) if piece.strip())
    return out


def write_segment_checked(writer: Writer, summary: Summary, index: int, total: int, show: ShowInfo,
                          max_attempts: int, fallback: Writer | None = None) -> tuple[list[str], Usage, str]:
    """The writer's segment once it validates; else the offline writer's.

    Returns (lines, usage, why the offline writer took over or ""). A segment failing validation is
    asked again with the failures as feedback; a writer error (after the writer's own retries) or the
    last failed attempt hands the segment to the offline writer.
    """
    usage = Usage()
    feedback: list[str] = []
    attempts = 1 if writer.name == OfflineWriter.name else max(1, max_attempts)
    for attempt in range(1, attempts + 1):
        try:
            lines, used = writer.write_segment(summary, index, total, show, feedback)
        except LLMError:
            raise  # a bad key or model: the user must fix it, a fallback would hide it
        except Exception as exc:  # the writer already retried (HTTP and unparsable answers): fall back now
            log.warning("segment %d attempt %d: %s", index + 1, attempt, exc)
            feedback = [f"{type(exc).__name__}: {exc}"]
            break
        usage = usage + used
        lines = _clean_lines(lines)
        failures = validate_segment(lines, summary, total)
        if not failures or writer.name == OfflineWriter.name:
            return lines, usage, ""
        log.warning("segment %d attempt %d failed validation: %s", index + 1, attempt, "; ".join(failures))
        feedback = failures
    reason = "; ".join(feedback) or "no usable answer"
    lines, _ = (fallback or OfflineWriter()).write_segment(summary, index, total, show, [])
    return _clean_lines(lines), usage, reason


def build_script(day: dt.date, summaries: list[Summary], show: ShowInfo, pronunciation: dict[str, str],
                 writer: Writer, max_attempts: int = 3) -> Script:
    """The episode's script: computed frame + one validated segment per summary, in order."""
    if not summaries:
        raise ValueError("build_script needs at least one summary")
    total = len(summaries)
    usage = Usage()
    fallbacks: list[str] = []
    sections = [Section(kind="opening", title="オープニング",
                        sentences=_sentences(opening_lines(day, show, total), pronunciation))]
    for index, summary in enumerate(summaries):
        lines, used, reason = write_segment_checked(writer, summary, index, total, show, max_attempts)
        usage = usage + used
        if reason:
            fallbacks.append(f"{index + 1}: {summary.title} ({reason})")
        header = segment_header(summary, index, total, day)
        sections.append(Section(kind="article", title=summary.title, url=summary.url,
                                sentences=_sentences(header + lines, pronunciation)))
    sections.append(Section(kind="closing", title="エンディング",
                            sentences=_sentences(closing_lines(day, show, summaries), pronunciation)))
    return Script(date=day, weekday=weekday_ja(day), show_title=show.title, sections=sections,
                  writer=writer.name, usage=usage, fallbacks=fallbacks)


def script_markdown(script: Script, failures: list[str], summaries: list[Summary]) -> str:
    """The artifact: usage and estimated cost, fallbacks, validation, then the script itself."""
    summarized = Usage()
    for summary in summaries:
        summarized = summarized + summary.usage
    total_usage = summarized + script.usage

    def row(stage: str, usage: Usage) -> str:
        return (f"| {stage} | {usage.requests} | {usage.prompt_tokens} | {usage.completion_tokens} | "
                f"{usage.cost_usd:.4f} |")

    text_chars = sum(len(s.text) for section in script.sections for s in section.sentences)
    ratio = persona_ratio([s.text for section in script.sections for s in section.sentences])
    lines = [
        f"# {script.show_title} {date_ja(script.date)}（{script.weekday}）",
        "",
        f"writer: `{script.writer}` · {text_chars} characters · persona ratio {ratio:.2f}",
        "",
        "| stage | requests | prompt tokens | completion tokens | estimated cost (USD) |",
        "|---|---:|---:|---:|---:|",
        row("summarize", summarized),
        row("script", script.usage),
        row("total", total_usage),
        "",
    ]
    if script.fallbacks:
        lines += ["**Offline fallbacks:**", *[f"- {item}" for item in script.fallbacks], ""]
    verdict = "**Validation:** " + ("passed" if not failures else "")
    lines += [verdict, *[f"- {item}" for item in failures], ""]
    for section in script.sections:
        lines += [f"## {section.title}", "", "".join(s.text for s in section.sentences), ""]
    return "\n".join(lines)


@task(name="script", **stage_options(retries=1))
def write_script(day: dt.date, summaries: list[Summary], show: ShowInfo, pronunciation: dict[str, str],
                 llm: LLMConfig, writer_key: str) -> Script:
    """Prefect task: build, validate, publish the script as a markdown artifact."""
    from prefect.artifacts import create_markdown_artifact

    writer = writer_for(llm, Environment(), stage="script")
    if writer.cache_key != writer_key:
        log.warning("script writer is %s but the flow asked for %s", writer.cache_key, writer_key)
    script = build_script(day, summaries, show, pronunciation, writer, llm.max_attempts)
    failures = validate_script(script, [s.title for s in summaries], [s.spoken_title for s in summaries])
    for failure in failures:
        log.warning("script validation: %s", failure)
    create_markdown_artifact(
        key=f"script-{show.id}-{day.isoformat()}".lower(),
        markdown=script_markdown(script, failures, summaries),
        description=f"{show.title} {day.isoformat()}: script, token usage and estimated cost",
    )
    return script
