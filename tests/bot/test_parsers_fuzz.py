"""Every reader of Vidgo's data, fed arbitrary JSON: it returns, or raises its own error type.

Nothing Vidgo (or a forged callback) sends may raise anything else: an unexpected exception
would escape the engine's handling and, before the fault bound existed, loop forever. Deep
nesting and digits that ``str.isdigit`` accepts but ``int`` refuses get their own cases.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.kinds import UnusableResult
from bot.lyrics import LyricsKind, NoTiming, NoVocals, find_lyrics_payload, parse_lyrics
from bot.midi import MidiKind, midi_bytes, midi_data_of, parse_midi_data
from bot.separation import SeparationKind
from bot.vidgo.errors import VidgoMalformedResponse
from bot.vidgo.results import (
    callback_task_id,
    normalize_stems,
    parse_balance,
    parse_detail,
    parse_lyrics_submit,
    parse_submit,
)
from storage.jobstate import JobState
from storage.records import JobRecord, SourceKind

# Numbers as JSON can carry them: huge integers, floats of every kind (json allows NaN).
NUMBERS = st.one_of(
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
)
# Strings Vidgo could send, including odd digits and the stray-space keys of a draft of its
# result shapes (§4).
TEXT = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["²", "١٢٣", "12", "-3", " finished ", "running", "", "http://x/y.mp3"]),
)
KEYS = st.one_of(
    TEXT,
    st.sampled_from(
        [
            "task_id",
            "status",
            "files",
            "data",
            "code",
            "created_time",
            "error_message",
            "separate_vocals",
            "stem_split",
            "vocal_removal",
            "vocal_url ",
            "aligned_words",
            "timestampe_lyrics",
            "timestamped_lyrics",
            "midi_data",
            "instruments",
            "notes",
            "pitch",
            "start",
            "end",
            "velocity",
            "word",
            "start_s",
            "end_s",
            "success",
            "credits_amount",
            "audio_id",
            "duration",
            "title",
            "input",
            "model",
        ]
    ),
)
JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), NUMBERS, TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(KEYS, inner, max_size=6)),
    max_leaves=40,
)
# Values that look like Vidgo's envelope, so the parsers get past their first checks.
ENVELOPES = st.one_of(
    JSON,
    st.fixed_dictionaries(
        {
            "code": st.one_of(st.just(200), JSON),
            "data": st.fixed_dictionaries(
                {
                    "task_id": st.one_of(st.just("task-1"), JSON),
                    "status": st.one_of(st.sampled_from(["finished", "running", "failed"]), JSON),
                    "files": st.one_of(st.lists(st.dictionaries(KEYS, JSON, max_size=4)), JSON),
                },
                optional={"created_time": JSON, "error_message": JSON, "input": JSON},
            ),
        }
    ),
)
DEEP_TEXT = "[" * 100_000 + "]" * 100_000
DEEP: Any = []
for _ in range(3000):
    DEEP = [DEEP]

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def job_of(kind: str, model: str) -> JobRecord:
    return JobRecord(
        id="j",
        kind=kind,
        source_kind=SourceKind.IDS,
        source_key="k",
        model=model,
        requester_id=1,
        channel_id=2,
        guild_id=3,
        source_task_id="t",
        source_audio_id="a",
        source_url=None,
        options={},
        status_message_id=None,
        reply_to_message_id=None,
        vidgo_task_id="task-1",
        leader_id=None,
        state=JobState.RUNNING,
        outcome=None,
        attempts=1,
        polls=1,
        delivery_attempts=0,
        due_at=None,
        deadline_at=0.0,
        last_error=None,
        error_kind=None,
        callback_token_hash=None,
        callbacks=0,
        result=None,
        track=None,
        result_message_id=None,
        created_at=0.0,
        updated_at=0.0,
        finished_at=None,
    )


class _NoApi:
    """The kinds' result readers never call Vidgo."""


@FUZZ
@given(ENVELOPES)
def test_reply_parsers_raise_only_malformed(payload: Any) -> None:
    for parse in (parse_submit, parse_lyrics_submit, parse_detail, parse_balance):
        with contextlib.suppress(VidgoMalformedResponse):
            parse(payload)


@FUZZ
@given(JSON)
def test_stems_tracks_and_callback_ids_never_raise(raw: Any) -> None:
    stems = normalize_stems(raw)
    assert all(isinstance(url, str) for url in stems.values())
    normalize_stems(json.dumps(raw))
    hint = callback_task_id(raw)
    assert hint is None or (isinstance(hint, str) and hint.isprintable())


@FUZZ
@given(ENVELOPES)
def test_every_kind_reads_any_finished_task_or_says_it_is_unusable(payload: Any) -> None:
    try:
        detail = parse_detail(payload)
    except VidgoMalformedResponse:
        return
    kinds = (
        (SeparationKind(_NoApi()), "separation", "separate-vocals"),  # type: ignore[arg-type]
        (LyricsKind(_NoApi()), "lyrics", "get-timestamped-lyrics"),  # type: ignore[arg-type]
        (MidiKind(_NoApi()), "midi", "generate-midi"),  # type: ignore[arg-type]
    )
    for kind, name, model in kinds:
        try:
            result = kind.result_of(job_of(name, model), detail)
        except UnusableResult:
            continue
        json.dumps(result)  # what the store keeps must be JSON


@FUZZ
@given(JSON)
def test_lyrics_readers_raise_only_their_own_errors(raw: Any) -> None:
    container = raw if isinstance(raw, dict) else {"timestampe_lyrics": raw}
    payload = find_lyrics_payload(container)
    if payload is None:
        return
    with contextlib.suppress(NoVocals, NoTiming):
        parse_lyrics(payload)


@FUZZ
@given(JSON)
def test_midi_readers_never_raise(raw: Any) -> None:
    instruments = parse_midi_data(raw)
    parse_midi_data(json.dumps(raw))
    if instruments:
        from bot.midi import midi_result

        assert midi_bytes(midi_result(instruments, "t")) is not None


@pytest.mark.parametrize(
    "payload",
    [
        {"code": 200, "data": {"credits_amount": "²"}},
        {"code": 200, "data": {"credits_amount": "١٢"}},
        {"code": 200, "data": {"credits_amount": 10**400}},
        {"code": 200, "data": {"credits_amount": float("nan")}},
    ],
)
def test_odd_digits_in_the_balance_are_malformed_not_a_crash(payload: Any) -> None:
    with pytest.raises(VidgoMalformedResponse):
        parse_balance(payload)


def test_deeply_nested_results_are_read_as_nothing() -> None:
    assert normalize_stems(DEEP_TEXT) == {}
    assert parse_midi_data(DEEP_TEXT) == []
    assert find_lyrics_payload({"timestampe_lyrics": DEEP_TEXT}) is None
    detail = parse_detail({"task_id": "t", "status": "finished", "files": DEEP})
    assert detail.stems == {}
    assert midi_data_of(detail) is None or parse_midi_data(midi_data_of(detail)) == []
