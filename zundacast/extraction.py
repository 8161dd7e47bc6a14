"""An article page's main text, as a host would read it: trafilatura finds the article, `clean_text` drops
what trafilatura keeps but is not the article, one line per paragraph.

trafilatura removes navigation, sidebars and footers well, but on real news layouts it keeps lines
around the article body: the headline again, the category label, the dateline and byline
(「2026年11月20日 編集部」, 「[松本大地，ITmedia]」, "By Jane Doe, a senior reporter…",
"Updated Nov 20, 2026"), photo credits (「写真：…」, "Photo by … / Unsplash", "Image: Getty Images"),
share buttons (「この記事をシェア」「Xでポスト」, "Share this story"), the related-article list and its
header (「関連記事」, "Related"; the list under it or on its line, or a trailing ▼/→ list of headlines),
copyright lines and comment prompts. Each rule below removes a whole line, and only a short one (a
paragraph of prose is never dropped for containing a word). Every kept line is a finished sentence (a
list item or row gets 「。」 or ".") or a subheading marked "## " (the page's h2/h3, or a short line that
ends no sentence): nothing is read as one sentence with the paragraph after it, and a subheading stays
structure, never a sentence of the story that a writer reads out and then says again.
"""

from __future__ import annotations

import re
import unicodedata

import trafilatura
from pydantic import BaseModel
from trafilatura.settings import use_config

from zundacast.stories import normalize_title, same_story

SHORT_LINE = 120  # boilerplate lines are short; paragraphs of prose are never dropped by a pattern
LABEL_LINE = 16  # a category label or link caption above the headline
HEADING_LINE = 60  # a line this short that ends no sentence is a subheading (a longer one is a paragraph)
# A heading stays a heading for the later stages: "## " (markdown, as trafilatura writes it) and no 「。」, so
# it is structure (an LLM sees a section) but never a sentence a writer reads out and then says again.
HEADING_PREFIX = "## "

_MONTHS = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?"
_DATE_JA = r"\d{4}\s*[年/.\-]\s*\d{1,2}\s*[月/.\-]\s*\d{1,2}\s*日?(?:\s*[（(][月火水木金土日][)）])?"
_TIME = r"(?:\s*\d{1,2}\s*(?:時\s*\d{1,2}\s*分|:\d{2}(?::\d{2})?)(?:\s*(?:AM|PM|JST|UTC|GMT|ET|PT))?)?"
_DATE_EN = rf"{_MONTHS}\s+\d{{1,2}},?\s+\d{{4}}"
_NAME = r"[^\s。、．，,.!?！？]{1,20}(?:\s[^\s。、．，,.!?！？]{1,20}){0,2}"

_EN_NAME = r"[A-Z][\w.'’-]*(?:\s[A-Z][\w.'’-]*){0,3}"
_SHARE = (r"(?:(?:この記事を|記事を)?(?:シェア|共有|ツイート|ポスト)(?:する)?|Xでポスト|ツイート|Tweet|"
          r"はてなブックマーク|あとで読む|Facebookでシェア|LINEで送る|URLをコピー|この記事のタイトルとURLをコピーする|"
          r"Share(?: this (?:article|story|post))?|Share on \w+|Copy link|いいね\s*\d*)")
# A related-links block (「あわせて読みたい」「【関連記事】」「▼関連」 "Read more"…): its header, alone on its
# line or with the list after it on the same line, and the items, marked (・▼→…) or bare headline-like lines.
_RELATED_WORDS = (
    r"関連記事|関連リンク|関連コンテンツ|関連情報|関連ニュース|関連|(?:あわせて|合わせて|併せて)(?:読みたい|読む|どうぞ)|"
    r"こちらも(?:おすすめ|オススメ|読まれています|どうぞ)|(?:おすすめ|オススメ)(?:の)?(?:記事)?|"
    r"人気(?:の)?記事(?:ランキング)?|よく読まれている記事|この記事を読んだ人(?:におすすめ|はこんな記事も読んでいます)|"
    r"アクセスランキング|Related(?: (?:articles?|posts?|stories|reading|content|links|coverage))?|"
    r"Read (?:more|next|also)|Also read|See also|More from .{1,40}?|More stories|Most (?:Popular|Read)|"
    r"Recommended(?: (?:for you|reading|articles|stories))?|You (?:might|may) also like")
_ITEM_MARK = "・▼▽■□◆◇●○★☆▶►→⇒≫»＞>"
_LINK_MARK = "▼▽▶►→⇒≫»＞>"  # marks that introduce a link, not a fact of the story
_RELATED_HEAD = rf"^[{_ITEM_MARK}\-–—\s]*[【\[［〔《<]?\s*(?:{_RELATED_WORDS})\s*[】\]］〕》>]?\s*[:：]?\s*"
_RELATED_HEADER = re.compile(_RELATED_HEAD, re.IGNORECASE)
_RELATED_HEADER_ALONE = re.compile(_RELATED_HEAD + "$", re.IGNORECASE)
_HEADER_SEPARATOR = tuple(" 】]］〕》>:：")
_ITEMS = re.compile(rf"\s*(?:[{_ITEM_MARK}]|(?<=\s)[-–—](?=\s)|^[-–—](?=\s))\s*")
_PROSE_END = ("。", "．", ".")
_INTRODUCES_LIST = re.compile(r"(?:[:：]|(?:次|以下)の(?:通り|とおり)(?:だ|です)?。)$")
_PATTERNS = [
    # datelines, alone or with an author:
    # 2026年11月20日 12時30分 公開 / 2026/11/19に公開 / 2026年11月20日 編集部
    re.compile(rf"^(?:{_DATE_JA}|{_DATE_EN}){_TIME}\s*(?:に?(?:公開|更新|掲載|配信|投稿)(?:日)?)?"
               rf"(?:\s*[|｜/／・]?\s*{_NAME})?$", re.IGNORECASE),
    re.compile(rf"^(?:公開|更新|掲載|配信|投稿)(?:日|日時)?\s*[:：]?\s*{_DATE_JA}{_TIME}$"),
    re.compile(rf"^(?:Updated|Published|Posted|Last updated|Modified)\b.{{0,40}}(?:{_DATE_EN}|\d{{4}}|ago)",
               re.IGNORECASE),
    # bylines: [松本大地，ITmedia] / 文：佐藤 美咲 / 著者: … / By Jane Doe, a senior reporter … / Posted by …
    re.compile(r"^[\[［]\s*[^\]］]{1,40}[，,、]\s*[^\]］]{1,30}[\]］]$"),
    re.compile(r"^(?:文|記事|執筆|執筆者|著者|筆者|記者|取材|文・写真|写真・文|取材・文|編集|寄稿|"
               r"Author|Written by)\s*[:：/／・]\s*.{1,40}$", re.IGNORECASE),
    re.compile(rf"^By\s+{_EN_NAME}(?:\s*(?:,|and)\s*{_EN_NAME})*(?:\s*,\s*(?:a|an|the)\s.*|\s*[|｜].*)?$"),
    re.compile(r"^(?:in\s.{1,60},\s*)?Posted by\s+\S{1,40}$", re.IGNORECASE),
    re.compile(r"^(?:編集部|[^\s]{1,12}編集部)$"),
    # photo and image credits
    re.compile(r"^[（(]?(?:写真|画像|図|出典|撮影|提供|イラスト|キャプチャ|クレジット)\s*[:：]"),
    re.compile(r"^(?:Photos?|Images?|Illustrations?|Credits?|Photograph|Screenshot|Source)\s*(?::|by\b|via\b|"
               r"courtesy\b)", re.IGNORECASE),
    re.compile(r"(?:/|／)\s*(?:Getty Images|Unsplash|Shutterstock|AP|Reuters|AFP|The Verge|iStock)\s*\)?$"),
    re.compile(r"(?:Photo|Image|Illustration)s?\s*:\s*[^.。]{1,60}$"),
    re.compile(r"[（(](?:同社|筆者|編集部|公式)?(?:提供|撮影)[)）]$"),
    # share buttons and prompts: a line made only of them
    re.compile(rf"^{_SHARE}(?:[\s|｜・/]+{_SHARE})*$", re.IGNORECASE),
    # copyright and comment prompts, machine-translation notes
    re.compile(r"^(?:Copyright|©|\(c\))", re.IGNORECASE),
    re.compile(r"All Rights Reserved\.?$", re.IGNORECASE),
    re.compile(r"^(?:Discussion|ログインするとコメントできます|コメントする|バッジを贈って著者を応援しよう)$"),
    re.compile(r"^You can read the machine translated English article", re.IGNORECASE),
]
# trafilatura falls back to its "baseline" below 250 extracted characters, and the baseline glues the whole
# page into one paragraph (headline, dateline and body in one sentence): a short brief is an article too
_CONFIG = use_config()
_CONFIG.set("DEFAULT", "MIN_EXTRACTED_SIZE", "60")
_DATELINE_HEAD = re.compile(rf"^(?:{_DATE_JA}|{_DATE_EN}){_TIME}\s*(?:に?(?:公開|更新|掲載|配信))?\s*"
                            r"(?:[^\s。、．，,.!?！？「」]{1,12}\s+)?", re.IGNORECASE)
_SENTENCE_END = "。．.！？!?」』）)\"'”’:：;；…"
_JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff]")
_HEADING_MARK = re.compile(r"^#{1,6}\s+")


class ExtractedArticle(BaseModel):
    text: str  # one paragraph per line, every line a finished sentence or a "## " subheading
    title: str = ""
    author: str = ""
    sitename: str = ""
    language: str = ""
    date: str = ""


def extract_article(html: str | bytes, url: str, title: str = "") -> ExtractedArticle | None:
    """The article on `html` (the page at `url`, announced as `title`), or None when there is none.

    Raises what trafilatura raises on hostile HTML (the caller records it as the page's problem)."""
    document = trafilatura.bare_extraction(
        html, url=url, with_metadata=True, include_comments=False, include_tables=True, include_links=False,
        date_extraction_params={"extensive_search": False, "original_date": True}, config=_CONFIG,
    )
    if document is None:
        return None
    fields = ("text", "title", "author", "sitename", "language", "date")
    meta = document if isinstance(document, dict) else {name: getattr(document, name, None)
                                                          for name in fields}
    page_title = meta.get("title") or ""
    author = meta.get("author") or ""
    text = _marked_headings(meta.get("text") or "", getattr(document, "body", None))
    text = clean_text(text, titles=[t for t in (title, page_title) if t], author=author)
    return ExtractedArticle(text=text, title=page_title, author=author, sitename=meta.get("sitename") or "",
                            language=meta.get("language") or "", date=str(meta.get("date") or ""))


def clean_text(text: str, titles: list[str] | None = None, author: str = "") -> str:
    """`text` without the lines that are not the article (module docstring), one finished sentence or
    "## " subheading a line ("#"-marked lines of `text` are headings)."""
    titles = titles or []
    lines = [" ".join(line.split()) for line in text.splitlines()]
    lines = [line for line in lines if line]
    marked = {index for index, line in enumerate(lines) if _HEADING_MARK.match(line)}
    lines = [_HEADING_MARK.sub("", line) for line in lines]
    if lines:
        lines[0] = _unglued_head(lines[0], titles)
    kept: list[tuple[str, bool]] = []  # (line, is a heading)
    in_related = False
    for index, line in enumerate(lines):
        if _is_related_header(line):
            in_related = True  # the list under (or after) the header: its titles are not prose
            continue
        if in_related:
            if _is_related_item(line):
                continue
            in_related = False
        if _is_boilerplate(line, titles, author):
            continue
        if not kept and index + 1 < len(lines) and _is_label(line) \
                and any(_is_headline(later, titles) for later in lines[index + 1:index + 3]):
            continue  # a category label above the repeated headline
        kept.append((line, index in marked or _is_heading(line)))
    while kept and _is_link_list(kept[-1][0]) and not (len(kept) > 1
                                                      and _INTRODUCES_LIST.search(kept[-2][0])):
        kept.pop()  # links ending the article without a header: ▼A ▼B, or 「・A ・B」 in one paragraph
    return "\n".join(HEADING_PREFIX + line if heading else _finished(line) for line, heading in kept)


def _marked_headings(text: str, body: object) -> str:
    """`text` with trafilatura's headings (<head>: the page's h1–h6) marked "## ", as its markdown does."""
    if body is None or not hasattr(body, "iter"):
        return text
    headings = {" ".join("".join(head.itertext()).split()) for head in body.iter("head")}
    headings = {heading for heading in headings
                if heading and not (len(heading) > SHORT_LINE and heading.endswith(_PROSE_END))}
    return "\n".join(HEADING_PREFIX + line if " ".join(line.split()) in headings else line
                     for line in text.splitlines())


def _is_heading(line: str) -> bool:
    """A short line that ends no sentence and is no list item or table row: a subheading in a <p>."""
    return (len(line) <= HEADING_LINE and not _ends_sentence(line) and "|" not in line
            and not line.startswith((*_ITEM_MARK, "-", "–", "—", "*", "#")))


def _is_related_header(line: str) -> bool:
    """「関連記事」 alone, or a header with its list on the same line (「あわせて読みたい ・A ・B」,
    "Related: A"); not prose that opens with the words (「関連記事によると…」: no separator after them)."""
    if _RELATED_HEADER_ALONE.match(line):
        return len(line) <= SHORT_LINE
    header = _RELATED_HEADER.match(line)
    if header is None:
        return False
    rest = line[header.end():]
    if not (header.group(0).endswith(_HEADER_SEPARATOR) or rest.startswith(tuple(_ITEM_MARK))):
        return False
    items = _items(rest)
    return bool(items) and all(_headline_like(item) for item in items)


def _is_related_item(line: str) -> bool:
    """A line of the list under a related-links header: headlines (no sentence end), marked or not."""
    items = _items(line)
    if items and all(_headline_like(item) for item in items):
        return True
    return line.lstrip().startswith(tuple(_ITEM_MARK)) and len(line) <= LABEL_LINE * 3


def _is_link_list(line: str) -> bool:
    """Other articles' headlines without a header: a line opening with a link mark (▼ → ≫), or two or more
    bulleted headlines in one paragraph (a list of facts in the story is one item a line, or has 。)."""
    stripped = line.lstrip()
    items = _items(stripped)
    if not items or not all(_headline_like(item) and len(item) >= 6 for item in items):
        return False
    inline_bullets = stripped.startswith(tuple(_ITEM_MARK)) and len(items) >= 2
    return stripped.startswith(tuple(_LINK_MARK)) or inline_bullets


def _items(text: str) -> list[str]:
    return [item.strip() for item in _ITEMS.split(text) if item.strip()]


def _headline_like(item: str) -> bool:
    """A headline, not a sentence of prose: no 。 or . at its end."""
    return 0 < len(item) <= 100 and not item.endswith(_PROSE_END)


def _unglued_head(line: str, titles: list[str]) -> str:
    """The first line without a headline and a dateline glued in front of the first paragraph."""
    for title in sorted(titles, key=len, reverse=True):
        head = " ".join(unicodedata.normalize("NFKC", title).split())
        if head and unicodedata.normalize("NFKC", line).startswith(head) and len(line) > len(head) + 1:
            line = line[len(head):].lstrip(" :：|｜-")
            break
    rest = _DATELINE_HEAD.sub("", line, count=1)
    return rest if rest and rest != line and len(rest) >= LABEL_LINE else line


def _is_boilerplate(line: str, titles: list[str], author: str) -> bool:
    if len(line) > SHORT_LINE * 2:
        return False
    if _is_headline(line, titles):
        return True
    if author and len(line) <= SHORT_LINE and _squash(line) in {_squash(author), _squash(f"By {author}")}:
        return True
    return len(line) <= SHORT_LINE and any(pattern.search(line) for pattern in _PATTERNS)


def _is_headline(line: str, titles: list[str]) -> bool:
    """The headline again (with or without the site name), as the first line or anywhere in the body."""
    if _ends_sentence(line.rstrip("」』")) and line.endswith(("。", ".")):
        return False  # a sentence, even one that repeats the headline's words, is prose
    normalized = normalize_title(line)
    for title in titles:
        whole = normalize_title(title)
        if normalized and (normalized == whole or same_story(line, title)
                           or (len(normalized) >= 10 and whole.startswith(normalized))):
            return True
    return False


def _is_label(line: str) -> bool:
    return len(line) <= LABEL_LINE and not _ends_sentence(line)


def _ends_sentence(line: str) -> bool:
    return line.endswith(tuple(_SENTENCE_END))


def _finished(line: str) -> str:
    """The line as a finished sentence, so nothing after it joins it (a list item gets 「。」 or ".")."""
    if _ends_sentence(line):
        return line
    return line + ("。" if _JAPANESE.search(line) else ".")


def _squash(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).lower().split())
