"""The offline writer: extractive summaries and the persona's templates (no keys, no network).

Summaries are correct by construction: every fact is a sentence (or, for English articles, a number,
a name or the title) taken from the article. The host's sentences are those facts with their endings
turned into Zundamon's のだ / なのだ, inside templates modelled on the reference episodes, varied
deterministically per article (seeded by the URL) so episodes do not all sound the same.
"""

from __future__ import annotations

import hashlib
import random
import re

from zundacast.llm.prompts import segment_chars
from zundacast.models import Candidate, Summary, Usage
from zundacast.speech import sentence_ends_in_persona, split_sentences

OFFLINE = "offline"

_URL = re.compile(r"https?://\S+|www\.\S+")
_NUMBER = re.compile(r"\d")
_ASCII_NAME = re.compile(r"[A-Za-z][A-Za-z0-9.+#-]*[A-Za-z0-9+#]|[A-Za-z]")
_KATAKANA = re.compile(r"[ァ-ヺー]{3,}")
_KANJI = re.compile(r"[一-龥]{2,}")
_TRAILING = "。．.！？!?　 "
# The author's greeting or self-introduction would become the host's ("…の森川なのだ"): never pick it.
_GREETING = re.compile(r"^(こんにちは|こんばんは|おはよう|はじめまして|初めまして|どうも|皆さん|みなさん)")
_WHY_WORDS = ("重要", "大切", "期待", "可能に", "ため", "課題", "メリット", "注目", "役立", "便利", "効率")
_MARKUP = re.compile(r"[#*`|>\[\]{}<]|^[-・●■◆]")
_EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf]")


def _rng(seed: str) -> random.Random:
    return random.Random(int(hashlib.sha256(seed.encode()).hexdigest()[:16], 16))


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
    import pyopenjtalk  # late: loads the dictionary; only sentences in です/ます need it

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


def _clean_sentences(text: str) -> list[str]:
    sentences = []
    for sentence in split_sentences(text, max_chars=400):
        sentence = sentence.strip()
        if (15 <= len(sentence) <= 110 and not _GREETING.match(sentence) and _speakable(sentence)
                and sentence[-1] in "。！!"):
            sentences.append(sentence)
    return sentences


def _score(sentence: str, position: int, keywords: set[str]) -> float:
    score = 1.0 / (1 + position * 0.15)  # the lead of an article says what it is about
    score += min(len(_NUMBER.findall(sentence)), 4) * 0.5
    score += sum(1.0 for word in keywords if word in sentence)
    score += min(len(_ASCII_NAME.findall(sentence)), 3) * 0.3
    if to_persona(sentence) is None:
        score -= 3.0
    return score


def spoken_title_of(candidate: Candidate) -> str:
    """The title without a trailing ' | site' or ' - site' (the host names the source separately)."""
    title = re.sub(r"\s+", " ", candidate.title).strip()
    for site in filter(None, (candidate.site_name, candidate.source)):
        title = re.sub(rf"\s*[|｜\-–—:：]\s*{re.escape(site)}\s*$", "", title)
    title = re.sub(r"\s*[|｜]\s*[^|｜]{1,30}$", "", title)
    return title.replace("「", "『").replace("」", "』") or candidate.title


def _summarize_japanese(candidate: Candidate, text: str) -> Summary:
    keywords = _keywords(candidate.title)
    sentences = _clean_sentences(text)
    ranked = sorted(range(len(sentences)), key=lambda i: -_score(sentences[i], i, keywords))
    chosen: list[int] = []
    used = 0
    for index in ranked:
        if to_persona(sentences[index]) is None:
            continue
        if used + len(sentences[index]) > 1150 or len(chosen) >= 14:
            break
        chosen.append(index)
        used += len(sentences[index])
    chosen.sort()
    picked = [sentences[i] for i in chosen]
    why = next((s for s in reversed(picked) if any(word in s for word in _WHY_WORDS)), "")
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
_EN_NUMBER_FACT = re.compile(
    r"(?<![\w.])(?:\$\s?)?\d[\d,]*(?:\.\d+)?(?:%|x\b|×|[KMBT]\b|-bit\b|ms\b| ?GB\b| ?MB\b| ?TB\b)?"
    rf"(?:[ -](?!(?:{_EN_STOPWORDS})\b)[a-z][a-z/]{{2,}})?"
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


def _summarize_english(candidate: Candidate, text: str) -> Summary:
    """No translation offline: Japanese sentences built around the article's own numbers and names."""
    title = spoken_title_of(candidate)
    site = candidate.site_name or candidate.source
    names = [name for name in _english_names(text) if name not in site.split()][:5]
    facts: list[str] = []
    for match in _EN_NUMBER_FACT.finditer(text[:8000]):
        fact = match.group(0).strip(" ,.-")
        if (not re.fullmatch(r"(19|20)\d\d", fact) and re.search(r"[^\d,.]", fact)
                and fact not in facts):
            facts.append(fact)
    summary = [f"これは{site}に載っていた英語の記事なのだ。",
               "オフラインでは翻訳できないから、記事に出てくる名前と数字を紹介するのだ。"]
    key_points = []
    if names:
        key_points.append(f"記事によく出てくる名前は、{'、'.join(names)}なのだ。")
    templates = ("記事には「{}」という数字が出てくるのだ。", "「{}」という数字も書いてあるのだ。",
                 "それから、「{}」という数字もあるのだ。")
    for index, fact in enumerate(facts[:6]):
        key_points.append(templates[min(index, len(templates) - 1)].format(fact))
    why = "詳しい中身は、元の英語の記事を読んで確かめてほしいのだ。"
    return Summary(
        url=candidate.url, source=candidate.source, title=candidate.title, spoken_title=title,
        summary="".join(summary), key_points=key_points, why_it_matters=why, language="en", writer=OFFLINE,
    )


# --- the host's segment -----------------------------------------------------------------------------------

_INTROS = ("これは{source}の記事なのだ。", "今回は{source}からの記事なのだ。",
           "{source}に載っていたお話なのだ。")
_CONNECTORS = ("それから、", "さらに、", "ちなみに、", "あと、", "", "", "")
_OWN_CONNECTORS = ("それから", "さらに", "ちなみに", "あと", "また", "たとえば", "例えば", "そこで",
                   "ただ", "一方", "しかし", "でも", "なお", "まず", "次に", "最後に", "特に")
_WHY_LEADS = ("新人エンジニアのみんなにとって大事なのは、ここなのだ。", "ここがポイントなのだ。",
              "ぼくが大事だと思ったのは、ここなのだ。")
_REACTIONS = ("ふむふむ、なるほどなのだ。", "これはすごいことなのだ！", "なかなか興味深いお話なのだ。",
              "技術の進歩ってすごいのだ！")
_ASIDES = ("ぼくもずんだ餅を効率よく作る技術がほしいのだ！",
           "ずんだ餅を食べながら、じっくり読んでみたいのだ！",
           "ぼくの「ずんだアロー」も、これくらい速くなったらいいのだ！",
           "気になった人は、元の記事もぜひ読んでみてほしいのだ。ぼくはずんだ餅を食べて待ってるのだ！",
           "ぼくもさっそく試してみたくなったのだ！ずんだ餅の力で頑張るのだ！")
_FILLERS = ("新人エンジニアのみんなも、気になったら元の記事を読んでみてほしいのだ。",
            "具体的な数字が出てくると、イメージしやすいのだ。",
            "ぼくも、これからどうなるのか楽しみなのだ。")


_AUTHOR_FIRST_PERSON = re.compile(r"^(?:私たち|わたしたち|我々|私|わたし|僕ら|僕)(?=[はがのもを])")


def _speakable(sentence: str) -> bool:
    """Japanese prose without links or markup (an English sentence or a URL never reaches the voice)."""
    letters = sum(1 for ch in sentence if ch.isascii() and ch.isalpha())
    return (not _URL.search(sentence) and not _MARKUP.search(sentence) and not _EMOJI.search(sentence)
            and letters <= len(sentence) * 0.4)


def _host_voice(sentence: str) -> str | None:
    """The article's sentence as the host says it: its author in the third person, のだ at the end."""
    sentence = sentence.strip()
    if not _speakable(sentence):
        return None
    return to_persona(_AUTHOR_FIRST_PERSON.sub("筆者", sentence))


def _persona_lines(text: str) -> list[str]:
    lines = []
    for sentence in split_sentences(text, max_chars=400):
        spoken = _host_voice(sentence)
        if spoken:
            lines.append(spoken)
    return lines


class OfflineWriter:
    """Writes without a model: the default when no OpenAI-compatible endpoint is configured."""

    name = OFFLINE
    cache_key = OFFLINE
    is_offline = True  # the Writer capabilities (zundacast.llm.Writer)
    needs_key = False

    def summarize(self, candidate: Candidate, show: object | None = None,
                  feedback: list[str] | None = None) -> Summary:
        text = candidate.text or candidate.feed_summary or candidate.title
        if _is_english(candidate, text):
            return _summarize_english(candidate, text)
        return _summarize_japanese(candidate, text)

    def write_segment(self, summary: Summary, index: int, total: int, show: object | None = None,
                      feedback: list[str] | None = None) -> tuple[list[str], Usage]:
        rng = _rng(summary.url or summary.title)
        low, high = segment_chars(total)
        budget = high - 80  # room for the header the script adds
        source = summary.source or "ネット"
        opening = [rng.choice(_INTROS).format(source=source)]
        facts = _persona_lines(summary.summary)
        points = []
        for point in summary.key_points:
            spoken = _host_voice(point)
            if spoken:
                connector = "" if spoken.startswith(_OWN_CONNECTORS) else rng.choice(_CONNECTORS)
                points.append(connector + spoken)
        why = _persona_lines(summary.why_it_matters)
        closing = [rng.choice(_REACTIONS), rng.choice(_ASIDES)]
        if why:
            why = [rng.choice(_WHY_LEADS), *why]

        def length(lines: list[str]) -> int:
            return sum(len(line) for line in lines)

        # Keep the lead facts; drop key points from the end, then facts, until the segment fits.
        while points and length(opening + facts + points + why + closing) > budget:
            points.pop()
        while len(facts) > 2 and length(opening + facts + points + why + closing) > budget:
            facts.pop()
        sentences = opening + facts + points + why + closing
        fillers = list(_FILLERS)
        rng.shuffle(fillers)
        # A short article: at most two honest remarks, never a new fact.
        while length(sentences) + 60 < low and len(fillers) > 1:
            sentences.insert(len(sentences) - 1, fillers.pop())
        return sentences, Usage()
