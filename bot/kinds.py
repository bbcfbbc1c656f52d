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

    def result_of(self, job: JobRecord, detail: TaskDetail) -> dict[str, Any]:
        """``{"stems": {name: url}, "vidgo_task_id": ...}``."""
        if not detail.stems:
            raise UnusableResult(
                NO_STEMS, "Vidgo finished the task but returned no usable stem links"
            )
        return {"stems": dict(detail.stems), "vidgo_task_id": detail.task_id}
