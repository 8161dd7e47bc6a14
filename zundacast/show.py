"""The show file (TOML) and the environment.

A show file says what the show is: its feeds, persona, voice, schedule and
storage. Secrets never live there: they come from the environment only
(`Environment`), and no record that is logged, cached or published holds them.
"""

from __future__ import annotations

import datetime as dt
import os
import tomllib
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from zundacast.text import CleanStr

SHOWS_DIR = Path(__file__).resolve().parent.parent / "shows"
PACKAGED_SHOWS_DIR = Path(__file__).resolve().parent / "shows"  # where a wheel install puts them


# MP3 sample rates fit for speech and music (MPEG-1 and MPEG-2 layer III); below 32 kHz (MPEG-2) an MP3
# holds at most 160 kbps.
MP3_SAMPLE_RATES: tuple[int, ...] = (22050, 24000, 32000, 44100, 48000)
MPEG2_MAX_KBPS = 160


class ShowFileError(ValueError):
    """A show file that cannot be used; the message names the file and the field to fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeedConfig(_Strict):
    name: str
    url: str
    weight: float = Field(1.0, ge=0, le=100)
    language: str = "ja"
    topics: list[str] = Field(default_factory=list)  # keep only items mentioning one of these (empty: all)
    # where the source keeps past days (a URL template) and in what shape: see zundacast.archives
    archive_url: str = ""
    archive_format: Literal["hatena-hotentry", "arxiv-atom", "hn-algolia", "rss"] | None = None

    @model_validator(mode="after")
    def _archive_named_whole(self) -> FeedConfig:
        from zundacast.archives import template_problem  # here: archives' imports lead back to show

        if bool(self.archive_url) != bool(self.archive_format):
            raise ValueError("archive_url and archive_format go together: give both or neither")
        problem = template_problem(self.archive_url) if self.archive_url else ""
        if problem:
            raise ValueError(f"archive_url: {problem}")
        return self


class CohostVoicevox(_Strict):
    """The cohost's VOICEVOX voice (the other [voice.voicevox] settings are shared with the host's)."""

    speaker_name: str = Field("四国めたん", min_length=1)
    style: str = Field("ノーマル", min_length=1)
    speaker: int | None = Field(None, ge=0, le=2**31 - 1)  # an explicit style id wins, as for the host


class CohostOpenJTalk(_Strict):
    """pyopenjtalk bundles one voice: the cohost is that voice at another pitch and pace."""

    speed: float = Field(1.0, ge=0.5, le=2.0)
    half_tone: float = Field(-1.0, ge=-12.0, le=12.0)  # lower than the host's (3.0 by default)


class CohostOpenAI(_Strict):
    voice: str = Field("coral", min_length=1)
    instructions: str = "落ち着いた上品なお姉さんのキャラクターとして、日本語で優しく話してください。"


# The host's own endings: a cohost persona that ends in them would sound like the host.
_HOST_ENDING = ("のだ", "なのだ")


class CohostConfig(_Strict):
    """A second host ([show.cohost]): she asks and reacts, the host explains. Off when absent."""

    name: CleanStr = Field(min_length=1, max_length=20)  # e.g. 四国めたん
    # her speech style, said to the LLM writer; `endings` is what the editorial gate checks
    persona: CleanStr = "上品でおっとりしたお嬢様口調のお姉さん。一人称は「わたくし」。"
    endings: list[str] = Field(default_factory=lambda: [
        "わよ", "ですわ", "ますわ", "ましたわ", "でしたわ", "かしら", "わね", "のね", "のよ", "ですの",
        "ですね", "ますね"])
    voicevox: CohostVoicevox = Field(default_factory=CohostVoicevox)
    openjtalk: CohostOpenJTalk = Field(default_factory=CohostOpenJTalk)
    openai: CohostOpenAI = Field(default_factory=CohostOpenAI)

    @field_validator("endings")
    @classmethod
    def _her_own_endings(cls, value: list[str]) -> list[str]:
        endings = [ending.strip().rstrip("。．.！？!?") for ending in value]
        if not endings or not all(endings):
            raise ValueError("list the cohost's sentence endings without punctuation, "
                             "e.g. [\"わよ\", \"ですわ\"]")
        host_like = [ending for ending in endings if ending.endswith(_HOST_ENDING)]
        if host_like:
            raise ValueError(f"{host_like[0]!r} is the host's ending (のだ/なのだ): give the cohost her own")
        return endings


class ShowInfo(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: CleanStr
    host: CleanStr = "ずんだもん"
    author: CleanStr = "zundacast"
    owner_email: str = ""
    description: CleanStr = ""
    language: str = "ja"
    timezone: str = "Asia/Tokyo"
    category: str = "Technology"
    subcategory: str = ""
    explicit: bool = False
    base_url: str = ""  # public URL of the store prefix (CDN or custom domain); "" = the store's own
    # (ZUNDACAST_BASE_URL and `--base-url` win over it: see parse_show)
    cover: str = ""  # path (relative to the show file) of the cover image; "" = bundled cover
    podcast_guid: str = ""  # Podcasting 2.0 guid; "" = derived from the feed URL as the spec says
    locked: bool = True
    cohost: CohostConfig | None = None  # a second host ([show.cohost]); None: the host speaks alone

    @model_serializer(mode="wrap")
    def _no_cohost_unsaid(self, handler: SerializerFunctionWrapHandler) -> dict:
        # A show without a cohost serializes as before the key existed: its stages' cache keys (Prefect
        # hashes this record) stay what they were, so no past date is recomputed for it.
        data = handler(self)
        if self.cohost is None and isinstance(data, dict):
            data.pop("cohost", None)
        return data

    @model_validator(mode="after")
    def _cohost_is_someone_else(self) -> ShowInfo:
        if self.cohost is not None and self.cohost.name == self.host:
            raise ValueError(f"cohost.name {self.cohost.name!r} is the host: name the second host")
        return self

    @field_validator("base_url")
    @classmethod
    def _web_base_url(cls, value: str) -> str:
        problem = base_url_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {value!r} (use an IANA name such as Asia/Tokyo)") from exc
        return value


BASE_URL_ENV = "ZUNDACAST_BASE_URL"


def base_url_problem(url: str) -> str:
    """Why `url` cannot be the public base of the feed's links ("" when it can, or when it is empty)."""
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not a web address: use http(s)://host/path, e.g. https://podcast.example.com/show"
    if parts.query or parts.fragment or parts.username or parts.password:
        return f"{url!r}: a base URL takes no query, fragment or credentials"
    if ".." in parts.path.split("/"):
        return f"{url!r}: a base URL takes no '..' in its path"
    return ""


class ScheduleConfig(_Strict):
    cron: str = "0 6 * * 1-5"  # in the show's timezone
    cutoff: dt.time = dt.time(6, 0)  # the date window ends at this time on the episode's date
    window_hours: float = Field(24, gt=0, le=24 * 31)


class CollectConfig(_Strict):
    max_pages: int = Field(12, ge=1, le=200)  # full-text extractions per run
    concurrency: int = Field(8, ge=1, le=64)
    timeout_s: float = Field(10, gt=0, le=300)
    # feeds not in this long after collect starts are skipped as failed (None: twice timeout_s, and
    # at least timeout_s plus the retry backoff); retries happen only if they fit before it
    deadline_s: float | None = Field(None, gt=0, le=3600)
    max_bytes: int = Field(3_000_000, gt=0, le=100_000_000)
    min_text_chars: int = Field(120, ge=0, le=100_000)  # a floor; zundacast.readability judges the rest
    min_candidates: int = Field(3, ge=1, le=100)
    allow_hosts: list[str] = Field(default_factory=list)  # hosts allowed even if they are private/loopback
    user_agent: str = "zundacast/0.1 (+https://github.com/zundacast/zundacast)"


class RankConfig(_Strict):
    picks: int = Field(3, ge=1, le=8)
    spares: int = Field(2, ge=0, le=20)
    topics: list[str] = Field(default_factory=list)  # keywords the audience cares about
    history_episodes: int = Field(14, ge=0, le=1000)  # nothing covered in this many recent episodes
    max_per_source: int = Field(2, ge=1, le=8)


class LLMConfig(_Strict):
    summarize_model: str = "gpt-4o-mini"
    script_model: str = "gpt-4o-mini"
    max_input_tokens: int = Field(6000, gt=100, le=1_000_000)
    concurrency: int = Field(4, ge=1, le=32)
    temperature: float = Field(0.7, ge=0, le=2)  # the range OpenAI's API takes
    max_attempts: int = Field(3, ge=1, le=10)  # per segment, before the offline writer takes over
    # USD per million tokens, for the cost estimate
    price_input_per_m: float = Field(0.15, ge=0, le=1000)
    price_output_per_m: float = Field(0.60, ge=0, le=1000)


class VoicevoxConfig(_Strict):
    url: str = "http://127.0.0.1:50021"  # VOICEVOX_URL wins
    # The voice, found by name in the engine's /speakers (style ids differ between engines and
    # versions); an explicit numeric `speaker` (a style id) wins.
    speaker_name: str = Field("ずんだもん", min_length=1)
    style: str = Field("ノーマル", min_length=1)
    speaker: int | None = Field(None, ge=0, le=2**31 - 1)
    # The ranges of the VOICEVOX editor's sliders.
    speed_scale: float = Field(1.1, ge=0.5, le=2.0)
    pitch_scale: float = Field(0.0, ge=-0.15, le=0.15)
    intonation_scale: float = Field(1.0, ge=0.0, le=2.0)
    volume_scale: float = Field(1.0, gt=0.0, le=2.0)
    pre_phoneme_length: float = Field(0.05, ge=0.0, le=1.5)
    post_phoneme_length: float = Field(0.05, ge=0.0, le=1.5)


class OpenAITTSConfig(_Strict):
    model: str = "gpt-4o-mini-tts"
    voice: str = "sage"
    instructions: str = "明るく元気な子どものキャラクターとして、日本語で楽しそうに話してください。"
    speed: float = Field(1.0, ge=0.25, le=4.0)  # the range OpenAI's API takes


class OpenJTalkConfig(_Strict):
    speed: float = Field(1.1, ge=0.5, le=2.0)
    half_tone: float = Field(3.0, ge=-12.0, le=12.0)  # a little higher, closer to Zundamon


class VoiceConfig(_Strict):
    engine: Literal["openjtalk", "voicevox", "openai"] = "openjtalk"
    concurrency: int = Field(2, ge=1, le=32)
    openjtalk: OpenJTalkConfig = Field(default_factory=OpenJTalkConfig)
    voicevox: VoicevoxConfig = Field(default_factory=VoicevoxConfig)
    openai: OpenAITTSConfig = Field(default_factory=OpenAITTSConfig)


class AudioConfig(_Strict):
    bitrate_kbps: int = Field(96, ge=32, le=320)
    sample_rate: int = 44100  # one of MP3_SAMPLE_RATES
    target_lufs: float = Field(-16.0, ge=-40.0, le=-5.0)
    true_peak_dbtp: float = Field(-1.0, ge=-10.0, le=0.0)
    sentence_pause_s: float = Field(0.35, ge=0, le=5)
    section_pause_s: float = Field(0.9, ge=0, le=10)
    jingle: bool = True
    music: str = ""  # optional background music file, ducked under the voice

    @field_validator("sample_rate")
    @classmethod
    def _mp3_sample_rate(cls, value: int) -> int:
        if value not in MP3_SAMPLE_RATES:
            raise ValueError(f"{value} Hz is not an MP3 sample rate (use one of "
                             f"{', '.join(str(rate) for rate in MP3_SAMPLE_RATES)}; 44100 is usual)")
        return value

    @model_validator(mode="after")
    def _bitrate_fits_the_rate(self) -> AudioConfig:
        if self.sample_rate < 32000 and self.bitrate_kbps > MPEG2_MAX_KBPS:
            raise ValueError(f"bitrate_kbps {self.bitrate_kbps} is more than an MP3 at {self.sample_rate} Hz "
                             f"holds (at most {MPEG2_MAX_KBPS}; or use sample_rate 44100)")
        return self


class AlertsConfig(_Strict):
    # the day's episode should be in episodes.json by this time (the show's timezone) on the schedule's
    # days; the silence check (flows/silence_check.py) posts to ZUNDACAST_WEBHOOK_URL once when it is not
    deadline: dt.time = dt.time(7, 0)


class ReviewConfig(_Strict):
    # "synthesize": the run pauses after the script for an editor's decision (zundacast.review);
    # "upload": after synthesis, with the rendered MP3 to listen to
    before: Literal["synthesize", "upload", "none"] = "none"
    timeout_s: int = Field(7200, ge=1, le=7 * 24 * 3600)
    # what a run does when nobody decides in time; "fail" publishes nothing unreviewed (see review.py)
    on_timeout: Literal["fail", "publish"] = "fail"
    # how often (seconds) a paused run asks the API whether the editor answered: a resume is noticed up
    # to this much later; Prefect Cloud users may want fewer calls, a local editor a snappier resume
    poll_s: float = Field(5, ge=0.5, le=300)


class StorageConfig(_Strict):
    # a folder (relative to the show file's folder), file:// URL or s3://bucket/prefix;
    # ZUNDACAST_STORE and --store win; unset, ./public in the working folder
    url: str = "./public"

    @field_validator("url")
    @classmethod
    def _no_parent_segments(cls, value: str) -> str:
        from zundacast.storage import StoreError, check_store_url

        try:
            return check_store_url(value)
        except StoreError as exc:  # pydantic reports ValueErrors with the field's name
            raise ValueError(str(exc)) from None


class Show(_Strict):
    """A whole show file."""

    show: ShowInfo
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    collect: CollectConfig = Field(default_factory=CollectConfig)
    rank: RankConfig = Field(default_factory=RankConfig)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    voice: VoiceConfig = Field(default_factory=VoiceConfig)
    audio: AudioConfig = Field(default_factory=AudioConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    review: ReviewConfig = Field(default_factory=ReviewConfig)
    pronunciation: dict[str, str] = Field(default_factory=dict)  # word -> katakana; user entries win
    feeds: list[FeedConfig] = Field(min_length=1)
    source_path: str = ""  # where it was read from (set by load_show)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.show.timezone)


class Environment(BaseSettings):
    """Settings and secrets from the environment (never from the show file)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    zundacast_store: str = ""
    zundacast_home: str = ""  # caches and work files; default ~/.cache/zundacast
    zundacast_webhook_url: SecretStr | None = None
    openai_api_key: SecretStr | None = None
    openai_base_url: str = ""
    voicevox_url: str = ""

    @property
    def llm_configured(self) -> bool:
        return bool(self.openai_api_key or self.openai_base_url)

    @property
    def home(self) -> Path:
        return Path(self.zundacast_home or Path.home() / ".cache" / "zundacast").expanduser()


# Every environment variable that holds a secret: ours, and those boto3 reads itself.
SECRET_ENV_VARS: tuple[str, ...] = ("OPENAI_API_KEY", "ZUNDACAST_WEBHOOK_URL", "AWS_SECRET_ACCESS_KEY",
                                    "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
# URLs whose parts are secrets: a chat webhook's path is its key; a base URL may carry user:password@.
SECRET_URL_PARTS: dict[str, tuple[str, ...]] = {
    "ZUNDACAST_WEBHOOK_URL": ("userinfo", "path", "query"),
    "OPENAI_BASE_URL": ("userinfo", "query"),
}
# Path words every webhook URL shares; any other path segment of a webhook URL is treated as its key.
_PUBLIC_PATH_WORDS = {"services", "webhook", "webhooks", "hooks", "triggers", "incoming", "workflows"}


def url_secret_parts(url: str, parts: tuple[str, ...]) -> list[str]:
    """The secret pieces of `url` in every spelling an echo might use (whole, decoded, one by one)."""
    from urllib.parse import unquote, urlsplit

    try:
        split = urlsplit(url.strip())
    except ValueError:
        return []
    pieces: list[str] = []
    if "userinfo" in parts and "@" in split.netloc:
        userinfo = split.netloc.rsplit("@", 1)[0]
        pieces += [userinfo, *userinfo.split(":", 1)]
    if "path" in parts:
        path = split.path
        keys = [segment for segment in path.split("/")
                if len(segment) >= 6 and segment.lower() not in _PUBLIC_PATH_WORDS]
        if keys:  # a path of only common words (e.g. /webhook) holds no secret: keep such words readable
            pieces += [path, path.strip("/"), unquote(path).strip("/"), *keys]
    if "query" in parts and split.query:
        pieces += [split.query, *(pair.split("=", 1)[-1] for pair in split.query.split("&"))]
    return [piece for piece in pieces if piece]


def public_url(url: str) -> str:
    """`url` fit for messages, logs and cache keys: without user:password@, query or fragment."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        split = urlsplit(url)
    except ValueError:
        return "(an unparsable URL)"
    host = split.netloc.rsplit("@", 1)[-1]
    return urlunsplit((split.scheme, host, split.path, "", ""))


def secret_env_values() -> dict[str, str]:
    """Name -> value of the secrets set in the environment (names matched case-insensitively, as
    pydantic-settings reads `openai_api_key` too), and of the secret parts of URL-valued variables
    (named like `ZUNDACAST_WEBHOOK_URL (part 2)`)."""
    found: dict[str, str] = {}
    for name, value in os.environ.items():
        upper, value = name.upper(), value.strip()
        if not value:
            continue
        if upper in SECRET_ENV_VARS:
            found[upper] = value
        if upper in SECRET_URL_PARTS:
            for index, piece in enumerate(url_secret_parts(value, SECRET_URL_PARTS[upper]), start=1):
                found[f"{upper} (part {index})"] = piece
    return found


def show_path(name_or_path: str) -> Path:
    """Find a show file: a path, or a name in ./shows, the project's shows/ or the packaged ones."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.exists():
        if not candidate.is_file():
            raise ShowFileError(f"show file {candidate} does not exist")
        return candidate
    for folder in (Path.cwd() / "shows", SHOWS_DIR, PACKAGED_SHOWS_DIR):
        path = folder / f"{name_or_path}.toml"
        if path.is_file():
            return path
    raise ShowFileError(
        f"no show named {name_or_path!r}: expected shows/{name_or_path}.toml or a path to a .toml file"
    )


def load_show(name_or_path: str) -> Show:
    """Read and validate a show file; errors name the file and the field."""
    path = show_path(name_or_path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ShowFileError(f"{path}: not valid TOML: {exc}") from exc
    show = parse_show(raw, str(path))
    return _store_beside_the_file(show, raw, path)


def _store_beside_the_file(show: Show, raw: dict, path: Path) -> Show:
    """A relative `[storage] url` written in a show file means a folder beside that file, whatever the
    working folder (the default, unset, stays ./public in the working folder)."""
    url = show.storage.url
    written = isinstance(raw.get("storage"), dict) and "url" in raw["storage"]
    if not written or "://" in url or Path(url).expanduser().is_absolute():
        return show
    folder = (path.resolve().parent / url).resolve()
    return show.model_copy(update={"storage": show.storage.model_copy(update={"url": str(folder)})})


def with_env_base_url(raw: dict) -> dict:
    """`raw` with ZUNDACAST_BASE_URL (set by `--base-url` too) in place of [show].base_url, when it is set."""
    env_base = os.environ.get(BASE_URL_ENV, "").strip()
    if not env_base or not isinstance(raw.get("show"), dict):
        return raw
    problem = base_url_problem(env_base)
    if problem:
        raise ShowFileError(f"{BASE_URL_ENV} (or --base-url): {problem}")
    return {**raw, "show": {**raw["show"], "base_url": env_base}}


def show_warnings(show: Show) -> list[str]:
    """One line per setting the show should still have; [] when it lacks nothing."""
    where = show.source_path or "the show file"
    warnings = []
    if not show.show.owner_email:
        warnings.append(
            f"warning: {where}: [show].owner_email is not set; podcast directories (Apple Podcasts, Spotify, "
            f"Podcast Index) send the owner's verification there: add owner_email = \"you@example.com\""
        )
    return warnings


def parse_show(raw: dict, source: str = "<show>") -> Show:
    raw = with_env_base_url(raw)
    try:
        return Show.model_validate({**raw, "source_path": source})
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{field}: {message}" if field else message)
        # one line: the CLI prints it as its single error line
        raise ShowFileError(f"{source}: invalid show file: " + "; ".join(problems)) from None
