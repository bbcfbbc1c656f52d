"""Stem separation, the job kind every request of ``/separate`` is.

* :func:`separation_request` turns a validated source and plan (:mod:`bot.sources`) into the
  request the engine records;
* :class:`SeparationKind` submits it (a Vidgo song by its ids to ``separate-vocals`` or
  ``stem-split``; any other audio to ``upload-and-separate-vocals``) and reads the stems of
  the finished task.
"""

from __future__ import annotations

from typing import Any, Protocol

from bot.jobs import JobRequest
from bot.kinds import JobKind, UnusableResult
from bot.sources import Plan, Source
from bot.vidgo.results import Model, SubmitReceipt, TaskDetail
from storage.records import JobRecord, SourceKind

SEPARATION = "separation"
# The error kind of a separation that finished without a usable stem link.
NO_STEMS = "no_stems"


def separation_request(
    source: Source,
    plan: Plan,
    *,
    requester_id: int,
    channel_id: int,
    guild_id: int | None,
    status_message_id: int | None = None,
    key: int | None = None,
    attachment_limit: int | None = None,
) -> JobRequest:
    """The request the engine records for a validated ``/separate``.

    ``key`` (``/separate key:``, semitones) asks for the backing track in that key as well,
    once the separation is posted (:mod:`bot.keys`); ``attachment_limit`` is the upload limit,
    in bytes, of the place it will be posted. Neither changes what is separated, so neither
    is part of the request's identity: an identical separation without a key is joined.
    """
    options: dict[str, Any] = dict(plan.options)
    if key is not None:
        options["key"] = key
        if attachment_limit is not None:
            options["attachment_limit"] = attachment_limit
    return JobRequest(
        kind=SEPARATION,
        model=plan.model.value,
        source_kind=source.kind,
        source_key=plan.source_key,
        requester_id=requester_id,
        channel_id=channel_id,
        guild_id=guild_id,
        source_task_id=source.task_id,
        source_audio_id=source.audio_id,
        source_url=source.url,
        options=options,
        status_message_id=status_message_id,
    )


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

    NAME = SEPARATION

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
