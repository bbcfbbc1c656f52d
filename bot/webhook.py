"""The callback listener Vidgo POSTs to: ``POST /vidgo/callback/<token>``.

Callbacks are unsigned, so the body is never trusted: a callback with a known token only makes
its job due now, and the worker re-reads the task from Vidgo's detail endpoint. The listener
answers within milliseconds and checks cheap things first:

* body over the cap -> 413; not ``application/json`` -> 415; not a JSON object -> 400;
* body not received within the listener's body deadline -> 408, and the connection is closed
  (:class:`bot.listener.ListenerLimits`: Vidgo itself waits at most 10 s for an answer);
* token not made by this bot, or of no job -> 404, nothing written;
* known token -> 200 (also for duplicates and late callbacks, which change nothing).

The listener is on the path of every callback, so its answers are made once: each reply body
is built at import and every response reuses it (``bench/ingest.py`` measures the listener
against a bare aiohttp handler; see ``docs/performance.md``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Protocol

from aiohttp import hdrs, web

from bot.engine import CALLBACK_PATH, CallbackOutcome
from bot.listener import Listener, ListenerLimits
from bot.observe import CallbackObserver
from bot.vidgo.results import callback_task_id

log = logging.getLogger(__name__)

# A derived token is ``<callback key>.<HMAC>``; jobs from before derived tokens have random
# URL-safe tokens without a dot.
_TOKEN = re.compile(r"^[A-Za-z0-9_.-]{16,96}$")
_JSON = "application/json"


class CallbackSink(Protocol):
    """What the listener needs from the engine."""

    async def on_callback(self, token: str, task_hint: str | None = None) -> CallbackOutcome: ...


def _body(status: int, message: str) -> bytes:
    return json.dumps({"ok": status < 300, "message": message}).encode()


# Every answer the listener gives, encoded once (status, message) -> body.
_BODIES: dict[tuple[int, str], bytes] = {
    (status, message): _body(status, message)
    for status, message in (
        (404, "unknown callback"),
        (413, "body too large"),
        (415, "expected application/json"),
        (408, "body not received in time"),
        (400, "body is not valid JSON"),
        (400, "body must be a JSON object"),
        *((200, outcome.value) for outcome in CallbackOutcome),
    )
}


def _reply(status: int, message: str) -> web.Response:
    body = _BODIES.get((status, message))
    if body is None:  # pragma: no cover - every message the listener sends is listed above
        body = _body(status, message)
    return web.Response(status=status, body=body, content_type=_JSON)


class CallbackServer(Listener):
    """An aiohttp server for Vidgo callbacks (and, if configured, the health endpoints)."""

    def __init__(
        self,
        sink: CallbackSink,
        *,
        host: str,
        port: int,
        max_body: int = 64 * 1024,
        observer: CallbackObserver | None = None,
        limits: ListenerLimits | None = None,
    ) -> None:
        super().__init__(
            web.Application(client_max_size=max_body),
            host=host,
            port=port,
            name="callback listener",
            limits=limits,
        )
        self._sink = sink
        self._observer = observer
        self._max_body = max_body
        self.app.router.add_post(CALLBACK_PATH + "{token}", self._handle)

    async def _handle(self, request: web.Request) -> web.Response:
        label, response = await self._answer(request)
        if self._observer is not None:
            self._observer.callback(label)
        return response

    async def _answer(self, request: web.Request) -> tuple[str, web.Response]:
        """How the request was taken (a label for metrics) and the reply."""
        token = request.match_info["token"]
        if not _TOKEN.match(token):
            return "unknown", _reply(404, "unknown callback")
        length = request.content_length
        if length is not None and length > self._max_body:
            return "too_large", _reply(413, "body too large")
        # The usual header is exactly "application/json": compared as is, it needs no parse.
        if request.headers.get(hdrs.CONTENT_TYPE) != _JSON and request.content_type != _JSON:
            return "wrong_type", _reply(415, "expected application/json")
        try:
            if request.content.is_eof():
                # The whole body came with the head (the usual small callback): no waiting,
                # so no deadline to arm on the hot path.
                raw = await request.read()
            else:
                async with asyncio.timeout(self.limits.body_timeout):
                    raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return "too_large", _reply(413, "body too large")
        except TimeoutError:
            # The rest of the body may never come: answer and close instead of waiting.
            response = _reply(408, "body not received in time")
            response.force_close()
            return "too_slow", response
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            return "bad_json", _reply(400, "body is not valid JSON")
        if not isinstance(body, dict):
            return "bad_json", _reply(400, "body must be a JSON object")
        # The task id the body names is only a hint for a job that never learned its own.
        outcome = await self._sink.on_callback(token, callback_task_id(body))
        if outcome is CallbackOutcome.UNKNOWN:
            return outcome.value, _reply(404, "unknown callback")
        return outcome.value, _reply(200, outcome.value)
