"""The listeners' web pages: the show's index and one page per episode.

Plain static HTML5 with a little inline CSS and one small inline script, so the
store (S3, a CDN or a local folder) can serve them as they are: no build step,
relative links only, nothing loaded from another host. A Content-Security-Policy
allows only this project's own inline style and script (by hash) and media and
images from the page's own origin, so a browser refuses third-party loads even
if a later edit slipped one in, and an injected `<script>` would not run.

Everything that comes from data (titles, summaries, transcript, show settings)
is escaped; article links are kept only when they are http(s).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Iterable
from html import escape
from string import Template
from urllib.parse import urlsplit

from zundacast.dates import date_ja, weekday_ja
from zundacast.models import Chapter, Cue, EpisodeRecord, Summary
from zundacast.publishing.credits import episode_credit, show_credit
from zundacast.show import ShowInfo

SHOW_PAGE_KEY = "index.html"
PAGE_CONTENT_TYPE = "text/html; charset=utf-8"
SHOW_PAGE_EPISODES = 30  # the latest episodes listed on the show's page


def episode_page_key(day: dt.date) -> str:
    """Where an episode's page lives, relative to the show's prefix (next to its MP3)."""
    return f"{day.isoformat()}/index.html"


def mp3_key(episode: EpisodeRecord) -> str:
    """The episode's MP3, relative to the show's prefix (`episode.mp3` in records older than the names)."""
    return episode.files.get("mp3") or f"{episode.date.isoformat()}/episode.mp3"


CSS = """
:root{color-scheme:light dark;--fg:#1f2a1f;--muted:#5d6b5d;--bg:#fbfdf8;--card:#fff;--line:#dfe8d8;
--accent:#2f8f3a;--now:#e6f4e2}
@media (prefers-color-scheme:dark){:root{--fg:#e8efe4;--muted:#a3b19e;--bg:#131812;--card:#1b2219;
--line:#2c3829;--accent:#7cd386;--now:#24361f}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);line-height:1.7;font-size:16px;
font-family:system-ui,-apple-system,"Hiragino Sans","Hiragino Kaku Gothic ProN","Noto Sans JP","Yu Gothic",
Meiryo,sans-serif}
.wrap{max-width:46rem;margin:0 auto;padding:1rem}
a{color:var(--accent)}
h1{font-size:1.5rem;line-height:1.35;margin:.2rem 0 .4rem}
h2{font-size:1.15rem;margin:2rem 0 .6rem;padding-bottom:.2rem;border-bottom:2px solid var(--line)}
h3{font-size:1.02rem;margin:0 0 .3rem;line-height:1.45}
.transcript h3{margin-top:1.2rem}
.head{display:flex;gap:1rem;align-items:flex-start}
.cover{width:7.5rem;height:7.5rem;border-radius:.75rem;object-fit:cover;flex:none;background:var(--line)}
.meta{color:var(--muted);font-size:.9rem;margin:0}
.desc{margin:.3rem 0}
.button{display:inline-block;padding:.35rem .9rem;border-radius:999px;background:var(--accent);
color:var(--bg);text-decoration:none;font-weight:600;font-size:.9rem}
audio{width:100%;margin:.6rem 0}
ol,ul{padding-left:1.3rem}
.plain{list-style:none;padding:0;margin:0}
.card{background:var(--card);border:1px solid var(--line);border-radius:.75rem;padding:.8rem 1rem;
margin:.8rem 0}
.topics{margin:.2rem 0 0;color:var(--muted);font-size:.9rem}
.seek{display:flex;align-items:baseline;gap:.3rem;font:inherit;color:inherit;text-align:left;
background:none;border:0;border-radius:.4rem;padding:.25rem .4rem;
margin:0 -.4rem;cursor:pointer;width:calc(100% + .8rem)}
.seek:hover,.seek:focus-visible{background:var(--line)}
.seek.now{background:var(--now)}
.ts{flex:none;min-width:3.6em;color:var(--muted);font-variant-numeric:tabular-nums;font-size:.85rem}
.who{flex:none;font-weight:600}
.chapters li{display:flex;gap:.5rem;align-items:baseline}
.chapters .seek{flex:1}
.source{color:var(--muted);font-size:.85rem;margin:0 0 .3rem}
.files{font-size:.9rem}
footer{margin:3rem 0 1rem;color:var(--muted);font-size:.85rem}
@media (max-width:32rem){.head{flex-direction:column}.cover{width:6rem;height:6rem}h1{font-size:1.3rem}}
"""

# Chapter and transcript entries carry `data-start` (seconds): a click seeks the player
# there and plays; while playing, the current chapter and cue are highlighted. On the
# show's page, starting one episode pauses the others. `#t=SECONDS` in the URL starts
# the episode there (a link to a moment).
SCRIPT = """
(function () {
  var player = document.getElementById("player");
  document.addEventListener("play", function (event) {
    document.querySelectorAll("audio").forEach(function (audio) {
      if (audio !== event.target) { audio.pause(); }
    });
  }, true);
  if (!player) { return; }
  function seek(seconds) {
    player.currentTime = seconds;
    var playing = player.play();
    if (playing && playing.catch) { playing.catch(function () {}); }
  }
  document.addEventListener("click", function (event) {
    var target = event.target.closest("[data-start]");
    if (!target) { return; }
    event.preventDefault();
    seek(parseFloat(target.getAttribute("data-start")));
  });
  var groups = [".chapters", ".cues"].map(function (selector) {
    return Array.prototype.slice.call(document.querySelectorAll(selector + " [data-start]"));
  });
  player.addEventListener("timeupdate", function () {
    var now = player.currentTime + 0.05;
    groups.forEach(function (items) {
      var current = null;
      items.forEach(function (item) {
        if (parseFloat(item.getAttribute("data-start")) <= now) { current = item; }
      });
      items.forEach(function (item) { item.classList.toggle("now", item === current); });
    });
  });
  var moment = /^#t=(\\d+(?:\\.\\d+)?)$/.exec(window.location.hash);
  if (moment) { player.currentTime = parseFloat(moment[1]); }
})();
"""


def _csp_hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


CONTENT_SECURITY_POLICY = (
    "default-src 'none'; img-src 'self'; media-src 'self'; "
    f"style-src {_csp_hash(CSS)}; script-src {_csp_hash(SCRIPT)}; base-uri 'none'; form-action 'none'"
)

PAGE = Template("""<!DOCTYPE html>
<html lang="ja">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="$csp">
<title>$title</title>
<meta name="description" content="$description">
<meta property="og:title" content="$title">
<meta property="og:description" content="$description">
<link rel="icon" href="$cover">
<link rel="alternate" type="application/rss+xml" title="$show_title" href="$feed">
<style>$css</style>
</head>
<body>
<div class="wrap">
$body
<footer><p>$footer</p></footer>
</div>
<script>$script</script>
</body>
</html>
""")


def _e(value: object) -> str:
    """Escape data for HTML text and quoted attributes."""
    return escape(str(value), quote=True)


def safe_href(url: str) -> str | None:
    """The URL if it is an absolute http(s) URL fit for an href, else None (javascript:, data:, junk)."""
    url = url.strip()
    if not url or any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url


def format_duration(seconds: float) -> str:
    """9:41 or 1:02:03 (a player's clock)."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _date_label(day: dt.date) -> str:
    return f"{date_ja(day)}（{weekday_ja(day)[0]}）"


def _seconds_attr(seconds: float) -> str:
    return f"{max(0.0, seconds):.3f}"


def _time_tag(day: dt.date) -> str:
    return f'<time datetime="{day.isoformat()}">{_e(_date_label(day))}</time>'


def _article_link(title: str, url: str, css_class: str = "") -> str:
    href = safe_href(url)
    label = _e(title or url)
    if href is None:
        return label
    class_attr = f' class="{css_class}"' if css_class else ""
    return f'<a{class_attr} href="{_e(href)}" rel="noopener">{label}</a>'


def _page(*, title: str, description: str, show: ShowInfo, root: str, body: str, credit: str = "") -> str:
    footer = f"{_e(show.title)} — {_e(show.author)}" if show.author else _e(show.title)
    if credit:
        footer += f'<br><span class="credit">音声: {_e(credit)}</span>'
    return PAGE.substitute(
        csp=CONTENT_SECURITY_POLICY,
        title=_e(title),
        description=_e(description),
        show_title=_e(show.title),
        cover=f"{root}cover.png",
        feed=f"{root}feed.xml",
        css=CSS,
        script=SCRIPT,
        body=body,
        footer=footer,
    )


def _latest(episodes: Iterable[EpisodeRecord], limit: int) -> list[EpisodeRecord]:
    """Newest first, one per date (the most recently published wins, as a rerun replaces)."""
    by_date: dict[dt.date, EpisodeRecord] = {}
    for episode in episodes:
        kept = by_date.get(episode.date)
        if kept is None or episode.published_at >= kept.published_at:
            by_date[episode.date] = episode
    return [by_date[day] for day in sorted(by_date, reverse=True)[:limit]]


def render_show_page(show: ShowInfo, episodes: list[EpisodeRecord], limit: int = SHOW_PAGE_EPISODES) -> str:
    """`{prefix}/index.html`: the show, a subscribe link and the latest episodes with players."""
    items = []
    for episode in _latest(episodes, limit):
        day = episode.date.isoformat()
        topics = "".join(f"<li>{_e(pick.get('title', ''))}</li>" for pick in episode.picks)
        items.append(
            f'<li class="card episode">\n'
            f'<p class="meta">{_time_tag(episode.date)} · '
            f'<span class="duration">{format_duration(episode.duration_s)}</span></p>\n'
            f'<h3><a href="{day}/index.html">{_e(episode.title)}</a></h3>\n'
            f'<audio controls preload="none" src="{_e(mp3_key(episode))}"></audio>\n'
            + (f'<ul class="topics">{topics}</ul>\n' if topics else "")
            + "</li>"
        )
    listing = (
        '<ol class="plain episodes">\n' + "\n".join(items) + "\n</ol>"
        if items
        else '<p class="empty">まだエピソードはありません。</p>'
    )
    body = f"""<header class="head">
<img class="cover" src="cover.png" alt="{_e(show.title)}" width="240" height="240">
<div>
<h1>{_e(show.title)}</h1>
<p class="desc">{_e(show.description)}</p>
<p class="meta">ホスト: {_e(show.host)}</p>
<p><a class="button subscribe" href="feed.xml" type="application/rss+xml">RSS で購読する</a></p>
</div>
</header>
<main>
<h2>最新のエピソード</h2>
{listing}
</main>"""
    return _page(title=show.title, description=show.description or show.title, show=show, root="", body=body,
                 credit=show_credit(show, episodes))


def _chapter_list(chapters: list[Chapter]) -> str:
    items = []
    for chapter in chapters:
        link = ""
        if safe_href(chapter.url):
            link = f' <span class="source">{_article_link("記事", chapter.url)}</span>'
        items.append(
            f'<li><button type="button" class="seek" data-start="{_seconds_attr(chapter.start_s)}">'
            f'<span class="ts">{format_duration(chapter.start_s)}</span> {_e(chapter.title)}</button>'
            f"{link}</li>"
        )
    return '<ol class="plain chapters">\n' + "\n".join(items) + "\n</ol>"


def _cue_item(cue: Cue, named: bool = False) -> str:
    """One cue as a seek button; `named` (a two-host episode) puts its speaker before the text."""
    who = f'<span class="who">{_e(cue.speaker)}</span> ' if named and cue.speaker else ""
    return (
        f'<li><button type="button" class="seek" data-start="{_seconds_attr(cue.start_s)}">'
        f'<span class="ts">{format_duration(cue.start_s)}</span> {who}{_e(cue.text)}</button></li>'
    )


def _transcript(episode: EpisodeRecord, cues: list[Cue]) -> str:
    """The cues, grouped under their chapters; the plain transcript when there are no cues."""
    if not cues:
        paragraphs = [block.strip() for block in episode.transcript.split("\n----\n") if block.strip()]
        return "\n".join(f"<p>{_e(text)}</p>" for text in paragraphs)
    named = len({cue.speaker for cue in cues}) > 1  # a two-host episode says who speaks each line

    def items(group: list[Cue]) -> str:
        return '<ol class="plain cues">\n' + "\n".join(_cue_item(cue, named) for cue in group) + "\n</ol>"

    chapters = sorted(episode.chapters, key=lambda chapter: chapter.start_s)
    if not chapters:
        return items(cues)
    groups: list[list[Cue]] = [[] for _ in chapters]
    for cue in cues:
        # the last chapter that starts at or before the cue (cues before the first go to the first)
        index = 0
        for i, chapter in enumerate(chapters):
            if chapter.start_s <= cue.start_s + 1e-6:
                index = i
        groups[index].append(cue)
    blocks = []
    for chapter, group in zip(chapters, groups, strict=True):
        if group:
            blocks.append(f"<h3>{_e(chapter.title)}</h3>\n" + items(group))
    return "\n".join(blocks)


def _show_notes(episode: EpisodeRecord) -> str:
    """One entry per source article: its link and source, plus the summary when there is one."""
    summaries: dict[str, Summary] = {summary.url: summary for summary in episode.summaries}
    items = []
    for pick in episode.picks:
        url = pick.get("url", "")
        summary = summaries.get(url)
        title = pick.get("title", "") or (summary.title if summary else url)
        source = pick.get("source", "") or (summary.source if summary else "")
        parts = [f"<h3>{_article_link(title, url, 'article')}</h3>"]
        if source:
            parts.append(f'<p class="source">{_e(source)}</p>')
        if summary is not None:
            parts.append(f"<p>{_e(summary.summary)}</p>")
            if summary.key_points:
                points = "".join(f"<li>{_e(point)}</li>" for point in summary.key_points)
                parts.append(f"<ul>{points}</ul>")
        items.append('<li class="card">' + "\n".join(parts) + "</li>")
    return '<ol class="plain sources">\n' + "\n".join(items) + "\n</ol>"


def _description(episode: EpisodeRecord, show: ShowInfo) -> str:
    titles = "、".join(pick.get("title", "") for pick in episode.picks if pick.get("title"))
    if titles:
        return f"{_date_label(episode.date)}の{show.title}: {titles}"
    return show.description or episode.title


def render_episode_page(show: ShowInfo, episode: EpisodeRecord, cues: list[Cue]) -> str:
    """`{prefix}/{date}/index.html`: player, chapters, show notes with sources, transcript."""
    sections = []
    if episode.chapters:
        sections.append(f"<section>\n<h2>チャプター</h2>\n{_chapter_list(episode.chapters)}\n</section>")
    if episode.picks:
        sections.append(f"<section>\n<h2>ショーノート</h2>\n{_show_notes(episode)}\n</section>")
    transcript = _transcript(episode, cues)
    mp3 = _e(mp3_key(episode).rsplit("/", 1)[-1])  # the page sits next to its MP3
    credit = episode_credit(show, episode)
    sections.append(f'<section class="transcript">\n<h2>文字起こし</h2>\n{transcript}\n</section>')
    body = f"""<nav><a class="back" href="../index.html">← {_e(show.title)}</a></nav>
<header class="head">
<img class="cover" src="../cover.png" alt="{_e(show.title)}" width="240" height="240">
<div>
<p class="meta">{_time_tag(episode.date)} ·
<span class="duration">{format_duration(episode.duration_s)}</span></p>
<h1>{_e(episode.title)}</h1>
<p class="meta">{_e(show.title)}</p>
</div>
</header>
<main>
<audio id="player" controls preload="metadata" src="{mp3}">
<track kind="captions" srclang="ja" label="日本語" src="transcript.vtt">
<a href="{mp3}">MP3</a>
</audio>
<p class="files"><a href="{mp3}" download>MP3 をダウンロード</a>
 · <a href="transcript.vtt">字幕 (WebVTT)</a> · <a href="chapters.json">チャプター (JSON)</a>
 · <a href="../feed.xml">RSS で購読する</a></p>
{chr(10).join(sections)}
</main>"""
    return _page(
        title=f"{episode.title} | {show.title}",
        description=_description(episode, show),
        show=show,
        root="../",
        body=body,
        credit=credit,
    )
