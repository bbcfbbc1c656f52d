"""Timed lyrics: every result shape, words to lines, interpolation, and valid LRC files."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from lrcparser import LrcParser

from bot.kinds import UnusableResult
from bot.lyrics import (
    MAX_LINE_CHARS,
    NO_LYRICS,
    NO_TIMING,
    NO_VOCALS,
    Lyrics,
    LyricsKind,
    NoTiming,
    NoVocals,
    downsample,
    find_lyrics_payload,
    lrc_time,
    lyrics_in_files,
    parse_lyrics,
    to_lrc,
)
from bot.vidgo.results import (
    SubmitReceipt,
    TaskDetail,
    TaskStatus,
    parse_detail,
    parse_lyrics_submit,
)
from tests.fakes.vidgo import LYRICS_WORDS, fake_lyrics
from tests.helpers import job

SUNG = ["Lights", "on", "the", "water", "Shine", "on", "me"]
SUNG += ["Harbour", "lights,", "(ooh)", "guide", "me", "home"]


def lrc_lines(text: str) -> tuple[dict[str, str], list[tuple[float, str]]]:
    """Parse LRC with lrcparser: (attributes, [(seconds, text)])."""
    parsed = LrcParser.parse(text)
    lines = []
    for line in parsed["lrc_lines"]:
        lines.append((seconds_of(line.start_time), "".join(seg.text for seg in line.text)))
    return parsed["attributes"], lines


def seconds_of(t: Any) -> float:
    return round(t.minutes * 60 + t.seconds + t.microseconds / 1_000_000, 3)


def sung_words_of(lines: list[tuple[float, str]]) -> list[str]:
    return [
        word
        for _, text in lines
        if text and not (text.startswith("(") and text.endswith(")") and " " not in text)
        for word in text.split()
    ]


# --- shapes -------------------------------------------------------------------------------


def test_fields_directly_in_the_container() -> None:
    data = {"task_id": "t", **fake_lyrics()}
    found = find_lyrics_payload(data)
    assert found is not None and len(found["aligned_words"]) == len(LYRICS_WORDS)


@pytest.mark.parametrize("field", ["timestampe_lyrics", "timestamped_lyrics"])
def test_a_json_string_under_either_field_name(field: str) -> None:
    found = find_lyrics_payload({field: json.dumps(fake_lyrics())})
    assert found is not None and found["hoot_cer"] == pytest.approx(0.087)


@pytest.mark.parametrize("field", ["timestampe_lyrics", "timestamped_lyrics"])
def test_an_object_under_either_field_name(field: str) -> None:
    found = find_lyrics_payload({field: fake_lyrics()})
    assert found is not None and len(found["aligned_words"]) == len(LYRICS_WORDS)


def test_odd_payloads_are_not_lyrics() -> None:
    assert find_lyrics_payload({}) is None
    assert find_lyrics_payload({"timestampe_lyrics": "not json {"}) is None
    assert find_lyrics_payload({"timestampe_lyrics": ""}) is None
    assert find_lyrics_payload({"timestampe_lyrics": {"no": "words"}}) is None
    assert find_lyrics_payload({"timestampe_lyrics": 42}) is None
    # A string holding just the words list, or a wrapped object, is still read.
    words = fake_lyrics()["aligned_words"]
    assert find_lyrics_payload({"timestampe_lyrics": json.dumps(words)}) == {"aligned_words": words}
    wrapped = {"timestamped_lyrics": {"data": fake_lyrics()}}
    assert find_lyrics_payload(wrapped) is not None


def test_lyrics_are_found_in_a_detail_reply() -> None:
    body = {
        "code": 200,
        "data": {
            "task_id": "task-1",
            "status": "finished",
            "files": [{"timestampe_lyrics ": json.dumps(fake_lyrics())}],
            "created_time": "2025-11-25T09:00:00",
            "error_message": None,
        },
    }
    detail = parse_detail(body)
    assert detail.stems == {}
    assert lyrics_in_files(detail.files) is not None


def test_a_submit_reply_with_the_result_and_no_task_id_is_a_finished_task() -> None:
    receipt = parse_lyrics_submit({"code": 200, "data": fake_lyrics()})
    assert receipt.status is TaskStatus.FINISHED
    assert receipt.task_id.startswith("inline-")
    other = parse_lyrics_submit({"code": 200, "data": fake_lyrics()})
    assert other.task_id != receipt.task_id  # task ids are unique per job
    assert find_lyrics_payload(receipt.data) is not None


def test_a_submit_reply_with_a_task_and_the_result() -> None:
    receipt = parse_lyrics_submit({"code": 200, "data": {"task_id": "t-9", **fake_lyrics()}})
    assert receipt.task_id == "t-9" and receipt.status is TaskStatus.FINISHED
    plain = parse_lyrics_submit({"code": 200, "data": {"task_id": "t-8", "status": "not_started"}})
    assert plain.status is TaskStatus.NOT_STARTED and find_lyrics_payload(plain.data) is None


# --- words to lines --------------------------------------------------------------------------


def test_the_fixture_song_becomes_lines_with_sections() -> None:
    lyrics = parse_lyrics(fake_lyrics())
    texts = [line.text for line in lyrics.lines]
    assert texts == [
        "(Verse)",
        "Lights on the water",
        "Shine on me",
        "(Chorus)",
        "Harbour lights, (ooh) guide me home",
    ]
    assert [w.text for w in lyrics.words] == SUNG
    assert lyrics.interpolated == 2
    # The unaligned "the" sits between "on" (ends 13.1) and "water" (starts 13.6).
    the = lyrics.words[2]
    assert the.interpolated and 13.1 <= the.start < the.end <= 13.6
    # A section line is shown in the silence before its first word.
    chorus = lyrics.lines[3]
    assert chorus.section == "Chorus" and 16.9 <= chorus.start <= 24.0
    assert lyrics.lines[0].start == 0.0
    assert lyrics.alignment_error == pytest.approx(0.087)
    assert len(lyrics.waveform) == 800 and max(lyrics.waveform) == 1.0


def word(text: str, start: float | None, end: float | None, success: bool = True) -> dict[str, Any]:
    return {"word": text, "start_s": start, "end_s": end, "success": success, "palign": 0.5}


def test_an_instrumental_has_no_vocals() -> None:
    with pytest.raises(NoVocals):
        parse_lyrics({"aligned_words": [], "waveform_data": [0.1, 0.2]})
    with pytest.raises(NoVocals):
        parse_lyrics({"aligned_words": [word("[Instrumental]\n", 0, 1), word("  ", 1, 2)]})
    with pytest.raises(NoVocals):
        parse_lyrics({})


def test_words_none_of_which_were_aligned_cannot_be_timed() -> None:
    with pytest.raises(NoTiming):
        parse_lyrics({"aligned_words": [word("la ", 0, 0, False), word("la", None, None)]})


def test_long_lines_and_long_silences_are_split() -> None:
    words = [word(f"word{i:02d} ", i * 0.4, i * 0.4 + 0.3) for i in range(30)]
    words.append(word("later", 30.0, 30.5))
    lyrics = parse_lyrics({"aligned_words": words})
    assert all(len(line.text) <= MAX_LINE_CHARS for line in lyrics.lines)
    assert lyrics.lines[-1].text == "later"
    assert len(lyrics.lines) >= 4


def test_bad_times_are_interpolated_and_never_go_backwards() -> None:
    words = [
        word("one ", 1.0, 1.5),
        word("two ", math.nan, 2.0),
        word("three ", 0.5, 0.7),  # backwards: re-timed
        word("four ", -3, 1),  # negative: re-timed
        word("five ", 4.0, 3.0),  # end before start: ends at its start
        word("six", 5.0, 5.5, success=False),
    ]
    lyrics = parse_lyrics({"aligned_words": words})
    starts = [w.start for w in lyrics.words]
    assert starts == sorted(starts)
    assert lyrics.interpolated == 4
    assert lyrics.words[4].end == 4.0
    # Unaligned words after the last aligned one get a short time each.
    assert 4.0 <= lyrics.words[5].start < lyrics.words[5].end <= 4.0 + 1.0


def test_several_words_in_one_entry_share_its_time() -> None:
    lyrics = parse_lyrics({"aligned_words": [word("the sunrise\n", 2.0, 4.0)]})
    the, sunrise = lyrics.words
    assert the.start == 2.0 and the.end == pytest.approx(sunrise.start)
    assert sunrise.end == pytest.approx(4.0) and sunrise.start > the.start


def test_markup_and_control_characters_do_not_reach_the_file() -> None:
    words = [word("\x00<b>hi</b> ", 1.0, 1.2), word("[Bridge\n", 2, 3), word("a]b", 3, 4)]
    lyrics = parse_lyrics({"aligned_words": words})
    text = to_lrc(lyrics, title="Evil]\n[ar:x")
    assert "\x00" not in text and "<b>" not in text
    attributes, _ = lrc_lines(text)
    assert attributes["ti"] == "Evil ar:x"
    assert "ar" not in attributes


def test_markers_after_the_last_word_close_the_song() -> None:
    lyrics = parse_lyrics({"aligned_words": [word("bye\n", 1.0, 2.0), word("[End]", 9, 9)]})
    assert [line.text for line in lyrics.lines] == ["bye", "(End)"]
    assert lyrics.lines[-1].start == 2.0


def test_stored_lyrics_read_back_the_same() -> None:
    lyrics = parse_lyrics(fake_lyrics())
    again = Lyrics.from_stored(json.loads(json.dumps(lyrics.to_stored())))
    assert [line.text for line in again.lines] == [line.text for line in lyrics.lines]
    assert again.interpolated == 2 and len(again.waveform) == 800
    assert to_lrc(again, title="x") == to_lrc(lyrics, title="x")


# --- LRC ---------------------------------------------------------------------------------------


def test_lrc_time_format() -> None:
    assert lrc_time(0) == "00:00.00"
    assert lrc_time(83.456) == "01:23.46"
    assert lrc_time(-1) == "00:00.00"
    # Two-digit minutes are what players read: nothing is stamped later than 99:59.99.
    assert lrc_time(6000.0) == "99:59.99"
    assert lrc_time(5999.994) == "99:59.99"


def test_the_lrc_file_parses_back_with_every_word_once() -> None:
    lyrics = parse_lyrics(fake_lyrics())
    text = to_lrc(lyrics, title="Harbour Lights", length=184.32)
    attributes, lines = lrc_lines(text)
    assert attributes["ti"] == "Harbour Lights"
    assert attributes["length"] == "03:04"
    assert "2 word(s) timed by interpolation" in attributes["#"]
    times = [t for t, _ in lines]
    assert times == sorted(times)
    assert sung_words_of(lines) == SUNG
    assert lines[1] == (12.4, "Lights on the water")
    assert lines[-1][1] == ""  # clears the screen when the singing ends
    assert lines[-1][0] == pytest.approx(28.2)
    assert "(Verse)" in [t for _, t in lines]


def test_enhanced_lrc_stamps_every_word() -> None:
    lyrics = parse_lyrics(fake_lyrics())
    text = to_lrc(lyrics, title="Harbour Lights", enhanced=True)
    assert "[00:12.40]<00:12.40>Lights <00:12.90>on <" in text
    parsed = LrcParser.parse(text)
    stamped = [
        (seconds_of(seg.time), seg.text.strip())
        for line in parsed["lrc_lines"]
        if "".join(seg.text for seg in line.text) not in ("(Verse)", "(Chorus)", "")
        for seg in line.text
    ]
    assert [w for _, w in stamped] == SUNG
    assert [t for t, _ in stamped] == sorted(t for t, _ in stamped)
    assert stamped[0] == (12.4, "Lights")
    # Without a length, the header uses the end of the last word.
    assert "[length: 00:28]" in text


alignable = st.lists(
    st.tuples(
        st.text(alphabet=st.characters(codec="utf-8"), min_size=0, max_size=12),
        st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers()),
        st.one_of(st.none(), st.floats(-10, 500)),
        st.booleans(),
    ),
    min_size=0,
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(alignable)
@example([("0", 60000.0, None, True)])  # a "time" of 16 h used to give a 4-digit minute stamp
def test_any_input_gives_a_valid_lrc_or_a_clear_refusal(entries: list[Any]) -> None:
    payload = {"aligned_words": [word(t + " ", s, e, ok) for t, s, e, ok in entries]}
    try:
        lyrics = parse_lyrics(payload)
    except (NoVocals, NoTiming):
        return
    text = to_lrc(lyrics, title="t")
    _, lines = lrc_lines(text)
    times = [t for t, _ in lines]
    assert times == sorted(times)
    assert sung_words_of(lines) == [w.text for w in lyrics.words if not _looks_like_section(w.text)]


def _looks_like_section(text: str) -> bool:
    return text.startswith("(") and text.endswith(")")


# --- waveform samples --------------------------------------------------------------------------


def test_downsample_handles_empty_odd_and_huge_inputs() -> None:
    assert downsample(None) == ()
    assert downsample([]) == ()
    assert downsample(["x", None, math.nan, math.inf]) == ()
    assert downsample([0, 0, 0]) == (0.0, 0.0, 0.0)
    assert downsample([1, -2, 4]) == (0.25, 0.5, 1.0)
    huge = downsample([math.sin(i) for i in range(200_000)])
    assert len(huge) == 800 and max(huge) == 1.0 and min(huge) >= 0.0


# --- the job kind ------------------------------------------------------------------------------


def detail_with(files: list[dict[str, Any]]) -> TaskDetail:
    return TaskDetail("task-1", TaskStatus.FINISHED, {}, (), None, None, files=tuple(files))


def kind() -> LyricsKind:
    return LyricsKind(vidgo=object())  # type: ignore[arg-type]


def test_the_kind_stores_parsed_lyrics() -> None:
    result = kind().result_of(None, detail_with([{"timestampe_lyrics": json.dumps(fake_lyrics())}]))  # type: ignore[arg-type]
    assert result["words"] == len(SUNG) and result["interpolated"] == 2
    assert result["vidgo_task_id"] == "task-1"
    assert Lyrics.from_stored(result).lines[1].text == "Lights on the water"


@pytest.mark.parametrize(
    ("files", "error_kind"),
    [
        (
            [{"timestampe_lyrics": json.dumps({"aligned_words": [], "waveform_data": []})}],
            NO_VOCALS,
        ),
        ([{"timestamped_lyrics": {"aligned_words": [word("x", 0, 0, False)]}}], NO_TIMING),
        ([{"something_else": "{}"}], NO_LYRICS),
    ],
)
def test_unusable_results_fail_with_a_reason(files: list[dict[str, Any]], error_kind: str) -> None:
    with pytest.raises(UnusableResult) as caught:
        kind().result_of(None, detail_with(files))  # type: ignore[arg-type]
    assert caught.value.error_kind == error_kind
    if error_kind == NO_VOCALS:
        assert "no vocals" in caught.value.message


def test_a_result_in_the_submit_reply_is_taken_at_once() -> None:
    receipt = SubmitReceipt("t", TaskStatus.FINISHED, None, data=fake_lyrics())
    result = kind().result_at_submit(None, receipt)  # type: ignore[arg-type]
    assert result is not None and result["words"] == len(SUNG)
    waiting = SubmitReceipt("t", TaskStatus.NOT_STARTED, None, data={"task_id": "t"})
    assert kind().result_at_submit(None, waiting) is None  # type: ignore[arg-type]


async def test_the_kind_refuses_sources_that_are_not_vidgo_songs() -> None:
    from dataclasses import replace

    from bot.jobs import ErrorKind
    from bot.kinds import Unsubmittable
    from storage.records import SourceKind

    # A local condition: it fails the job as invalid without pretending Vidgo said so.
    upload = replace(job(), source_kind=SourceKind.URL, source_task_id=None)
    with pytest.raises(Unsubmittable) as refused:
        await kind().submit(upload, None)
    assert refused.value.error_kind == ErrorKind.INVALID


def test_stored_lyrics_with_damaged_entries_are_read_leniently() -> None:
    stored = {
        "lines": [
            {"section": "Verse", "start": 0},
            {"start": 1.0, "words": [["ok", 1.0, 1.5, 0], ["bad", "x", 2, 0], "junk"]},
            {"start": 3.0, "words": []},
            "junk",
        ],
        "waveform": [0.5, "x", None],
        "interpolated": "many",
    }
    lyrics = Lyrics.from_stored(stored)
    assert [line.text for line in lyrics.lines] == ["(Verse)", "ok"]
    assert lyrics.waveform == (0.5,) and lyrics.interpolated == 0


def test_a_huge_word_entry_is_bounded() -> None:
    lyrics = parse_lyrics({"aligned_words": [word("la " * 100_000, 1.0, 2.0)]})
    assert len(lyrics.words) <= 400


def test_huge_integers_from_json_are_ignored_not_fatal() -> None:
    huge = 10**400
    lyrics = parse_lyrics(
        {
            "aligned_words": [word("a ", 1.0, 2.0), word("b", huge, huge)],
            "waveform_data": [huge, -huge, 3, True, 1.5],
            "hoot_cer": huge,
        }
    )
    assert lyrics.interpolated == 1
    assert lyrics.waveform == (1.0, 0.5)
    assert lyrics.alignment_error is None
