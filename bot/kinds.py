"""Job kinds: what a job asks Vidgo for, and how its finished task becomes a result.

The engine tracks every job the same way (record, submit, callback or poll, outcome, one
delivery); only two things differ between a stem separation, MIDI notes or timed lyrics:

* how the job is submitted (:meth:`JobKind.submit`), and
* how a finished task's detail (or, for models that answer at once, the submit reply) turns
  into the job's stored result (:meth:`JobKind.result_of`, :meth:`JobKind.result_at_submit`).

A kind raises :class:`UnusableResult` when Vidgo finished but sent nothing usable; the job then
fails with that reason. Each kind names itself (:attr:`JobKind.NAME`, stored as
``JobRecord.kind``); the composition root gives the engine its list of kinds.

A kind may also have a **post-success step** (:meth:`JobKind.prepare`): work done once, after
the job succeeded and before its result is delivered, whose changes join the stored result (a
separation keeps its stems and makes the backing track). The engine runs it under the job's
lease, records that it ran (``JobRecord.prepared_at``), lets it save its progress as it goes
(a process killed mid-step resumes from there) and never runs it twice for one job.
Two hooks serve kinds whose work is local (a key change of a kept backing track, made in the
bot's own audio workers rather than at Vidgo): :class:`TryLater` lets a submit wait for a busy
resource without spending an attempt, and :meth:`JobKind.follow_up` lets a kind start a job of
its own once another job's result is posted (``/separate key:``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from bot.jobs import JobRequest
from bot.vidgo.results import SubmitReceipt, TaskDetail
from storage.records import JobRecord

# Vidgo's clock and ours may disagree this much when a task's creation time is compared.
CLOCK_SKEW_SECONDS = 600.0


class UnusableResult(Exception):
    """Vidgo finished the task but its result cannot be used; the job fails with this."""

    def __init__(self, error_kind: str, message: str) -> None:
        super().__init__(message)
        self.error_kind = error_kind
        self.message = message


class Unsubmittable(Exception):
    """The job can never be submitted as recorded (a local condition, not Vidgo's answer);
    it fails at once with ``error_kind``."""

    def __init__(self, error_kind: str, message: str) -> None:
        super().__init__(message)
        self.error_kind = error_kind
        self.message = message


SaveProgress = Callable[[Mapping[str, Any]], Awaitable[None]]
"""Stores result changes of a post-success step that is not finished yet (its progress)."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """What a post-success step did.

    ``changes`` are merged into the stored result (top-level keys replaced). ``cacheable``
    ``False`` says the result can no longer be delivered to anyone (its files are gone
    everywhere): the results cache then forgets it, so the next request for the source starts
    afresh instead of being answered with nothing.
    """

    changes: Mapping[str, Any] = field(default_factory=dict)
    cacheable: bool = True


class TryLater(Exception):
    """Nothing was sent and nothing is wrong with the job, but something it needs is busy now
    (the audio workers' queue is full). The engine submits it again after ``retry_after``
    seconds without counting an attempt; at the job's deadline it expires."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = max(0.0, retry_after)


class JobKind(ABC):
    """One kind of job the engine can track.

    ``PARSE_IN_THREAD``: parsing a finished task can take long (thousands of notes or words
    from Vidgo), so the engine runs :meth:`result_of` in a worker thread instead of stalling
    the event loop (Discord's heartbeat, callbacks, every other job).
    """

    NAME: ClassVar[str]
    PARSE_IN_THREAD: ClassVar[bool] = False

    @abstractmethod
    async def submit(self, job: JobRecord, callback_url: str | None) -> SubmitReceipt:
        """Send the job to Vidgo; raise the Vidgo client's errors unchanged."""

    @abstractmethod
    def result_of(self, job: JobRecord, detail: TaskDetail) -> dict[str, Any]:
        """The stored result of a finished task; :class:`UnusableResult` if there is none."""

    def result_at_submit(self, job: JobRecord, receipt: SubmitReceipt) -> dict[str, Any] | None:
        """A result the submit reply already carries (most models: none, poll for it)."""
        return None

    def needs_prepare(self, job: JobRecord) -> bool:
        """Whether this succeeded job has a post-success step to run (most kinds: no)."""
        return False

    async def prepare(self, job: JobRecord, save: SaveProgress) -> Prepared:
        """Run the post-success step of a succeeded job; see the module docstring.

        ``job.result`` holds what earlier, interrupted runs saved with ``save``: work already
        done must not be done again. Failures a member should hear about belong in the
        changes (the result is still delivered); anything raised counts as a fault, retried
        with backoff, and after the engine's limit the result is delivered with
        :meth:`prepare_gave_up`'s changes.
        """
        raise NotImplementedError(f"{type(self).__name__} has no post-success step")

    def prepare_gave_up(self, job: JobRecord, reason: str) -> Mapping[str, Any]:
        """Result changes when the post-success step kept failing (``reason`` is for logs)."""
        return {}

    def resend_is_safe(self, job: JobRecord) -> bool:
        """Whether a submit may be sent again after one that may have reached Vidgo.

        Only where Vidgo itself refuses a second task for the same input (409, its
        once-per-track rule) can a resend never pay twice. Everything else waits for the
        callback instead (see :class:`bot.engine.JobEngine`).
        """
        return False

    def follow_up(self, job: JobRecord, result_message_id: int | None) -> JobRequest | None:
        """A job of this kind that ``job`` asked for, to start now that its result is posted.

        Called by the engine for every kind once a succeeded job's outcome message is posted
        (``result_message_id``, to reply to) and before the job is recorded as delivered; the
        engine records each follow-up at most once (its id is derived from ``job``'s). Most
        kinds start nothing.
        """
        return None

    def contradicts(self, job: JobRecord, detail: TaskDetail, *, since: float) -> str | None:
        """Why the task ``detail`` cannot be this job's own task, or ``None``.

        Used before adopting a task that a callback named: every piece of evidence the detail
        reply carries must agree (the model and input when Vidgo echoes them, a creation time
        not before the job's first unconfirmed submit, ``since``, allowing for clock skew).
        """
        if detail.model is not None and detail.model != job.model:
            return f"it is a {detail.model[:40]} task, not {job.model}"
        created = detail.created_time
        if created is not None and created.timestamp() < since - CLOCK_SKEW_SECONDS:
            return "it was created before the job's submit"
        echoed = detail.input or {}
        for name, value in (
            ("task_id", job.source_task_id),
            ("audio_id", job.source_audio_id),
            ("audio_url", job.source_url),
        ):
            if name in echoed and str(echoed[name]).strip() != (value or ""):
                return f"its input {name} differs from the job's"
        return None
