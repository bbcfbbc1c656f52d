"""What a job request is, what the engine did with it, and why a job failed.

Shared by the engine, every job kind (:mod:`bot.kinds`) and the Discord layer, so none of them
needs the engine's internals to speak about a job.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from storage.records import Admission, JobRecord, SourceKind


@dataclass(frozen=True, slots=True)
class JobRequest:
    """A validated request of any kind (see :mod:`bot.kinds`), ready to be recorded.

    Requests with the same ``source_key`` are identical: the later one joins the earlier one
    while it runs, or is answered from the results cache once it succeeded. Every kind starts
    its keys with its model's name (as separations do), so keys of two kinds never clash.
    """

    kind: str
    model: str
    source_kind: SourceKind
    source_key: str
    requester_id: int
    channel_id: int
    guild_id: int | None = None
    source_task_id: str | None = None
    source_audio_id: str | None = None
    source_url: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    track: Mapping[str, Any] | None = None
    status_message_id: int | None = None
    reply_to_message_id: int | None = None


# Who reads about a job, recorded in its options when it is accepted (Discord's locale codes,
# e.g. "ja", "pt-BR"): the requester's own language (what reaches them by DM) and the server's
# at the time of the request (what is posted in a channel when the server is not at hand).
REQUESTER_LOCALE = "requester_locale"
SERVER_LOCALE = "server_locale"


def with_locales(request: JobRequest, requester: str, server: str | None) -> JobRequest:
    """``request`` with its readers' languages recorded in its options."""
    recorded: dict[str, Any] = {**request.options, REQUESTER_LOCALE: requester}
    if server is not None:
        recorded[SERVER_LOCALE] = server
    return dataclasses.replace(request, options=recorded)


@dataclass(frozen=True, slots=True)
class Submitted:
    """What :meth:`JobEngine.submit` did with a request."""

    job: JobRecord
    admission: Admission


class ErrorKind(StrEnum):
    """Why a job failed; the Discord layer maps each to one sentence."""

    AUTH = "auth"  # Vidgo refused our key
    DUPLICATE = "duplicate"  # Vidgo's once-per-track rule
    INVALID = "invalid"  # Vidgo refused the input
    NOT_FOUND = "not_found"  # the source or the task is unknown to Vidgo
    VIDGO_FAILED = "vidgo_failed"  # the task failed at Vidgo (error_message shown)
    NO_STEMS = "no_stems"  # finished without a usable stem URL (bot.kinds.NO_STEMS)
    EXPIRED = "expired"  # no answer before JOB_TIMEOUT_SECONDS
    SUBMIT_GAVE_UP = "submit_gave_up"  # Vidgo stayed unreachable for every submit attempt
    UNCONFIRMED = "unconfirmed"  # a submit may have created a task that was never confirmed
    MALFORMED = "malformed"  # Vidgo's result could not be read
    INTERNAL = "internal"  # Stemcord kept failing on the job (see the logs)
    NOT_ENABLED = "not_enabled"  # a job of a kind this bot no longer runs
