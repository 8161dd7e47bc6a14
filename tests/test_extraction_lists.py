"""Related-links blocks never reach the article text, whatever their shape; the story's own lists and prose
that merely names them stay (zundacast.extraction.clean_text)."""

from __future__ import annotations

import pytest

from zundacast.extraction import clean_text

BODY = ["米クラウド大手のノースリッジは12月7日、全従業員の約12%にあたる約9,000人を削減すると発表した。",
        "同社は、浮いた資金をAI向けのデータセンターの建設に振り向ける。"]
HEADLINES = ("AIデータセンター投資、2027年は世界で5000億ドル超か", "ノースリッジ、7〜9月期は増収増益")


@pytest.mark.parametrize("block", [
    # the header with its list on the same line (what trafilatura makes of one <p>)
    "あわせて読みたい ・AIデータセンター投資、2027年は世界で5000億ドル超か ・ノースリッジ、7〜9月期は増収増益",
    "【関連記事】 ▼AIデータセンター投資、2027年は世界で5000億ドル超か ▼ノースリッジ、7〜9月期は増収増益",
    "関連記事：AIデータセンター投資、2027年は世界で5000億ドル超か / ノースリッジ、7〜9月期は増収増益",
    "▼関連 → AIデータセンター投資、2027年は世界で5000億ドル超か → ノースリッジ、7〜9月期は増収増益",
    # the header alone, the items marked or bare on the next lines
    "こちらもおすすめ\n・AIデータセンター投資、2027年は世界で5000億ドル超か\n・ノースリッジ、7〜9月期は増収増益",
    "【関連記事】\n■AIデータセンター投資、2027年は世界で5000億ドル超か\n■ノースリッジ、7〜9月期は増収増益",
    "人気記事\nAIデータセンター投資、2027年は世界で5000億ドル超か\nノースリッジ、7〜9月期は増収増益",
    "おすすめ記事\n● AIデータセンター投資、2027年は世界で5000億ドル超か\n- ノースリッジ、7〜9月期は増収増益",
    "Read more: AIデータセンター投資、2027年は世界で5000億ドル超か\n→ ノースリッジ、7〜9月期は増収増益",
    # no header: a paragraph of link-marked headlines, or of bulleted headlines run together, ends the page
    "▼AIデータセンター投資、2027年は世界で5000億ドル超か ▼ノースリッジ、7〜9月期は増収増益",
    "→AIデータセンター投資、2027年は世界で5000億ドル超か\n→ノースリッジ、7〜9月期は増収増益",
    "・AIデータセンター投資、2027年は世界で5000億ドル超か ・ノースリッジ、7〜9月期は増収増益",
])
def test_a_related_links_block_is_dropped_whatever_its_shape(block: str) -> None:
    text = clean_text("\n".join([*BODY, block]))

    assert text.splitlines() == BODY
    assert not any(headline in text for headline in HEADLINES)


def test_the_article_goes_on_after_a_related_block_in_its_middle() -> None:
    after = "削減の対象は、営業や人事などの管理部門が中心で、2027年1月末までに対象者に通知するという。"
    text = clean_text("\n".join([BODY[0], "あわせて読みたい", "・ノースリッジ、7〜9月期は増収増益", after]))

    assert text.splitlines() == [BODY[0], after]


def test_an_english_related_block_is_dropped() -> None:
    body = ["Northridge said on Monday it would cut about 9,000 jobs, or 12 percent of its staff."]
    text = clean_text("\n".join([*body, "Related", "Northridge beats estimates as AI demand grows",
                                 "Read more: Cloud giants race to build AI data centers"]))

    assert text.splitlines() == body


@pytest.mark.parametrize("prose", [
    "関連記事によると、同社は2025年にも約3,000人を削減している。",
    "おすすめの設定は、まず権限を読み取り専用にしておくことだ。",
    "関連する特許は、すでに日米で成立しているという。",
    "Related companies also fell, with shares of two suppliers down 4 percent.",
    "Read more about the rules in the department's notice, published on Friday.",
])
def test_prose_that_opens_with_the_words_stays(prose: str) -> None:
    assert clean_text("\n".join([BODY[0], prose])).splitlines() == [BODY[0], prose]


def test_the_storys_own_bulleted_facts_stay() -> None:
    facts = ["・売上高は前年同期比38%増の9,420億円", "・営業利益は同2.4倍の1,830億円",
             "・HBMの売上高は約3,100億円"]
    # one fact a line (an <ul> in the body), at the end of the article or in its middle
    text = clean_text("\n".join([BODY[0], *facts]))
    assert text.splitlines() == [BODY[0], *(fact + "。" for fact in facts)]
    text = clean_text("\n".join([BODY[0], *facts, BODY[1]]))
    assert text.splitlines() == [BODY[0], *(fact + "。" for fact in facts), BODY[1]]
    # a list the prose introduces is the story's, even run together in one paragraph
    intro = "決算の主な数字は次の通り。"
    text = clean_text("\n".join([BODY[0], intro, " ".join(facts)]))
    assert text.splitlines() == [BODY[0], intro, " ".join(facts) + "。"]


def test_a_related_list_ends_at_the_next_paragraph_of_prose() -> None:
    text = clean_text("\n".join([BODY[0], "関連記事", "ノースリッジ、7〜9月期は増収増益",
                                 "写真の共有機能も強化され、家族とアルバムを分け合えるようになった。"]))

    assert text.splitlines() == [BODY[0], "写真の共有機能も強化され、家族とアルバムを分け合えるようになった。"]
