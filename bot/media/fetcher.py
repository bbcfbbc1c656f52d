"""Download one result file from Vidgo's storage, safely.

:class:`StemFetcher` is given only Vidgo result URLs, but it is built to be safe with any URL:

* **allowed hosts only** — exact host match (``bot.media.hosts``), https except to loopback;
  a refused URL is refused before any DNS look-up or connection;
* **redirects by hand** — never automatic; each ``Location`` is checked like the first URL, at
  most ``max_redirects`` hops;
* **size cap** — a ``Content-Length`` over the cap is refused before the body is read; a body
  that grows past the cap without one is cut off and deleted;
* **timeouts** — connecting, between two reads, and one deadline for the whole download
  (redirects included);
* **whole or nothing** — the body streams to a temporary file that is renamed into place only
  when every announced byte arrived (``bot.media.atomic``); a short body or a cut connection
  is :class:`~bot.media.errors.Truncated` and leaves no file;
* **audio only** (on by default) — the first bytes must look like an audio container
  (``bot.media.sniff``); an HTML error page served with 200 is refused.

Every failure is a :class:`~bot.media.errors.FetchError` subclass. The fetcher never retries:
the caller decides, helped by ``FetchError.retryable``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from yarl import URL

from bot.media.atomic import DownloadTarget, FileTarget, PartFile
from bot.media.errors import (
    FetchConnectionError,
    FetchError,
    FetchTimeout,
    HttpStatusError,
    InvalidUrl,
    NotAudio,
    RedirectNotAllowed,
    TooLarge,
    TooManyRedirects,
    Truncated,
)
from bot.media.hosts import check_parsed, check_url, normalize_host
from bot.media.sniff import SNIFF_BYTES, sniff_audio

log = logging.getLogger(__name__)

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Bytes gathered before one hop to the writer thread: few thread hops, little memory.
WRITE_BATCH_BYTES = 256 * 1024
READ_CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class FetchResult:
    """A finished download.

    ``audio_format`` is what the first bytes looked like (``mp3``, ``wav``, ...; ``None`` when
    the audio check is off); ``content_type`` is what the server claimed (untrusted, for logs);
    ``final_url`` is the URL the bytes came from after redirects.
    """

    path: Path
    size: int
    sha256: str
    audio_format: str | None
    content_type: str | None
    final_url: str


class _Attempt:
    """Where one download stands: the URL being fetched and the part files it opened."""

    def __init__(self, url: URL) -> None:
        self.url = url
        self.host = normalize_host(url.host or "")
        self.parts: list[PartFile] = []

    def move_to(self, url: URL) -> None:
        self.url = url
        self.host = normalize_host(url.host or "")


@dataclass(frozen=True, slots=True)
class _Received:
    part: PartFile
    audio_format: str | None
    content_type: str | None


class StemFetcher:
    """Streams result files to disk from allowed hosts only; see the module docstring.

    ``session`` is shared and not closed here. Timeouts are in seconds.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        allowed_hosts: Iterable[str],
        max_bytes: int,
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
        total_timeout: float = 300.0,
        max_redirects: int = 3,
        require_audio: bool = True,
    ) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        if min(connect_timeout, read_timeout, total_timeout) <= 0:
            raise ValueError("timeouts must be positive")
        if max_redirects < 0:
            raise ValueError("max_redirects must not be negative")
        self._session = session
        self._allowed = frozenset(normalize_host(h) for h in allowed_hosts)
        if not self._allowed:
            raise ValueError("allowed_hosts must name at least one host")
        self._max_bytes = max_bytes
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._total_timeout = total_timeout
        self._max_redirects = max_redirects
        self._require_audio = require_audio

    @property
    def allowed_hosts(self) -> frozenset[str]:
        """The exact hosts this fetcher may connect to."""
        return self._allowed

    @property
    def max_bytes(self) -> int:
        """The size cap of one file."""
        return self._max_bytes

    async def fetch_to_path(self, url: str, path: Path) -> FetchResult:
        """Download ``url`` to ``path`` (replacing any file there only on success)."""
        return await self.fetch(url, FileTarget(path))

    async def fetch(self, url: str, target: DownloadTarget) -> FetchResult:
        """Download ``url`` into ``target``; on any failure nothing appears there.

        The file is committed after the network part, outside the total deadline. If the
        calling task is cancelled during that last rename, the complete file may still land.
        """
        attempt = _Attempt(check_url(url, self._allowed))
        deadline = asyncio.timeout(self._total_timeout)
        try:
            async with deadline:
                received = await self._follow(attempt, target)
            written = await asyncio.to_thread(received.part.commit)
        except FetchError:
            raise
        except aiohttp.ConnectionTimeoutError:
            raise FetchTimeout("connect", attempt.host, self._connect_timeout) from None
        except TimeoutError:
            if deadline.expired():
                raise FetchTimeout("total", attempt.host, self._total_timeout) from None
            raise FetchTimeout("read", attempt.host, self._read_timeout) from None
        except aiohttp.InvalidURL:
            # aiohttp's own stricter check (e.g. a non-canonical IP literal) refused it.
            raise InvalidUrl("not a URL that can be connected to") from None
        except aiohttp.ClientError as exc:
            raise FetchConnectionError(attempt.host, _reason(exc)) from None
        finally:
            # Runs on every failure (and after a commit, where it does nothing): no part file
            # outlives a failed download, whatever raised and however the task was cancelled.
            for part in attempt.parts:
                part.discard()
        log.debug("fetched %s bytes from %s", written.size, attempt.host)
        return FetchResult(
            path=written.path,
            size=written.size,
            sha256=written.sha256,
            audio_format=received.audio_format,
            content_type=received.content_type,
            final_url=str(attempt.url),
        )

    async def _follow(self, attempt: _Attempt, target: DownloadTarget) -> _Received:
        """Request, following allowed redirects by hand, and receive the body."""
        timeout = aiohttp.ClientTimeout(
            total=None, connect=self._connect_timeout, sock_read=self._read_timeout
        )
        for _hop in range(self._max_redirects + 1):
            async with self._session.get(
                attempt.url,
                allow_redirects=False,
                timeout=timeout,
                # The size checks count the bytes as sent; no compression wanted.
                headers={"Accept-Encoding": "identity"},
            ) as response:
                if response.status in REDIRECT_STATUSES:
                    attempt.move_to(self._next_hop(attempt.url, response))
                    continue
                if response.status != 200:
                    raise HttpStatusError(response.status, attempt.host)
                return await self._receive(response, target, attempt)
        raise TooManyRedirects(self._max_redirects)

    def _next_hop(self, current: URL, response: aiohttp.ClientResponse) -> URL:
        """The checked target of a redirect, or :class:`RedirectNotAllowed`."""
        location = response.headers.get("Location")
        if not location:
            raise RedirectNotAllowed("no Location header")
        try:
            target = current.join(URL(location))
            return check_parsed(target, self._allowed)
        except (ValueError, TypeError):
            raise RedirectNotAllowed("malformed Location") from None
        except FetchError as exc:
            # The same check as the first URL; reworded so the log says it was a redirect.
            raise RedirectNotAllowed(exc.message) from None

    async def _receive(
        self, response: aiohttp.ClientResponse, target: DownloadTarget, attempt: _Attempt
    ) -> _Received:
        """Stream the body into a new part file (also kept in ``attempt`` for clean-up)."""
        announced = response.content_length
        encoded = response.headers.get("Content-Encoding", "identity").lower() not in (
            "",
            "identity",
        )
        if announced is not None and announced > self._max_bytes:
            raise TooLarge(self._max_bytes, announced)
        part = await asyncio.to_thread(target.open_part, announced)
        attempt.parts.append(part)
        audio_format: str | None = None
        sniffed = not self._require_audio
        batch = bytearray()
        received = 0
        try:
            async for chunk in response.content.iter_chunked(READ_CHUNK_BYTES):
                received += len(chunk)
                if received > self._max_bytes:
                    raise TooLarge(self._max_bytes)
                batch += chunk
                if not sniffed and len(batch) >= SNIFF_BYTES:
                    audio_format = self._sniff(bytes(batch))
                    sniffed = True
                if len(batch) >= WRITE_BATCH_BYTES and sniffed:
                    await asyncio.to_thread(part.write, bytes(batch))
                    batch.clear()
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError):
            raise Truncated(received, None if encoded else announced) from None
        except aiohttp.ClientOSError:
            raise Truncated(received, None if encoded else announced) from None
        if not encoded and announced is not None and received != announced:
            raise Truncated(received, announced)
        if not sniffed:
            audio_format = self._sniff(bytes(batch))  # a body shorter than the sniff window
        if batch:
            await asyncio.to_thread(part.write, bytes(batch))
        return _Received(part, audio_format, response.headers.get("Content-Type"))

    def _sniff(self, head: bytes) -> str:
        audio_format = sniff_audio(head[:SNIFF_BYTES])
        if audio_format is None:
            raise NotAudio()
        return audio_format


def _reason(exc: BaseException) -> str:
    """A short cause without the URL (aiohttp's messages may quote it with its query)."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        detail = exc.os_error.strerror if exc.os_error is not None else None
        return f"connection failed ({detail})" if detail else "connection failed"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "connection closed before a reply"
    if isinstance(exc, aiohttp.ClientResponseError):
        return "invalid HTTP reply"
    return "connection error"
