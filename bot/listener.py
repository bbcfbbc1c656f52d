"""One aiohttp listener's life cycle: bind (port 0 picks a free one), serve, stop.

The callback listener and the admin listener are both one of these with their own routes, and
both hold every connection to three deadlines (:class:`ListenerLimits`), so a client that
connects and then stalls cannot hold a socket and a handler for long:

* **request head** — the request line and headers must be complete within
  ``header_timeout`` of the connection opening, or of the first byte of a next request on a
  kept-alive connection. aiohttp has no such deadline of its own, so each connection gets a
  timer at the protocol level (:class:`_HeadDeadline`): it wraps aiohttp's protocol, starts
  when the connection opens (or the next request's first byte arrives), is stopped by a
  middleware once aiohttp hands the parsed request to the application, and closes the
  connection when it fires. Bytes trickling in do not extend it (that is the slowloris attack).
* **body** — ``body_timeout`` for reading a request body, enforced by the handler that reads
  one (the callback listener answers 408 and closes the connection); also aiohttp's lingering
  read of a body a handler left unread.
* **keep-alive** — an idle kept-alive connection is closed after ``keepalive_timeout``
  (aiohttp's own timer).
"""

from __future__ import annotations

import asyncio
import errno as errno_codes
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class ListenerLimits:
    """Deadlines for every connection, in seconds (see the module docstring).

    The body deadline stays well under the 10 s Vidgo waits for an answer to a callback, so a
    slow client is cut off before Vidgo would give up on a real one.
    """

    header_timeout: float = 5.0
    body_timeout: float = 5.0
    keepalive_timeout: float = 10.0

    def __post_init__(self) -> None:
        if min(self.header_timeout, self.body_timeout, self.keepalive_timeout) <= 0:
            raise ValueError("listener timeouts must be positive")


class ListenerBindError(OSError):
    """The listener could not bind its address (taken, not local, not allowed)."""

    def __init__(self, name: str, host: str, port: int, cause: OSError) -> None:
        code = cause.errno if cause.errno is not None else errno_codes.EIO
        reason = os.strerror(code).lower() if cause.errno is not None else str(cause)
        super().__init__(code, f"the {name} cannot listen on {host}:{port}: {reason}")
        self.name = name
        self.host = host
        self.port = port


class _HeadDeadline(asyncio.Protocol):
    """Wraps aiohttp's protocol for one connection and closes it if a request head stalls.

    States: ``head`` (waiting for a request head; the timer runs), ``busy`` (the application
    has the request; no timer), ``idle`` (between requests; aiohttp's keep-alive timer runs,
    and the first byte of the next request starts ``head`` again).
    """

    def __init__(
        self,
        inner: RequestHandler,
        timeout: float,
        registry: dict[RequestHandler, _HeadDeadline],
        name: str,
    ) -> None:
        self._inner = inner
        self._timeout = timeout
        self._registry = registry
        self._name = name
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._state = "head"

    # -- asyncio.Protocol, forwarded to aiohttp ------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start the head timer, then let aiohttp set the connection up."""
        assert isinstance(transport, asyncio.Transport)  # noqa: S101 - TCP only
        self._transport = transport
        self._registry[self._inner] = self
        self._arm()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        """The first byte after an idle spell starts the next request head's deadline."""
        if self._state == "idle" and data:
            self._state = "head"
            self._arm()
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        """Forwarded; ``None`` lets asyncio close the transport, as aiohttp expects."""
        self._inner.eof_received()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the timer and forget the connection, then tell aiohttp."""
        self._disarm()
        self._registry.pop(self._inner, None)
        self._transport = None
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        """Forwarded (flow control)."""
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        """Forwarded (flow control)."""
        self._inner.resume_writing()

    # -- driven by the middleware ----------------------------------------------------------

    def request_started(self) -> None:
        """aiohttp parsed a request head and handed it to the application."""
        self._state = "busy"
        self._disarm()

    def request_finished(self) -> None:
        """The application answered; the connection idles until the next request."""
        self._state = "idle"
        self._disarm()

    # -- the timer -------------------------------------------------------------------------

    def _arm(self) -> None:
        self._disarm()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._timeout, self._expire)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        if self._state != "head" or self._transport is None:
            return
        # DEBUG only: under a slowloris flood an INFO line per connection would flood the log.
        log.debug(
            "%s: closed a connection whose request head took over %g s",
            self._name,
            self._timeout,
        )
        self._transport.close()


class Listener:
    """Serves ``app`` on ``host:port`` between :meth:`start` and :meth:`stop`."""

    def __init__(
        self,
        app: web.Application,
        *,
        host: str,
        port: int,
        name: str,
        limits: ListenerLimits | None = None,
    ) -> None:
        self.app = app
        self.limits = limits or ListenerLimits()
        self._host = host
        self._port = port
        self._name = name
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self._bound_port: int | None = None
        self._connections: dict[RequestHandler, _HeadDeadline] = {}
        # Outermost middleware: it sees every request aiohttp parsed, 404s included.
        app.middlewares.insert(0, self._track_requests)

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        if self._bound_port is None:
            raise RuntimeError("server not started")
        return self._bound_port

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running listener (for local probes and tests)."""
        host = "127.0.0.1" if self._host in ("0.0.0.0", "", "::") else self._host  # noqa: S104
        return f"http://{host}:{self.port}"

    @web.middleware
    async def _track_requests(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        deadline = self._connections.get(request.protocol)
        if deadline is not None:
            deadline.request_started()
        try:
            return await handler(request)
        finally:
            if deadline is not None:
                deadline.request_finished()

    async def start(self) -> None:
        """Bind and serve; :class:`ListenerBindError` when the address cannot be bound."""
        runner = web.AppRunner(
            self.app,
            access_log=None,
            handle_signals=False,
            keepalive_timeout=self.limits.keepalive_timeout,
            # A body a handler left unread is drained for at most the body deadline.
            lingering_time=self.limits.body_timeout,
        )
        await runner.setup()
        server = runner.server
        assert server is not None  # noqa: S101 - set by setup()

        def connection() -> _HeadDeadline:
            return _HeadDeadline(
                server(), self.limits.header_timeout, self._connections, self._name
            )

        try:
            self._server = await asyncio.get_running_loop().create_server(
                connection, self._host, self._port
            )
        except OSError as exc:
            await runner.cleanup()  # e.g. the port is taken: leave nothing half-open
            raise ListenerBindError(self._name, self._host, self._port, exc) from exc
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._bound_port = int(self._server.sockets[0].getsockname()[1])
        log.info("%s on %s:%s", self._name, self._host, self._bound_port)

    async def stop(self) -> None:
        """Stop accepting, close every connection (in-flight requests may finish), close."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        if server is not None:
            await server.wait_closed()
