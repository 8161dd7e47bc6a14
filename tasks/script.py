"""Stage 5: the summaries become Zundamon's script, each segment through the editorial gate.

The frame (greeting, show name, date and weekday, article count, separators, recap, sign-off) is
computed from facts, never generated; the writer writes one segment per article. A segment that
fails the gate (zundacast.editorial) goes back to the writer with the failures as feedback, up to
`max_attempts`, then the offline writer takes it over (recorded in `Script.fallbacks`); an offline
segment that still breaks a rule marks its article `rejected` for the flow to replace. The whole
script is checked, and its artifact made, by the flow (flows/daily_episode.py: gated_script).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import random
import re
from collections.abc import Iterator

from prefect import task

from zundacast.dates import date_ja, weekday_ja
from zundacast.editorial import (
    Failure,
    Source,
    check_script,
    check_segment,
    duplicate_titles,
    feedback_of,
    measure,
    script_markdown,
    sentence_form,
    source_of_summary,
)
from zundacast.llm import LLMError, Writer, writer_for
from zundacast.llm.offline import OfflineWriter, is_bad_news, outside_brackets, story_key
from zundacast.models import RuleFired, Script, Section, Sentence, Summary, Usage
from zundacast.show import Environment, LLMConfig, ShowInfo
from zundacast.speech import split_sentences, to_speech
from zundacast.stage import stage_options

log = logging.getLogger(__name__)

COUNTS_JA = ("一つ", "二つ", "三つ", "四つ", "五つ", "六つ", "七つ", "八つ", "九つ", "十")
MAX_SENTENCE_CHARS = 120
__all__ = ["build_script", "script_markdown", "validate_script", "write_said_checked", "write_script",
           "write_segment_checked"]


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
        [f"おーっす、みんな元気なのだ？ぼく、{host}なのだ！", f"「{show.title}」、今日も元気に始めるのだ！"],
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


# Header leads, one list read by segment index (rotated per date), so no lead is said twice in an episode
# of up to len(HEADER_LEADS) + 2 articles; the first and the last segment have their own.
FIRST_LEADS = ("じゃあ、さっそく{ordinal}の記事なのだ。", "まずは{ordinal}の記事なのだ。")
HEADER_LEADS = ("続いて{ordinal}の記事なのだ。", "次の記事に行くのだ！{ordinal}の記事なのだ。",
                "お次は{ordinal}の記事なのだ。", "どんどんいくのだ！{ordinal}の記事なのだ。",
                "ここからは{ordinal}の記事なのだ。", "さてさて、{ordinal}の記事を紹介するのだ。")
LAST_LEADS = ("さあ、いよいよ最後の記事なのだ。", "最後は{ordinal}の記事なのだ。")
# Recap lines, read by index like the leads: they name the story (recap_name) in other words than the
# header's 「タイトルは「…」なのだ。」, so the closing does not sound like the segments again.
RECAP_LINES = ("{ordinal}は、{name}の話だったのだ。", "{ordinal}の記事では、{name}を見てきたのだ。",
               "{ordinal}は、{name}について紹介したのだ。", "それから{ordinal}は、{name}のお話をしたのだ。",
               "{ordinal}で取り上げたのは、{name}だったのだ。", "{ordinal}は、{name}がテーマだったのだ。")
SOBER_SUMMINGS = ("気をつけたいニュースもあったけれど、どれも知っておきたいお話だったのだ。",
                  "心配なニュースもあったけれど、どれも大事なお話だったのだ。")
RECAP_QUOTE_CHARS = 22  # a title up to this is said whole in the recap


def _rotated(pool: tuple[str, ...], index: int, rng: random.Random) -> str:
    return pool[(rng.randrange(len(pool)) + index) % len(pool)]


def segment_header(summary: Summary, index: int, total: int, day: dt.date) -> list[str]:
    rng = _rng(day.isoformat(), "header")  # per episode: the rotation, read at the segment's index
    ordinal = ordinal_ja(index)
    if index == 0:
        lead = rng.choice(FIRST_LEADS)
    elif index == total - 1:
        lead = _rng(story_key(summary.url), day.isoformat(), "last").choice(LAST_LEADS)
    else:
        lead = _rotated(HEADER_LEADS, index - 1, rng)
    return [lead.format(ordinal=ordinal), f"タイトルは「{summary.spoken_title}」なのだ。"]


_BRACKETS = ("「『（(【[", "」』）)】]")  # a title's quotes and its 【tags】
_NOUN_END = re.compile(r"[一-龥々ァ-ヺーA-Za-z0-9）)」』%]")


def _outside_brackets(text: str) -> Iterator[tuple[int, str]]:
    return outside_brackets(text, *_BRACKETS)


def _opening_noun_phrase(text: str) -> str:
    """What a headline's first を, が or は (after a noun, outside quotes) follows: its object or subject."""
    for position, char in _outside_brackets(text):
        if char in "をがは" and position and _NOUN_END.match(text[position - 1]):
            topic = text[:position]
            commas = [at for at, inside in _outside_brackets(topic) if inside == "、"]
            if len(commas) == 1 and char == "を":  # 「銀行、基幹系を移行」: the actor's object
                topic, commas = topic[:commas[0]] + "の" + topic[commas[0] + 1:], []
            return topic if len(topic) >= 6 and not commas else ""
    return ""


def recap_name(spoken_title: str) -> str:
    """How the closing names a story: a short title (or its part before the first 、 outside quotes)
    whole, in 「」; a longer one by the noun phrase it opens with, unquoted (a quote cut mid-phrase would
    misquote it, and the whole title again would echo the segment's header)."""
    head = next((spoken_title[:at] for at, char in _outside_brackets(spoken_title) if char == "、"),
                spoken_title)
    if len(head) < 8 or not re.search(r"[ぁ-ゖ]", head):  # the actor alone (「決済大手ミドリペイ」)
        head = spoken_title
    if len(head) <= RECAP_QUOTE_CHARS:
        return f"「{head}」"
    return _opening_noun_phrase(head) or f"「{head}」"


def closing_lines(day: dt.date, show: ShowInfo, summaries: list[Summary]) -> list[str]:
    rng = _rng(show.id, day.isoformat(), "closing")
    lines = [f"さて、今日は{count_ja(len(summaries))}の記事を紹介したのだ。"]
    recap = _rng(show.id, day.isoformat(), "recap")
    for index, summary in enumerate(summaries):
        line = _rotated(RECAP_LINES, index, recap)
        lines.append(line.format(ordinal=ordinal_ja(index), name=recap_name(summary.spoken_title)))
    lines += [
        # no cheer over a breach, an outage or layoffs told a minute ago
        rng.choice(SOBER_SUMMINGS if any(is_bad_news(s.title, s.summary) for s in summaries)
                   else ("どれも興味深い内容だったのだ！", "どれもワクワクするお話だったのだ！")),
        rng.choice((
            "番組の感想や、取り上げてほしい記事があったら、ぜひ送ってほしいのだ！",
            "みんなの感想も楽しみに待ってるのだ！感想や取り上げてほしい記事を、ぜひ送ってほしいのだ！",
        )),
        "それじゃあ、今日はここまでなのだ。また会えるのを楽しみにしているのだ！",
        "バイバイなのだ！",
    ]
    return lines


# --- validation: the rules live in zundacast.editorial ---------------------------------------------


def validate_script(script: Script, expected_titles: list[str], spoken_titles: list[str] | None = None,
                    show: ShowInfo | None = None) -> list[str]:
    """Every rule the script must meet before synthesis, as lines; [] when it passes."""
    cohost, host = (show.cohost, show.host) if show else (None, "ずんだもん")
    return [str(failure) for failure in check_script(script, expected_titles, spoken_titles, cohost, host)]


# --- a second host ([show.cohost]): her part of the frame ------------------------------------------------

Said = tuple[str, str]  # (speaker's name, sentence)


def cohost_opening(show: ShowInfo) -> list[Said]:
    """After the host's greeting: he introduces her, she greets the listeners in her persona."""
    assert show.cohost is not None
    name = show.cohost.name
    return [(show.host, f"今日は{name}も一緒なのだ！"),
            (name, f"ごきげんよう、わたくし、{name}ですわ。今日もよろしくお願いしますわ。")]


def cohost_closing(show: ShowInfo) -> list[Said]:
    """Before the host's sign-off: she says goodbye in her persona."""
    assert show.cohost is not None
    return [(show.cohost.name, "みなさん、また次回お会いできるのを楽しみにしていますわ。")]


# --- building ---------------------------------------------------------------------------------------------


def _sentences(lines: list[str] | list[Said], pronunciation: dict[str, str]) -> list[Sentence]:
    """Sentences to speak; a (speaker, line) pair gives each of its sentences that speaker."""
    out = []
    for line in lines:
        speaker, text = line if isinstance(line, tuple) else ("", line)
        for piece in split_sentences(text, max_chars=MAX_SENTENCE_CHARS):
            out.append(Sentence(text=piece, speech=to_speech(piece, pronunciation), speaker=speaker))
    return out


def _clean_lines(lines: list[str]) -> list[str]:
    """One sentence per item, as the validator counts them (a model sometimes packs several in one)."""
    out = []
    for line in lines:
        out.extend(piece for piece in split_sentences(line.strip(), max_chars=400) if piece.strip())
    return out


def _clean_said(said: list[Said]) -> list[Said]:
    """`_clean_lines` for a dialogue: each sentence keeps the speaker of the line it came from."""
    return [(speaker, piece) for speaker, line in said for piece in _clean_lines([line])]


def _written(writer: Writer, summary: Summary, index: int, total: int, show: ShowInfo,
             feedback: list[str]) -> tuple[list[Said], Usage]:
    """The writer's segment as (speaker, sentence) pairs: a dialogue when the show has a cohost, else the
    host's lines (speaker "" : the host, as single-host scripts always were)."""
    if getattr(show, "cohost", None) is not None:
        said, used = writer.write_dialogue(summary, index, total, show, feedback)
        return _clean_said(said), used
    lines, used = writer.write_segment(summary, index, total, show, feedback)
    return [("", line) for line in _clean_lines(lines)], used


def _checked(said: list[Said], summary: Summary, total: int, source: Source,
             show: ShowInfo) -> tuple[list[Failure], int, int]:
    lines = [line for _, line in said]
    if getattr(show, "cohost", None) is None:
        return check_segment(lines, summary, total, source)
    return check_segment(lines, summary, total, source, speakers=[speaker for speaker, _ in said],
                         cohost=show.cohost, host=show.host)


SegmentResult = tuple[list[Said], Usage, str, list[RuleFired], int, int]
# Rules about size alone: a segment breaking only these is kept (the offline writer, working from the
# same summary, would not say more), and the whole episode's length decides.
_KEPT_OFFLINE = {"length", "segment.sentences"}


def write_segment_checked(writer: Writer, summary: Summary, index: int, total: int, show: ShowInfo,
                          max_attempts: int, fallback: Writer | None = None
                          ) -> tuple[list[str], Usage, str, list[RuleFired], int, int]:
    """`write_said_checked` with the sentences alone (who says each is left out)."""
    said, *rest = write_said_checked(writer, summary, index, total, show, max_attempts, fallback)
    return ([line for _, line in said], *rest)  # type: ignore[return-value]


def write_said_checked(writer: Writer, summary: Summary, index: int, total: int, show: ShowInfo,
                       max_attempts: int, fallback: Writer | None = None) -> SegmentResult:
    """The writer's segment once it passes the editorial gate; else the offline writer's.

    Returns ((speaker, sentence) pairs, usage, why the offline writer took over or "", rules fired,
    claims, grounded claims); the speaker is "" (the host) unless the show has a cohost. A segment failing
    the gate is asked again with the failures as feedback; a writer error (after the writer's own
    retries) or the last failed attempt hands the segment to the offline writer.
    An offline segment that still breaks a rule is marked `rejected`: the flow replaces the article.
    """
    usage = Usage()
    feedback: list[str] = []
    fired: list[RuleFired] = []
    reason = "no usable answer"
    source = source_of_summary(summary)
    attempts = 1 if writer.is_offline else max(1, max_attempts)
    for attempt in range(1, attempts + 1):
        if writer.is_offline:
            break
        try:
            lines, used = _written(writer, summary, index, total, show, feedback)
        except LLMError:
            raise  # a bad key or model: the user must fix it, a fallback would hide it
        except Exception as exc:  # the writer already retried (HTTP and unparsable answers): fall back now
            log.warning("segment %d attempt %d: %s", index + 1, attempt, exc)
            # the reason is published (episode.json): never the model's answer, which may be the attack
            reason = f"{type(exc).__name__}: {str(exc).split(' (')[0]}"
            break
        usage = usage + used
        failures, claims, grounded = _checked(lines, summary, total, source, show)
        if not failures:
            return lines, usage, "", fired, claims, grounded
        if attempt == attempts and all(failure.rule in _KEPT_OFFLINE for failure in failures):
            # grounded, clean and in the host's voice, only short or long: better than an extract
            fired += [failure.fired(summary.url, "kept") for failure in failures]
            return lines, usage, "", fired, claims, grounded
        action = "rewritten" if attempt < attempts else "offline"
        fired += [failure.fired(summary.url, action) for failure in failures]
        log.warning("segment %d attempt %d failed the editorial gate: %s", index + 1, attempt,
                    "; ".join(feedback_of(failures)))
        feedback = feedback_of(failures)
        reason = "failed the editorial gate: " + ", ".join(dict.fromkeys(f.rule for f in failures))
    if writer.is_offline:
        reason = ""
    offline = writer if writer.is_offline else (fallback or OfflineWriter())
    lines, _ = _written(offline, summary, index, total, show, [])
    failures, claims, grounded = _checked(lines, summary, total, source, show)
    for failure in failures:
        fired.append(failure.fired(summary.url, "kept" if failure.rule in _KEPT_OFFLINE else "rejected"))
    return lines, usage, reason, fired, claims, grounded


def build_script(day: dt.date, summaries: list[Summary], show: ShowInfo, pronunciation: dict[str, str],
                 writer: Writer, max_attempts: int = 3) -> Script:
    """The episode's script: computed frame + one gated segment per summary, in order.

    No sentence is said twice: a segment's sentence that repeats one said earlier in the episode is
    dropped (and recorded). The quality figures and every rule that fired are in `Script.quality`.
    """
    if not summaries:
        raise ValueError("build_script needs at least one summary")
    total = len(summaries)
    usage = Usage()
    fallbacks: list[str] = []
    fired: list[RuleFired] = [rule for summary in summaries for rule in summary.rules_fired]
    claims = sum(summary.claims for summary in summaries)
    grounded = sum(summary.grounded_claims for summary in summaries)
    for position, failure in duplicate_titles(summaries).items():
        fired.append(failure.fired(summaries[position].url, "rejected"))
    # One offline writer per episode, seeded by the date: it writes every offline or fallback segment, so
    # its guard (nothing said twice) covers them all, and its stock lines change from day to day.
    if writer.is_offline and isinstance(writer, OfflineWriter) and not writer.seed:
        writer = OfflineWriter(seed=day.isoformat())
    offline = writer if writer.is_offline else OfflineWriter(seed=day.isoformat())
    host = show.host if show.cohost else ""  # single-host scripts name no speaker (their JSON as before)
    opening: list[Said] = [(host, line) for line in opening_lines(day, show, total)]
    if show.cohost:
        opening[2:2] = cohost_opening(show)
    said = {sentence_form(line) for _, line in opening}
    sections = [Section(kind="opening", title="オープニング", sentences=_sentences(opening, pronunciation))]
    for index, summary in enumerate(summaries):
        lines, used, reason, segment_fired, segment_claims, segment_grounded = write_said_checked(
            writer, summary, index, total, show, max_attempts, fallback=offline)
        usage = usage + used
        fired += segment_fired
        claims += segment_claims
        grounded += segment_grounded
        if reason:
            fallbacks.append(f"{index + 1}: {summary.title} ({reason})")
        header = [(host, line) for line in segment_header(summary, index, total, day)]
        kept = []
        for speaker, line in header + lines:
            form = sentence_form(line)
            if form in said:
                fired.append(RuleFired(rule="repeat.sentence", field="segment", article=summary.url,
                                       action="dropped", detail="a sentence said earlier in the episode"))
                continue
            said.add(form)
            kept.append((speaker or host, line))
        sections.append(Section(kind="article", title=summary.title, url=summary.url,
                                sentences=_sentences(kept, pronunciation)))
    closing: list[Said] = [(host, line) for line in closing_lines(day, show, summaries)]
    if show.cohost:
        closing[-1:-1] = cohost_closing(show)
    sections.append(Section(kind="closing", title="エンディング",
                            sentences=_sentences(closing, pronunciation)))
    script = Script(date=day, weekday=weekday_ja(day), show_title=show.title, sections=sections,
                    writer=writer.name, usage=usage, fallbacks=fallbacks,
                    cohost=show.cohost.name if show.cohost else "")
    return script.model_copy(update={"quality": measure(script, fired, claims, grounded)})


@task(name="script", **stage_options(retries=1))
def write_script(day: dt.date, summaries: list[Summary], show: ShowInfo, pronunciation: dict[str, str],
                 llm: LLMConfig, writer_key: str) -> Script:
    """Prefect task: build the gated script (the flow checks it whole and publishes its artifact, so a
    cached rerun still leaves both)."""
    writer = writer_for(llm, Environment(), stage="script")
    if writer.cache_key != writer_key:
        log.warning("script writer is %s but the flow asked for %s", writer.cache_key, writer_key)
    return build_script(day, summaries, show, pronunciation, writer, llm.max_attempts)
