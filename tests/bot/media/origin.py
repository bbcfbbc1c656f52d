"""A scripted HTTP/1.1 origin on 127.0.0.1 that serves test audio and misbehaves on demand.

It speaks raw HTTP over asyncio streams, so a test can make it do what a real server does
when things go wrong: announce more bytes than it sends, cut the connection mid-body, never
answer, trickle one byte at a time. Each route is an ``async`` function given the request
line's path and the stream writer; the origin counts connections and requests per path.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self

Handler = Callable[["Origin", str, asyncio.StreamWriter], Awaitable[None]]

REASONS = {
    200: "OK",
    204: "No Content",
    301: "Moved Permanently",
    302: "Found",
    303: "See Other",
    307: "Temporary Redirect",
    308: "Permanent Redirect",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def audio_bytes(size: int, seed: int = 0) -> bytes:
    """``size`` bytes that start like an MP3 (an ID3 tag) and are otherwise random."""
    head = b"ID3\x03\x00\x00\x00\x00\x00\x00"
    body = random.Random(seed).randbytes(max(0, size - len(head)))
    return (head + body)[:size]


def head_bytes(status: int, headers: dict[str, str]) -> bytes:
    """A status line and headers, ready to write."""
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


class Origin:
    """The scripted server; use ``async with Origin() as origin`` and ``origin.route(...)``."""

    def __init__(self) -> None:
        self.connections = 0
        self.hits: Counter[str] = Counter()
        self.routes: dict[str, Handler] = {}
        self.closing = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.closing.set()
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        """An absolute URL to ``path`` on this origin."""
        return f"http://{host}:{self.port}{path}"

    def route(self, path: str, handler: Handler) -> None:
        """Serve ``path`` (exact match, query included) with ``handler``."""
        self.routes[path] = handler

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.connections += 1
        try:
            while not self.closing.is_set():
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                path = head.split(b"\r\n", 1)[0].split(b" ")[1].decode("latin-1")
                self.hits[path] = self.hits[path] + 1
                handler = self.routes.get(path, not_found)
                await handler(self, path, writer)
                if writer.is_closing():
                    return
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            self._writers.discard(writer)
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


# -- ready-made handlers --------------------------------------------------------------------


async def not_found(origin: Origin, path: str, writer: asyncio.StreamWriter) -> None:
    """404 with a small body."""
    writer.write(head_bytes(404, {"Content-Length": "9"}) + b"not found")
    await writer.drain()


def serve(
    body: bytes, *, status: int = 200, content_type: str = "audio/mpeg", length: bool = True
) -> Handler:
    """Send ``body`` whole: with ``Content-Length``, or chunked when ``length`` is false."""

    async def handler(origin: Origin, path: str, writer: asyncio.StreamWriter) -> None:
        headers = {"Content-Type": content_type}
        if length:
            headers["Content-Length"] = str(len(body))
            writer.write(head_bytes(status, headers) + body)
        else:
            headers["Transfer-Encoding"] = "chunked"
            writer.write(head_bytes(status, headers))
            for start in range(0, len(body), 4096):
                writer.write(chunk(body[start : start + 4096]))
            writer.write(b"0\r\n\r\n")
        await writer.drain()

    return handler


def redirect(location: str, status: int = 302) -> Handler:
    """Answer with a redirect to ``location`` (an empty one sends no ``Location`` header)."""

    async def handler(origin: Origin, path: str, writer: asyncio.StreamWriter) -> None:
        headers = {"Content-Length": "0"}
        if location:
            headers["Location"] = location
        writer.write(head_bytes(status, headers))
        await writer.drain()

    return handler


def announce_then_cut(body: bytes, sent: int, *, length: bool = True) -> Handler:
    """Announce ``body`` (by length, or chunked), send ``sent`` bytes of it, then hang up."""

    async def handler(origin: Origin, path: str, writer: asyncio.StreamWriter) -> None:
        if length:
            head = head_bytes(200, {"Content-Length": str(len(body))})
            writer.write(head + body[:sent])
        else:
            writer.write(head_bytes(200, {"Transfer-Encoding": "chunked"}) + chunk(body[:sent]))
        await writer.drain()
        writer.close()

    return handler


def never_answer() -> Handler:
    """Read the request and say nothing until the origin closes."""

    async def handler(origin: Origin, path: str, writer: asyncio.StreamWriter) -> None:
        await origin.closing.wait()

    return handler


def stall_after(body: bytes, sent: int) -> Handler:
    """Send headers and ``sent`` bytes of ``body``, then nothing more until the origin closes."""

    async def handler(origin: Origin, path: str, writer: asyncio.StreamWriter) -> None:
        writer.write(head_bytes(200, {"Content-Length": str(len(body))}) + body[:sent])
        await writer.drain()
        await origin.closing.wait()

    return handler


def trickle(body: bytes, interval: float) -> Handler:
    """Send ``body`` one byte every ``interval`` seconds (each read well inside a read timeout)."""

    async def handler(origin: Origin, path: str, writer: asyncio.StreamWriter) -> None:
        writer.write(head_bytes(200, {"Content-Length": str(len(body))}))
        for index in range(len(body)):
            writer.write(body[index : index + 1])
            await writer.drain()
            await asyncio.sleep(interval)

    return handler


def endless(piece: bytes) -> Handler:
    """A chunked body of ``piece`` repeated without end (until the client hangs up)."""

    async def handler(origin: Origin, path: str, writer: asyncio.StreamWriter) -> None:
        writer.write(head_bytes(200, {"Transfer-Encoding": "chunked"}))
        while not origin.closing.is_set():
            writer.write(chunk(piece))
            await writer.drain()
            await asyncio.sleep(0)

    return handler


class Gate:
    """A handler that sends half the body, then waits for :meth:`open` before the rest."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.half_sent = asyncio.Event()
        self._open = asyncio.Event()

    def open(self) -> None:
        """Let the rest of the body go."""
        self._open.set()

    async def __call__(self, origin: Origin, path: str, writer: asyncio.StreamWriter) -> None:
        half = len(self.body) // 2
        writer.write(head_bytes(200, {"Content-Length": str(len(self.body))}) + self.body[:half])
        await writer.drain()
        self.half_sent.set()
        await self._open.wait()
        writer.write(self.body[half:])
        await writer.drain()
