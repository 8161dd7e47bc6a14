"""The LLM writer: any OpenAI-compatible chat-completions endpoint, through the `openai` package.

Structured outputs (`chat.completions.parse` with a pydantic response format) for the summary and
for a segment. The client retries 408/409/429/5xx itself, honouring Retry-After; an answer that does
not parse is asked again (`PARSE_ATTEMPTS`), then `WriterOutputError` lets the caller fall back to
the offline writer. A rejected key (401/403) or an unknown model (404) is an `LLMError`: permanent,
its message names the setting to fix and never the key.
"""

from __future__ import annotations

import json
import logging
from typing import TypeVar

import openai
from openai import OpenAI
from pydantic import BaseModel, ValidationError

from zundacast.llm import LLMError, WriterOutputError
from zundacast.llm.prompts import (
    PROMPT_OVERHEAD_TOKENS,
    PROMPT_VERSION,
    SegmentDraft,
    SummaryDraft,
    cut_to_budget,
    segment_messages,
    summary_messages,
)
from zundacast.models import Candidate, Summary, Usage
from zundacast.show import Environment, LLMConfig, Show, ShowInfo, public_url

log = logging.getLogger(__name__)

PARSE_ATTEMPTS = 3  # answers that are not valid JSON for the schema
HTTP_RETRIES = 4  # the client's own retries (429 with Retry-After, 5xx, timeouts)
TIMEOUT_S = 120.0

Draft = TypeVar("Draft", bound=BaseModel)


def _show_info(show: Show | ShowInfo | None) -> tuple[str, str]:
    info = show.show if isinstance(show, Show) else show
    if info is None:
        return "株式会社ずんだもん技術室AI放送局", "ずんだもん"
    return info.title, info.host


class OpenAIWriter:
    def __init__(self, llm: LLMConfig, model: str, env: Environment) -> None:
        self.llm = llm
        self.model = model
        self.name = model
        self.cache_key = f"openai:{model}:{PROMPT_VERSION}"
        self._base_url = env.openai_base_url or None
        key = env.openai_api_key.get_secret_value() if env.openai_api_key else ""
        # Local OpenAI-compatible servers (vLLM, Ollama) take any key; the client insists on one.
        self._client = OpenAI(api_key=key or "unused", base_url=self._base_url, max_retries=HTTP_RETRIES,
                              timeout=TIMEOUT_S)

    # --- one structured call -----------------------------------------------------------------------

    def _usage(self, completion: object) -> Usage:
        usage = getattr(completion, "usage", None)
        prompt = getattr(usage, "prompt_tokens", 0) or 0
        output = getattr(usage, "completion_tokens", 0) or 0
        cost = (prompt * self.llm.price_input_per_m + output * self.llm.price_output_per_m) / 1_000_000
        return Usage(requests=1, prompt_tokens=prompt, completion_tokens=output, cost_usd=round(cost, 6))

    def _where(self) -> str:
        return f"OPENAI_BASE_URL={public_url(self._base_url)}" if self._base_url else "the OpenAI API"

    def _parse(self, messages: list[dict[str, str]], draft: type[Draft]) -> tuple[Draft, Usage]:
        usage = Usage()
        problem = ""
        for attempt in range(1, PARSE_ATTEMPTS + 1):
            try:
                completion = self._client.chat.completions.parse(
                    model=self.model, messages=messages, response_format=draft,  # type: ignore[arg-type]
                    temperature=self.llm.temperature,
                )
            except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
                raise LLMError(
                    f"{self._where()} rejected the API key (HTTP {exc.status_code}): set a valid "
                    "OPENAI_API_KEY (or point OPENAI_BASE_URL at the server the key belongs to)"
                ) from None
            except openai.NotFoundError:
                raise LLMError(
                    f"{self._where()} has no model {self.model!r} (HTTP 404): set [llm] summarize_model / "
                    "script_model in the show file, or check OPENAI_BASE_URL"
                ) from None
            except (ValidationError, json.JSONDecodeError, openai.LengthFinishReasonError,
                    openai.ContentFilterFinishReasonError) as exc:
                problem = f"{type(exc).__name__}: {str(exc)[:200]}"
                log.warning("%s answer %d/%d unusable: %s", self.model, attempt, PARSE_ATTEMPTS, problem)
                usage = usage + Usage(requests=1)
                continue
            except openai.APIStatusError as exc:  # 400 (unsupported response_format…), 5xx after retries
                raise WriterOutputError(
                    f"{self._where()} answered HTTP {exc.status_code} for {self.model}") from None
            except openai.APIConnectionError as exc:  # includes timeouts, after the client's retries
                raise WriterOutputError(f"{self._where()} unreachable: {type(exc).__name__}") from None
            usage = usage + self._usage(completion)
            message = completion.choices[0].message
            if message.parsed is not None:
                return message.parsed, usage
            problem = f"refusal: {message.refusal}" if message.refusal else "empty answer"
            log.warning("%s answer %d/%d unusable: %s", self.model, attempt, PARSE_ATTEMPTS, problem)
        raise WriterOutputError(f"{self.model} gave no usable answer in {PARSE_ATTEMPTS} tries ({problem})")

    # --- the Writer interface ----------------------------------------------------------------------------

    def summarize(self, candidate: Candidate, show: Show | ShowInfo | None = None) -> Summary:
        text = candidate.text or candidate.feed_summary or candidate.title
        budget = max(200, self.llm.max_input_tokens - PROMPT_OVERHEAD_TOKENS)
        text, was_cut = cut_to_budget(text, budget)
        draft, usage = self._parse(summary_messages(candidate, text, was_cut), SummaryDraft)
        return Summary(
            url=candidate.url, source=candidate.source, title=candidate.title,
            spoken_title=draft.spoken_title.strip() or candidate.title, summary=draft.summary.strip(),
            key_points=[point.strip() for point in draft.key_points if point.strip()],
            why_it_matters=draft.why_it_matters.strip(), language=candidate.language, writer=self.model,
            usage=usage,
        )

    def write_segment(self, summary: Summary, index: int, total: int, show: Show | ShowInfo | None = None,
                      feedback: list[str] | None = None) -> tuple[list[str], Usage]:
        show_title, host = _show_info(show)
        messages = segment_messages(summary, index, total, show_title, host, feedback or [])
        draft, usage = self._parse(messages, SegmentDraft)
        return [sentence.strip() for sentence in draft.sentences if sentence.strip()], usage
