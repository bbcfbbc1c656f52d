"""Stem separation, the job kind every request of ``/separate`` is.

* :func:`separation_request` turns a validated source and plan (:mod:`bot.sources`) into the
  request the engine records;
* :class:`SeparationKind` submits it (a Vidgo song by its ids to ``separate-vocals`` or
  ``stem-split``; any other audio to ``upload-and-separate-vocals``), reads the stems of
  the finished task and, as its post-success step, keeps them and makes the backing track
  (:class:`bot.media.keeper.MediaKeeper`) before the result is delivered.

A separation's stored result::

    {"stems": {name: Vidgo URL}, "vidgo_task_id": ..., "links_until": <epoch seconds>,
     "media": {"key": ..., "files": {...}, "backing": ..., "error": ...}}

``links_until`` is when Vidgo's links are assumed gone (docs/vidgo-api.md §10: a day after
the task finished, three for an upload); ``media`` is added by the post-success step.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from bot.jobs import JobRequest
from bot.kinds import JobKind, Prepared, SaveProgress, UnusableResult
from bot.media.keeper import KEEP_FAILED, MediaEntry, MediaKeeper, media_key
from bot.sources import Plan, Source
from bot.vidgo.results import Model, SubmitReceipt, TaskDetail
from storage.records import JobRecord, SourceKind

SEPARATION = "separation"
# The error kind of a separation that finished without a usable stem link.
NO_STEMS = "no_stems"
# How long Vidgo's result links are assumed to work (docs/vidgo-api.md §10).
LINKS_LIFETIME_SECONDS = 24 * 3600.0
UPLOAD_LINKS_LIFETIME_SECONDS = 72 * 3600.0
GAVE_UP = f"{KEEP_FAILED}: the bot kept running into an error (its log has the details)."

KeepsBackingVocals = Callable[[int | None], Awaitable[bool]]
"""Whether a server's backing tracks keep the backing vocals (its ``/karaoke`` setting)."""


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


def links_alive(result: dict[str, Any], now: float) -> bool:
    """Whether Vidgo's links in a stored result are assumed to still work at ``now``.

    Results stored before ``links_until`` was recorded count as alive (nothing is known).
    """
    until = result.get("links_until")
    return not isinstance(until, int | float) or now < until


def kept_media(result: dict[str, Any] | None) -> MediaEntry | None:
    """The ``media`` entry of a stored separation result, if it has a valid one."""
    return MediaEntry.from_result((result or {}).get("media"))


class SeparationKind(JobKind):
    """Stems of a Vidgo song (separate-vocals, stem-split) or of any audio (upload).

    With a ``keeper``, a succeeded separation's stems are kept and its backing track made
    before delivery (:meth:`prepare`); ``backing_vocals`` says per server whether a mixed
    backing track keeps the backing vocals (default: it does).
    """

    NAME = SEPARATION

    def __init__(
        self,
        vidgo: SeparationApi,
        *,
        keeper: MediaKeeper | None = None,
        backing_vocals: KeepsBackingVocals | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.vidgo = vidgo
        self.keeper = keeper
        self.backing_vocals = backing_vocals
        self._clock = clock

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
        """``{"stems": {name: url}, "vidgo_task_id": ..., "links_until": ...}``."""
        if not detail.stems:
            raise UnusableResult(
                NO_STEMS, "Vidgo finished the task but returned no usable stem links"
            )
        lifetime = (
            LINKS_LIFETIME_SECONDS
            if job.source_kind is SourceKind.IDS
            else UPLOAD_LINKS_LIFETIME_SECONDS
        )
        return {
            "stems": dict(detail.stems),
            "vidgo_task_id": detail.task_id,
            "links_until": self._clock() + lifetime,
        }

    def _media_key(self, job: JobRecord) -> str:
        task = (job.result or {}).get("vidgo_task_id") or job.vidgo_task_id
        return media_key(task if isinstance(task, str) and task else job.id)

    def needs_prepare(self, job: JobRecord) -> bool:
        """A succeeded separation with stems, when this bot keeps media."""
        return self.keeper is not None and bool((job.result or {}).get("stems"))

    async def prepare(self, job: JobRecord, save: SaveProgress) -> Prepared:
        """Keep the stems and make the backing track (see :mod:`bot.media.keeper`)."""
        assert self.keeper is not None  # noqa: S101 - needs_prepare said so
        result = job.result or {}
        stems = {str(k): str(v) for k, v in dict(result.get("stems") or {}).items()}
        key = self._media_key(job)
        alive = links_alive(result, self._clock())
        keep_backing_vocals = True
        if self.backing_vocals is not None and job.model == Model.STEM_SPLIT.value:
            keep_backing_vocals = await self.backing_vocals(job.guild_id)

        async def save_entry(entry: MediaEntry) -> None:
            await save({"media": entry.as_result()})

        entry = await self.keeper.keep(
            key,
            stems,
            keep_backing_vocals=keep_backing_vocals,
            links_alive=alive,
            earlier=kept_media(result),
            save=save_entry,
        )
        # Nothing kept and Vidgo's links gone: nobody can be given this result any more, so
        # the cache must not answer the next request with it.
        deliverable = bool(entry.files) or alive
        return Prepared({"media": entry.as_result()}, cacheable=deliverable)

    def prepare_gave_up(self, job: JobRecord, reason: str) -> dict[str, Any]:
        """The files kept so far, and a sentence saying the rest could not be."""
        earlier = kept_media(job.result)
        files = dict(earlier.files) if earlier is not None else {}
        return {"media": MediaEntry(self._media_key(job), files, None, GAVE_UP).as_result()}
