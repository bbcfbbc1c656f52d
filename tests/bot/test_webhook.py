"""The callback listener over real HTTP: cheap checks first, unknown tokens write nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.engine import CallbackOutcome
from bot.webhook import CallbackServer

KNOWN = "k" * 22
DONE = "d" * 22


class RecordingSink:
    def __init__(self) -> None:
        self.tokens: list[str] = []

    async def on_callback(self, token: str, task_hint: str | None = None) -> CallbackOutcome:
        self.tokens.append(token)
        if token == KNOWN:
            return CallbackOutcome.ACCEPTED
        if token == DONE:
            return CallbackOutcome.IGNORED
        return CallbackOutcome.UNKNOWN


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
