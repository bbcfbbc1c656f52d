"""The admin listener over real HTTP: liveness, readiness checks, the metrics exposition."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from unittest import mock

import aiohttp
import discord
import pytest
from discord.ext import commands

from bot.admin import AdminRoutes, AdminServer, failure_text
from bot.app import discord_connected
from bot.engine import CallbackOutcome
from bot.listener import ListenerLimits
from bot.webhook import CallbackServer

Check = Callable[[], Awaitable[bool]]


def fixed(value: bool) -> Check:
    async def check() -> bool:
        return value

    return check


async def raises() -> bool:
    raise RuntimeError("database is locked")


async def hangs() -> bool:
    await asyncio.Event().wait()
    return True


async def metrics_text() -> bytes:
    return b"# HELP x y\n# TYPE x gauge\nx 1.0\n"


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[str]]]:
    servers: list[AdminServer] = []

    async def start(**kwargs: object) -> str:
        server = AdminServer(AdminRoutes(**kwargs), host="127.0.0.1", port=0)  # type: ignore[arg-type]
        await server.start()
        servers.append(server)
        return server.base_url

    yield start
    for server in servers:
        await server.stop()


async def get(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.text()


async def test_healthz_answers_while_the_process_runs(serve: Callable[..., Awaitable[str]]) -> None:
    base = await serve(checks={"database": fixed(False)})
    status, ctype, body = await get(base + "/healthz")
    assert (status, body) == (200, '{"ok": true}')
    assert ctype.startswith("application/json")


async def test_readyz_is_200_only_when_every_check_passes(
    serve: Callable[..., Awaitable[str]],
) -> None:
    ready = await serve(checks={"database": fixed(True), "discord": fixed(True)})
    status, _, body = await get(ready + "/readyz")
    assert status == 200
    assert body == '{"ok": true, "checks": {"database": "ok", "discord": "ok"}}'

    not_ready = await serve(
        checks={"database": raises, "discord": fixed(False), "slow": hangs}, check_timeout=0.05
    )
    status, _, body = await get(not_ready + "/readyz")
    assert status == 503
    assert '"database": "fail: RuntimeError (database is locked)"' in body
    assert '"discord": "fail"' in body
    assert '"slow": "fail: no answer within 0.05 s"' in body


async def test_metrics_exposition_and_its_failure(serve: Callable[..., Awaitable[str]]) -> None:
    base = await serve(checks={}, metrics=metrics_text, metrics_content_type="text/plain; v=1")
    status, ctype, body = await get(base + "/metrics")
    assert (status, ctype) == (200, "text/plain; v=1")
    assert body.endswith("x 1.0\n")

    async def broken() -> bytes:
        raise RuntimeError("db gone")

    base = await serve(checks={}, metrics=broken)
    status, _, _ = await get(base + "/metrics")
    assert status == 500
    no_metrics = await serve(checks={})
    assert (await get(no_metrics + "/metrics"))[0] == 404


class _Sink:
    async def on_callback(self, token: str, task_hint: str | None = None) -> CallbackOutcome:
        return CallbackOutcome.UNKNOWN


async def test_routes_can_be_added_to_the_callback_listener() -> None:
    hidden = CallbackServer(_Sink(), host="127.0.0.1", port=0)
    shown = CallbackServer(_Sink(), host="127.0.0.1", port=0)
    AdminRoutes(checks={}, metrics=metrics_text).install(shown.app)
    await hidden.start()
    await shown.start()
    try:
        assert (await get(f"http://127.0.0.1:{hidden.port}/metrics"))[0] == 404
        assert (await get(f"http://127.0.0.1:{hidden.port}/healthz"))[0] == 404
        assert (await get(f"http://127.0.0.1:{shown.port}/metrics"))[0] == 200
        assert (await get(f"http://127.0.0.1:{shown.port}/healthz"))[0] == 200
    finally:
        await hidden.stop()
        await shown.stop()


async def test_a_taken_port_fails_loudly() -> None:
    first = AdminServer(AdminRoutes(checks={}), host="127.0.0.1", port=0)
    await first.start()
    try:
        second = AdminServer(AdminRoutes(checks={}), host="127.0.0.1", port=first.port)
        with pytest.raises(OSError, match="address already in use"):
            await second.start()
        await second.stop()
    finally:
        await first.stop()


def test_discord_connected_needs_ready_and_an_open_socket() -> None:
    # ``ws`` is an instance attribute of discord.Client, so it is named explicitly.
    bot = mock.Mock(spec_set=[*dir(commands.Bot), "ws"])
    ws = mock.Mock(spec_set=discord.gateway.DiscordWebSocket)
    bot.is_ready.return_value = True
    bot.is_closed.return_value = False
    bot.ws = ws
    ws.open = True
    assert discord_connected(bot)
    ws.open = False
    assert not discord_connected(bot)
    ws.open = True
    bot.is_ready.return_value = False
    assert not discord_connected(bot)
    bot.is_ready.return_value = True
    bot.ws = None
    assert not discord_connected(bot)


async def test_the_admin_listener_closes_a_stalled_request_head() -> None:
    # The same deadlines as the callback listener: a health probe cannot be starved by a
    # client that connects and stalls.
    limits = ListenerLimits(header_timeout=0.2, body_timeout=60, keepalive_timeout=60)
    server = AdminServer(AdminRoutes(checks={}), host="127.0.0.1", port=0, limits=limits)
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /heal")
        await writer.drain()
        # Bounded only so a listener without the deadline fails here instead of hanging.
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
        assert (await get(server.base_url + "/healthz"))[0] == 200  # others are still served
    finally:
        await server.stop()


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (RuntimeError(), "fail: RuntimeError"),
        (OSError("disk I/O error\nmore"), "fail: OSError (disk I/O error)"),
        (ValueError("bad\x1b[31m red"), "fail: ValueError (bad [31m red)"),
        (ValueError("x" * 300), "fail: ValueError (" + "x" * 119 + "…)"),
    ],
)
def test_a_failed_check_names_the_error_class_and_its_first_line(
    error: Exception, text: str
) -> None:
    assert failure_text(error) == text
