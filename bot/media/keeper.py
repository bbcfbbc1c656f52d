"""The media stage of a separation: keep its stems, make its backing track, say what failed.

:class:`MediaKeeper` turns a separation's stem links into files in the :class:`MediaStore`
(one result key per Vidgo task, so every job and cache hit of that task shares them) and, when
Vidgo returned no instrumental, mixes every stem but the lead vocal into ``instrumental.mp3``
through the audio pool. Its answer is a :class:`MediaEntry`, stored in the job's result as
``result["media"]``::

    {"key": <media key>, "files": {<stem or "instrumental">: <file name>},
     "backing": "instrumental.mp3" | None, "error": <plain sentence> | None}

``backing`` names the backing track: Vidgo's own instrumental when it returned one, else the
mix. ``error`` is one sentence a member can read when something could not be kept or made;
whatever was kept is still listed, and the plain Vidgo links are still delivered.

**Once, and resumable.** After each file lands, the entry so far is handed to ``save`` (the
engine writes it into the job's result). A run after a crash gets that entry back as
``earlier`` and also looks in the store itself (a file may have landed just before the crash,
unrecorded): a file already stored is never downloaded again, a backing track already made is
never mixed again.

**Only Vidgo's links.** The URLs come from Vidgo's result as parsed by ``bot.vidgo``; the
fetcher only connects to the allowed hosts (never to an address a member typed), follows
redirects only within them, caps the size and checks that the body is audio.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from bot.audio import AudioError, NothingToMix, select_backing_stems
from bot.audio.stems import INSTRUMENTAL, canonical_stem_name
from bot.media.errors import (
    FetchConnectionError,
    FetchError,
    FetchTimeout,
    HostNotAllowed,
    HttpStatusError,
    InsecureUrl,
    InsufficientSpace,
    InvalidUrl,
    MediaError,
    NotAudio,
    RedirectNotAllowed,
    TooLarge,
    TooManyRedirects,
    Truncated,
)
from bot.media.fetcher import StemFetcher
from bot.media.names import is_valid_key, is_valid_name
from bot.media.store import MediaStore
from bot.media.work import AudioQueue, mix_into

log = logging.getLogger(__name__)

BACKING_NAME = "instrumental.mp3"
AUDIO_EXTENSIONS = ("mp3", "wav", "flac", "m4a", "ogg", "aac", "webm", "aiff")
# A download that may work on a second try (cut off, timed out, a 5xx) gets this many tries.
FETCH_TRIES = 3
FETCH_RETRY_SECONDS = 1.0
KEEP_FAILED = "Stemcord could not keep a copy of the stems"
MIX_FAILED = "The backing track could not be made"


@dataclass(frozen=True, slots=True)
class MediaEntry:
    """What is kept of one result (``result["media"]``; see the module docstring)."""

    key: str
    files: dict[str, str] = field(default_factory=dict)
    backing: str | None = None
    error: str | None = None

    def as_result(self) -> dict[str, Any]:
        """The JSON object stored in the job's result."""
        return {
            "key": self.key,
            "files": dict(self.files),
            "backing": self.backing,
            "error": self.error,
        }

    @classmethod
    def from_result(cls, raw: object) -> MediaEntry | None:
        """Read ``result["media"]`` back; ``None`` when absent or not of this shape.

        Names are checked as the store checks them, so nothing read here can name a path
        outside the store.
        """
        if not isinstance(raw, Mapping):
            return None
        key = raw.get("key")
        files = raw.get("files")
        if not isinstance(key, str) or not is_valid_key(key) or not isinstance(files, Mapping):
            return None
        kept = {
            str(stem): name
            for stem, name in files.items()
            if isinstance(name, str) and is_valid_name(name)
        }
        backing = raw.get("backing")
        error = raw.get("error")
        return cls(
            key=key,
            files=kept,
            backing=backing if isinstance(backing, str) and is_valid_name(backing) else None,
            error=error if isinstance(error, str) else None,
        )


def media_key(task_id: str) -> str:
    """The store key of a Vidgo task's files: the task id itself when it has the key's shape
    (Vidgo's ids do), else a digest of it (the same task always gets the same key)."""
    if is_valid_key(task_id):
        return task_id
    return "t" + hashlib.sha256(task_id.encode()).hexdigest()[:40]


def stem_file_name(stem: str, url: str) -> str | None:
    """``vocals.mp3``: the stem's name and the link's audio extension (``mp3`` if unknown).

    ``None`` for a stem name that cannot be a file name (never stored).
    """
    base = canonical_stem_name(stem)
    path = urlsplit(url).path.lower()
    extension = path.rsplit(".", 1)[-1] if "." in path.rsplit("/", 1)[-1] else ""
    name = f"{base}.{extension if extension in AUDIO_EXTENSIONS else 'mp3'}"
    return name if is_valid_name(name) else None


def fetch_failure(exc: MediaError) -> str:
    """Why a download failed, in words a member understands (no URL, at most a host)."""
    if isinstance(exc, HostNotAllowed):
        return f"Vidgo's files are on a host this bot does not download from ({exc.host})"
    if isinstance(exc, RedirectNotAllowed | TooManyRedirects):
        return "Vidgo's storage sent the download somewhere this bot does not download from"
    if isinstance(exc, InvalidUrl | InsecureUrl):
        return "Vidgo gave a link this bot does not download (only https links are kept)"
    if isinstance(exc, TooLarge):
        return f"a stem is larger than the {exc.limit / 1_048_576:.0f} MB this bot keeps"
    if isinstance(exc, Truncated):
        return "the download was cut off before the end, every time it was tried"
    if isinstance(exc, FetchTimeout):
        return "Vidgo's storage took too long to send the files"
    if isinstance(exc, HttpStatusError) and exc.status in (403, 404, 410):
        return "Vidgo's storage no longer has the files"
    if isinstance(exc, HttpStatusError):
        return f"Vidgo's storage answered with an error (HTTP {exc.status})"
    if isinstance(exc, FetchConnectionError):
        return "Vidgo's storage could not be reached"
    if isinstance(exc, NotAudio):
        return "what Vidgo's storage sent was not audio"
    if isinstance(exc, InsufficientSpace):
        return "the bot's disk is nearly full"
    return "the download failed"


SaveEntry = Callable[[MediaEntry], Awaitable[None]]


class MediaKeeper:
    """Keeps a result's stems and makes its backing track; see the module docstring."""

    def __init__(
        self,
        store: MediaStore,
        fetcher: StemFetcher,
        audio: AudioQueue,
        *,
        retry_seconds: float = FETCH_RETRY_SECONDS,
    ) -> None:
        self.store = store
        self.fetcher = fetcher
        self.audio = audio
        self._retry_seconds = retry_seconds
        self.downloads = 0
        """Files downloaded by this keeper (for tests and metrics)."""
        self.mixes = 0
        """Backing tracks mixed by this keeper."""

    async def keep(
        self,
        key: str,
        stems: Mapping[str, str],
        *,
        keep_backing_vocals: bool = True,
        links_alive: bool = True,
        earlier: MediaEntry | None = None,
        save: SaveEntry | None = None,
    ) -> MediaEntry:
        """Keep every stem of ``stems`` (name -> Vidgo URL) under ``key`` and make the backing.

        ``links_alive`` ``False``: Vidgo's links are past their assumed lifetime, so only what
        is already stored can be kept. ``earlier``: what an interrupted run saved.
        """
        files: dict[str, str] = {}
        problems: list[str] = []
        recorded = dict(earlier.files) if earlier is not None and earlier.key == key else {}
        for stem, url in stems.items():
            name = stem_file_name(stem, url)
            if name is None:
                continue
            found = self._stored_name(key, stem, recorded.get(stem), name)
            if found is not None:
                files[stem] = found
                continue
            if not links_alive:
                problems.append("Vidgo's links have expired")
                continue
            try:
                files[stem] = await self._download(key, name, url)
            except MediaError as exc:
                log.warning("media %s: %s not kept (%s)", key, stem, exc.message)
                problems.append(fetch_failure(exc))
                continue
            if save is not None:
                await save(MediaEntry(key, dict(files)))
        error = f"{KEEP_FAILED}: {problems[0]}." if problems else None
        backing, mix_error = await self._backing(
            key, stems, files, keep_backing_vocals=keep_backing_vocals, earlier=earlier
        )
        if backing is not None and INSTRUMENTAL not in files:
            files[INSTRUMENTAL] = backing
        return MediaEntry(key, files, backing, error or mix_error)

    def _stored_name(self, key: str, stem: str, recorded: str | None, wanted: str) -> str | None:
        """The stored file of ``stem`` (recorded earlier, or landed unrecorded), if any."""
        candidates = [recorded] if recorded else []
        base = canonical_stem_name(stem)
        candidates += [wanted, *(f"{base}.{ext}" for ext in AUDIO_EXTENSIONS)]
        for name in candidates:
            if is_valid_name(name) and self.store.exists(key, name):
                return name
        return None

    async def _download(self, key: str, name: str, url: str) -> str:
        """Download ``url`` as ``name`` (renamed if the bytes are another format); the name."""
        for attempt in range(1, FETCH_TRIES + 1):
            try:
                fetched = await self.fetcher.fetch(url, self.store.target(key, name))
                break
            except FetchError as exc:
                if not exc.retryable or attempt == FETCH_TRIES:
                    raise
                log.info("media %s: %s, trying %s again", key, exc.message, name)
                await asyncio.sleep(self._retry_seconds * attempt)
        self.downloads += 1
        actual = fetched.audio_format
        if actual and actual in AUDIO_EXTENSIONS and not name.endswith(f".{actual}"):
            # The link said one format and the bytes are another: name it by its bytes, so a
            # decoder that goes by the extension reads it right.
            renamed = f"{name.rsplit('.', 1)[0]}.{actual}"
            await self.store.move_in(key, renamed, fetched.path)
            return renamed
        return name

    async def _backing(
        self,
        key: str,
        stems: Mapping[str, str],
        files: dict[str, str],
        *,
        keep_backing_vocals: bool,
        earlier: MediaEntry | None,
    ) -> tuple[str | None, str | None]:
        """The backing track's file name and, when there is none, why."""
        names = {canonical_stem_name(stem) for stem in stems}
        if INSTRUMENTAL in names:
            # Vidgo made one: it is the backing track as it is (re-encoding only loses).
            kept = next(
                (name for s, name in files.items() if canonical_stem_name(s) == INSTRUMENTAL), None
            )
            return kept, None
        if self.store.exists(key, BACKING_NAME):
            return BACKING_NAME, None  # mixed before (this run was interrupted, or a cache hit)
        missing = sorted(canonical_stem_name(s) for s in stems if s not in files)
        if missing:
            return None, f"{MIX_FAILED}: not every stem could be kept."
        paths = {stem: self.store.path_of(key, name) for stem, name in files.items()}
        try:
            chosen = select_backing_stems(paths, keep_backing_vocals=keep_backing_vocals)
        except NothingToMix:
            return None, None  # only vocals came back: nothing to sing over, nothing to say
        assert chosen is not None  # noqa: S101 - no instrumental among the stems (checked)
        try:
            self.store.check_space(sum(path.stat().st_size for path in chosen))
            async with self.store.scratch() as work:
                out = work / BACKING_NAME
                report = await self.audio.run(mix_into, chosen, out)
                await self.store.move_in(key, BACKING_NAME, out)
        except InsufficientSpace:
            return None, f"{MIX_FAILED}: the bot's disk is nearly full."
        except AudioError as exc:
            log.warning("media %s: the backing track could not be mixed (%r)", key, exc)
            return None, f"{MIX_FAILED}: the stems could not be mixed."
        except OSError as exc:
            log.warning("media %s: the backing track could not be stored (%r)", key, exc)
            return None, f"{MIX_FAILED}: it could not be stored."
        self.mixes += 1
        log.info(
            "media %s: backing track of %d stems, %.1f s, gain %.1f dB",
            key,
            report.stems,
            report.duration_s,
            report.gain_db,
        )
        return BACKING_NAME, None
