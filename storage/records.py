"""Plain records that cross the storage boundary.

Times are epoch seconds (UTC) as floats. ``options``, ``result`` and ``track`` are JSON
objects that the storage layer stores verbatim; the engine gives them meaning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from storage.jobstate import JobState


class SourceKind(StrEnum):
    """Where the audio of a job comes from."""

    IDS = "ids"  # a Vidgo generation: task_id + audio_id
    URL = "url"  # any http(s) audio link
    ATTACHMENT = "attachment"  # a Discord attachment (its CDN URL)


class Admission(StrEnum):
    """How :meth:`JobStore.admit` took a new request."""

    NEW = "new"  # a fresh job that must be submitted to Vidgo
    JOINED = "joined"  # follows an identical job already in flight
    CACHED = "cached"  # answered from the results cache; no Vidgo call
    # Identical to a job in flight that will post to the same place (a second press of one
    # button): nothing is recorded, the returned job is that one.
    DROPPED = "dropped"


@dataclass(frozen=True, slots=True)
class NewJob:
    """Everything needed to record a request."""

    id: str
    kind: str  # "separation" (later: "lyrics", "midi")
    source_kind: SourceKind
    source_key: str  # identical requests share it (coalescing and the results cache)
    model: str
    requester_id: int
    channel_id: int
    deadline_at: float
    guild_id: int | None = None
    source_task_id: str | None = None
    source_audio_id: str | None = None
    source_url: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    callback_token_hash: str | None = None
    # Rebuilds the job's callback token with the server's secret (see bot.engine).
    callback_key: str | None = None
    track: dict[str, Any] | None = None
    status_message_id: int | None = None
    reply_to_message_id: int | None = None
    # Post the result here instead of ``channel_id`` (the status message stays there).
    result_channel_id: int | None = None
    # Also send the requester a copy of the result by DM.
    dm_on_completion: bool = False


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One job row as stored."""

    id: str
    kind: str
    source_kind: SourceKind
    source_key: str
    model: str
    requester_id: int
    channel_id: int
    guild_id: int | None
    source_task_id: str | None
    source_audio_id: str | None
    source_url: str | None
    options: dict[str, Any]
    status_message_id: int | None
    reply_to_message_id: int | None
    vidgo_task_id: str | None
    leader_id: str | None
    state: JobState
    outcome: JobState | None
    attempts: int
    polls: int
    delivery_attempts: int
    due_at: float | None
    deadline_at: float
    last_error: str | None
    error_kind: str | None
    callback_token_hash: str | None
    callbacks: int
    result: dict[str, Any] | None
    track: dict[str, Any] | None
    result_message_id: int | None
    created_at: float
    updated_at: float
    finished_at: float | None
    result_channel_id: int | None = None
    dm_on_completion: bool = False
    callback_key: str | None = None
    # Leased to a worker now; the fencing token of the current (or last) claim, and the
    # process holding the job.
    leased: bool = False
    lease_id: int = 0
    lease_owner: str | None = None
    # A submit may have reached Vidgo without an answer since then (see storage V6).
    unconfirmed_submit_at: float | None = None
    # A task id named by a callback to this job's token, not yet checked.
    task_hint: str | None = None
    faults: int = 0
    delivery_started_at: float | None = None
    polled_at: float | None = None
    # When the job's post-success step (bot.kinds.JobKind.prepare) finished (see storage V7).
    prepared_at: float | None = None

    @property
    def is_follower(self) -> bool:
        """This job waits on an identical job (its leader) instead of calling Vidgo."""
        return self.leader_id is not None


@dataclass(frozen=True, slots=True)
class InstanceInfo:
    """One process working on the database (its leases are released once it is gone)."""

    id: str
    pid: int
    host: str
    started_at: float
    heartbeat_at: float


#: Vidgo models that separate a generated track once only (a second request answers 409).
ONCE_ONLY_MODELS = ("separate-vocals", "stem-split")

#: What retention leaves of a once-only separation's cached result: no links, only the row's
#: task id, so the result can be read from Vidgo again when the track is asked for later.
POINTER_RESULT: dict[str, Any] = {"pruned": True}


@dataclass(frozen=True, slots=True)
class CachedResult:
    """A succeeded separation, kept so the same source is never separated twice.

    A *pointer* (:attr:`is_pointer`) is what retention keeps of a once-only separation: its
    task id without a result. Admission treats it as no cache (nothing to post); the engine
    uses its task id when Vidgo refuses the track again (see ``JobEngine._read_again``).
    """

    source_key: str
    model: str
    vidgo_task_id: str | None
    result: dict[str, Any]
    track: dict[str, Any] | None
    created_at: float

    @property
    def is_pointer(self) -> bool:
        """Retention dropped the result and kept only the task id."""
        return self.result == POINTER_RESULT


@dataclass(frozen=True, slots=True)
class AdmitResult:
    """The recorded job and how it was admitted."""

    job: JobRecord
    admission: Admission


class LimitRule(StrEnum):
    """Which limit of a server refused a request (per member, or the server's own cap)."""

    MAX_UNFINISHED = "max_unfinished"
    DAILY_QUOTA = "daily_quota"
    COOLDOWN = "cooldown"
    # Jobs the whole server may start per UTC day.
    SERVER_DAILY_CAP = "server_daily_cap"


@dataclass(frozen=True, slots=True)
class AdmissionLimits:
    """Limits checked inside the transaction that admits a job (0 = no limit).

    Counted per server and requester: ``max_unfinished`` over jobs still waiting on Vidgo
    (joined requests included), ``daily_quota`` over requests since 00:00 UTC (cached and
    joined ones included; jobs that ended failed or expired are not), ``cooldown_seconds``
    since the member's last request. ``server_daily_cap`` counts like ``daily_quota``, over
    every member of the server together.
    """

    max_unfinished: int = 0
    daily_quota: int = 0
    cooldown_seconds: int = 0
    server_daily_cap: int = 0

    @property
    def any(self) -> bool:
        """At least one limit is set."""
        return bool(
            self.max_unfinished
            or self.daily_quota
            or self.cooldown_seconds
            or self.server_daily_cap
        )


class LimitReached(Exception):
    """A request was refused by a limit of its server; nothing was recorded.

    ``frees_at`` is when the member may ask again (epoch seconds), or ``None`` when that
    depends on a job finishing. ``limit`` is the configured value that was reached.
    """

    def __init__(self, rule: LimitRule, limit: int, frees_at: float | None) -> None:
        super().__init__(f"{rule.value} reached (limit {limit})")
        self.rule = rule
        self.limit = limit
        self.frees_at = frees_at
