"""Bad news is told soberly: no cheer about its numbers, no jokes, no ！ on its facts, a sober closer.

The writer is called directly on small articles (no flow run): a breach, a layoff, a ransomware attack and
an outage against good news with the same kind of numbers.
"""

from __future__ import annotations

import re
from itertools import pairwise

import pytest

from zundacast.llm import offline
from zundacast.llm.offline import OfflineWriter, is_bad_news
from zundacast.models import Candidate
from zundacast.show import CohostConfig, load_show

SHOW = load_show("zundamon-ai")

BAD = [
    ("クラウド会計『ヒバリ会計』で不正アクセス、約48万件の顧客情報が流出した可能性",
     "ヒバリ株式会社は12月5日、外部からの不正アクセスを受けたと発表した。"),
    ("米クラウド大手ノースリッジ、従業員の12%にあたる約9,000人を削減",
     "ノースリッジは12月7日、約9,000人を削減すると発表した。"),
    ("市立病院にランサムウェア攻撃、電子カルテが使えず外来を制限",
     "市立病院は電子カルテのシステムが暗号化されたと発表した。"),
    ("決済大手ミドリペイ、3時間半の全面障害の原因は『証明書の期限切れ』",
     "ミドリペイは障害の原因を公表した。"),
    ("OpenSSL 3.5.1に深刻な脆弱性『CVE-2026-12345』", "OpenSSLの開発チームは修正版を公開した。"),
    ("人気ゲーム機、来月から値上げへ", "メーカーは価格を改定すると発表した。"),
    ("Northridge lays off 9,000 as it shifts spending to AI", "Northridge said it would cut jobs."),
]
GOOD = [
    ("カスミ半導体、7〜9月期の営業利益は前年同期比2.4倍の1,830億円",
     "カスミ半導体が発表した連結決算は、営業利益が同2.4倍の1,830億円だった。"),
    ("携帯ゲーミングPC『ROG Ally X2』国内発売", "エイスースは携帯型のゲーミングPCを発売すると発表した。"),
    ("『AIエージェント、本番で使ってる？』開発者1,200人調査", "ソラマメ研究所は開発者1,200人を調べた。"),
    ("vLLM 0.14が投機的デコーディングを標準で有効に", "推論エンジンのvLLMが0.14を公開した。"),
    ("カード会社、AIで不正検知の精度を向上", "不正検知の新モデルは誤検知を半分に減らした。"),
    ("経産相、AI人材の育成の重要性を訴える", "経済産業相は会見でAI人材の育成を訴えた。"),
]


@pytest.mark.parametrize(("title", "lead"), BAD)
def test_bad_news_is_recognized(title: str, lead: str) -> None:
    assert is_bad_news(title, lead)


@pytest.mark.parametrize(("title", "lead"), GOOD)
def test_good_news_is_not_bad_news(title: str, lead: str) -> None:
    assert not is_bad_news(title, lead)


BREACH = Candidate(
    url="https://news.example.jp/breach", source="ニュース", language="ja",
    title="クラウド会計『ヒバリ会計』で不正アクセス、約48万件の顧客情報が流出した可能性",
    text=("クラウド会計サービス「ヒバリ会計」を運営するヒバリ株式会社は12月5日、外部からの不正アクセスを受け、"
          "約48万件の顧客情報が流出した可能性があると発表した。"
          "流出した可能性があるのは、氏名、メールアドレス、会社名、電話番号だという。"
          "問い合わせの件数は、前の週の約3倍に増えた！"
          "被害を受けた利用者は、前年の2.4倍にのぼった。"
          "攻撃者は、開発の委託先の従業員のアカウントを使っていた。"
          "同社はすべての利用者のパスワードを無効にし、再設定を求めている。"
          "ヒバリ会計は中小企業を中心に約12万社が使っている。"
          "同社は、今後すべての管理用アカウントに多要素認証を義務づけることが重要だとしている。"))

CHEER = re.compile(r"ずんだ餅|どう活かせそう|ワクワク|わくわく|伸び幅|楽しみ|奥が深い|追いかけていく")


@pytest.mark.parametrize("index", range(4))
def test_bad_news_gets_sober_lines_only(index: int) -> None:
    writer = OfflineWriter(seed="2026-12-07")
    summary = writer.summarize(BREACH)
    lines, _ = writer.write_segment(summary, index, 4, SHOW.show, [])
    said = "\n".join(lines)
    assert "約48万件" in said and "2.4倍" in said  # the facts are told
    assert not [line for line in lines if line.endswith(("！", "!"))], lines
    assert not CHEER.search(said), said
    assert not set(lines) & set(offline._NUMBER_REACTIONS) and not set(lines) & set(offline._CLOSERS)
    assert set(lines) & set(offline._SOBER_CLOSERS)  # it still closes, soberly


def test_good_news_keeps_the_hosts_cheer() -> None:
    good = BREACH.model_copy(update={
        "title": "カスミ半導体、7〜9月期の営業利益は前年同期比2.4倍の1,830億円",
        "text": "カスミ半導体が12月5日に発表した連結決算は、営業利益が前年同期比2.4倍の1,830億円だった。"
                "HBMの出荷が大きく伸びた。HBMの売上高は約3,100億円で、前年の3倍になった。"
                "同社は営業利益の予想を引き上げた。"})
    writer = OfflineWriter(seed="2026-12-07")
    lines, _ = writer.write_segment(writer.summarize(good), 0, 3, SHOW.show, [])
    assert set(lines) & {*offline._CLOSERS, *offline._NEWS_CLOSERS}
    assert any(line.endswith("！") for line in lines)


# --- frame lines are true of the story they frame ---------------------------------------------------------


def test_no_frame_line_claims_a_repeat() -> None:
    """The line before the article's point never says it is said again: that sentence is said once."""
    assert not [line for line in offline._ARTICLE_POINT if re.search(r"もう一度|くり返|繰り返", line)]


@pytest.mark.parametrize(("line", "striking"), [
    ("HBMの売上高は約3,100億円で、全体の3分の1を占めたのだ。", False),
    ("本番の業務で使っていると答えた人は31%だったのだ。", False),
    ("売上高が前年同期比38%増の9,420億円だったのだ。", True),
    ("営業利益が同2.4倍の1,830億円だったのだ。", True),
    ("推論は85ミリ秒から12ミリ秒に短縮されたのだ。", True),
])
def test_only_a_change_gets_the_hosts_surprise(line: str, striking: bool) -> None:
    lines = ["同社は決算を発表したのだ。", line]
    assert (offline._emphasize(lines) is not None) == striking
    assert lines[1].endswith("！") == striking


EARNINGS = Candidate(
    url="https://news.example.jp/earnings", source="ニュース", language="ja",
    title="カスミ半導体、7〜9月期の営業利益は前年同期比2.4倍の1,830億円",
    text=("半導体メモリー大手のカスミ半導体が12月5日に発表した2026年7〜9月期の連結決算は、"
          "営業利益が前年同期比2.4倍の1,830億円だった。"
          "生成AI向けのサーバーに使う広帯域メモリーの出荷が大きく伸びた。"
          "同社は2027年3月期の営業利益の予想を、従来の5,200億円から6,500億円に引き上げた。"
          "設備投資は、北上工場の新棟に約4,500億円を投じる。"))
TECH_ONLY = ("技術の流れ", "現場の工夫", "ずんだ餅の仕込み", "どう活かせそう", "いつもの道具",
             "明日からの仕事")


@pytest.mark.parametrize("index", range(5))
def test_a_business_story_gets_no_lines_about_learning_technology(index: int) -> None:
    writer = OfflineWriter(seed="2026-12-07")
    lines, _ = writer.write_segment(writer.summarize(EARNINGS), index, 5, SHOW.show, [])
    said = "\n".join(lines)
    assert "1,830億円" in said
    assert not [phrase for phrase in TECH_ONLY if phrase in said], said


def test_a_fall_gets_no_surprise() -> None:
    lines = ["汎用メモリーの売上高は前年同期比5%減にとどまったのだ。", "応答時間は2倍に延びたのだ。",
             "切り替えは費用が3倍になったのに正答率は1ポイントしか上がらなくて、採用を見送っているのだ。"]
    assert offline._emphasize(lines) is None and not any(line.endswith("！") for line in lines)


# --- connectors -------------------------------------------------------------------------------------------


def _connected(lines: list[str]) -> list[int]:
    return [position for position, line in enumerate(lines) if line.startswith(offline._ADDITIVE)]


def test_connectors_are_spaced() -> None:
    words = ["さらに、"] * 4 + ["あと、"] * 2 + [""] * 3
    lines = [f"{word}{n}件目の事実なのだ。" for n, word in enumerate(words)]
    spaced = offline._space_connectors(lines)
    at = _connected(spaced)
    assert all(later - earlier >= 3 for earlier, later in pairwise(at)), spaced
    assert sum(line.startswith("さらに、") for line in spaced) <= 2
    assert [re.sub(r"^(さらに|あと)、", "", line) for line in spaced] == [
        re.sub(r"^(さらに|あと)、", "", line) for line in lines]  # only the connectors go


LONG = Candidate(
    url="https://news.example.jp/long", source="ニュース", language="ja",
    title="ナギ電子、NPU搭載マイコンで音声認識を5mWで動かす",
    text="".join(f"ナギ電子の検証チームは、{n}回目の試験で{name}を確かめた。" for n, name in enumerate(
        ("認識の正答率", "推論の時間", "消費電力", "電池の持ち", "雑音への強さ", "メモリーの使い方",
         "重みの配置", "整数への量子化", "工場での動き", "温度の影響", "起動の時間", "誤認識の数"), 1)))


@pytest.mark.parametrize("n", range(12))
def test_a_segment_never_chains_connectors(n: int) -> None:
    """Key points get a connector at random (per article): wherever they fall, they are spaced."""
    writer = OfflineWriter(seed="2026-12-07")
    candidate = LONG.model_copy(update={"url": f"https://news.example.jp/long/{n}"})
    lines, _ = writer.write_segment(writer.summarize(candidate), 0, 3, SHOW.show, [])
    at = _connected(lines)
    assert all(later - earlier >= 3 for earlier, later in pairwise(at)), lines


EXPORT_RULES = Candidate(
    url="https://chips.example.com/export", source="Global Chip Wire", site_name="Global Chip Wire",
    language="en",
    title="US tightens export rules on AI accelerators, adds 14 companies to the Entity List",
    text=("Under the new rules, chips with a total processing performance above 4,800 TOPS will need a "
          "license to be shipped to more than 40 countries. The previous threshold was 6,000 TOPS. The rules "
          "take effect on January 15, 2027, giving chipmakers about six weeks to adjust their orders. "
          "Analysts estimate that the change could cut annual sales by about $3.2 billion, or roughly "
          "4 percent of the market. Shares fell between 2 and 6 percent, leaving 3 designers lower."))


def test_an_english_number_is_said_with_its_unit() -> None:
    writer = OfflineWriter()
    summary = writer.summarize(EXPORT_RULES)
    quoted = [match for point in summary.key_points for match in re.findall(r"「([^」]*)」という", point)]
    assert {"4,800 TOPS", "$3.2 billion", "40 countries"} <= set(quoted), quoted
    for fact in quoted:  # a unit or a noun after the number, never a verb or a clause
        assert re.fullmatch(r"\$?[\d,.]+\s?(?:%|[A-Za-z/]+)(?: [a-z]+)?", fact), fact
        assert not re.search(r",\s|ing$|ed$", fact), fact
    lines, _ = writer.write_segment(summary, 0, 3, SHOW.show, [])
    at = _connected(lines)
    assert all(later - earlier >= 3 for earlier, later in pairwise(at)), lines


def test_the_cohost_does_not_cheer_bad_news() -> None:
    show = SHOW.show.model_copy(update={"cohost": CohostConfig(name="四国めたん")})
    writer = OfflineWriter(seed="2026-12-07")
    summary = writer.summarize(BREACH)
    for index in range(4):
        said, _ = writer.write_dialogue(summary, index, 4, show)
        hers = [line for speaker, line in said if speaker == "四国めたん"]
        assert len(hers) >= 3
        cheer = re.compile(r"すごい|驚き|わくわく|楽しみ|面白そう|便利|助か")
        assert not [line for line in hers if cheer.search(line)]
        assert set(hers) <= {line for pool in offline._COHOST_SOBER_POOLS for line in pool}
