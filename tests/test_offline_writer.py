"""The offline writer sounds like the reference episodes: spoken style, explained, varied, never repeated.

The sample day's episode is built the way the flow builds it (collect over loopback HTTP, rank, offline
summaries, `tasks.script.build_script`) and measured like an editor would: length, repeated and
near-repeated sentences, the host's endings, written-style leftovers, titles made for speaking.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Iterator
from difflib import SequenceMatcher
from pathlib import Path

import pytest

from tasks.collect import collect_candidates
from tasks.rank import rank_candidates
from tasks.script import build_script
from tests.system import system_unavailable
from zundacast.editorial import check_title, japanese_share
from zundacast.llm import offline
from zundacast.llm.offline import OfflineWriter, host_sentence, speakable_title, spoken_style
from zundacast.llm.prompts import segment_chars
from zundacast.models import Candidate, Script, Summary
from zundacast.sample_day import SAMPLE_DATE, sample_show, serve_sample_day
from zundacast.show import load_show
from zundacast.speech import persona_ratio, split_sentences

SHOW = load_show("zundamon-ai")
NOW = dt.datetime(2026, 11, 20, 6, 5, tzinfo=dt.timezone(dt.timedelta(hours=9)))
# The team's reference episodes live beside the repository (shared/ next to the checkout, in CI too).
REFERENCE_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "reference"
REFERENCE = sorted(REFERENCE_DIR.glob("episode-*.txt"))
WRITTEN_STYLE = ("されており", "しており", "ており、", "という。", "である。", "であり、", "が期待されている",
                 "ものだ。", "ことだ。", "ました", "です。")
_ENDING = re.compile(r"(なのだ|のだ)(よね|よ|ね)?ー*([。！？!?…]*)$")


def ending(sentence: str) -> str:
    """The sentence's ending class: のだ。 / なのだ。 / のだ！ / なのだ！ / なのだ？ … or "other"."""
    match = _ENDING.search(sentence.strip().rstrip("」』）)"))
    if not match:
        return "other"
    mark = {"!": "！", "?": "？"}.get(match.group(3)[:1], match.group(3)[:1] or "。")
    return match.group(1) + (match.group(2) or "") + mark


def near_repeats(sentences: list[str], ratio: float = 0.8) -> list[tuple[str, str]]:
    found = []
    for i, one in enumerate(sentences):
        for other in sentences[i + 1:]:
            if min(len(one), len(other)) >= 12 and SequenceMatcher(None, one, other).ratio() >= ratio:
                found.append((one, other))
    return found


def texts(script: Script, kind: str | None = None) -> list[str]:
    return [s.text for section in script.sections if kind in (None, section.kind) for s in section.sentences]


@pytest.fixture(scope="module")
def sample_picks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Candidate]]:
    """The sample day's three picks, collected over loopback HTTP and ranked as the flow does."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ZUNDACAST_HOME", str(tmp_path_factory.mktemp("home")))
        with serve_sample_day(port=0) as base_url:
            show = sample_show(base_url)
            snapshot = collect_candidates(show, SAMPLE_DATE, now=NOW)
        ranking = rank_candidates(snapshot, show, SAMPLE_DATE, [])
    yield [pick.candidate for pick in ranking.picks]


@pytest.fixture(scope="module")
def sample_summaries(sample_picks: list[Candidate]) -> list[Summary]:
    writer = OfflineWriter()
    return [writer.summarize(candidate) for candidate in sample_picks]


@pytest.fixture(scope="module")
def episode(sample_summaries: list[Summary]) -> Script:
    return build_script(SAMPLE_DATE, sample_summaries, SHOW.show, SHOW.pronunciation, OfflineWriter())


# --- the sample day's episode -------------------------------------------------------------------------


def test_sample_day_episode_is_in_the_length_band(episode: Script, sample_summaries: list[Summary]) -> None:
    assert len(sample_summaries) == 3
    chars = sum(map(len, texts(episode)))
    assert 3400 <= chars <= 4600, chars
    low, high = segment_chars(3)
    for section in episode.sections[1:-1]:  # every segment carries its share, none is padded out
        assert low * 0.75 <= sum(len(s.text) for s in section.sentences) <= high * 1.1


def test_sample_day_episode_repeats_no_sentence(episode: Script) -> None:
    sentences = texts(episode)
    repeated = [sentence for sentence, count in Counter(sentences).items() if count > 1]
    assert repeated == []
    # Near repeats among what the writer wrote (the frame's header and recap name the titles twice on purpose)
    body = [s.text for section in episode.sections[1:-1] for s in section.sentences[2:]]
    assert near_repeats(body) == []
    assert len(set(sentences)) / len(sentences) == 1.0


def test_sample_day_episode_ends_like_the_host(episode: Script) -> None:
    sentences = texts(episode)
    assert persona_ratio(sentences) >= 0.9
    endings = Counter(ending(sentence) for sentence in sentences)
    assert len([name for name in endings if name != "other"]) >= 4, endings
    share = {name: count / len(sentences) for name, count in endings.items()}
    # The reference episodes: about 53% のだ。, 25% なのだ。, 11% のだ！, 6% なのだ！, 1% なのだ？
    assert share.get("のだ。", 0) <= 0.7 and share.get("なのだ。", 0) >= 0.1, share
    assert share.get("のだ！", 0) + share.get("なのだ！", 0) >= 0.1, share


def test_sample_day_episode_is_spoken_not_written(episode: Script) -> None:
    for sentence in texts(episode, "article"):
        assert not any(marker in sentence for marker in WRITTEN_STYLE), sentence
        assert len(sentence) <= 140, sentence


def test_sample_day_titles_are_made_for_speaking(sample_picks: list[Candidate],
                                                 sample_summaries: list[Summary]) -> None:
    for candidate, summary in zip(sample_picks, sample_summaries, strict=True):
        title = summary.spoken_title
        assert 8 <= len(title) <= 40, title
        assert not re.search(r"[:：|｜【】\[\]「」]", title), title
        assert candidate.site_name not in title and candidate.source not in title
        latin = re.findall(r"[A-Za-z][A-Za-z0-9.]*", title)
        assert latin and all(word in candidate.title for word in latin)  # key terms kept, none invented
        assert title.split()[0] in candidate.title  # the headline's main line leads
    assert any("vLLM 0.14" in s.spoken_title for s in sample_summaries)
    assert any("TypeScript 7.0" in s.spoken_title for s in sample_summaries)


def test_each_segment_explains_before_the_details(episode: Script, sample_summaries: list[Summary]) -> None:
    pictures = {concept.picture for concept in offline.CONCEPTS}
    why = {line for pool in offline._WHY_CARE.values() for line in pool}
    for section, summary in zip(episode.sections[1:-1], sample_summaries, strict=True):
        lines = [s.text for s in section.sentences]
        to_details = next(i for i, line in enumerate(lines) if line in offline._TO_DETAILS)
        before = lines[:to_details]
        assert any(line in pictures for line in before), before  # what it is, with an everyday picture
        assert any(line in why for line in before), before  # why a new engineer should care
        after = "".join(lines[to_details:])
        numbers = set(re.findall(r"\d+(?:[.,]\d+)*", summary.summary + "".join(summary.key_points)))
        kept = [number for number in numbers if number in after]
        assert len(kept) >= 8 and len(kept) >= 0.8 * len(numbers)  # the article's own facts


def test_summaries_keep_the_authors_voice_out(sample_summaries: list[Summary], episode: Script) -> None:
    said = "".join(texts(episode))
    for summary in sample_summaries:
        for piece in [summary.summary, *summary.key_points]:
            assert not re.search(r"こんにちは|の(森川|小野寺)です|編集部$", piece)
    assert "小野寺" not in said and "こんにちは、" not in said


def test_no_stock_line_is_copied_from_the_reference_episodes(episode: Script) -> None:
    reference = set()
    for path in REFERENCE:
        reference |= {s.strip() for s in split_sentences(path.read_text(), max_chars=400) if len(s) >= 12}
    if not reference:
        system_unavailable(f"no reference episodes in {REFERENCE_DIR} (shared/ beside the repository)")
    stock = [line for name in ("_ASK", "_TO_DETAILS", "_NUMBER_REACTIONS", "_ARTICLE_POINT", "_CLOSERS",
                               "_ENGLISH_NOTES", "_ENGLISH_WHY") for line in getattr(offline, name)]
    stock += [line for pool in offline._WHY_CARE.values() for line in pool]
    stock += [c.picture for c in offline.CONCEPTS] + [e for c in offline.CONCEPTS for e in c.explanations]
    assert [line for line in stock if line in reference] == []
    assert [line for line in texts(episode, "article") if line in reference] == []


def test_every_readable_sample_article_in_one_long_episode_repeats_nothing(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """More segments than any stock pool has lines: the writer still never says a sentence twice."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ZUNDACAST_HOME", str(tmp_path_factory.mktemp("home-all")))
        with serve_sample_day(port=0) as base_url:
            snapshot = collect_candidates(sample_show(base_url), SAMPLE_DATE, now=NOW)
    readable = [c for c in snapshot.candidates if c.text and not c.extraction_error]
    writer = OfflineWriter()
    summaries = [writer.summarize(candidate) for candidate in readable]
    assert len(summaries) >= 8 and any(s.language == "en" for s in summaries)  # one English post
    script = build_script(SAMPLE_DATE, summaries, SHOW.show, SHOW.pronunciation, writer)
    written = [s.text for section in script.sections[1:-1] for s in section.sentences[2:]]
    assert [line for line, count in Counter(written).items() if count > 1] == []
    assert near_repeats(written) == []
    assert persona_ratio(texts(script)) >= 0.9
    for sentence in written:
        assert not any(marker in sentence for marker in WRITTEN_STYLE), sentence


# --- small articles written for these tests -------------------------------------------------------------

SHORT = Candidate(  # a 250-character news brief
    url="https://news.example.jp/brief", title="【速報】サクラDB 3.2公開、書き込み性能が1.8倍に - GIGAZINE",
    source="GIGAZINE", language="ja",
    text=("2025年7月24日 編集部\n"
          "データベース「サクラDB」の開発チームは7月23日、最新版の3.2を公開した。"
          "書き込みの処理を見直し、1秒あたりの書き込み件数は前の版の1.8倍になったという。"
          "新しいバックアップ機能も加わり、止めずに全データを保存できる。"
          "サクラDBはオープンソースで、国内では約300社が使っている。"
          "開発チームは、年内に3.3を出す予定だとしている。"))

JAPANESE = Candidate(
    url="https://tech.example.jp/agents", source="テックブログ",
    title="社内AIエージェントの本番運用で分かったこと：権限設計とコストの実測値 | ITmedia NEWS",
    language="ja",
    text=("文：山田太郎\n"
          "こんにちは、ミズナラ株式会社の開発チームの佐藤です。"
          "私たちは半年前から、問い合わせ対応にAIエージェントを使っています。"
          "エージェントは社内の12個のツールにつながっており、月に約4万件のタスクを処理しています。"
          "最初は書き込み権限を広く与えていたため、誤った更新が週に5件ほど起きていました。"
          "そこで、書き込みを伴う操作はすべて人間が承認する方式に変え、誤更新は0件になりました。"
          "1タスクあたりの費用は当初24円でしたが、プロンプトキャッシュを使うことで9円まで下がりました。"
          "評価には本番のログから作った400件のテストを使い、モデルを変えるたびに自動で回しています。"
          "タスクの成功率は68%から87%まで上がったという。"
          "今後は音声での問い合わせにも広げることが期待されている。"
          "本番に出す前に評価の仕組みを作ることが、いちばん大切だと考えている。"))

ENGLISH = Candidate(
    url="https://blog.example.com/edge", source="Example Engineering", site_name="Example Engineering",
    title="Running Llama 3.1 8B at the edge: 2x faster with speculative decoding - The Verge",
    language="en",
    text=("We moved our chat assistant to Llama 3.1 8B running on edge servers in 14 regions. "
          "With speculative decoding and a small draft model, Llama 3.1 8B answered 2x faster, "
          "at 85 tokens/s. "
          "Memory use per server stayed under 24 GB, and the p95 latency fell to 310 ms. "
          "Llama 3.1 8B now handles 60% of all requests; the rest still go to a larger model."))


def segment(candidate: Candidate, index: int = 0, total: int = 3,
            writer: OfflineWriter | None = None) -> tuple[Summary, list[str]]:
    writer = writer or OfflineWriter()
    summary = writer.summarize(candidate)
    lines, usage = writer.write_segment(summary, index, total, SHOW.show, [])
    assert usage.requests == 0
    return summary, lines


def test_a_short_article_gives_a_short_segment_without_padding() -> None:
    summary, lines = segment(SHORT)
    low, _ = segment_chars(3)
    assert sum(map(len, lines)) < low  # fewer, fuller sentences: not stretched to the target
    assert len(lines) == len(set(lines)) and near_repeats(lines) == []
    assert persona_ratio(lines) >= 0.9
    said = "".join(lines)
    for fact in ("3.2", "1.8倍", "約300社"):
        assert fact in said
    assert "編集部" not in said and "2025年7月24日" not in said  # the dateline is not the article
    assert "1.8倍になったらしいのだ" in said  # 「〜という。」 → 「〜らしいのだ。」
    assert summary.spoken_title == "サクラDB 3.2公開、書き込み性能が1.8倍に"


def test_a_japanese_blog_post_is_told_in_the_hosts_words() -> None:
    summary, lines = segment(JAPANESE)
    said = "".join(lines)
    assert summary.spoken_title == "社内AIエージェントの本番運用で分かったこと、権限設計とコストの実測値"
    assert "佐藤です" not in said and "こんにちは" not in said and "山田" not in said
    assert "つながっていて" in said  # 〜ており、→ 〜ていて、
    assert "上がったらしいのだ" in said
    assert "が期待できそうなのだ" in said or "期待" not in said
    for marker in WRITTEN_STYLE:
        assert marker not in said, marker
    assert "筆者たち" in said  # the author is spoken of, never spoken as
    assert persona_ratio(lines) >= 0.9
    # what it is, before the article's details
    assert said.index("AIエージェントは") < said.index("4万件")


def test_an_english_article_keeps_its_numbers_and_names() -> None:
    summary, lines = segment(ENGLISH, index=1)
    said = "".join(lines)
    assert summary.spoken_title.startswith("Running Llama 3.1 8B") and len(summary.spoken_title) <= 40
    assert "The Verge" not in summary.spoken_title and ":" not in summary.spoken_title
    assert "85 tokens/s" in said and "310 ms" in said
    assert "Llama" in said
    assert persona_ratio(lines) >= 0.9
    assert len(lines) == len(set(lines))


def test_segments_of_one_episode_share_no_stock_line() -> None:
    """Four articles on the same topic: every stock line (asks, reactions, closers) is drawn once."""
    writer = OfflineWriter()
    variants = [SHORT.model_copy(update={"url": f"https://news.example.jp/brief/{n}",
                                         "text": SHORT.text.replace("3.2", f"3.{n}")}) for n in range(4)]
    said: list[str] = []
    for index, candidate in enumerate(variants):
        _, lines = segment(candidate, index, 4, writer)
        said += lines
    assert [line for line, count in Counter(said).items() if count > 1] == []
    closers = [line for line in said if line in offline._CLOSERS]
    assert len(closers) == 4 and len(set(closers)) == 4


@pytest.mark.parametrize(("title", "expected"), [
    ("iPhone 17 Proの新カメラを試す | ITmedia Mobile", "iPhone 17 Proの新カメラを試す"),
    ("AppleがiPhone 17を発表 - GIGAZINE", "AppleがiPhone 17を発表"),
    ("[速報] OpenAIがGPT-5を発表 | ITmedia NEWS", "OpenAIがGPT-5を発表"),
    ("Next.js 15.1の新機能まとめ｜Zenn", "Next.js 15.1の新機能まとめ"),
    ("Kubernetes 1.32 リリース：新機能とアップグレード時の注意点 － Publickey",
     "Kubernetes 1.32 リリース、新機能とアップグレード時の注意点"),
    ("【PDF】生成AI利用実態調査2026 速報版 国内企業の58%が業務で生成AIを利用",
     "生成AI利用実態調査2026 速報版、国内企業の58%が業務で生成AIを利用"),
    # English headlines: names and numbers kept, said in a Japanese frame (the gate wants key terms kept)
    ("Nothing Phone 3 review: a bold bet - The Verge", "Nothing Phone 3のレビューの話"),
    ("Shipping a 3B-parameter language model on-device: 4-bit weights, 42 tokens/s, and what we got wrong"
     " | Kestrel Labs Research", "3B-parameter・4-bit・42 tokens/sの言語モデルの話"),
    ("OpenHarbor releases Tern 2, a 9B open-weight model that fits in 6GB of memory | The Circuit",
     "OpenHarborがTern 2を公開、9B・6GBのモデルの話"),
    ("Cloudflare fixes outage that took down 12% of websites for 3 hours",
     "Cloudflareが障害を修正、12%・3 hoursの話"),
    ("Why your tests are slow and how to fix them", "英語の記事『Why your tests are slow and how』の話"),
    # a head of Latin names is not heard as Japanese: the subline's first phrase joins it
    ("Kubernetes 1.36がリリース、AIワークロード向けのGPU共有機能がベータに"
     "　Podのインプレースリサイズは正式版へ",
     "Kubernetes 1.36がリリース、AIワークロード向けのGPU共有機能"),
    ("アオバクラウド、NVIDIA B300搭載のGPUインスタンスを東京・大阪で提供開始\u30001GPU時間1,280円から",
     "アオバクラウド、NVIDIA B300搭載のGPUインスタンス"),
    ("GPUで高速なモデル推論を実現するために考えること -フラッシュアテンションはなぜ高速か-",
     "GPUで高速なモデル推論を実現するために考えること"),
    ("国産LLM「Tsubaki-2」公開、32Bパラメーターで日本語ベンチマーク首位\u3000Apache 2.0で商用利用可",
     "国産LLM『Tsubaki-2』公開、32Bパラメーターで日本語ベンチマーク首位"),
    # a label before the colon is not the title: the main line follows it, cut where a phrase ends
    ("論文紹介：注意機構の計算量をO(n²)からO(n log n)へ、階層的スパース注意は長文の推論を変えるか",
     "論文紹介、注意機構の計算量をO(n²)からO(n log n)へ"),
])
def test_titles_are_rewritten_for_speaking(title: str, expected: str) -> None:
    spoken = speakable_title(title)
    assert spoken == expected
    assert len(spoken) <= 40
    # the editorial gate's title rules hold for the offline writer's titles (key terms kept, Japanese)
    assert check_title(spoken, title) == [] or (japanese_share(title) < 0.3 and \
        {failure.rule for failure in check_title(spoken, title)} == {"title.not_japanese"})


@pytest.mark.parametrize(("written", "spoken"), [
    ("問題のバージョンは約2時間38分にわたって公開されており、推定18万回インストールされた。",
     ["問題のバージョンは約2時間38分にわたって公開されていて、推定18万回インストールされたのだ。"]),
    ("障害は17日の9時12分から13時20分までの約4時間8分続き、オブジェクトストレージ、マネージドデータベース、"
     "ロードバランサーのAPIなど14のサービスに影響した。",
     ["障害は17日の9時12分から13時20分までの約4時間8分続いたのだ。",
      "オブジェクトストレージ、マネージドデータベース、ロードバランサーのAPIなど14のサービスに影響したのだ。"
          ""]),
    ("新しい設定には誤りがあり、名前解決が失敗した。",
        ["新しい設定には誤りがあって、名前解決が失敗したのだ。"]),
    ("コードネーム「Corsa」として開発が進められてきたものだ。",
        ["コードネーム「Corsa」として開発が進められてきたものなのだ。"]),
    ("最初のトークンが返るまでの時間は平均4.2秒から1.3秒に短縮されたという。",
     ["最初のトークンが返るまでの時間は平均4.2秒から1.3秒に短縮されたらしいのだ。"]),
    ("2027年3月末までに4,096基へ増やす計画だという。", ["2027年3月末までに4,096基へ増やす計画らしいのだ。"]),
    ("この方式は小規模なチームでの普及が期待されている。",
        ["この方式は小規模なチームでの普及が期待できそうなのだ。"]),
    ("0.14で標準となったのは、小さなヘッドを使うEAGLE-3方式である。",
        ["0.14で標準となったのは、小さなヘッドを使うEAGLE-3方式なのだ。"]),
    ("成功率は71%から89%まで上がりましたが、失敗もたくさんしました。",
        ["成功率は71%から89%まで上がったけど、失敗もたくさんしたのだ。"]),
    ("報告書は全文約1万字で、時系列と影響範囲に加え、原因を5段階で掘り下げている。",
     ["報告書は全文約1万字で、時系列と影響範囲に加えて、原因を5段階で掘り下げているのだ。"]),
])
def test_written_style_becomes_spoken(written: str, spoken: list[str]) -> None:
    assert [host_sentence(piece) for piece in spoken_style(written)] == spoken


def test_the_frame_never_repeats_a_lead_and_its_recap_does_not_echo_the_headers() -> None:
    from tasks.script import closing_lines, segment_header

    titles = ["vLLM 0.14が投機的デコーディングを標準で有効に", "TypeScript 7.0正式リリース",
              "社内文書RAGの正答率を62%から91%に上げるまでにやったこと",
              "OpenHarborがTern 2を公開、9B・6GBのモデルの話",
              "ミナト銀行、勘定系システムをパブリッククラウドへ全面移行",
              "Kubernetes 1.36がリリース、AIワークロード向けのGPU共有機能"]
    summaries = [Summary(url=f"https://news.example/{n}", source="s", title=t, spoken_title=t, summary="")
                 for n, t in enumerate(titles)]
    for day in (dt.date(2026, 11, 20), dt.date(2026, 11, 24), dt.date(2026, 12, 1)):
        headers = [segment_header(s, n, len(summaries), day) for n, s in enumerate(summaries)]
        leads = [re.sub(r"[一二三四五六七八九十]つ目", "N", header[0]) for header in headers]
        assert len(set(leads)) == len(leads), leads  # 「次の記事に行くのだ！」 at most once
        closing = closing_lines(day, SHOW.show, summaries)
        recap = closing[1:1 + len(summaries)]
        assert len({re.sub(r"[一二三四五六七八九十]つ目|「[^」]*」", "", line) for line in recap}) >= 4
        said = [header[1] for header in headers]
        assert near_repeats(said + recap, ratio=0.8) == []


# --- splitting a long sentence never changes its facts ----------------------------------------------------


@pytest.mark.parametrize("written", [
    # a report, an opinion, a claim: the first clause belongs to what is reported
    "クラウド会計サービス「ヒバリ会計」を運営するヒバリ株式会社は12月5日、外部からの不正アクセスを受け、"
    "約48万件の顧客情報が流出した可能性があると発表した。",
    "国内では、JPCERT/CCが注意喚起を出し、インターネットに公開しているサーバーから優先して更新するよう"
    "呼びかけている。",
    "著者らは、学習済みのモデルの注意機構を置き換え、約20億トークンの追加学習（continual pre-training）を"
    "するだけで使えるとしている。",
    "調査チームは、エージェントに与える権限を最小限にし、重要な操作の前には人が確認する仕組みを組み込むことが、"
    "導入を広げる鍵になるとみている。",
    "同社によると、攻撃者は委託先の従業員のアカウントを使って管理用のサーバーに入り込み、"
    "顧客の氏名やメールアドレスを含むファイルを外部に持ち出したという。",
    # the date is said once for the whole sentence
    "同社は12月5日、管理用のすべてのアカウントのパスワードを無効にし、委託先に与えていた権限を全面的に"
    "見直す作業を始めた。",
])
def test_a_reported_or_dated_sentence_is_kept_whole(written: str) -> None:
    spoken = [host_sentence(piece) for piece in spoken_style(written)]
    assert len(spoken) == 1, spoken
    assert spoken[0] is not None and spoken[0].endswith("のだ。")


@pytest.mark.parametrize("written", [
    "主要なクラウド事業者はこの脆弱性を受けて管理画面の設定を全面的に見直し、すべての利用者に二要素認証の"
    "設定を案内するメールを順番に送っている。",
    "主要なクラウド事業者はこの脆弱性を受けて管理画面の設定を全面的に見直し、すべての利用者に二要素認証の"
    "設定を案内するメールを順番に送っていた。",
])
def test_a_clause_split_off_a_perfect_sentence_stays_in_the_past(written: str) -> None:
    spoken = [host_sentence(piece) for piece in spoken_style(written)]
    if len(spoken) > 1:  # kept whole is fine too; split, the first clause must not turn present or future
        assert spoken[0] is not None and spoken[0].endswith("見直したのだ。"), spoken


# --- a concept is explained only when the story is about it ------------------------------------------------


def _summary(title: str, body: str) -> Summary:
    return Summary(url="https://news.example.jp/x", source="s", title=title, spoken_title=title, summary=body)


@pytest.mark.parametrize(("title", "body"), [
    ("米クラウド大手ノースリッジ、従業員の12%にあたる約9,000人を削減",
     "米クラウド大手ノースリッジは、従業員を削減すると発表した。クラウド大手の人員削減が続いている。"),
    ("クラウド会計『ヒバリ会計』で不正アクセス、約48万件の顧客情報が流出した可能性",
     "クラウド会計サービスを運営するヒバリ株式会社は、不正アクセスを受けたと発表した。"),
    ("ナギ電子、本社オフィスを移転", "ナギ電子は本社オフィスを移転する。新しいオフィスは駅に近い。"),
    ("NPU搭載マイコンで音声認識を動かしてみた",
     "推論に1回あたり85ミリ秒かかった。推論は12ミリ秒まで縮んだ。"),
])
def test_a_concept_inside_a_longer_word_is_not_explained(title: str, body: str) -> None:
    names = {concept.name for concept in offline._concepts_of(_summary(title, body))}
    assert names.isdisjoint({"クラウド", "セール", "推論エンジン"}), names


def test_a_concept_is_explained_when_it_is_central() -> None:
    in_title = _summary("ミナト銀行、勘定系システムをパブリッククラウドへ全面移行", "移行は来年に終わる。")
    assert "クラウド" in {concept.name for concept in offline._concepts_of(in_title)}
    once = _summary("ミナト銀行が新システム", "勘定系システムをクラウドへ移した。移行は来年に終わる。")
    twice = _summary("ミナト銀行が新システム",
                     "勘定系システムをクラウドへ移した。クラウドの費用は年3億円だ。")
    assert "クラウド" not in {concept.name for concept in offline._concepts_of(once)}  # said in passing
    assert "クラウド" in {concept.name for concept in offline._concepts_of(twice)}


def test_a_concept_line_says_nothing_about_the_article() -> None:
    """The stock explanations are true of the concept, whatever the article: never 「今回は…のお話」."""
    for concept in offline.CONCEPTS:
        for line in (*concept.explanations, concept.picture):
            assert not re.search(r"今回|この記事|今日の", line), line


@pytest.mark.parametrize("title", [
    "NPU搭載マイコンで音声認識を動かしてみた！？消費電力5mW、推論遅延12msを達成するまで〜量子化とメモリ配置の工夫〜",
    "「Switch 2」が1万円値上げへ！？メモリー高騰で12月20日から5万9980円に　任天堂「苦渋の判断」",
    "小型ロボット向けの新しい電源管理チップを試作したら待機電力0.8mW、起動時間40ミリ秒、重さ3グラムに",
    "国内の大手ネット通販各社がそろって配送料を見直し送料無料の基準額を3000円からに変更する方向で調整中",
])
def test_a_cut_title_does_not_end_inside_a_list_or_before_its_cause(title: str) -> None:
    spoken = speakable_title(title)
    assert len(spoken) <= 40
    plain = title.replace("「", "『").replace("」", "』")
    rest = plain[len(spoken):] if plain.startswith(spoken) else ""
    # not the first item of a list (「消費電力5mW」 of 「消費電力5mW、推論遅延12msを達成」)
    assert not (re.search(r"\d[\d,.]*\s*[A-Za-z%万億円件人個]+$", spoken) and rest.startswith("、")), spoken
    assert not rest.startswith(("で", "に")), spoken  # not 「メモリー高騰」 of 「メモリー高騰で…」


def test_a_sentence_that_leans_on_one_never_said_is_not_said_either() -> None:
    from zundacast.llm.offline import _clean_sentences

    too_long = "最初の版は" + "、".join(["評価用の質問を集めて正解の文書を人手で付けた"] * 6) + "ものだった。"
    assert len(too_long) > 130  # a sentence the host cannot say whole
    text = (f"新しいマイコンで音声認識を動かす検証をした。{too_long}"
            "これでは電池が3か月ほどしかもたない。そこで、重みと計算を8ビットの整数に量子化した。"
            "\n\n## 結果\n\nこの結果、電池で約14か月動く見込みになった。")
    kept = _clean_sentences(text)
    assert not any(sentence.startswith("これでは") for sentence in kept)  # its 「これ」 was never said
    assert not any(sentence.startswith("そこで") for sentence in kept)  # nor what そこで follows
    assert "新しいマイコンで音声認識を動かす検証をした。" in kept
    assert not any(sentence.startswith("#") for sentence in kept)
