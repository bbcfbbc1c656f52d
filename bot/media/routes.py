"""Serve stored files over signed links: ``GET``/``HEAD /media/{key}/{name}?expires=&sig=``.

:class:`MediaRoutes` installs on any ``aiohttp.web.Application`` (the public listener). Checks,
in this order, each answered with a one-line ``text/plain`` body and ``Cache-Control:
no-store``:

1. key or name not of the stored shape -> **404** (such a path can never be stored or signed;
   ``..`` and slashes end here);
2. ``expires`` or ``sig`` missing, repeated, malformed or wrong -> **403** ``invalid or missing
   signature``;
3. genuine but past its expiry -> **410** ``link expired`` (Gone: asking again will not help,
   the member needs a fresh link from the bot);
4. no such file (never stored, pruned, or not a plain file) -> **404**.

A good link gets the file through ``web.FileResponse``: ``Accept-Ranges: bytes``, single
ranges (``a-b``, ``a-``, ``-n``) answered 206 with ``Content-Range``, unsatisfiable ones 416
with ``Content-Range: bytes */size``; conditional requests by ETag/Last-Modified. Multi-range
requests are answered 416 (players seek with one range). Headers added here:
``Content-Type`` from the extension, ``Content-Disposition`` (``inline`` for playable audio,
``attachment`` otherwise; the file name is the stored one, already plain ASCII),
``Cache-Control: private, max-age=<seconds left on the link>`` (a link is a private capability:
browsers may keep it until it expires, shared caches may not), ``X-Content-Type-Options:
nosniff`` and ``Referrer-Policy: no-referrer``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime

from aiohttp import web

from bot.media.names import content_type_for, is_playable, is_valid_key, is_valid_name
from bot.media.signing import (
    EXPIRES_PARAM,
    MEDIA_PATH_PREFIX,
    SIGNATURE_PARAM,
    LinkVerdict,
    MediaSigner,
)
from bot.media.store import MediaStore

log = logging.getLogger(__name__)

ROUTE = MEDIA_PATH_PREFIX + "/{key}/{name}"
# "bytes=-0" asks for the last zero bytes: unsatisfiable (RFC 9110 §14.1.1), but aiohttp
# would serve the whole file as a 206, so it is answered here.
_EMPTY_SUFFIX_RANGE = re.compile(r"\s*bytes\s*=\s*-0+\s*", re.IGNORECASE)
_COMMON_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def utc_now() -> datetime:
    """The current time, UTC and aware."""
    return datetime.now(UTC)


def _refuse(status: int, message: str) -> web.Response:
    return web.Response(
        status=status,
        text=message + "\n",
        content_type="text/plain",
        headers={"Cache-Control": "no-store", **_COMMON_HEADERS},
    )


class MediaRoutes:
    """The ``/media/{key}/{name}`` handler for one store and signer; see the module docstring.

    ``clock`` returns the aware current time (injectable for tests).
    """

    def __init__(
        self,
        store: MediaStore,
        signer: MediaSigner,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._store = store
        self._signer = signer
        self._clock = clock

    def install(self, app: web.Application) -> None:
        """Add ``GET`` and ``HEAD`` ``/media/{key}/{name}`` to ``app``."""
        app.router.add_get(ROUTE, self.serve, allow_head=True)

    async def serve(self, request: web.Request) -> web.StreamResponse:
        """Answer one request for a stored file."""
        key = request.match_info["key"]
        name = request.match_info["name"]
        if not is_valid_key(key) or not is_valid_name(name):
            return _refuse(404, "no such file")
        expires = request.query.getall(EXPIRES_PARAM, [])
        signature = request.query.getall(SIGNATURE_PARAM, [])
        if len(expires) != 1 or len(signature) != 1:
            return _refuse(403, "invalid or missing signature")
        now = self._clock()
        verdict = self._signer.check(key, name, expires[0], signature[0], now)
        if verdict is LinkVerdict.BAD_SIGNATURE:
            log.debug("media link with a bad signature for result %s", key)
            return _refuse(403, "invalid or missing signature")
        if verdict is LinkVerdict.EXPIRED:
            return _refuse(410, "link expired")
        stored = self._store.stat(key, name)
        if stored is None:
            return _refuse(404, "no such file")
        if _EMPTY_SUFFIX_RANGE.fullmatch(request.headers.get("Range", "")):
            response = _refuse(416, "range not satisfiable")
            response.headers["Content-Range"] = f"bytes */{stored.size}"
            return response
        seconds_left = max(0, int(expires[0]) - int(now.timestamp()))
        disposition = "inline" if is_playable(name) else "attachment"
        return web.FileResponse(
            stored.path,
            headers={
                "Content-Type": content_type_for(name),
                "Content-Disposition": f'{disposition}; filename="{name}"',
                "Cache-Control": f"private, max-age={seconds_left}",
                **_COMMON_HEADERS,
            },
        )
