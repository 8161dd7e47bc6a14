"""The LLM writer: any OpenAI-compatible chat-completions endpoint, through the `openai` package.

Structured outputs (`chat.completions.parse` with a pydantic response format) for the summary and
for a segment. Each answer is handled as the API means it (OpenAI's API reference and error codes):

- 401/403 (a rejected key), 404 `model_not_found`, 429 `insufficient_quota` (no credit: waiting does not
  heal it) and a 400 the server would give every article (an unsupported parameter or response format)
  are `LLMError`s: permanent, naming the setting or what the operator must do, never the key; no
  offline fallback hides them.
- 429 `rate_limit_exceeded`, 408/409, 5xx and connection errors are retried here (not by the client,
  which cannot tell a rate limit from an empty account), waiting what `Retry-After` / `retry-after-ms`
  asks (through `sleep`, which tests patch), else an exponential backoff; then `WriterOutputError`.
- 400 `context_length_exceeded`: the article is cut by what the server says is too much, asked once more.
- `finish_reason: length` (JSON cut off): asked again with a note to write shorter; answers that do not
  parse are asked again too (`PARSE_ATTEMPTS` in all), then `WriterOutputError`.
- `finish_reason: content_filter` and refusals (`message.refusal`): `AnswerWithheld` at once; the caller
  hands that article to the offline writer and records why, never the refused text.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

import openai
from openai import OpenAI
from pydantic import BaseModel, ValidationError

from zundacast.llm import AnswerWithheld, LLMError, LLMQuotaError, WriterOutputError
from zundacast.llm.prompts import (
    PROMPT_OVERHEAD_TOKENS,
    PROMPT_VERSION,
    DialogueDraft,
    SegmentDraft,
    SummaryDraft,
    cached_encoding,
    cut_to_budget,
    dialogue_messages,
    estimate_tokens,
    segment_messages,
    summary_messages,
)
from zundacast.models import Candidate, Summary, Usage
from zundacast.show import Environment, LLMConfig, Show, ShowInfo, public_url

log = logging.getLogger(__name__)

PARSE_ATTEMPTS = 3  # answers that are not usable (bad JSON, wrong schema, cut off at the token limit)
HTTP_RETRIES = 4  # after the first request: rate limits (429 rate_limit_exceeded), 408/409, 5xx, timeouts
TIMEOUT_S = 120.0
BACKOFF_S = 0.5  # the first wait when the server asks none; doubled each time, at most BACKOFF_MAX_S
BACKOFF_MAX_S = 8.0
RETRY_AFTER_MAX_S = 60.0  # a longer Retry-After is not honoured: the backoff is used instead
QUOTA_CODES = {"insufficient_quota", "credit_balance_exhausted", "organization_spend_limit_exceeded",
               "project_spend_limit_exceeded", "organization_usage_limit_exceeded"}
LENGTH_NOTE = ("前回の出力は長すぎて途中で切れました（finish_reason: length）。"
               "JSONを最後まで書き終えられるよう、各項目をもっと短く書いてください。")

Draft = TypeVar("Draft", bound=BaseModel)


def sleep(seconds: float) -> None:
    """The wait between retries (tests patch it to record what was asked)."""
    time.sleep(seconds)


def asked_delay(response: Any) -> float | None:
    """What the server asked to wait, in seconds: `retry-after-ms`, else `Retry-After` (seconds or an
    HTTP date); None when it asked nothing usable."""
    headers = getattr(response, "headers", None) or {}
    try:
        if headers.get("retry-after-ms"):
            return float(headers["retry-after-ms"]) / 1000
    except ValueError:
        pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        moment = email.utils.parsedate_to_datetime(value) if email.utils.parsedate_tz(value) else None
        return max(0.0, moment.timestamp() - time.time()) if moment else None


def retry_delay(response: Any, retry: int) -> float:
    """Retry-After when the server asked (and it is not absurd), else the exponential backoff."""
    asked = asked_delay(response)
    if asked is not None and 0 <= asked <= RETRY_AFTER_MAX_S:
        return asked
    return min(BACKOFF_S * 2 ** (retry - 1), BACKOFF_MAX_S) * random.uniform(0.75, 1.0)


def is_quota_error(exc: openai.APIStatusError) -> bool:
    return exc.status_code == 429 and (exc.code in QUOTA_CODES or exc.type == "insufficient_quota")


def _tokens(text: str) -> int:
    encoding = cached_encoding()
    if encoding is None:
        return estimate_tokens(text)
    return len(encoding.encode(text, disallowed_special=()))


class ContextTooLong(WriterOutputError):
    """HTTP 400 `context_length_exceeded`; how many tokens the model takes and how many were sent."""

    def __init__(self, message: str, window: int | None, sent: int | None) -> None:
        super().__init__(message)
        self.window = window
        self.sent = sent


def _show_info(show: Show | ShowInfo | None) -> tuple[str, str]:
    info = show.show if isinstance(show, Show) else show
    if info is None:
        return "株式会社ずんだもん技術室AI放送局", "ずんだもん"
    return info.title, info.host


class OpenAIWriter:
    is_offline = False
    needs_key = True  # OPENAI_API_KEY, or OPENAI_BASE_URL for a local server that takes any key

    def __init__(self, llm: LLMConfig, model: str, env: Environment, setting: str | None = None) -> None:
        self.llm = llm
        self.model = model
        self.name = model
        # which show-file setting chose the model (named when the server does not know it)
        self.setting = f"[llm] {setting}" if setting else "[llm] summarize_model / script_model"
        self.cache_key = f"openai:{model}:{PROMPT_VERSION}"
        self._base_url = env.openai_base_url or None
        key = env.openai_api_key.get_secret_value() if env.openai_api_key else ""
        # Local OpenAI-compatible servers (vLLM, Ollama) take any key; the client insists on one. Its own
        # retries are off: it would retry a 429 insufficient_quota like a rate limit.
        self._client = OpenAI(api_key=key or "unused", base_url=self._base_url, max_retries=0,
                              timeout=TIMEOUT_S)

    # --- one request, with the retries the answer allows -------------------------------------------------

    def _usage(self, completion: object) -> Usage:
        usage = getattr(completion, "usage", None)
        prompt = getattr(usage, "prompt_tokens", 0) or 0
        output = getattr(usage, "completion_tokens", 0) or 0
        # prompt_tokens includes prompt_tokens_details.cached_tokens and completion_tokens includes
        # completion_tokens_details.reasoning_tokens: the totals are what is billed (cached input at full
        # price here, so the estimate errs high)
        cost = (prompt * self.llm.price_input_per_m + output * self.llm.price_output_per_m) / 1_000_000
        return Usage(requests=1, prompt_tokens=prompt, completion_tokens=output, cost_usd=round(cost, 6))

    def _where(self) -> str:
        return f"OPENAI_BASE_URL={public_url(self._base_url)}" if self._base_url else "the OpenAI API"

    def _refused_request(self, exc: openai.BadRequestError) -> Exception:
        """A 400: the article's own (too long, its text refused) or one every article would get."""
        code, param = exc.code or "", exc.param or ""
        if code == "context_length_exceeded":
            numbers = re.search(r"maximum context length is (\d+) tokens.*?(\d+) tokens", str(exc.message))
            window, sent = (int(numbers.group(1)), int(numbers.group(2))) if numbers else (None, None)
            return ContextTooLong(
                f"{self._where()} answered HTTP 400 context_length_exceeded for {self.model}", window, sent)
        if param.startswith("messages") or code in ("invalid_prompt", "content_policy_violation"):
            return WriterOutputError(f"{self._where()} answered HTTP 400 {code or 'invalid_request_error'} "
                                     f"for this article's messages")
        setting = {"model": self.setting, "response_format": self.setting,
                   "temperature": "[llm] temperature"}.get(param.split(".")[0], "")
        fix = (f"set {setting} in the show file to a value {self.model!r} takes" if setting else
               "use a model or server that takes the request")
        detail = str((exc.body or {}).get("message", "") if isinstance(exc.body, dict) else "")[:200]
        return LLMError(f"{self._where()} refused every request for model {self.model!r} (HTTP 400 "
                        f"{code or 'invalid_request_error'}, param {param or 'none'}: {detail}): {fix}, "
                        "or check OPENAI_BASE_URL")

    def _complete(self, messages: list[dict[str, str]], draft: type[Draft]) -> Any:
        last, delay = "", 0.0
        for retry in range(HTTP_RETRIES + 1):
            if retry:
                log.warning("%s: %s; retry %d/%d in %.2f s", self.model, last, retry, HTTP_RETRIES, delay)
                sleep(delay)
            try:
                return self._client.chat.completions.parse(
                    model=self.model, messages=messages, response_format=draft,  # type: ignore[arg-type]
                    temperature=self.llm.temperature,
                )
            except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
                raise LLMError(
                    f"{self._where()} rejected the API key (HTTP {exc.status_code}): set a valid "
                    "OPENAI_API_KEY (or point OPENAI_BASE_URL at the server the key belongs to)"
                ) from None
            except openai.NotFoundError as exc:
                raise LLMError(
                    f"{self._where()} has no model {self.model!r} (HTTP 404 {exc.code or 'not found'}): set "
                    f"{self.setting} in the show file to a model the key can use, or check OPENAI_BASE_URL"
                ) from None
            except openai.RateLimitError as exc:
                if is_quota_error(exc):
                    raise LLMQuotaError(
                        f"{self._where()} refused {self.model} with HTTP 429 {exc.code or exc.type}: the "
                        "account of the key in OPENAI_API_KEY has no credit left or reached its spend limit. "
                        "Add credit or raise the limit in that key's billing settings (or set another "
                        "OPENAI_API_KEY), then run the date again; retrying cannot help"
                    ) from None
                last, delay = f"HTTP 429 {exc.code or 'rate limited'}", retry_delay(exc.response, retry + 1)
            except openai.BadRequestError as exc:
                raise self._refused_request(exc) from None
            except openai.APIStatusError as exc:
                if exc.status_code not in (408, 409) and exc.status_code < 500:
                    raise WriterOutputError(
                        f"{self._where()} answered HTTP {exc.status_code} for {self.model}") from None
                last, delay = f"HTTP {exc.status_code}", retry_delay(exc.response, retry + 1)
            except openai.APIConnectionError as exc:  # includes timeouts
                last, delay = f"unreachable: {type(exc).__name__}", retry_delay(None, retry + 1)
        raise WriterOutputError(f"{self._where()} answered {last} for {self.model} "
                                f"({HTTP_RETRIES + 1} requests)")

    def _ask(self, draft: type[Draft],
             messages_for: Callable[[int, list[str]], list[dict[str, str]]]) -> tuple[Draft, Usage]:
        """The parsed answer to `messages_for(tokens to cut from the article, notes)`."""
        usage = Usage()
        problem = ""
        cut, notes, unusable = 0, [], 0
        while unusable < PARSE_ATTEMPTS:
            try:
                completion = self._complete(messages_for(cut, notes), draft)
            except ContextTooLong as exc:
                if cut:
                    raise WriterOutputError(f"{exc} even after cutting the article") from None
                # what the server says is too much, and a tenth of its window to spare
                cut = (exc.sent - exc.window) + exc.window // 10 if exc.window and exc.sent else -1
                log.warning("%s: the messages exceed the context window (%s of %s tokens): cutting the "
                            "article and asking once more", self.model, exc.sent, exc.window)
                continue
            except openai.LengthFinishReasonError as exc:
                usage = usage + self._usage(exc.completion)
                unusable += 1
                problem = "cut off at the token limit, finish_reason length"
                notes = [LENGTH_NOTE]
                log.warning("%s answer %d/%d unusable: %s", self.model, unusable, PARSE_ATTEMPTS, problem)
                continue
            except openai.ContentFilterFinishReasonError:
                raise AnswerWithheld(f"{self.model}'s answer was stopped by the content filter: "
                                     "finish_reason content_filter") from None
            except (ValidationError, json.JSONDecodeError) as exc:
                unusable += 1
                bad_json = "json_invalid" in str(exc) or isinstance(exc, json.JSONDecodeError)
                kind = "invalid JSON" if bad_json else "not the schema"
                # the detail may quote the answer: kept inside the parentheses the recorded reason drops
                problem = f"{kind} ({type(exc).__name__}: {str(exc)[:200]})"
                log.warning("%s answer %d/%d unusable: %s", self.model, unusable, PARSE_ATTEMPTS, problem)
                usage = usage + Usage(requests=1)
                continue
            usage = usage + self._usage(completion)
            message = completion.choices[0].message
            if message.refusal:
                # the refusal's text is the model's: logged as a fact, never recorded or published
                raise AnswerWithheld(f"{self.model} refused to write it: message.refusal")
            if message.parsed is not None:
                return message.parsed, usage
            unusable += 1
            problem = "empty answer"
            log.warning("%s answer %d/%d unusable: %s", self.model, unusable, PARSE_ATTEMPTS, problem)
        raise WriterOutputError(f"{self.model} gave no usable answer in {PARSE_ATTEMPTS} tries: {problem}")

    # --- the Writer interface ----------------------------------------------------------------------------

    def summarize(self, candidate: Candidate, show: Show | ShowInfo | None = None,
                  feedback: list[str] | None = None) -> Summary:
        text = candidate.text or candidate.feed_summary or candidate.title
        budget = max(200, self.llm.max_input_tokens - PROMPT_OVERHEAD_TOKENS)
        text, was_cut = cut_to_budget(text, budget)

        def messages_for(cut: int, notes: list[str]) -> list[dict[str, str]]:
            sent, shortened = text, was_cut
            if cut:  # the server's context window is smaller than the budget: cut what it said was too much
                sent_tokens = _tokens(text)
                keep = sent_tokens // 2 if cut < 0 else sent_tokens - cut
                sent, cut_now = cut_to_budget(text, max(100, keep))
                shortened = shortened or cut_now
            return summary_messages(candidate, sent, shortened, [*(feedback or []), *notes])

        draft, usage = self._ask(SummaryDraft, messages_for)
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
        def messages_for(cut: int, notes: list[str]) -> list[dict[str, str]]:
            return segment_messages(summary, index, total, show_title, host, [*(feedback or []), *notes])

        draft, usage = self._ask(SegmentDraft, messages_for)
        return [sentence.strip() for sentence in draft.sentences if sentence.strip()], usage

    def write_dialogue(self, summary: Summary, index: int, total: int, show: Show | ShowInfo,
                       feedback: list[str] | None = None) -> tuple[list[tuple[str, str]], Usage]:
        """A two-host segment: (speaker, sentence) pairs as the model tagged them (the gate checks them)."""
        info = show.show if isinstance(show, Show) else show
        cohost = info.cohost
        if cohost is None:
            raise ValueError("write_dialogue needs a show with [show.cohost]")

        def messages_for(cut: int, notes: list[str]) -> list[dict[str, str]]:
            return dialogue_messages(summary, index, total, info.title, info.host, cohost.name,
                                     cohost.persona, cohost.endings, [*(feedback or []), *notes])

        draft, usage = self._ask(DialogueDraft, messages_for)
        return [(line.speaker.strip(), line.text.strip()) for line in draft.lines if line.text.strip()], usage
