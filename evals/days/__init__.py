"""News days written for the evals: each a TOML file of feeds and articles, rendered to pages and feeds.

A day file holds its date, the trap it sets (what an editor must not let through), its feeds and its
articles (title, site, layout, byline, published time, body paragraphs). `render_day` turns it into the
files a news site serves: RSS 2.0 / RSS 1.0 (Hatena-style, with bookmark counts) feeds and article pages
wrapped in the boilerplate real sites carry (cookie banner, navigation, ads, share buttons, related
links), in one of several site layouts. The sample day (zundacast/sample_day) is the fifth day.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass
from html import escape
from pathlib import Path
from xml.sax.saxutils import escape as xml_escape

DAYS_DIR = Path(__file__).parent
BASE = "{{BASE}}"  # replaced by the loopback server's base URL (as in the sample day)


@dataclass(frozen=True)
class Day:
    name: str
    date: dt.date
    trap: str
    feeds: list[dict]
    articles: list[dict]
    forbidden: list[str]  # text that must never reach the transcript (injected lines, bylines, datelines)
    duplicates: list[list[str]]  # slugs of pages telling the same story (at most one may become a segment)


def day_names() -> list[str]:
    return sorted(path.stem for path in DAYS_DIR.glob("*.toml"))


def load_day(name: str) -> Day:
    data = tomllib.loads((DAYS_DIR / f"{name}.toml").read_text(encoding="utf-8"))
    return Day(name=name, date=dt.date.fromisoformat(str(data["date"])), trap=data["trap"],
               feeds=data["feeds"], articles=data["articles"], forbidden=data.get("forbidden", []),
               duplicates=data.get("duplicates", []))


def _paragraphs(body: str) -> list[str]:
    return [" ".join(line.strip() for line in block.splitlines()) for block in body.strip().split("\n\n")
            if block.strip()]


def _boilerplate_top(site: str) -> str:
    return f"""<div id="cookie-banner" class="cookie-consent" role="dialog">
<p>当サイトではサービス向上のためCookieを使用しています。閲覧を続けるとCookieの使用に同意したものとみなされます。</p>
<button type="button">同意する</button></div>
<header class="site-header"><a class="logo" href="{BASE}/">{escape(site)}</a>
<nav><ul><li><a href="{BASE}/ai">AI</a></li><li><a href="{BASE}/cloud">クラウド</a></li>
<li><a href="{BASE}/dev">開発</a></li><li><a href="{BASE}/security">セキュリティ</a></li></ul></nav>
<a class="login" href="{BASE}/login">ログイン</a></header>
<div class="ad-block" data-ad-slot="top"><span class="ad-label">広告</span>
<p>【無料ウェビナー】クラウド費用を3割削減する方法。先着300名様、今すぐお申し込みを！</p>
<a href="{BASE}/promo/top.html">申し込む</a></div>"""


def _boilerplate_bottom(related: list[dict]) -> str:
    links = "".join(f'<li><a href="{BASE}/pages/{a["slug"]}.html">{escape(a["title"])}</a></li>'
                    for a in related[:4])
    return f"""<section class="share"><h2>この記事をシェア</h2><ul><li><button>X（旧Twitter）</button></li>
<li><button>Facebook</button></li><li><button>はてなブックマーク</button></li><li><button>URLをコピー</button></li></ul>
</section>
<aside class="related"><h2>関連記事</h2><ul>{links}</ul></aside>
<aside class="ranking"><h2>アクセスランキング</h2><ol><li><a href="{BASE}/r/1">今週の人気記事まとめ</a></li>
<li><a href="{BASE}/r/2">新人エンジニアが最初に読むべき10冊</a></li></ol></aside>
<footer class="site-footer"><p>© 2026 {BASE} All rights reserved.</p>
<a href="{BASE}/privacy">プライバシーポリシー</a> <a href="{BASE}/terms">利用規約</a></footer>"""


def _header(article: dict) -> str:
    """The headline block in the article's site layout (bylines and datelines as each site prints them)."""
    title, author = escape(article["title"]), escape(article.get("author", ""))
    published = dt.datetime.fromisoformat(article["published"])
    stamp = published.strftime("%Y年%-m月%-d日 %H時%M分")
    layout = article.get("layout", "news")
    if layout == "dateline":  # wire style: dateline, byline, photo credit, updated line, all in the body
        return (f"<h1>{title}</h1>\n<div class=\"article-body\">\n"
                f"<p>{published:%Y年%-m月%-d日} {escape(article.get('desk', '編集部'))}</p>\n"
                f"<p>（記者：{author}）</p>\n<p>{published:%Y/%m/%d %H:%M} 更新</p>\n"
                f"<p>写真：{escape(article.get('photo', 'ロイター'))}</p>\n")
    if layout == "verge":
        return (f"<h1>{title}</h1><p class=\"dek\">{escape(article.get('dek', ''))}</p>\n"
                f"<p class=\"byline\">By {author}, a senior reporter covering AI. "
                f"{published:%b %-d, %Y, %-I:%M %p} GMT+9</p>\n<div class=\"article-body\">\n")
    if layout == "blog":
        return (f"<h1>{title}</h1>\n<p class=\"author\">{author}</p>\n"
                f"<time datetime=\"{article['published']}\">{published:%Y/%m/%d}に公開</time>\n"
                "<p class=\"likes\">♥ 128 いいね</p>\n<div class=\"article-body\">\n")
    return (f"<h1>{title}</h1>\n<p class=\"byline\">文：{author}</p>\n"
            f"<time datetime=\"{article['published']}\">{stamp}</time>\n<div class=\"article-body\">\n")


def render_page(article: dict, day_articles: list[dict]) -> str:
    site = article["site"]
    lang = article.get("language", "ja")
    body = "\n".join(f"<h2>{escape(p[3:])}</h2>" if p.startswith("## ") else f"<p>{escape(p)}</p>"
                     for p in _paragraphs(article["body"]))
    middle_ad = ('<div class="ad-block ad-inline"><span class="ad-label">PR</span>'
                 "<p>プレミア会員なら全記事読み放題。年間たったの9,800円！</p></div>")
    related = [a for a in day_articles if a["slug"] != article["slug"]]
    return f"""<!DOCTYPE html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<title>{escape(article['title'])} | {escape(site)}</title>
<meta name="description" content="{escape(article.get('summary', ''))}">
<meta name="author" content="{escape(article.get('author', ''))}">
<meta property="og:type" content="article">
<meta property="og:title" content="{escape(article['title'])}">
<meta property="og:site_name" content="{escape(site)}">
<meta property="article:published_time" content="{article['published']}">
<link rel="canonical" href="{BASE}/pages/{article['slug']}.html">
</head>
<body>
{_boilerplate_top(site)}
<main><article>
{_header(article)}{body}
{middle_ad}
</div>
</article></main>
{_boilerplate_bottom(related)}
</body>
</html>
"""


def _rss(feed: dict, items: list[dict]) -> str:
    entries = []
    for article in items:
        published = dt.datetime.fromisoformat(article["published"])
        entries.append(f"""<item>
<title>{xml_escape(article['title'])}</title>
<link>{BASE}/pages/{article['slug']}.html</link>
<guid isPermaLink="false">{article['slug']}</guid>
<pubDate>{published.strftime('%a, %d %b %Y %H:%M:%S %z')}</pubDate>
<description>{xml_escape(article.get('summary', ''))}</description>
</item>""")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel>
<title>{xml_escape(feed['name'])}</title><link>{BASE}/</link><description>{xml_escape(feed['name'])}</description>
<language>{feed.get('language', 'ja')}</language>
{chr(10).join(entries)}
</channel></rss>
"""


def _rdf(feed: dict, items: list[dict]) -> str:
    seq = "".join(f'<rdf:li rdf:resource="{BASE}/pages/{a["slug"]}.html"/>' for a in items)
    entries = []
    for article in items:
        entries.append(f"""<item rdf:about="{BASE}/pages/{article['slug']}.html">
<title>{xml_escape(article['title'])}</title>
<link>{BASE}/pages/{article['slug']}.html</link>
<description>{xml_escape(article.get('summary', ''))}</description>
<dc:date>{article['published']}</dc:date>
<hatena:bookmarkcount>{article.get('bookmarks', 50)}</hatena:bookmarkcount>
</item>""")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rdf:RDF xmlns="http://purl.org/rss/1.0/" xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
 xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:hatena="http://www.hatena.ne.jp/info/xmlns#">
<channel rdf:about="{BASE}/feeds/{feed['id']}.rdf"><title>{xml_escape(feed['name'])}</title>
<link>{BASE}/hotentry</link><description>{xml_escape(feed['name'])}</description>
<items><rdf:Seq>{seq}</rdf:Seq></items></channel>
{chr(10).join(entries)}
</rdf:RDF>
"""


def render_day(day: Day) -> dict[str, bytes]:
    """URL path → bytes (with the {{BASE}} placeholder) of every file the day's site serves."""
    files: dict[str, bytes] = {}
    for article in day.articles:
        files[f"/pages/{article['slug']}.html"] = render_page(article, day.articles).encode()
    for feed in day.feeds:
        items = [a for a in day.articles if feed["id"] in a.get("feeds", [day.feeds[0]["id"]])]
        suffix = ".rdf" if feed.get("kind") == "rdf" else ".xml"
        text = _rdf(feed, items) if suffix == ".rdf" else _rss(feed, items)
        files[f"/feeds/{feed['id']}{suffix}"] = text.encode()
    return files


def feed_paths(day: Day) -> list[tuple[dict, str]]:
    return [(feed, f"/feeds/{feed['id']}{'.rdf' if feed.get('kind') == 'rdf' else '.xml'}")
            for feed in day.feeds]
