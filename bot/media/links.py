"""Links members are given to kept files, and copies of those files that fit an upload limit.

* :class:`MediaLinks` makes signed, expiring URLs to stored files on the bot's public listener
  (``PUBLIC_URL``). A link lives ``MEDIA_LINK_TTL_HOURS``, but never past the day its file is
  due to be deleted (the file's time plus ``MEDIA_RETENTION_DAYS``), so a link never outlives
  what it names. Without a public URL there are no links (``None``): the bot keeps the files
  but has no address members could reach.
* :class:`UploadFitter` gives a stored audio file that fits an upload limit: the file itself
  when it fits, else a re-encoded copy (``bot.audio.fit_to_limit``, run in the audio pool and
  kept beside the original as ``<name>_fit<KiB>k.mp3``, so the next delivery to a place with
  the same limit reuses it), or ``None`` when even the lowest acceptable bitrate is too big.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bot.audio import AudioError
from bot.media.errors import MediaError
from bot.media.names import is_valid_name
from bot.media.signing import MediaSigner
from bot.media.store import MediaStore, StoredFile
from bot.media.work import AudioQueue, fit_into

log = logging.getLogger(__name__)

DAY = 86400.0
HOUR = 3600.0


class MediaLinks:
    """Signed links to stored files; see the module docstring."""

    def __init__(
        self,
        signer: MediaSigner,
        store: MediaStore,
        *,
        public_url: str | None,
        ttl_hours: float,
        retention_days: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.signer = signer
        self.store = store
        self.public_url = public_url
        self.ttl_hours = ttl_hours
        self.retention_days = retention_days
        self._clock = clock

    @property
    def enabled(self) -> bool:
        """Links can be given (a public URL is configured)."""
        return self.public_url is not None

    def expiry_of(self, stored: StoredFile) -> float:
        """When a link made now to ``stored`` stops working (epoch seconds)."""
        expires = self._clock() + self.ttl_hours * HOUR
        if self.retention_days:
            expires = min(expires, stored.modified.timestamp() + self.retention_days * DAY)
        return expires

    def url_for(self, key: str, name: str) -> str | None:
        """A fresh signed URL to a stored file; ``None`` without a public URL, for a file
        that is not (or no longer) stored, or one about to be deleted."""
        if self.public_url is None:
            return None
        try:
            stored = self.store.stat(key, name)
        except MediaError:
            return None
        if stored is None:
            return None
        expires = self.expiry_of(stored)
        if expires - self._clock() < 60:
            return None  # the file goes within the minute: a link would only disappoint
        return self.signer.url_for(
            self.public_url, key, name, expires_at=datetime.fromtimestamp(expires, UTC)
        )

    def ttl(self) -> timedelta:
        """How long a link lives at most."""
        return timedelta(hours=self.ttl_hours)


class UploadFitter:
    """Stored audio that fits an upload limit; see the module docstring."""

    def __init__(self, store: MediaStore, audio: AudioQueue) -> None:
        self.store = store
        self.audio = audio

    async def fitting(self, key: str, name: str, limit_bytes: int) -> StoredFile | None:
        """The stored file, or a copy of it, of at most ``limit_bytes``; ``None`` if none can
        be made (too long for the floor bitrate), the file is gone, or the audio is unreadable.
        """
        try:
            stored = self.store.stat(key, name)
        except MediaError:
            return None
        if stored is None or limit_bytes <= 0:
            return None
        if stored.size <= limit_bytes:
            return stored
        fitted_name = f"{name.rsplit('.', 1)[0]}_fit{limit_bytes // 1024}k.mp3"
        if not is_valid_name(fitted_name):
            return None
        existing = self.store.stat(key, fitted_name)
        if existing is not None and existing.size <= limit_bytes:
            return existing
        try:
            async with self.store.scratch() as work:
                out = work / fitted_name
                fit = await self.audio.run(fit_into, stored.path, out, limit_bytes)
                if fit is None:
                    return None
                return await self.store.move_in(key, fitted_name, out)
        except (AudioError, MediaError, OSError) as exc:
            log.warning(
                "media %s: %s could not be fitted to %d bytes (%r)", key, name, limit_bytes, exc
            )
            return None
