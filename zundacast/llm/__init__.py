"""Writers: who turns articles into summaries and script segments.

One small interface, two engines: the offline writer (extractive summaries and
the persona's templates, no keys, no network) and any OpenAI-compatible chat
endpoint. `get_writer` picks the LLM when `OPENAI_API_KEY` or `OPENAI_BASE_URL`
is set, the offline writer otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from zundacast.errors import PermanentError, ZundacastError

if TYPE_CHECKING:
    from zundacast.models import Candidate, Summary, Usage
    from zundacast.show import Environment, LLMConfig, Show, ShowInfo


class LLMError(PermanentError):
    """An LLM failure that retrying cannot heal (bad key, unknown model, a request the server refuses for
    every article); names the setting to fix. No offline fallback: it would hide the cause."""


class LLMQuotaError(LLMError):
    """HTTP 429 `insufficient_quota`: the key's account has no credit or hit its spend limit. Unlike a rate
    limit, waiting does not heal it: the operator must add credit or raise the limit."""


class WriterOutputError(ZundacastError):
    """The model's answer was unusable (bad JSON, wrong schema, cut off at the token limit) or the endpoint
    stayed unavailable after retries: the caller falls back to the offline writer for that article or
    segment. The message is the recorded reason: it never quotes the model's answer."""


class AnswerWithheld(WriterOutputError):
    """The model refused (`message.refusal`) or its content filter stopped the answer
    (`finish_reason: content_filter`): asking again gives the same, so the offline writer takes that article
    at once; the reason is recorded, the refused text never."""


class Writer(Protocol):
    name: str  # "offline" or the model's name
    cache_key: str  # model + prompt version: part of every cache key of what it writes
    is_offline: bool  # writes without a model: asking it again gives the same answer, so it is asked once
    needs_key: bool  # needs OPENAI_API_KEY (or a base URL) to write

    def summarize(self, candidate: Candidate, show: Show | ShowInfo | None = None,
                  feedback: list[str] | None = None) -> Summary:
        """Digest one article for the host (in Japanese, whatever the article's language).

        `feedback` lists what the editorial gate rejected last time (a writer that cannot use it
        ignores it)."""

    def write_segment(
        self, summary: Summary, index: int, total: int, show: Show | ShowInfo | None = None,
        feedback: list[str] | None = None,
    ) -> tuple[list[str], Usage]:
        """The host's sentences for one article, in the persona's voice.

        `index` is 0-based; `feedback` lists what the validator rejected last time.
        """

    def write_dialogue(
        self, summary: Summary, index: int, total: int, show: Show | ShowInfo,
        feedback: list[str] | None = None,
    ) -> tuple[list[tuple[str, str]], Usage]:
        """A two-host segment ([show.cohost]): (speaker's name, sentence) pairs, the host explaining and
        the cohost asking and reacting."""


def get_writer(show: Show, env: Environment, stage: str = "summarize") -> Writer:
    return writer_for(show.llm, env, stage)


def writer_for(llm: LLMConfig, env: Environment, stage: str = "summarize") -> Writer:
    """The writer for one stage from the show's [llm] table (what the stage tasks receive)."""
    if env.llm_configured:
        from zundacast.llm.openai_writer import OpenAIWriter

        setting = "summarize_model" if stage == "summarize" else "script_model"
        return OpenAIWriter(llm, model=getattr(llm, setting), env=env, setting=setting)
    from zundacast.llm.offline import OfflineWriter

    return OfflineWriter()
