"""The script stage: computed frame, offline segments, validation rules, LLM fallback (plain functions)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import pytest

from tasks.script import build_script, recap_name, validate_script, write_segment_checked
from tests.fakes.openai_server import FakeOpenAI, fake_openai
from tests.test_llm import segment_sentences
from zundacast.llm.offline import OfflineWriter, to_persona
from zundacast.llm.openai_writer import OpenAIWriter
from zundacast.llm.prompts import episode_bounds
from zundacast.models import Candidate, Script, Summary
from zundacast.show import Environment, LLMConfig, load_show
from zundacast.speech import ascii_letters, persona_ratio

# Article texts from the bundled sample day's pages (trafilatura output), so these tests stand alone.
ARTICLES: dict[str, tuple[str, str, str, str]] = {  # slug -> (title, source, language, text)
    'llm-inference': (
        'vLLM 0.14が投機的デコーディングを標準で有効に\u3000H200で出力スループッ'
        'ト最大2.7倍 | テックニュース・デイリー',
        'テックニュース・デイリー', 'ja',
        'オープンソースのLLM推論エンジン「vLLM」の開発チームは11月18日（米国時間）、最'
        '新版となるvLLM 0.14をリリースした。最大の変更点は、これまでオプション扱いだった'
        '投機的デコーディング（Speculative Decoding）を標準で有効にしたことだ'
        '。開発チームのベンチマークによれば、NVIDIA H200を8基搭載したサーバーで70B'
        'パラメーターのオープンモデルを動かした場合、1ユーザーあたりの出力速度は毎秒38トークン'
        'から毎秒97トークンへと約2.5倍に、バッチ全体のスループットは最大2.7倍に向上した。'
        '\n投機的デコーディングは、軽量な予測器が先に数トークン分の候補をまとめて作り、大きな本体'
        'モデルがそれを1回のフォワードパスで検証する手法だ。LLMの生成は1トークンずつ順番に計'
        '算する自己回帰型のため、GPUの演算器よりもメモリー帯域がボトルネックになりやすい。候補'
        'を並列に検証できれば、同じ重みの読み出しでより多くのトークンを確定できる。検証で却下され'
        'たトークンは本体モデルの出力で置き換えるため、出力の確率分布は元のモデルと変わらない。\n'
        '別のドラフトモデルが要らない「EAGLE-3」方式\n0.14で標準となったのは、本体モデ'
        'ルの隠れ状態から次の数トークンを予測する小さなヘッドを使うEAGLE-3方式である。別の'
        'ドラフトモデルを用意する必要がなく、追加のGPUメモリーは70Bモデルで約1.8GBに収'
        'まる。主要なオープンモデル24種類については、学習済みのヘッドがHugging Face'
        '上で配布される。1回の検証で採用されるトークン数の平均は、コード生成で4.1、一般的なチ'
        'ャットで3.2だった。\n一方で、同時リクエスト数が多い場合は効果が薄れる。同時リクエスト'
        'が256を超えるとGPUの演算器が飽和し、検証のための追加計算がかえって負担になるためだ'
        '。0.14では負荷に応じて投機の深さを自動で調整する「adaptive speculat'
        'ion」を導入し、高負荷時には通常のデコードに戻るようにした。開発チームは「小〜中規模の'
        'バッチで応答速度を重視するサービスほど恩恵が大きい」と説明している。\nKVキャッシュのオ'
        'フロードも正式機能に\nそのほか、KVキャッシュをCPUメモリーやNVMe SSDに退避す'
        'る機能が正式版になった。長いシステムプロンプトを共有するRAGやAIエージェントの用途で'
        'はプレフィックスキャッシュのヒット率が上がり、128Kトークンの入力で最初のトークンが返'
        'るまでの時間（TTFT）が平均4.2秒から1.3秒に短縮されたという。OpenAI互換の'
        'APIサーバーは、Responses APIの主要な機能にも対応した。\n国内でvLLMを'
        '本番運用するAIスタートアップのエンジニアは「設定を変えずにアップデートするだけで、推論'
        'コストが3〜4割下がる計算になる。GPUの調達が難しい状況が続くなかで、ソフトウェア側の'
        '改善はありがたい」と話す。vLLM 0.14はpipでインストールでき、CUDA 12.'
        '8向けの公式Dockerイメージも公開されている。',
    ),
    'domestic-llm': (
        '国産LLM「Tsubaki-2」公開、32Bパラメーターで日本語ベンチマーク首位'
        '\u3000Apache 2.0で商用利用可 | テックニュース・デイリー',
        'テックニュース・デイリー', 'ja',
        '国内のAI研究機関であるツバキAI研究所は11月16日、日本語に強い大規模言語モデル「T'
        'subaki-2」を公開した。パラメーター数は32B（320億）で、日本語の知識を問うベ'
        'ンチマークJMMLUで78.4点、対話性能を測るJapanese MT-Benchで8.'
        '6点を記録し、同規模のオープンモデルの中で首位になったという。ライセンスはApache '
        '2.0で、商用利用も可能だ。\n学習には約15兆トークンのデータを使い、そのうち日本語が約'
        '40%を占める。ウェブから収集したテキストに加え、公的機関の文書や特許、技術文書など品質'
        'の高いデータを重点的に集めた。学習にはNVIDIA H100を2,048基使い、期間は5'
        '2日間だった。扱える文脈の長さは128Kトークンで、長い契約書や議事録の要約にも使える。'
        '\n量子化版はノートPCでも動く\n4ビットに量子化したモデルも同時に公開した。ファイルサイ'
        'ズは約19GBで、メモリーを32GB以上積んだノートパソコンでも動く。研究所の測定では、'
        'Apple M4 Maxを搭載したMacBook Proで毎秒24トークンの速度で文章を'
        '生成できた。社内文書を外部に出せない企業でも、手元のマシンで試せる。\n研究所の所長は「日'
        '本語で考え、日本の文脈を理解するモデルを誰もが使える形で提供したい。次は画像も扱えるマル'
        'チモーダル版を2027年春に公開する」と話している。モデルはHugging Faceから'
        'ダウンロードでき、学習に使ったデータの構成や評価の手順をまとめた技術報告書も公開されてい'
        'る。\n国内では、大手IT企業や大学が相次いで日本語LLMを公開している。海外製のモデルも'
        '日本語の性能を高めているなか、国産モデルには日本固有の知識や表現の正確さに加えて、学習デ'
        'ータの透明性が求められている。\n安全性の面では、差別的な表現や危険な情報の出力を抑えるた'
        'めの追加学習を行い、日本語で作った1万件の評価データで有害な応答の割合を1.2%まで下げ'
        'たという。評価データの一部も研究目的で公開する予定だ。\nTsubaki-2はvLLMやl'
        'lama.cppなど主要な推論エンジンでそのまま動く。研究所は、企業が自社データで追加学'
        '習する際の手順書とサンプルコードもGitHubで公開しており、問い合わせはすでに300社'
        'を超えているという。\n研究所によると、日本語の敬語や漢字の読み、都道府県ごとの制度の違い'
        'といった、海外製モデルが間違えやすい問題での正答率が特に高い。たとえば、自治体の手続きに'
        '関する200問の独自テストでは、正答率が前版の61%から84%に上がった。\n価格面でも利'
        '点がある。研究所の試算では、Tsubaki-2を自社のGPUサーバーで動かした場合、10'
        '0万トークンあたりの推論費用は商用APIの約5分の1になる。機密性の高い文書を大量に扱う'
        '金融や医療の現場で、まず試験的な導入が進みそうだ。',
    ),
    'agent-ops': (
        '社内AIエージェントを1年本番運用して分かった7つの落とし穴\u3000MCPサーバー42'
        '個、月18万タスクの現場から | カエデ株式会社 エンジニアブログ',
        'Zenn', 'ja',
        'こんにちは、カエデ株式会社プラットフォームチームの森川です。私たちは2025年11月から'
        '、社内の開発者と営業チームが使うAIエージェント基盤を運用しています。社内システムとつな'
        'ぐMCPサーバーは現在42個、エージェントが処理するタスクは月に約18万件になりました。'
        'この1年でタスクの成功率は71%から89%まで上がりましたが、そこに至るまでにたくさんの'
        '失敗をしました。この記事では、特に効いた7つの教訓を紹介します。\n1. ツールを渡しすぎ'
        'ると選択を間違える\n最初は、使えるツールを全部エージェントに見せていました。MCPサーバ'
        'ーが増えるにつれてツールの数は120個を超え、似た名前のツールを取り違える失敗が目立つよ'
        'うになりました。そこで、タスクの内容から関係しそうなツールを埋め込み検索で15個程度に絞'
        'り込んでから渡すようにしたところ、ツール選択の正解率は23ポイント上がりました。プロンプ'
        'トのトークン数も約4割減っています。\n2. ループは必ず起きる前提で上限を決める\n同じツ'
        'ールを同じ引数で何度も呼び続けるループは、想像以上によく起きます。1タスクあたりのステッ'
        'プ数の上限を25に決め、同じ呼び出しが3回続いたら打ち切って人間に引き継ぐようにしました'
        '。この仕組みだけで、1カ月あたりのLLMの利用料金が約18%下がりました。\n3. 書き込'
        'み権限は人間の承認とセットで\n初期にはチケットの一括更新で、エージェントが意図しない30'
        '0件のチケットを書き換えてしまう事故がありました。現在はすべてのツールを読み取り専用を既'
        '定とし、書き込みを伴う操作は実行前にSlackで人間が承認する方式にしています。承認待ち'
        'で遅くなるという声もありましたが、承認の9割以上が1分以内に終わっています。\n4〜7. '
        'コスト、評価、リトライ、観測性\n4つ目はコストです。1タスクあたりの平均費用は当初38円'
        'でしたが、システムプロンプトとツール定義のプロンプトキャッシュを効かせることで14円まで'
        '下がりました。5つ目は評価で、本番のログから600件の評価セットを作り、モデルやプロンプ'
        'トを変えるたびに自動で回しています。ベンチマークの点数よりも、実際の業務のタスクで測るこ'
        'とが大切でした。\n6つ目は、ツール呼び出しのタイムアウトとリトライです。外部APIの一時'
        '的なエラーでタスク全体が失敗しないよう、すべてのツールに冪等キーを持たせ、安全にリトライ'
        'できるようにしました。7つ目は観測性です。エージェントの1ステップごとにOpenTele'
        'metryのスパンを出し、どのツールで時間がかかり、どこで判断を誤ったかを後から追えるよ'
        'うにしています。これがないと、失敗の原因調査はほぼ不可能でした。\nAIエージェントはデモ'
        'を作るのは簡単ですが、毎日安定して動かすのは普通のソフトウェア以上に地道な作業の積み重ね'
        'です。私たちの失敗が、これからエージェントを本番に出す皆さんの参考になればうれしいです。',
    ),
    'on-device-model': (
        'Shipping a 3B-parameter language model on-device: 4-bit weights, 42 tokens/s, and what we got wrong'
        ' | Kestrel Labs Research',
        'Kestrel Labs Research', 'en',
        'Last month we shipped on-device summarization to every user of our notes app on recent pho'
        'nes. The model behind it is a 3B-parameter decoder-only transformer that runs entirely on '
        'the device: no text leaves the phone, and summaries work in airplane mode. This post descr'
        'ibes how we got it to 1.7 GB of memory and 42 tokens per second on a current flagship phon'
        'e, and the three things we got wrong before we got there.\nQuantization: 4-bit weights, 8-b'
        'it activations\nThe full-precision model needs about 6 GB for its weights alone, far more t'
        'han a phone app can use. We quantized the weights to 4 bits with per-group scales (a group'
        ' size of 64) and kept activations in 8 bits. Naive post-training quantization cost us 6.2 '
        'points on our internal summarization benchmark. Quantization-aware training for 2,000 step'
        's on 400 million tokens brought the gap down to 1.4 points, which our raters could not dis'
        'tinguish in a blind test of 1,200 summaries.\nSpeed: the KV cache was the real bottleneck\nO'
        'ur first build decoded at only 11 tokens per second. Profiling showed that the attention o'
        'ver a growing key-value cache, not the matrix multiplications, dominated the time for long'
        ' notes. Switching to grouped-query attention with 4 key-value heads, storing the cache in '
        '8 bits, and capping the context at 4,096 tokens took us to 42 tokens per second on the neu'
        'ral engine, with time-to-first-token of 380 ms for a 1,000-word note.\nWhat we got wrong\nFi'
        'rst, we measured speed with the phone plugged in and cool. After three minutes of continuo'
        'us use, thermal throttling cut throughput by 35 percent, so we now benchmark on a device t'
        'hat has been running for ten minutes. Second, we evaluated on English only, and Japanese a'
        'nd Korean notes came out noticeably worse because our calibration data had almost no CJK t'
        'ext; adding 15 percent multilingual data to the calibration set fixed most of it. Third, w'
        'e underestimated download size: a 1.7 GB model is a real cost on metered connections, so t'
        'he model is now downloaded only on Wi-Fi, in the background, after the user opts in.\nOn-de'
        'vice models will not replace large models in the cloud, but for tasks like summarization, '
        'rewriting and classification, a small model close to the data is fast, private and free to'
        ' run. We are releasing our quantization recipe and evaluation set under an Apache 2.0 lice'
        'nse.',
    ),
}

SHOW = load_show("zundamon-ai")


def candidate(slug: str) -> Candidate:
    title, source, language, text = ARTICLES[slug]
    return Candidate(url=f"https://news.example.com/{slug}", title=title, source=source, language=language,
                     text=text)


THREE = ("llm-inference", "domestic-llm", "agent-ops")


def offline_summaries(slugs: tuple[str, ...] = THREE) -> list[Summary]:
    writer = OfflineWriter()
    return [writer.summarize(candidate(slug)) for slug in slugs]


def offline_script(day: dt.date, summaries: list[Summary] | None = None) -> tuple[Script, list[Summary]]:
    summaries = summaries or offline_summaries()
    script = build_script(day, summaries, SHOW.show, SHOW.pronunciation, OfflineWriter())
    return script, summaries


def failures_of(script: Script, summaries: list[Summary]) -> list[str]:
    return validate_script(script, [s.title for s in summaries], [s.spoken_title for s in summaries])


def all_sentences(script: Script) -> list[str]:
    return [s.text for section in script.sections for s in section.sentences]


@pytest.fixture(scope="module")
def summaries() -> list[Summary]:
    return offline_summaries()


# --- the offline script passes every rule ---------------------------------------------------------------


@pytest.mark.parametrize(("day", "weekday"), [
    (dt.date(2025, 7, 24), "木曜日"), (dt.date(2024, 12, 18), "水曜日"),
    (dt.date(2026, 1, 1), "木曜日"), (dt.date(2025, 3, 2), "日曜日"),
])
def test_offline_script_passes_validation(day: dt.date, weekday: str, summaries: list[Summary]) -> None:
    script, _ = offline_script(day, summaries)
    assert failures_of(script, summaries) == []
    assert script.weekday == weekday
    opening = "".join(s.text for s in script.sections[0].sentences)
    assert f"今日は{day.year}年{day.month}月{day.day}日、{weekday}なのだ！" in opening
    assert "株式会社ずんだもん技術室AI放送局" in opening and "三つ" in opening


def test_offline_script_shape(summaries: list[Summary]) -> None:
    script, _ = offline_script(dt.date(2025, 7, 24), summaries)
    kinds = [section.kind for section in script.sections]
    assert kinds == ["opening", "article", "article", "article", "closing"]
    assert script.sections[0].title == "オープニング" and script.sections[-1].title == "エンディング"
    articles = script.sections[1:-1]
    assert [a.title for a in articles] == [s.title for s in summaries]
    assert [a.url for a in articles] == [s.url for s in summaries]
    for index, (section, summary) in enumerate(zip(articles, summaries, strict=True)):
        head = "".join(s.text for s in section.sentences[:2])
        # the last may be named by its place alone: 「さあ、いよいよ最後の記事なのだ。」
        assert ["一つ目", "二つ目", "三つ目"][index] in head or (index == 2 and "最後の記事" in head)
        assert f"タイトルは「{summary.spoken_title}」なのだ。" in head
    sentences = all_sentences(script)
    assert persona_ratio(sentences) >= 0.9
    low, high = episode_bounds(3)
    assert low <= sum(map(len, sentences)) <= high
    for section in script.sections:
        for sentence in section.sentences:
            assert ascii_letters(sentence.speech) == [], sentence.speech
    closing = "".join(s.text for s in script.sections[-1].sentences)
    assert closing.endswith("バイバイなのだ！")
    assert all(recap_name(s.spoken_title) in closing for s in summaries)  # one recap line per article
    assert "\n----\n" in script.transcript()
    assert script.writer == "offline" and script.fallbacks == [] and script.usage.requests == 0


@pytest.mark.parametrize(("title", "named"), [
    ("社内文書RAGの正答率を62%から91%に上げるまでにやったこと", "社内文書RAGの正答率"),
    ("vLLM 0.14が投機的デコーディングを標準で有効に", "vLLM 0.14"),
    ("東京大学の研究チームによる大規模言語モデルの新しい量子化手法",
     "「東京大学の研究チームによる大規模言語モデルの新しい量子化手法」"),
    ("OpenSSL 3.5.1に深刻な脆弱性『CVE-2026-12345』", "「OpenSSL 3.5.1に深刻な脆弱性『CVE-2026-12345』」"),
    ("『AIエージェント、社内で何を任せるか』を調査した結果、権限の設計が課題に",
     "『AIエージェント、社内で何を任せるか』"),
    ("決済大手ミドリペイ、全国で3時間の障害", "「決済大手ミドリペイ、全国で3時間の障害」"),
    ("TypeScript 7.0正式リリース", "「TypeScript 7.0正式リリース」"),
    ("Kubernetes 1.36がリリース、AIワークロード向けのGPU共有機能", "「Kubernetes 1.36がリリース」"),
    ("ミナト銀行、勘定系システムをクラウドへ全面移行", "ミナト銀行の勘定系システム"),
    ("ミナト銀行、ユキ証券とクラウド基盤を共同開発", "「ミナト銀行、ユキ証券とクラウド基盤を共同開発」"),
    ("AppleがGoogleを買収して新しい検索を作ると発表", "「AppleがGoogleを買収して新しい検索を作ると発表」"),
    ("Anthropic releases a new model for long agentic coding sessions",
     "「Anthropic releases a new model for long agentic coding sessions」"),
])
def test_the_recap_quotes_a_title_only_whole_and_names_a_long_one_by_its_opening_noun(
        title: str, named: str) -> None:
    name = recap_name(title)
    assert name == named
    if name.startswith("「"):  # a quote is the title, or a part of it ending at a 、: never cut mid-phrase
        assert title.startswith(name[1:-1]) and title[len(name) - 2:][:1] in ("", "、")
    else:  # a topic: the words the title opens with, up to a case particle
        opening = name if title.startswith(name) else name.replace("の", "、", 1)
        assert title.startswith(opening) and title[len(opening)] in "をがは"
    assert name.count("「") == name.count("」") and name.count("『") == name.count("』")


def test_an_episode_with_bad_news_does_not_close_on_cheer() -> None:
    from tasks.script import SOBER_SUMMINGS, closing_lines

    def summary(title: str, text: str) -> Summary:
        return Summary(url=f"https://news.example/{len(title)}", source="s", title=title, spoken_title=title,
                       summary=text)

    good = summary("TypeScript 7.0正式リリース", "型チェックが約10倍速くなったのだ。")
    bad = summary("市民病院にランサムウェア攻撃、救急の受け入れを停止", "電子カルテが使えなくなったのだ。")
    show = load_show("zundamon-ai").show
    for day in (dt.date(2026, 11, 20), dt.date(2026, 11, 21), dt.date(2026, 12, 8)):
        sober = closing_lines(day, show, [good, bad])
        assert any(line in SOBER_SUMMINGS for line in sober), sober
        assert not any("ワクワク" in line or "興味深い" in line for line in sober)
        cheerful = closing_lines(day, show, [good])
        assert not any(line in SOBER_SUMMINGS for line in cheerful)


def test_an_article_is_worded_the_same_from_any_host(summaries: list[Summary]) -> None:
    # the wording is seeded by the story's path, not its host and port: a mirror, or the sample day served
    # on another port, says the same sentences (voiced once, from the utterance cache)
    show = load_show("zundamon-ai")
    moved = [s.model_copy(update={"url": s.url.replace("://", "://mirror.", 1)}) for s in summaries]
    day = dt.date(2026, 11, 20)
    here, there = (build_script(day, group, show.show, show.pronunciation, OfflineWriter())
                   for group in (summaries, moved))
    assert here.transcript() == there.transcript()


def test_offline_summaries_hold_only_article_facts(summaries: list[Summary]) -> None:
    for slug, summary in zip(("llm-inference", "domestic-llm", "agent-ops"), summaries, strict=True):
        text = ARTICLES[slug][3]
        pieces = [summary.summary, *summary.key_points, summary.why_it_matters]
        for piece in filter(None, pieces):
            for sentence in piece.split("。"):
                assert sentence in text  # extractive: every sentence is the article's own
        assert summary.writer == "offline"
        assert "|" not in summary.spoken_title  # the site's name is not part of the spoken title
    assert any("32B" in p for p in [summaries[1].summary, *summaries[1].key_points])


def test_offline_english_article_is_honest_japanese() -> None:
    summary = OfflineWriter().summarize(candidate("on-device-model"))
    assert summary.language == "en"
    assert "英語の記事" in summary.summary
    facts = " ".join(summary.key_points)
    assert "42" in facts or "3B" in facts  # the article's own numbers
    lines, _ = OfflineWriter().write_segment(summary, 0, 1, SHOW.show, [])
    assert persona_ratio(lines) >= 0.9


def test_script_wording_varies_by_article_but_is_deterministic(summaries: list[Summary]) -> None:
    day = dt.date(2025, 7, 24)
    first, _ = offline_script(day, summaries)
    again, _ = offline_script(day, summaries)
    assert first == again
    moved = [s.model_copy(update={"url": s.url + "?v=2"}) for s in summaries]
    other, _ = offline_script(day, moved)
    assert [sec.sentences for sec in other.sections[1:-1]] != [sec.sentences for sec in first.sections[1:-1]]


def test_two_articles_scale_the_length() -> None:
    two = offline_summaries(("llm-inference", "domestic-llm"))
    script, _ = offline_script(dt.date(2025, 7, 24), two)
    assert failures_of(script, two) == []
    assert "二つの記事" in "".join(s.text for s in script.sections[0].sentences) or "二つ" in "".join(
        s.text for s in script.sections[0].sentences)


@pytest.mark.parametrize(("sentence", "expected"), [
    ("新しいモデルを公開しました。", "新しいモデルを公開したのだ。"),
    ("データを読みました。", "データを読んだのだ。"),
    ("この技術を使います。", "この技術を使うのだ。"),
    ("利用できます。", "利用できるのだ。"),
    ("それは問題ではありません。", "それは問題ではないのだ。"),
    ("重要な技術です。", "重要な技術なのだ。"),
    ("処理が速いです！", "処理が速いのだ！"),
    ("高速化が可能だ。", "高速化が可能なのだ。"),
    ("GPUの性能は2倍になった。", "GPUの性能は2倍になったのだ。"),
    ("本当に速いのでしょうか？", None),
])
def test_to_persona(sentence: str, expected: str | None) -> None:
    assert to_persona(sentence) == expected


# --- validation catches what it must ----------------------------------------------------------------------


def _edited(script: Script, section_index: int, sentence_index: int, **changes: str) -> Script:
    data = script.model_copy(deep=True)
    sentence = data.sections[section_index].sentences[sentence_index]
    data.sections[section_index].sentences[sentence_index] = sentence.model_copy(update=changes)
    return data


def test_validation_catches_a_wrong_weekday(summaries: list[Summary]) -> None:
    script, _ = offline_script(dt.date(2025, 7, 24), summaries)
    index = next(i for i, s in enumerate(script.sections[0].sentences) if "木曜日" in s.text)
    said = script.sections[0].sentences[index].text
    wrong = _edited(script, 0, index, text=said.replace("木曜日", "水曜日"))
    assert any("expected 木曜日" in failure for failure in failures_of(wrong, summaries))
    mislabelled = script.model_copy(update={"weekday": "水曜日"})
    assert any("weekday is 水曜日" in failure for failure in failures_of(mislabelled, summaries))


def test_validation_catches_a_missing_title(summaries: list[Summary]) -> None:
    script, _ = offline_script(dt.date(2025, 7, 24), summaries)
    broken = script.model_copy(deep=True)
    broken.sections[2].sentences = [s for s in broken.sections[2].sentences if "タイトルは" not in s.text]
    assert any("segment 2 does not name its title" in f for f in failures_of(broken, summaries))
    reordered = script.model_copy(deep=True)
    reordered.sections[1], reordered.sections[2] = reordered.sections[2], reordered.sections[1]
    assert any("in order" in f for f in failures_of(reordered, summaries))


def test_validation_catches_a_low_persona_ratio(summaries: list[Summary]) -> None:
    script, _ = offline_script(dt.date(2025, 7, 24), summaries)
    polite = script.model_copy(deep=True)
    for section in polite.sections[1:-1]:
        for sentence in section.sentences[2:]:
            sentence.text = sentence.text.replace("のだ", "のです")
    assert any("persona ratio" in f for f in failures_of(polite, summaries))


def test_validation_catches_urls_and_ascii_in_speech(summaries: list[Summary]) -> None:
    script, _ = offline_script(dt.date(2025, 7, 24), summaries)
    with_url = _edited(script, 1, 3, speech="詳しくは https://example.com/x を見るのだ。")
    failures = failures_of(with_url, summaries)
    assert any("URL in spoken text" in f for f in failures)
    assert any("ASCII letters" in f for f in failures)
    markdown = _edited(script, 2, 3, text="**太字**のところが大事なのだ。")
    assert any("markdown" in f for f in failures_of(markdown, summaries))


def test_validation_catches_a_script_too_short(summaries: list[Summary]) -> None:
    script, _ = offline_script(dt.date(2025, 7, 24), summaries)
    short = script.model_copy(deep=True)
    for section in short.sections[1:-1]:
        section.sentences = section.sentences[:4]
    assert any(f.startswith("[length] script: length ") for f in failures_of(short, summaries))


# --- an LLM segment that keeps failing falls back to the offline writer -------------------------------


def _segment_reply(sentences: list[str]) -> str:
    return json.dumps({"sentences": sentences}, ensure_ascii=False)


@pytest.fixture
def llm_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    with fake_openai() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-fake")
        yield server


def test_llm_segment_failing_twice_falls_back_to_offline(llm_server: FakeOpenAI,
                                                          summaries: list[Summary]) -> None:
    polite = ["これはとても良い記事です。"] * 10  # no のだ: the validator rejects it every time
    llm_server.responder = lambda request: _segment_reply(polite)
    writer = OpenAIWriter(LLMConfig(max_attempts=2), model="gpt-4o-mini", env=Environment())
    day = dt.date(2025, 7, 24)
    script = build_script(day, summaries, SHOW.show, SHOW.pronunciation, writer, max_attempts=2)
    assert len(llm_server.requests) == 2 * len(summaries)
    assert len(script.fallbacks) == len(summaries)
    assert "persona.ratio" in script.fallbacks[0]  # the reason names the failed rule
    offline_lines, _ = OfflineWriter(seed=day.isoformat()).write_segment(summaries[0], 0, 3, SHOW.show, [])
    body = "".join(s.text for s in script.sections[1].sentences)
    assert "".join(offline_lines) in body
    assert "これはとても良い記事です" not in script.transcript()
    assert failures_of(script, summaries) == []
    # the second request carried the first one's failures as feedback
    second_user = llm_server.requests[1].messages[-1]["content"]
    assert "不合格" in second_user and "のだ" in second_user
    assert script.usage.requests == 2 * len(summaries)


def test_llm_segment_fixed_after_feedback_is_kept(llm_server: FakeOpenAI, summaries: list[Summary]) -> None:
    good = segment_sentences()
    replies = iter([_segment_reply(["ダメな文です。"] * 8), _segment_reply(good)])
    llm_server.responder = lambda request: next(replies)
    writer = OpenAIWriter(LLMConfig(), model="gpt-4o-mini", env=Environment())
    lines, usage, reason, *_ = write_segment_checked(writer, summaries[0], 0, 3, SHOW.show, max_attempts=3)
    assert reason == "" and lines == good
    assert usage.requests == 2 and len(llm_server.requests) == 2


def test_llm_endpoint_down_hands_the_segment_to_offline_at_once(llm_server: FakeOpenAI,
                                                                 summaries: list[Summary]) -> None:
    from tests.fakes.openai_server import Reply

    for _ in range(20):
        llm_server.queue.append(Reply(status=503, content="overloaded", headers={"retry-after-ms": "10"}))
    writer = OpenAIWriter(LLMConfig(), model="gpt-4o-mini", env=Environment())
    lines, _, reason, *_ = write_segment_checked(writer, summaries[0], 0, 3, SHOW.show, max_attempts=3)
    assert len(llm_server.requests) == 5  # one call and the client's 4 retries, not 3 attempts of 5
    assert "503" in reason
    assert "".join(lines) == "".join(OfflineWriter().write_segment(summaries[0], 0, 3, SHOW.show, [])[0])
