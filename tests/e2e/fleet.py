"""Several real ``python -m bot run`` processes on one PostgreSQL schema, one shard each.

The fake Discord runs ``shard_count`` shards; process ``i`` runs shard ``i``. Each process has
its own callback listener; ``PUBLIC_URL`` decides which listener Vidgo's callbacks reach, as a
load balancer in front of them would.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bot.policy import GuildPolicy, save_policy
from storage.postgres import PostgresJobStore
from storage.records import JobRecord
from tests.e2e.processes import BotProcess, bot_env, free_port
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_models import FakeGuild, FakeInteraction, FakeMessage
from tests.fakes.vidgo import FakeVidgo


def guild_id_on(shard: int, n: int = 0, shard_count: int = 2) -> int:
    """The ``n``-th guild id whose events belong to ``shard`` (Discord: ``(id >> 22) % N``)."""
    return ((3_000_000 + n * shard_count + shard) << 22) | 9


@dataclass
class Fleet:
    """The fakes, one guild per shard, a member, and the bot processes (not started)."""

    discord: FakeDiscord
    vidgo: FakeVidgo
    url: str
    workdir: Path
    guilds: list[FakeGuild]
    member_id: int
    webhook_ports: list[int] = field(default_factory=list)
    bots: list[BotProcess] = field(default_factory=list)

    def env(self, shard: int, *, public_port: int, **extra: str) -> dict[str, str]:
        """Settings of the process that runs ``shard``: callbacks requested at
        ``public_port``, polling so rare that only callbacks can finish a job in a test."""
        return bot_env(
            self.discord,
            self.vidgo,
            self.workdir / "unused.sqlite3",
            DATABASE_URL=self.url,
            SHARD_COUNT=str(len(self.guilds)),
            SHARD_IDS=str(shard),
            DEV_GUILD_ID=str(self.guilds[shard].id),
            WEBHOOK_HOST="127.0.0.1",
            WEBHOOK_PORT=str(self.webhook_ports[shard]),
            PUBLIC_URL=f"http://127.0.0.1:{public_port}",
            POLL_INTERVAL_SECONDS="600",
            POLL_MAX_INTERVAL_WITH_CALLBACKS_SECONDS="600",
            VIDGO_RATE_PER_SECOND="500",
            VIDGO_TIMEOUT_SECONDS="2",
            SUBMIT_CONFIRM_GRACE_SECONDS="60",
            **extra,
        )

    async def start(self, *, cross_callbacks: bool = True) -> list[BotProcess]:
        """Start one process per shard, all at once, and wait until each is ready.

        ``cross_callbacks``: each process asks Vidgo to call back the *next* process's
        listener, so every callback lands on a process other than the one that submitted.
        """
        count = len(self.guilds)
        self.bots = [
            BotProcess(
                self.env(
                    shard,
                    public_port=self.webhook_ports[
                        (shard + 1) % count if cross_callbacks else shard
                    ],
                ),
                self.workdir,
            )
            for shard in range(count)
        ]
        # Started together: they migrate the new schema under one advisory lock, in turn.
        await asyncio.gather(*(bot.start() for bot in self.bots))
        await asyncio.gather(*(bot.wait_ready(60) for bot in self.bots))
        for shard, guild in enumerate(self.guilds):
            await self.discord.wait_until(lambda g=guild: g.id in self.discord.synced_commands, 30)
            await self.discord.wait_until_ready(30, shard=shard)
        return self.bots

    async def stop(self) -> None:
        """SIGTERM every process still running (SIGKILL if it will not stop)."""
        for bot in self.bots:
            if bot.returncode is None:
                try:
                    await bot.stop()
                except TimeoutError:
                    await bot.kill()

    async def separate_link(self, shard: int, name: str) -> FakeInteraction:
        """The member runs ``/separate link:…`` in the guild of ``shard``."""
        guild = self.guilds[shard]
        return await self.discord.invoke_slash(
            guild_id=guild.id,
            channel_id=guild.channel_id,
            user_id=self.member_id,
            name="separate",
            options=[{"name": "link", "value": f"https://cdn.example.org/fleet/{name}.mp3"}],
        )

    def delivered_messages(self, job_id: str) -> list[FakeMessage]:
        """Messages carrying the job's nonce, in every channel (DMs included)."""
        return [
            message
            for messages in self.discord.messages.values()
            for message in messages
            if message.nonce == f"stemcord-{job_id}" and not message.deleted
        ]

    def logged_by(self, text: str) -> list[int]:
        """Which processes (by shard) wrote a log line containing ``text``."""
        return [shard for shard, bot in enumerate(self.bots) if text in bot.err_text()]


async def open_store(url_dsn: str, schema: str) -> PostgresJobStore:
    """A store on the fleet's schema (migrated), for set-up and checks from the test."""
    store = PostgresJobStore(url_dsn, schema=schema, application_name="stemcord-test")
    await store.open()
    return store


async def set_policy(store: PostgresJobStore, guild_id: int, policy: GuildPolicy) -> None:
    """Store a server's policy, as ``/karaoke settings`` would."""
    await save_policy(store, guild_id, policy, time.time())


async def wait_jobs(
    store: PostgresJobStore,
    predicate: Callable[[list[JobRecord]], bool],
    timeout: float = 30.0,
) -> list[JobRecord]:
    """Every job, once ``predicate`` holds for them (AssertionError with them otherwise)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        jobs = await store.list_jobs(limit=1000, oldest_first=True)
        if predicate(jobs):
            return jobs
        if loop.time() > end:
            states = [(j.id, j.state.value, j.lease_owner) for j in jobs]
            raise AssertionError(f"jobs never matched: {states}")
        await asyncio.sleep(0.05)


def new_ports(count: int) -> list[int]:
    """``count`` distinct free ports on 127.0.0.1."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports
