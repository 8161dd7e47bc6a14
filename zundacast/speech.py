"""Spoken-text normalization: what every TTS engine should read, plus sentence splitting and persona checks.

The transcript keeps the original spelling; only the speech goes through `to_speech`. OpenJTalk spells
unknown English letter by letter and OpenAI TTS reads it as English, so we turn every ASCII word into
katakana ourselves and all engines say the same thing.
"""

from __future__ import annotations

import functools
import re
import threading
import unicodedata
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from typing import Literal

# --- tables --------------------------------------------------------------------------------------------

# The Japanese way of naming the Latin letters (what listeners hear in エーアイ, ジーピーユー). K and J as the
# reference episodes and engineers say them: ケイブイキャッシュ, ネクストジェイエス.
LETTER_NAMES: dict[str, str] = {
    "A": "エー", "B": "ビー", "C": "シー", "D": "ディー", "E": "イー", "F": "エフ", "G": "ジー",
    "H": "エイチ", "I": "アイ", "J": "ジェイ", "K": "ケイ", "L": "エル", "M": "エム", "N": "エヌ",
    "O": "オー", "P": "ピー", "Q": "キュー", "R": "アール", "S": "エス", "T": "ティー", "U": "ユー",
    "V": "ブイ", "W": "ダブリュー", "X": "エックス", "Y": "ワイ", "Z": "ゼット",
}  # fmt: skip

# A lone digit glued to a name is read in English (K2 → ケイツー, GPT-4o → ジーピーティーフォーオー).
ENGLISH_DIGITS: dict[str, str] = {
    "0": "ゼロ", "1": "ワン", "2": "ツー", "3": "スリー", "4": "フォー", "5": "ファイブ", "6": "シックス",
    "7": "セブン", "8": "エイト", "9": "ナイン",
}  # fmt: skip


def _load_readings(name: str) -> dict[str, str]:
    """A term<TAB>reading table shipped in zundacast/readings (# starts a comment line)."""
    text = resources.files("zundacast").joinpath("readings", name).read_text(encoding="utf-8")
    readings: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            term, reading = line.split("\t")
            readings[term] = reading
    return readings


# Names and words whose reading is not derivable from letters, rules or the model (Nintendo, Azure).
# Matched as whole words, case-sensitive first, then case-insensitive.
BUILTIN_READINGS: dict[str, str] = _load_readings("terms.tsv")
_BUILTIN_ENTRIES: tuple[tuple[str, str], ...] = tuple(BUILTIN_READINGS.items())
# Entries with spaces or symbols are found in the running text; plain words when each token is read, so
# that "gihyo.jp" or "Kimi-K2" stay one token.


def _load_parts() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """parts.tsv as (prefixes, suffixes, whole words); every part of three letters or more is a word too."""
    text = resources.files("zundacast").joinpath("readings", "parts.tsv").read_text(encoding="utf-8")
    tables: dict[str, dict[str, str]] = {"prefix": {}, "suffix": {}, "word": {}}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            part, reading, where = line.split("\t")
            tables[where][part] = reading
            if len(part) >= 3:
                tables["word"][part] = reading
    return tables["prefix"], tables["suffix"], tables["word"]


# Word parts said one fixed way (auto オート, -base ベース, -bot ボット) and loanwords the models misread.
PART_PREFIXES, PART_SUFFIXES, PART_WORDS = _load_parts()
_BUILTIN_PHRASES: tuple[tuple[str, str], ...] = tuple(
    (key, value) for key, value in _BUILTIN_ENTRIES if not key.isalnum()
)

# Units after a number (70GB → 70ギガバイト). Case-sensitive: 10M is not 10m.
UNIT_READINGS: dict[str, str] = {
    "KB": "キロバイト", "MB": "メガバイト", "GB": "ギガバイト", "TB": "テラバイト", "PB": "ペタバイト",
    "Gbps": "ギガビーピーエス", "Mbps": "メガビーピーエス", "GHz": "ギガヘルツ", "MHz": "メガヘルツ",
    "Hz": "ヘルツ", "ms": "ミリ秒", "fps": "エフピーエス", "mm": "ミリ", "cm": "センチ", "km": "キロ",
    "kg": "キロ", "nm": "ナノメートル", "mAh": "ミリアンペアアワー",
    "mW": "ミリワット", "W": "ワット", "kW": "キロワット", "MW": "メガワット", "GW": "ギガワット",
    "Wh": "ワットアワー", "kWh": "キロワットアワー", "MWh": "メガワットアワー", "GWh": "ギガワットアワー",
    "TWh": "テラワットアワー", "mA": "ミリアンペア", "mV": "ミリボルト", "V": "ボルト", "kV": "キロボルト",
    "TOPS": "トップス", "FLOPS": "フロップス", "TFLOPS": "テラフロップス", "PFLOPS": "ペタフロップス",
    "EFLOPS": "エクサフロップス", "ns": "ナノ秒", "μs": "マイクロ秒", "us": "マイクロ秒", "kHz": "キロヘルツ",
    "THz": "テラヘルツ", "Kbps": "キロビーピーエス", "kbps": "キロビーピーエス", "Tbps": "テラビーピーエス",
    "Gb": "ギガビット", "Tb": "テラビット", "KiB": "キビバイト", "MiB": "メビバイト", "GiB": "ギビバイト",
    "TiB": "テビバイト", "μm": "マイクロメートル",
}  # fmt: skip

# --- regexes -------------------------------------------------------------------------------------------

# Full-width punctuation that Japanese text uses on purpose; NFKC would turn it into ASCII.
_KEEP_FULL_WIDTH = re.compile(r"([！？（）：～　…‥])")
# Marks a space between two English words, so it can go once the words are katakana (OpenJTalk pauses
# at spaces) while spaces in the Japanese text stay as written.
_WORD_GAP = "\ue000"
_ENGLISH_GAP = re.compile(r"(?<=[A-Za-z0-9]) (?=[A-Za-z])|(?<=[A-Za-z]) (?=[0-9])")
_URL = re.compile(r"(?:https?://|www\.)[^\s　<>「」『』（）()、。]+")
_MD_LINK = re.compile(r"\[([^\]\n]*)\]\([^)\n]*\)")
_MD_HEADING = re.compile(r"^[ \t]*#{1,6}[ \t]+", re.MULTILINE)
_MD_EMPHASIS = re.compile(r"(?<!\d)\*{1,3}|\*{1,3}(?!\d)|_{2,3}|`+")  # 3*4 is not emphasis
_EMOJI = re.compile(
    "[\U0001f000-\U0001faff\U0001fc00-\U0001ffff\u2600-\u27bf\u2300-\u23ff\u2b00-\u2bff"
    "\ufe0e\ufe0f\u200d\u20e3\U000e0020-\U000e007f]"
)
_ASCII_WORD = r"(?<![A-Za-z0-9])(?:{})(?![A-Za-z0-9])"
_LETTERS = re.compile(r"[A-Za-z]+")
# A run of ASCII letters/digits joined by - / . _ & + ' (each joiner between two alphanumerics).
# Katakana counts too: a dictionary may already have turned part of "Kimi-K2-Instruct" into キミ.
_TOKEN = re.compile(r"[A-Za-z0-9ァ-ヺー]+(?:[-/._&+'][A-Za-z0-9ァ-ヺー]+)*")
_TOKEN_PIECES = re.compile(r"\d+(?:\.\d+)*|[A-Za-z]+|[ァ-ヺー]+|[-/._&+']")
# camelCase / PascalCase / acronym pieces: "GPUs", "VLM" in "FastVLM", "Attention", "v" in "vLLM".
_CAMEL_PIECES = re.compile(r"[A-Z]{2,}s(?![a-z])|[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+")
# A number after a name (Python 3.13, iOS 18) unless a counter or unit follows (GPT-4o 3個, M4 16GB).
_NUMBER_AFTER_NAME = re.compile(
    r"(?<=[A-Za-z])\ue000(\d+(?:\.\d+)?)(?![.,]?\d)"
    r"(?! ?(?:[%％年月日時分秒個台人件回円倍枚本社万億兆歳位割点:/~〜xX×]|(?:"
    + "|".join(sorted(UNIT_READINGS, key=len, reverse=True))
    + r")(?![A-Za-z0-9])))"
)


# --- text clean-up -------------------------------------------------------------------------------------


# Superscripts, which NFKC would flatten into plain digits (n² → n2, read エヌツー): areas and volumes
# after a number (10m² → 10平方メートル), squares and cubes elsewhere (n² → n二乗, 10² → 10の二乗).
_AREA = re.compile(r"(?<=\d) ?([kcm]?)m([²³])(?![A-Za-z0-9])")
_AREA_PREFIXES = {"": "", "k": "キロ", "c": "センチ", "m": "ミリ"}
_POWER_WORDS = {"²": "二乗", "³": "三乗", "2": "二乗", "3": "三乗"}
_SUPERSCRIPT = re.compile(r"(\d?)([²³])")
_CARET_POWER = re.compile(r"(?<=[A-Za-z0-9)])\^(\d+)")


def _read_powers(text: str) -> str:
    text = _AREA.sub(lambda m: ("平方" if m[2] == "²" else "立方") + _AREA_PREFIXES[m[1]] + "メートル", text)
    text = _SUPERSCRIPT.sub(lambda m: m[1] + ("の" if m[1] else "") + _POWER_WORDS[m[2]], text)
    return _CARET_POWER.sub(_caret_power, text)


def _caret_power(match: re.Match[str]) -> str:
    """n^2 → n二乗 as n² is read; a number's power with の (10^9 → 10の9乗), as are higher powers."""
    base_is_number = match.string[match.start() - 1].isdigit()
    return _POWER_WORDS[match[1]] if match[1] in _POWER_WORDS and not base_is_number else f"の{match[1]}乗"


# Big-O notation: O(n log n) → オーダーエヌログエヌ (the O is said オーダー, the brackets not at all).
_BIG_O = re.compile(r"(?<![A-Za-z0-9])O\(((?:[A-Za-z0-9 \ue000+]|二乗|三乗|の\d+乗)+)\)")


def _nfkc_keeping_japanese_punctuation(text: str) -> str:
    parts = _KEEP_FULL_WIDTH.split(text)
    return "".join(
        part if _KEEP_FULL_WIDTH.fullmatch(part) else unicodedata.normalize("NFKC", part) for part in parts
    )


def _strip_markup(text: str) -> str:
    text = _URL.sub("", text)
    text = _MD_LINK.sub(r"\1", text)
    text = _MD_HEADING.sub("", text)
    text = _MD_EMPHASIS.sub("", text)
    return _EMOJI.sub("", text)


# --- numbers and symbols OpenJTalk reads badly ---------------------------------------------------------


def _time_or_ratio(match: re.Match[str]) -> str:
    left, right = match.group(1), match.group(2)
    if len(right) == 2 and int(left) <= 24 and int(right) < 60:
        return f"{int(left)}時" + ("" if right == "00" else f"{int(right)}分")
    return f"{left}対{right}"


# What makes a month/day pair (12/20) a date rather than a fraction: what follows it (a weekday in
# brackets, a time, から/まで/予定 …) or a label before it (発売日は).
_DATE_AFTER = re.compile(
    r"\s*(?:[（(][月火水木金土日][・祝休]*[）)]|\d{1,2}時|[～〜~]|から|まで|予定|以降|以前|時点|付|頃|ごろ"
    r"|発売|公開|発表|開始|開催|配信|リリース|提供|実施|締め?切り?|午前|午後|朝|夜)"
)
_DATE_BEFORE = re.compile(r"(?:(?:日|期限|締め?切り?|期間)(?:は|:|：)|\d{1,2}/\d{1,2}\s*[～〜~])\s*$")
# After に a pair is a fraction when a change of size follows (1/3に減った), or when it is one of the
# fractions news writes (1/2, 2/3, 3/4, 1/10).
_FRACTION_AFTER_NI = re.compile(r"に(?:減|削減|縮小|低下|短縮|抑え|下が|落ち|圧縮|なっ|なる|まで|増|拡大)")
_COMMON_DENOMINATORS = frozenset({2, 3, 4, 5, 8, 10})


def _date_or_fraction(match: re.Match[str]) -> str:
    """12/20 → 12月20日 when it reads as a date in Japanese news; 1/2 → 2分の1 otherwise.

    A pair is a date when its month and day exist and either the text around it says so or it cannot be
    a fraction news would write (12/5: a numerator above its denominator; 11/30: ten or more over a
    number). Without such a sign a small numerator over a larger number (1/3, 3/4 の) stays a fraction.
    """
    left, right = match.group(1), match.group(2)
    month, day = int(left), int(right)
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return f"{right}分の{left}"
    text, end = match.string, match.end()
    after = text[end:]
    if after.startswith("日"):  # 12/20日
        return f"{month}月{day}"
    fraction_like = month < day and (month < 10 or day in _COMMON_DENOMINATORS)
    if after.startswith("に") and not _DATE_AFTER.match(after[1:]):
        date = not _FRACTION_AFTER_NI.match(after) and not (month <= 3 and day in _COMMON_DENOMINATORS)
    else:
        date = (
            not fraction_like
            or bool(_DATE_AFTER.match(after.removeprefix("に")))
            or bool(_DATE_BEFORE.search(text[: match.start()]))
        )
    return f"{month}月{day}日" if date else f"{right}分の{left}"


_NUMBER_RULES: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    # 2024/12/18 → 2024年12月18日 (OpenJTalk reads the slashes as nothing)
    (
        re.compile(r"(?<![\d/])(\d{4})/(\d{1,2})/(\d{1,2})(?![\d/])"),
        lambda m: f"{m[1]}年{int(m[2])}月{int(m[3])}日",
    ),
    (re.compile(r"(?<![\d:])(\d{1,2}):(\d{1,2})(?![\d:])"), _time_or_ratio),
    # 512x512 → 512かける512; 2x → 2倍 (OpenJTalk says "x" or nothing)
    # Mixtral 8x7B → ハチかけナナビー (a mixture of experts' size: eight experts of 7B)
    (
        re.compile(r"(?<![\d.])(\d+)[xX×](\d+(?:\.\d+)?)([BMKT])(?![A-Za-z0-9])"),
        lambda m: f"{number_kana(m[1])}かけ{number_kana(m[2])}{LETTER_NAMES[m[3]]}",
    ),
    (re.compile(r"(?<=\d) ?[xX×] ?(?=\d)"), "かける"),
    (re.compile(r"(?<![A-Za-z])(\d+(?:\.\d+)?)[xX×](?![A-Za-z0-9])"), r"\1倍"),
    # 1.2.3 → 1テン2テン3 (OpenJTalk stops reading after the second dot)
    (re.compile(r"\d+(?:\.\d+){2,}"), lambda m: "テン".join(m[0].split("."))),
    # v2, v1.0 standing alone → バージョン2
    # (not after a hyphen: DeepSeek-V3 is ブイスリー)
    (re.compile(r"(?<![A-Za-z0-9.\-])[vV](\d+(?:\.\d+)*)(?![A-Za-z0-9])"), r"バージョン\1"),
    # re:Invent, re:Mix → リインベント (the "re:" of event names is the prefix re-)
    (re.compile(r"(?<![A-Za-z0-9])[rR]e:(?=[A-Za-z])"), "リ"),
    # .env, .yaml at the start of a name → ドット (inside a name the token reader says it)
    (re.compile(r"(?<![A-Za-z0-9])\.(?=[A-Za-z])"), "ドット"),
    (re.compile(r"(?:(?<![A-Za-z0-9])US)?\$ ?(\d[\d,]*(?:\.\d+)?)"), r"\1ドル"),
    (re.compile(r"[¥￥] ?(\d[\d,]*)"), r"\1円"),
    (re.compile(r"€ ?(\d[\d,]*(?:\.\d+)?)"), r"\1ユーロ"),
    (re.compile(r"(?<![\d/])(?<!\d\.)(\d+)/(\d+)(?![\d/]|\.\d)"), _date_or_fraction),
    (re.compile(r"(?<=\d) ?[~〜～] ?(?=\d)"), "から"),
    (re.compile(r"(?<=日) ?[~〜～] ?(?=\d{1,2}月)"), "から"),  # 12月20日〜12月25日
    (
        re.compile(
            # "60 Wh": by now the space between a digit and a letter is a word gap
            f"(?<=\\d)[ {_WORD_GAP}]?("
            + "|".join(sorted(UNIT_READINGS, key=len, reverse=True))
            + r")(?![A-Za-z0-9])"
        ),
        lambda m: UNIT_READINGS[m[1]],
    ),
]


def _read_numbers(text: str) -> str:
    for pattern, replacement in _NUMBER_RULES:
        text = pattern.sub(replacement, text)
    return text


_SYMBOL_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r" ?& ?"), "アンド"),
    (re.compile(r"(?<=\S) ?\+ ?(?=\S)"), "プラス"),
    (re.compile(r" = "), "イコール"),
    (re.compile(r"(?<=[A-Za-z0-9])@(?=[A-Za-z0-9])"), "アット"),
    (re.compile(r" [|｜] |[|｜]"), "、"),
    (re.compile(r" ?/ ?"), "・"),
    (re.compile(r"#(?=\d)"), "ナンバー"),
    (re.compile(r"[#\\^<>\"“”]"), ""),
]


def _read_symbols(text: str) -> str:
    for pattern, replacement in _SYMBOL_RULES:
        text = pattern.sub(replacement, text)
    return text


# --- dictionaries --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _word_patterns(entries: tuple[tuple[str, str], ...]) -> tuple[re.Pattern[str], re.Pattern[str]] | None:
    """Case-sensitive and case-insensitive whole-word patterns for the keys, longest first."""
    keys = sorted((key for key, _ in entries if key), key=len, reverse=True)
    if not keys:
        return None
    alternation = "|".join(re.escape(key).replace("\\ ", f"[ {_WORD_GAP}]") for key in keys)
    return re.compile(_ASCII_WORD.format(alternation)), re.compile(_ASCII_WORD.format(alternation), re.I)


def _apply_dictionary(text: str, entries: tuple[tuple[str, str], ...]) -> str:
    patterns = _word_patterns(entries)
    if patterns is None:
        return text
    exact = dict(entries)
    folded = {key.casefold(): value for key, value in reversed(entries)}
    exact_pattern, folded_pattern = patterns
    text = exact_pattern.sub(lambda m: exact[m[0].replace(_WORD_GAP, " ")], text)
    return folded_pattern.sub(lambda m: folded.get(m[0].replace(_WORD_GAP, " ").casefold(), m[0]), text)


Tables = tuple[tuple[dict[str, str], dict[str, str]], ...]


@functools.lru_cache(maxsize=64)
def _tables(entries: tuple[tuple[str, str], ...]) -> Tables:
    """(exact, case-folded) lookups: the show's dictionary first, then the built-in readings."""
    tables = []
    for table_entries in (entries, _BUILTIN_ENTRIES):
        exact = dict(table_entries)
        folded = {key.casefold(): value for key, value in reversed(table_entries)}
        tables.append((exact, folded))
    return tuple(tables)


def _lookup(word: str, tables: Tables) -> str | None:
    for exact, _ in tables:
        if word in exact:
            return exact[word]
    folded = word.casefold()
    for _, folded_table in tables:
        if folded in folded_table:
            return folded_table[folded]
    return None


# --- numbers inside names -----------------------------------------------------------------------------

_DIGIT_KANA = ("ゼロ", "イチ", "ニ", "サン", "ヨン", "ゴ", "ロク", "ナナ", "ハチ", "キュー")
_HUNDREDS = {1: "ヒャク", 3: "サンビャク", 6: "ロッピャク", 8: "ハッピャク"}
_THOUSANDS = {1: "セン", 3: "サンゼン", 8: "ハッセン"}


def _integer_kana(n: int) -> str:
    if n == 0:
        return "ゼロ"
    if n >= 10000:
        high, low = divmod(n, 10000)
        return _integer_kana(high) + "マン" + (_integer_kana(low) if low else "")
    thousands, rest = divmod(n, 1000)
    hundreds, rest = divmod(rest, 100)
    tens, ones = divmod(rest, 10)
    out = _THOUSANDS.get(thousands, _DIGIT_KANA[thousands] + "セン") if thousands else ""
    out += _HUNDREDS.get(hundreds, _DIGIT_KANA[hundreds] + "ヒャク") if hundreds else ""
    out += ("" if tens == 1 else _DIGIT_KANA[tens]) + "ジュー" if tens else ""
    return out + (_DIGIT_KANA[ones] if ones else "")


def number_kana(number: str) -> str:
    """A version or model number as said: 18 → ジューハチ, 3.13 → サンテンイチサン, 1.22 → イッテンニーニー.

    Written out in katakana (not left as digits) so the reading is the same whatever engine or checker
    reads it; the forms follow OpenJTalk's own reading of the digits.
    """
    whole, _, fraction = number.partition(".")
    if len(whole) > 4 or (len(whole) > 1 and whole.startswith("0")):  # an ID (tn-20261119-0031): digits
        head = "".join(_DIGIT_KANA[int(digit)] for digit in whole)
    else:
        head = _integer_kana(int(whole))
    if not fraction:
        return head
    head = {"ゼロ": "レー", "ニ": "ニー", "ゴ": "ゴー"}.get(head, head)
    for full, clipped in (("イチ", "イッ"), ("ハチ", "ハッ"), ("ジュー", "ジュッ")):
        if head.endswith(full):
            head = head[: -len(full)] + clipped
            break
    stretched = {"2": "ニー", "5": "ゴー"} if len(fraction) > 1 else {}
    return head + "テン" + "".join(stretched.get(digit, _DIGIT_KANA[int(digit)]) for digit in fraction)


# Digits of an identifier said one by one, stretched as when reading out a number (ニー, ゴー); standard
# numbers say 0 as マル (エックスゴーマルキュー, ハチマルニー), other ids as ゼロ.
_ID_DIGITS = ("ゼロ", "イチ", "ニー", "サン", "ヨン", "ゴー", "ロク", "ナナ", "ハチ", "キュー")


def id_digits(digits: str, zero: str = "ゼロ") -> str:
    """An identifier's digits one by one: 2026 → ニーゼロニーロク, with zero="マル" 509 → ゴーマルキュー."""
    return "".join(zero if digit == "0" else _ID_DIGITS[int(digit)] for digit in digits)


def _standard_number(match: re.Match[str]) -> str:
    """IEEE 802.11be → IEEE ハチマルニーテンイチイチビーイー (letters spelled: "be" is no word here)."""
    prefix, *numbers, letters = match.groups()
    digits = "テン".join(id_digits(group, "マル") for group in numbers if group)
    return (prefix or "") + digits + spell_letters(letters or "")


def _id_groups(match: re.Match[str]) -> str:
    """The id's name, then its second and third groups' digits, each after a pause."""
    return match[1] + "、" + id_digits(match[2]) + "、" + id_digits(match[3])


_ID_RULES: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    # ITU-T and similar standards (X.509, H.264, G.711): the letter, then the digits one by one
    (
        re.compile(r"(?<![A-Za-z0-9.])([A-Z])\.(\d{2,4})(?![0-9]|\.\d)"),
        lambda m: spell_letters(m[1]) + id_digits(m[2], "マル"),
    ),
    # IEEE 802.11ax, IEEE 754, 802.3: the numbers of a standard, digit by digit with テン at the dots
    (
        re.compile(r"(IEEE[ \ue000])(\d{3,4})(?:\.(\d{1,3})([A-Za-z]{1,2})?)?(?![A-Za-z0-9]|\.\d)"),
        _standard_number,
    ),
    (re.compile(r"()(?<![\d.])(802)\.(\d{1,2})([A-Za-z]{1,2})?(?![A-Za-z0-9]|\.\d)"), _standard_number),
    # CVE-2026-12345, JVNDB-2026-001234: the groups with a pause between, never one long number
    (re.compile(r"(?<![A-Za-z0-9-])([A-Z]{2,6})-(\d{4})-(\d{3,8})(?![0-9])"), _id_groups),
    # arXiv:2612.04417v2: the id in its two groups (a decimal it is not), then the version
    (
        re.compile(r"(?<![A-Za-z0-9])(arXiv)[: \ue000]?(\d{4})\.(\d{4,5})(?:v(\d+))?(?![0-9])", re.I),
        lambda m: _id_groups(m) + (f"、バージョン{m[4]}" if m[4] else ""),
    ),
]


# Amounts in English scale words ($3.2 billion, 120 million, €2B) in Japanese units: 32億ドル. Spelled
# scales are read with or without a currency; K/M/B/T only right after a currency sign ($120M).
_SCALES = {"thousand": 10**3, "million": 10**6, "billion": 10**9, "trillion": 10**12}
_SCALE_LETTERS = {"K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}
_CURRENCIES = {"$": "ドル", "US$": "ドル", "€": "ユーロ", "¥": "円", "dollar": "ドル", "dollars": "ドル"}
_CURRENCIES |= {"USD": "ドル", "euro": "ユーロ", "euros": "ユーロ", "EUR": "ユーロ", "yen": "円", "JPY": "円"}
_SCALED_AMOUNT = re.compile(
    r"(?<![A-Za-z0-9])(US\$|\$|€|¥)? ?(\d[\d,]*(?:\.\d+)?)"
    r"(?:[ \ue000](thousand|million|billion|trillion)|([KMBT]))(?![A-Za-z0-9])"
    r"(?:[ \ue000](dollars?|USD|euros?|EUR|yen|JPY)(?![A-Za-z0-9]))?"
)
_JAPANESE_UNITS = (("兆", 10**12), ("億", 10**8), ("万", 10**4))


def _japanese_amount(number: int) -> str:
    """120000000 → 1億2000万: the digits between the units, as Japanese news writes an amount."""
    out = ""
    for unit, size in _JAPANESE_UNITS:
        count, number = divmod(number, size)
        out += f"{count}{unit}" if count else ""
    return out + (str(number) if number or not out else "")


def _scaled_amount(match: re.Match[str]) -> str:
    sign, number, word, letter, currency = match.groups()
    if letter and not sign:  # 7B, 1M are model sizes and counts, not amounts
        return match[0]
    scale = _SCALES[word] if word else _SCALE_LETTERS[letter]
    amount = int((Decimal(number.replace(",", "")) * scale).to_integral_value(ROUND_HALF_UP))
    return _japanese_amount(amount) + _CURRENCIES.get(sign or currency or "", "")


def _read_ids(text: str) -> str:
    for pattern, replacement in _ID_RULES:
        text = pattern.sub(replacement, text)
    return text


def _name_number(number: str, english: bool) -> str:
    """A number in or after a name: one digit in English (GPT-4o, Python 3), others the Japanese way."""
    return ENGLISH_DIGITS[number] if english and len(number) == 1 else number_kana(number)


# --- English → katakana --------------------------------------------------------------------------------

EnglishModel = Literal["combined", "kanalizer", "e2k"]
_model_lock = threading.Lock()
_VOWEL = re.compile(r"[aeiouyAEIOUY]")
# Two lowercase letters are an abbreviation (uv, ai, ml) unless they are one of these English words.
_TWO_LETTER_WORDS = frozenset(
    {"am", "an", "as", "at", "be", "by", "do", "go", "he", "hi", "if", "in", "is", "it", "me", "my", "no"}
    | {"of", "oh", "on", "or", "so", "to", "up", "us", "we"}
)
# Kanalizer writes the English diphthong of a long a as エイ (レプリケイト, メイカー, デイト); Japanese
# writes エー unless the spelling itself has the diphthong (Rails → レイルズ, Tailwind → テイルウィンド).
_DIPHTHONG_SPELLING = re.compile(r"ai|ay|ei|ey")
_LONG_E_AS_DIPHTHONG = re.compile(r"([エケセテネヘメレゲゼデベペェ])イ")
# Kanalizer writes ヴ; Japanese tech writing (and OpenJTalk's reading) uses the バ row: ビジョン, デブ.
_V_ROW = (("ヴァ", "バ"), ("ヴィ", "ビ"), ("ヴェ", "ベ"), ("ヴォ", "ボ"), ("ヴュ", "ビュ"), ("ヴ", "ブ"))


# Words ending in these sounds end in a short ア in Japanese loanwords (エア, ファイア, クリア, ギア);
# the models write エアー, ファイアー.
_OPEN_AR_ENDING = re.compile(r"(?:air|ire|ear|eer)$")
# A daemon's name is its program's name and a d said as a letter: containerd, systemd, journald.
_DAEMON = re.compile(r"([a-z]{4,}(?:er|em|al))d")


@functools.lru_cache(maxsize=1)
def _c2k() -> Callable[[str], str]:
    import e2k  # imported late: loading the model takes a moment and many callers never need it

    return e2k.C2K()


def _e2k(word: str) -> str | None:
    with _model_lock:
        reading = _c2k()(word)
    return reading or None


def _kanalizer(word: str) -> str | None:
    """Kanalizer's reading (the model in the wheel, no download), None if it does not finish the word."""
    import kanalizer

    try:
        with _model_lock:
            return kanalizer.convert(word, on_incomplete="error") or None
    except (kanalizer.IncompleteConversionError, ValueError):
        return None


@functools.lru_cache(maxsize=16384)
def english_to_katakana(word: str, model: EnglishModel = "combined") -> str:
    """Katakana for one English word; letter names if the model gives nothing.

    "combined" picks the model by case. A capitalized word is most often a name (Nintendo, Toyota,
    Snowflake, the Tech of "Tech Blog"): kanalizer reads names closer to how they are said (ニンテンドー,
    テック, where e2k says ニンテンド, テッチ), with its long a written the Japanese way (メーカー).
    A lowercase word is ordinary English (image, training, storage): e2k writes the established
    loanword (イメージ, トレーニング, ストレージ, where kanalizer writes イマージュ, トレイニング,
    ストレッジ). The other model answers when the first gives nothing.
    """
    lowered = word.lower()
    if model == "e2k":
        reading = _e2k(lowered)
    elif model == "kanalizer":
        reading = _kanalizer(lowered)
    elif word[:1].isupper():
        reading = _kanalizer(lowered)
        if reading and not _DIPHTHONG_SPELLING.search(lowered):
            reading = _LONG_E_AS_DIPHTHONG.sub(r"\1ー", reading)  # Replicate → レプリケート
        if reading and lowered.endswith("age") and reading.endswith(("ジュ", "ッジ")):
            reading = _e2k(lowered) or reading  # Image, Storage: イメージ, ストレージ (kanalizer: イマージュ)
        reading = reading or _e2k(lowered)
    else:
        reading = _e2k(lowered) or _kanalizer(lowered)
    if not reading or _LETTERS.search(reading):
        return spell_letters(word)
    for written, said in _V_ROW:
        reading = reading.replace(written, said)
    if _OPEN_AR_ENDING.search(lowered) and reading.endswith("アー"):
        reading = reading[:-1]  # air, fire, clear: エア, ファイア, クリア as in エアコン, ファイアウォール
    return reading


def spell_letters(letters: str) -> str:
    return "".join(LETTER_NAMES.get(ch.upper(), "") for ch in letters)


def _read_letter_run(run: str, tables: Tables, model: EnglishModel) -> str:
    """One run of ASCII letters: dictionary, then camelCase pieces, each an acronym or an English word."""
    known = _lookup(run, tables)
    if known is not None:
        return known
    if len(run) == 2 and run.islower() and run not in _TWO_LETTER_WORDS:
        return spell_letters(run)
    if len(run) > 4 and (known := _lookup(run[1:], tables)) is not None:  # QLoRA, iCloud: a letter + a name
        return spell_letters(run[0]) + known
    readings: list[str] = []
    for piece in _CAMEL_PIECES.findall(run):
        known = _lookup(piece, tables)
        if known is not None:
            readings.append(known)
        elif len(piece) > 2 and piece[:-1].isupper() and piece.endswith("s"):  # GPUs, LLMs
            readings.append(spell_letters(piece[:-1]) + "ズ")
        elif len(piece) == 1 or piece.isupper() or not _VOWEL.search(piece):  # GPU, the v of IPv6, cs, npm
            readings.append(spell_letters(piece))
        else:
            readings.append(_read_word(piece, model))
    return "".join(readings)


def _read_part_rest(rest: str, capitalized: bool, model: EnglishModel) -> str:
    known = PART_WORDS.get(rest)
    if known is not None:
        return known
    return english_to_katakana(rest.capitalize() if capitalized else rest, model)


def _read_word(word: str, model: EnglishModel) -> str:
    """One English word: a listed part or loanword, a compound of a listed part and a rest, or the model.

    Compound names are read part by part (Supabase → スーパーベース, Dependabot → ディペンダボット): the
    models read a glued name as one word and blur the parts (スパベース, ディペンダボト).
    """
    lowered = word.lower()
    known = PART_WORDS.get(lowered)
    if known is not None:
        return known
    if word.islower() and (daemon := _DAEMON.fullmatch(word)):
        return english_to_katakana(daemon[1], model) + "ディー"
    capitalized = word[:1].isupper()
    for prefix in sorted(PART_PREFIXES, key=len, reverse=True):
        rest = lowered[len(prefix) :]
        if (
            lowered.startswith(prefix)
            and len(rest) >= 3
            and _VOWEL.search(rest)
            and (prefix != "re" or rest in PART_WORDS)
        ):
            return PART_PREFIXES[prefix] + _read_part_rest(rest, capitalized, model)
    for suffix in sorted(PART_SUFFIXES, key=len, reverse=True):
        rest = lowered[: -len(suffix)]
        if lowered.endswith(suffix) and len(rest) >= 3 and _VOWEL.search(rest):
            return _read_part_rest(rest, capitalized, model) + PART_SUFFIXES[suffix]
    return english_to_katakana(word, model)


# Stems of file names, where ".js" is said as ドットジェイエス (index.js); elsewhere it ends a library name
# and is said without the dot (Next.js → ネクストジェイエス).
_FILE_STEMS = frozenset(
    {"index", "main", "app", "server", "client", "config", "script", "scripts", "bundle", "test", "tests"}
    | {"setup", "util", "utils", "worker", "sw", "vite", "webpack", "babel", "eslint", "jest", "rollup"}
)
_ARXIV_CATEGORY = re.compile(r"[a-z]{2,5}\.[A-Z]{2}")  # cs.CL, stat.ML: the dot is not said


def _silent_dot(token: str, pieces: list[str], index: int) -> bool:
    after = pieces[index + 1] if index + 1 < len(pieces) else ""
    last = all(not piece.isascii() for piece in pieces[index + 2 :])  # Next.js, Next.js15 (a read number)
    if after.lower() == "js" and last and token.count(".") == 1:
        return pieces[index - 1].lower() not in _FILE_STEMS if index else False
    return bool(_ARXIV_CATEGORY.fullmatch(token))


def _read_token(token: str, tables: Tables, model: EnglishModel) -> str:
    """An ASCII token such as Kimi-K2-Instruct, CLIP-ViT/L14, settings.yaml or GPT-4o."""
    known = _lookup(token, tables)
    if known is not None:
        return known
    if not _LETTERS.search(token):
        return token
    pieces = _TOKEN_PIECES.findall(re.sub(r"'s$", "", token))
    readings: list[str] = []
    for index, piece in enumerate(pieces):
        if piece[0].isdigit():
            before = pieces[index - 1] if index else ""
            after = pieces[index + 1] if index + 1 < len(pieces) else ""
            # 7B, 4K, 1M (sizes, resolutions) are Japanese numbers; K2, 4o, HTTP/3, Qwen3 are English
            size = after in ("B", "K", "M") and index + 2 == len(pieces) and not before.isalpha()
            glued = before.isalpha() or after.isalpha() or before in "-_/" or after in "-_/"
            readings.append(_name_number(piece, glued and not size))
        elif piece.isascii() and piece.isalpha():
            readings.append(_read_letter_run(piece, tables, model))
        elif piece.isalpha():  # katakana a dictionary put there
            readings.append(piece)
        elif piece == ".":
            readings.append("" if _silent_dot(token, pieces, index) else "ドット")
        elif piece == "&":
            readings.append("アンド")
        elif piece == "+":
            readings.append("プラス")
        # - / _ ' join the parts without a sound
    return "".join(readings)


# --- public functions ----------------------------------------------------------------------------------


def to_speech(
    text: str, dictionary: dict[str, str] | None = None, *, english_model: EnglishModel = "combined"
) -> str:
    """What a TTS engine should read for display text: Japanese untouched, no ASCII letters left.

    Order: NFKC; drop URLs, markdown and emoji; the show's pronunciation dictionary (wins over all);
    numbers after names (Python 3.13, iOS 18); the built-in readings; numbers and symbols; then each
    remaining ASCII word by letter names (acronyms), camelCase pieces, word parts (parts.tsv: Supabase →
    スーパー + ベース) and the English→katakana model
    (`english_model`: kanalizer then e2k, or one of them alone to measure it).
    """
    entries = tuple(sorted((dictionary or {}).items()))
    return _to_speech(text, entries, english_model)


@functools.lru_cache(maxsize=4096)
def _to_speech(text: str, entries: tuple[tuple[str, str], ...], model: EnglishModel) -> str:
    text = _read_powers(text)
    text = _nfkc_keeping_japanese_punctuation(text)
    text = _strip_markup(text)
    text = _ENGLISH_GAP.sub(_WORD_GAP, text)
    text = _apply_dictionary(text, entries)
    # ids, Big-O and scaled amounts before a number after a name is read (IEEE 802.11, raised $3 billion)
    text = _read_ids(text)
    text = _BIG_O.sub(r"オーダー\1", text)
    text = _SCALED_AMOUNT.sub(_scaled_amount, text)
    # "AirPods Pro 2", "Python 3.13", "iOS 18": a number after a name is part of the name
    text = _NUMBER_AFTER_NAME.sub(lambda m: _name_number(m[1], english=True), text)
    text = _apply_dictionary(text, _BUILTIN_PHRASES)
    text = _read_numbers(text)
    tables = _tables(entries)
    text = _TOKEN.sub(lambda m: _read_token(m[0], tables, model), text)
    text = _read_symbols(text)
    text = _LETTERS.sub(lambda m: spell_letters(m[0]), text)  # anything a dictionary value brought back
    text = re.sub(f"(?<=\\d){_WORD_GAP}(?=\\d)", " ", text).replace(_WORD_GAP, "")
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def ascii_letters(text: str) -> list[str]:
    """The runs of ASCII letters in text (what to_speech must leave none of)."""
    return _LETTERS.findall(text)


_TERMINATORS = "。！？!?"
_CLOSERS = "」』）)］]】〕〉》\"'”’"
_BRACKETS = {"「": "」", "『": "』", "（": "）", "(": ")", "【": "】", "〔": "〕", "［": "］", "[": "]"}
_SOFT_BREAKS = "、，, 　"


def _quoted_positions(line: str) -> list[bool]:
    """For each character, whether it sits inside a bracket pair that closes on the same line."""
    inside = [False] * len(line)
    stack: list[tuple[str, int]] = []
    for index, ch in enumerate(line):
        if ch in _BRACKETS:
            stack.append((_BRACKETS[ch], index))
        elif stack and ch == stack[-1][0]:
            _, start = stack.pop()
            for position in range(start + 1, index):
                inside[position] = True
        elif any(ch == closer for closer, _ in stack):  # a missing closer: drop the unclosed openers
            while stack and stack[-1][0] != ch:
                stack.pop()
            _, start = stack.pop()
            for position in range(start + 1, index):
                inside[position] = True
    return inside


def _split_line(line: str) -> list[str]:
    inside = _quoted_positions(line)
    pieces: list[str] = []
    start = index = 0
    while index < len(line):
        if line[index] in _TERMINATORS and not inside[index]:
            while index + 1 < len(line) and line[index + 1] in _TERMINATORS:
                index += 1
            while index + 1 < len(line) and line[index + 1] in _CLOSERS:
                index += 1
            pieces.append(line[start : index + 1])
            start = index + 1
        index += 1
    pieces.append(line[start:])
    return pieces


def _cut_long(piece: str, max_chars: int) -> list[str]:
    """Cut a piece longer than max_chars after 。/、/spaces, else before an ASCII word, else anywhere."""
    out: list[str] = []
    while len(piece) > max_chars:
        window = piece[: max_chars + 1]
        cut = 0
        for breaks in (_TERMINATORS, _SOFT_BREAKS):
            cut = max((window.rfind(ch, 1, max_chars) for ch in breaks), default=-1) + 1
            if cut > 0:
                break
        if cut <= 0:
            cut = max_chars
            while (
                cut > 1
                and piece[cut - 1].isascii()
                and piece[cut - 1].isalnum()
                and piece[cut].isascii()
                and piece[cut].isalnum()
            ):
                cut -= 1
            if cut <= 1:
                cut = max_chars
        while cut < len(piece) and piece[cut] in _CLOSERS:
            cut += 1
        head, piece = piece[:cut].strip(), piece[cut:].lstrip(_SOFT_BREAKS)
        if head:
            out.append(head)
    if piece.strip():
        out.append(piece.strip())
    return out


def split_sentences(text: str, max_chars: int = 120) -> list[str]:
    """Utterances of Japanese prose: cut after 。！？!? runs (with their closing quotes) and at newlines.

    A 。 inside a 「quote」 does not end the sentence. Pieces over max_chars are cut at 、 or spaces.
    Never returns empty or punctuation-only pieces (those join the piece before, or are dropped).
    """
    if max_chars < 2:
        raise ValueError(f"max_chars must be at least 2, got {max_chars}")
    sentences: list[str] = []
    for line in text.splitlines():
        for piece in _split_line(line):
            piece = piece.strip(" \t　")
            if not piece:
                continue
            if all(ch in _TERMINATORS + _CLOSERS + "…・ー" for ch in piece):
                if sentences:  # nothing to say on its own: it belongs to the sentence before
                    sentences[-1] += piece
                continue
            sentences.extend(_cut_long(piece, max_chars))
    return sentences


_PERSONA_TRAILER = " \t　。．.、,！？!?」』）)〕】\"'”’…♪〜~"
_PERSONA_ENDING = re.compile(r"のだ(?:よね|よ|ね)?ー*$")


def sentence_ends_in_persona(sentence: str) -> bool:
    """True if the sentence ends in のだ/なのだ (optionally よ/ね/ー), ignoring closing punctuation."""
    return bool(_PERSONA_ENDING.search(sentence.rstrip(_PERSONA_TRAILER)))


def persona_ratio(sentences: list[str]) -> float:
    """Share of sentences ending in the persona's のだ; 0.0 for no sentences."""
    if not sentences:
        return 0.0
    return sum(sentence_ends_in_persona(sentence) for sentence in sentences) / len(sentences)
