"""Turn Vidgo's submit, detail and callback bodies into typed values (pure parsing, no I/O).

Vidgo's published shapes and a draft of them disagree (§4, §5 and §13 of
``docs/vidgo-api.md``, which "§N" refers to throughout), so parsing is lenient about form and
strict about safety:

* the ``{"code", "data"}`` envelope and a flat body are both accepted;
* a separation result is read from the first of ``separate_vocals``, ``stem_split`` and
  ``vocal_removal`` present in each ``files`` entry, as a JSON string or an object;
* key names are trimmed and normalised (``vocal_url `` -> ``vocals``);
* a stem whose value is not a plain http(s) URL is dropped and logged, because these URLs are
  later fetched and shown to people, and a callback body is unauthenticated.

A body without ``task_id``/``status``, or with an unknown status, raises
:class:`~bot.vidgo.errors.VidgoMalformedResponse`.
"""

from __future__ import annotations

import json
import logging
import math
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from bot.vidgo.errors import VidgoMalformedResponse

log = logging.getLogger(__name__)

# No song lasts longer than a day; anything beyond is a malformed value, not a duration.
MAX_DURATION_SECONDS = 86_400

MAX_URL_CHARS = 2048
MAX_ERROR_MESSAGE_CHARS = 1000
MAX_TITLE_CHARS = 256
MAX_TASK_ID_CHARS = 128
# More credits than anyone holds: a larger balance is malformed, not a number to compute with.
MAX_CREDITS = 10**15
# The result fields of the separation models, in the order they are looked for (§4, §13.6).
RESULT_FIELDS = ("separate_vocals", "stem_split", "vocal_removal")
# Results of models that are not stems; their job kinds read them from ``TaskDetail.files``.
NON_STEM_FIELDS = frozenset(
    {"midi_data", "timestampe_lyrics", "timestamped_lyrics", "aligned_words"}
)
# The original track in the related API's stem list (§4); it is not a stem of the song.
NOT_STEMS = frozenset({"origin"})
# Shown first so every caller lists the two karaoke stems the same way.
LEADING_STEMS = ("vocals", "instrumental")
# Stem names end up in file names and labels; anything else is not a stem name.
_STEM_NAME = re.compile(r"[a-z0-9_]{1,64}")
# Whitespace and control characters (ASCII and Unicode) have no place in a URL we fetch.
_BAD_URL_CHAR = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")
# A plain ASCII integer (str.isdigit() also accepts "²", which int() refuses).
_INTEGER = re.compile(r"-?[0-9]{1,15}")


class Model(StrEnum):
    """The Vidgo models Stemcord submits (the ``model`` field)."""

    SEPARATE_VOCALS = "separate-vocals"
    STEM_SPLIT = "stem-split"
    UPLOAD_AND_SEPARATE = "upload-and-separate-vocals"
    # Notes of a finished separation (§3.4, unverified; behind ENABLE_MIDI).
    GENERATE_MIDI = "generate-midi"
    TIMESTAMPED_LYRICS = "get-timestamped-lyrics"


class TaskStatus(StrEnum):
    """A Vidgo task's ``status`` (§2)."""

    NOT_STARTED = "not_started"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        """The task will not change any more."""
        return self in (TaskStatus.FINISHED, TaskStatus.FAILED)


@dataclass(frozen=True, slots=True)
class SubmitReceipt:
    """What Vidgo answered to a submit: the new task's id and status."""

    task_id: str
    status: TaskStatus
    created_time: datetime | None  # aware, UTC
    # The reply's task object as sent: some models answer with their result at once (§16).
    data: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class TrackInfo:
    """One generated track (a ``files`` entry of a generation task)."""

    audio_id: str
    title: str | None
    cover_url: str | None
    duration: float | None
    audio_url: str | None


@dataclass(frozen=True, slots=True)
class TaskDetail:
    """A task as Query Music Detail (or a callback) describes it.

    ``stems`` maps a normalised stem name to an http(s) URL and is empty unless the task
    finished; ``tracks`` lists a generation task's files and is empty for separations.
    ``files`` keeps every ``files`` entry (keys stripped of stray spaces) for the models whose
    results are not stems (MIDI notes, timed lyrics): their job kinds parse them.
    """

    task_id: str
    status: TaskStatus
    stems: dict[str, str]
    tracks: tuple[TrackInfo, ...]
    error_message: str | None
    created_time: datetime | None  # aware, UTC
    files: tuple[dict[str, Any], ...] = field(default=(), compare=False, repr=False)
    # Not documented in detail replies; read when present, as evidence of what the task was
    # asked to do (a task named by a callback is checked against the job before adoption).
    model: str | None = None
    input: dict[str, Any] | None = field(default=None, compare=False, repr=False)


def parse_submit(payload: object) -> SubmitReceipt:
    """Parse a submit reply (enveloped or flat) into a :class:`SubmitReceipt`."""
    body = _unwrap(payload)
    return SubmitReceipt(
        task_id=_task_id(body),
        status=_status(body),
        created_time=_created_time(body.get("created_time")),
        data=body,
    )


def parse_lyrics_submit(payload: object) -> SubmitReceipt:
    """Parse a ``get-timestamped-lyrics`` submit reply, which may carry the result itself.

    §16's example shows the result fields (``aligned_words`` …) directly in ``data``. A reply
    like that without ``task_id``/``status`` is taken as a finished task under a made-up id
    (``inline-…``), since there is nothing to poll; anything else parses as a normal submit.
    """
    body = _unwrap(payload)
    if isinstance(body.get("aligned_words"), list) and (
        not isinstance(body.get("task_id"), str) or not body["task_id"].strip()
    ):
        return SubmitReceipt(
            task_id=f"inline-{secrets.token_hex(8)}",
            status=TaskStatus.FINISHED,
            created_time=_created_time(body.get("created_time")),
            data=body,
        )
    if isinstance(body.get("aligned_words"), list) and not isinstance(body.get("status"), str):
        body = {**body, "status": TaskStatus.FINISHED.value}
    return parse_submit(body)


def parse_detail(payload: object) -> TaskDetail:
    """Parse a detail reply or a callback body (enveloped or flat) into a :class:`TaskDetail`."""
    body = _unwrap(payload)
    task_id = _task_id(body)
    status = _status(body)
    files = body.get("files")
    entries = (
        [_trim_keys(entry) for entry in files if isinstance(entry, dict)]
        if isinstance(files, list)
        else []
    )
    stems: dict[str, str] = {}
    if status is TaskStatus.FINISHED:
        for entry in entries:
            result = _result_of(entry, task_id)
            for name, url in normalize_stems(result).items():
                # Several entries carrying a result is not documented; the first one wins.
                stems.setdefault(name, url)
        stems = _ordered(stems)
    tracks = tuple(track for entry in entries if (track := _track(entry)) is not None)
    return TaskDetail(
        task_id=task_id,
        status=status,
        stems=stems,
        tracks=tracks,
        error_message=_error_message(body.get("error_message")),
        created_time=_created_time(body.get("created_time")),
        files=tuple(entries),
        model=_short_text(body.get("model")),
        input=_trim_keys(body["input"]) if isinstance(body.get("input"), dict) else None,
    )


def callback_task_id(payload: object) -> str | None:
    """The task id a callback body names (enveloped or flat), or ``None``.

    Only a hint: the body is unauthenticated, so the engine reads the task itself before
    believing anything about it.
    """
    try:
        task_id = _task_id(_unwrap(payload))
    except VidgoMalformedResponse:
        return None
    return task_id if len(task_id) <= MAX_TASK_ID_CHARS and task_id.isprintable() else None


def _short_text(value: object) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()[:MAX_TASK_ID_CHARS]


def normalize_stems(raw: object) -> dict[str, str]:
    """Turn a separation result (JSON string or object) into ``{stem name: URL}``.

    Names are trimmed, lower-cased and lose a ``_url`` suffix (``vocal`` becomes ``vocals``);
    ``origin`` is dropped; absent or empty values mean "not produced" and are dropped; values
    that are not plain http(s) URLs are dropped with a warning. ``vocals`` and ``instrumental``
    come first, the rest keep the order received. Anything unreadable yields ``{}``.
    """
    if raw is None:
        return {}
    if isinstance(raw, str):
        if not raw.strip():
            return {}
        text = raw
        try:
            raw = json.loads(text)
        except (ValueError, RecursionError):
            log.warning("Vidgo separation result is not JSON; ignoring it (%d chars)", len(text))
            return {}
    if not isinstance(raw, dict):
        log.warning("Vidgo separation result is a %s, not an object; ignoring it", type(raw))
        return {}
    stems: dict[str, str] = {}
    for key, value in raw.items():
        name = _stem_name(str(key))
        if name in NOT_STEMS:
            continue
        if not _STEM_NAME.fullmatch(name):
            log.warning("Vidgo stem name %.80r is not a plain name; dropping it", name)
            continue
        if value is None or (isinstance(value, str) and not value.strip()):
            continue  # documented as "not produced"
        url = _safe_url(value)
        if url is None:
            log.warning(
                "Vidgo stem %r has an unsafe or invalid URL %.120r; dropping it", name, value
            )
            continue
        stems.setdefault(name, url)
    return _ordered(stems)


def _stem_name(key: str) -> str:
    name = key.strip().lower().replace("-", "_").replace(" ", "_")
    name = name.removesuffix("_url")
    return "vocals" if name == "vocal" else name


def _ordered(stems: dict[str, str]) -> dict[str, str]:
    first = {name: stems[name] for name in LEADING_STEMS if name in stems}
    return first | {name: url for name, url in stems.items() if name not in first}


def _safe_url(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    url = value.strip()
    if not url or len(url) > MAX_URL_CHARS or _BAD_URL_CHAR.search(url) or "\\" in url:
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError:
        return None
    if parts.scheme.lower() not in {"http", "https"} or not host:
        return None
    return url


def _unwrap(payload: object) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise VidgoMalformedResponse(f"Vidgo reply is a {type(payload).__name__}, not an object")
    data = payload.get("data")
    # Enveloped unless the task fields sit at the top level (a flat body, §3.5 / §5).
    if "task_id" not in payload and isinstance(data, dict):
        return data
    return payload


def _task_id(body: dict[str, Any]) -> str:
    task_id = body.get("task_id")
    if not isinstance(task_id, str) or not task_id.strip():
        raise VidgoMalformedResponse("Vidgo reply has no task_id")
    return task_id.strip()


def _status(body: dict[str, Any]) -> TaskStatus:
    status = body.get("status")
    if not isinstance(status, str):
        raise VidgoMalformedResponse("Vidgo reply has no status")
    try:
        return TaskStatus(status.strip().lower())
    except ValueError:
        raise VidgoMalformedResponse(f"Vidgo reply has an unknown status {status[:40]!r}") from None


def _created_time(value: object) -> datetime | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if not math.isfinite(value):
            return None
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    # Vidgo sends no zone (§1); UTC is the documented assumption.
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _error_message(value: object) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = text.strip()
    return text[:MAX_ERROR_MESSAGE_CHARS] or None


def _trim_keys(entry: dict[Any, Any]) -> dict[str, Any]:
    return {str(key).strip(): value for key, value in entry.items()}


def _result_of(entry: dict[str, Any], task_id: str) -> object:
    for name in RESULT_FIELDS:
        value = entry.get(name)
        if value is not None and value != "":
            return value
    if "audio_id" not in entry and not NON_STEM_FIELDS.intersection(entry):
        log.warning("Vidgo task %.80r finished but a files entry has no separation result", task_id)
    return None


def _track(entry: dict[str, Any]) -> TrackInfo | None:
    audio_id = entry.get("audio_id")
    if not isinstance(audio_id, str) or not audio_id.strip():
        return None
    title = entry.get("title")
    return TrackInfo(
        audio_id=audio_id.strip(),
        title=title.strip()[:MAX_TITLE_CHARS] if isinstance(title, str) else None,
        cover_url=_safe_url(entry.get("image_url")),
        duration=_duration(entry.get("duration")),
        audio_url=_safe_url(entry.get("audio_url")),
    )


def _duration(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    # Compared before float(): a huge JSON integer would overflow; NaN and inf fail the test.
    if isinstance(value, int | float) and 0 <= value <= MAX_DURATION_SECONDS:
        return float(value)
    return None


def parse_balance(payload: object) -> int:
    """Parse a balance reply into the remaining credits (``data.credits_amount``)."""
    if not isinstance(payload, dict):
        raise VidgoMalformedResponse("Vidgo balance reply is not an object")
    data = payload.get("data")
    body = data if isinstance(data, dict) else payload
    credits = body.get("credits_amount")
    if isinstance(credits, str) and _INTEGER.fullmatch(credits.strip()):
        return int(credits.strip())
    if isinstance(credits, bool) or not isinstance(credits, int | float):
        raise VidgoMalformedResponse("Vidgo balance reply has no credits_amount")
    # Checked before any float conversion: a huge JSON integer would overflow it.
    if isinstance(credits, int) and abs(credits) <= MAX_CREDITS:
        return credits
    if isinstance(credits, float) and math.isfinite(credits) and abs(credits) <= MAX_CREDITS:
        return int(credits)
    raise VidgoMalformedResponse("Vidgo balance reply has an implausible credits_amount")
