"""The offline writer: extractive summaries and the host's spoken segments (no keys, no network).

Summaries are correct by construction: every fact is a sentence (or, for English articles, a number,
a name or the title) taken from the article. The segment is spoken, not read: the article's written
style is turned into speech (〜しており → 〜していて, 〜という → 〜らしい, long sentences split at
their clauses, using OpenJTalk's morphemes), and the facts sit inside a structure modelled on the
reference episodes: what the thing is and why a new engineer should care, then the article's own
numbers and names, then a closer.

No sentence may be heard twice in an episode. Segments are written one at a time (index 0..total-1),
so every pool of stock lines (intros, explanations, reactions, closers) is read through one
permutation per pool and episode, at the segment's index: two segments never share a stock line,
and lines with the same function live in one pool, so they never stand back to back.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from zundacast.editorial import TITLE_MIN_JAPANESE
from zundacast.llm.prompts import segment_chars
from zundacast.models import Candidate, Summary, Usage
from zundacast.speech import sentence_ends_in_persona, split_sentences

OFFLINE = "offline"
FRAME_EXCESS_CHARS = 150
LABEL_MAX_CHARS = 6  # a headline part this short before a longer one is a label (「論文紹介」, 「速報」)
TITLE_MAX_CHARS = 40  # a spoken title the listener can hold in mind (about 5 seconds of speech)

_URL = re.compile(r"https?://\S+|www\.\S+")
_NUMBER = re.compile(r"\d")
_ASCII_NAME = re.compile(r"[A-Za-z][A-Za-z0-9.+#-]*[A-Za-z0-9+#]|[A-Za-z]")
_KATAKANA = re.compile(r"[ァ-ヺー]{3,}")
_KANJI = re.compile(r"[一-龥]{2,}")
_TRAILING = "。．.！？!?　 "
# The author's greeting or self-introduction would become the host's ("…の森川なのだ"): never pick it.
_GREETING = re.compile(r"^(こんにちは|こんばんは|おはよう|はじめまして|初めまして|どうも|皆さん|みなさん)")
_SELF_INTRO = re.compile(r"(チーム|部|課|室|グループ|ラボ|研究所|株式会社|社|エンジニア)の[^、。"
    r"「」]{1,10}(です|と申します|でございます)[。！!]?$")
# Bylines and datelines ("2025年7月24日 編集部", "文：山田太郎", "（記者：…）") are not the article.
_BYLINE = re.compile(
    r"^[（(]?\s*(?:\d{4}年)?\d{1,2}月\d{1,2}日(?:[（(][^）)]*[）)])?\s*(?:\d{1,2}:\d{2})?\s*"
    r"(?:[^\s。、]{0,12}(?:編集部|記者|ライター|著者|筆者))?\s*[）)]?[。]?$"
    r"|^[（(]?(?:文|写真|取材|執筆|記者|著者|編集|撮影|Text|Photo|By)\s*[：:/／]"
    r"|(?:編集部|記者|ライター)\s*[）)]?$")
_WHY_WORDS = ("重要", "大切", "期待", "可能に", "課題", "メリット", "注目", "役立", "便利", "恩恵")
_MARKUP = re.compile(r"[#*`|>\[\]{}<]|^[-・●■◆]")
_EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf]")


def _rng(seed: str) -> random.Random:
    return random.Random(int(hashlib.sha256(seed.encode()).hexdigest()[:16], 16))


def story_key(url: str) -> str:
    """What seeds an article's wording: its URL's path and query, not its host (the same article served
    from another host or port is worded the same, so its sentences are voiced from the cache)."""
    parts = urlsplit(url)
    return (parts.path + (f"?{parts.query}" if parts.query else "")) or url


def _slot(pool: Sequence[str], index: int, seed: str) -> str:
    """The pool's item for segment `index`: one permutation per pool and episode, read at the index.

    Segments of one episode have distinct indexes, so they never get the same item while the pool is
    at least as large as the episode (every pool here has more items than an episode has articles).
    """
    order = list(range(len(pool)))
    _rng(seed + "|" + pool[0]).shuffle(order)
    return pool[order[index % len(pool)]]


# --- persona endings ------------------------------------------------------------------------------------

_I_TO_A = dict(zip("きぎしちにびみりい", "かがさたなばまらわ", strict=True))


def _ta_form(stem: str, ctype: str) -> str | None:
    """Past plain form from the 連用形 (書き → 書いた) by conjugation type."""
    if ctype.startswith(("一段", "サ変", "カ変")):
        return stem + "た"
    rules = (("カ行イ音便", "いた"), ("カ行促音便", "った"), ("ガ行", "いだ"), ("タ行", "った"),
             ("ナ行", "んだ"), ("バ行", "んだ"), ("マ行", "んだ"), ("ラ行", "った"), ("ワ行促音便", "った"),
             ("ワ行ウ音便", "うた"))
    if ctype.startswith("五段・サ行"):
        return stem + "た"
    for marker, ending in rules:
        if ctype.startswith("五段") and marker in ctype:
            return stem[:-1] + ending
    return None


def _nai_stem(stem: str, orig: str, ctype: str) -> str | None:
    """The stem before ない (書き → 書か); None for ある, whose negative is just ない."""
    if orig == "ある":
        return None
    if ctype.startswith("一段"):
        return stem
    if ctype.startswith("サ変"):
        return stem[:-1] + "し" if stem.endswith("し") else "し"
    if ctype.startswith("カ変"):
        return "こ"
    if ctype.startswith("五段") and stem and stem[-1] in _I_TO_A:
        return stem[:-1] + _I_TO_A[stem[-1]]
    return None


_I_TO_U = dict(zip("きぎしちにびみりい", "くぐすつぬぶむるう", strict=True))


def _dictionary_form(stem: str, ctype: str) -> str | None:
    """Dictionary form from the 連用形 (使い → 使う, でき → できる), spelled like the sentence."""
    if ctype.startswith("一段"):
        return stem + "る"
    if ctype.startswith("サ変"):
        return stem[:-1] + "する" if stem.endswith("し") else None
    if ctype.startswith("カ変"):
        return "来る" if stem == "来" else "くる"
    if ctype.startswith("五段") and stem and stem[-1] in _I_TO_U:
        return stem[:-1] + _I_TO_U[stem[-1]]
    return None


def _plain_from_masu(sentence: str) -> str | None:
    """〜ます / ました / ません / ませんでした / ましょう → plain form, via OpenJTalk's morphemes."""
    from zundacast.voices.openjtalk import load_pyopenjtalk  # without its onnxruntime notice

    pyopenjtalk = load_pyopenjtalk()  # late: loads the dictionary; only sentences in です/ます need it

    nodes = [n for n in pyopenjtalk.run_frontend(sentence) if n["pos"] != "記号"]
    tail = [n["string"] for n in nodes]
    for verb_at in range(len(nodes) - 1, -1, -1):
        if nodes[verb_at]["pos"] == "動詞":
            break
    else:
        return None
    aux = "".join(tail[verb_at + 1:])
    verb = nodes[verb_at]
    stem, ctype, orig = verb["string"], verb["ctype"], verb["orig"]
    suffix = stem + aux
    if not sentence.endswith(suffix):
        return None
    head = sentence[: len(sentence) - len(suffix)]
    if aux in ("ます", "ましょう"):
        plain = _dictionary_form(stem, ctype)
        return head + plain if plain else None
    if aux == "ました":
        past = _ta_form(stem, ctype)
        return head + past if past else None
    if aux in ("ません", "ませんでした"):
        nai = _nai_stem(stem, orig, ctype)
        negative = "ない" if aux == "ません" else "なかった"
        if orig == "ある":
            return head + negative
        return head + nai + negative if nai is not None else None
    return None


def to_persona(sentence: str) -> str | None:
    """The sentence ending in のだ / なのだ, or None when its ending cannot be turned safely."""
    text = sentence.strip()
    mark = "！" if text.endswith(("！", "!")) else "。"
    core = text.rstrip(_TRAILING)
    if not core or core.endswith(("か", "？", "?")):
        return None
    if sentence_ends_in_persona(core):
        return core + mark
    core = re.sub(r"(です|ます|でした|ました|だ|た)(よ|ね|よね)$", r"\1", core)
    rules: list[tuple[str, str]] = [
        (r"(では|じゃ)ありませんでした$", "ではなかったのだ"),
        (r"(では|じゃ)ありません$", "ではないのだ"),
        (r"(の|ん)です$", "のだ"),
        (r"(の|ん)でした$", "のだった"),
        (r"(?<=[いしかた])です$", "のだ"),  # 高いです, 高かったです, ないです
        (r"でした$", "だったのだ"),
        (r"です$", "なのだ"),
        (r"でしょう$", "かもしれないのだ"),
        (r"だろう$", "かもしれないのだ"),
        (r"(の|ん)である$", "のだ"),
        (r"である$", "なのだ"),
        (r"であった$", "だったのだ"),
        (r"だった$", "だったのだ"),
        (r"(?<![のん])だ$", "なのだ"),
    ]
    for pattern, replacement in rules:
        if re.search(pattern, core):
            result = re.sub(pattern, replacement, core)
            if result.endswith("のだった"):
                result += "のだ"
            return (result if result.endswith("のだ") else result + "のだ") + mark
    if re.search(r"ま(す|した|せん|せんでした|しょう)$", core):
        plain = _plain_from_masu(core)
        return plain + "のだ" + mark if plain else None
    if core.endswith(("ください", "しょう", "たい")):
        return None
    last = core[-1]
    if last in "うくぐすつぬぶむるたいだ":  # plain verb, adjective or past: 〜するのだ, 〜高いのだ
        return core + "のだ" + mark
    if last in "」』）)" or re.match(r"[一-龥ァ-ヺーA-Za-z0-9]", last):  # a noun: 〜なのだ
        return core + "なのだ" + mark
    return None


# --- titles for speaking --------------------------------------------------------------------------------

_SITE_SEPARATOR = r"[|｜\-–—:：]"
# 【PDF】【速報】[動画]: tags for readers' eyes; a longer bracket (【ブラックフライデー先行】) is content.
_TAG_BRACKET = re.compile(r"【([^】]*)】|\[([^\]]*)\]|［([^］]*)］|〔([^〕]*)〕")
_TAGS = {"pdf", "速報", "動画", "pr", "更新", "追記", "独自", "解説", "特集", "連載", "写真", "画像", "図解",
         "インタビュー", "レポート", "ニュース", "news", "update", "updated", "video", "sponsored", "広告",
         "続報", "無料", "有料", "会員限定", "注目"}
# Where a headline splits into parts: colons, pipes, dashes used as separators, and the space a Japanese
# headline puts between its main line and its subline (a space between two Latin words is no break).
_TITLE_BREAK = re.compile(
    r"\s*[:：|｜]\s*|\s+[-–—―－]+\s*|\s*[―－]+\s*|\s+[-–—]+(?=\S)|(?<=[^\x00-\x7f])[\s\u3000]+"
)
_NOUN_END = re.compile(r"[一-龥ァ-ヺーA-Za-z0-9）)」』%]")


def _strip_site(title: str, sites: Iterable[str]) -> str:
    for site in filter(None, sites):
        site = site.strip()
        title = re.sub(rf"\s*{_SITE_SEPARATOR}\s*{re.escape(site)}\s*$", "", title)
        title = re.sub(rf"^{re.escape(site)}\s*{_SITE_SEPARATOR}\s*", "", title)
    title = re.sub(r"\s*[|｜]\s*[^|｜]{1,30}$", "", title)  # " | ITmedia NEWS", "｜Zenn"
    # " - GIGAZINE", " – The Verge": a short name after a spaced dash at the very end
    title = re.sub(r"\s+[-–—]\s+[A-Za-z][\w .&'-]{0,24}$", "", title)
    title = re.sub(r"\s+[-–—]\s+[^\s\-–—]{1,16}$", "", title)
    return title.strip()


def _untag(title: str) -> str:
    def keep(match: re.Match[str]) -> str:
        inner = next(group for group in match.groups() if group is not None).strip()
        if not inner or inner.lower() in _TAGS or len(inner) <= 3:
            return " "
        return f"{inner}、"  # part of the headline's main line

    return _TAG_BRACKET.sub(keep, title).strip(" 、")


_NUMBER_UNIT_END = re.compile(r"\d[\d,.]*\s*(?:[A-Za-z%％]+|[万億兆]?[円件人台社個倍点]|[分秒時間日年月]|ドル"
                              r"|(?:ミリ|キロ|メガ|ギガ)?(?:秒|グラム|メートル|ワット|バイト))$")


def _cut_japanese(text: str, limit: int) -> str:
    """At most `limit` characters, cut where a phrase ends (after 、 or before a particle)."""
    if len(text) <= limit:
        return text
    head = text[:limit + 1]
    # where a phrase ends: before a comma, but not one after a number and its unit that opens a list
    # (「消費電力5mW、推論遅延12msを達成」: both are what was reached); after a headline's ！？
    ends = [at for at, char in enumerate(head) if char in "、，" and not _NUMBER_UNIT_END.search(head[:at])]
    ends += [at + 1 for at, char in enumerate(head[:limit])
             if char in "！？!?" and head[at + 1] not in "！？!?"]
    end = max(ends, default=-1)
    if end >= limit // 2:
        return text[:end]
    # end on a noun: before the object or subject first; never before で or に (「メモリー高騰」 of
    # 「メモリー高騰で…値上げ」 is the cause, not the news)
    for particles in ("をがは", "と", "のも"):
        for end in range(limit, limit // 2, -1):
            if text[end] in particles and _NOUN_END.match(text[end - 1]):
                return text[:end]
    space = head.rfind(" ")
    if space >= limit // 2:
        return text[:space]
    return text[:limit]


def short_title(title: str, limit: int) -> str:
    """The title cut to at most `limit` characters where a phrase or word ends."""
    return _cut_japanese(title, limit) if _JAPANESE_CHAR.search(title) else _cut_words(title, limit)


def speakable_title(title: str, sites: Iterable[str] = (), limit: int = TITLE_MAX_CHARS) -> str:
    """The headline rewritten for speaking: no site suffix, tag brackets, colons or pipes; ≤ `limit` chars.

    A headline is cut into its parts (main line, subline, the part after a colon); the parts are kept in
    order while they fit, so the main line's key terms (names, version numbers) stay. Quotes become 『』
    because the host says the title inside 「」.
    """
    text = re.sub(r"[\s\u3000]+", " ", title).strip()
    text = _strip_site(text, sites)
    text = _untag(text)
    text = re.sub(r"[\s\u3000]+", " ", text).strip()
    if text and not _JAPANESE_CHAR.search(text):
        return english_title(text, limit)
    parts = [part.strip(" 、,-–—―") for part in _TITLE_BREAK.split(text)]
    parts = [part for part in parts if part]
    if not parts:
        return title.strip()[:limit]
    spoken = _cut_japanese(parts[0], limit)
    for part in parts[1:]:
        if part.isascii():  # an English subtitle after a colon reads as a second title: leave it
            break
        joiner = "、"
        if len(spoken) + len(joiner) + len(part) > limit or spoken != parts[0]:
            room = limit - len(spoken) - len(joiner)
            if spoken == parts[0] and len(spoken) <= LABEL_MAX_CHARS and room >= 12:
                # a label before the colon (「論文紹介：…」) is not the title: the main line follows, cut
                spoken = spoken + joiner + _cut_japanese(part, room)
            break
        spoken = spoken + joiner + part
        parts[0] = spoken
    if _kana_kanji_share(spoken) < TITLE_MIN_JAPANESE:
        # a head that is mostly Latin letters ("Kubernetes 1.36がリリース") says little in Japanese, though
        # the gate takes it (its japanese_share counts words): add the headline's next phrase, cut where
        # a phrase ends
        rest = parts[0][len(spoken):] if parts[0].startswith(spoken) and parts[0] != spoken else \
            next((part for part in parts[1:] if not part.isascii()), "")
        rest = rest.strip(" 、,")
        room = limit - len(spoken) - 1
        if rest and room >= 6:
            spoken = spoken + "、" + _cut_japanese(rest, room)
    spoken = spoken.replace("「", "『").replace("」", "』").strip(" 、,")
    return spoken.rstrip("-–—―:：|｜ ")


# --- English headlines: the names and numbers kept, said in a Japanese frame ---------------------------

_JAPANESE_CHAR = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
# Headline verbs and nouns of tech news, said in Japanese (longest phrase first where they overlap).
_EN_VERBS = (("open-sources", "オープンソース化"), ("open-sourced", "オープンソース化"), ("releases", "公開"),
             ("released", "公開"), ("release", "公開"), ("launches", "発表"), ("launched", "発表"),
             ("announces", "発表"), ("announced", "発表"), ("unveils", "発表"), ("unveiled", "発表"),
             ("introduces", "発表"), ("ships", "リリース"), ("shipped", "リリース"), ("shipping", "リリース"),
             ("raises", "調達"), ("acquires", "買収"), ("buys", "買収"), ("fixes", "修正"),
             ("patches", "修正"),
             ("adds", "追加"), ("brings", "導入"), ("cuts", "削減"), ("delays", "延期"), ("drops", "終了"),
             ("expands", "拡大"), ("updates", "更新"), ("debuts", "発表"), ("rolls out", "展開"))
_EN_NOUNS = (("open-weight model", "オープンウェイトモデル"), ("language model", "言語モデル"),
             ("model", "モデル"), ("chip", "チップ"), ("vulnerability", "脆弱性"), ("outage", "障害"),
             ("breach", "情報漏えい"), ("benchmark", "ベンチマーク"), ("framework", "フレームワーク"),
             ("database", "データベース"), ("browser", "ブラウザー"), ("agent", "エージェント"),
             ("compiler", "コンパイラ"), ("kernel", "カーネル"), ("server", "サーバー"),
             ("data center", "データセンター"), ("robot", "ロボット"), ("laptop", "ノートPC"),
             ("phone", "スマホ"), ("app", "アプリ"), ("update", "アップデート"), ("review", "レビュー"),
             ("startup", "スタートアップ"), ("funding", "資金調達"), ("security", "セキュリティ"),
             ("cloud", "クラウド"), ("GPU", "GPU"), ("API", "API"), ("study", "研究"), ("paper", "論文"))
_EN_STOP = {"a", "an", "the", "of", "to", "in", "on", "for", "and", "or", "with", "by", "at", "from", "that",
            "what", "we", "our", "is", "are", "its", "it", "how", "why", "new", "now", "as", "after", "than",
            "into", "about", "vs", "this", "you", "your"}
_NOUN_WORDS = {word for en, _ in _EN_NOUNS for word in en.lower().split()} | {
    f"{word}s" for en, _ in _EN_NOUNS for word in en.lower().split()}
_EN_TOKEN = re.compile(r"[A-Za-z0-9$][\w$.+/'%-]*[\w%+]|[A-Za-z0-9]|[,:;!?()]")


def _kana_kanji_share(text: str) -> float:
    """Kana and kanji among the text's letters and digits, counted one by one."""
    letters = [ch for ch in text if ch.isalnum()]
    return sum(1 for ch in letters if _JAPANESE_CHAR.match(ch)) / len(letters) if letters else 0.0


def _english_terms(text: str) -> tuple[list[str], bool, list[int]]:
    """The headline's names and numbers in order, runs joined ("Tern 2", "42 tokens/s"); whether the
    first is the subject (it opens the headline, a verb follows); the token position of each."""
    tokens = _EN_TOKEN.findall(text)
    verbs = {verb for verb, _ in _EN_VERBS}
    starts: list[int] = []  # the token position where each term starts
    terms: list[str] = []
    run: list[str] = []
    subject = False
    for position, token in enumerate(tokens):
        following = tokens[position + 1].lower() if position + 1 < len(tokens) else ""
        word = token.lower()
        # a name: inner capitals or digits (OpenHarbor, M5, 4-bit), or a capitalized word that is not a
        # headline's verb, noun or small word (Title Case headlines capitalize those too)
        named = bool(re.search(r"[A-Z0-9]", token[1:]) or re.search(r"\d", token)) or (
            token[:1].isupper() and word not in verbs and word not in _EN_STOP and word not in _NOUN_WORDS)
        if position == 0:
            subject = named and following in verbs  # "Apple releases …"; "Shipping a …" has none
        named = named or (bool(run) and token[:1].isupper())  # "Nothing Phone 3": one name
        unit = len(run) == 1 and re.fullmatch(r"[$]?\d[\d,.]*", run[-1]) is not None and \
            token.islower() and word not in _EN_STOP and word not in verbs and len(token) <= 10
        if (named or unit) and token not in ",:;!?()":
            if not run:
                starts.append(position)
            run.append(token)
            continue
        if run:
            terms.append(" ".join(run))
            run = []
    if run:
        terms.append(" ".join(run))
    return terms, subject, starts


def english_title(text: str, limit: int = TITLE_MAX_CHARS) -> str:
    """An English headline as a Japanese spoken title: its names and numbers kept (the gate checks them),
    the verb and head noun said in Japanese: 「OpenHarborがTern 2を公開、9B・6GBのモデルの話」."""
    found, subject, starts = _english_terms(text)
    unnamed = text
    for term in found:  # "Phone" in "Nothing Phone 3" is the name, not the story's noun
        unnamed = unnamed.replace(term, " ")
    lowered = f" {unnamed.lower()} "
    verb = next((ja for en, ja in _EN_VERBS if f" {en} " in lowered), "")
    nouns = [ja for en, ja in _EN_NOUNS if re.search(rf"\b{re.escape(en.lower())}s?\b", lowered)]
    terms = list(dict.fromkeys(found))
    if not terms:  # no name or number: the first words, framed as the English article they are
        return f"英語の記事『{_cut_words(text, limit - 9)}』の話"
    head, tail = "", terms
    if subject and verb:
        # the object is the name right after the verb ("releases Tern 2", "launches the M5 …")
        if len(found) > 1 and len(starts) > 1 and starts[1] <= starts[0] + 3:
            head, tail = f"{terms[0]}が{terms[1]}を{verb}", terms[2:]
        elif nouns:
            head, tail, nouns = f"{terms[0]}が{nouns[0]}を{verb}", terms[1:], nouns[1:]
        else:
            head, tail = f"{terms[0]}の{verb}", []
    variants = []
    for count in range(len(tail), -1, -1):
        listed = "・".join(tail[:count])
        lead = "、".join(filter(None, (head, listed)))
        for noun in [*nouns[:2], ""]:
            variants.append(f"{lead}の{noun}の話" if noun else f"{lead}の話")
    for variant in variants:
        if len(variant) <= limit:
            return variant
    return _cut_words(variants[-1], limit - 2).rstrip("、・ ") + "の話"


def _cut_words(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit + 1].rsplit(" ", 1)[0]
    return (cut if len(cut) >= limit // 2 else text[:limit]).rstrip(" ,:;-")


def spoken_title_of(candidate: Candidate) -> str:
    """The candidate's title as the host says it (see `speakable_title`)."""
    return speakable_title(candidate.title, (candidate.site_name, candidate.source)) or candidate.title


# --- written style → spoken style -----------------------------------------------------------------------

_WRITTEN_STARTS = (("ただし、", "ただ、"), ("なお、", "ちなみに、"), ("また、", "それと、"),
                   ("そのほか、", "ほかにも、"), ("加えて、", "それに、"), ("しかし、", "でも、"))
_WRITTEN_WORDS = ((re.compile(r"(?<=[てで])おり(?=[、，,])"), "いて"),  # 〜しており、→ 〜していて、
                  (re.compile(r"であり、"), "で、"), (re.compile(r"であるため"), "なので"),
                  (re.compile(r"(?<=[^\x00-\x7f])であるが、"), "だけど、"), (re.compile(r"皆さん|皆様"),
                      "みんな"),
                  (re.compile(r"(?:私たち|わたしたち|我々|僕ら)"), "筆者たち"),
                  (re.compile(r"^(?:私|わたし|僕)(?=[はがのもを])"), "筆者"))
_PAST = re.compile(r"(た|だった|ました|でした)(という|とみられる|ようだ|そうだ|らしい)?$")


def _frontend(text: str) -> list[dict[str, str]]:
    from zundacast.voices.openjtalk import load_pyopenjtalk  # without its onnxruntime notice

    pyopenjtalk = load_pyopenjtalk()  # late: loads the dictionary once, on the first spoken sentence
    return [node for node in pyopenjtalk.run_frontend(text) if node["pos"] != "記号"]


def _te_form(stem: str, ctype: str) -> str | None:
    past = _ta_form(stem, ctype)
    return past[:-1] + ("て" if past.endswith("た") else "で") if past else None


_I_E_ROW = set("いきぎしじちぢにひびぴみりえけげせぜてでねへべぺめれ")
_PARTICLE_VERBS = {"加え", "比べ", "対し", "関し", "基づき", "通じ", "伴い", "除き", "向け", "応じ", "際し",
    "沿い",
                   "含め", "始め", "つれ", "わたり", "おい", "つき", "当たり", "あたり", "並び", "限り",
                       "従い"}


def _clause_forms(prefix: str) -> tuple[str, str, str] | None:
    """A clause ending in the written 連用中止 before 、: (its te-form, present, past) from morphemes.

    「約4時間8分続き」→ (「…続いて」, 「…続く」, 「…続いた」); 「…料金は1,280円からで」→ (…で, …だ, …だった).
    None when the clause does not end in a verb, adjective or copula in that form.
    """
    nodes = _frontend(prefix)
    if len(nodes) < 2:
        return None
    last, before = nodes[-1], nodes[-2]
    word = last["string"]
    if not prefix.endswith(word):
        return None
    head = prefix[: len(prefix) - len(word)]
    if last["pos"] == "動詞" and last["orig"] == "おる" and before["string"] in ("て", "で"):
        return head + "いて", head + "いる", head + "いた"
    if last["pos"] == "動詞" and last["cform"] == "連用形" and word in _PARTICLE_VERBS:
        te = _te_form(word, last["ctype"])  # 〜に加え、→ 〜に加えて、 (a particle in meaning: never split)
        return (head + te, "", "") if te else None
    if last["pos"] == "名詞" and before["string"] in ("を", "に", "が") and word[-1:] in _I_E_ROW:
        # 「検索を組み合わせ、」: OpenJTalk reads a bare 連用形 as a noun; with ます it shows the verb
        probe = _frontend(word + "ます")
        if len(probe) >= 2 and probe[-2]["pos"] == "動詞" and probe[-2]["string"] == word:
            last = probe[-2]
    if last["pos"] == "助動詞" and word == "ず":  # 上がらず、→ 上がらなくて、
        return head + "なくて", head + "ない", head + "なかった"
    if last["pos"] == "動詞" and last["cform"] == "連用形":
        te, present, past = _te_form(word, last["ctype"]), _dictionary_form(word, last["ctype"]), \
            _ta_form(word, last["ctype"])
        if te and present and past:
            return head + te, head + present, head + past
        return None
    if last["pos"] == "助動詞" and word == "で" and last["ctype"].startswith("特殊・ダ"):
        return prefix, head + "だ", head + "だった"
    if last["pos"] in ("形容詞", "助動詞") and last["cform"].startswith("連用テ接続") and word.endswith("く"):
        stem = word[:-1]
        return head + word + "て", head + stem + "い", head + stem + "かった"
    return None


def outside_brackets(text: str, opens: str = "「『（(", closes: str = "」』）)") -> Iterator[tuple[int, str]]:
    """(position, character) of the text's characters outside its quotes and brackets."""
    depth = 0
    for position, char in enumerate(text):
        if char in opens:
            depth += 1
        elif char in closes:
            depth = max(0, depth - 1)
        elif depth == 0:
            yield position, char


def _commas_outside_quotes(sentence: str) -> list[int]:
    return [position for position, char in outside_brackets(sentence) if char == "、"]


# A sentence whose main predicate reports, claims or hedges (〜と発表した, 〜とみている, 〜としている,
# 〜を呼びかけている, 〜という, 〜可能性がある): its first clause belongs to what is reported, so it is
# never split off as a fact of its own.
_REPORTED = re.compile(
    r"(?:と|とも|との)[^、。]{0,10}(?:発表|公表|述べ|話し|話す|語|説明|指摘|強調|主張|分析|予想|予測|見込|報告"
    r"|報じ|伝え|明か|発言|回答|答え|コメント|評価|結論|みて|見て|みら|見ら|考え|いう|いわれ|言われ|され"
    r"|明らかに|示し|訴え|警告|要請|呼びかけ|求め|記し|書い|判断|認め)[^、。]{0,10}$"
    r"|(?:とし|としてい|と|とも)(?:た|る|ている|ていた)$"
    r"|(?:呼びかけ|明らかにし|注意を促し|要請し|求めてい|訴えてい|警告し)[^、。]{0,8}$"
    r"|(?:という|とのこと|らしい|そうだ|ようだ|ようだった|可能性がある|可能性もある|おそれがある|恐れがある"
    r"|方針だ|方針である|予定だ|予定である|計画だ|計画である|見込みだ|見込みである|考えだ|意向だ)$"
)
# A date or time said once for the whole sentence (「同社は12月5日、…」「今後、…」): splitting would leave it
# on the first clause only, or move it onto one it does not belong to.
_SENTENCE_TIME = re.compile(
    r"(?:\d{1,2}月\d{1,2}日|\d{4}年\d{1,2}月|\d{1,2}日|\d{1,2}時\d{0,2}分?|今月|先月|来月|今年|昨年|来年|同日"
    r"|当日|今後|現在|現時点|現地時間[^、。]{0,12}|[月火水木金土日]曜日?|午前|午後|昨日|今日|明日)"
    r"(?:に|には|から|まで|以降|にかけて|ごろ|頃|時点で|夜|朝)?、")
# Perfect and progressive endings: a clause split off a sentence in 〜ている/〜ていた is said in the past.
_PERFECT = re.compile(r"(?:てい|でい)(?:る|た)$")


def _splittable(core: str) -> bool:
    """Whether splitting the sentence at its clauses keeps its facts (when unsure: no)."""
    return not _REPORTED.search(core) and not _SENTENCE_TIME.search(core)


def _spoken_clauses(sentence: str, split_over: int = 58) -> list[str]:
    """The sentence in spoken form, split into shorter sentences where a long one chains its clauses."""
    core = sentence.rstrip(_TRAILING)
    mark = sentence[len(core):].strip()[:1] or "。"
    past = bool(_PAST.search(core) or _PERFECT.search(core))
    splittable = _splittable(core)
    pieces: list[str] = []
    start = 0
    commas = _commas_outside_quotes(core)
    for comma in commas:
        forms = _clause_forms(core[start:comma])
        if forms is None:
            continue
        te, present, finite_past = forms
        rest = core[comma + 1:]
        long_enough = (splittable and bool(present) and len(core) - start > split_over and comma - start >= 15
                       and len(rest) >= 15)
        if long_enough:
            pieces.append((finite_past if past else present) + "。")
            start = comma + 1
        else:
            core = core[:start] + te + core[comma:]  # 続き、→ 続いて、
            shift = len(te) - (comma - start)
            commas = [c + shift for c in commas]
    pieces.append(core[start:] + mark)
    return pieces


def spoken_style(sentence: str) -> list[str]:
    """An article's sentence as the host says it: written forms turned into speech, long ones split."""
    text = sentence.strip()
    for written, spoken in _WRITTEN_STARTS:
        if text.startswith(written):
            text = spoken + text[len(written):]
    for pattern, spoken in _WRITTEN_WORDS:
        text = pattern.sub(spoken, text)
    return _spoken_clauses(_plain_before_but(text))


_POLITE_BUT = re.compile(r"(ました|ます|でした|です)(?:が|けど)、")


def _plain_before_but(text: str) -> str:
    """Mid-sentence です/ます before が、 in the plain form (〜上がりましたが、→ 〜上がったけど、)."""
    done = 0
    while match := _POLITE_BUT.search(text, done):
        head, polite = text[: match.start()], match.group(1)
        if polite == "です":
            plain: str | None = head if head.endswith("い") else head + "だ"
        elif polite == "でした":
            plain = head + "だった"
        else:
            plain = _plain_from_masu(head + polite)
        if plain is None:
            done = match.end()
            continue
        text = plain + "けど、" + text[match.end():]
        done = len(plain) + 3
    return text


_ENDINGS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"とのことだ$|とのことです$"), "らしいのだ"),
    (re.compile(r"だという$"), "らしいのだ"),
    (re.compile(r"という$"), "らしいのだ"),
    (re.compile(r"(?<=[るたい])そうだ$"), "らしいのだ"),  # hearsay: 高いそうだ → 高いらしい
    (re.compile(r"が期待されている$|が期待される$"), "が期待できそうなのだ"),
    (re.compile(r"と期待されている$|と期待される$"), "と期待されているみたいなのだ"),
    (re.compile(r"と話す$"), "と話しているのだ"),
    (re.compile(r"と語る$"), "と語っているのだ"),
    (re.compile(r"と(指摘|説明|強調|コメント|評価|分析)する$"), r"と\1しているのだ"),
    (re.compile(r"とみられる$"), "とみられているのだ"),
)


def host_sentence(sentence: str) -> str | None:
    """One finished spoken sentence in the host's voice (ending in のだ / なのだ), or None."""
    text = sentence.strip()
    mark = "！" if text.endswith(("！", "!")) else "。"
    core = text.rstrip(_TRAILING)
    for pattern, ending in _ENDINGS:
        if pattern.search(core):
            return pattern.sub(ending, core) + mark
    if re.search(r"(?<![のん])のだ$", core) and not re.search(r"(?:[たるいう]|な)のだ$", core):
        return core[:-1] + "なのだ" + mark  # 〜ものだ: the noun もの before だ, not the host's のだ yet
    return to_persona(core + mark)


# --- extraction -----------------------------------------------------------------------------------------


def _is_english(candidate: Candidate, text: str) -> bool:
    if candidate.language.startswith("en"):
        return True
    sample = text[:2000]
    japanese = sum(1 for ch in sample if "\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff")
    return bool(sample) and japanese < len(sample) * 0.05


def _keywords(title: str) -> set[str]:
    words = set(_ASCII_NAME.findall(title)) | set(_KATAKANA.findall(title)) | set(_KANJI.findall(title))
    return {word for word in words if len(word) >= 2}


def _not_the_article(sentence: str) -> bool:
    """Bylines, datelines, the author's greeting or self-introduction: said by nobody on the show."""
    return bool(_GREETING.match(sentence) or _SELF_INTRO.search(sentence) or _BYLINE.search(sentence.strip()))


def _clean_sentences(text: str) -> list[str]:
    """The article's sentences a host can say; one that leans on the sentence before it (「これでは…」)
    only when that one is kept too (else 「これ」 would point at something never said)."""
    sentences = []
    kept_previous = False
    for sentence in split_sentences(text, max_chars=400):
        sentence = sentence.strip()
        if sentence.startswith("#"):  # a subheading: structure, not a sentence the next one leans on
            continue
        keep = (15 <= len(sentence) <= 130 and not _not_the_article(sentence) and _speakable(sentence)
                and sentence[-1] in "。！!" and (kept_previous or not _LEANS_ON_BEFORE.search(sentence)))
        if keep:
            sentences.append(sentence)
        kept_previous = keep
    return sentences


def _score(sentence: str, position: int, keywords: set[str]) -> float:
    score = 1.0 / (1 + position * 0.15)  # the lead of an article says what it is about
    score += min(len(_NUMBER.findall(sentence)), 4) * 0.5
    score += sum(1.0 for word in keywords if word in sentence)
    score += min(len(_ASCII_NAME.findall(sentence)), 3) * 0.3
    if to_persona(sentence) is None:
        score -= 3.0
    return score


_LEANS_ON_BEFORE = re.compile(
    r"^(?:これ|この|それ|その|そこで|そのため|ただ|一方|しかし|でも|つまり|このため)"
    r"|(?:ためだ|からだ|ためである|からである)[。！]$")


SUMMARY_MAX_CHARS = 1250  # the article's sentences a segment can hold (segment_chars for three articles)
# A cap in sentences too (the gate allows 40 per segment, the host adds about 8): news written in short
# sentences (40 characters, not the sample day's 75) still fills its segment from the characters it holds.
SUMMARY_MAX_SENTENCES = 24


def _summarize_japanese(candidate: Candidate, text: str) -> Summary:
    keywords = _keywords(candidate.title)
    sentences = _clean_sentences(text)
    ranked = sorted(range(len(sentences)), key=lambda i: -_score(sentences[i], i, keywords))
    usable = {i for i, sentence in enumerate(sentences)
              if to_persona(sentence) is not None and host_sentence(sentence) is not None}
    chosen: set[int] = set()
    used = 0
    for index in ranked:
        if index not in usable or index in chosen:
            continue
        # A sentence that leans on the one before it (「〜ためだ。」「これで…」) comes with it, or not at all.
        group = [index]
        if _LEANS_ON_BEFORE.search(sentences[index]) and index - 1 not in chosen:
            if index - 1 not in usable:
                continue
            group = [index - 1, index]
        cost = sum(len(sentences[i]) for i in group)
        if used + cost > SUMMARY_MAX_CHARS or len(chosen) + len(group) > SUMMARY_MAX_SENTENCES:
            continue
        chosen.update(group)
        used += cost
    picked = [sentences[i] for i in sorted(chosen)]
    why = next((s for s in reversed(picked[1:]) if any(word in s for word in _WHY_WORDS)), "")
    rest = [s for s in picked if s != why]
    summary_part = rest[: max(3, len(rest) - 4)] if len(rest) > 4 else rest
    key_points = [s for s in rest if s not in summary_part]
    if not picked:  # nothing speakable: fall back to the feed's description
        summary_part = [candidate.feed_summary or candidate.title]
    return Summary(
        url=candidate.url, source=candidate.source, title=candidate.title,
        spoken_title=spoken_title_of(candidate), summary="".join(summary_part), key_points=key_points,
        why_it_matters=why, language=candidate.language, writer=OFFLINE,
    )


_EN_STOPWORDS = "of|the|and|to|in|on|for|a|an|with|by|at|from|or|is|are|was|were|per|than"
# A number with its unit or noun ("4,800 TOPS", "$3.2 billion", "14 companies"): a comma only between
# groups of three digits ("2027, giving" is a year and a verb), and the word after it no verb or adverb.
_EN_NUMBER_FACT = re.compile(
    r"(?<![\w.])(?:\$\s?)?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
    r"(?:%|x\b|×|[KMBT]\b|-bit\b| ?ms\b| ?GB\b| ?MB\b| ?TB\b)?"
    rf"(?:[ -](?!(?:{_EN_STOPWORDS})\b)(?![a-z]+(?:ing|ed|ly)\b)(?:[a-z][a-z/]{{2,}}|[A-Z]{{2,}}s?\b))?"
)
_EN_UNITS = {"GB", "MB", "KB", "TB", "MS", "OK", "US", "UK", "AM", "PM", "II", "III"}
_EN_STARTERS = {  # capitalized only because they start a sentence
    "The", "We", "It", "This", "Our", "In", "Last", "On", "For", "At", "As", "But", "And", "When", "If",
    "To", "That", "These", "Those", "With", "By", "After", "Before", "A", "An", "One", "Two", "First",
    "Second", "Finally", "However", "Today", "Here", "There", "What", "Why", "How", "You", "They", "Its",
    "Each", "Every", "All", "Some", "Most", "More", "So", "Then", "Also",
}
_EN_NAME = re.compile(r"\b[A-Z][A-Za-z0-9]*(?:[-.][A-Za-z0-9]+)*\b")


def _english_names(text: str) -> list[str]:
    """Product, company and model names: capitalized words the text never writes in lower case."""
    counts: dict[str, int] = {}
    lowered = set(re.findall(r"\b[a-z][a-z0-9-]*\b", text[:8000]))
    for name in _EN_NAME.findall(text[:8000]):
        if name in _EN_STARTERS or name.upper() in _EN_UNITS or len(name) < 2 or name.lower() in lowered:
            continue
        counts[name] = counts.get(name, 0) + 1
    return [name for name, count in sorted(counts.items(), key=lambda item: -item[1]) if count >= 2]


_EN_FACT_LINES = ("記事には「{}」という数字が出てくるのだ。", "「{}」という数字も書いてあるのだ。",
                  "それから、「{}」という数字もあるのだ。", "さらに、「{}」という数字も登場するのだ。",
                  "「{}」という数字も紹介されているのだ。", "「{}」という値も出てくるのだ。",
                  "ほかに「{}」という数字もあるのだ。", "最後に、「{}」という数字もあるのだ。")


def _summarize_english(candidate: Candidate, text: str) -> Summary:
    """No translation offline: Japanese sentences built around the article's own numbers and names."""
    title = spoken_title_of(candidate)
    site = candidate.site_name or candidate.source
    names = [name for name in _english_names(text) if name not in site.split()][:5]
    facts: list[str] = []
    numbers_said: set[str] = set()
    for match in _EN_NUMBER_FACT.finditer(text[:8000]):
        fact = match.group(0).strip(" ,.-")
        if re.search(r"[A-Z][\w.-]*[ -]$", text[max(0, match.start() - 24):match.start()]):
            continue  # "Tern 2 runs", "Apache 2.0 license", "PostgreSQL 17": the number is part of a name
        number = re.sub(r"[^\d.]", "", re.match(r"\$?\s?[\d,.]+", fact).group(0))  # type: ignore[union-attr]
        if (not re.fullmatch(r"(19|20)\d\d", fact) and re.search(r"[^\d,.]", fact)
                and number not in numbers_said):
            facts.append(fact)
            numbers_said.add(number)  # "4-bit precision" and "4-bit version": one fact
    about = f"で、{'や'.join(names[:2])}が出てくるお話" if names else ""
    summary = f"これは{site}に載っていた英語の記事{about}なのだ。"
    key_points = []
    if names:
        key_points.append(f"記事によく出てくる名前は、{'、'.join(names)}なのだ。")
    for index, fact in enumerate(facts[: len(_EN_FACT_LINES)]):
        key_points.append(_EN_FACT_LINES[index].format(fact))
    return Summary(
        url=candidate.url, source=candidate.source, title=candidate.title, spoken_title=title,
        summary=summary, key_points=key_points, why_it_matters="", language="en", writer=OFFLINE,
    )


_AUTHOR_FIRST_PERSON = re.compile(r"^(?:私たち|わたしたち|我々|私|わたし|僕ら|僕)(?=[はがのもを])")


def _speakable(sentence: str) -> bool:
    """Japanese prose without links or markup (an English sentence or a URL never reaches the voice)."""
    letters = sum(1 for ch in sentence if ch.isascii() and ch.isalpha())
    return (not _URL.search(sentence) and not _MARKUP.search(sentence) and not _EMOJI.search(sentence)
            and letters <= len(sentence) * 0.4)


# --- what the thing is, and why a new engineer should care ------------------------------------------------


@dataclass(frozen=True)
class Concept:
    """A term the host explains before the article's details: what it is, then an everyday picture."""

    pattern: str
    name: str
    explanations: tuple[str, ...]  # one is picked by segment index, so two segments never say the same
    picture: str
    topic: str  # which "why it matters" pool fits


CONCEPTS: tuple[Concept, ...] = (
    Concept(r"投機的デコーディング|Speculative Decoding", "投機的デコーディング", (
        "投機的デコーディングは、小さなモデルに先回りして続きを予想させて、大きなモデルはその答え合わせを"
        "まとめてするだけにする高速化の工夫なのだ。",),
            "下書き係が先に何行か書いて、先生がまとめて赤ペンを入れるようなイメージなのだ。", "speed"),
    Concept(r"RAG|検索拡張生成", "RAG", (
        "RAGは、AIが答える前に関係のある資料を探してきて、それを読みながら答えを作る仕組みなのだ。",
        "RAGっていうのは、検索とAIの文章づくりを組み合わせて、手元の資料にもとづいた答えを出す方法なのだ。"),
            "テストで教科書の持ち込みが許されていて、調べてから答えるようなものなのだ。", "ai"),
    Concept(r"AIエージェント|エージェント", "AIエージェント", (
        "AIエージェントは、質問に答えるだけじゃなくて、"
            "道具を使いながら自分で手順を考えて仕事を進めるAIのことなのだ。",
        "AIエージェントっていうのは、チャットで返事をするだけでなく、"
            "ほかのシステムを操作して作業までこなすAIなのだ。"),
            "指示を待つだけのアシスタントが、段取りまで考える頼れる先輩になったようなものなのだ。", "ai"),
    Concept(r"TypeScript", "TypeScript", (
        "TypeScriptは、JavaScriptに「型」の仕組みを足したプログラミング言語で、ウェブ開発の定番なのだ。",),
            "変数に「ここには数字だけ」っていう名札を付けておくから、動かす前に間違いに気づける仕組みなのだ。",
                "tools"),
    Concept(r"型チェック|コンパイラ", "型チェック", (
        "型チェックっていうのは、プログラムを動かす前に、"
            "データの種類の食い違いがないかを機械が調べてくれる作業なのだ。",),
            "提出前に、書類の書き漏れを係の人に確かめてもらうのと同じ発想なのだ。", "tools"),
    Concept(r"npm|パッケージ", "npm", (
        "npmは、JavaScriptの部品、つまりパッケージを公開したりインストールしたりするための仕組みなのだ。",),
            "世界中の人が部品を持ち寄る、大きな共有の道具箱みたいなものなのだ。", "security"),
    Concept(r"DNS", "DNS", (
        "DNSは、サーバーの名前を、コンピューターどうしが使う住所の番号に置きかえる仕組みなのだ。",),
            "電話帳が急に白紙になったら、だれにも電話をかけられなくなる、それくらい土台の部分なのだ。",
                "ops"),
    Concept(r"事後報告書|ポストモーテム|障害", "ポストモーテム", (
        "ポストモーテムは、障害のあとで、何が起きて、なぜ防げなかったのかをまとめる振り返りの報告書なのだ。"
            "",),
            "だれかを責めるためじゃなくて、仕組みのどこに穴があったかを見つけるための反省会なのだ。", "ops"),
    Concept(r"GPUインスタンス|GPUクラウド|B300|H100|H200", "GPUクラウド", (
        "GPUクラウドは、AIの計算に欠かせないGPUを、自分で買わずに時間単位で借りられるサービスなのだ。",),
            "高い工作機械を買う代わりに、使う時間だけレンタルするような感覚なのだ。", "infra"),
    Concept(r"量子化|[Qq]uantiz[a-z]*", "量子化", (
        "量子化は、モデルの中の数字の細かさを落として、サイズを小さく、計算を軽くする技術なのだ。",),
            "写真の画質を少しだけ落として、ファイルをぐっと小さくするのと同じ考え方なのだ。", "ai"),
    Concept(r"[Oo]n-device|オンデバイス", "オンデバイスAI", (
        "オンデバイスAIは、データをクラウドに送らずに、スマホやパソコンの中だけでAIを動かすことなのだ。",),
            "調べものをするのに、図書館まで行かずに手元の辞書で済ませるようなものなのだ。", "ai"),
    Concept(r"LLM|大規模言語モデル|言語モデル|language model", "LLM", (
        "LLM、つまり大規模言語モデルは、たくさんの文章から学んで、"
            "次に来る言葉を予想しながら文章を作るAIなのだ。",
        "大規模言語モデルは、チャットAIの頭脳にあたる部分で、"
            "言葉を一つずつ選びながら答えを組み立てているのだ。"),
            "ものすごく本を読んだ人が、話の続きを上手に考えてくれるようなものなのだ。", "ai"),
    Concept(r"KVキャッシュ", "KVキャッシュ", (
        "KVキャッシュは、AIがそれまでに読んだ言葉の計算結果を取っておいて、"
            "同じ計算をくり返さないためのメモなのだ。",),
            "一度解いた問題の答えをノートに書いておけば、次は見るだけで済むのと同じなのだ。", "speed"),
    Concept(r"推論エンジン|推論サーバー", "推論エンジン", (
        "推論エンジンは、学習ずみのAIモデルを動かして、みんなの質問に答えを返すためのソフトウェアなのだ。",),
            "レシピがあっても厨房が回らないと料理は出てこない、その厨房にあたるのがこれなのだ。", "speed"),
    Concept(r"クラウド|リージョン", "クラウド", (
        "クラウドは、自分でサーバーを持たずに、"
            "事業者のコンピューターを必要な分だけ借りて使うサービスなのだ。",),
            "自分で発電所を持たずに、コンセントから電気を使うのに近い感覚なのだ。", "infra"),
    Concept(r"セール|値下げ|値引き", "セール", (
        "セールは、お店が期間を決めて、ふだんより安い値段で売ることなのだ。",),
            "道具にこだわる職人さんみたいに、エンジニアも手元の機材で作業のしやすさが変わるのだ。", "gadget"),
)

_WHY_CARE: dict[str, tuple[str, ...]] = {
    "ai": (
        "新人エンジニアのみんなも、AIを組み込んだ機能を作る場面がこれから増えるから、"
            "知っておいて損はない話なのだ。",
        "仕組みを少し知っておくだけで、AIの得意なことと苦手なことが見分けやすくなるのだ。",
        "AIを使う側から作る側に回ったとき、こういう知識がそのまま武器になるのだ。",
        "AIの世界は動きが速いから、新しい言葉に出会ったら一度は中身を確かめておくといいのだ。",
        "仕組みがわかると、AIの答えをうのみにしないで、自分で確かめる目も育つはずなのだ。",
    ),
    "speed": (
        "処理が速くなると、同じサーバーでたくさんの人をさばけるから、お金の節約にもそのままつながるのだ。",
        "どこが遅さの原因なのかを考えるくせは、どんなシステムを作るときにも役に立つのだ。",
        "ユーザーを待たせない工夫は、新人エンジニアでも最初に向き合うテーマなのだ。",
        "速さの秘密を知っておくと、自分のサービスの設定を見直すときのいいヒントなのだ。",
        "ボトルネックを見つけて手を打つ考え方は、AIに限らずエンジニアの基本なのだ。",
    ),
    "tools": (
        "毎日使う道具が速くなると、待ち時間が減って、考えることに時間を使えるようになるのだ。",
        "新人エンジニアのみんなが最初に触る道具の話だから、変わるところは押さえておきたいのだ。",
        "開発ツールのアップデートは、チーム全員の作業に関わるから見逃せないのだ。",
        "道具の仕組みがわかると、エラーが出たときにも落ち着いて対処できるのだ。",
        "ふだん何気なく使っているコマンドの裏側を知るのは、けっこう楽しいのだ。",
    ),
    "security": (
        "自分のパソコンや会社のCIにも関わる話だから、新人のうちから他人事にしないでほしいのだ。",
        "便利な部品をたくさん使うほど、その部品が安全かどうかを気にする必要があるのだ。",
        "いつもの手順のなかに、思わぬ入り口がひそんでいることがあるのだ。",
        "攻撃の手口を知っておくと、怪しいメールやサイトに気づきやすくなるのだ。",
        "セキュリティは専門の人だけの仕事じゃなくて、コードを書く全員の仕事なのだ。",
    ),
    "ops": (
        "障害はどんなに気をつけていても起きるものだから、そのあとにどう立て直すかを学ぶのが大事なのだ。",
        "よその会社の失敗から学べるのは、とってもありがたいことなのだ。",
        "サービスを止めない仕組みづくりは、新人エンジニアもいずれ関わる大切な仕事なのだ。",
        "小さな設定ミスが大きな障害につながる流れは、どの現場でも起こりうる話なのだ。",
        "振り返りの書き方を知っておくと、自分がミスをしたときにも役に立つのだ。",
    ),
    "infra": (
        "どこでどんな計算資源を借りられるかを知っておくと、作れるものの幅が広がるのだ。",
        "AIの開発には計算資源とお金の両方がかかるから、選び方はとっても大事なのだ。",
        "データをどこに置くかは、会社のルールにも関わる大事なポイントなのだ。",
        "インフラの値段や性能の話は、サービスの設計を考えるときの土台になるのだ。",
        "新人エンジニアでも、見積もりの場面でこういう数字を聞くことがあるのだ。",
    ),
    "gadget": (
        "毎日使う機材が変わると、作業のしやすさもけっこう変わるのだ。",
        "値段だけで選ばずに、自分の使い方に合うかを考えるのが大事なのだ。",
        "仕事道具を上手にそろえるのも、エンジニアの腕のうちなのだ。",
        "セールの時期は、ふだんの値段と比べる目を持っておきたいのだ。",
        "必要なものを見きわめる力は、技術選びにも通じるのだ。",
    ),
    # a story about business, law or prices (no technical concept): nothing about learning technology
    "news": (
        "こういうニュースを追っておくと、先輩との会話にもついていきやすくなるのだ。",
        "業界の動きを知っておくと、自分の仕事がどこにつながっているのか見えやすくなるのだ。",
        "技術の外側の話でも、エンジニアの仕事にあとから関わってくることがあるのだ。",
        "ニュースの背景を知っておくと、ほかの記事も読みやすくなるのだ。",
        "世の中のルールやお金の流れも、作るものを左右する大事な要素なのだ。",
    ),
    "general": (
        "新人エンジニアのみんなにとっても、身近な仕事につながっている話題なのだ。",
        "こういうニュースを追っておくと、先輩との会話にもついていきやすくなるのだ。",
        "技術の流れを知っておくと、次に何を勉強するか決めやすくなるのだ。",
        "知らない言葉が出てきたら、こうして一つずつ確かめていけば大丈夫なのだ。",
        "現場の工夫を知るのは、自分の仕事を見直すきっかけにもなるのだ。",
    ),
}

# Stock lines by function. A segment takes at most one line of each pool, at its slot.
_ASK = ("みんなは「{term}」って聞いたことあるのだ？", "「{term}」って、どんなものか説明できるのだ？",
        "まずは「{term}」のおさらいから始めるのだ。", "このお話のカギは「{term}」なのだ。",
        "本題の前に、「{term}」のことを少し整理しておくのだ。",
            "ここで出てくる「{term}」について、先に話しておくのだ。")
_TO_DETAILS = ("それじゃあ、記事の中身を詳しく見ていくのだ。",
    "ここからは、記事に書かれていることを順番に紹介するのだ。",
               "前置きはこれくらいにして、本題に入るのだ。",
                   "では、具体的に何が書かれているのか見てみるのだ。",
               "さて、記事の中身に入っていくのだ。", "ここから、記事の具体的な話なのだ。")
_NUMBER_REACTIONS = ("数字で見ると、違いがはっきりわかるのだ！", "これはかなり大きな変化なのだ！",
                     "ここ、びっくりするところなのだ！", "思っていたより、ずっと大きな差なのだ！",
                     "この数字は覚えておきたいのだ！", "ここの数字には注目なのだ！")
_ARTICLE_POINT = ("記事の中で、ぼくがいちばん大事だと思ったのはここなのだ。",
    "そして、この記事のポイントはここなのだ。",
                  "ここは、ぜひ覚えておいてほしいところなのだ。",
                      "最後に、記事が伝えたいことをまとめるのだ。",
                  "ぼくが特に心に残ったのは、この部分なのだ。",
                      "もうひとつ、記事で目にとまったところを紹介するのだ。")
_CLOSERS = ("ぼくも、ずんだ餅の仕込みにこういう工夫を取り入れてみたいのだ！",
            "知れば知るほど奥が深い話なのだ！",
            "明日からの仕事に、ひとつヒントをもらえた気がするのだ！",
            "みんなの現場だったら、どう活かせそうなのだ？",
            "気になった人は、週末にでも元の記事をじっくり読んでみてほしいのだ。",
            "これからどう広がっていくのか、ぼくも追いかけていくのだ！",
            "裏側の仕組みを知ると、いつもの道具がちょっと違って見えるのだ。")
# Closers for a story about business, law or prices: no 「現場でどう活かせそう」, no ずんだ餅 workshop joke.
_NEWS_CLOSERS = ("この先どうなるのか、続報にも注目なのだ！",
                 "気になった人は、週末にでも元の記事をじっくり読んでみてほしいのだ。",
                 "これからどう広がっていくのか、ぼくも追いかけていくのだ！",
                 "ニュースの裏にある流れを、これからも一緒に見ていくのだ！",
                 "ぼくも、もう少し詳しく調べてみたくなったのだ！",
                 "身近なところにどう関わってくるのか、考えてみるのも面白いのだ。",
                 "知れば知るほど奥が深い話なのだ！",
                 "数字の裏にある動きを知ると、ニュースがぐっと身近になるのだ。")
# A story about money, law or the market rather than how something works (its title or lead says so).
_NOT_TECHNICAL = re.compile(
    r"決算|営業利益|純利益|売上高|増収|増益|減収|減益|業績|株価|時価総額|上場|買収|出資|資金調達|人員削減|解雇"
    r"|閣議決定|法案|改正案|法律|条例|規制|省令|政府|国会|文化庁|総務省|経済産業省|著作権|裁判|訴訟|判決"
    r"|発売|価格|値上げ|値下げ|円から|税込|予約|セール")


def _said_up_front(pattern: re.Pattern[str], title: str, text: str) -> bool:
    """Whether the title or the lead (the text's first sentence, its first 200 characters) says it."""
    sentences = split_sentences(text.strip(), max_chars=400) if text.strip() else []
    lead = sentences[0] if sentences else ""
    return bool(pattern.search(title) or pattern.search(lead[:200]))


def is_technical(title: str, text: str = "") -> bool:
    """Whether the story is about how something works (a release, a method, an experiment), not about
    earnings, law, a product's launch or price: only then do lines about learning technology fit."""
    return not _said_up_front(_NOT_TECHNICAL, title, text)


# Bad news gets sober lines: no cheer, no joke, no 「どう活かせそう」 (a hospital's ransomware, a layoff).
_SOBER_CLOSERS = ("関係がありそうな人は、元の記事や公式の発表で詳しいことを確かめてほしいのだ。",
                  "続報が出たら、また落ち着いて伝えたいのだ。",
                  "他人事と思わずに、自分の現場でも同じことが起きないか考えておきたいのだ。",
                  "こういうときこそ、正しい情報を落ち着いて追いかけることが大事なのだ。",
                  "自分の身の回りで確かめておけることがないか、一度見直してみてほしいのだ。",
                  "大事なお話だから、元の記事もぜひ読んでおいてほしいのだ。",
                  "影響を受けた人たちのことを考えると、しっかり受け止めたいニュースなのだ。",
                  "ぼくも、この先どうなるのか、きちんと見ていくのだ。")
_SOBER_WHY = ("何が起きたのかを正しく知っておくのが、同じことをくり返さない第一歩なのだ。",
              "よその出来事でも、自分の仕事に置きかえて考えておくと、いざというときに慌てずに済むのだ。",
              "こういうときこそ、うわさより事実を確かめるのが大事なのだ。",
              "新人エンジニアのみんなも、他人事にしないで聞いてほしいお話なのだ。",
              "少し重いお話だけど、知っておいてほしいことなのだ。",
              "起きたことと、これからの対応を分けて聞いてほしいのだ。",
              "ニュースの向こうには、困っている人がいることも忘れないでいたいのだ。",
              "同じ仕組みを使っている現場なら、どこでも起こりうるお話なのだ。")
# What makes a story bad news, said in its title or lead.
_BAD_NEWS = re.compile(
    r"流出|漏えい|漏洩|情報漏|不正アクセス|不正ログイン|脆弱性|ランサムウェア|マルウェア|サイバー攻撃|攻撃を受け"
    r"|被害|乗っ取|人員削減|人員整理|解雇|リストラ|レイオフ|希望退職|早期退職|\d[\d,]*人(?:を|の)?(?:削減|解雇)"
    r"|障害|停止(?!機能)|不具合|つながりにくく|死亡|死者|事故|けが人|負傷|値上げ|価格改定|訴訟|提訴|罰金|制裁金"
    r"|課徴金|業務停止|行政処分|破綻|倒産|経営難|赤字|減益|減収|詐欺|フィッシング|リコール|炎上|逮捕"
    r"|不正(?:利用|送金|会計|請求|取得|持ち出し)"
    r"|CVE-\d|(?i:breach|leak|hack(?:ed|ers?)|layoffs?|lays? off|laid off|job cuts|cuts? jobs|outage"
    r"|vulnerabilit|exploit|ransomware|malware|lawsuit|sued|\bfined?\b|penalty|recall|killed|\bdead\b|death|crash(?:ed|es)?\b"
    r"|price (?:hike|increase)|raises? prices)")


def is_bad_news(title: str, text: str = "") -> bool:
    """Whether the story is bad news (a breach, an attack, a vulnerability, layoffs, an outage, a death or
    an accident, a price rise, a lawsuit, a fine), from its title and its lead (the text's first sentence):
    the host says it with sober lines only, and an episode with bad news does not close on cheer."""
    return _said_up_front(_BAD_NEWS, title, text)


_ENGLISH_NOTES = ("この記事は英語で書かれていて、今日はオフラインで翻訳できないから、"
    "名前と数字を手がかりに紹介するのだ。",
                  "英語の記事だから、ぼくが読み取れた名前と数字を中心にお伝えするのだ。",
                  "元の記事は英語なので、詳しい中身は原文で確かめてほしいのだ。"
                      "ここでは数字と名前を拾っていくのだ。",
                  "今回は英語の記事なのだ。翻訳はできないけど、出てくる数字を追いかけてみるのだ。",
                  "英語で書かれた記事だから、要点になりそうな数字と名前を紹介するのだ。")
_ENGLISH_WHY = ("気になった人は、辞書を片手に原文を読んでみると、いい英語の勉強にもなるのだ。",
                "英語の技術記事を読む習慣は、新人エンジニアの強い味方になるのだ。",
                "海外の現場の話は、日本の記事より早く出ることも多いのだ。",
                "数字だけでも、どれくらいの規模のお話かは伝わるのだ。",
                "英語の記事にも、ぜひ少しずつ挑戦してみてほしいのだ。")
# A number that says a change (2.4倍, 38%増, 4.2秒から1.3秒に短縮), not a share (全体の3分の1, 回答者の31%).
_EMPHASIS = re.compile(
    r"\d(?:[\d,.]*)\s*(?:倍|[%％](?:[^、。]{0,3}(?:増|減|上が|下が|伸び|向上|改善|短縮|削減|アップ|ダウン)))"
    r"|から[^、。]{0,12}\d[^、。]{0,8}に(?:短縮|向上|増え|減|下が|上が)")


@lru_cache(maxsize=64)  # every concept of a segment asks about the same title and body
def _morphemes(text: str) -> tuple[tuple[str, str, str], ...]:
    """OpenJTalk's morphemes of the text: (surface in NFKC, part of speech, its subgroup)."""
    import unicodedata

    from zundacast.voices.openjtalk import load_pyopenjtalk  # without its onnxruntime notice

    pyopenjtalk = load_pyopenjtalk()  # late: loads the dictionary once
    return tuple((unicodedata.normalize("NFKC", node["string"]), node["pos"], node["pos_group1"])
                 for node in pyopenjtalk.run_frontend(text))


def _word_count(alternatives: str, text: str) -> int:
    """How often the text says one of the alternatives as a word of its own, not inside a longer word.

    A Latin name needs no letter or digit either side (RAG, not DRAGON). A Japanese term must be whole
    morphemes and the head of its compound: クラウド in パブリッククラウド counts; in オフィス (オフ), in
    クラウド会計 or クラウド大手 (a noun follows: it is about accounting, about a company) it does not.
    """
    count = 0
    morphemes: tuple[tuple[str, str, str], ...] | None = None
    counted: set[int] = set()  # morphemes inside a counted term (AIエージェント is not also エージェント)
    for alternative in sorted(alternatives.split("|"), key=len, reverse=True):
        if not _JAPANESE_CHAR.search(alternative):
            count += len(re.findall(rf"(?<![A-Za-z0-9])(?:{alternative})(?:s|es)?(?![A-Za-z0-9])", text))
            continue
        if not re.search(alternative, text):
            continue
        morphemes = _morphemes(text) if morphemes is None else morphemes
        for start in range(len(morphemes)):
            joined, end = "", start
            while end < len(morphemes) and len(joined) < len(alternative):
                joined += morphemes[end][0]
                end += 1
            if joined != alternative or counted.intersection(range(start, end)):
                continue
            after = morphemes[end] if end < len(morphemes) else ("", "", "")
            if after[1] != "名詞" or after[2] in ("接尾", "非自立"):
                count += 1
                counted.update(range(start, end))
    return count


def _concepts_of(summary: Summary) -> list[Concept]:
    """The concepts the article is about: said as a word of its own in its title, or at least twice in
    its text (a word said once in passing is not what the story is about). Title ones first."""
    found: list[tuple[int, int, Concept]] = []
    body = "\n".join([summary.summary, *summary.key_points])
    for order, concept in enumerate(CONCEPTS):
        if _word_count(concept.pattern, summary.title):
            found.append((0, order, concept))
        elif _word_count(concept.pattern, body) >= 2:
            found.append((1, order, concept))
    return [concept for _, _, concept in sorted(found, key=lambda item: (item[0], item[1]))]


def _spoken_groups(text: str) -> list[list[str]]:
    """Each of the article's sentences as the host's spoken sentences (one, or a long one split)."""
    return [group for group in map(_spoken_lines, split_sentences(text, max_chars=400)) if group]


def _spoken_lines(text: str, written_by_host: bool = False) -> list[str]:
    """An article's sentences as the host's spoken sentences (author in the third person, のだ at the end)."""
    lines = []
    for sentence in split_sentences(text, max_chars=400):
        sentence = sentence.strip()
        if written_by_host and sentence_ends_in_persona(sentence):  # the English summary's own lines
            lines.append(sentence)
            continue
        if not sentence or not _speakable(sentence) or _not_the_article(sentence):
            continue
        for piece in spoken_style(sentence):
            spoken = host_sentence(piece)
            if spoken:
                lines.append(spoken)
    return lines


def _defines(line: str, concept: Concept) -> bool:
    """The article's own sentence saying what the concept is (「投機的デコーディングは、…手法なのだ。」)."""
    return bool(re.match(rf"(?:{concept.pattern})(?:（[^）]*）)?(?:とは|は|っていうのは)", line)
                and re.search(r"(?:手法|技術|仕組み|方式|方法|こと|サービス|ツール|言語|機能)なのだ[。！]$",
                    line))


_DOWNBEAT = re.compile(r"減に|減少|とどま|延び|悪化|落ち込|下回|遅れ|失敗|赤字|見送"
                       r"|しか(?:上が|伸び|増え|な)")
# Connectors that only say "and another thing": one in three sentences at most, never back to back.
_ADDITIVE = ("それから、", "さらに、", "あと、", "それと、", "それに、")


def _space_connectors(lines: list[str]) -> list[str]:
    """The lines with an additive connector dropped where it would come within three sentences of the
    last one, or be said a third time in the segment (「さらに、」 four times reads as a list)."""
    spaced: list[str] = []
    last_at, used = -3, Counter[str]()
    for position, line in enumerate(lines):
        connector = next((word for word in _ADDITIVE if line.startswith(word)), None)
        if connector is not None:
            if position - last_at < 3 or used[connector] >= 2:
                line = line[len(connector):]
            else:
                last_at, used[connector] = position, used[connector] + 1
        spaced.append(line)
    return spaced


def _emphasize(lines: list[str]) -> int | None:
    """The fact with the article's most striking number gets the host's surprise (！); its position."""
    best, best_at = 0, None
    for position, line in enumerate(lines):
        if _DOWNBEAT.search(line):
            continue  # a fall, a delay or a miss is no cause for the host's surprise
        hits = len(_EMPHASIS.findall(line))
        if hits > best:
            best, best_at = hits, position
    if best_at is not None and lines[best_at].endswith("のだ。"):
        lines[best_at] = lines[best_at][:-1] + "！"
    return best_at


def _plainly(lines: list[str]) -> list[str]:
    """The lines without the host's exclamation (bad news is not said with ！)."""
    return [line[:-1] + "。" if line.endswith(("！", "!")) else line for line in lines]


def _similar(one: str, other: str) -> bool:
    from difflib import SequenceMatcher

    return one == other or SequenceMatcher(None, one, other).ratio() >= 0.8


def _without_repeats(lines: list[str]) -> list[str]:
    kept: list[str] = []
    for line in lines:
        if not any(_similar(line, earlier) for earlier in kept):
            kept.append(line)
    return kept


def _show_id(show: object | None) -> str:
    inner = getattr(show, "show", show)
    return str(getattr(inner, "id", "") or "")


class OfflineWriter:
    """Writes without a model: the default when no OpenAI-compatible endpoint is configured.

    `seed` picks the permutation of the stock lines; the script stage may pass the episode's date so
    the lines change from day to day (all segments of an episode must share it).
    """

    name = OFFLINE
    cache_key = OFFLINE
    is_offline = True
    needs_key = False

    def __init__(self, seed: str = "") -> None:
        self.seed = seed
        self._said: list[str] = []  # this episode's lines so far (see _remember)

    def summarize(self, candidate: Candidate, show: object | None = None,
                  feedback: list[str] | None = None) -> Summary:
        text = candidate.text or candidate.feed_summary or candidate.title
        if _is_english(candidate, text):
            return _summarize_english(candidate, text)
        return _summarize_japanese(candidate, text)

    def write_segment(self, summary: Summary, index: int, total: int, show: object | None = None,
                      feedback: list[str] | None = None) -> tuple[list[str], Usage]:
        return self._segment(summary, index, total, show), Usage()

    def write_dialogue(self, summary: Summary, index: int, total: int, show: object,
                       feedback: list[str] | None = None) -> tuple[list[tuple[str, str]], Usage]:
        """The host's segment, shortened to leave her room, with the cohost's questions and reactions
        woven in: after the lead, a third and two thirds of the way, and before the closer. Her lines are
        stock lines in her persona, with no number or name (so they are grounded in any article)."""
        info = getattr(show, "show", show)
        cohost = info.cohost
        seed = f"{_show_id(show)}|{self.seed}|{cohost.name}"
        host_lines = self._segment(summary, index, total, show, reserve=COHOST_RESERVE_CHARS)
        said: list[tuple[str, str]] = [(info.host, line) for line in host_lines]
        count = len(host_lines)
        spots = sorted({spot for spot in (1, count // 3 + 1, 2 * count // 3 + 1, count - 1)
                        if 0 < spot <= count})
        stock = _COHOST_SOBER_POOLS if is_bad_news(summary.title, summary.summary) else _COHOST_POOLS
        pools = [_in_persona(pool, cohost.endings, info.host) for pool in stock]
        for pool, at in reversed(list(zip(pools, spots, strict=False))):  # from the end: spots stay put
            said.insert(at, (cohost.name, _slot(pool, index, seed)))
        return said, Usage()

    def _segment(self, summary: Summary, index: int, total: int, show: object | None = None,
                 reserve: int = 0) -> list[str]:
        seed = f"{_show_id(show)}|{self.seed}"
        rng = _rng(story_key(summary.url) if summary.url else summary.title)  # per article: which connector
        high = segment_chars(total)[1]
        # room for the header the script adds, and for the frame's share beyond FRAME_CHARS (opening and
        # recap run about 450 characters, not 300: the episode must stay under 4,600); `reserve`: a
        # cohost's lines
        budget = high - 30 - len(summary.spoken_title) - FRAME_EXCESS_CHARS // max(total, 1) - reserve
        if summary.language.startswith("en"):
            return self._english(summary, index, seed)

        # One group per article sentence (a long one is spoken as two or three): trimmed whole, never cut.
        fact_groups = _spoken_groups(summary.summary)
        point_groups = [group for point in summary.key_points for group in _spoken_groups(point)]
        why = [line for group in _spoken_groups(summary.why_it_matters) for line in group]
        lead = fact_groups.pop(0) if fact_groups else []

        article_lines = [line for group in fact_groups + point_groups for line in group]
        explain, topic, own = self._explain(summary, index, seed, article_lines)
        fact_groups = [group for group in fact_groups if own not in group]
        point_groups = [group for group in point_groups if own not in group]
        bad = is_bad_news(summary.title, summary.summary)
        technical = is_technical(summary.title, summary.summary)
        if topic == "general" and not technical:
            topic = "news"
        why_care = _slot(_SOBER_WHY, index, seed) if bad else _slot(_WHY_CARE[topic], index, seed + topic)
        explain.append(why_care)
        details = [_slot(_TO_DETAILS, index, seed)]
        connectors = ("それから、", "さらに、", "あと、", "", "", "", "")
        point_groups = [[rng.choice(connectors) + group[0], *group[1:]]
                        if not group[0].startswith(_OWN_CONNECTORS) else group for group in point_groups]
        point_lead = [_slot(_ARTICLE_POINT, index, seed)] if why else []
        closer = [_slot(_SOBER_CLOSERS if bad else _CLOSERS if technical else _NEWS_CLOSERS, index, seed)]

        def length() -> int:
            groups = [lead, explain, details, *fact_groups, *point_groups, point_lead, why, closer]
            return sum(len(line) for group in groups for line in group)

        # Over the budget: drop key points from the end, then facts (the lead stays).
        while point_groups and length() > budget:
            point_groups.pop()
        while len(fact_groups) > 1 and length() > budget:
            fact_groups.pop()
        body = [line for group in fact_groups + point_groups for line in group]
        if bad:  # the bad facts are said plainly: no surprise, no cheer about their numbers
            lead, body, why = _plainly(lead), _plainly(body), _plainly(why)
        else:
            at = _emphasize(body)
            if at is not None:
                body.insert(at + 1, _slot(_NUMBER_REACTIONS, index, seed))
        lines = lead + explain + details + body + point_lead + why + closer
        if not lead and not body:  # nothing from the article but its title
            lines = explain + closer
        return self._remember(index, _without_repeats(_space_connectors(lines)))

    def _remember(self, index: int, lines: list[str]) -> list[str]:
        """A guard over the slots: nothing a former segment of this episode said is said again.

        Segments are written in order by one writer; index 0 starts a new episode.
        """
        if index == 0:
            self._said = []
        lines = [line for line in lines if not any(_similar(line, said) for said in self._said)]
        self._said.extend(lines)
        return lines

    def _explain(self, summary: Summary, index: int, seed: str,
                 article_lines: list[str]) -> tuple[list[str], str, str | None]:
        """What the thing is (ask, explanation, everyday picture): lines, topic, article line used."""
        said = [] if index == 0 else self._said
        for concept in _concepts_of(summary):
            own = next((line for line in article_lines if _defines(line, concept)), None)
            variants = [concept.explanations[(index + k) % len(concept.explanations)]
                        for k in range(len(concept.explanations))]
            explanation = own or next((v for v in variants if v not in said), None)
            if explanation is None or concept.picture in said:
                continue  # a former segment explained this concept: explain the next one instead
            ask = _slot(_ASK, index, seed).format(term=concept.name)
            if not _grounded(summary, ask, explanation, concept.picture):
                continue  # 「パッケージ」 in a pip story must not bring npm and JavaScript into it
            return [ask, explanation, concept.picture], concept.topic, own
        return [], "general", None

    def _english(self, summary: Summary, index: int, seed: str) -> list[str]:
        facts = _spoken_lines(summary.summary, written_by_host=True)
        points = _spoken_lines("\n".join(summary.key_points), written_by_host=True)
        explain, _topic, _own = self._explain(summary, index, seed, [])
        closers = _SOBER_CLOSERS if is_bad_news(summary.title) else _CLOSERS
        return self._remember(index, _without_repeats(_space_connectors([
            *facts, _slot(_ENGLISH_NOTES, index, seed), *explain, *points,
            _slot(_ENGLISH_WHY, index, seed), _slot(closers, index, seed)])))


# The cohost's stock lines ([show.cohost]), by where they stand in a segment: after the lead (she asks what
# it is), a third of the way (she wants more), two thirds (she reacts), before the closer (she sums up).
# Written for the default persona (お嬢様: ですわ, わよ, かしら, のね); no numbers or names, so they are
# grounded in any article. Each pool is longer than an episode has articles: no line is said twice.
COHOST_RESERVE_CHARS = 110
_COHOST_POOLS: tuple[tuple[str, ...], ...] = (
    ("まあ、それはどういうお話なのかしら？", "あら、面白そうなお話ですわね。",
     "それって、わたくしたちの仕事にも関係あるのかしら？", "初めて聞くお話ですわ。",
     "まあ、どんな仕組みなのかしら？", "それは新しいニュースですわね。",
     "なんだか難しそうですけれど、わたくしにもわかるかしら？", "ちょうど気になっていた話題ですわ。"),
    ("なるほど、そういうことなのね。", "もう少し詳しく聞きたいですわ。",
     "具体的には、どういうことなのかしら？",
     "ふむふむ、続きが気になりますわね。", "わかりやすい説明で助かりますわ。", "そこが大事なところなのね。",
     "それで、どうなったのかしら？", "つまり、前より便利になるということかしら？"),
    ("それはすごいですわね！", "まあ、驚きましたわ！", "思っていたより大きなお話ですわね。",
     "そんな工夫があったなんて、驚きですわ。", "聞いているだけでわくわくしますわね。",
     "なるほど、よく考えられているのね。", "それは現場の方も助かりますわね。", "そういう見方もあるのね。"),
    ("新人のみなさんにも、ぜひ覚えておいてほしいお話ですわね。",
     "わたくしも、もっと調べてみたくなりましたわ。",
     "今日のお話で、少し賢くなれた気がしますわ。", "これからどうなっていくのか、楽しみですわね。",
     "身近なところにも関係していそうなお話でしたわね。", "{host}の説明、とてもわかりやすかったですわ。",
     "わたくしも、お仕事で使えるか考えてみますわ。", "大切なことがよくわかりましたわ。"),
)


# Her lines on bad news (a breach, layoffs, an outage): concern, questions about what happened, no delight.
_COHOST_SOBER_POOLS: tuple[tuple[str, ...], ...] = (
    ("まあ、それは穏やかではありませんわね。", "それは心配なお話ですわね。", "いったい何が起きたのかしら？",
     "まあ、大変なことになっているのね。", "どういう経緯だったのかしら？", "影響はどのくらいなのかしら？",
     "それは気がかりなお話ですわ。", "まあ、そんなことがあったのね。"),
    ("原因はわかっているのかしら？", "それから、どう対応したのかしら？", "詳しく聞かせてほしいですわ。",
     "順を追って聞くと、よくわかりますわね。", "そこが肝心なところなのね。", "ほかにも影響があったのかしら？",
     "利用している方は、どうすればいいのかしら？", "なるほど、そういう流れだったのね。"),
    ("それは大変でしたわね。", "影響を受けた方々が気がかりですわ。", "身が引き締まる思いですわね。",
     "他人事ではありませんわね。", "落ち着いて受け止めたいですわね。", "よく確かめておきたいお話ですわね。",
     "重く受け止めるべきお話ですわね。", "そういうことが起こりうるのね。"),
    ("わたくしたちも、備えを見直しておきたいですわね。", "事実を一つずつ確かめることが大切なのね。",
     "重いお話ですけれど、知っておくべきことですわね。", "わたくしも気を引き締めますわ。",
     "同じことが起きないよう、考えておきたいですわね。", "続報にも気をつけておきたいですわね。",
     "正しい情報を待ちたいですわね。", "わたくしも、身の回りを確かめてみますわ。"),
)


def _in_persona(pool: tuple[str, ...], endings: Sequence[str], host: str) -> tuple[str, ...]:
    """The pool's lines that end in one of her endings (all of them for the default persona; a show
    that gives her other endings keeps what fits, or the whole pool for the gate to judge)."""
    lines = tuple(line.format(host=host) for line in pool)
    fitting = tuple(line for line in lines if line.rstrip("。！？").endswith(tuple(endings)))
    return fitting if len(fitting) >= len(lines) // 2 else lines


def _grounded(summary: Summary, *lines: str) -> bool:
    """Every name and number in the host's stock lines is in the article (the editorial gate's rule)."""
    from zundacast.editorial import grounding, source_of_summary

    source = source_of_summary(summary)
    return not any(grounding(line, source, "")[0] for line in lines)


_OWN_CONNECTORS = ("それから", "さらに", "ちなみに", "あと", "また", "たとえば", "例えば", "そこで", "ただ",
                   "一方", "しかし", "でも", "なお", "まず", "次に", "最後に", "特に", "それと", "ほかにも")
