"""Stage 4: one article becomes a Summary (one task run per pick, run concurrently by the flow).

The LLM writes it when one is configured; if it fails for this article after its retries (bad JSON,
an endpoint that stays down), the offline writer takes over for this article only and the summary says
so (`writer="offline (fallback)"`). A rejected key is not healed by a fallback: it fails the run.
"""

from __future__ import annotations

import logging

from prefect import task

from zundacast.llm import LLMError, Writer, writer_for
from zundacast.llm.offline import OfflineWriter
from zundacast.models import Candidate, Summary
from zundacast.show import Environment, LLMConfig
from zundacast.stage import stage_options

log = logging.getLogger(__name__)

FALLBACK = "offline (fallback)"


def summarize_article(candidate: Candidate, writer: Writer) -> Summary:
    """The writer's summary of one article, or the offline writer's if the LLM could not give one."""
    try:
        return writer.summarize(candidate)
    except LLMError:
        raise
    except Exception as exc:
        if writer.name == OfflineWriter.name:
            raise
        log.warning("summary of %s by %s failed (%s): the offline writer takes over", candidate.url,
                    writer.name, exc)
        summary = OfflineWriter().summarize(candidate)
        return summary.model_copy(update={"writer": FALLBACK})


@task(name="summarize", task_run_name="summarize-{candidate.url}", **stage_options(retries=2))
def summarize(candidate: Candidate, llm: LLMConfig, writer_key: str) -> Summary:
    """Prefect task: cached on the article (text included), the [llm] config and the writer's key."""
    writer = writer_for(llm, Environment(), stage="summarize")
    if writer.cache_key != writer_key:
        log.warning("summary writer is %s but the flow asked for %s", writer.cache_key, writer_key)
    return summarize_article(candidate, writer)
