"""Spoken-text normalization: readings of the reference episodes' terms, sentence splitting, persona."""

from __future__ import annotations

import pytest

from zundacast.speech import (
    ascii_letters,
    persona_ratio,
    sentence_ends_in_persona,
    split_sentences,
    to_speech,
)

# The terms of /work/shared/reference/episode-*.txt and the reading chosen for each. The reference
# writes K as ケイ (キミケイツー, ケイブイ); we use the standard letter name ケー throughout.
REFERENCE_TERMS = [
    ("FastVLM", "ファストブイエルエム"),
    ("NVIDIA NIM", "エヌビディアニム"),
    ("Kimi-K2-Instruct", "キミケーツーインストラクト"),
    ("MoE", "エムオーイー"),
    ("FlashAttention", "フラッシュアテンション"),
    ("MobileDiffusion", "モバイルディフュージョン"),
    ("CLIP-ViT/L14", "クリップビットエル14"),
    ("GraphRAG 1.0", "グラフラグ1.0"),
    ("settings.yaml", "セッティングスドットヤムル"),
    ("AirPods Pro 2", "エアポッズプロツー"),
    ("CUDA", "クーダ"),
    ("KV cache", "ケーブイキャッシュ"),
    ("iOS 18", "アイオーエス18"),
]


@pytest.mark.parametrize(("display", "spoken"), REFERENCE_TERMS)
def test_reference_terms_read_as_chosen(display: str, spoken: str) -> None:
    assert to_speech(display) == spoken
    assert ascii_letters(to_speech(display)) == []


@pytest.mark.parametrize(
    ("display", "spoken"),
    [
        ("AIとGPUとLLM", "エーアイとジーピーユーとエルエルエム"),  # acronyms letter by letter
        ("VLMs", "ブイエルエムズ"),
        ("vLLM", "ブイエルエルエム"),
        ("GPT-4o-mini", "ジーピーティーフォーオーミニ"),  # a lone digit inside a name is English
        ("DeepSeek-R1", "ディープシークアールワン"),
        ("H100", "エイチ100"),  # longer numbers stay digits: OpenJTalk reads エイチヒャク
        ("Python 3", "パイソンスリー"),
        ("Python 3.11", "パイソン3.11"),
        ("C++とC#と.NET", "シープラスプラスとシーシャープとドットネット"),
        ("Q&A", "キューアンドエー"),
        ("I/O", "アイオー"),
        ("Hugging Face", "ハギングフェイス"),
        ("gihyo.jp", "ギヒョードットジェーピー"),
        ("`.env`ファイル", "ドットエンブファイル"),
        ("OpenAI's model", "オープンエーアイモデル"),
        ("text-to-image", "テキストトゥーイメージ"),
        ("ＡＩ", "エーアイ"),  # full-width letters are NFKC-normalized first
    ],
)
def test_names_acronyms_and_joined_words(display: str, spoken: str) -> None:
    assert to_speech(display) == spoken


@pytest.mark.parametrize(
    ("display", "spoken"),
    [
        ("512x512の画像", "512かける512の画像"),
        ("2x速い", "2倍速い"),
        ("85%", "85%"),  # OpenJTalk reads パーセント itself
        ("v2", "バージョン2"),
        ("v1.2.3", "バージョン1テン2テン3"),
        ("2024/12/18", "2024年12月18日"),
        ("10:30に", "10時30分に"),
        ("16:9", "16対9"),
        ("$100", "100ドル"),
        ("10~20", "10から20"),
        ("1/2", "2分の1"),
        ("70GB", "70ギガバイト"),
        ("100ms", "100ミリ秒"),
        ("入力/出力", "入力・出力"),
        ("12月18日、水曜日", "12月18日、水曜日"),
    ],
)
def test_numbers_units_and_symbols(display: str, spoken: str) -> None:
    assert to_speech(display) == spoken


@pytest.mark.parametrize(
    "japanese",
    [
        "おーっす、みんな！ぼく、ずんだもんなのだ！",
        "今日は2025年7月24日、木曜日なのだ。",
        "「株式会社ずんだもん技術室」、今日も元気に始めるのだ…どうかな？",
        "（つまり、スマホの中で賢く働くってことなのだ！）",
    ],
)
def test_japanese_text_passes_through_unchanged(japanese: str) -> None:
    assert to_speech(japanese) == japanese


@pytest.mark.parametrize(
    ("display", "spoken"),
    [
        ("詳しくは https://example.com/a?b=1 を見るのだ", "詳しくは を見るのだ"),
        ("www.example.org を見るのだ", "を見るのだ"),
        ("**重要**なのだ", "重要なのだ"),
        ("## 見出し\n本文なのだ", "見出し\n本文なのだ"),
        ("`graphrag init`コマンド", "グラフラグイニットコマンド"),
        ("[記事](https://example.com)なのだ", "記事なのだ"),
        ("すごい🎉のだ👍🏻！", "すごいのだ！"),
    ],
)
def test_urls_markdown_and_emoji_removed(display: str, spoken: str) -> None:
    assert to_speech(display) == spoken


@pytest.mark.parametrize(
    ("display", "dictionary", "spoken"),
    [
        ("Apple", {"Apple": "りんご"}, "りんご"),  # a user entry beats the built-in アップル
        ("apple pie", {"Apple": "りんご"}, "りんごパイ"),  # case-insensitive when no exact match
        ("GraphRAG", {"RAG": "アールエージー"}, "グラフアールエージー"),  # also inside a camelCase name
        ("NVIDIA NIM", {"NVIDIA NIM": "ニム"}, "ニム"),  # longest entry first
        ("Pineapple", {"apple": "りんご"}, to_speech("Pineapple")),  # whole words only
        ("ZUNDA zunda", {"ZUNDA": "ずんだ", "zunda": "ズンダ"}, "ずんだズンダ"),  # exact case first
    ],
)
def test_dictionary_wins_over_builtins(display: str, dictionary: dict[str, str], spoken: str) -> None:
    assert to_speech(display, dictionary) == spoken


def test_reference_episode_has_no_ascii_letters_left() -> None:
    text = (
        "「MobileDiffusion: Rapid text-to-image generation on-device」なのだ。"
        "軽いCLIP-ViT/L14モデルと拡散UNet、VAEデコーダを使うのだ。"
        "`settings.yaml`ファイルと`.env`ファイルが作られ、GitHubとPyPIで公開されているのだ。"
        "Microsoft、GraphRAG 1.0をリリース ―セットアップやCUIを改善 | gihyo.jp"
    )
    spoken = to_speech(text)
    assert ascii_letters(text)
    assert ascii_letters(spoken) == []
    assert "モバイルディフュージョン" in spoken and "ギットハブ" in spoken and "マイクロソフト" in spoken
    assert to_speech(text) == spoken  # deterministic


def test_openjtalk_reads_normalized_names_as_words() -> None:
    import pyopenjtalk  # a hard dependency: missing is a failure, not a skip

    raw = pyopenjtalk.g2p("FlashAttentionとFastVLMなのだ", kana=True)
    assert "エフエルエーエス" in raw  # OpenJTalk alone spells unknown English letter by letter

    reading = pyopenjtalk.g2p(to_speech("FlashAttentionとFastVLMとGraphRAG 1.0なのだ"), kana=True)
    assert "フラッシュアテンション" in reading
    assert "ファストブイエルエム" in reading
    assert "グラフラグイッテンゼロ" in reading
    assert "エフエルエーエス" not in reading


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("そうなのだ。次なのだ！本当？", ["そうなのだ。", "次なのだ！", "本当？"]),
        ("え!?そうなのだ！？すごい！！", ["え!?", "そうなのだ！？", "すごい！！"]),
        ("一行目なのだ\n\n二行目なのだ\n", ["一行目なのだ", "二行目なのだ"]),
        # a 。 inside a quote does not end the sentence; the closing quote stays with its sentence
        ("彼は「すごい。ほんとに」と言ったのだ。次。", ["彼は「すごい。ほんとに」と言ったのだ。", "次。"]),
        ("「おわりなのだ！」\n」", ["「おわりなのだ！」」"]),
        ("『タイトル！』なのだ。", ["『タイトル！』なのだ。"]),
        ("（閉じない括弧。次の文。", ["（閉じない括弧。", "次の文。"]),
        ("", []),
        ("  \n。\n", []),  # nothing a voice could say
        ("なのだ\n！」", ["なのだ！」"]),
    ],
)
def test_split_sentences(text: str, sentences: list[str]) -> None:
    assert split_sentences(text) == sentences


def test_split_sentences_cuts_long_pieces_at_commas() -> None:
    text = "あ" * 50 + "、" + "い" * 50 + "、" + "う" * 30 + "。"
    pieces = split_sentences(text, max_chars=80)
    assert pieces == ["あ" * 50 + "、", "い" * 50 + "、", "う" * 30 + "。"]


def test_split_sentences_never_cuts_inside_an_english_word() -> None:
    text = "Rapid text to image generation on device is a really long English title here"
    pieces = split_sentences(text, max_chars=30)
    assert all(len(piece) <= 30 for piece in pieces)
    assert " ".join(pieces) == text


def test_split_sentences_hard_cuts_when_there_is_no_break() -> None:
    pieces = split_sentences("あ" * 250, max_chars=100)
    assert [len(piece) for piece in pieces] == [100, 100, 50]


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("ぼく、ずんだもんなのだ！", True),
        ("始めるのだ。", True),
        ("そうなのだよ！", True),
        ("いいのだね？", True),
        ("楽しみなのだー！」", True),
        ("バイバイなのだ", True),
        ("「すごいのだ」", True),
        ("そうだよ。", False),
        ("起動時間もすごく短くなったみたい。", False),
        ("のだった。", False),
        ("のだ、と言った。", False),
        ("", False),
    ],
)
def test_sentence_ends_in_persona(sentence: str, expected: bool) -> None:
    assert sentence_ends_in_persona(sentence) is expected


def test_persona_ratio() -> None:
    assert persona_ratio(["そうなのだ。", "そうだよ。", "始めるのだ！", "みたい。"]) == 0.5
    assert persona_ratio([]) == 0.0


def test_ascii_letters() -> None:
    assert ascii_letters("GPUとLLM 1.0、エーアイ") == ["GPU", "LLM"]
    assert ascii_letters("ずんだもん") == []
