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
    "あわせて読みたい ・AIデータセンター投資、2027年は世界で5000億ドル超か "
    "・ノースリッジ、7〜9月期は増収増益",
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
    prose = "写真の共有機能も強化され、家族とアルバムを分け合えるようになった。"
    text = clean_text("\n".join([BODY[0], "関連記事", "ノースリッジ、7〜9月期は増収増益", prose]))

    assert text.splitlines() == [BODY[0], prose]


# ---- subheadings stay headings: structure for later stages, never a sentence to read out ----------------

def _page(body: str) -> str:
    return f"""<!DOCTYPE html><html lang="ja"><head><meta charset="utf-8">
<title>OpenSSLに深刻な脆弱性、修正版3.5.2を公開 | セキュリティ速報</title></head><body>
<header><nav><a href="/">トップ</a> <a href="/security">セキュリティ</a></nav></header>
<main><article><h1>OpenSSLに深刻な脆弱性、修正版3.5.2を公開</h1>
{body}
</article></main><footer><p>© 2026 セキュリティ速報</p></footer></body></html>"""


LEAD = ("OpenSSLの開発チームは12月6日、暗号ライブラリー「OpenSSL」の3.5.0と3.5.1に深刻な脆弱性があると"
        "公表し、修正版の3.5.2を公開した。遠隔から任意のコードを実行される恐れがある。")
NEXT = ("主要なLinuxディストリビューションは、修正を取り込んだパッケージの配布を始めた。Ubuntu 26.04 LTSと"
        "Debian 13では、すでに更新できる。")


@pytest.mark.parametrize("tag", ["h2", "h3", "h4"])
def test_a_subheading_is_marked_as_a_heading_not_made_a_sentence(tag: str) -> None:
    from zundacast.extraction import extract_article
    from zundacast.speech import split_sentences

    heading = "Linuxディストリビューションも修正版を配布"
    html = _page(f"<p>{LEAD}</p>\n<{tag}>{heading}</{tag}>\n<p>{NEXT}</p>")

    article = extract_article(html, "http://127.0.0.1:1/openssl", "OpenSSLに深刻な脆弱性、修正版3.5.2を公開")

    assert article is not None
    lines = article.text.splitlines()
    assert f"## {heading}" in lines  # still there, as structure, on its own line
    assert lines[lines.index(f"## {heading}") + 1] == NEXT
    assert f"{heading}。" not in article.text  # not dressed up as a sentence of the story
    # every sentence a writer can take from the text either is prose of the article or carries the mark
    for sentence in split_sentences(article.text, max_chars=400):
        assert sentence.startswith("## ") or sentence.endswith("。"), sentence


def test_a_heading_that_is_a_sentence_or_a_related_header_is_still_handled() -> None:
    text = clean_text("\n".join(["## 何が変わるのか？", LEAD, "## 関連記事",
                                 "ノースリッジ、7〜9月期は増収増益", "## この記事をシェア"]))

    assert text.splitlines() == ["## 何が変わるのか？", LEAD]


def test_short_unterminated_lines_are_headings_but_list_items_rows_and_long_lines_are_not() -> None:
    long_line = ("米クラウド大手のノースリッジは全従業員の約12%にあたる約9,000人を削減すると発表し、"
                 "削減に伴う退職金などの費用として約11億ドルを10〜12月期に計上")
    lines = ["AIへの投資に資金を振り向け", "Linux distributions ship the fix", "・対象は3.5.0と3.5.1",
             "- CVSS 9.8", "価格 | 14万9800円", long_line]

    text = clean_text("\n".join([LEAD, *lines]))

    assert text.splitlines() == [LEAD, "## AIへの投資に資金を振り向け", "## Linux distributions ship the fix",
                                 "・対象は3.5.0と3.5.1。", "- CVSS 9.8.", "価格 | 14万9800円。",
                                 long_line + "。"]
