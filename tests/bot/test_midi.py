"""MIDI: defensive parsing of Vidgo's notes, the .mid file (read back with mido), the job kind."""

from __future__ import annotations

import io
import json
import math
from typing import Any
from unittest import mock

import mido
import pytest

from bot.kinds import UnusableResult
from bot.midi import (
    DRUM_CHANNEL,
    MIDI,
    NO_NOTES,
    TICKS_PER_SECOND,
    Instrument,
    MidiKind,
    Note,
    build_midi,
    gm_program,
    midi_bytes,
    midi_request,
    parse_midi_data,
    parse_note,
)
from bot.vidgo.results import SubmitReceipt, TaskDetail, TaskStatus
from tests.fakes.vidgo import MIDI_INSTRUMENTS
from tests.helpers import job

DRAFT = {"state": "complete", "instruments": [dict(i) for i in MIDI_INSTRUMENTS]}


def detail(files: list[dict[str, Any]]) -> TaskDetail:
    return TaskDetail("midi-task", TaskStatus.FINISHED, {}, (), None, None, files=tuple(files))


def read_back(data: bytes) -> mido.MidiFile:
    return mido.MidiFile(file=io.BytesIO(data))


@pytest.mark.parametrize("form", ["string", "bytes", "object"])
def test_midi_data_is_read_as_json_string_bytes_or_object(form: str) -> None:
    raw: object = {"string": json.dumps(DRAFT), "bytes": json.dumps(DRAFT).encode()}.get(
        form, DRAFT
    )
    instruments = parse_midi_data(raw)
    assert [i.name for i in instruments] == ["Vocals", "Drums", "Bass"]
    assert instruments[0].notes[0] == Note(64, 0.5, 1.0, round(0.8 * 127))
    assert [i.is_drums for i in instruments] == [False, True, False]


@pytest.mark.parametrize(
    "raw", [None, "", "not json", "[]", 5, {"instruments": "x"}, {"state": "complete"}]
)
def test_unusable_midi_data_has_no_instruments(raw: object) -> None:
    assert parse_midi_data(raw) == []


@pytest.mark.parametrize(
    "note",
    [
        {"pitch": 128, "start": 0, "end": 1},
        {"pitch": -1, "start": 0, "end": 1},
        {"pitch": 60.5, "start": 0, "end": 1},
        {"pitch": "60", "start": 0, "end": 1},
        {"pitch": True, "start": 0, "end": 1},
        {"pitch": 60, "start": 0},
        {"pitch": 60, "start": 1, "end": 1},
        {"pitch": 60, "start": 2, "end": 1},
        {"pitch": 60, "start": math.nan, "end": 1},
        {"pitch": 60, "start": 0, "end": math.inf},
        {"pitch": 60, "start": 0, "end": 10**9},
        "60",
        None,
    ],
)
def test_bad_notes_are_skipped(note: object) -> None:
    assert parse_note(note) is None


@pytest.mark.parametrize(
    ("velocity", "expected"),
    [(0, 1), (0.5, 64), (1, 127), (1.0, 127), (100, 100), (300, 127), (-3, 1), (None, 100)],
)
def test_velocities_are_clamped_to_midi(velocity: object, expected: int) -> None:
    note = parse_note({"pitch": 60.0, "start": -0.5, "end": 0.25, "velocity": velocity})
    assert note == Note(60, 0.0, 0.25, expected)


def test_instruments_without_usable_notes_are_dropped_and_names_defaulted() -> None:
    raw = {
        "instruments": [
            {"name": "Only bad", "notes": [{"pitch": 200, "start": 0, "end": 1}]},
            {"notes": [{"pitch": 60, "start": 0, "end": 1}]},
            "not an instrument",
            {"name": "  ", "notes": [{"pitch": 61, "start": 0, "end": 1}]},
        ]
    }
    assert [i.name for i in parse_midi_data(raw)] == ["Instrument 2", "Instrument 4"]


def test_note_count_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bot.midi.MAX_NOTES", 3)
    notes = [{"pitch": 60, "start": i, "end": i + 0.5} for i in range(5)]
    raw = {"instruments": [{"name": "A", "notes": notes}, {"name": "B", "notes": notes}]}
    instruments = parse_midi_data(raw)
    assert [(i.name, len(i.notes)) for i in instruments] == [("A", 3)]


def test_file_reads_back_with_every_note_at_its_time() -> None:
    instruments = parse_midi_data(DRAFT)
    midi = read_back(build_midi(instruments))
    assert midi.type == 1 and midi.ticks_per_beat == 480
    assert [t.name for t in midi.tracks] == ["Stemcord", "Vocals", "Drums", "Bass"]
    assert any(m.type == "set_tempo" and m.tempo == 500_000 for m in midi.tracks[0])
    for instrument, track in zip(instruments, midi.tracks[1:], strict=True):
        tick = 0
        starts: list[tuple[int, int, int]] = []
        ends: list[tuple[int, int]] = []
        for message in track:
            tick += message.time
            if message.type == "note_on" and message.velocity > 0:
                starts.append((tick, message.note, message.velocity))
            elif message.type == "note_off":
                ends.append((tick, message.note))
        expected = sorted(
            (round(n.start * TICKS_PER_SECOND), n.pitch, n.velocity) for n in instrument.notes
        )
        assert sorted(starts) == expected
        assert sorted(ends) == sorted(
            (round(n.end * TICKS_PER_SECOND), n.pitch) for n in instrument.notes
        )
        channels = {m.channel for m in track if m.type in ("note_on", "note_off")}
        assert (
            (channels == {DRUM_CHANNEL}) if instrument.is_drums else (DRUM_CHANNEL not in channels)
        )
    programs = {m.channel: m.program for t in midi.tracks for m in t if m.type == "program_change"}
    assert sorted(programs.values()) == sorted([gm_program("Vocals"), gm_program("Bass")])
    assert abs(midi.length - 2.5) < 0.01


def test_many_instruments_share_the_melodic_channels_and_odd_names_are_safe() -> None:
    instruments = [
        Instrument(f"Synth ☃ {i}", (Note(60 + i % 10, 0.0, 0.5, 90),)) for i in range(20)
    ]
    midi = read_back(build_midi(instruments))
    channels = [m.channel for t in midi.tracks for m in t if m.type == "note_on"]
    assert len(channels) == 20 and DRUM_CHANNEL not in channels
    assert midi.tracks[1].name == "Synth ? 0"


def test_a_very_short_note_still_lasts_a_tick() -> None:
    midi = read_back(build_midi([Instrument("Piano", (Note(60, 1.0, 1.0001, 90),))]))
    times = [m.time for m in midi.tracks[1] if m.type in ("note_on", "note_off")]
    assert times[1] >= 1


def test_gm_programs_follow_instrument_names() -> None:
    assert gm_program("Bass") == 33
    assert gm_program("Acoustic Guitar") == 25
    assert gm_program("Backing vocals") == 53
    assert gm_program("Theremin") == 0


async def test_kind_submits_the_separation_task_and_builds_the_file() -> None:
    api = mock.Mock()
    api.submit_midi = mock.AsyncMock(return_value=SubmitReceipt("m", TaskStatus.NOT_STARTED, None))
    kind = MidiKind(api)
    request_job = job(kind=MIDI, model="generate-midi", source_task_id="sep-task")
    await kind.submit(request_job, "https://cb")
    api.submit_midi.assert_awaited_once_with("sep-task", callback_url="https://cb")
    result = kind.result_of(request_job, detail([{"midi_data": json.dumps(DRAFT)}]))
    assert result["notes"] == 8 and result["vidgo_task_id"] == "midi-task"
    assert [i["name"] for i in result["instruments"]] == ["Vocals", "Drums", "Bass"]
    data = midi_bytes(result)
    assert data is not None and len(read_back(data).tracks) == 4


@pytest.mark.parametrize(
    "files",
    [[], [{"midi_data": ""}], [{"midi_data": json.dumps({"instruments": []})}], [{"other": 1}]],
)
def test_no_notes_is_an_unusable_result(files: list[dict[str, Any]]) -> None:
    with pytest.raises(UnusableResult) as caught:
        MidiKind(mock.Mock()).result_of(job(kind=MIDI), detail(files))
    assert caught.value.error_kind == NO_NOTES


def test_midi_bytes_of_a_bad_result_is_none() -> None:
    assert midi_bytes(None) is None
    assert midi_bytes({"midi_b64": 5}) is None
    assert midi_bytes({"midi_b64": "not base64!"}) is None


def test_midi_request_is_keyed_by_the_separation_task() -> None:
    separation = job(result={"stems": {}, "vidgo_task_id": "sep-task"})
    request = midi_request(
        separation, requester_id=5, channel_id=6, guild_id=7, reply_to_message_id=8
    )
    assert (request.kind, request.model) == (MIDI, "generate-midi")
    assert request.source_key == "generate-midi:sep-task"
    assert request.source_task_id == "sep-task" and request.reply_to_message_id == 8
    assert request.track == separation.track
    with pytest.raises(ValueError, match="no Vidgo task"):
        midi_request(
            job(result={"stems": {}}),
            requester_id=5,
            channel_id=6,
            guild_id=7,
            reply_to_message_id=None,
        )
