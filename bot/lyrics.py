"""Word-timed lyrics from ``get-timestamped-lyrics``: parsing, lines and LRC text (pure, no I/O).

Vidgo's documentation (§16 of docs/vidgo-api.md) is vague about where the result arrives, so
:func:`find_lyrics_payload` accepts all three documented possibilities: the fields directly in
the submit reply's ``data``, an object, or a JSON string under ``timestampe_lyrics`` (sic) or
``timestamped_lyrics`` in a ``files`` entry.

From ``aligned_words`` (``{word, start_s, end_s, success, palign}``) Stemcord builds lines:

* a ``word`` may carry section markers (``[Verse]``) and newlines besides the sung text:
  markers become their own section lines (written ``(Verse)`` in the LRC, never counted as
  sung words), newlines end a line;
* a line also ends before a word that would make it longer than :data:`MAX_LINE_CHARS`, or
  after a silence of :data:`LINE_GAP_SECONDS` (for results without newlines);
* words Vidgo could not align (``success: false``, or times that are missing, not finite or
  going backwards) keep their text and are timed evenly between their aligned neighbours;
  they are counted (:attr:`Lyrics.interpolated`) so the member can be told.

A result with no sung word is an instrumental (:class:`NoVocals`). The parsed lyrics are stored
in the job (:meth:`Lyrics.to_stored`) and rendered to LRC at delivery (:func:`to_lrc`).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bot.jobs import ErrorKind, JobRequest
from bot.kinds import JobKind, Unsubmittable, UnusableResult
from bot.vidgo.results import Model, SubmitReceipt, TaskDetail
from storage.records import JobRecord, SourceKind

log = logging.getLogger(__name__)

LYRICS = "lyrics"  # the job kind
# Why a lyrics job failed although Vidgo finished (JobRecord.error_kind).
NO_VOCALS = "no_vocals"
NO_TIMING = "no_timing"
NO_LYRICS = "no_lyrics"

# The ``files`` fields that may carry the result (the first is Vidgo's own spelling, §16).
LYRICS_FIELDS = ("timestampe_lyrics", "timestamped_lyrics")
# A line ends before a word that would make it longer than this (karaoke screens are narrow).
MAX_LINE_CHARS = 48
# A line ends after a silence this long, even without a newline from Vidgo.
LINE_GAP_SECONDS = 3.0
# Unaligned words after the last aligned one get this much time each.
TRAILING_WORD_SECONDS = 0.5
# Bounds on what one result may make us hold (a result is untrusted input).
MAX_WORDS = 20_000
MAX_WORD_CHARS = 200
MAX_ENTRY_CHARS = 1000
# LRC writes minutes with two digits, so 99:59.99 is the latest time a player reads; a later
# "time" is untrusted noise and the word is timed like an unaligned one.
MAX_SECONDS = 99 * 60 + 59.99
# Waveforms are kept at this many points (the picture is 800 pixels wide).
WAVEFORM_POINTS = 800

# JSON integers have no size limit; beyond this one is noise (and float() would overflow).
_HUGE = 1e300
_SECTION = re.compile(r"\[([^\[\]\n]{1,40})\]")
_SPLIT = re.compile(r"(\[[^\[\]\n]{1,40}\]|\n)")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\u202a-\u202e\ufeff]")
# Characters that would break LRC syntax inside a line (time tags, word stamps).
_LRC_SYNTAX = re.compile(r"[\[\]<>]")


class NoVocals(ValueError):
    """The result has no sung words: the track is an instrumental."""


class NoTiming(ValueError):
    """The result has words but Vidgo aligned none of them, so nothing can be timed."""


@dataclass(frozen=True, slots=True)
class TimedWord:
    """One sung word and when it is sung (seconds from the start)."""

    text: str
    start: float
    end: float
    interpolated: bool = False


@dataclass(frozen=True, slots=True)
class LyricLine:
    """A sung line, or a section marker (``section`` set, no words) shown before it."""

    start: float
    words: tuple[TimedWord, ...] = ()
    section: str | None = None

    @property
    def text(self) -> str:
        """The line as shown: the words, or the section name in parentheses."""
        if self.section is not None:
            return f"({self.section})"
        return " ".join(word.text for word in self.words)

    @property
    def end(self) -> float:
        """When the last word ends (the start for a section line)."""
        return self.words[-1].end if self.words else self.start


@dataclass(frozen=True, slots=True)
class Lyrics:
    """Parsed lyrics of one track, ready to become an LRC file and a waveform picture."""

    lines: tuple[LyricLine, ...]
    interpolated: int
    waveform: tuple[float, ...] = ()
    alignment_error: float | None = None

    @property
    def words(self) -> list[TimedWord]:
        """Every sung word in order."""
        return [word for line in self.lines for word in line.words]

    @property
    def sung_lines(self) -> list[LyricLine]:
        """The lines that have words (no section markers)."""
        return [line for line in self.lines if line.words]

    @property
    def end(self) -> float:
        """When the last word ends."""
        return max((line.end for line in self.lines), default=0.0)

    def to_stored(self) -> dict[str, Any]:
        """A JSON object for the job's result (times rounded to milliseconds)."""
        lines: list[dict[str, Any]] = []
        for line in self.lines:
            if line.section is not None:
                lines.append({"section": line.section, "start": _ms(line.start)})
            else:
                lines.append(
                    {
                        "start": _ms(line.start),
                        "words": [
                            [w.text, _ms(w.start), _ms(w.end), 1 if w.interpolated else 0]
                            for w in line.words
                        ],
                    }
                )
        return {
            "lines": lines,
            "interpolated": self.interpolated,
            "waveform": [round(v, 4) for v in self.waveform],
            "alignment_error": self.alignment_error,
        }

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any]) -> Lyrics:
        """Read back :meth:`to_stored` (anything malformed is skipped)."""
        lines: list[LyricLine] = []
        for raw in stored.get("lines") or []:
            if not isinstance(raw, dict):
                continue
            start = _finite(raw.get("start")) or 0.0
            if isinstance(raw.get("section"), str):
                lines.append(LyricLine(start, section=raw["section"]))
                continue
            words = tuple(
                TimedWord(str(w[0]), start_at, end_at, bool(w[3]))
                for w in raw.get("words") or []
                if isinstance(w, list)
                and len(w) == 4
                and (start_at := _finite(w[1])) is not None
                and (end_at := _finite(w[2])) is not None
            )
            if words:
                lines.append(LyricLine(start, words))
        waveform = tuple(
            v for v in (_finite(x) for x in stored.get("waveform") or []) if v is not None
        )
        interpolated = stored.get("interpolated")
        return cls(
            tuple(lines),
            interpolated if isinstance(interpolated, int) else 0,
            waveform,
            _finite(stored.get("alignment_error")),
        )


# --- where the result is --------------------------------------------------------------------


def find_lyrics_payload(container: Mapping[str, Any]) -> dict[str, Any] | None:
    """The lyrics object in a submit reply's ``data`` or a ``files`` entry, if there is one.

    Accepts ``aligned_words`` directly in ``container``, or an object / JSON string under one
    of :data:`LYRICS_FIELDS` (a string that decodes to a bare list counts as the words).
    """
    if isinstance(container.get("aligned_words"), list):
        return dict(container)
    for name in LYRICS_FIELDS:
        value = container.get(name)
        if isinstance(value, str):
            if not value.strip():
                continue
            try:
                value = json.loads(value)
            except (ValueError, RecursionError):
                log.warning("Vidgo %s is not JSON; ignoring it (%d chars)", name, len(value))
                continue
        if isinstance(value, list):
            return {"aligned_words": value}
        if isinstance(value, dict):
            if isinstance(value.get("aligned_words"), list):
                return value
            inner = value.get("data")
            if isinstance(inner, dict) and isinstance(inner.get("aligned_words"), list):
                return inner
            log.warning("Vidgo %s has no aligned_words; ignoring it", name)
    return None


def lyrics_in_files(files: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The first lyrics object found in a task's ``files`` entries."""
    for entry in files:
        found = find_lyrics_payload(entry)
        if found is not None:
            return found
    return None


# --- words to lines -------------------------------------------------------------------------


@dataclass(slots=True)
class _Token:
    """A word or a section marker or a line break, with Vidgo's times when they are usable."""

    kind: str  # "word", "section", "break"
    text: str = ""
    start: float | None = None
    end: float | None = None
    interpolated: bool = False


def parse_lyrics(payload: Mapping[str, Any]) -> Lyrics:
    """Build :class:`Lyrics` from a lyrics object (see :func:`find_lyrics_payload`).

    Raises :class:`NoVocals` when there is no sung word, :class:`NoTiming` when no word
    was aligned.
    """
    raw_words = payload.get("aligned_words")
    tokens = _tokens(raw_words if isinstance(raw_words, list) else [])
    words = [t for t in tokens if t.kind == "word"]
    if not words:
        raise NoVocals("the track has no sung words")
    if all(t.start is None for t in words):
        raise NoTiming("Vidgo aligned none of the words")
    interpolated = _interpolate(words)
    return Lyrics(
        lines=tuple(_lines(tokens)),
        interpolated=interpolated,
        waveform=downsample(payload.get("waveform_data")),
        alignment_error=_finite(payload.get("hoot_cer")),
    )


def _tokens(raw_words: Sequence[object]) -> list[_Token]:
    """Split Vidgo's entries into words, section markers and line breaks, checking times."""
    tokens: list[_Token] = []
    last_start = 0.0
    for entry in raw_words[:MAX_WORDS]:
        if not isinstance(entry, dict):
            continue
        text = entry.get("word")
        if not isinstance(text, str):
            continue
        text = text[:MAX_ENTRY_CHARS]
        start, end = _finite(entry.get("start_s")), _finite(entry.get("end_s"))
        aligned = entry.get("success") is not False and start is not None
        if aligned and start is not None:
            if start < last_start or start < 0 or start > MAX_SECONDS:
                aligned = False  # going backwards or absurd: time it from its neighbours
            else:
                end = start if end is None or end < start else min(end, MAX_SECONDS)
        pieces = [p for p in _SPLIT.split(text.replace("\r\n", "\n").replace("\r", "\n")) if p]
        sung = [p for p in pieces if p != "\n" and not _SECTION.fullmatch(p)]
        sung_words = [w for p in sung for w in _clean(p).split()]
        spans = _spans(sung_words, start, end) if aligned else [(None, None)] * len(sung_words)
        if spans and spans[-1][0] is not None:
            # The next entry must not start before this one's last word.
            last_start = spans[-1][0]
        spans.reverse()
        for piece in pieces:
            if piece == "\n":
                tokens.append(_Token("break"))
                continue
            marker = _SECTION.fullmatch(piece)
            if marker is not None:
                name = _clean(marker.group(1)).strip()
                if name:
                    tokens.append(_Token("section", name))
                continue
            for word in _clean(piece).split():
                word_start, word_end = spans.pop()
                tokens.append(_Token("word", word[:MAX_WORD_CHARS], word_start, word_end))
    return tokens


def _spans(
    words: list[str], start: float | None, end: float | None
) -> list[tuple[float | None, float | None]]:
    """Share one entry's time among the words it holds, by their length."""
    if start is None or end is None:
        return [(start, end)] * len(words)
    total = sum(len(w) for w in words) or 1
    spans: list[tuple[float | None, float | None]] = []
    at = start
    for word in words:
        step = (end - start) * len(word) / total
        spans.append((at, at + step))
        at += step
    return spans


def _interpolate(words: list[_Token]) -> int:
    """Time every unaligned word evenly between its aligned neighbours; return how many."""
    count = 0
    index = 0
    previous_end = 0.0
    while index < len(words):
        if words[index].start is not None:
            previous_end = words[index].end or words[index].start or 0.0
            index += 1
            continue
        run_end = index
        while run_end < len(words) and words[run_end].start is None:
            run_end += 1
        size = run_end - index
        following = words[run_end].start if run_end < len(words) else None
        limit = following if following is not None else previous_end + size * TRAILING_WORD_SECONDS
        # The previous word may overlap the next one; never go backwards.
        low = min(previous_end, limit)
        step = (limit - low) / size
        for offset in range(size):
            word = words[index + offset]
            word.start = low + step * offset
            word.end = low + step * (offset + 1)
            word.interpolated = True
        count += size
        previous_end = limit
        index = run_end
    return count


def _lines(tokens: list[_Token]) -> list[LyricLine]:
    """Group words into lines; section markers become their own lines."""
    lines: list[LyricLine] = []
    current: list[TimedWord] = []
    # A section line waits for the next word: it goes in the silence before that word.
    pending_sections: list[str] = []

    def close() -> None:
        if current:
            lines.append(LyricLine(current[0].start, tuple(current)))
            current.clear()

    for token in tokens:
        if token.kind == "break":
            close()
            continue
        if token.kind == "section":
            close()
            pending_sections.append(token.text)
            continue
        assert token.start is not None and token.end is not None  # noqa: S101 - interpolated
        word = TimedWord(token.text, token.start, token.end, token.interpolated)
        if current:
            length = sum(len(w.text) + 1 for w in current) + len(word.text)
            if length > MAX_LINE_CHARS or word.start - current[-1].end >= LINE_GAP_SECONDS:
                close()
        if pending_sections:
            # Shown in the silence before the section: from the end of the previous line.
            previous_end = lines[-1].end if lines else 0.0
            at = min(max(previous_end, 0.0), word.start)
            lines.extend(LyricLine(at, section=name) for name in pending_sections)
            pending_sections.clear()
        current.append(word)
    close()
    # Markers after the last word (an outro, "[End]") close the song.
    at = lines[-1].end if lines else 0.0
    lines.extend(LyricLine(at, section=name) for name in pending_sections)
    return lines


def _clean(text: str) -> str:
    """No control characters, nothing that is LRC syntax, single spaces."""
    return " ".join(_LRC_SYNTAX.sub("", _CONTROL.sub(" ", text)).split())


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, int) and not -_HUGE < value < _HUGE:
        return None  # a huge JSON integer: float() would overflow
    number = float(value)
    return number if math.isfinite(number) else None


def _ms(seconds: float) -> float:
    return round(seconds, 3)


# --- the waveform ---------------------------------------------------------------------------


def downsample(raw: object, points: int = WAVEFORM_POINTS) -> tuple[float, ...]:
    """``waveform_data`` as at most ``points`` peak values in 0..1 (anything odd is dropped).

    Each output point is the largest magnitude of its share of the input, scaled so the
    loudest point is 1. Non-numbers, NaN and infinities are skipped.
    """
    if not isinstance(raw, list) or points < 1:
        return ()
    # One inline pass (no call per value): Vidgo may send hundreds of thousands of points.
    values = [
        abs(float(x))
        for x in raw
        if (type(x) is float and math.isfinite(x)) or (type(x) is int and -_HUGE < x < _HUGE)
    ]
    if not values:
        return ()
    if len(values) > points:
        size = len(values) / points
        values = [
            max(values[int(i * size) : max(int((i + 1) * size), int(i * size) + 1)])
            for i in range(points)
        ]
    peak = max(values)
    if peak <= 0:
        return tuple(0.0 for _ in values)
    return tuple(v / peak for v in values)


# --- LRC --------------------------------------------------------------------------------------


def lrc_time(seconds: float) -> str:
    """``83.456`` -> ``01:23.46`` (negative times are 0, later ones than 99:59.99 are that)."""
    hundredths = min(max(0, round(seconds * 100)), round(MAX_SECONDS * 100))
    minutes, rest = divmod(hundredths, 6000)
    return f"{minutes:02d}:{rest // 100:02d}.{rest % 100:02d}"


def lrc_header_value(text: str, limit: int = 120) -> str:
    """A value safe inside ``[ti:...]``: one line, no brackets."""
    return _clean(text)[:limit].strip()


def to_lrc(
    lyrics: Lyrics,
    *,
    title: str | None = None,
    length: float | None = None,
    enhanced: bool = False,
) -> str:
    """Standard line-synced LRC (``[mm:ss.xx]`` per line) with a metadata header.

    ``[ti:]`` is the title (``Untitled`` when unknown) and ``[length:]`` the track's length
    (or the end of the last word). Section markers become timed ``(Verse)`` lines. With
    ``enhanced``, each word also carries its start as ``<mm:ss.xx>`` (enhanced LRC). The file
    ends with an empty timed line when the last word ends, so players clear the screen.
    """
    total = length if length is not None and length > 0 else lyrics.end
    whole = min(max(0, round(total)), int(MAX_SECONDS))
    out = [
        f"[ti:{lrc_header_value(title or '') or 'Untitled'}]",
        f"[length: {whole // 60:02d}:{whole % 60:02d}]",
        "[re:Stemcord]",
    ]
    if lyrics.interpolated:
        out.append(f"[#:{lyrics.interpolated} word(s) timed by interpolation]")
    for line in lyrics.lines:
        if enhanced and line.words:
            body = " ".join(f"<{lrc_time(w.start)}>{w.text}" for w in line.words)
        else:
            body = line.text
        out.append(f"[{lrc_time(line.start)}]{body}")
    if lyrics.lines:
        out.append(f"[{lrc_time(lyrics.end)}]")
    return "\n".join(out) + "\n"


# --- the job kind -----------------------------------------------------------------------------


def lyrics_source_key(task_id: str, audio_id: str) -> str:
    """The key identical lyrics requests share: one Vidgo call per source track."""
    return f"{Model.TIMESTAMPED_LYRICS.value}:{task_id}:{audio_id}"


def lyrics_request(
    *,
    task_id: str,
    audio_id: str,
    requester_id: int,
    channel_id: int,
    guild_id: int | None,
    track: Mapping[str, Any] | None = None,
    reply_to_message_id: int | None = None,
    enhanced_lrc: bool = False,
) -> JobRequest:
    """The engine request for the lyrics of one Vidgo track.

    ``enhanced_lrc`` is kept in the job's options, so every delivery (also after a restart,
    or from the cache) renders the file the way it was asked for.
    """
    return JobRequest(
        kind=LYRICS,
        model=Model.TIMESTAMPED_LYRICS.value,
        source_kind=SourceKind.IDS,
        source_key=lyrics_source_key(task_id, audio_id),
        requester_id=requester_id,
        channel_id=channel_id,
        guild_id=guild_id,
        source_task_id=task_id,
        source_audio_id=audio_id,
        options={"enhanced_lrc": enhanced_lrc},
        track=track,
        reply_to_message_id=reply_to_message_id,
    )


class LyricsApi(Protocol):
    """The part of the Vidgo client that lyrics jobs use."""

    async def submit_lyrics(
        self, *, task_id: str, audio_id: str, callback_url: str | None
    ) -> SubmitReceipt: ...


class LyricsKind(JobKind):
    """Word-timed lyrics of a Vidgo generation (``get-timestamped-lyrics``)."""

    NAME = LYRICS
    PARSE_IN_THREAD = True

    def __init__(self, vidgo: LyricsApi) -> None:
        self.vidgo = vidgo

    async def submit(self, job: JobRecord, callback_url: str | None) -> SubmitReceipt:
        """Lyrics exist only for Vidgo songs, named by their ids."""
        if job.source_kind is not SourceKind.IDS or not job.source_task_id:
            # Only reachable through a bug; the job then fails instead of being retried.
            raise Unsubmittable(
                ErrorKind.INVALID, "lyrics jobs need a Vidgo song (task_id + audio_id)"
            )
        assert job.source_audio_id  # noqa: S101 - ids sources carry both ids
        return await self.vidgo.submit_lyrics(
            task_id=job.source_task_id, audio_id=job.source_audio_id, callback_url=callback_url
        )

    def result_of(self, job: JobRecord, detail: TaskDetail) -> dict[str, Any]:
        """The parsed lyrics found in the task's ``files``."""
        payload = lyrics_in_files(detail.files)
        if payload is None:
            raise UnusableResult(NO_LYRICS, "Vidgo finished the task but sent no lyrics")
        return self._result(payload, detail.task_id)

    def result_at_submit(self, job: JobRecord, receipt: SubmitReceipt) -> dict[str, Any] | None:
        """The result when the submit reply already carries it (§16's example)."""
        payload = find_lyrics_payload(receipt.data)
        return None if payload is None else self._result(payload, receipt.task_id)

    @staticmethod
    def _result(payload: Mapping[str, Any], vidgo_task_id: str) -> dict[str, Any]:
        try:
            lyrics = parse_lyrics(payload)
        except NoVocals:
            raise UnusableResult(
                NO_VOCALS, "This track has no vocals, so there are no lyrics to time"
            ) from None
        except NoTiming:
            raise UnusableResult(
                NO_TIMING, "Vidgo could not line up any of the words with the music"
            ) from None
        return {**lyrics.to_stored(), "words": len(lyrics.words), "vidgo_task_id": vidgo_task_id}
