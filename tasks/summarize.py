"""Stage 4: one article becomes a Summary (one task run per pick, run concurrently by the flow).

The LLM writes it when one is configured. Its summary passes the editorial gate (zundacast.editorial)
or is asked again with the failures as feedback, up to `[llm] max_attempts`; if it still fails, or the
LLM fails for this article after its retries (bad JSON, an endpoint that stays down), the offline
writer takes over for this article only and the summary says so (`writer="offline (fallback)"`). A
rejected key is not healed by a fallback: it fails the run. A summary that fails the gate even from the
offline writer carries a `rejected` finding: the flow replaces the article with a spare.
"""

from __future__ import annotations

import logging
import threading

from prefect import task

from zundacast.editorial import Failure, Source, check_summary, feedback_of
from zundacast.llm import LLMError, Writer, writer_for
from zundacast.llm.offline import OfflineWriter
from zundacast.models import Candidate, RuleFired, Summary, Usage
from zundacast.show import Environment, LLMConfig
from zundacast.stage import stage_options

log = logging.getLogger(__name__)

FALLBACK = "offline (fallback)"

_SLOTS: dict[int, threading.BoundedSemaphore] = {}
_SLOTS_LOCK = threading.Lock()


def llm_slots(concurrency: int) -> threading.BoundedSemaphore:
    """`[llm] concurrency`: at most that many summaries are written at once in this process (the flow's
    task runner runs mapped tasks in threads)."""
    with _SLOTS_LOCK:
        return _SLOTS.setdefault(concurrency, threading.BoundedSemaphore(concurrency))


def article_source(candidate: Candidate) -> Source:
    """What a summary of this article may claim: its text, title, site and feed."""
    return Source(candidate.title, candidate.text or candidate.feed_summary, candidate.site_name,
                  candidate.source)


def _gated(summary: Summary, source: Source, written_by_llm: bool, fired: list[RuleFired],
           usage: Usage) -> tuple[Summary, list[Failure]]:
    failures, claims, grounded = check_summary(summary, source, written_by_llm)
    return summary.model_copy(update={"rules_fired": fired, "claims": claims, "grounded_claims": grounded,
                                      "usage": usage}), failures


def summarize_article(candidate: Candidate, writer: Writer, max_attempts: int = 3) -> Summary:
    """The writer's summary of one article once it passes the gate, else the offline writer's."""
    source = article_source(candidate)
    fired: list[RuleFired] = []
    usage = Usage()
    if not writer.is_offline:
        feedback: list[str] = []
        attempts = max(1, max_attempts)
        for attempt in range(1, attempts + 1):
            try:
                summary = writer.summarize(candidate, feedback=feedback)
            except LLMError:
                raise  # a bad key or model: the user must fix it, a fallback would hide it
            except Exception as exc:  # the writer already retried (HTTP, unparsable answers)
                log.warning("summary of %s by %s failed (%s): the offline writer takes over", candidate.url,
                            writer.name, exc)
                # recorded for the script artifact and episode.json; the reason is cut before any quote of
                # the model's answer (which may be the attack)
                fired = [*fired, RuleFired(rule="llm.fallback", field="summary", article=candidate.url,
                                           action="offline", detail=f"{type(exc).__name__}: "
                                                                    f"{str(exc).split(' (')[0]}"[:200])]
                break
            usage = usage + summary.usage
            gated, failures = _gated(summary, source, True, fired, usage)
            if not failures:
                return gated
            action = "rewritten" if attempt < attempts else "offline"
            fired = [*fired, *(failure.fired(candidate.url, action) for failure in failures)]
            log.warning("summary of %s attempt %d failed the editorial gate: %s", candidate.url, attempt,
                        "; ".join(feedback_of(failures)))
            feedback = feedback_of(failures)
        offline = OfflineWriter().summarize(candidate).model_copy(update={"writer": FALLBACK})
    else:
        offline = writer.summarize(candidate)
    gated, failures = _gated(offline, source, False, fired, usage)
    if failures:
        log.warning("the offline summary of %s fails the editorial gate too: %s", candidate.url,
                    "; ".join(feedback_of(failures)))
        gated = gated.model_copy(update={
            "rules_fired": [*fired, *(failure.fired(candidate.url, "rejected") for failure in failures)]})
    return gated


@task(name="summarize", task_run_name="summarize-{candidate.url}", **stage_options(retries=2))
def summarize(candidate: Candidate, llm: LLMConfig, writer_key: str) -> Summary:
    """Prefect task: cached on the article (text included), the [llm] config and the writer's key."""
    writer = writer_for(llm, Environment(), stage="summarize")
    if writer.cache_key != writer_key:
        log.warning("summary writer is %s but the flow asked for %s", writer.cache_key, writer_key)
    with llm_slots(llm.concurrency):
        return summarize_article(candidate, writer, llm.max_attempts)
