"""Parsing of Vidgo's submit, detail and callback bodies (every variant in docs/vidgo-api.md)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.vidgo.errors import VidgoMalformedResponse, VidgoTransientError
from bot.vidgo.results import (
    SubmitReceipt,
    TaskStatus,
    TrackInfo,
    normalize_stems,
    parse_balance,
    parse_detail,
    parse_submit,
)

TASK = "task-unified-1764061200-k3v9qz1a"
BASE = f"https://storage.vidgo.ai/audio/{TASK}"


def finished(files: list[dict[str, Any]], *, flat: bool = False) -> dict[str, Any]:
    data = {
        "task_id": TASK,
        "status": "finished",
        "files": files,
        "created_time": "2025-11-25T09:00:00",
        "error_message": None,
    }
    return data if flat else {"code": 200, "data": data}


SEPARATE_VOCALS_RESULT = {
    "vocal_url": f"{BASE}/vocals.mp3",
    "instrumental_url": f"{BASE}/instrumental.mp3",
}


@pytest.mark.parametrize("flat", [False, True], ids=["envelope", "flat"])
@pytest.mark.parametrize("field", ["separate_vocals", "stem_split", "vocal_removal"])
@pytest.mark.parametrize("as_string", [True, False], ids=["json-string", "object"])
def test_separation_result_is_read_from_every_field_and_form(
    flat: bool, field: str, as_string: bool
) -> None:
    value: object = json.dumps(SEPARATE_VOCALS_RESULT) if as_string else SEPARATE_VOCALS_RESULT
    detail = parse_detail(finished([{field: value}], flat=flat))
    assert detail.task_id == TASK
    assert detail.status is TaskStatus.FINISHED
    assert detail.stems == {
        "vocals": f"{BASE}/vocals.mp3",
        "instrumental": f"{BASE}/instrumental.mp3",
    }
    assert detail.tracks == ()
    assert detail.created_time == datetime(2025, 11, 25, 9, 0, tzinfo=UTC)


def test_stem_split_lists_vocals_first_then_the_order_received() -> None:
    keys = ["bass_url", "drums_url", "vocal_url", "backing_vocals_url", "piano_url", "fx_url"]
    result = {key: f"{BASE}/{key}.mp3" for key in keys}
    stems = parse_detail(finished([{"stem_split": json.dumps(result)}])).stems
    assert list(stems) == ["vocals", "bass", "drums", "backing_vocals", "piano", "fx"]
    assert stems["vocals"] == f"{BASE}/vocal_url.mp3"


def test_upload_result_keys_without_url_suffix() -> None:
    result = {name: f"{BASE}/{name}.mp3" for name in ("bass", "drums", "piano", "guitar")}
    result["vocals"] = f"{BASE}/vocals.mp3"
    result["other"] = f"{BASE}/other.mp3"
    stems = parse_detail(finished([{"vocal_removal": json.dumps(result)}])).stems
    assert list(stems) == ["vocals", "bass", "drums", "piano", "guitar", "other"]


def test_trailing_spaces_in_result_and_field_keys_are_trimmed() -> None:
    result = '{"vocal_url ": "https://s.example/v.mp3", "drums_url  ": "https://s.example/d.mp3"}'
    stems = parse_detail(finished([{"stem_split ": result}])).stems
    assert stems == {"vocals": "https://s.example/v.mp3", "drums": "https://s.example/d.mp3"}


def test_first_present_field_wins_within_an_entry() -> None:
    entry = {
        "separate_vocals": json.dumps({"vocal_url": "https://a.example/v.mp3"}),
        "vocal_removal": json.dumps({"vocals": "https://b.example/v.mp3"}),
    }
    assert parse_detail(finished([entry])).stems == {"vocals": "https://a.example/v.mp3"}


def test_null_field_falls_through_to_the_next_name() -> None:
    entry = {"separate_vocals": None, "vocal_removal": json.dumps(SEPARATE_VOCALS_RESULT)}
    assert list(parse_detail(finished([entry])).stems) == ["vocals", "instrumental"]


def test_result_in_a_later_files_entry_is_found() -> None:
    files: list[dict[str, Any]] = [
        {"wav_url": "x"},
        {"stem_split": json.dumps({"bass_url": "https://s.example/b.mp3"})},
    ]
    assert parse_detail(finished(files)).stems == {"bass": "https://s.example/b.mp3"}


def test_missing_and_empty_stems_mean_not_produced() -> None:
    result = {"vocals": "", "drums": "https://s.example/d.mp3", "bass": None, "piano": "   "}
    assert parse_detail(finished([{"vocal_removal": result}])).stems == {
        "drums": "https://s.example/d.mp3"
    }


def test_origin_is_not_a_stem() -> None:
    result = {"origin_url": "https://s.example/o.mp3", "vocal_url": "https://s.example/v.mp3"}
    assert normalize_stems(result) == {"vocals": "https://s.example/v.mp3"}


def test_unknown_keys_with_valid_urls_are_kept_normalised() -> None:
    result = {"Choir_URL ": "https://s.example/c.mp3", "Lead-Vocal": "https://s.example/l.mp3"}
    assert normalize_stems(result) == {
        "choir": "https://s.example/c.mp3",
        "lead_vocal": "https://s.example/l.mp3",
    }


def test_a_name_that_is_not_a_plain_word_is_dropped(caplog: pytest.LogCaptureFixture) -> None:
    result = {"../../etc/passwd": "https://s.example/x.mp3", "bass": "https://s.example/b.mp3"}
    with caplog.at_level(logging.WARNING, logger="bot.vidgo.results"):
        assert normalize_stems(result) == {"bass": "https://s.example/b.mp3"}
    assert "not a plain name" in caplog.text


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "data:audio/mpeg;base64,AAAA",
        "file:///etc/passwd",
        "ftp://s.example/v.mp3",
        "/audio/v.mp3",
        "//s.example/v.mp3",
        "s.example/v.mp3",
        "https://",
        "https://s.example/" + "a" * 2048,
        "https://s.example/a b.mp3",
        "https://s.example/a\nb.mp3",
        "https://s.example/\x00.mp3",
        "https://s.example/\u2028.mp3",
        "https://s.example:99999/v.mp3",
        "https://s.example\\@evil.example/v.mp3",
        42,
        {"url": "https://s.example/v.mp3"},
    ],
)
def test_unsafe_stem_urls_are_dropped_and_logged(
    url: object, caplog: pytest.LogCaptureFixture
) -> None:
    result = {"vocal_url": url, "instrumental_url": "https://s.example/i.mp3"}
    with caplog.at_level(logging.WARNING, logger="bot.vidgo.results"):
        stems = parse_detail(finished([{"separate_vocals": json.dumps(result)}])).stems
    assert stems == {"instrumental": "https://s.example/i.mp3"}
    assert "'vocals' has an unsafe or invalid URL" in caplog.text


def test_plain_http_and_uppercase_scheme_are_accepted() -> None:
    result = {"vocals": "http://s.example/v.mp3", "bass": "HTTPS://S.example/b.mp3"}
    assert normalize_stems(result) == {
        "vocals": "http://s.example/v.mp3",
        "bass": "HTTPS://S.example/b.mp3",
    }


def test_vocal_and_vocals_are_one_stem_and_the_first_wins() -> None:
    result = {"vocal_url": "https://s.example/1.mp3", "vocals": "https://s.example/2.mp3"}
    assert normalize_stems(result) == {"vocals": "https://s.example/1.mp3"}


@pytest.mark.parametrize("raw", ["not json", "[1, 2]", "42", "", None, 7])
def test_unreadable_results_give_no_stems(raw: object) -> None:
    assert normalize_stems(raw) == {}


@pytest.mark.parametrize("status", ["not_started", "running", "failed"])
def test_stems_are_empty_unless_finished(status: str) -> None:
    body = finished([{"separate_vocals": json.dumps(SEPARATE_VOCALS_RESULT)}])
    body["data"]["status"] = status
    detail = parse_detail(body)
    assert detail.status == status
    assert detail.stems == {}


def test_failed_task_keeps_its_message_truncated() -> None:
    body = {
        "code": 200,
        "data": {
            "task_id": TASK,
            "status": "failed",
            "files": [],
            "created_time": "2025-11-25T09:05:00",
            "error_message": "x" * 5000,
        },
    }
    detail = parse_detail(body)
    assert detail.status is TaskStatus.FAILED
    assert detail.status.is_terminal
    assert detail.error_message == "x" * 1000


def test_status_is_case_and_space_insensitive() -> None:
    body = finished([])
    body["data"]["status"] = " FINISHED "
    assert parse_detail(body).status is TaskStatus.FINISHED


@pytest.mark.parametrize(
    "payload",
    [
        None,
        "a string",
        [1, 2],
        {},
        {"code": 500, "msg": "boom", "data": None},
        {"code": 200, "data": {"status": "running"}},
        {"code": 200, "data": {"task_id": "", "status": "running"}},
        {"code": 200, "data": {"task_id": TASK}},
        {"code": 200, "data": {"task_id": TASK, "status": "queued"}},
        {"code": 200, "data": {"task_id": TASK, "status": 3}},
        {"task_id": 12, "status": "running"},
    ],
)
def test_malformed_bodies_raise(payload: object) -> None:
    with pytest.raises(VidgoMalformedResponse):
        parse_detail(payload)
    with pytest.raises(VidgoMalformedResponse):
        parse_submit(payload)


def test_malformed_is_a_transient_error() -> None:
    assert issubclass(VidgoMalformedResponse, VidgoTransientError)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2025-11-25T08:50:13", datetime(2025, 11, 25, 8, 50, 13, tzinfo=UTC)),
        ("2025-11-25T08:50:13Z", datetime(2025, 11, 25, 8, 50, 13, tzinfo=UTC)),
        ("2025-11-25T10:50:13+02:00", datetime(2025, 11, 25, 8, 50, 13, tzinfo=UTC)),
        (1764060613, datetime(2025, 11, 25, 8, 50, 13, tzinfo=UTC)),
        ("yesterday", None),
        (None, None),
        (True, None),
    ],
)
def test_created_time_is_aware_utc(raw: object, expected: datetime | None) -> None:
    receipt = parse_submit(
        {"code": 200, "data": {"task_id": TASK, "status": "not_started", "created_time": raw}}
    )
    assert receipt.created_time == expected
    if receipt.created_time is not None:
        assert receipt.created_time.utcoffset() is not None


@pytest.mark.parametrize("flat", [False, True])
def test_submit_receipt(flat: bool) -> None:
    data = {"task_id": TASK, "status": "not_started", "created_time": "2025-11-25T09:00:00"}
    receipt = parse_submit(data if flat else {"code": 200, "data": data})
    assert receipt == SubmitReceipt(
        TASK, TaskStatus.NOT_STARTED, datetime(2025, 11, 25, 9, tzinfo=UTC)
    )
    assert not receipt.status.is_terminal


def test_generation_tracks_are_parsed() -> None:
    files: list[dict[str, Any]] = [
        {
            "audio_id": "62e4542a-73be-44e1-b397-7716ee7505c6",
            "title": " Harbour Lights ",
            "image_url": "https://storage.vidgo.ai/audio/8FDN/x_cover_62e4.jpeg",
            "duration": 184.32,
            "audio_url": "https://storage.vidgo.ai/audio/8FDN/x_audio_62e4.mp3",
            "tags": "synthwave",
        },
        {
            "audio_id": "8e755734-a840-4c13-beac-b9f1044979ca",
            "title": None,
            "image_url": "javascript:alert(1)",
            "duration": "201.5",
            "audio_url": "",
        },
        {"title": "no audio id, not a track"},
    ]
    detail = parse_detail(finished(files))
    assert detail.stems == {}
    assert detail.tracks == (
        TrackInfo(
            audio_id="62e4542a-73be-44e1-b397-7716ee7505c6",
            title="Harbour Lights",
            cover_url="https://storage.vidgo.ai/audio/8FDN/x_cover_62e4.jpeg",
            duration=184.32,
            audio_url="https://storage.vidgo.ai/audio/8FDN/x_audio_62e4.mp3",
        ),
        TrackInfo(
            audio_id="8e755734-a840-4c13-beac-b9f1044979ca",
            title=None,
            cover_url=None,
            duration=201.5,
            audio_url=None,
        ),
    )


@pytest.mark.parametrize("duration", [10**400, -1, float("nan"), "inf", "1e999", True, 86_401])
def test_implausible_durations_are_dropped_not_raised(duration: object) -> None:
    files = [{"audio_id": "a", "title": "t", "duration": duration}]
    (track,) = parse_detail(finished(files)).tracks
    assert track.duration is None


def test_files_that_are_not_a_list_give_nothing() -> None:
    body = finished([])
    body["data"]["files"] = "oops"
    detail = parse_detail(body)
    assert detail.stems == {} and detail.tracks == ()


@pytest.mark.parametrize(
    ("payload", "credits"),
    [
        ({"code": 200, "data": {"email": "a@b", "credits_amount": 17276}}, 17276),
        ({"credits_amount": 5}, 5),
        ({"code": 200, "data": {"credits_amount": 12.0}}, 12),
        ({"code": 200, "data": {"credits_amount": "40"}}, 40),
    ],
)
def test_balance(payload: object, credits: int) -> None:
    assert parse_balance(payload) == credits


@pytest.mark.parametrize(
    "payload",
    [[], {"code": 200, "data": {}}, {"data": {"credits_amount": True}}, {"credits_amount": "lots"}],
)
def test_bad_balance_raises(payload: object) -> None:
    with pytest.raises(VidgoMalformedResponse):
        parse_balance(payload)


@given(
    st.dictionaries(st.text(max_size=20), st.one_of(st.text(max_size=80), st.none(), st.integers()))
)
def test_normalized_stems_are_always_plain_http_urls(raw: dict[str, object]) -> None:
    for name, url in normalize_stems(raw).items():
        assert name and name == name.strip().lower()
        assert url.lower().startswith(("http://", "https://"))
        assert not any(ch.isspace() or ord(ch) < 32 for ch in url)
        assert len(url) <= 2048
