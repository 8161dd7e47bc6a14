"""The records that travel between stages.

Every stage takes and returns these pydantic models: they serialize to JSON, so
Prefect can hash them for cache keys and persist them as results, and they are
what lands in `episode.json` and `candidates.json`.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, model_serializer

from zundacast.text import CleanStr

STAGES: tuple[str, ...] = ("collect", "rank", "summarize", "script", "synthesize", "upload")
"""The pipeline's stages in order; `--refresh` names from this list."""


class Candidate(BaseModel):
    """One article seen in a feed, with its full text once extracted."""

    url: str  # canonical URL (tracking parameters dropped, redirects resolved)
    title: CleanStr
    source: str  # the feed's name in the show file
    sources: list[str] = Field(default_factory=list)  # every feed that carried this story (dedup merges)
    feed_url: str = ""
    language: str = "ja"
    published: dt.datetime | None = None  # timezone-aware; None when the feed gave no date
    first_seen: dt.datetime | None = None  # when collection first saw it (undated items count from here)
    feed_summary: CleanStr = ""  # the description the feed carried, plain text
    bookmarks: int | None = None  # hatena:bookmarkcount and the like
    text: CleanStr = ""  # extracted main text ("" until extraction ran or when it failed)
    author: CleanStr = ""
    site_name: CleanStr = ""
    extraction_error: str = ""  # why the full text is missing, when it is
    origin: str = "live"  # "live" (the feed as it was), or "archive:FORMAT" (a past day read back)


class CandidateSnapshot(BaseModel):
    """What `{date}/candidates.json` holds: the input of a rerun of that date."""

    date: dt.date
    show: str
    collected_at: dt.datetime
    candidates: list[Candidate]
    feed_errors: dict[str, str] = Field(default_factory=dict)  # feed name -> why it was skipped


class ScoredCandidate(BaseModel):
    """A candidate with the parts of its score and the editor's verdict."""

    candidate: Candidate
    score: float
    parts: dict[str, float] = Field(default_factory=dict)  # popularity, recency, relevance, source ...
    verdict: Literal["pick", "spare", "skip"] = "skip"
    reason: str = ""


class Pick(BaseModel):
    """An article chosen for the episode (or a spare waiting to replace one)."""

    rank: int  # 1-based order in the episode
    candidate: Candidate
    score: float
    parts: dict[str, float] = Field(default_factory=dict)


class Ranking(BaseModel):
    picks: list[Pick]
    spares: list[Pick] = Field(default_factory=list)
    table: list[ScoredCandidate] = Field(default_factory=list)  # every candidate, for the artifact


class Usage(BaseModel):
    """LLM token usage; all zero for the offline writer."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            requests=self.requests + other.requests,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cost_usd=round(self.cost_usd + other.cost_usd, 6),
        )


class RuleFired(BaseModel):
    """One editorial rule that failed on one field, and what the pipeline did about it."""

    rule: str  # stable id, e.g. grounding.number (see zundacast.editorial)
    field: str  # spoken_title, summary, key_points[1], why_it_matters, segment, script ...
    article: str = ""  # the article's URL ("" for the episode frame)
    action: str  # rewritten (asked again with feedback), offline (offline writer took over), rejected
    detail: str = ""


class Quality(BaseModel):
    """What an editor would measure in a script (see zundacast.editorial.measure)."""

    characters: int = 0
    sentences: int = 0
    persona_ratio: float = 0.0
    distinct_sentence_ratio: float = 0.0
    ending_kinds: int = 0  # distinct sentence endings (のだ。 / なのだ！ / のだ？ ...)
    endings: dict[str, int] = Field(default_factory=dict)
    claims: int = 0  # numbers and Latin-script names in writer-made text
    grounded_claim_ratio: float = 1.0
    rules_fired: list[RuleFired] = Field(default_factory=list)
    fallbacks: list[str] = Field(default_factory=list)


class Summary(BaseModel):
    """One article, digested for the host."""

    url: str
    source: str
    title: CleanStr  # the article's own title, as published
    spoken_title: CleanStr  # the title as the host says it (Japanese)
    summary: CleanStr  # Japanese prose, a few sentences
    key_points: list[CleanStr] = Field(default_factory=list)  # with the article's concrete numbers
    why_it_matters: CleanStr = ""
    language: str = "ja"  # the article's language
    writer: str = "offline"  # "offline" or the model's name
    usage: Usage = Field(default_factory=Usage)
    rules_fired: list[RuleFired] = Field(default_factory=list)  # the editorial gate's findings
    claims: int = 0  # numbers and Latin names in the summary's text, and how many the article holds
    grounded_claims: int = 0


def _without_default_speaker(data: object, key: str = "speaker") -> object:
    """A single-host episode's record serializes as before speakers existed (same JSON, same cache keys)."""
    if isinstance(data, dict) and not data.get(key):
        data.pop(key, None)
    return data


class Sentence(BaseModel):
    """One spoken sentence: what the transcript shows and what the voice reads."""

    text: CleanStr  # display text, original spelling
    speech: CleanStr  # normalized for TTS (no ASCII letters)
    speaker: CleanStr = ""  # who says it, by name ([show.cohost] episodes); "" is the show's host

    @model_serializer(mode="wrap")
    def _speaker_when_said(self, handler: SerializerFunctionWrapHandler) -> object:
        return _without_default_speaker(handler(self))


class Section(BaseModel):
    """A stretch of the episode that becomes one chapter."""

    kind: Literal["opening", "article", "closing"]
    title: CleanStr  # chapter title
    url: str = ""  # the article, for article sections
    sentences: list[Sentence]


class ReviewRecord(BaseModel):
    """An editor's decision on the episode before synthesis or upload (zundacast.review)."""

    decision: Literal["approved", "edited", "rejected", "timed out"]
    author: CleanStr  # who decided: the name the editor gave, or "(nobody: timeout)"
    decided_at: dt.datetime
    edits: list[CleanStr] = Field(default_factory=list)  # "article 2, sentence 3: old → new"
    reason: CleanStr = ""


class Script(BaseModel):
    date: dt.date
    weekday: str  # Japanese weekday, e.g. 木曜日 (computed from the date)
    show_title: CleanStr
    sections: list[Section]
    writer: str = "offline"
    usage: Usage = Field(default_factory=Usage)
    fallbacks: list[str] = Field(default_factory=list)  # segments the offline writer had to take over
    quality: Quality = Field(default_factory=Quality)
    review: ReviewRecord | None = None  # the editor's decision, when the show asks for review
    cohost: CleanStr = ""  # the second host's name ([show.cohost]); "" when the host speaks alone

    @model_serializer(mode="wrap")
    def _cohost_when_there(self, handler: SerializerFunctionWrapHandler) -> object:
        return _without_default_speaker(handler(self), "cohost")

    def transcript(self) -> str:
        """The whole script as displayed: a paragraph per section, `----` between articles; in a two-host
        episode, a line per turn, named like a play's (「四国めたん: …」)."""
        if not self.cohost:
            blocks = ["".join(s.text for s in section.sentences) for section in self.sections]
            return "\n----\n".join(blocks)
        blocks = []
        for section in self.sections:
            turns: list[tuple[str, str]] = []
            for sentence in section.sentences:
                if turns and turns[-1][0] == sentence.speaker:
                    turns[-1] = (sentence.speaker, turns[-1][1] + sentence.text)
                else:
                    turns.append((sentence.speaker, sentence.text))
            blocks.append("\n".join(f"{speaker}: {text}" if speaker else text for speaker, text in turns))
        return "\n----\n".join(blocks)


class Cue(BaseModel):
    """One utterance's place in the finished audio (a WebVTT cue)."""

    start_s: float
    end_s: float
    text: CleanStr
    speaker: CleanStr = ""  # the sentence's speaker ("" is the show's host): the cue's <v …> voice

    @model_serializer(mode="wrap")
    def _speaker_when_said(self, handler: SerializerFunctionWrapHandler) -> object:
        return _without_default_speaker(handler(self))


class Chapter(BaseModel):
    title: CleanStr
    start_s: float
    end_s: float
    url: str = ""


class AudioBundle(BaseModel):
    """The synthesized episode, ready to publish."""

    mp3_path: str  # a file in this machine's work folder, content-addressed so it is immutable
    sha256: str
    size_bytes: int
    duration_s: float
    loudness_lufs: float
    true_peak_dbtp: float
    engine: str  # voice engine name
    chapters: list[Chapter]
    cues: list[Cue]
    utterances: int = 0
    synthesized: int = 0  # utterances synthesized this run (the rest came from the utterance cache)
    # The same MP3 in the store's private work area (`.work/<sha256>.mp3`): where a machine without
    # `mp3_path` (another worker rerunning upload) fetches it. Empty when synthesized without a store.
    work_key: str = ""


class EpisodeRecord(BaseModel):
    """What `{date}/episode.json` holds, and one entry of `episodes.json`."""

    date: dt.date
    title: CleanStr
    show: str
    picks: list[dict[str, CleanStr]]  # title, url, source
    summaries: list[Summary] = Field(default_factory=list)
    transcript: CleanStr
    duration_s: float
    size_bytes: int
    sha256: str
    loudness_lufs: float
    true_peak_dbtp: float
    chapters: list[Chapter]
    usage: Usage
    engine: str
    writer: str
    published_at: dt.datetime
    files: dict[str, str] = Field(default_factory=dict)  # role (mp3, vtt, chapters, page) -> key in the store
    # role -> SHA-256 of the published bytes (every file but episode.json, which is this record):
    # the upload stage republishes a date whose files went missing or changed
    file_sha256: dict[str, str] = Field(default_factory=dict)
    quality: Quality | None = None  # the script's quality figures and every editorial rule that fired
    review: ReviewRecord | None = None  # the editor's decision ([review] in the show file)


class PublishResult(BaseModel):
    episode_key: str  # where episode.json went
    episode_url: str  # public URL (or file path) of the MP3
    feed_url: str
    page_url: str = ""
    # every object written, in write order (not `keys`: Prefect takes a model with a `keys` attribute for a
    # mapping and fails on every task that returns it)
    written_keys: list[str] = Field(default_factory=list)


class StageReport(BaseModel):
    status: Literal["computed", "cached"]
    seconds: float


class RunSummary(BaseModel):
    """The CLI's one-line summary (`--json`)."""

    episode: str
    date: dt.date
    stages: dict[str, StageReport]
    duration_s: float
    mp3: str = ""
    feed: str = ""
