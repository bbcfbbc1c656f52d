"""MIDI from a finished separation: the ``generate-midi`` job kind and the ``.mid`` file.

Vidgo's ``generate-midi`` is undocumented (§3.4 of docs/vidgo-api.md): it takes the separation's
task id and is believed to answer with ``files[0].midi_data``, a JSON string (or object) of
``{"state", "instruments": [{"name", "notes": [{"pitch", "start", "end", "velocity"}]}]}``
with times in seconds and velocities from 0 to 1. The feature is behind ``ENABLE_MIDI``.

Parsing is defensive because nothing about the shape is verified: a note whose pitch is not a
MIDI note number (0-127) or whose times are not finite, ordered numbers is skipped; negative
starts are clamped to 0; velocities above 1 and up to 127 are taken as MIDI velocities
already. An answer without any usable note fails the job ("no notes").

The file is a Standard MIDI File (type 1) written with :mod:`mido`: a tempo track (120 BPM,
480 ticks per beat) and one track per instrument; drums go to channel 10 (index 9), the other
instruments get the remaining channels in turn with a General MIDI program guessed from the
instrument's name.
"""

from __future__ import annotations

import base64
import io
import json
import math
from dataclasses import dataclass
from typing import Any, Protocol

import mido

from bot.jobs import JobRequest
from bot.kinds import JobKind, UnusableResult
from bot.vidgo.results import Model, SubmitReceipt, TaskDetail
from storage.records import JobRecord, SourceKind

MIDI = "midi"
MIDI_FIELD = "midi_data"
NO_NOTES = "no_notes"
MAX_NOTES = 100_000
MAX_SECONDS = 6 * 3600.0
MAX_NAME_CHARS = 64
TICKS_PER_BEAT = 480
TEMPO = 500_000  # microseconds per beat: 120 BPM
TICKS_PER_SECOND = TICKS_PER_BEAT * 1_000_000 / TEMPO
DRUM_CHANNEL = 9  # MIDI channel 10
MELODIC_CHANNELS = tuple(c for c in range(16) if c != DRUM_CHANNEL)
DEFAULT_VELOCITY = 100
# General MIDI programs (0-based) for the instrument names separations produce.
GM_PROGRAMS = (
    ("piano", 0),
    ("keyboard", 4),
    ("organ", 19),
    ("guitar", 25),
    ("bass", 33),
    ("string", 48),
    ("vocal", 53),
    ("voice", 53),
    ("brass", 61),
    ("woodwind", 73),
    ("flute", 73),
    ("synth", 81),
)


@dataclass(frozen=True, slots=True)
class Note:
    """One note: MIDI pitch, start and end in seconds, MIDI velocity 1-127."""

    pitch: int
    start: float
    end: float
    velocity: int


@dataclass(frozen=True, slots=True)
class Instrument:
    """One instrument's notes, in the order Vidgo sent them."""

    name: str
    notes: tuple[Note, ...]

    @property
    def is_drums(self) -> bool:
        """Drums and percussion belong on MIDI channel 10."""
        lowered = self.name.lower()
        return "drum" in lowered or "percussion" in lowered


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _velocity(value: object) -> int:
    number = _number(value)
    if number is None:
        return DEFAULT_VELOCITY
    # A draft of Vidgo's result shapes says 0-1 (§3.4); a value above 1 reads as a MIDI
    # velocity already.
    scaled = number * 127 if number <= 1 else number
    return max(1, min(127, round(scaled)))


def parse_note(raw: object) -> Note | None:
    """A note from Vidgo's ``{pitch, start, end, velocity}``, or ``None`` if it is unusable."""
    if not isinstance(raw, dict):
        return None
    pitch, start, end = (_number(raw.get(key)) for key in ("pitch", "start", "end"))
    if pitch is None or start is None or end is None:
        return None
    if pitch != round(pitch) or not 0 <= pitch <= 127:
        return None
    start = max(0.0, start)
    if end <= start or end > MAX_SECONDS:
        return None
    return Note(int(pitch), start, end, _velocity(raw.get("velocity")))


def parse_midi_data(raw: object) -> list[Instrument]:
    """Instruments with at least one usable note (at most :data:`MAX_NOTES` in all)."""
    data: object = raw
    if isinstance(raw, str | bytes):
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            return []
    if not isinstance(data, dict) or not isinstance(data.get("instruments"), list):
        return []
    instruments: list[Instrument] = []
    budget = MAX_NOTES
    for index, entry in enumerate(data["instruments"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("notes"), list) or budget <= 0:
            continue
        notes: list[Note] = []
        for raw_note in entry["notes"]:
            note = parse_note(raw_note)
            if note is not None:
                notes.append(note)
                if len(notes) >= budget:
                    break
        if not notes:
            continue
        budget -= len(notes)
        name = str(entry.get("name") or "").strip()[:MAX_NAME_CHARS] or f"Instrument {index + 1}"
        instruments.append(Instrument(name, tuple(notes)))
    return instruments


def midi_data_of(detail: TaskDetail) -> object:
    """The first non-empty ``midi_data`` of a finished task's files (``None`` if absent)."""
    for entry in detail.files:
        value = entry.get(MIDI_FIELD)
        if value not in (None, "", {}):
            return value
    return None


def gm_program(name: str) -> int:
    """A General MIDI program for an instrument name (piano when nothing matches)."""
    lowered = name.lower()
    return next((program for word, program in GM_PROGRAMS if word in lowered), 0)


def _ticks(seconds: float) -> int:
    return round(seconds * TICKS_PER_SECOND)


def _latin1(text: str) -> str:
    # Track names are stored as Latin-1 in the file; anything else becomes "?".
    return text.encode("latin-1", "replace").decode("latin-1")


def build_midi(instruments: list[Instrument]) -> bytes:
    """A type-1 Standard MIDI File with one track per instrument."""
    midi = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    conductor = mido.MidiTrack()
    conductor.append(mido.MetaMessage("track_name", name="Stemcord", time=0))
    conductor.append(mido.MetaMessage("set_tempo", tempo=TEMPO, time=0))
    conductor.append(mido.MetaMessage("end_of_track", time=0))
    midi.tracks.append(conductor)
    melodic = 0
    for instrument in instruments:
        if instrument.is_drums:
            channel = DRUM_CHANNEL
        else:
            channel = MELODIC_CHANNELS[melodic % len(MELODIC_CHANNELS)]
            melodic += 1
        track = mido.MidiTrack()
        track.append(mido.MetaMessage("track_name", name=_latin1(instrument.name), time=0))
        if not instrument.is_drums:
            track.append(
                mido.Message(
                    "program_change", channel=channel, program=gm_program(instrument.name), time=0
                )
            )
        # (tick, order, message): at the same tick a note ends before the next one starts.
        events: list[tuple[int, int, Any]] = []
        for note in instrument.notes:
            start = _ticks(note.start)
            end = max(start + 1, _ticks(note.end))
            events.append(
                (
                    start,
                    1,
                    mido.Message(
                        "note_on", channel=channel, note=note.pitch, velocity=note.velocity
                    ),
                )
            )
            events.append(
                (end, 0, mido.Message("note_off", channel=channel, note=note.pitch, velocity=0))
            )
        events.sort(key=lambda event: (event[0], event[1]))
        previous = 0
        for tick, _, message in events:
            track.append(message.copy(time=tick - previous))
            previous = tick
        track.append(mido.MetaMessage("end_of_track", time=0))
        midi.tracks.append(track)
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


def midi_result(instruments: list[Instrument], vidgo_task_id: str) -> dict[str, Any]:
    """The stored result of a MIDI job: the file (base64) and a summary to show."""
    return {
        "midi_b64": base64.b64encode(build_midi(instruments)).decode("ascii"),
        "instruments": [
            {"name": i.name, "notes": len(i.notes), "drums": i.is_drums} for i in instruments
        ],
        "notes": sum(len(i.notes) for i in instruments),
        "seconds": max(note.end for i in instruments for note in i.notes),
        "vidgo_task_id": vidgo_task_id,
    }


def midi_bytes(result: dict[str, Any] | None) -> bytes | None:
    """The ``.mid`` file of a stored MIDI result."""
    encoded = (result or {}).get("midi_b64")
    if not isinstance(encoded, str):
        return None
    try:
        return base64.b64decode(encoded, validate=True)
    except ValueError:
        return None


class MidiApi(Protocol):
    """The part of the Vidgo client that MIDI jobs use."""

    async def submit_midi(self, task_id: str, *, callback_url: str | None) -> SubmitReceipt: ...


class MidiKind(JobKind):
    """``generate-midi`` for a finished separation's Vidgo task."""

    NAME = MIDI
    PARSE_IN_THREAD = True

    def __init__(self, vidgo: MidiApi) -> None:
        self.vidgo = vidgo

    async def submit(self, job: JobRecord, callback_url: str | None) -> SubmitReceipt:
        """Submit the separation's task id (kept as the job's ``source_task_id``)."""
        assert job.source_task_id  # noqa: S101 - set by midi_request
        return await self.vidgo.submit_midi(job.source_task_id, callback_url=callback_url)

    def result_of(self, job: JobRecord, detail: TaskDetail) -> dict[str, Any]:
        """The notes as a ``.mid`` file; :class:`UnusableResult` when there are none."""
        instruments = parse_midi_data(midi_data_of(detail))
        if not instruments:
            raise UnusableResult(NO_NOTES, "Vidgo found no notes in this song")
        return midi_result(instruments, detail.task_id)


def separation_task_of(separation: JobRecord) -> str | None:
    """The Vidgo task id MIDI is made from: the one that produced the stems."""
    task = (separation.result or {}).get("vidgo_task_id")
    return task if isinstance(task, str) and task else None


def midi_request(
    separation: JobRecord,
    *,
    requester_id: int,
    channel_id: int,
    guild_id: int | None,
    reply_to_message_id: int | None,
) -> JobRequest:
    """A MIDI job for a succeeded separation; identical requests share one Vidgo task."""
    task = separation_task_of(separation)
    if task is None:
        raise ValueError(f"job {separation.id} has no Vidgo task to make MIDI from")
    return JobRequest(
        kind=MIDI,
        model=Model.GENERATE_MIDI.value,
        source_kind=SourceKind.IDS,
        source_key=f"{Model.GENERATE_MIDI.value}:{task}",
        requester_id=requester_id,
        channel_id=channel_id,
        guild_id=guild_id,
        source_task_id=task,
        options={"separation_job": separation.id},
        track=separation.track,
        reply_to_message_id=reply_to_message_id,
    )
