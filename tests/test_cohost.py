"""A second host ([show.cohost]): the show file, the dialogue writers, the gate per speaker, her own voice
and her cues, down to a two-host episode made by the real flow (offline writer, OpenJTalk)."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tasks.script import build_script, validate_script, write_said_checked
from tests.fakes.openai_server import FakeOpenAI, fake_openai
from tests.fakes.voicevox import METAN_STYLES, ZUNDAMON_STYLES, fake_voicevox
from tests.test_script import SHOW, offline_summaries
from zundacast.editorial import check_segment, cohost_persona, injection
from zundacast.llm.offline import OfflineWriter
from zundacast.llm.openai_writer import PARSE_ATTEMPTS, OpenAIWriter
from zundacast.models import Cue, Script, Sentence, Summary
from zundacast.publishing.formats import render_vtt
from zundacast.show import (
    CohostConfig,
    Environment,
    LLMConfig,
    ShowFileError,
    VoiceConfig,
    parse_show,
)
from zundacast.voices import speaker_voices

METAN = "四国めたん"
HOST = "ずんだもん"
DAY = dt.date(2026, 11, 20)
INFO = SHOW.show.model_copy(update={"cohost": CohostConfig(name=METAN)})


def _raw_show(**cohost: Any) -> dict[str, Any]:
    return {"show": {"id": "duo", "title": "二人の放送局", "cohost": cohost},
            "feeds": [{"name": "a", "url": "https://example.com/feed.xml"}]}


def _dialogue(slug: str = "llm-inference", total: int = 1) -> tuple[list[tuple[str, str]], Summary]:
    summary = offline_summaries((slug,))[0]
    said, _usage = OfflineWriter(seed="t").write_dialogue(summary, 0, total, INFO)
    return said, summary


def _check(said: list[tuple[str, str]], summary: Summary, total: int = 1) -> set[str]:
    failures, _claims, _grounded = check_segment([line for _, line in said], summary, total,
                                                 speakers=[speaker for speaker, _ in said],
                                                 cohost=INFO.cohost, host=HOST)
    return {failure.rule for failure in failures}


# --- the show file -----------------------------------------------------------------------------------------


def test_the_show_file_takes_a_cohost_with_her_voices() -> None:
    show = parse_show(_raw_show(name=METAN, voicevox={"style": "あまあま"}, openjtalk={"half_tone": -2.0},
                                openai={"voice": "nova"}, endings=["わよ", "かしら？"]))
    cohost = show.show.cohost
    assert cohost is not None and cohost.name == METAN
    assert cohost.voicevox.speaker_name == METAN and cohost.voicevox.style == "あまあま"
    assert cohost.openjtalk.half_tone == -2.0 and cohost.openai.voice == "nova"
    assert cohost.endings == ["わよ", "かしら"]  # punctuation is not part of an ending
    assert parse_show({**_raw_show(), "show": {"id": "solo", "title": "t"}}).show.cohost is None


@pytest.mark.parametrize(("cohost", "field"), [
    ({"name": METAN, "endings": ["わよ", "なのだ"]}, "show.cohost.endings"),
    ({"name": METAN, "endings": []}, "show.cohost.endings"),
    ({"name": METAN, "openjtalk": {"half_tone": 40}}, "show.cohost.openjtalk.half_tone"),
    ({"name": METAN, "voicevox": {"style": ""}}, "show.cohost.voicevox.style"),
    ({"name": METAN, "voice": "coral"}, "show.cohost.voice"),
    ({"persona": "お嬢様"}, "show.cohost.name"),
    ({"name": HOST}, "cohost.name"),
])
def test_a_bad_cohost_is_one_line_naming_the_field(cohost: dict[str, Any], field: str) -> None:
    with pytest.raises(ShowFileError) as caught:
        parse_show(_raw_show(**cohost), "shows/duo.toml")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("shows/duo.toml: invalid show file")
    assert field in message


def test_a_single_host_show_and_its_records_serialize_as_before() -> None:
    """No cohost: no new key anywhere, so Prefect's cache keys and episode files stay what they were."""
    assert "cohost" not in SHOW.show.model_dump(mode="json")
    assert Sentence(text="あ", speech="あ").model_dump() == {"text": "あ", "speech": "あ"}
    assert Cue(start_s=0, end_s=1, text="あ").model_dump() == {"start_s": 0, "end_s": 1, "text": "あ"}
    script = build_script(DAY, offline_summaries(("llm-inference",)), SHOW.show, SHOW.pronunciation,
                          OfflineWriter())
    assert '"speaker"' not in script.model_dump_json() and '"cohost"' not in script.model_dump_json()
    assert "cohost" in INFO.model_dump(mode="json")
    assert Sentence(text="あ", speech="あ", speaker=METAN).model_dump()["speaker"] == METAN


# --- the offline writer's dialogue and the gate per speaker ------------------------------------------------


def test_the_offline_dialogue_has_both_hosts_and_passes_the_gate() -> None:
    said, summary = _dialogue()
    speakers = [speaker for speaker, _ in said]
    assert set(speakers) == {HOST, METAN}
    assert 2 <= speakers.count(METAN) < speakers.count(HOST)  # she asks and reacts, he explains
    assert speakers[0] == HOST  # the host opens the story
    assert _check(said, summary) == set()
    for speaker, line in said:
        if speaker == METAN:
            assert "のだ" not in line and not re.search(r"\d|[A-Za-z]", line)


def test_the_gate_refuses_a_cohost_line_in_the_hosts_noda() -> None:
    said, summary = _dialogue()
    at = next(index for index, (speaker, _) in enumerate(said) if speaker == METAN)
    said[at] = (METAN, "それはすごいことなのだ！")
    assert "persona.cohost" in _check(said, summary)
    assert cohost_persona("それはすごいことなのだ！", "x", INFO.cohost)  # type: ignore[arg-type]
    assert cohost_persona("それはすごいのだけれど、大丈夫かしら？", "x", INFO.cohost) == []  # type: ignore[arg-type]
    assert cohost_persona("それはすごいことです。", "x", INFO.cohost)  # type: ignore[arg-type]


def test_the_gate_refuses_host_lines_without_noda() -> None:
    said, summary = _dialogue()
    plain = [(speaker, re.sub(r"(な)?のだ([。！？])$", r"です\2", line) if speaker == HOST else line)
             for speaker, line in said]
    assert plain != said
    assert "persona.ratio" in _check(plain, summary)


def test_the_gate_wants_both_hosts_and_every_line_tagged() -> None:
    said, summary = _dialogue()
    host_only = [(speaker, line) for speaker, line in said if speaker == HOST]
    assert "dialogue.both" in _check(host_only, summary)
    at = next(index for index, (speaker, _) in enumerate(said) if speaker == METAN)
    untagged = [*said[:at], ("", said[at][1]), *said[at + 1:]]
    assert "dialogue.speaker" in _check(untagged, summary)
    mostly_her = [(METAN if speaker == HOST and index % 3 else speaker,
                   "なるほど、そういうことですわね。" if speaker == HOST and index % 3 else line)
                  for index, (speaker, line) in enumerate(said)]
    assert "dialogue.both" in _check(mostly_her, summary)  # the explaining stays with the host


def test_her_own_style_is_hers_but_not_the_hosts() -> None:
    line = "わたくし、とても驚きましたわ。"
    assert {f.rule for f in injection(line, "x", cohost=METAN)} == {"injection.persona"}  # said by him
    assert injection(line, "x", cohost=METAN, by_cohost=True) == []
    assert injection(f"今日は{METAN}も一緒なのだ！", "x", cohost=METAN) == []  # he may name her
    assert injection("わたくし、春日部つむぎですわ。", "x", cohost=METAN, by_cohost=True)  # not another


def test_a_two_host_script_passes_and_every_sentence_has_its_speaker() -> None:
    summaries = offline_summaries(("llm-inference", "domestic-llm", "agent-ops"))
    script = build_script(DAY, summaries, INFO, SHOW.pronunciation, OfflineWriter())
    titles, spoken = [s.title for s in summaries], [s.spoken_title for s in summaries]
    assert validate_script(script, titles, spoken, INFO) == []
    assert script.cohost == METAN and script.quality.persona_ratio >= 0.9
    for section in script.sections:
        assert {s.speaker for s in section.sentences} == {HOST, METAN}, section.title
    # the same script, judged as a single-host show's: her lines are not the host's
    assert any("dialogue.speaker" in failure for failure in validate_script(script, titles, spoken))
    # one of her lines given to the host: his persona holds, hers is refused when she says his
    swapped = _with_sentence(script, lambda s: s.speaker == METAN, text="本当にすごいのだ！")
    assert any("persona.cohost" in failure for failure in validate_script(swapped, titles, spoken, INFO))


def _with_sentence(script: Script, which: Any, **changes: str) -> Script:
    sections = [section.model_copy(deep=True) for section in script.sections]
    for section in sections:
        for index, sentence in enumerate(section.sentences):
            if which(sentence):
                section.sentences[index] = sentence.model_copy(update=changes)
                return script.model_copy(update={"sections": sections})
    raise AssertionError("no such sentence")


def test_a_review_edit_keeps_the_speaker_and_is_judged_in_her_persona() -> None:
    from zundacast.review import ReviewEdit, apply_edits, review_markdown

    summaries = offline_summaries(("llm-inference",))
    script = build_script(DAY, summaries, INFO, SHOW.pronunciation, OfflineWriter())
    article = next(section for section in script.sections if section.kind == "article")
    number = next(index for index, s in enumerate(article.sentences, start=1) if s.speaker == METAN)
    assert f"{number}. {METAN}: {article.sentences[number - 1].text}" in review_markdown(
        SHOW.model_copy(update={"show": INFO}), _ranking_of(summaries), script, [])

    def edit(text: str) -> tuple[Script, list[str]]:
        change = ReviewEdit(article=1, sentence=number, text=text)
        edited, _described, problems = apply_edits(script, summaries, [change], SHOW.pronunciation, INFO)
        return edited, problems

    edited, problems = edit("それは本当に素敵なお話ですわね。")
    sentence = next(s for s in edited.sections if s.kind == "article").sentences[number - 1]
    assert problems == [] and sentence.speaker == METAN
    assert sentence.text == "それは本当に素敵なお話ですわね。"
    _edited, problems = edit("それは本当に素敵なお話なのだ。")
    assert any("persona.cohost" in problem for problem in problems)


def _ranking_of(summaries: list[Summary]) -> Any:
    from zundacast.models import Candidate, Pick, Ranking

    return Ranking(picks=[Pick(rank=n, score=1.0,
                               candidate=Candidate(url=s.url, title=s.title, source=s.source))
                          for n, s in enumerate(summaries, start=1)])


def test_voicevox_episodes_credit_both_characters() -> None:
    from zundacast.models import EpisodeRecord
    from zundacast.publishing.credits import episode_credit

    voiced = EpisodeRecord.model_construct(engine="voicevox")
    assert episode_credit(INFO, voiced) == f"VOICEVOX:{HOST}、VOICEVOX:{METAN}"
    assert episode_credit(SHOW.show, voiced) == f"VOICEVOX:{HOST}"
    assert episode_credit(INFO, EpisodeRecord.model_construct(engine="openjtalk")) == ""


# --- the LLM writer: speaker-tagged lines in its JSON, checked by the gate -------------------------------

TSUBAKI = Summary(
    url="https://news.example.com/tsubaki", source="テックニュース", title="国産LLM「Tsubaki-2」",
    spoken_title="国産LLM『ツバキ2』公開", language="ja", writer="gpt-4o-mini",
    summary="ツバキAI研究所が、日本語に強い大規模言語モデル「Tsubaki-2」を公開しました。"
            "パラメーター数は32Bで、ライセンスはApache 2.0です。",
    key_points=["日本語ベンチマークJMMLUで78.4点を記録しました。",
                "学習にはNVIDIA H100を2,048基使いました。"],
    why_it_matters="社内データを外に出さずにAIを使えるようになります。",
)
HOST_LINES = [f"今度は{topic}の話で、新人エンジニアにもわかるように、やさしく話していくのだ。"
              for topic in ("推論", "学習", "評価", "速度", "費用", "安全性", "品質", "設計", "運用", "監視",
                            "検索", "記憶", "並列化", "量子化", "圧縮", "調達", "配布", "検証", "導入",
                            "移行")]
HER_LINES = ["まあ、それはどういうお話なのかしら？", "もう少し詳しく聞きたいですわ。",
             "それはすごいですわね！", "新人のみなさんにも役立つお話ですわね。",
             "大切なことがよくわかりましたわ。"]


def _tagged(drop_speaker_at: int | None = None, speaker_at: dict[int, str] | None = None) -> str:
    lines: list[dict[str, str]] = []
    for index, line in enumerate(HOST_LINES):
        lines.append({"speaker": HOST, "text": line})
        if index % 4 == 0:
            lines.append({"speaker": METAN, "text": HER_LINES[index // 4]})
    for index, speaker in (speaker_at or {}).items():
        lines[index]["speaker"] = speaker
    if drop_speaker_at is not None:
        del lines[drop_speaker_at]["speaker"]
    return json.dumps({"lines": lines}, ensure_ascii=False)


@pytest.fixture
def llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    with fake_openai(lambda request: _tagged()) as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-cohost-0000")
        yield fake


def _llm_writer() -> OpenAIWriter:
    return OpenAIWriter(LLMConfig(), model="gpt-4o-mini", env=Environment())


def test_a_faithful_tagged_dialogue_from_the_llm_passes(llm: FakeOpenAI) -> None:
    said, usage, reason, fired, *_ = write_said_checked(_llm_writer(), TSUBAKI, 0, 1, INFO, max_attempts=2)
    assert reason == "" and not [rule for rule in fired if rule.action != "kept"]
    assert said == [(line["speaker"], line["text"]) for line in json.loads(_tagged())["lines"]]
    assert usage.requests == 1
    request = llm.requests[0]
    assert request.schema_name == "DialogueDraft"
    system = request.messages[0]["content"]
    assert METAN in system and HOST in system and "わよ" in system  # both voices and her endings asked


def test_an_llm_line_without_its_speaker_is_refused(llm: FakeOpenAI) -> None:
    llm.responder = lambda request: _tagged(drop_speaker_at=3)  # not the schema: asked again, then offline
    said, _usage, reason, *_ = write_said_checked(_llm_writer(), TSUBAKI, 0, 1, INFO, max_attempts=2)
    assert len(llm.requests) == PARSE_ATTEMPTS
    assert reason.startswith("WriterOutputError") and "not the schema" in reason
    assert said == OfflineWriter().write_dialogue(TSUBAKI, 0, 1, INFO)[0]  # the offline dialogue instead


def test_an_llm_line_with_an_unknown_speaker_goes_back_with_the_gates_feedback(llm: FakeOpenAI) -> None:
    replies = iter([_tagged(speaker_at={1: ""}), _tagged()])
    llm.responder = lambda request: next(replies)
    said, _usage, reason, fired, *_ = write_said_checked(_llm_writer(), TSUBAKI, 0, 1, INFO, max_attempts=2)
    assert reason == "" and {(r.rule, r.action) for r in fired} >= {("dialogue.speaker", "rewritten")}
    assert "dialogue.speaker" in llm.requests[1].messages[-1]["content"]  # the feedback named the rule
    assert all(speaker in (HOST, METAN) for speaker, _ in said)


# --- her voice ----------------------------------------------------------------------------------------------


def test_openjtalk_gives_her_another_voice_for_the_same_text() -> None:
    voice_of, engines = speaker_voices(VoiceConfig(), Environment(), INFO.cohost)
    text = "今日のニュースを紹介します。"
    his, hers = voice_of(HOST).synthesize(text), voice_of(METAN).synthesize(text)
    assert voice_of("") is engines[0] and voice_of(METAN) is engines[1]
    assert engines[0].cache_key() != engines[1].cache_key()  # separate utterance caches
    assert his.sample_rate == hers.sample_rate
    # she speaks slower (speed 1.0 against 1.1) and lower (half_tone -1 against 3): longer audio
    assert len(hers.samples) > len(his.samples)


def test_voicevox_says_each_line_in_its_speakers_style(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    from tasks.synthesize import synthesize_script
    from zundacast.show import AudioConfig

    summaries = offline_summaries(("llm-inference",))
    script = build_script(DAY, summaries, INFO, SHOW.pronunciation, OfflineWriter())
    with fake_voicevox() as fake:
        monkeypatch.setenv("VOICEVOX_URL", fake.url)
        voice_of, engines = speaker_voices(VoiceConfig(engine="voicevox"), Environment(), INFO.cohost)
        try:
            bundle = synthesize_script(script, engines[0], AudioConfig(jingle=False), INFO,
                                       tmp_path / "work", voices=voice_of)
        finally:
            for engine in engines:
                engine.close()  # type: ignore[attr-defined]
        synthesis = [r for r in fake.requests if r["path"] == "/synthesis" and r.get("ok")]
        by_style: dict[str, int] = {}
        for request in synthesis:
            by_style[request["params"]["speaker"]] = by_style.get(request["params"]["speaker"], 0) + 1
    her_sentences = {s.speech for section in script.sections for s in section.sentences if s.speaker == METAN}
    his_sentences = {s.speech for section in script.sections for s in section.sentences if s.speaker != METAN}
    assert by_style == {str(ZUNDAMON_STYLES["ノーマル"]): len(his_sentences),
                        str(METAN_STYLES["ノーマル"]): len(her_sentences)}
    vtt = render_vtt(bundle.cues, speaker=HOST)
    voices = re.findall(r"^<v ([^>]+)>", vtt, re.MULTILINE)
    assert set(voices) == {HOST, METAN} and voices.count(METAN) == sum(
        1 for section in script.sections for s in section.sentences if s.speaker == METAN)


def test_an_unknown_style_for_her_names_her_table(monkeypatch: pytest.MonkeyPatch) -> None:
    from zundacast.voices import PermanentVoiceError

    cohost = CohostConfig(name=METAN, voicevox={"style": "ハイテンション"})  # type: ignore[arg-type]
    with fake_voicevox() as fake:
        monkeypatch.setenv("VOICEVOX_URL", fake.url)
        voice_of, engines = speaker_voices(VoiceConfig(engine="voicevox"), Environment(), cohost)
        assert voice_of(HOST).synthesize("ずんだもんなのだ").samples.size  # his style exists
        with pytest.raises(PermanentVoiceError,
                           match=r"has no style 'ハイテンション'.*show\.cohost\.voicevox\.style"):
            voice_of(METAN).synthesize("わたくしですわ")
        for engine in engines:
            engine.close()  # type: ignore[attr-defined]


# --- a two-host episode through the real flow ---------------------------------------------------------------


@pytest.mark.slow
def test_a_two_host_episode_through_the_flow(prefect_results: Path, shared_speech: Path,
                                              tmp_path: Path) -> None:
    from tests.faults.support import run_flow, sample_site, short_show

    with sample_site() as (_site, base):
        show = short_show(base, picks=1, show={"cohost": {"name": METAN}})
        store = tmp_path / "public"
        summary = run_flow(show, store)
    assert summary.stages["upload"].status == "computed"
    day_dir = store / DAY.isoformat()

    # the script as the flow persisted it (Prefect's result of the script stage): both speakers' lines
    scripts = [found for path in prefect_results.rglob("*") if path.is_file()
               for found in _scripts_in(path.read_bytes())]
    assert scripts, "no persisted script result"
    script = scripts[-1]
    assert script.cohost == METAN
    articles = [section for section in script.sections if section.kind == "article"]
    assert len(articles) == 1
    assert {s.speaker for s in articles[0].sentences} == {HOST, METAN}
    her_lines = [s.text for section in script.sections for s in section.sentences if s.speaker == METAN]
    assert her_lines and not any("のだ" in line for line in her_lines)

    # her cues carry her voice in the published transcript
    vtt = (day_dir / "transcript.vtt").read_text("utf-8")
    cues = re.findall(r"^<v ([^>]+)>(.*)$", vtt, re.MULTILINE)
    assert {speaker for speaker, _ in cues} == {HOST, METAN}
    assert sorted(text for speaker, text in cues if speaker == METAN) == sorted(her_lines)

    # and her voice is her own: a second utterance cache (other settings) holding exactly her sentences
    engine_dirs = {(path / "engine.txt").read_text("utf-8").strip(): path
                   for path in (shared_speech / "tts").iterdir() if (path / "engine.txt").is_file()}
    hers = [path for key, path in engine_dirs.items() if "half_tone=-1.0" in key]
    assert len(hers) == 1
    her_speech = {s.speech for section in script.sections for s in section.sentences if s.speaker == METAN}
    from zundacast.audio.utterances import cache_path
    assert all(cache_path(hers[0], speech).is_file() for speech in her_speech)
    record = json.loads((day_dir / "episode.json").read_text("utf-8"))
    assert all(line in record["transcript"] for line in her_lines)
    turns = [line for line in record["transcript"].splitlines() if line != "----"]
    assert turns and all(line.startswith((f"{HOST}: ", f"{METAN}: ")) for line in turns)  # who says what


def _scripts_in(data: bytes) -> list[Script]:
    """The Script in one persisted Prefect result file, if it holds one."""
    from prefect._internal.result_records import ResultRecord

    try:
        result = ResultRecord.deserialize(data).result
    except Exception:  # not a result record (metadata files, locks)
        return []
    return [result] if isinstance(result, Script) else []
