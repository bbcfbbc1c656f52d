"""Stemcord's sharded client: identify pacing, which shards a process runs, and readiness per
shard, on its own and against the fake Discord's sharded gateway."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import discord
import pytest
import yarl

from bot.logs import ReconnectLineFilter
from cogs.buttons import ButtonRouter
from cogs.client import (
    GatewayUnreachable,
    IdentifyPacer,
    ShardReport,
    StemcordBot,
    discord_connected,
    start_discord,
)
from cogs.i18n import Translations
from tests.fakes.discord import FakeDiscord
from tests.helpers import free_port, wait_for

T = Translations.load()


def guild_id_on(shard: int, n: int, shard_count: int = 2) -> int:
    """The ``n``-th guild id whose events belong to ``shard``."""
    return ((2_000_000 + n * shard_count + shard) << 22) | 5


class FakeClock:
    """A clock that only moves when the pacer sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


async def test_identifies_of_one_bucket_are_five_seconds_apart_and_other_buckets_do_not_wait() -> (
    None
):
    clock = FakeClock()
    pacer = IdentifyPacer(2, clock=clock, sleep=clock.sleep)
    await pacer.wait_turn(0)  # bucket 0, first ever: at once
    await pacer.wait_turn(1)  # bucket 1: at once, whatever bucket 0 did
    clock.now += 1.5
    await pacer.wait_turn(2)  # bucket 0 again, 1.5 s after its last IDENTIFY
    assert clock.sleeps == [pytest.approx(3.5)]
    clock.now += 10
    await pacer.wait_turn(0)  # long after: at once
    assert len(clock.sleeps) == 1


async def test_a_single_bucket_paces_every_shard() -> None:
    clock = FakeClock()
    pacer = IdentifyPacer(1, clock=clock, sleep=clock.sleep)
    for shard in range(3):
        await pacer.wait_turn(shard)
    assert clock.sleeps == [pytest.approx(5.0), pytest.approx(5.0)]
    assert pacer.bucket(7) == 0


def test_a_report_is_all_connected_only_with_every_shard_up() -> None:
    assert ShardReport(2, (0, 1), ()).all_connected
    assert not ShardReport(2, (0,), (1,)).all_connected
    # A process that runs no shard yet (the count is unknown before the login) is not up.
    assert not ShardReport(None, (), ()).all_connected
    assert ShardReport(4, (3,), (1,)).as_json() == {
        "count": 4,
        "connected": [3],
        "not_connected": [1],
    }


async def no_setup(_: StemcordBot) -> None:
    return None


def stemcord_bot(**sharding: object) -> StemcordBot:
    bot = StemcordBot(setup=no_setup, router=ButtonRouter(translations=T), **sharding)  # type: ignore[arg-type]
    # The fake has no identify limit; a short window keeps several shards quick.
    bot.identify_pacer = IdentifyPacer(window=0.01)
    return bot


async def test_the_configured_shards_are_this_process_s_before_login() -> None:
    bot = stemcord_bot(shard_count=4, shard_ids=[3, 1])
    assert bot.own_shard_ids == (3, 1)
    report = bot.shard_report()
    assert report == ShardReport(4, (), (3, 1))
    assert not discord_connected(bot)
    # Without a count, nothing is known until Discord is asked.
    assert stemcord_bot().own_shard_ids == ()


@contextlib.asynccontextmanager
async def started(fake: FakeDiscord, bot: StemcordBot) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(
        start_discord(bot, fake.token, gateway_url=fake.gateway_url, login_timeout=10)
    )
    try:
        yield task
    finally:
        await bot.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(shard_count=2) as fake:
        with fake.redirect_discord_py():
            yield fake


async def test_a_process_with_one_shard_id_gets_only_that_shard_s_guilds(
    fake: FakeDiscord,
) -> None:
    guilds = {s: [fake.add_guild(guild_id_on(s, n)) for n in range(2)] for s in (0, 1)}
    bot = stemcord_bot(shard_count=2, shard_ids=[1])
    async with started(fake, bot):
        await fake.wait_until_ready(10, shard=1)
        await asyncio.wait_for(bot.wait_until_ready(), 10)
        await wait_for(lambda: discord_connected(bot), 5)
        assert {g.id for g in bot.guilds} == {g.id for g in guilds[1]}
        assert bot.shard_report() == ShardReport(2, (1,), ())
        # It identified as shard 1 of 2, and nobody holds shard 0.
        assert fake.gateway.is_ready(shard=1) and 0 not in fake.gateway.current
    assert fake.rule_violations == []


async def test_a_dropped_shard_is_not_connected_until_its_session_resumes(
    fake: FakeDiscord,
) -> None:
    fake.add_guild(guild_id_on(0, 0))
    fake.add_guild(guild_id_on(1, 0))
    bot = stemcord_bot(shard_count=2)  # both shards in this process
    async with started(fake, bot):
        await fake.wait_until_ready(10)
        await wait_for(lambda: discord_connected(bot), 10)
        assert bot.shard_report() == ShardReport(2, (0, 1), ())
        # What readiness would have said the moment the shard's session closed (the
        # session resumes within milliseconds, so it is read from the event itself).
        seen: list[tuple[ShardReport, bool]] = []

        async def on_shard_disconnect(shard_id: int) -> None:
            seen.append((bot.shard_report(), discord_connected(bot)))

        bot.add_listener(on_shard_disconnect)
        resumed = fake.resume_count
        await fake.drop_gateway(resumable=True, shard=1)
        await wait_for(lambda: fake.resume_count > resumed and discord_connected(bot), 10)
        # Shard 0 was untouched while shard 1 was down; readiness said not ready.
        assert seen[0] == (ShardReport(2, (0,), (1,)), False)
        assert bot.shard_report() == ShardReport(2, (0, 1), ())


async def test_without_a_count_the_process_runs_every_shard_discord_recommends(
    fake: FakeDiscord,
) -> None:
    fake.add_guild(guild_id_on(0, 0))
    fake.add_guild(guild_id_on(1, 0))
    bot = stemcord_bot()
    async with started(fake, bot):
        await fake.wait_until_ready(10)
        await wait_for(lambda: discord_connected(bot), 10)
        assert bot.known_shard_count == 2
        assert bot.shard_report() == ShardReport(2, (0, 1), ())
        assert len(bot.guilds) == 2
        # The shard count came from one GET /gateway/bot; the sessions opened at the
        # configured gateway (the fake), not at a URL the answer named.
        assert sum(1 for r in fake.requests if r.path == "/gateway/bot") == 1
    assert fake.rule_violations == []


async def test_a_gateway_nobody_listens_on_ends_the_start_with_gateway_unreachable(
    fake: FakeDiscord, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    url = f"ws://127.0.0.1:{port}/"
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(url))
    bot = stemcord_bot(shard_count=2, shard_ids=[0])
    try:
        with pytest.raises(GatewayUnreachable) as info:
            await asyncio.wait_for(
                start_discord(bot, fake.token, gateway_url=url, login_timeout=10), 20
            )
    finally:
        await bot.close()
    assert info.value.url == url
    assert f"127.0.0.1:{port}" in str(info.value.cause)


def test_a_shard_s_reconnect_attempt_is_one_line_with_its_error() -> None:
    record = logging.LogRecord(
        "discord.shard",
        logging.ERROR,
        __file__,
        1,
        "Attempting a reconnect for shard ID %s in %.2fs",
        (1, 2.5),
        None,
    )
    try:
        raise ConnectionResetError(104, "Connection reset by peer")
    except ConnectionResetError as exc:
        record.exc_info = (type(exc), exc, exc.__traceback__)
    assert ReconnectLineFilter().filter(record)
    assert record.getMessage() == (
        "Attempting a reconnect for shard ID 1 in 2.50s "
        "(gateway: ConnectionResetError: [Errno 104] Connection reset by peer)"
    )
    assert record.exc_info is None


def test_a_process_s_postgresql_connections_are_named_for_its_shards() -> None:
    from bot.app import store_options
    from bot.settings import load_settings

    base = {
        "DISCORD_TOKEN": "a-discord-token-value",
        "VIDGO_API_KEY": "a-vidgo-key-value",
        "DATABASE_URL": "postgresql://bot@db:5432/stemcord?schema=stemcord",
    }
    sharded = load_settings(_env_file=None, SHARD_COUNT=4, SHARD_IDS="2,3", **base)
    assert store_options(sharded) == {"application_name": "stemcord-shards-2-3"}
    assert store_options(load_settings(_env_file=None, **base)) == {"application_name": "stemcord"}
    sqlite = {**base, "DATABASE_URL": "sqlite:///data/x.sqlite3"}
    assert store_options(load_settings(_env_file=None, **sqlite)) == {}
