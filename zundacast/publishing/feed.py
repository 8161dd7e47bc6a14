"""feed.xml: RSS 2.0 with the iTunes tags Apple Podcasts requires and the Podcasting 2.0 tags.

Built with ElementTree, so every title and URL is escaped by the XML writer. References:
Apple: https://podcasters.apple.com/support/823-podcast-requirements
Podcasting 2.0: https://github.com/Podcastindex-org/podcast-namespace/blob/main/docs/1.0.md
"""

from __future__ import annotations

import datetime as dt
import io
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from email.utils import format_datetime

from zundacast.dates import date_ja
from zundacast.models import EpisodeRecord
from zundacast.publishing.catalog import COVER_KEY, SHOW_PAGE_KEY
from zundacast.publishing.credits import episode_credit, show_credit
from zundacast.show import ShowInfo

ITUNES = "http://www.itunes.com/dtds/podcast-1.0.dtd"
PODCAST = "https://podcastindex.org/namespace/1.0"
ATOM = "http://www.w3.org/2005/Atom"
CONTENT = "http://purl.org/rss/1.0/modules/content/"
NAMESPACES = {"itunes": ITUNES, "podcast": PODCAST, "atom": ATOM, "content": CONTENT}
# The podcast namespace's UUIDv5 namespace for podcast:guid (docs/1.0.md#guid).
PODCAST_GUID_NAMESPACE = uuid.UUID("ead4c236-bf58-58c6-a2c6-a6b28d128cb6")
GENERATOR = "zundacast"
SUMMARY_CHARS = 280  # per article in the show notes

for _prefix, _uri in NAMESPACES.items():
    ET.register_namespace(_prefix, _uri)


def podcast_guid(feed_url: str) -> str:
    """The Podcasting 2.0 guid: UUIDv5 of the feed URL without its scheme and trailing slashes."""
    bare = feed_url.split("://", 1)[-1].rstrip("/")
    return str(uuid.uuid5(PODCAST_GUID_NAMESPACE, bare))


def episode_guid(show_id: str, day: dt.date) -> str:
    """Stable per show and date: a rerun replaces the episode in apps instead of adding one."""
    return f"zundacast:{show_id}:{day.isoformat()}"


def episode_mp3_key(show_id: str, day: dt.date) -> str:
    """`2026-11-20/zundamon-ai-2026-11-20.mp3`: podcast apps save downloads under the URL's file name,
    so every episode of every show gets its own (not one `episode.mp3` overwriting the last)."""
    return f"{day.isoformat()}/{show_id}-{day.isoformat()}.mp3"


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attributes)
    if text is not None:
        element.text = text
    return element


def _ns(prefix: str, name: str) -> str:
    return f"{{{NAMESPACES[prefix]}}}{name}"


def _is_web_link(url: str) -> bool:
    return url.startswith(("https://", "http://"))


def _clock(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def show_notes_text(episode: EpisodeRecord, credit: str = "") -> str:
    """Plain-text show notes (description): the articles with their links, and the voice's credit."""
    lines = [f"{date_ja(episode.date)}に紹介したニュース:"]
    for number, pick in enumerate(episode.picks, start=1):
        source = f"（{pick['source']}）" if pick.get("source") else ""
        lines.append(f"{number}. {pick['title']}{source}")
        if pick.get("url"):
            lines.append(f"   {pick['url']}")
    if credit:
        lines += ["", f"音声: {credit}"]
    return "\n".join(lines)


def show_notes_html(episode: EpisodeRecord, credit: str = "") -> str:
    """HTML show notes (content:encoded): the articles as links with a short summary, and the chapters."""
    root = ET.Element("div")
    _sub(root, "p", f"{date_ja(episode.date)}に紹介したニュースなのだ。")
    summaries = {summary.url: summary for summary in episode.summaries}
    articles = _sub(root, "ol")
    for pick in episode.picks:
        item = _sub(articles, "li")
        if _is_web_link(pick.get("url", "")):
            _sub(item, "a", pick["title"], href=pick["url"])
        else:
            item.text = pick["title"]
        if pick.get("source"):
            (item[-1] if len(item) else item).tail = f"（{pick['source']}）"
        summary = summaries.get(pick.get("url", ""))
        if summary and summary.summary:
            text = (
                summary.summary
                if len(summary.summary) <= SUMMARY_CHARS
                else summary.summary[:SUMMARY_CHARS] + "…"
            )
            _sub(item, "p", text)
    if episode.chapters:
        _sub(root, "p", "チャプター")
        chapters = _sub(root, "ul")
        for chapter in episode.chapters:
            _sub(chapters, "li", f"{_clock(chapter.start_s)} {chapter.title}")
    if credit:
        _sub(root, "p", f"音声: {credit}")
    inner = "".join(ET.tostring(child, encoding="unicode", method="html") for child in root)
    return inner


def render_feed(
    show: ShowInfo,
    episodes: list[EpisodeRecord],
    feed_url: str,
    url_for: Callable[[str], str],
    built_at: dt.datetime | None = None,
    cover_key: str | None = COVER_KEY,
) -> str:
    """The feed: channel + one item per episode, newest first.

    `url_for(key)` turns a store key (relative to the prefix) into the public URL listeners fetch.
    `cover_key=None` leaves the artwork out (when the store has no cover yet).
    """
    rss = ET.Element("rss", {"version": "2.0"})
    channel = _sub(rss, "channel")
    site = url_for(SHOW_PAGE_KEY)
    description = show.description or show.title
    credit = show_credit(show, episodes)
    if credit:
        description += f"\n\n音声: {credit}"
    _sub(channel, "title", show.title)
    _sub(channel, "link", site)
    _sub(channel, "description", description)
    _sub(channel, "language", show.language)
    _sub(channel, "copyright", f"© {show.author}")
    _sub(channel, "generator", GENERATOR)
    newest = max((episode.published_at for episode in episodes), default=None)
    _sub(
        channel,
        "lastBuildDate",
        format_datetime((built_at or newest or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)),
    )
    _sub(channel, _ns("atom", "link"), href=feed_url, rel="self", type="application/rss+xml")
    if cover_key:
        cover = url_for(cover_key)
        image = _sub(channel, "image")
        _sub(image, "url", cover)
        _sub(image, "title", show.title)
        _sub(image, "link", site)
        _sub(channel, _ns("itunes", "image"), href=cover)
    _sub(channel, _ns("itunes", "author"), show.author)
    owner = _sub(channel, _ns("itunes", "owner"))
    _sub(owner, _ns("itunes", "name"), show.author)
    if show.owner_email:
        _sub(owner, _ns("itunes", "email"), show.owner_email)
    category = ET.SubElement(channel, _ns("itunes", "category"), {"text": show.category})
    if show.subcategory:
        ET.SubElement(category, _ns("itunes", "category"), {"text": show.subcategory})
    _sub(channel, _ns("itunes", "explicit"), "true" if show.explicit else "false")
    _sub(channel, _ns("itunes", "type"), "episodic")
    _sub(channel, _ns("itunes", "summary"), description)
    _sub(channel, _ns("podcast", "guid"), show.podcast_guid or podcast_guid(feed_url))
    locked = {"owner": show.owner_email} if show.owner_email else {}
    _sub(channel, _ns("podcast", "locked"), "yes" if show.locked else "no", **locked)

    for episode in sorted(episodes, key=lambda record: record.date, reverse=True):
        _add_item(channel, show, episode, url_for)

    ET.indent(rss, space=" ")
    out = io.BytesIO()
    ET.ElementTree(rss).write(out, encoding="utf-8", xml_declaration=True)
    return out.getvalue().decode("utf-8") + "\n"


def _add_item(
    channel: ET.Element, show: ShowInfo, episode: EpisodeRecord, url_for: Callable[[str], str]
) -> None:
    files = episode.files
    item = _sub(channel, "item")
    _sub(item, "title", episode.title)
    _sub(item, _ns("itunes", "title"), episode.title)
    if files.get("page"):
        _sub(item, "link", url_for(files["page"]))
    credit = episode_credit(show, episode)
    _sub(item, "description", show_notes_text(episode, credit))
    _sub(item, _ns("content", "encoded"), show_notes_html(episode, credit))
    _sub(item, "guid", episode_guid(episode.show or show.id, episode.date), isPermaLink="false")
    _sub(item, "pubDate", format_datetime(episode.published_at.astimezone(dt.UTC)))
    # ?v= names the render: the MP3 key is fixed per date and cached as immutable, so a re-render of
    # a date must reach listeners under a new URL (S3 ignores the query)
    enclosure = url_for(files.get("mp3", f"{episode.date.isoformat()}/episode.mp3"))  # older records
    if episode.sha256:
        enclosure += ("&" if "?" in enclosure else "?") + f"v={episode.sha256[:12]}"
    _sub(item, "enclosure", url=enclosure, length=str(episode.size_bytes), type="audio/mpeg")
    _sub(item, _ns("itunes", "duration"), str(max(1, round(episode.duration_s))))
    _sub(item, _ns("itunes", "episodeType"), "full")
    _sub(item, _ns("itunes", "explicit"), "true" if show.explicit else "false")
    _sub(item, _ns("itunes", "summary"), show_notes_text(episode, credit))
    if files.get("vtt"):
        _sub(
            item,
            _ns("podcast", "transcript"),
            url=url_for(files["vtt"]),
            type="text/vtt",
            language=show.language,
            rel="captions",
        )
    if files.get("chapters"):
        _sub(
            item, _ns("podcast", "chapters"), url=url_for(files["chapters"]), type="application/json+chapters"
        )
