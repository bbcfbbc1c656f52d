"""The singer's key: a separation's kept backing track, shifted by whole semitones.

A member who finds a song too high or too low asks for its backing track in another key (the
**Key** control on a separation's result, or ``/separate key:``). The work is local: no Vidgo
call, no credits. :class:`KeyRenderKind` is still a job kind like any other, so the engine's
rules apply unchanged: the presser's limits at admission, one job for two identical requests
in flight, one outcome message delivered once, and the result cache.

* **Identity.** A request is *(kept backing track, semitones)*; its ``source_key`` is
  ``key-render:<media key>:<±n>`` (:func:`key_source_key`), so the result cache holds one
  render per result and key, and every later request for it (another member, another server
  that was answered from the same cached separation) reuses the stored file.
* **Files.** :class:`KeyRenders` renders in the audio workers (:func:`bot.audio.render_key`,
  streamed, constant memory) into the separation's own folder of the media store, next to
  the backing track: ``instrumental.mp3`` -> ``instrumental_key_plus2.mp3``. The render is made
  at the backing track's bitrate, once; a copy that fits a smaller upload limit
  (:func:`bot.audio.fit_to_limit`) is kept beside it as ``instrumental_key_plus2_128k.mp3``
  (named by its bitrate, so every limit that needs the same bitrate shares one copy).
* **Not kept.** A separation whose result names no backing track (no ``media`` entry,
  ``backing`` ``None``) or whose file is gone (retention) cannot be changed in key: the job
  fails at once with :data:`NOT_KEPT_MESSAGE` (:class:`bot.kinds.Unsubmittable`).
* **Busy.** When the audio workers' queue is full the submit waits and is tried again
  (:class:`bot.kinds.TryLater`), it is not failed.
* **``/separate key:``.** The wanted key rides on the separation's request
  (``options["key"]``); once the separation's result is posted, :meth:`KeyRenderKind.follow_up`
  asks the engine to start the render, replying to that result (see
  :meth:`bot.engine.JobEngine._start_follow_ups` for why that is done exactly once).

Discord knows nothing here: the upload limit a result must fit comes with the request
(``options["attachment_limit"]``, read from Discord by the cog that asked).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.audio import (
    AudioInputError,
    AudioPool,
    JobTimedOut,
    PoolBusy,
    PoolClosed,
    fit_to_limit,
    probe,
    render_key,
)
from bot.audio.mp3 import MP3_BITRATES
from bot.jobs import JobRequest
from bot.kinds import JobKind, TryLater, Unsubmittable, UnusableResult
from bot.media import InsufficientSpace, InvalidMediaName, MediaStore, StoredFile
from bot.media.names import is_valid_key, is_valid_name
from bot.media.store import TEMP_DIR
from bot.separation import SEPARATION
from bot.vidgo.results import SubmitReceipt, TaskDetail, TaskStatus
from storage.jobstate import JobState
from storage.records import JobRecord

KEY = "key"
# The request's model: a local render, never a Vidgo model.
KEY_MODEL = "key-render"
KEY_STEPS: tuple[int, ...] = (-6, -5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 6)
"""Whole semitones a member may ask for (0 is the backing track itself)."""

# Why a key change failed (``JobRecord.error_kind``); the Discord side words each.
NOT_KEPT = "not_kept"
UNREADABLE = "unreadable_backing"
NO_SPACE = "no_space"
TOO_LONG = "too_long"
NOT_KEPT_MESSAGE = "the backing track of this song is no longer kept; run /separate again"

# A full queue is asked again this much later (the render ahead of it takes seconds).
BUSY_RETRY_SECONDS = 5.0
# The stem of a rendition's name keeps this much of the backing track's (names hold 100).
_BASE_STEM_MAX = 60


@dataclass(frozen=True, slots=True)
class BackingTrack:
    """Where a separation's backing track is kept: ``<media key>/<name>`` in the media store."""

    media_key: str
    name: str


def backing_of(separation: JobRecord) -> BackingTrack | None:
    """The backing track a succeeded separation's result names, if it names a usable one.

    Reads the ``media`` entry of the result (``{"key", "files", "backing", "error"}``); the
    names are checked as the media store checks them, since they come from the database.
    Whether the file is still on disk is :meth:`KeyRenders.kept`'s question.
    """
    if separation.kind != SEPARATION or separation.outcome is not JobState.SUCCEEDED:
        return None
    media = (separation.result or {}).get("media")
    if not isinstance(media, Mapping):
        return None
    key, name = media.get("key"), media.get("backing")
    if not isinstance(key, str) or not isinstance(name, str):
        return None
    if not is_valid_key(key) or not is_valid_name(name):
        return None
    return BackingTrack(key, name)


def check_semitones(value: object) -> int:
    """``value`` as one of :data:`KEY_STEPS`; ``ValueError`` for anything else."""
    if isinstance(value, bool) or not isinstance(value, int) or value not in KEY_STEPS:
        raise ValueError(f"a key change is a whole number of semitones in {KEY_STEPS}")
    return value


def key_words(semitones: int) -> str:
    """``+2 semitones``, ``-1 semitone``."""
    unit = "semitone" if abs(semitones) == 1 else "semitones"
    return f"{semitones:+d} {unit}"


def rendition_base(backing_name: str, semitones: int) -> str:
    """The name (without extension) of the backing track in a key: ``instrumental_key_plus2``."""
    stem = backing_name.rsplit(".", 1)[0][:_BASE_STEM_MAX]
    direction = "plus" if semitones > 0 else "minus"
    return f"{stem}_key_{direction}{abs(semitones)}"


def rendition_names(base: str) -> list[str]:
    """Every name a rendition of ``base`` may be kept under, best first: the render itself,
    then its copies re-encoded to fit, from the highest bitrate down."""
    fitted = [f"{base}_{kbps}k.mp3" for kbps in sorted(MP3_BITRATES, reverse=True)]
    return [f"{base}.mp3", *fitted]


def key_source_key(media_key: str, semitones: int) -> str:
    """The identity of a key change: one render per kept backing track and key."""
    return f"{KEY_MODEL}:{media_key}:{semitones:+d}"


def key_request(
    separation: JobRecord,
    semitones: int,
    *,
    requester_id: int,
    channel_id: int,
    guild_id: int | None,
    reply_to_message_id: int | None,
    attachment_limit: int | None,
) -> JobRequest:
    """A request for ``separation``'s backing track shifted by ``semitones``.

    ``attachment_limit`` is the upload limit of the place the answer goes (bytes, as Discord
    stated it to the cog). A separation without a kept backing track still makes a request
    (for ``/separate key:`` the member must hear why nothing came); it fails at submit with
    :data:`NOT_KEPT_MESSAGE`.
    """
    steps = check_semitones(semitones)
    backing = backing_of(separation)
    options: dict[str, Any] = {"separation_job": separation.id, "semitones": steps}
    if attachment_limit is not None and attachment_limit > 0:
        options["attachment_limit"] = int(attachment_limit)
    if backing is not None:
        options.update(media_key=backing.media_key, backing=backing.name)
        source_key = key_source_key(backing.media_key, steps)
    else:
        source_key = f"{KEY_MODEL}:job-{separation.id}:{steps:+d}"
    return JobRequest(
        kind=KEY,
        model=KEY_MODEL,
        source_kind=separation.source_kind,
        source_key=source_key,
        requester_id=requester_id,
        channel_id=channel_id,
        guild_id=guild_id,
        source_task_id=separation.source_task_id,
        source_audio_id=separation.source_audio_id,
        source_url=separation.source_url,
        options=options,
        track=separation.track,
        reply_to_message_id=reply_to_message_id,
    )


@dataclass(frozen=True, slots=True)
class KeyOrder:
    """What a recorded key job asks for (read back from its options)."""

    backing: BackingTrack | None
    semitones: int
    attachment_limit: int | None

    @classmethod
    def of(cls, job: JobRecord) -> KeyOrder:
        """The order a job carries; :class:`Unsubmittable` if its options are not one."""
        options = job.options
        try:
            semitones = check_semitones(options.get("semitones"))
        except ValueError as exc:
            raise Unsubmittable(NOT_KEPT, str(exc)) from None
        key, name = options.get("media_key"), options.get("backing")
        backing = (
            BackingTrack(key, name)
            if isinstance(key, str)
            and isinstance(name, str)
            and is_valid_key(key)
            and is_valid_name(name)
            else None
        )
        limit = options.get("attachment_limit")
        usable_limit = limit if isinstance(limit, int) and not isinstance(limit, bool) else None
        return cls(backing, semitones, usable_limit if usable_limit and usable_limit > 0 else None)

    @property
    def base(self) -> str | None:
        """The rendition's base name (``None`` without a backing track)."""
        if self.backing is None:
            return None
        return rendition_base(self.backing.name, self.semitones)


class KeyRenders:
    """Key changes of kept backing tracks: rendered once, kept, and fitted to upload limits.

    ``store`` is the media store the backing tracks are kept in (``None`` only where nothing
    is rendered: a process that registers slash commands and exits); ``pool`` runs the audio
    work. Renders and fits of one file are serialised in this process, so two requests that
    reach it at the same moment make it once.
    """

    def __init__(self, store: MediaStore | None, pool: AudioPool) -> None:
        self.store = store
        self.pool = pool
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._waiting: dict[tuple[str, str], int] = {}

    def _require_store(self) -> MediaStore:
        if self.store is None:
            raise RuntimeError("key changes need the media store, which is not open here")
        return self.store

    def kept(self, separation: JobRecord) -> BackingTrack | None:
        """The separation's backing track if its result names one and the file is still kept."""
        backing = backing_of(separation)
        if backing is None or self.store is None:
            return None
        return backing if self.store.exists(backing.media_key, backing.name) else None

    def attachment(self, media_key: str, base: str, limit: int) -> StoredFile | None:
        """The best kept rendition of ``base`` of at most ``limit`` bytes (``None``: none).

        The render itself when it fits, else the highest-bitrate copy that does. Looks only at
        the disk (a few ``stat`` calls), so the Discord side may call it while rendering a
        message.
        """
        if self.store is None:
            return None
        for name in rendition_names(base):
            found = self.store.stat(media_key, name)
            if found is not None and found.size <= limit:
                return found
        return None

    def rendition(self, media_key: str, base: str) -> StoredFile | None:
        """The kept render of ``base`` at its own bitrate, if any."""
        if self.store is None:
            return None
        return self.store.stat(media_key, f"{base}.mp3")

    async def render(self, backing: BackingTrack, semitones: int) -> StoredFile:
        """The backing track shifted by ``semitones``, rendered now unless already kept."""
        store = self._require_store()
        base = rendition_base(backing.name, semitones)
        name = f"{base}.mp3"
        async with self._one_at_a_time(backing.media_key, name):
            found = store.stat(backing.media_key, name)
            if found is not None:
                return found
            source = store.path_of(backing.media_key, backing.name)
            async with self._scratch(store) as scratch:
                out = scratch / name
                await self.pool.run(render_key, source, out, semitones=semitones)
                return await store.put_file(backing.media_key, name, out)

    async def fit(self, media_key: str, base: str, limit: int) -> StoredFile | None:
        """A kept rendition of ``base`` within ``limit`` bytes, re-encoded now if needed.

        ``None`` when even the lowest acceptable bitrate would not fit (see
        :func:`bot.audio.fit_to_limit`) or the render itself is not kept.
        """
        store = self._require_store()
        found = self.attachment(media_key, base, limit)
        if found is not None:
            return found
        full = self.rendition(media_key, base)
        if full is None:
            return None
        async with self._one_at_a_time(media_key, f"{base}.fit"):
            found = self.attachment(media_key, base, limit)
            if found is not None:
                return found
            async with self._scratch(store) as scratch:
                out = scratch / f"{base}_fit.mp3"
                fitted = await self.pool.run(fit_to_limit, full.path, out, limit_bytes=limit)
                if fitted is None:
                    return None
                return await store.put_file(media_key, f"{base}_{fitted.bitrate_kbps}k.mp3", out)

    @contextlib.asynccontextmanager
    async def _one_at_a_time(self, media_key: str, name: str) -> AsyncIterator[None]:
        slot = (media_key, name)
        lock = self._locks.setdefault(slot, asyncio.Lock())
        self._waiting[slot] = self._waiting.get(slot, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._waiting[slot] -= 1
            if self._waiting[slot] == 0:
                del self._waiting[slot]
                del self._locks[slot]

    @contextlib.asynccontextmanager
    async def _scratch(self, store: MediaStore) -> AsyncIterator[Path]:
        # In the store's own temporary folder: the same file system as the results (so the
        # decoded spill does not fill a small /tmp), and emptied when the store opens, so a
        # killed render leaves nothing behind for long.
        parent = store.root / TEMP_DIR
        parent.mkdir(exist_ok=True)
        path = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="key-", dir=parent))
        try:
            yield path
        finally:
            await asyncio.to_thread(shutil.rmtree, path, True)


class KeyRenderKind(JobKind):
    """A kept backing track in another key: rendered in the bot's audio workers.

    The submit does the work and answers at once (:meth:`result_at_submit`); no Vidgo task
    exists, so nothing is ever polled. A resend is always safe: rendering again costs only
    time, and a render already kept is reused.
    """

    NAME = KEY

    def __init__(self, renders: KeyRenders) -> None:
        self.renders = renders

    async def submit(self, job: JobRecord, callback_url: str | None) -> SubmitReceipt:
        """Render (or reuse) the key, fit it to the job's upload limit, answer at once."""
        order = KeyOrder.of(job)
        backing, base = order.backing, order.base
        store = self.renders.store
        if (
            backing is None
            or base is None
            or store is None
            or not store.exists(backing.media_key, backing.name)
        ):
            raise Unsubmittable(NOT_KEPT, NOT_KEPT_MESSAGE)
        try:
            full = await self.renders.render(backing, order.semitones)
            if order.attachment_limit is not None:
                await self.renders.fit(backing.media_key, base, order.attachment_limit)
            seconds = await asyncio.to_thread(_duration_of, full.path)
        except (PoolBusy, PoolClosed) as exc:
            raise TryLater(
                f"the audio workers cannot take it now ({type(exc).__name__})",
                retry_after=BUSY_RETRY_SECONDS,
            ) from exc
        except AudioInputError as exc:
            if not store.exists(backing.media_key, backing.name):  # pruned meanwhile
                raise Unsubmittable(NOT_KEPT, NOT_KEPT_MESSAGE) from exc
            raise Unsubmittable(
                UNREADABLE, f"the kept backing track could not be read ({type(exc).__name__})"
            ) from exc
        except JobTimedOut as exc:
            # Past the workers' time limit once, it would be past it every time: not retried.
            raise Unsubmittable(
                TOO_LONG, f"the key change took longer than the {exc.seconds:g} s allowed"
            ) from exc
        except InsufficientSpace as exc:
            raise Unsubmittable(NO_SPACE, "there is not enough disk space to keep it") from exc
        except InvalidMediaName as exc:
            raise Unsubmittable(NOT_KEPT, NOT_KEPT_MESSAGE) from exc
        result = {
            "media_key": backing.media_key,
            "base": base,
            "file": full.name,
            "bytes": full.size,
            "semitones": order.semitones,
            "seconds": seconds,
        }
        return SubmitReceipt(
            task_id=f"local-key-{job.id}",
            status=TaskStatus.FINISHED,
            created_time=datetime.now(UTC),
            data={"result": result},
        )

    def result_at_submit(self, job: JobRecord, receipt: SubmitReceipt) -> dict[str, Any] | None:
        """The render the submit made (or found)."""
        result = receipt.data.get("result")
        return dict(result) if isinstance(result, dict) else None

    def result_of(self, job: JobRecord, detail: TaskDetail) -> dict[str, Any]:
        """Never reached: a key change has no Vidgo task to read."""
        raise UnusableResult(NOT_KEPT, "a key change has no Vidgo task to read")

    def resend_is_safe(self, job: JobRecord) -> bool:
        """Local work: doing it again costs only time."""
        return True

    def follow_up(self, job: JobRecord, result_message_id: int | None) -> JobRequest | None:
        """``/separate key:``: the separation just posted asked for its backing track in a key."""
        if job.kind != SEPARATION or job.outcome is not JobState.SUCCEEDED:
            return None
        try:
            semitones = check_semitones(job.options.get("key"))
        except ValueError:
            return None
        limit = job.options.get("attachment_limit")
        return key_request(
            job,
            semitones,
            requester_id=job.requester_id,
            channel_id=job.channel_id,
            guild_id=job.guild_id,
            reply_to_message_id=result_message_id,
            attachment_limit=limit if type(limit) is int else None,
        )


def _duration_of(path: Path) -> float | None:
    """The track's length in seconds, from its headers (no decoding)."""
    try:
        return round(probe(path).duration_s, 3)
    except (AudioInputError, OSError):
        return None
