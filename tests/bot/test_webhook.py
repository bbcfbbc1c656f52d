"""The callback listener over real HTTP: cheap checks first, unknown tokens write nothing,
and a client that stalls (head, body, idle keep-alive) is cut off at a deadline."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.engine import CallbackOutcome
from bot.listener import ListenerLimits
from bot.webhook import CallbackServer
from tests.bot.engine_harness import DONE, KNOWN, RecordingSink


@pytest.fixture
async def server() -> AsyncIterator[tuple[CallbackServer, RecordingSink, aiohttp.ClientSession]]:
    sink = RecordingSink()
    srv = CallbackServer(sink, host="127.0.0.1", port=0, max_body=4096)
    await srv.start()
    async with aiohttp.ClientSession() as session:
        yield srv, sink, session
    await srv.stop()


def url(srv: CallbackServer, token: str) -> str:
    return f"http://127.0.0.1:{srv.port}/vidgo/callback/{token}"


async def test_known_token_is_accepted(
    server: tuple[CallbackServer, RecordingSink, aiohttp.ClientSession],
) -> None:
    srv, sink, session = server
    async with session.post(url(srv, KNOWN), json={"code": 200, "data": {}}) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("application/json")
    assert sink.tokens == [KNOWN]


async def test_late_or_duplicate_callback_is_answered_200(
    server: tuple[CallbackServer, RecordingSink, aiohttp.ClientSession],
) -> None:
    srv, _, session = server
    async with session.post(url(srv, DONE), json={"task_id": "x"}) as resp:
        assert resp.status == 200


async def test_unknown_token_is_404(
    server: tuple[CallbackServer, RecordingSink, aiohttp.ClientSession],
) -> None:
    srv, _, session = server
    async with session.post(url(srv, "u" * 22), json={}) as resp:
        assert resp.status == 404


@pytest.mark.parametrize("token", ["short", "x" * 97, "bad%20chars-aaaaaaaaaaaa"])
async def test_malformed_token_is_404_without_lookup(
    server: tuple[CallbackServer, RecordingSink, aiohttp.ClientSession], token: str
) -> None:
    srv, sink, session = server
    async with session.post(url(srv, token), json={}) as resp:
        assert resp.status == 404
    assert sink.tokens == []


async def test_wrong_content_type_is_415(
    server: tuple[CallbackServer, RecordingSink, aiohttp.ClientSession],
) -> None:
    srv, sink, session = server
    async with session.post(
        url(srv, KNOWN), data=b"{}", headers={"Content-Type": "text/plain"}
    ) as resp:
        assert resp.status == 415
    assert sink.tokens == []


async def test_oversized_body_is_413(
    server: tuple[CallbackServer, RecordingSink, aiohttp.ClientSession],
) -> None:
    srv, sink, session = server
    body = b'{"pad": "' + b"a" * 10_000 + b'"}'
    async with session.post(
        url(srv, KNOWN), data=body, headers={"Content-Type": "application/json"}
    ) as resp:
        assert resp.status == 413
    assert sink.tokens == []


async def test_oversized_chunked_body_is_413(
    server: tuple[CallbackServer, RecordingSink, aiohttp.ClientSession],
) -> None:
    srv, sink, session = server

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"pad": "'
        for _ in range(20):
            yield b"a" * 1000
        yield b'"}'

    async with session.post(
        url(srv, KNOWN), data=chunks(), headers={"Content-Type": "application/json"}
    ) as resp:
        assert resp.status == 413
    assert sink.tokens == []


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'"text"', b"[" * 3000 + b"]" * 3000])
async def test_invalid_json_is_400(
    server: tuple[CallbackServer, RecordingSink, aiohttp.ClientSession], body: bytes
) -> None:
    srv, sink, session = server
    async with session.post(
        url(srv, KNOWN), data=body, headers={"Content-Type": "application/json"}
    ) as resp:
        assert resp.status in {400, 413}
    assert sink.tokens == []


async def test_deeply_nested_json_is_400_and_the_server_stays_up(
    server: tuple[CallbackServer, RecordingSink, aiohttp.ClientSession],
) -> None:
    srv, _, session = server
    body = b'{"a":' + b"[" * 2000 + b"]" * 2000 + b"}"  # deeper than the JSON parser allows
    assert len(body) < 4096
    async with session.post(
        url(srv, KNOWN), data=body, headers={"Content-Type": "application/json"}
    ) as resp:
        assert resp.status == 400
    # The server is still healthy afterwards.
    async with session.post(url(srv, KNOWN), json={}) as resp:
        assert resp.status == 200


# --- deadlines: raw sockets that stall ----------------------------------------------------------
# A generous bound on each read: a listener without the deadline under test keeps the
# connection open far longer than this (the other deadlines are set to a minute), so the read
# fails instead of seeing the close.
FAILURE_BOUND = 10.0
OPEN = ListenerLimits(header_timeout=60, body_timeout=60, keepalive_timeout=60)


class RecordingObserver:
    def __init__(self) -> None:
        self.outcomes: list[str] = []

    def callback(self, outcome: str) -> None:
        self.outcomes.append(outcome)


class Limited:
    """Callback listeners with chosen deadlines (the others a minute), stopped afterwards."""

    def __init__(self) -> None:
        self.servers: list[CallbackServer] = []
        self.observer = RecordingObserver()

    async def __call__(self, **limits: float) -> tuple[CallbackServer, RecordingSink]:
        sink = RecordingSink()
        srv = CallbackServer(
            sink,
            host="127.0.0.1",
            port=0,
            max_body=4096,
            observer=self.observer,
            limits=dataclasses.replace(OPEN, **limits),
        )
        await srv.start()
        self.servers.append(srv)
        return srv, sink


@pytest.fixture
async def limited() -> AsyncIterator[Limited]:
    made = Limited()
    yield made
    for srv in made.servers:
        await srv.stop()


async def connect(srv: CallbackServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", srv.port)


def request_head(token: str, body_length: int) -> bytes:
    return (
        f"POST /vidgo/callback/{token} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {body_length}\r\n\r\n"
    ).encode()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One HTTP response (status, body) from a kept-alive connection."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), FAILURE_BOUND)
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    length = next(
        int(v) for k, _, v in (ln.partition(": ") for ln in lines) if k == "Content-Length"
    )
    return status, await asyncio.wait_for(reader.readexactly(length), FAILURE_BOUND)


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    """Everything the server still sends, then True once it closed the connection."""
    try:
        await asyncio.wait_for(reader.read(), FAILURE_BOUND)
    except ConnectionResetError:
        return True
    return reader.at_eof()


async def test_a_stalled_request_line_is_closed_at_the_head_deadline(limited: Limited) -> None:
    srv, sink = await limited(header_timeout=0.2)
    reader, writer = await connect(srv)
    writer.write(f"POST /vidgo/callback/{KNOWN} HT".encode())  # half a request line, then nothing
    await writer.drain()
    assert await closed_by_server(reader)
    writer.close()
    assert sink.tokens == []


async def test_a_connection_that_sends_nothing_is_closed_at_the_head_deadline(
    limited: Limited,
) -> None:
    srv, _ = await limited(header_timeout=0.2)
    reader, writer = await connect(srv)
    assert await closed_by_server(reader)
    writer.close()


async def test_a_trickled_request_head_does_not_extend_the_deadline(limited: Limited) -> None:
    srv, sink = await limited(header_timeout=0.3)
    reader, writer = await connect(srv)
    head = request_head(KNOWN, 2)
    sent = 0

    async def trickle() -> None:
        nonlocal sent
        for i in range(len(head)):  # a byte every 50 ms: the whole head would take seconds
            writer.write(head[i : i + 1])
            await writer.drain()
            sent += 1
            await asyncio.sleep(0.05)

    trickler = asyncio.create_task(trickle())
    assert await closed_by_server(reader)
    trickler.cancel()
    await asyncio.gather(trickler, return_exceptions=True)
    writer.close()
    assert sent < len(head)  # cut off before the head was complete
    assert sink.tokens == []


async def test_a_slow_body_gets_408_and_the_connection_is_closed(limited: Limited) -> None:
    srv, sink = await limited(body_timeout=0.2)
    reader, writer = await connect(srv)
    writer.write(request_head(KNOWN, 100) + b'{"code": 2')  # 10 of 100 bytes, then a stall
    await writer.drain()
    status, body = await read_response(reader)
    assert status == 408
    assert json.loads(body) == {"ok": False, "message": "body not received in time"}
    assert await closed_by_server(reader)
    writer.close()
    assert sink.tokens == []  # the engine never heard of it
    assert limited.observer.outcomes == ["too_slow"]


async def test_an_idle_keepalive_connection_is_closed(limited: Limited) -> None:
    srv, sink = await limited(keepalive_timeout=0.2)
    reader, writer = await connect(srv)
    writer.write(request_head(KNOWN, 2) + b"{}")
    await writer.drain()
    assert (await read_response(reader))[0] == 200
    assert await closed_by_server(reader)  # nothing more was sent: idle, then closed
    writer.close()
    assert sink.tokens == [KNOWN]


async def test_the_next_request_on_a_kept_alive_connection_has_its_own_head_deadline(
    limited: Limited,
) -> None:
    srv, sink = await limited(header_timeout=0.3)
    reader, writer = await connect(srv)
    writer.write(request_head(KNOWN, 2) + b"{}")
    await writer.drain()
    assert (await read_response(reader))[0] == 200
    writer.write(request_head(DONE, 2) + b"{}")  # a prompt second request is served
    await writer.drain()
    assert (await read_response(reader))[0] == 200
    writer.write(b"POST /vidgo/callback/")  # the third stalls half-way
    await writer.drain()
    assert await closed_by_server(reader)
    writer.close()
    assert sink.tokens == [KNOWN, DONE]


async def test_a_stalled_head_is_not_closed_before_its_deadline(limited: Limited) -> None:
    srv, _ = await limited(header_timeout=0.4)
    loop = asyncio.get_running_loop()
    began = loop.time()
    reader, writer = await connect(srv)
    writer.write(b"POST /vidgo/cal")
    await writer.drain()
    assert await closed_by_server(reader)
    assert loop.time() - began >= 0.4 - 0.01  # one timer for all, but never early
    writer.close()


async def test_a_kept_alive_connection_idle_past_the_head_deadline_stays_open(
    limited: Limited,
) -> None:
    # Idle time between requests is the keep-alive deadline's, not the head's: the head
    # clock's entry for the connection's opening must not close it once its head came.
    srv, sink = await limited(header_timeout=0.2)
    reader, writer = await connect(srv)
    writer.write(request_head(KNOWN, 2) + b"{}")
    await writer.drain()
    assert (await read_response(reader))[0] == 200
    await asyncio.sleep(0.5)
    writer.write(request_head(DONE, 2) + b"{}")
    await writer.drain()
    assert (await read_response(reader))[0] == 200
    writer.close()
    assert sink.tokens == [KNOWN, DONE]


class SlowSink(RecordingSink):
    async def on_callback(self, token: str, task_hint: str | None = None) -> CallbackOutcome:
        await asyncio.sleep(0.5)
        return await super().on_callback(token, task_hint)


async def test_a_request_handled_past_the_head_deadline_is_answered() -> None:
    # Once its head is parsed the request is the application's: a slow answer is not cut.
    srv = CallbackServer(
        SlowSink(),
        host="127.0.0.1",
        port=0,
        limits=dataclasses.replace(OPEN, header_timeout=0.2),
    )
    await srv.start()
    try:
        reader, writer = await connect(srv)
        writer.write(request_head(KNOWN, 2) + b"{}")
        await writer.drain()
        assert (await read_response(reader))[0] == 200
        writer.close()
    finally:
        await srv.stop()


async def test_each_connection_s_head_closes_at_its_own_deadline(limited: Limited) -> None:
    srv, sink = await limited(header_timeout=0.3)
    first_reader, first = await connect(srv)
    first.write(b"POST /vidgo/callback/")  # stalls
    await first.drain()
    await asyncio.sleep(0.15)
    served_reader, served = await connect(srv)  # opens later, its head comes at once
    served.write(request_head(KNOWN, 2) + b"{}")
    await served.drain()
    assert (await read_response(served_reader))[0] == 200
    late_reader, late = await connect(srv)  # opens later still, sends nothing
    assert await closed_by_server(first_reader)
    assert not late_reader.at_eof()  # its own deadline is later
    assert await closed_by_server(late_reader)
    # The served connection outlived both deadlines and still takes a request.
    served.write(request_head(DONE, 2) + b"{}")
    await served.drain()
    assert (await read_response(served_reader))[0] == 200
    for writer in (first, served, late):
        writer.close()
    assert sink.tokens == [KNOWN, DONE]


async def test_a_head_split_across_packets_but_complete_in_time_is_served(
    limited: Limited,
) -> None:
    srv, sink = await limited(header_timeout=0.4)
    reader, writer = await connect(srv)
    writer.write(request_head(KNOWN, 2) + b"{}")
    await writer.drain()
    assert (await read_response(reader))[0] == 200
    head = request_head(DONE, 2)
    writer.write(head[:10])  # the next head starts on an idle connection ...
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.write(head[10:] + b"{}")  # ... and completes well within its deadline
    await writer.drain()
    assert (await read_response(reader))[0] == 200
    await asyncio.sleep(0.5)  # past the second head's deadline: idle now, not closed
    writer.write(request_head(KNOWN, 2) + b"{}")
    await writer.drain()
    assert (await read_response(reader))[0] == 200
    writer.close()
    assert sink.tokens == [KNOWN, DONE, KNOWN]


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        ListenerLimits(header_timeout=0)


def test_default_body_deadline_is_well_under_vidgos_ten_seconds() -> None:
    limits = ListenerLimits()
    assert limits.body_timeout <= 5 and limits.header_timeout <= 5
    assert limits.keepalive_timeout <= 15
