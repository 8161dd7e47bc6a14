"""An editor in the loop: the run pauses until a person approves, edits or rejects the episode.

With `[review] before = "synthesize"` in the show file, the flow pauses (Prefect `pause_flow_run`
with a RunInput form) after the script stage; with `before = "upload"`, after synthesis, and the
form also says where the rendered MP3 is (the run's work folder, and the store's private work area)
so the editor listens before anything goes out. The form's description shows the picks with their
scores and the whole script, sentences numbered per article; the editor answers from the Prefect UI
("Resume" on the paused run) or the API (`resume_flow_run(flow_run_id, run_input={...})`):

- `approve`: the script goes to synthesis unchanged;
- `drop`: the articles numbered in `drop` leave the episode; the next spares take their places
  through the editorial gate's own replacement path (flows/editing.gated_script: summarized, the
  script written again, every article and the whole script checked) and the form comes back;
- `edit`: `edits` replace a spoken title (`sentence` left empty) or one sentence of an article; the
  edited script is checked again by the editorial gate (`zundacast.editorial` through
  tasks/script.validate_script: spoken text without URLs, markdown or emoji, persona, length, titles
  named, ...); a rule the edit breaks that the original met sends the form back with the problems
  listed at the top, and nothing is synthesized;
- with `before = "upload"`, an applied edit or drop is synthesized again (the utterance cache makes
  that cheap: only the changed sentences are voiced) and the form comes back with the new MP3, so
  the editor hears what they approve; `approve` then publishes it;
- `reject`: nothing is published (nor, before synthesis, synthesized); the run fails with
  `ReviewRejected` naming the editor and the reason (the failure webhook says so).

The decision, its author (the `editor` field: Prefect's open-source server has no user accounts, so
the form asks for the name) and the edits are kept in `episode.json` (`review`), and in a markdown
artifact `review-{show}-{date}`.

Timeout (`timeout_s`, default 2 hours): when nobody decides in time, the run resumes itself with
the show's `on_timeout`. The default is `"fail"`: a show that asked for an editor has said that
nothing unseen should reach listeners, and a late episode is recoverable (the failure webhook and
the silence check tell the operator; a rerun of the date reuses every cached stage and pauses
again), while a published mistake is not. `"publish"` publishes the script unchanged (before
upload: as last rendered, edits already applied kept), recorded as `timed out`. The run resumes
itself (rather than letting Prefect's pause expire, which fails the run whatever the show asked) a
little before Prefect's own pause timeout. The timer can fire before Prefect has set the run Paused
or saved its form (a loaded machine, a slow API): the server refuses that resume, so the timeout tries
again until the resume is accepted or the pause has returned (an editor's earlier answer stands).

`poll_s` (default 5 s) is how often the paused run asks the API whether it was resumed.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from prefect.input import RunInput
from pydantic import BaseModel, Field

from tasks.script import recap_name, validate_script
from zundacast.editorial import spoken_text_problems
from zundacast.errors import PermanentError
from zundacast.models import AudioBundle, Ranking, ReviewRecord, Script, Section, Sentence, Summary
from zundacast.show import Show, ShowInfo
from zundacast.speech import to_speech

if TYPE_CHECKING:
    from zundacast.runner import StageRunner

logger = logging.getLogger(__name__)

TIMEOUT_AUTHOR = "(nobody: timeout)"
PREFECT_GRACE_S = 120  # Prefect's own pause timeout is this much later than ours: we always resume first
MAX_ROUNDS = 10  # forms sent back for invalid edits, before the run gives up


class ReviewRejected(PermanentError):
    """The editor rejected the episode (or nobody decided and the show says to fail)."""


class ReviewEdit(BaseModel):
    article: int = Field(ge=1, description="article number (1 = the first article)")
    sentence: int | None = Field(None, ge=1, description="sentence number in that article; empty: the "
                                                          "spoken title")
    text: str = Field(min_length=1, max_length=400, description="the new text")


class ReviewDecision(RunInput):
    """The editor's answer (the form in the Prefect UI)."""

    editor: str = Field(min_length=1, max_length=100, description="your name, kept with the decision")
    action: Literal["approve", "edit", "drop", "reject"] = "approve"
    edits: list[ReviewEdit] = Field(default_factory=list)
    drop: list[int] = Field(default_factory=list, description="article numbers the next spares replace")
    reason: str = Field("", max_length=500, description="why (for a rejection)")


def articles(script: Script) -> list[Section]:
    return [section for section in script.sections if section.kind == "article"]


def apply_edits(script: Script, summaries: list[Summary], edits: list[ReviewEdit],
                pronunciation: dict[str, str],
                show: ShowInfo | None = None) -> tuple[Script, list[str], list[str]]:
    """The edited script, one line per edit ("article 2, sentence 3: old → new"), and the problems
    (edits that point nowhere, or rules the edited script breaks that the original met)."""
    sections = [section.model_copy(deep=True) for section in script.sections]
    article_sections = [section for section in sections if section.kind == "article"]
    spoken = [summary.spoken_title for summary in summaries]
    described: list[str] = []
    problems: list[str] = []
    for edit in edits:
        text = " ".join(edit.text.split())
        where = f"article {edit.article}" + (f", sentence {edit.sentence}" if edit.sentence else ", title")
        if edit.article > len(article_sections):
            problems.append(f"{where}: there are only {len(article_sections)} articles")
            continue
        problems += [f"{where}: {problem}" for problem in spoken_text_problems(text)]
        section = article_sections[edit.article - 1]
        if edit.sentence is None:  # the spoken title, wherever the host says it
            old = spoken[edit.article - 1]
            # the title line says it whole; the closing's recap says its head (tasks/script.recap_name)
            for part, said, now in ((section, f"「{old}」", f"「{text}」"),
                                    (sections[-1], recap_name(old), recap_name(text))):
                part.sentences = [_say(s.text.replace(said, now), pronunciation, s.speaker)
                                  if said in s.text else s for s in part.sentences]
            spoken[edit.article - 1] = text
            described.append(f"{where}: {old} → {text}")
        elif edit.sentence > len(section.sentences):
            problems.append(f"{where}: the article has only {len(section.sentences)} sentences")
        else:
            old = section.sentences[edit.sentence - 1].text
            section.sentences[edit.sentence - 1] = _say(text, pronunciation,
                                                        section.sentences[edit.sentence - 1].speaker)
            described.append(f"{where}: {old} → {text}")
    edited = script.model_copy(update={"sections": sections})
    titles = [summary.title for summary in summaries]
    before = set(validate_script(script, titles, [s.spoken_title for s in summaries], show))
    problems += [failure for failure in validate_script(edited, titles, spoken, show)
                 if failure not in before]
    return edited, described, problems


def replace_articles(run: StageRunner, show: Show, day: dt.date, ranking: Ranking, summaries: list[Summary],
                     numbers: list[int]) -> tuple[Ranking, list[Summary], Script, list[str]]:
    """The episode with the articles `numbers` (1-based) replaced by the next spares, through the same
    path as the editorial gate's own replacements (flows/editing.gated_script: the spares summarized,
    the script written again, every article and the whole script checked); one line per replacement."""
    from flows.editing import gated_script
    from tasks.rank import promote_spares
    from tasks.summarize import summarize
    from zundacast.llm import get_writer
    from zundacast.show import Environment

    dropped = [ranking.picks[number - 1] for number in sorted(set(numbers))]
    promoted = promote_spares(ranking, {pick.candidate.url for pick in dropped})
    env = Environment()
    summary_key = get_writer(show, env, stage="summarize").cache_key
    done = {summary.url: summary for summary in summaries}
    fresh = [pick.candidate for pick in promoted.picks if pick.candidate.url not in done]
    done.update({summary.url: summary for summary in run.mapped(
        "summarize", summarize, fresh, llm=show.llm, writer_key=summary_key)})
    new_summaries = [done[pick.candidate.url] for pick in promoted.picks]
    promoted, new_summaries, script = gated_script(run, show, day, promoted, new_summaries, summary_key,
                                                   get_writer(show, env, stage="script").cache_key)
    kept = {summary.url for summary in summaries}
    arrived = [pick for pick in promoted.picks if pick.candidate.url not in kept]
    lines = [f"dropped article: {old.candidate.title} → {new.candidate.title}"
             for old, new in zip(dropped, arrived, strict=False)]
    return promoted, new_summaries, script, lines


def drop_problems(ranking: Ranking, numbers: list[int]) -> list[str]:
    if not numbers:
        return ["action drop, but no article numbers in drop"]
    wrong = [number for number in numbers if not 1 <= number <= len(ranking.picks)]
    if wrong:
        return [f"drop: no article {wrong[0]} (there are {len(ranking.picks)})"]
    if len(set(numbers)) > len(ranking.spares):
        return [f"drop: {len(set(numbers))} article(s) to replace but {len(ranking.spares)} spare(s) left"]
    return []


def _say(text: str, pronunciation: dict[str, str], speaker: str = "") -> Sentence:
    """An edited sentence, said by whoever said the one it replaces."""
    return Sentence(text=text, speech=to_speech(text, pronunciation), speaker=speaker)


def review_markdown(show: Show, ranking: Ranking, script: Script, problems: list[str],
                    listen: list[str] | None = None) -> str:
    """The form's description: problems of the last answer, where to listen (before upload), the picks
    with scores, the numbered script."""
    lines = [f"# Review: {show.show.title} {script.date.isoformat()}", ""]
    if problems:
        lines += ["**Your last answer was not applied:**", *[f"- {p}" for p in problems], ""]
    if listen:
        lines += ["**Listen before you approve** (the rendered episode; nothing is published yet):",
                  *[f"- {line}" for line in listen], ""]
    lines += ["Approve, reject (with a reason), or edit: `edits` = article number, sentence number "
              "(empty for the spoken title) and the new text.", "",
              "| # | score | source | title |", "|---:|---:|---|---|"]
    lines += [f"| {pick.rank} | {pick.score:.3f} | {pick.candidate.source} | {pick.candidate.title} |"
              for pick in sorted(ranking.picks, key=lambda p: p.rank)]
    number = 0
    for section in script.sections:
        lines += ["", f"## {section.title}"]
        if section.kind == "article":
            number += 1
            lines += [f"article {number}", ""]
            lines += [f"{index}. {sentence.speaker + ': ' if sentence.speaker else ''}{sentence.text}"
                      for index, sentence in enumerate(section.sentences, start=1)]  # who, in two-host shows
        else:
            lines += ["", "".join(sentence.text for sentence in section.sentences)]
    return "\n".join(lines)


def listen_lines(bundle: AudioBundle, store_url: str) -> list[str]:
    """Where the editor finds the rendered MP3: the file on the machine running the flow, and the same
    bytes in the store's private work area (reachable from elsewhere; never listed in the feed)."""
    lines = [f"MP3 on the machine running this run: `{bundle.mp3_path}`"]
    if bundle.work_key and store_url:
        from zundacast.storage import open_store

        where = open_store(store_url).describe(bundle.work_key)
        lines.append(f"the same file in the store's work area: `{where}`")
    lines.append(f"{bundle.duration_s:.0f} s, {bundle.loudness_lufs:.1f} LUFS, sha256 {bundle.sha256[:12]}; "
                 f"{bundle.synthesized} of {bundle.utterances} utterances voiced for this render "
                 "(the rest from the utterance cache)")
    return lines


def record_markdown(show: Show, record: ReviewRecord) -> str:
    lines = [f"# Review of {show.show.title}", "", f"- decision: **{record.decision}**",
             f"- by: {record.author}", f"- at: {record.decided_at.isoformat(timespec='seconds')}"]
    if record.reason:
        lines.append(f"- reason: {record.reason}")
    lines += [f"- edit: {edit}" for edit in record.edits]
    return "\n".join(lines) + "\n"


def maybe_review(run: StageRunner, show: Show, day: dt.date, ranking: Ranking, summaries: list[Summary],
                 script: Script) -> tuple[Script, Ranking, list[Summary]]:
    """`[review] before = "synthesize"`: the episode an editor decided on (the script with its `review`
    record, and the picks and summaries after any replacement); else the episode unchanged.
    Raises ReviewRejected when the editor (or the timeout) rejects it."""
    if show.review.before != "synthesize":
        return script, ranking, summaries
    script, ranking, summaries, _ = _review(run, show, day, ranking, summaries, script)
    return script, ranking, summaries


def maybe_review_audio(run: StageRunner, show: Show, day: dt.date, ranking: Ranking, summaries: list[Summary],
                       script: Script, bundle: AudioBundle, store_url: str,
                       ) -> tuple[Script, Ranking, list[Summary], AudioBundle]:
    """`[review] before = "upload"`: the rendered episode an editor approved (edits and drops are
    synthesized again and shown again); else the episode unchanged. Raises ReviewRejected."""
    if show.review.before != "upload":
        return script, ranking, summaries, bundle
    from tasks.synthesize import synthesize

    def render(edited: Script) -> AudioBundle:  # the flow's own synthesize stage: cached, reported
        return run("synthesize", synthesize, edited, show.voice, show.audio, show.show, store_url)

    return _review(run, show, day, ranking, summaries, script, Rendered(bundle, render, store_url))


def resume_on_timeout(run_id: Any, run_input: dict[str, Any], retry_s: float, pause_over: threading.Event,
                      ) -> None:
    """Resume the paused run with the timeout's decision, once the server accepts it.

    pause_flow_run sets the run Paused, then saves the form's schema, then polls; a resume that comes
    before either is refused ("Cannot resume a run that isn't paused", "Run input schema not found").
    Refused, it asks again every `retry_s` until accepted or `pause_over` is set (the pause returned: an
    editor answered first, and the server refuses every later resume of that pause, so theirs stands)."""
    from prefect.flow_runs import resume_flow_run

    while not pause_over.is_set():
        try:
            resume_flow_run(run_id, run_input=run_input)
            return
        except Exception as exc:  # not paused yet, form not saved yet, or the editor resumed it first
            logger.info("review timeout: resume refused (%s); asking again in %s s until the pause ends",
                        exc, retry_s)
        pause_over.wait(retry_s)


@dataclass
class Rendered:
    """Before upload: the episode's current MP3 and how to render an edited script again."""

    bundle: AudioBundle
    render: Callable[[Script], AudioBundle]
    store_url: str


def _review(run: StageRunner, show: Show, day: dt.date, ranking: Ranking, summaries: list[Summary],
            script: Script, audio: Rendered | None = None,
            ) -> tuple[Script, Ranking, list[Summary], AudioBundle | None]:
    """Pause for the editor until a decision ends the review (the form comes back after a drop, an
    answer that could not be applied, and, before upload, after an edit)."""
    from prefect import get_run_logger
    from prefect.artifacts import create_markdown_artifact
    from prefect.flow_runs import pause_flow_run
    from prefect.runtime import flow_run

    say = get_run_logger()  # in the run's log (the UI), not only the terminal
    config = show.review
    run_id = flow_run.id
    problems: list[str] = []
    changes: list[str] = []  # replacements (and, before upload, edits) made in earlier rounds
    for round_number in range(1, MAX_ROUNDS + 1):
        listen = listen_lines(audio.bundle, audio.store_url) if audio else None
        form = ReviewDecision.with_initial_data(
            description=review_markdown(show, ranking, script, problems, listen))
        timed_out = threading.Event()
        pause_over = threading.Event()  # this round's pause returned: nothing left for the timeout to resume
        fallback = {"editor": TIMEOUT_AUTHOR, "reason": f"no decision within {config.timeout_s} s",
                    "action": "approve" if config.on_timeout == "publish" else "reject"}

        def time_out(timed_out: threading.Event = timed_out, pause_over: threading.Event = pause_over,
                     fallback: dict[str, Any] = fallback) -> None:
            timed_out.set()
            resume_on_timeout(run_id, fallback, config.poll_s, pause_over)

        timer = threading.Timer(config.timeout_s, time_out)
        timer.daemon = True
        timer.start()
        try:
            decision = pause_flow_run(wait_for_input=form, timeout=config.timeout_s + PREFECT_GRACE_S,
                                      poll_interval=config.poll_s, key=f"review-{round_number}")
        finally:
            pause_over.set()
            timer.cancel()
            timer.join(timeout=60)  # a resume in flight ends (refused) before the next round pauses
        by_timeout = timed_out.is_set() and decision.editor == TIMEOUT_AUTHOR
        now = dt.datetime.now(dt.UTC)
        if decision.action == "drop" and not by_timeout:
            problems = drop_problems(ranking, decision.drop)
            if not problems:
                ranking, summaries, script, replaced = replace_articles(run, show, day, ranking,
                                                                        summaries, decision.drop)
                changes += replaced
                say.info("review: %s by %s", "; ".join(replaced), decision.editor)
                if audio:
                    audio.bundle = audio.render(script)
            else:
                say.warning("review: drop by %s not applied: %s", decision.editor, "; ".join(problems))
            continue  # the form comes back with the new article (or the problems)
        if decision.action == "edit" and not by_timeout:
            edited, described, problems = apply_edits(script, summaries, decision.edits, show.pronunciation,
                                                      show.show)
            if not decision.edits:
                problems = ["action edit, but no edits were given"]
            if problems:
                say.warning("review: edits by %s not applied: %s", decision.editor, "; ".join(problems))
                continue
            script = edited
            if audio:  # the editor hears the edit before approving it: render again, ask again
                changes += described
                audio.bundle = audio.render(script)
                say.info("review: %s by %s; rendered again", "; ".join(described), decision.editor)
                continue
            record = ReviewRecord(decision="edited", author=decision.editor, decided_at=now,
                                  edits=[*changes, *described], reason=decision.reason)
        elif decision.action == "reject":
            record = ReviewRecord(decision="timed out" if by_timeout else "rejected",
                                  author=decision.editor, decided_at=now, edits=changes,
                                  reason=decision.reason)
        else:
            approved = "edited" if changes else "approved"
            record = ReviewRecord(decision="timed out" if by_timeout else approved, author=decision.editor,
                                  decided_at=now, edits=changes, reason=decision.reason)
        create_markdown_artifact(key=f"review-{show.show.id}-{day.isoformat()}",
                                 markdown=record_markdown(show, record),
                                 description=f"{show.show.title} {day.isoformat()}: the editor's decision")
        if decision.action == "reject":
            raise ReviewRejected(
                f"review: the episode for {day.isoformat()} was rejected by {record.author}"
                f"{': ' + record.reason if record.reason else ''}; nothing was published "
                f"(rerun the date to review it again; [review] in {show.source_path or 'the show file'})")
        say.info("review: %s by %s", record.decision, record.author)
        return (script.model_copy(update={"review": record}), ranking, summaries,
                audio.bundle if audio else None)
    raise ReviewRejected(f"review: {MAX_ROUNDS} forms for {day.isoformat()} came back with edits that "
                         f"could not be applied (last: {'; '.join(problems)}); nothing was published")
