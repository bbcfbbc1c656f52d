"""The fake Discord routes guilds to gateway shards the way Discord does.

``FakeDiscord(shard_count=N)`` puts guild ``g`` on shard ``(g >> 22) % N``. Raw websocket
sessions show exactly which frames each shard's session gets: to prove that a session got
nothing more, a test makes one more change in a guild of that shard and checks that the next
frame is that change. Real discord.py clients (one per shard, and an auto-sharded one) show
the bot's side.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import discord
import pytest
from discord.ext import commands

from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_gateway import (
    INTENT_DIRECT_MESSAGES,
    INTENT_GUILD_MESSAGES,
    INTENT_GUILDS,
)

TOKEN = "test-discord-token"
BOT_AUTH = {"Authorization": f"Bot {TOKEN}"}
ROOT = Path(__file__).resolve().parents[2]


def guild_id_on(shard: int, n: int, shard_count: int = 2) -> int:
    """The ``n``-th guild id whose events belong to ``shard`` (timestamp bits chosen so)."""
    return ((1_000_000 + n * shard_count + shard) << 22) | 17


@dataclass
class RawSession:
    """A gateway session spoken by hand, as a bot process would."""

    ws: aiohttp.ClientWebSocketResponse
    ready: dict[str, Any]
    seq: int = 0

    async def next_dispatch(self) -> tuple[str, dict[str, Any]]:
        """The next dispatch's name and data (heartbeat acks skipped)."""
        async with asyncio.timeout(5):
            while True:
                msg = await self.ws.receive()
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    raise AssertionError(f"socket ended: {msg.type} {self.ws.close_code}")
                frame = json.loads(msg.data)
                if frame["op"] == 0:
                    self.seq = frame["s"]
                    return frame["t"], frame["d"]

    async def guild_creates(self, count: int) -> set[str]:
        """The ids of the next ``count`` dispatches, each of which must be GUILD_CREATE."""
        ids: set[str] = set()
        for _ in range(count):
            event, data = await self.next_dispatch()
            assert event == "GUILD_CREATE"
            ids.add(data["id"])
        return ids


async def open_socket(http: aiohttp.ClientSession, fake: FakeDiscord) -> Any:
    ws = await http.ws_connect(f"{fake.gateway_url}?v=10&encoding=json")
    hello = await ws.receive_json()
    assert hello["op"] == 10
    return ws


async def identify(
    http: aiohttp.ClientSession,
    fake: FakeDiscord,
    shard: list[int] | None,
    intents: int = INTENT_GUILDS,
) -> RawSession:
    """IDENTIFY on a new socket and read READY."""
    ws = await open_socket(http, fake)
    data: dict[str, Any] = {"token": TOKEN, "intents": intents, "properties": {}}
    if shard is not None:
        data["shard"] = shard
    await ws.send_json({"op": 2, "d": data})
    session = RawSession(ws, {})
    event, ready = await session.next_dispatch()
    assert event == "READY"
    session.ready = ready
    return session


async def refused_identify(
    http: aiohttp.ClientSession, fake: FakeDiscord, data: dict[str, Any]
) -> int | None:
    """IDENTIFY with ``data``; the close code the fake answers with."""
    ws = await open_socket(http, fake)
    await ws.send_json({"op": 2, "d": {"token": TOKEN, "intents": INTENT_GUILDS, **data}})
    async with asyncio.timeout(5):
        msg = await ws.receive()
    assert msg.type is aiohttp.WSMsgType.CLOSE
    code: int | None = ws.close_code
    await ws.close()
    return code


async def next_is_marker(fake: FakeDiscord, session: RawSession, guild_id: int) -> None:
    """Make one change in ``guild_id``; the session's next frame must be exactly that change."""
    channel_id = fake.add_channel(guild_id)
    event, data = await session.next_dispatch()
    assert (event, data["id"]) == ("CHANNEL_CREATE", str(channel_id))


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(shard_count=2, ack_deadline=1.0) as started:
        yield started


# -- raw sessions ----------------------------------------------------------------------------


async def test_each_shard_session_gets_ready_and_guild_create_for_its_own_guilds_only(
    fake: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    on_0 = [fake.add_guild(guild_id_on(0, n)).id for n in range(2)]
    on_1 = [fake.add_guild(guild_id_on(1, 0)).id]
    s0 = await identify(http, fake, [0, 2])
    s1 = await identify(http, fake, [1, 2])
    assert s0.ready["shard"] == [0, 2] and s1.ready["shard"] == [1, 2]
    assert [g["id"] for g in s0.ready["guilds"]] == [str(g) for g in on_0]
    assert [g["id"] for g in s1.ready["guilds"]] == [str(g) for g in on_1]
    assert await s0.guild_creates(2) == {str(g) for g in on_0}
    assert await s1.guild_creates(1) == {str(g) for g in on_1}
    await next_is_marker(fake, s0, on_0[0])
    await next_is_marker(fake, s1, on_1[0])
    await fake.wait_until_ready(1)
    assert [fake.gateway.current[s].shard for s in (0, 1)] == [(0, 2), (1, 2)]


async def test_guild_added_while_connected_goes_only_to_its_shard(
    fake: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    home_0 = fake.add_guild(guild_id_on(0, 0)).id
    home_1 = fake.add_guild(guild_id_on(1, 0)).id
    s0 = await identify(http, fake, [0, 2])
    s1 = await identify(http, fake, [1, 2])
    await s0.guild_creates(1)
    await s1.guild_creates(1)
    joined = fake.add_guild(guild_id_on(1, 5), name="Late Stage")
    event, data = await s1.next_dispatch()
    assert (event, data["id"], data["name"]) == ("GUILD_CREATE", str(joined.id), "Late Stage")
    await next_is_marker(fake, s0, home_0)
    await next_is_marker(fake, s1, home_1)


async def test_interaction_goes_only_to_the_session_of_its_guilds_shard(
    fake: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    g0 = fake.add_guild(guild_id_on(0, 0))
    g1 = fake.add_guild(guild_id_on(1, 0))
    user = fake.add_user(name="singer")
    s0 = await identify(http, fake, [0, 2])
    s1 = await identify(http, fake, [1, 2])
    await s0.guild_creates(1)
    await s1.guild_creates(1)
    for guild, own, other in ((g1, s1, s0), (g0, s0, s1)):
        interaction = await fake.invoke_slash(
            guild_id=guild.id, channel_id=guild.channel_id, user_id=user.id, name="separate"
        )
        event, data = await own.next_dispatch()
        assert (event, data["id"], data["guild_id"]) == (
            "INTERACTION_CREATE",
            str(interaction.id),
            str(guild.id),
        )
        assert interaction.shard == fake.shard_of(guild.id) and interaction.dispatched
        other_guild = g0 if other is s0 else g1
        await next_is_marker(fake, other, other_guild.id)


async def test_dm_events_go_to_shard_zero(fake: FakeDiscord, http: aiohttp.ClientSession) -> None:
    g1 = fake.add_guild(guild_id_on(1, 0))
    fake.add_guild(guild_id_on(0, 0))
    user = fake.add_user(name="singer")
    intents = INTENT_GUILDS | INTENT_GUILD_MESSAGES | INTENT_DIRECT_MESSAGES
    s0 = await identify(http, fake, [0, 2], intents)
    s1 = await identify(http, fake, [1, 2], intents)
    await s0.guild_creates(1)
    await s1.guild_creates(1)
    async with http.post(
        f"{fake.api_base}/users/@me/channels", json={"recipient_id": str(user.id)}, headers=BOT_AUTH
    ) as resp:
        dm_channel = (await resp.json())["id"]
    for channel in (dm_channel, str(g1.channel_id)):
        url = f"{fake.api_base}/channels/{channel}/messages"
        async with http.post(url, json={"content": f"to {channel}"}, headers=BOT_AUTH) as resp:
            assert resp.status == 200
    event, data = await s0.next_dispatch()
    assert (event, data["channel_id"], "guild_id" in data) == ("MESSAGE_CREATE", dm_channel, False)
    # Shard 1 saw only the message in its own guild: the DM was not its to see.
    event, data = await s1.next_dispatch()
    assert (event, data["channel_id"]) == ("MESSAGE_CREATE", str(g1.channel_id))


async def test_interaction_for_a_shard_without_a_session_is_lost_and_reported_unacknowledged(
    fake: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    g0 = fake.add_guild(guild_id_on(0, 0))
    g1 = fake.add_guild(guild_id_on(1, 0))
    user = fake.add_user(name="singer")
    s0 = await identify(http, fake, [0, 2])
    await s0.guild_creates(1)
    lost = await fake.invoke_slash(
        guild_id=g1.id, channel_id=g1.channel_id, user_id=user.id, name="separate"
    )
    assert (lost.shard, lost.dispatched) == (1, False)
    await next_is_marker(fake, s0, g0.id)
    assert fake.rule_violations == []
    fake.advance_clock(fake.ack_deadline)
    assert lost.expired and not lost.acked
    assert fake.rule_violations == [
        f"interaction {lost.id} (/separate) was not acknowledged within 1 s"
    ]
    async with http.get(f"{fake.base_url}/_control/state") as resp:
        state = await resp.json()
    assert state["ready"] is False
    assert [(s["shard"], s["ready"]) for s in state["shards"]] == [([0, 2], True), ([1, 2], False)]
    assert state["interactions"][0]["dispatched"] is False


async def test_interaction_with_no_session_on_any_shard_raises(
    fake: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    guild = fake.add_guild(guild_id_on(0, 0))
    user = fake.add_user(name="singer")
    with pytest.raises(RuntimeError, match="no gateway session"):
        await fake.invoke_slash(
            guild_id=guild.id, channel_id=guild.channel_id, user_id=user.id, name="separate"
        )
    s0 = await identify(http, fake, [0, 2])
    await s0.ws.close()  # a clean close ends the session: nothing could take it any more
    await fake.wait_until(lambda: not fake.gateway.has_any_session(), timeout=5)
    with pytest.raises(RuntimeError, match="no gateway session"):
        await fake.invoke_slash(
            guild_id=guild.id, channel_id=guild.channel_id, user_id=user.id, name="separate"
        )
    assert fake.interactions == {}


async def test_identify_must_name_a_shard_of_the_applications_count(
    fake: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    assert await refused_identify(http, fake, {}) == 4011
    assert await refused_identify(http, fake, {"shard": [0, 3]}) == 4010
    assert await refused_identify(http, fake, {"shard": [2, 2]}) == 4010
    assert await refused_identify(http, fake, {"shard": ["0", "2"]}) == 4010
    assert fake.identify_count == 0
    assert [v.split(":")[-1] for v in fake.rule_violations] == [
        " closed 4011",
        " closed 4010",
        " closed 4010",
        " closed 4010",
    ]
    assert "has 2 shards" in fake.rule_violations[0]


async def test_single_shard_application_accepts_identify_without_a_shard(
    http: aiohttp.ClientSession,
) -> None:
    async with FakeDiscord() as fake:
        guild = fake.add_guild(guild_id_on(1, 0))
        session = await identify(http, fake, None)
        assert "shard" not in session.ready
        assert await session.guild_creates(1) == {str(guild.id)}
        assert fake.gateway.current[0].shard == (0, 1)


async def test_gateway_bot_reports_the_configured_shard_count(
    http: aiohttp.ClientSession,
) -> None:
    async with (
        FakeDiscord(shard_count=3) as fake,
        http.get(f"{fake.api_base}/gateway/bot", headers=BOT_AUTH) as resp,
    ):
        body = await resp.json()
    assert (body["shards"], body["url"]) == (3, fake.gateway_url)


async def test_shard_count_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="shard_count"):
        FakeDiscord(shard_count=0)


async def test_dropped_shard_resumes_alone_and_a_new_identify_replaces_only_its_shard(
    fake: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    g0 = fake.add_guild(guild_id_on(0, 0))
    g1 = fake.add_guild(guild_id_on(1, 0))
    user = fake.add_user(name="singer")
    s0 = await identify(http, fake, [0, 2])
    s1 = await identify(http, fake, [1, 2])
    await s0.guild_creates(1)
    await s1.guild_creates(1)
    # Another process drops shard 1 through the control API.
    async with http.post(f"{fake.base_url}/_control/drop_gateway", json={"shard": 1}) as resp:
        assert resp.status == 200
    async with asyncio.timeout(5):
        closed = await s1.ws.receive()
    assert (closed.type, s1.ws.close_code) == (aiohttp.WSMsgType.CLOSE, 4000)
    missed = await fake.invoke_slash(
        guild_id=g1.id, channel_id=g1.channel_id, user_id=user.id, name="separate"
    )
    assert missed.dispatched
    await next_is_marker(fake, s0, g0.id)

    ws = await open_socket(http, fake)
    session_id = s1.ready["session_id"]
    await ws.send_json({"op": 6, "d": {"token": TOKEN, "session_id": session_id, "seq": s1.seq}})
    resumed = RawSession(ws, s1.ready, s1.seq)
    event, data = await resumed.next_dispatch()
    assert (event, data["id"]) == ("INTERACTION_CREATE", str(missed.id))
    assert (await resumed.next_dispatch())[0] == "RESUMED"
    assert fake.replayed_events == ["INTERACTION_CREATE"]

    # A fresh IDENTIFY for shard 1 ends the resumed session, and leaves shard 0 alone.
    fresh = await identify(http, fake, [1, 2])
    await fresh.guild_creates(1)
    again = await open_socket(http, fake)
    await again.send_json(
        {"op": 6, "d": {"token": TOKEN, "session_id": session_id, "seq": resumed.seq}}
    )
    assert await again.receive_json() == {"op": 9, "d": False}
    await next_is_marker(fake, s0, g0.id)
    await next_is_marker(fake, fresh, g1.id)
    assert fake.identify_count == 3 and fake.resume_count == 1


# -- real discord.py clients ---------------------------------------------------------------


def add_where_command(bot: commands.Bot, seen: list[tuple[int | None, int]]) -> None:
    """``/where`` answers with the shard it ran on and records (shard, guild)."""

    @bot.tree.command(name="where", description="Which shard answers")
    async def where(interaction: discord.Interaction) -> None:
        guild = interaction.guild
        seen.append((guild.shard_id if guild else None, interaction.guild_id or 0))
        await interaction.response.send_message(f"shard {guild.shard_id if guild else '-'}")


class ShardBot(commands.Bot):
    """A bot on one shard (``shard_id`` of ``shard_count``)."""

    def __init__(self, seen: list[tuple[int | None, int]], shard_id: int, shard_count: int) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.default(),
            guild_ready_timeout=0.05,
            help_command=None,
            shard_id=shard_id,
            shard_count=shard_count,
        )
        add_where_command(self, seen)

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        # discord.py waits 5 s between IDENTIFYs for Discord's limit; the fake has none.
        return None


class AutoShardBot(commands.AutoShardedBot):
    """A bot that asks ``/gateway/bot`` how many shards to run, and runs them all."""

    def __init__(self) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.default(),
            guild_ready_timeout=0.05,
            help_command=None,
        )

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        return None


@contextlib.asynccontextmanager
async def running(*bots: commands.Bot | commands.AutoShardedBot) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(bot.start(TOKEN)) for bot in bots]
    try:
        yield
    finally:
        for bot in bots:
            await bot.close()
        for task in tasks:
            with contextlib.suppress(Exception):
                await task


async def test_two_discord_py_clients_with_one_shard_each_get_their_guilds_and_interactions(
    fake: FakeDiscord,
) -> None:
    guilds = [fake.add_guild(guild_id_on(s, n)) for s in (0, 1) for n in range(2)]
    user = fake.add_user(name="singer")
    seen: list[tuple[int | None, int]] = []
    bots = [ShardBot(seen, shard_id=s, shard_count=2) for s in (0, 1)]
    with fake.redirect_discord_py():
        async with running(*bots):
            await fake.wait_until_ready(5)
            for bot in bots:
                await asyncio.wait_for(bot.wait_until_ready(), 5)
            for shard, bot in enumerate(bots):
                expected = {g.id for g in guilds if fake.shard_of(g.id) == shard}
                assert {g.id for g in bot.guilds} == expected and len(expected) == 2
            for guild in guilds:
                await fake.invoke_slash(
                    guild_id=guild.id, channel_id=guild.channel_id, user_id=user.id, name="where"
                )
                answer = await fake.wait_for_message(guild.channel_id)
                assert answer.content == f"shard {fake.shard_of(guild.id)}"
    assert sorted(seen) == sorted((fake.shard_of(g.id), g.id) for g in guilds)
    assert all(i.dispatched and i.acked for i in fake.interactions.values())
    assert fake.rule_violations == []


async def test_auto_sharded_client_runs_the_shard_count_gateway_bot_reports(
    fake: FakeDiscord,
) -> None:
    guilds = [fake.add_guild(guild_id_on(s, 0)) for s in (0, 1)]
    bot = AutoShardBot()
    with fake.redirect_discord_py():
        async with running(bot):
            await fake.wait_until_ready(5)
            await asyncio.wait_for(bot.wait_until_ready(), 5)
            assert bot.shard_count == 2 and sorted(bot.shards) == [0, 1]
            for guild in guilds:
                cached = bot.get_guild(guild.id)
                assert cached is not None and cached.shard_id == fake.shard_of(guild.id)
    assert fake.identify_count == 2
    assert fake.rule_violations == []


async def test_sharded_fake_runs_as_a_process(http: aiohttp.ClientSession) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.discord",
        "--port",
        "0",
        "--shards",
        "2",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(10):
            line = (await proc.stdout.readline()).decode().strip()
        api = line.removeprefix("FAKE_DISCORD_API=")
        base = api.removesuffix("/api/v10")
        async with http.get(f"{api}/gateway/bot", headers=BOT_AUTH) as resp:
            assert (await resp.json())["shards"] == 2
        async with http.get(f"{base}/_control/state") as resp:
            state = await resp.json()
        assert state["shard_count"] == 2
        assert [s["shard"] for s in state["shards"]] == [[0, 2], [1, 2]]
    finally:
        proc.terminate()
        await proc.wait()
