"""The editorial gate: every rule an editor applies to what reaches listeners, in one place.

Both writers' outputs (summaries, segments) and the finished script pass through here before synthesis.
Each rule has a stable id (`RULES`); a failing check returns `Failure`s whose `feedback` goes back to
the writer when it is asked again. The fields checked are all a listener hears or reads: the spoken
title, summary, key points, why-it-matters, every segment sentence and the recap.

Grounding: every number and every Latin-script name in written text must occur in the article it is
about (its extracted text, title, site). Numbers are compared as values after normalisation (NFKC,
thousands separators, 千/万/億/兆 and "1千", K/M/B suffixes, 割 as tens of percent); names
case-insensitively. A name the writer spells in katakana is not checked (it cannot be a wrong spelling
of a Latin name we could verify without a dictionary).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zundacast.dates import date_ja, weekday_ja
from zundacast.llm.prompts import PERSONA_MIN_RATIO, episode_bounds, segment_bounds
from zundacast.models import Quality, RuleFired, Script, Summary
from zundacast.speech import ascii_letters, persona_ratio

if TYPE_CHECKING:
    from zundacast.show import CohostConfig

RULES: dict[str, str] = {
    "grounding.number": "a number the article does not contain",
    "grounding.name": "a Latin-script name the article does not contain",
    "title.key_terms": "the spoken title lost the original title's key terms",
    "title.not_japanese": "the spoken title is not Japanese",
    "title.too_long": "the spoken title is longer than 80 characters",
    "title.duplicate": "the spoken title repeats another title of the day",
    "injection.instruction": "text that reads like an instruction to the writer",
    "injection.advertisement": "text that reads like an advertisement or a call to buy/visit",
    "injection.other_show": "another show's name or welcome",
    "injection.persona": "the host's persona changed (another speech style or host name)",
    "repeat.sentence": "a sentence said twice in the episode",
    "persona.ratio": "too few sentences end in のだ / なのだ",
    "persona.cohost": "a cohost line not in her persona's endings, or in the host's のだ",
    "dialogue.speaker": "a line without a known speaker ([show.cohost] episodes)",
    "dialogue.both": "one of the two hosts does not speak in a segment, or the cohost does the explaining",
    "segment.sentences": "a segment's sentence count outside the target",
    "segment.frame": "a segment contains the show's separators or sign-off",
    "length": "a segment or the episode outside its length band",
    "spoken.url": "a URL in text that is read aloud",
    "spoken.markdown": "markdown in text that is read aloud",
    "spoken.emoji": "an emoji in text that is read aloud",
    "speech.ascii": "ASCII letters left in the text the voice reads",
    "script.date": "the opening's date or weekday is wrong",
    "script.structure": "the script's frame or its segments do not match the picks",
    "summary.empty": "a summary field that must not be empty is empty",
    "llm.fallback": "the LLM gave no usable answer (refused, filtered, cut off or down): written offline",
}

MAX_TITLE_CHARS = 80
MIN_SEGMENT_SENTENCES = 5
MAX_SEGMENT_SENTENCES = 40
TITLE_MIN_JAPANESE = 0.3  # japanese_share a Japanese title reaches
WEEKDAY_NAMES = ("月曜日", "火曜日", "水曜日", "木曜日", "金曜日", "土曜日", "日曜日")


@dataclass(frozen=True)
class Failure:
    rule: str
    field: str
    detail: str  # what is wrong, in Japanese (it is also the writer's feedback)

    @property
    def feedback(self) -> str:
        return f"[{self.rule}] {self.field}: {self.detail}"

    def __str__(self) -> str:
        return self.feedback

    def fired(self, article: str, action: str) -> RuleFired:
        """The published record of this failure: what rule, where, what was done. It never quotes the
        rejected text (an injected line must not reach episode.json through the record of its rejection)."""
        return RuleFired(rule=self.rule, field=self.field, article=article, action=action,
                         detail=RULES.get(self.rule, ""))


def feedback_of(failures: list[Failure], limit: int = 8) -> list[str]:
    """The failures as lines for the writer's next attempt (deduplicated, at most `limit` + a count)."""
    lines = list(dict.fromkeys(failure.feedback for failure in failures))
    return lines[:limit] + ([f"ほかに{len(lines) - limit}件の問題があります"] if len(lines) > limit else [])


# --- normalisation -------------------------------------------------------------------------------------


def normalize(text: str) -> str:
    """NFKC (full/half width), thousands separators dropped, one space."""
    text = unicodedata.normalize("NFKC", text)
    text = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text)
    return re.sub(r"\s+", " ", text)


_LATIN = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-.+'&][A-Za-z0-9]+)*\+*")
_KANJI_DIGITS = {"〇": 0, "一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_KANJI_SMALL = {"十": 10, "百": 100, "千": 1000}
_KANJI_BIG = {"万": 10**4, "億": 10**8, "兆": 10**12}
_NUMBER_RUN = re.compile(r"(?:\d+(?:\.\d+)?|[〇一二三四五六七八九十百千万億兆])+")
_COUNTERS = "人件円個台基倍社回年月日時分秒語問点種割%度位枚本冊ドル週歳桁行章ヶカか所名万億兆"
_LATIN_MULTIPLIERS = {"K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}
_NOT_NUMBERS = ("十分", "一緒", "一方", "一部", "一般", "一番", "一気", "一度に", "一層", "一切", "一貫",
                "一覧", "一人ひとり", "一斉", "一旦", "万全", "万一", "一体", "一見", "一応", "一新",
                "統一", "同一", "唯一", "単一", "第一", "一流", "一段", "千葉", "一時的")
# Generic terms a Japanese writer uses without the article spelling them out.
GENERIC_LATIN = {"ai", "it", "api", "apis", "gpu", "gpus", "cpu", "llm", "llms", "oss", "pc", "os", "web",
                 "sns", "ui", "ux", "dx", "pr", "faq", "ok", "id", "vs"}


def _parse_run(run: str) -> float | None:
    """A run of digits and kanji numerals → its value (12万8千 → 128000, 1千 → 1000, 二千 → 2000)."""
    total = 0.0
    section = 0.0
    number: float | None = None
    for token in re.findall(r"\d+(?:\.\d+)?|.", run):
        if token[0].isdigit():
            number = float(token)
        elif token in _KANJI_DIGITS:
            digit = _KANJI_DIGITS[token]
            number = digit if number is None else number * 10 + digit
        elif token in _KANJI_SMALL:
            section += (1 if number is None else number) * _KANJI_SMALL[token]
            number = None
        elif token in _KANJI_BIG:
            section += number or 0
            total += (section or 1) * _KANJI_BIG[token]
            section = 0
            number = None
        else:
            return None
    return total + section + (number or 0)


def _key(value: float) -> float:
    return float(f"{value:.6g}")


def numbers(text: str) -> list[tuple[str, set[float]]]:
    """Each number written in the text: (as written, the values it may stand for)."""
    text = normalize(text)
    for word in _NOT_NUMBERS:
        text = text.replace(word, "　" * len(word))
    # names with digits (H200, GPT-4o, Tsubaki-2) are names; a lone letter after digits is a unit (32B)
    text = _LATIN.sub(lambda m: m.group(0) if _is_unit(m) else " " * len(m.group(0)), text)
    found = []
    for match in _NUMBER_RUN.finditer(text):
        run = match.group(0)
        after = text[match.end():match.end() + 2]
        before = text[match.start() - 1:match.start()] if match.start() else ""
        has_digit = any(ch.isdigit() for ch in run)
        # kanji numerals only as numbers: followed by a counter, not inside a kanji word
        if not has_digit and (not after or after[0] not in _COUNTERS or re.match(r"[一-龥]", before)
                              or run in "万億兆"):
            continue
        value = _parse_run(run)
        if value is None:
            continue
        values = {_key(value)}
        if after[:1] in _LATIN_MULTIPLIERS and not re.match(r"[A-Za-z]", after[1:2]):
            values.add(_key(value * _LATIN_MULTIPLIERS[after[0]]))
        if after[:1] == "割":
            values.add(_key(value * 10))
        if has_digit and re.search(r"[千万億兆]$", run):  # "1千" also stands for the bare digits' value
            head = re.match(r"\d+(?:\.\d+)?", run)
            if head:
                values.add(_key(float(head.group(0))))
        found.append((run, values))
    return found


def _is_unit(match: re.Match[str]) -> bool:
    """A Latin word right after digits is the number's unit (32B, 128K, 1.7GB, 3B-parameter)."""
    return match.start() > 0 and match.string[match.start() - 1].isdigit()


def latin_names(text: str) -> list[str]:
    """Latin-script words and names in the text (after NFKC), units and generic tech terms left out."""
    names = []
    for match in _LATIN.finditer(normalize(text)):
        name = match.group(0).rstrip(".-'")
        if len(name) >= 2 and not _is_unit(match) and name.lower() not in GENERIC_LATIN:
            names.append(name)
    return names


class Source:
    """What one article holds: the values of its numbers and its text for name lookups."""

    def __init__(self, *texts: str) -> None:
        joined = "\n".join(filter(None, texts))
        self.text = normalize(joined).lower()
        self.values: set[float] = set()
        for _written, values in numbers(joined):
            self.values |= values

    def has_number(self, values: set[float]) -> bool:
        return bool(values & self.values) or values <= {0.0, 1.0}  # 一つ, 1回: not claims

    def has_name(self, name: str) -> bool:
        return name.lower() in self.text


def source_of_candidate(title: str, text: str, site: str = "", source: str = "") -> Source:
    return Source(title, text, site, source)


def source_of_summary(summary: Summary) -> Source:
    """A segment is grounded in its summary (itself grounded in the article) and the title."""
    return Source(summary.title, summary.spoken_title, summary.summary, *summary.key_points,
                  summary.why_it_matters, summary.source)


def grounding(text: str, source: Source, field: str) -> tuple[list[Failure], int, int]:
    """Failures for claims the source does not hold; (failures, claims, grounded claims)."""
    failures = []
    claims = grounded = 0
    for written, values in numbers(text):
        claims += 1
        if source.has_number(values):
            grounded += 1
        else:
            failures.append(Failure("grounding.number", field,
                                    f"「{written}」は記事にない数字です（記事に書かれた数字だけを使うこと）"))
    for name in latin_names(text):
        claims += 1
        if source.has_name(name):
            grounded += 1
        else:
            failures.append(Failure("grounding.name", field,
                                    f"「{name}」は記事にない名前です（記事に書かれた名前だけを使うこと）"))
    return failures, claims, grounded


# --- text that reads like something else than the article ---------------------------------------------

_INSTRUCTION = re.compile(
    r"ignore (?:all |any )?(?:the )?(?:previous|prior|above|earlier) (?:instructions|prompts?)"
    r"|disregard (?:all |the )?(?:previous|prior|above)|system prompt|you are now|new instructions"
    r"|(?:以前|前|これまで|上記|先)の(?:指示|命令|プロンプト)|(?:指示|命令)を無視|要約する(?:AI|エーアイ|モデル)"
    r"|(?:AI|エーアイ|モデル|アシスタント)へ[:：]|システムプロンプトを(?:無視|表示|出力|教え)"
    r"|(?:せよ|しなさい|すること)(?:[。！!」』]|$)|にしろ[。！]|タイトルは『[^』]*』にし",
    re.IGNORECASE,
)
_ADVERTISEMENT = re.compile(
    r"スポンサー|sponsor|提供でお送り|番組(?:の)?提供|提供は[^、。]{1,20}(?:です|でした|なのだ)"
    r"|【PR】|\[PR\]|（PR）|\(PR\)|PR記事|広告記事|広告です|広告なのだ|広告を紹介"
    r"|クーポン|割引コード|今なら[^。]{0,20}(?:無料|割引|お得)|お得な|お買い求め|ご購入"
    r"|(?:購入|注文|申し込|申込|登録|アクセス|クリック|フォロー|チャンネル登録|インストール)"
    r"(?:して|し)(?:ください|ほしいのだ|ね|よう|てね)",
    re.IGNORECASE,
)
_OTHER_SHOW = re.compile(
    r"ようこそ|[^\s「」『』、。]{1,20}(?:放送局|ラジオ|チャンネル)(?:へ|に|の時間|です|なのだ)")
_PERSONA_STYLE = (r"ですわ|ますわ|ですの(?:[。！!]|$)|わよ[。！!]|ですこと|ござる"
                  r"|ござ(?:います|いました)わ|ざます"
                  r"|あたくし|わたくし")
_PERSONA_OTHER = (r"(?:ぼく|僕|私|わたし)の名前は|(?:今日から|これからは)(?:ぼく|僕|私|わたし)は"
                  r"|四国めたん|春日部つむぎ|雨晴はう|波音リツ|玄野武宏|白上虎太郎|青山龍星|冥鳴ひまり|九州そら|もち子"
                  r"|ずんだもんではな|ずんだもんじゃな")
_PERSONA = re.compile(f"{_PERSONA_STYLE}|{_PERSONA_OTHER}")
_COHOST_PERSONA = re.compile(_PERSONA_OTHER)  # her own style is hers: only another name or self is refused
_URL = re.compile(r"https?://|www\.|[A-Za-z0-9-]+\.(?:com|jp|dev|io|org|net)\b/?")
_MARKDOWN = re.compile(r"\*\*|__|`|^#{1,6}\s|^\s*[-*+]\s|\[[^\]]*\]\([^)]*\)|^>|^-{3,}$|\|")
_EMOJI = re.compile(
    "[\U0001f000-\U0001faff\U0001fc00-\U0001ffff\u2600-\u27bf\u2300-\u23ff\u2b00-\u2bff\ufe0f\u200d]"
)


def injection(text: str, field: str, show_title: str = "", cohost: str = "",
              by_cohost: bool = False) -> list[Failure]:
    """Instructions, advertisements, other shows, a changed persona: rejected wherever they appear.

    With a cohost (her name in `cohost`), either host may say her name, and her own lines (`by_cohost`)
    keep her speech style; another character's name or a changed self is refused in both voices."""
    if show_title:  # the frame welcomes listeners to this show by name
        text = text.replace(f"「{show_title}」にようこそ", "").replace(show_title, "")
    if cohost:
        text = text.replace(cohost, "")
    failures = []
    for rule, pattern, what in (
        ("injection.instruction", _INSTRUCTION, "書き手への命令のような文"),
        ("injection.advertisement", _ADVERTISEMENT, "広告・宣伝・購入や訪問の呼びかけ"),
        ("injection.other_show", _OTHER_SHOW, "ほかの番組の名前やあいさつ"),
        ("injection.persona", _COHOST_PERSONA if by_cohost else _PERSONA, "ホストと違う話し方や名前"),
    ):
        match = pattern.search(normalize(text))
        if match:
            detail = f"「{match.group(0)}」は{what}です（記事の内容だけを書くこと）"
            failures.append(Failure(rule, field, detail))
    return failures


def spoken(text: str, field: str) -> list[Failure]:
    """Text that is read aloud holds no URL, markdown or emoji."""
    failures = []
    for rule, pattern, what in (("spoken.url", _URL, "URL"), ("spoken.markdown", _MARKDOWN, "マークダウン"),
                                ("spoken.emoji", _EMOJI, "絵文字")):
        if any(pattern.search(line) for line in text.splitlines() or [text]):
            failures.append(Failure(rule, field, f"「{text[:40]}」に{what}が含まれています（使わないこと）"))
    return failures


def spoken_text_problems(text: str) -> list[str]:
    """Names of the spoken.* rules the text breaks (URL, markdown, emoji)."""
    names = {"spoken.url": "URL", "spoken.markdown": "markdown", "spoken.emoji": "emoji"}
    return [names[failure.rule] for failure in spoken(text, "")]


# --- titles ----------------------------------------------------------------------------------------------


_LATIN_WORD = re.compile(r"[A-Za-z0-9]+(?:[.\-_/+'][A-Za-z0-9]+)*")
LATIN_WORD_WEIGHT = 2.5  # a Latin word (a name, a version, an id) counts as long as a Japanese word


def japanese_share(text: str) -> float:
    """How Japanese a title is: its kana and kanji against them plus its Latin words, each word (name,
    version or id: "OpenSSL", "3.5.1", "CVE-2026-12345") weighing as much as a Japanese word.
    Counted by characters, 「OpenSSL 3.5.1に深刻な脆弱性」 would not be Japanese;
    「GPT-5 API Pricing Updateの話」 is not, either way."""
    normal = normalize(text)
    japanese = sum(1 for ch in normal if "\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff")
    latin = LATIN_WORD_WEIGHT * len(_LATIN_WORD.findall(normal))
    return japanese / (japanese + latin) if japanese + latin else 0.0


def title_key_terms(title: str) -> list[str]:
    """The terms that make a title this title: its names (Latin words with a capital or a digit), numbers,
    katakana words (3+) and kanji compounds (2+), with a trailing ' | site' left out."""
    title = re.sub(r"\s*[|｜]\s*[^|｜]*$", "", normalize(title)).strip() or normalize(title)
    names = latin_names(title)
    # names, not English words: a capital or a digit, and not only the capital that starts the title
    terms = [name for index, name in enumerate(names)
             if len(name) >= 2 and re.search(r"[A-Z0-9]", name)
             and not (index == 0 and title.startswith(name) and name[1:].islower())]
    terms += [written for written, _values in numbers(title)]
    terms += re.findall(r"[ァ-ヺー]{3,}", title) + re.findall(r"[一-龥々]{2,}", title)
    return list(dict.fromkeys(terms))


def _keeps(term: str, spoken_title: str) -> bool:
    spoken_norm = normalize(spoken_title).lower()
    if term.lower() in spoken_norm:
        return True
    term_numbers = numbers(term)
    if term_numbers and not re.search(r"[A-Za-z]", term):
        values: set[float] = set()
        for _written, found in numbers(spoken_title):
            values |= found
        return bool(term_numbers[0][1] & values)
    return False


def check_title(spoken_title: str, title: str, field: str = "spoken_title",
                must_be_japanese: bool = True) -> list[Failure]:
    """The spoken title keeps at least two of the title's key terms (one when the title has at most
    three: a name the writer spelled in katakana cannot be matched), is Japanese (when the writer can
    translate), and is at most 80 characters."""
    failures = []
    terms = title_key_terms(title)
    kept = [term for term in terms if _keeps(term, spoken_title)]
    if len(kept) < (min(1, len(terms)) if len(terms) <= 3 else 2):
        failures.append(Failure("title.key_terms", field,
                                f"タイトル「{spoken_title[:40]}」は元のタイトルの重要な語（{'、'.join(terms[:6])}）"
                                "を残していません（固有名詞や数字を残すこと）"))
    if must_be_japanese and japanese_share(spoken_title) < TITLE_MIN_JAPANESE:
        failures.append(Failure("title.not_japanese", field,
                                f"タイトル「{spoken_title[:40]}」が日本語ではありません（日本語で書くこと）"))
    if len(spoken_title) > MAX_TITLE_CHARS:
        failures.append(Failure("title.too_long", field,
                                f"タイトルが{len(spoken_title)}文字です（{MAX_TITLE_CHARS}文字以内にすること）"))
    return failures


def _title_form(title: str) -> str:
    return re.sub(r"[\s「」『』、。,.・:：!！?？\-|｜]", "", normalize(title)).lower()


def duplicate_titles(summaries: list[Summary]) -> dict[int, Failure]:
    """Index of each summary whose spoken title repeats an earlier one of the day → the failure."""
    seen: dict[str, int] = {}
    duplicates = {}
    for index, summary in enumerate(summaries):
        form = _title_form(summary.spoken_title)
        if form in seen:
            detail = f"タイトル「{summary.spoken_title[:40]}」は{seen[form] + 1}つ目の記事と同じです"
            duplicates[index] = Failure("title.duplicate", "spoken_title", detail)
        else:
            seen[form] = index
    return duplicates


# --- summaries -------------------------------------------------------------------------------------------


def summary_fields(summary: Summary) -> list[tuple[str, str]]:
    """(field, text) of every part of a summary that reaches listeners."""
    fields = [("spoken_title", summary.spoken_title), ("summary", summary.summary)]
    fields += [(f"key_points[{index}]", point) for index, point in enumerate(summary.key_points)]
    fields.append(("why_it_matters", summary.why_it_matters))
    return fields


def check_summary(summary: Summary, source: Source,
                  written_by_llm: bool = True) -> tuple[list[Failure], int, int]:
    """Every rule on one summary; (failures, claims, grounded claims). The offline writer cannot
    translate, so its title of an English article may stay English."""
    japanese_title = japanese_share(summary.title) >= TITLE_MIN_JAPANESE
    failures = check_title(summary.spoken_title, summary.title,
                           must_be_japanese=written_by_llm or japanese_title)
    if not summary.summary.strip():
        failures.append(Failure("summary.empty", "summary", "要約が空です"))
    claims = grounded = 0
    for field, text in summary_fields(summary):
        if not text:
            continue
        failures += injection(text, field) + spoken(text, field)
        found, n_claims, n_grounded = grounding(text, source, field)
        failures += found
        claims += n_claims
        grounded += n_grounded
    return failures, claims, grounded


# --- segments ----------------------------------------------------------------------------------------------


def sentence_form(sentence: str) -> str:
    """What makes two sentences the same sentence: NFKC, no spaces or punctuation."""
    return re.sub(r"[\s。、！？!?,.「」『』…ー〜~]", "", normalize(sentence))


def repeats(sentences: list[str], field: str) -> list[Failure]:
    seen: set[str] = set()
    reported: set[str] = set()
    failures = []
    for sentence in sentences:
        form = sentence_form(sentence)
        if not form:
            continue
        if form in seen and form not in reported:  # each repeated sentence once
            reported.add(form)
            failures.append(Failure("repeat.sentence", field,
                                    f"「{sentence[:40]}」は同じ文の繰り返しです（同じ文を二度言わないこと）"))
        seen.add(form)
    return failures


# のだ closing a clause or the sentence (not のだから, のだけど): the host's ending, never the cohost's.
_HOST_ENDING_IN = re.compile(r"のだ(?:よね|よ|ね)?ー*(?=[。．.！？!?、，」』）)…♪〜~\s]|$)")
_TRAILER = " \t　。．.、,！？!?」』）)〕】\"'”’…♪〜~"


def cohost_persona(line: str, field: str, cohost: CohostConfig) -> list[Failure]:
    """A cohost line keeps her persona: one of her endings, and never the host's のだ."""
    text = normalize(line)
    if _HOST_ENDING_IN.search(text):
        return [Failure("persona.cohost", field,
                        f"「{line[:40]}」は{cohost.name}の文なのに「のだ」を使っています"
                        f"（のだ・なのだは{cohost.name}の話し方ではないこと）")]
    if not text.rstrip(_TRAILER).endswith(tuple(cohost.endings)):
        return [Failure("persona.cohost", field,
                        f"「{line[:40]}」は{cohost.name}の語尾（{'、'.join(cohost.endings[:6])}）で終わっていません")]
    return []


def dialogue(lines: list[str], speakers: list[str], host: str, cohost: CohostConfig,
             field: str = "segment") -> list[Failure]:
    """A two-host segment: every line names a known speaker, hers keep her persona, both speak, and the
    host does most of the talking (he explains, she asks and reacts)."""
    failures: list[Failure] = []
    spoken_by = list(speakers) + [""] * (len(lines) - len(speakers))
    for index, (line, speaker) in enumerate(zip(lines, spoken_by, strict=True)):
        if speaker not in (host, cohost.name):
            failures.append(Failure(
                "dialogue.speaker", f"sentence[{index}]",
                f"「{line[:40]}」の話し手がありません（speaker は「{host}」か「{cohost.name}」）"))
        elif speaker == cohost.name:
            failures += cohost_persona(line, f"sentence[{index}]", cohost)
    host_count, cohost_count = spoken_by.count(host), spoken_by.count(cohost.name)
    if not host_count or not cohost_count:
        failures.append(Failure("dialogue.both", field,
                                f"{host}と{cohost.name}の両方が話すこと"
                                f"（{host}: {host_count}文、{cohost.name}: {cohost_count}文）"))
    elif cohost_count >= host_count:
        failures.append(Failure("dialogue.both", field,
                                f"記事の説明は{host}がすること（{cohost.name}は質問とあいづち: "
                                f"{cohost_count}文は{host}の{host_count}文より少なく）"))
    return failures


def check_segment(lines: list[str], summary: Summary, total: int, source: Source | None = None,
                  speakers: list[str] | None = None, cohost: CohostConfig | None = None,
                  host: str = "ずんだもん") -> tuple[list[Failure], int, int]:
    """Every rule on one segment's body (the header is the script's); (failures, claims, grounded).

    With a `cohost`, `speakers` names who says each line: the persona rules apply per speaker."""
    failures: list[Failure] = []
    if not MIN_SEGMENT_SENTENCES <= len(lines) <= MAX_SEGMENT_SENTENCES:
        failures.append(Failure("segment.sentences", "segment",
                                f"文の数が{len(lines)}文です（{MIN_SEGMENT_SENTENCES}〜{MAX_SEGMENT_SENTENCES}文にすること）"))
    by_cohost = [False] * len(lines)
    if cohost is not None:
        failures += dialogue(lines, speakers or [], host, cohost)
        by_cohost = [index < len(speakers or []) and (speakers or [])[index] == cohost.name
                     for index in range(len(lines))]
    ratio = persona_ratio([line for line, hers in zip(lines, by_cohost, strict=True) if not hers])
    if ratio < PERSONA_MIN_RATIO:
        failures.append(Failure("persona.ratio", "segment",
                                f"「のだ」「なのだ」で終わる文が{ratio:.0%}しかありません（すべての文を「のだ」で終えること）"))
    low, high = segment_bounds(total)
    chars = sum(len(line) for line in lines) + 20 + len(summary.spoken_title)
    if not low <= chars <= high:
        failures.append(Failure("length", "segment", f"長さが{chars}文字です（{low}〜{high}文字にすること）"))
    source = source or source_of_summary(summary)
    claims = grounded = 0
    for index, line in enumerate(lines):
        field = f"sentence[{index}]"
        failures += spoken(line, field) + injection(line, field, cohost=cohost.name if cohost else "",
                                                    by_cohost=by_cohost[index])
        if "----" in line or "バイバイ" in line:
            failures.append(Failure("segment.frame", field,
                                    f"「{line[:40]}」は番組の区切りや締めの言葉です（書かないこと）"))
        found, n_claims, n_grounded = grounding(line, source, field)
        failures += found
        claims += n_claims
        grounded += n_grounded
    failures += repeats(lines, "segment")
    return failures, claims, grounded


# --- the whole script -------------------------------------------------------------------------------------


def check_script(script: Script, expected_titles: list[str], spoken_titles: list[str] | None = None,
                 cohost: CohostConfig | None = None, host: str = "ずんだもん") -> list[Failure]:
    """Every rule the script must meet before synthesis; [] when it passes. With a `cohost` ([show.cohost]),
    each sentence's speaker decides its persona rules, and both hosts speak in every article segment."""
    failures: list[Failure] = []

    def fail(rule: str, field: str, detail: str) -> None:
        failures.append(Failure(rule, field, detail))

    weekday = weekday_ja(script.date)
    if script.weekday != weekday:
        fail("script.date", "weekday", f"weekday is {script.weekday}, but {script.date} is a {weekday}")
    sections = script.sections
    if not sections or sections[0].kind != "opening":
        fail("script.structure", "opening", "the script does not start with the opening")
    else:
        opening = "".join(s.text for s in sections[0].sentences)
        if date_ja(script.date) not in opening:
            fail("script.date", "opening", f"the opening does not say the date {date_ja(script.date)}")
        wrong = [name for name in WEEKDAY_NAMES if name in opening and name != weekday]
        if weekday not in opening or wrong:
            fail("script.date", "opening", f"the opening says {wrong or 'no weekday'}, expected {weekday}")
    if not sections or sections[-1].kind != "closing":
        fail("script.structure", "closing", "the script does not end with the closing")
    elif "バイバイ" not in "".join(s.text for s in sections[-1].sentences):
        fail("script.structure", "closing", "the closing does not sign off (バイバイなのだ)")
    articles = [section for section in sections if section.kind == "article"]
    if [section.title for section in articles] != list(expected_titles):
        fail("script.structure", "segments", f"segments {[s.title for s in articles]} do not match the picks "
                                             f"{list(expected_titles)} (one segment per pick, in order)")
    for index, section in enumerate(articles):
        names = {expected_titles[index]} if index < len(expected_titles) else {section.title}
        if spoken_titles and index < len(spoken_titles):
            names.add(spoken_titles[index])
        head = "".join(s.text for s in section.sentences[:3])
        if not any(f"「{name}」" in head for name in names):
            fail("script.structure", f"segment {index + 1}",
                 f"segment {index + 1} does not name its title 「{section.title}」")
    all_text = [s.text for section in sections for s in section.sentences]
    hers = cohost.name if cohost else None
    ratio = persona_ratio([s.text for section in sections for s in section.sentences if s.speaker != hers])
    if ratio < PERSONA_MIN_RATIO:
        fail("persona.ratio", "script",
             f"persona ratio {ratio:.2f} < {PERSONA_MIN_RATIO} (sentences ending in のだ/なのだ)")
    chars = sum(len(text) for text in all_text)
    low, high = episode_bounds(len(expected_titles))
    if not low <= chars <= high:
        fail("length", "script", f"length {chars} characters is outside {low}-{high} "
                                 f"for {len(expected_titles)} articles")
    for section in sections:
        field = section.kind if section.kind != "article" else f"segment {section.title[:30]}"
        for sentence in section.sentences:
            problems = sorted({*spoken_text_problems(sentence.text), *spoken_text_problems(sentence.speech)})
            if problems:
                rule = "spoken." + problems[0].lower()
                fail(rule, field, f"{'/'.join(problems)} in spoken text: {sentence.text[:60]!r}")
            letters = ascii_letters(sentence.speech)
            if letters:
                fail("speech.ascii", field,
                     f"ASCII letters {letters[:3]} left in speech: {sentence.speech[:60]!r}")
            failures.extend(injection(sentence.text, field, show_title=script.show_title,
                                      cohost=hers or "", by_cohost=sentence.speaker == hers))
        if cohost is None:
            stray = {s.speaker for s in section.sentences} - {"", host}
            if stray:
                fail("dialogue.speaker", field,
                     f"speaker {sorted(stray)[0]!r} but the show has no [show.cohost]")
        else:
            speakers = [s.speaker or host for s in section.sentences]
            texts = [s.text for s in section.sentences]
            if section.kind == "article":
                found = dialogue(texts, speakers, host, cohost, field)
            else:  # the frame: speakers known and her persona kept; the host may speak alone
                found = [failure for failure in dialogue(texts, speakers, host, cohost, field)
                         if failure.rule != "dialogue.both"]
            failures.extend(Failure(f.rule, field, f.detail) for f in found)
    failures.extend(repeats(all_text, "script"))
    return failures


# --- quality figures ----------------------------------------------------------------------------------------

_ENDING = re.compile(r"(なのだ|のだ|です|ます|だ|た|る|い)?([よねー]*)([。！？!?…♪〜~」』）)]*)$")


def sentence_ending(sentence: str) -> str:
    """The sentence's ending as an editor hears it: なのだ！, のだ。, のだ？, です。 ..."""
    text = normalize(sentence.strip()).replace("!", "！").replace("?", "？")
    match = _ENDING.search(text)
    word = (match.group(1) or text.rstrip("。！？…♪〜~」』）)")[-2:]) if match else text[-2:]
    mark = next((ch for ch in reversed(text) if ch in "。！？"), "")
    return word + (match.group(2) if match else "") + mark


def measure(script: Script, rules_fired: list[RuleFired], claims: int, grounded: int) -> Quality:
    sentences = [s.text for section in script.sections for s in section.sentences]
    forms = [sentence_form(sentence) for sentence in sentences]
    endings = Counter(sentence_ending(sentence) for sentence in sentences)
    host_lines = [s.text for section in script.sections for s in section.sentences
                  if not script.cohost or s.speaker != script.cohost]
    return Quality(
        characters=sum(len(sentence) for sentence in sentences),
        sentences=len(sentences),
        persona_ratio=round(persona_ratio(host_lines), 3),
        distinct_sentence_ratio=round(len(set(forms)) / len(forms), 3) if forms else 0.0,
        ending_kinds=len(endings),
        endings=dict(endings.most_common()),
        claims=claims,
        grounded_claim_ratio=round(grounded / claims, 3) if claims else 1.0,
        rules_fired=rules_fired,
        fallbacks=list(script.fallbacks),
    )


# --- the script artifact ----------------------------------------------------------------------------------


def script_markdown(script: Script, failures: list[Failure] | list[str], summaries: list[Summary]) -> str:
    """The artifact: usage and cost, quality figures, every rule that fired and what was done, the gate's
    verdict, then the script itself."""
    from zundacast.models import Usage

    summarized = Usage()
    for summary in summaries:
        summarized = summarized + summary.usage
    total_usage = summarized + script.usage

    def row(stage: str, usage: Usage) -> str:
        return (f"| {stage} | {usage.requests} | {usage.prompt_tokens} | {usage.completion_tokens} | "
                f"{usage.cost_usd:.4f} |")

    quality = script.quality
    lines = [
        f"# {script.show_title} {date_ja(script.date)}（{script.weekday}）",
        "",
        f"writer: `{script.writer}` · {quality.characters} characters · {quality.sentences} sentences · "
        f"persona ratio {quality.persona_ratio:.2f} · "
        f"distinct sentences {quality.distinct_sentence_ratio:.2f} · "
        f"{quality.ending_kinds} sentence endings · grounded claims {quality.grounded_claim_ratio:.2f} "
        f"({quality.claims})",
        "",
        "| stage | requests | prompt tokens | completion tokens | estimated cost (USD) |",
        "|---|---:|---:|---:|---:|",
        row("summarize", summarized),
        row("script", script.usage),
        row("total", total_usage),
        "",
        "**Sentence endings:** " + ", ".join(f"{end} {count}" for end, count in quality.endings.items()),
        "",
    ]
    if script.fallbacks:
        lines += ["**Offline fallbacks:**", *[f"- {item}" for item in script.fallbacks], ""]
    if quality.rules_fired:
        lines += ["**Editorial rules fired:**", "", "| rule | field | article | action | detail |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r.rule} | {r.field} | {r.article} | {r.action} | {r.detail.replace('|', '/')[:80]} |"
                  for r in quality.rules_fired]
        lines.append("")
    else:
        lines += ["**Editorial rules fired:** none", ""]
    verdict = "**Validation:** " + ("passed" if not failures else "FAILED (nothing is published)")
    lines += [verdict, *[f"- {item}" for item in failures], ""]
    for section in script.sections:
        lines += [f"## {section.title}", "", "".join(s.text for s in section.sentences), ""]
    return "\n".join(lines)


def rejected_articles(summaries: list[Summary], script: Script | None = None) -> dict[str, RuleFired]:
    """URL → the first rule that still fails for it after every rewrite and fallback."""
    found: dict[str, RuleFired] = {}
    fired = [r for summary in summaries for r in summary.rules_fired]
    fired += script.quality.rules_fired if script else []
    for rule in fired:
        if rule.action == "rejected" and rule.article and rule.article not in found:
            found[rule.article] = rule
    return found
