"""Job kinds: what a job asks Vidgo for, and how its finished task becomes a result.

The engine tracks every job the same way (record, submit, callback or poll, outcome, one
delivery); only two things differ between a stem separation, MIDI notes or timed lyrics:

* how the job is submitted (:meth:`JobKind.submit`), and
* how a finished task's detail (or, for models that answer at once, the submit reply) turns
  into the job's stored result (:meth:`JobKind.result_of`, :meth:`JobKind.result_at_submit`).

A kind raises :class:`UnusableResult` when Vidgo finished but sent nothing usable; the job then
fails with that reason. The engine looks kinds up by ``JobRecord.kind``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Protocol

from bot.vidgo.results import Model, SubmitReceipt, TaskDetail
from storage.records import JobRecord, SourceKind

SEPARATION = "separation"
# Vidgo's clock and ours may disagree this much when a task's creation time is compared.
CLOCK_SKEW_SECONDS = 600.0
# The error kind of a separation that finished without a usable stem link.
NO_STEMS = "no_stems"


class UnusableResult(Exception):
    """Vidgo finished the task but its result cannot be used; the job fails with this."""

    def __init__(self, error_kind: str, message: str) -> None:
        super().__init__(message)
        self.error_kind = error_kind
        self.message = message


class JobKind(ABC):
    """One kind of job the engine can track.

    ``PARSE_IN_THREAD``: parsing a finished task can take long (thousands of notes or words
    from Vidgo), so the engine runs :meth:`result_of` in a worker thread instead of stalling
    the event loop (Discord's heartbeat, callbacks, every other job).
    """

    PARSE_IN_THREAD = False

    @abstractmethod
    async def submit(self, job: JobRecord, callback_url: str | None) -> SubmitReceipt:
        """Send the job to Vidgo; raise the Vidgo client's errors unchanged."""

    @abstractmethod
    def result_of(self, job: JobRecord, detail: TaskDetail) -> dict[str, Any]:
        """The stored result of a finished task; :class:`UnusableResult` if there is none."""

    def result_at_submit(self, job: JobRecord, receipt: SubmitReceipt) -> dict[str, Any] | None:
        """A result the submit reply already carries (most models: none, poll for it)."""
        return None

    def resend_is_safe(self, job: JobRecord) -> bool:
        """Whether a submit may be sent again after one that may have reached Vidgo.

        Only where Vidgo itself refuses a second task for the same input (409, its
        once-per-track rule) can a resend never pay twice. Everything else waits for the
        callback instead (see :class:`bot.engine.JobEngine`).
        """
        return False

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


class SeparationApi(Protocol):
    """The part of the Vidgo client that separations use."""

    async def submit_separation(
        self, model: Model, *, task_id: str, audio_id: str, callback_url: str | None
    ) -> SubmitReceipt: ...

    async def submit_upload_separation(
        self,
        *,
        audio_url: str,
        title: str | None = None,
        model_name: str | None = None,
        output_type: str | None = None,
        callback_url: str | None = None,
    ) -> SubmitReceipt: ...


class SeparationKind(JobKind):
    """Stems of a Vidgo song (separate-vocals, stem-split) or of any audio (upload)."""

    def __init__(self, vidgo: SeparationApi) -> None:
        self.vidgo = vidgo

    async def submit(self, job: JobRecord, callback_url: str | None) -> SubmitReceipt:
        """Vidgo songs by their ids; links and attachments through the upload model."""
        if job.source_kind is SourceKind.IDS:
            assert job.source_task_id and job.source_audio_id  # noqa: S101
            return await self.vidgo.submit_separation(
                Model(job.model),
                task_id=job.source_task_id,
                audio_id=job.source_audio_id,
                callback_url=callback_url,
            )
        assert job.source_url  # noqa: S101
        return await self.vidgo.submit_upload_separation(
            audio_url=job.source_url,
            title=job.options.get("title"),
            model_name=job.options.get("model_name"),
            output_type=job.options.get("output_type"),
            callback_url=callback_url,
        )

    def resend_is_safe(self, job: JobRecord) -> bool:
        """A Vidgo song: ``separate-vocals`` and ``stem-split`` run once per track (409)."""
        return job.source_kind is SourceKind.IDS

    def result_of(self, job: JobRecord, detail: TaskDetail) -> dict[str, Any]:
        """``{"stems": {name: url}, "vidgo_task_id": ...}``."""
        if not detail.stems:
            raise UnusableResult(
                NO_STEMS, "Vidgo finished the task but returned no usable stem links"
            )
        return {"stems": dict(detail.stems), "vidgo_task_id": detail.task_id}
