"""One aiohttp listener's life cycle: bind (port 0 picks a free one), serve, stop.

The callback listener and the admin listener are both one of these with their own routes, and
both hold every connection to three deadlines (:class:`ListenerLimits`), so a client that
connects and then stalls cannot hold a socket and a handler for long:

* **request head** — the request line and headers must be complete within
  ``header_timeout`` of the connection opening, or of the first byte of a next request on a
  kept-alive connection. aiohttp has no such deadline of its own, so it is kept at the
  protocol level: each connection's protocol is wrapped (:class:`_HeadDeadline`), which
  notes when a head starts (the connection opens, or the next request's first bytes arrive
  without completing its head) and forgets it once aiohttp has parsed the head; one timer
  for the whole listener (:class:`_HeadClock`) closes every connection whose head is still
  incomplete at its deadline. Bytes trickling in do not extend it (that is the slowloris
  attack). The usual request, whose head arrives in one piece on a kept-alive connection,
  costs the deadline two attribute checks and no timer.
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
from collections import deque
from dataclasses import dataclass

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger(__name__)


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


class _HeadClock:
    """The request-head deadlines of one listener's connections, kept by one timer.

    A head starts when a connection opens, or when the first bytes of a next request arrive
    on an idle kept-alive connection without completing its head (rare: a head usually comes
    in one piece). Heads start in time order and all have the same timeout, so their
    deadlines are kept in a FIFO queue, and one timer, armed at the earliest deadline, closes
    every connection whose head is still incomplete at its deadline. A head that completes
    only clears its connection's start time; its queue entry is dropped when its deadline
    passes. Nothing is scheduled or cancelled per request.
    """

    def __init__(self, timeout: float, name: str) -> None:
        self.timeout = timeout
        self._name = name
        self._queue: deque[tuple[float, _HeadDeadline, float]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, connection: _HeadDeadline, since: float) -> None:
        """``connection`` started a head at ``since`` (loop time)."""
        deadline = since + self.timeout
        self._queue.append((deadline, connection, since))
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_at(deadline, self._expire)

    def _expire(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        queue = self._queue
        while queue and queue[0][0] <= now:
            _, connection, since = queue.popleft()
            if connection.head_since == since:  # the same head, still incomplete
                connection.close_stalled(self._name, self.timeout)
        if queue:
            self._timer = loop.call_at(queue[0][0], self._expire)

    def stop(self) -> None:
        """Forget every deadline (the listener is stopping)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._queue.clear()


class _HeadDeadline(asyncio.Protocol):
    """Wraps aiohttp's protocol for one connection to time its request heads.

    ``head_since`` is the loop time a request head started (``None`` while no head is
    pending: aiohttp has a request, or the connection idles between requests). aiohttp's own
    state tells the two apart: after it has parsed a chunk, a complete head is in its queue
    of messages, and an idle connection has a waiter for the next one.
    """

    __slots__ = ("_clock", "_inner", "_transport", "head_since")

    def __init__(self, inner: RequestHandler, clock: _HeadClock) -> None:
        self._inner = inner
        self._clock = clock
        self._transport: asyncio.Transport | None = None
        self.head_since: float | None = None

    # -- asyncio.Protocol, forwarded to aiohttp ------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start the first head's deadline, then let aiohttp set the connection up."""
        assert isinstance(transport, asyncio.Transport)  # noqa: S101 - TCP only
        self._transport = transport
        self.head_since = since = asyncio.get_running_loop().time()
        self._clock.watch(self, since)
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        """Let aiohttp parse; then a complete head ends the deadline, a partial one starts it."""
        inner = self._inner
        inner.data_received(data)
        if inner._messages:  # a complete head (aiohttp has not taken it yet)
            self.head_since = None
        elif self.head_since is None and inner._waiter is not None:
            # Idle, and the next request's head began without completing: its deadline runs
            # from this first byte, and more bytes trickling in do not move it.
            self.head_since = since = asyncio.get_running_loop().time()
            self._clock.watch(self, since)

    def eof_received(self) -> bool | None:
        """Forwarded; ``None`` lets asyncio close the transport, as aiohttp expects."""
        self._inner.eof_received()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the head, then tell aiohttp."""
        self.head_since = None
        self._transport = None
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        """Forwarded (flow control)."""
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        """Forwarded (flow control)."""
        self._inner.resume_writing()

    # -- driven by the clock ---------------------------------------------------------------

    def close_stalled(self, name: str, timeout: float) -> None:
        """The head's deadline passed with the head incomplete: close the connection."""
        if self._transport is None:
            return
        # DEBUG only: under a slowloris flood an INFO line per connection would flood the log.
        log.debug("%s: closed a connection whose request head took over %g s", name, timeout)
        self.head_since = None
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
        self._heads = _HeadClock(self.limits.header_timeout, name)

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

        heads = self._heads

        def connection() -> _HeadDeadline:
            return _HeadDeadline(server(), heads)

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
        self._heads.stop()
