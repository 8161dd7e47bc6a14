"""Bad input gets a clear error that names what to fix, before anything runs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from zundacast.cli import main
from zundacast.dates import InvalidDate, parse_episode_date
from zundacast.show import ShowFileError, load_show

VALID_SHOW = Path(__file__).resolve().parents[2] / "shows" / "zundamon-ai.toml"


def _show_with(tmp_path: Path, old: str, new: str) -> Path:
    text = VALID_SHOW.read_text("utf-8")
    assert old in text
    path = tmp_path / "broken.toml"
    path.write_text(text.replace(old, new, 1), "utf-8")
    return path


@pytest.mark.parametrize(("old", "new", "named"), [
    ('weight = 1.2', 'weight = -1', "feeds.0.weight"),
    ('timezone = "Asia/Tokyo"', 'timezone = "Mars/Olympus"', "show.timezone"),
    ('engine = "openjtalk"', 'engine = "espeak"', "voice.engine"),
    ('picks = 3', 'pickz = 3', "rank.pickz"),
    ('id = "zundamon-ai"', 'id = "Zundamon AI"', "show.id"),
    ('[llm]', '[review]\nbefore = "upload"\npoll_s = 0\n\n[llm]', "review.poll_s"),
])
def test_invalid_show_file_names_the_field(tmp_path: Path, old: str, new: str, named: str) -> None:
    with pytest.raises(ShowFileError) as error:
        load_show(str(_show_with(tmp_path, old, new)))
    assert named in str(error.value)
    assert "broken.toml" in str(error.value)


def test_show_file_that_is_not_toml_says_so(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[show\nid = 1", "utf-8")
    with pytest.raises(ShowFileError, match="not valid TOML"):
        load_show(str(path))


def test_missing_show_names_where_it_looked() -> None:
    with pytest.raises(ShowFileError, match=r"shows/nope\.toml"):
        load_show("nope")


@pytest.mark.parametrize("value", ["2025-13-01", "yesterday", "2025/07/24", "24-07-2025"])
def test_malformed_date_is_refused_with_the_format(value: str) -> None:
    with pytest.raises(InvalidDate, match="YYYY-MM-DD"):
        parse_episode_date(value, "Asia/Tokyo")


def test_future_date_is_refused() -> None:
    tomorrow = dt.date.today() + dt.timedelta(days=2)
    with pytest.raises(InvalidDate, match="in the future"):
        parse_episode_date(tomorrow.isoformat(), "Asia/Tokyo")


def test_cli_reports_bad_input_and_exits_2_without_starting_prefect(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = _show_with(tmp_path, 'weight = 1.2', 'weight = -1')
    assert main(["run", "--show", str(broken), "--store", str(tmp_path / "out")]) == 2
    assert "feeds.0.weight" in capsys.readouterr().err
    assert main(["run", "--date", "2025-02-30", "--store", str(tmp_path / "out")]) == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_refuses_an_unknown_stage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--refresh", "synthesise"])
    assert exit_info.value.code == 2
    assert "synthesize" in capsys.readouterr().err


# --- zundacast demo --voice / --show ------------------------------------------------------------------------

def test_demo_refuses_an_unknown_voice(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--voice", "espeak"])
    assert exit_info.value.code == 2
    assert "openjtalk" in capsys.readouterr().err


def test_demo_with_a_broken_show_file_fails_before_anything_starts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = _show_with(tmp_path, "speed_scale = 1.1", "speed_scale = 9")
    assert main(["demo", "--show", str(broken), "--store", str(tmp_path / "out")]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("zundacast: error: ")]
    assert len(errors) == 1 and "voice.voicevox.speed_scale" in errors[0]
    assert not (tmp_path / "out").exists()


def test_demo_voice_and_show_choose_the_voice_while_the_feeds_stay_the_sample_days(tmp_path: Path) -> None:
    import argparse

    from zundacast.cli import _demo_show

    base = "http://127.0.0.1:47865"
    sample = _demo_show(argparse.Namespace(show="", voice=""), base)
    assert sample.voice.engine == "openjtalk"
    assert _demo_show(argparse.Namespace(show="", voice="openai"), base).voice.engine == "openai"
    mine = _show_with(tmp_path, 'engine = "openjtalk"', 'engine = "voicevox"')
    mine.write_text(mine.read_text("utf-8").replace('style = "ノーマル"', 'style = "ささやき"')
                    .replace("bitrate_kbps = 96", "bitrate_kbps = 128"), "utf-8")
    chosen = _demo_show(argparse.Namespace(show=str(mine), voice=""), base)
    assert chosen.voice.engine == "voicevox" and chosen.voice.voicevox.style == "ささやき"
    assert chosen.audio.bitrate_kbps == 128
    assert [feed.url for feed in chosen.feeds] == [feed.url for feed in sample.feeds]
    assert all(feed.url.startswith(base) for feed in chosen.feeds)
    overridden = _demo_show(argparse.Namespace(show=str(mine), voice="openjtalk"), base)
    assert overridden.voice.engine == "openjtalk" and overridden.audio.bitrate_kbps == 128


def test_demo_show_takes_the_shows_picks_up_to_what_the_sample_day_fills(tmp_path: Path) -> None:
    """`demo --show FILE` makes as many picks as the file's [rank] picks; more than the sample day's feeds
    can fill (each gives at most max_per_source) is cut to what they fill, and a note at the end says so."""
    import argparse

    from tasks.collect import collect_candidates
    from tasks.rank import rank_candidates
    from zundacast.cli import _demo_picks_note, _demo_show, _parser, _sample_day_picks
    from zundacast.sample_day import SAMPLE_DATE, serve_sample_day

    one, eight = (_show_with(tmp_path, "picks = 3", f"picks = {n}").rename(tmp_path / f"picks-{n}.toml")
                  for n in (1, 8))
    base = "http://127.0.0.1:47865"
    sample = _demo_show(argparse.Namespace(show="", voice=""), base)
    most = _sample_day_picks(sample)
    assert sample.rank.picks == 3 and most == 4  # two feeds, max_per_source = 2
    assert _demo_show(argparse.Namespace(show=str(one), voice="voicevox"), base).rank.picks == 1
    assert _demo_picks_note(argparse.Namespace(show=str(one)), 1) == []
    assert _demo_picks_note(argparse.Namespace(show=""), 3) == []
    capped = _demo_show(argparse.Namespace(show=str(eight), voice=""), base)
    assert capped.rank.picks == most
    (note,) = _demo_picks_note(argparse.Namespace(show=str(eight)), capped.rank.picks)
    assert note.startswith("note: the sample day fills 4 of the 8 picks") and str(eight) in note
    assert f"zundacast run --show {eight}" in note
    demo_help = " ".join(next(action for action in _parser()._subparsers._group_actions  # type: ignore[union-attr]
                              ).choices["demo"].format_help().split())
    assert "[rank] picks, up to the sample day's 4)" in demo_help

    with serve_sample_day(port=0) as served:  # the sample day really fills that many, and no more
        show = _demo_show(argparse.Namespace(show=str(eight), voice=""), served)
        wide = show.model_copy(update={"rank": show.rank.model_copy(update={"picks": 8})})
        ranking = rank_candidates(collect_candidates(show, SAMPLE_DATE), wide, SAMPLE_DATE, [])
    assert len(ranking.picks) == most


def test_demo_show_warns_about_the_show_file_it_was_given(tmp_path: Path) -> None:
    """`demo --show FILE` takes FILE's [show] table, so its closing warnings are FILE's: none when FILE sets
    owner_email; without --show they name the bundled show."""
    import argparse

    from zundacast.cli import _demo_notes

    feed = "https://podcast.example.com/zunda/feed.xml"  # a public feed: no note about a local one
    with_owner = _show_with(tmp_path, 'owner_email = ""', 'owner_email = "owner@example.com"')
    assert _demo_notes(argparse.Namespace(show=str(with_owner)), feed, 3) == []
    (bundled,) = _demo_notes(argparse.Namespace(show=""), feed, 3)
    assert bundled.startswith("warning: ") and "zundamon-ai.toml" in bundled
    assert "[show].owner_email is not set" in bundled
