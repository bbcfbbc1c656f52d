"""The real app (engine, callback listener, discord.py client) against both fakes."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bot.app import RunningApp, run_app
from bot.settings import Settings, load_settings
from storage.jobstate import JobState
from storage.records import JobRecord
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_models import FakeGuild, FakeMessage, FakeUser
from tests.fakes.vidgo import GENERATION_AUDIO_IDS, GENERATION_TASK_ID, FakeVidgo


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class World:
    """Both fakes, a guild with a member, and the app (started with :meth:`start`)."""

    discord: FakeDiscord
    vidgo: FakeVidgo
    guild: FakeGuild
    member: FakeUser
    db_path: Path
    callbacks: bool = True
    overrides: dict[str, Any] = field(default_factory=dict)
    app: RunningApp | None = None
    _stop: asyncio.Event | None = None
    _task: asyncio.Task[None] | None = None
    _port: int = field(default_factory=free_port)

    def settings(self) -> Settings:
        values: dict[str, Any] = {
            "DISCORD_TOKEN": self.discord.token,
            "DISCORD_API_BASE": self.discord.api_base,
            "DISCORD_GATEWAY_URL": self.discord.gateway_url,
            "VIDGO_API_KEY": "test-vidgo-key",
            "VIDGO_BASE_URL": self.vidgo.base_url,
            "DATABASE_URL": f"sqlite:///{self.db_path}",
            "MEDIA_DIR": str(self.db_path.parent / "media"),
            "PUBLIC_URL": f"http://127.0.0.1:{self._port}" if self.callbacks else "",
            "WEBHOOK_HOST": "127.0.0.1",
            "WEBHOOK_PORT": self._port,
            "POLL_INTERVAL_SECONDS": 0.1 if not self.callbacks else 30,
            "POLL_MAX_INTERVAL_SECONDS": 0.3,
            "DEV_GUILD_ID": self.guild.id,
            "VIDGO_RATE_PER_SECOND": 1000,
            "DELIVERY_MAX_ATTEMPTS": 4,
            "ADMIN_PORT": 0,  # any free port (RunningApp.admin.port)
        }
        values.update(self.overrides)
        return load_settings(_env_file=None, **values)

    async def start(self) -> RunningApp:
        """Run the app in this process and wait until Discord sees it ready and synced."""
        self._stop = asyncio.Event()
        started: asyncio.Future[RunningApp] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(run_app(self.settings(), stop=self._stop, started=started))
        done, _ = await asyncio.wait(
            {self._task, started}, timeout=20, return_when=asyncio.FIRST_COMPLETED
        )
        if self._task in done:
            self._task.result()
        self.app = started.result()
        await self.discord.wait_until_ready(20)
        await self.discord.wait_until(lambda: self.guild.id in self.discord.synced_commands, 20)
        await asyncio.wait_for(self.app.bot.wait_until_ready(), 20)
        return self.app

    async def stop(self) -> None:
        """Shut the app down cleanly (as on SIGTERM)."""
        if self._task is not None and self._stop is not None:
            self._stop.set()
            await asyncio.wait_for(self._task, 30)
        self._task = None
        self.app = None

    async def separate(self, **options: Any) -> None:
        """A member runs /separate with these options."""
        opts = [{"name": k, "value": v} for k, v in options.items() if k != "attachments"]
        await self.discord.invoke_slash(
            guild_id=self.guild.id,
            channel_id=self.guild.channel_id,
            user_id=self.member.id,
            name="separate",
            options=opts,
            attachments=options.get("attachments"),
        )

    async def separate_song(self, audio_index: int = 0, stems: str | None = None) -> None:
        extra = {"stems": stems} if stems else {}
        await self.separate(
            task_id=GENERATION_TASK_ID, audio_id=GENERATION_AUDIO_IDS[audio_index], **extra
        )

    async def job_for_task_wait(self, timeout: float = 10.0) -> JobRecord:
        """The newest job once Vidgo has its task."""
        assert self.app is not None
        store = self.app.store
        found: list[JobRecord] = []

        async def poll() -> None:
            while True:
                jobs = await store.list_jobs(limit=1)
                if jobs and jobs[0].vidgo_task_id:
                    found.append(jobs[0])
                    return
                await asyncio.sleep(0.02)

        await asyncio.wait_for(poll(), timeout)
        return found[0]

    async def wait_job(self, job_id: str, *states: JobState, timeout: float = 10.0) -> JobRecord:
        assert self.app is not None
        store = self.app.store
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            job = await store.get(job_id)
            assert job is not None
            if job.state in states:
                return job
            if loop.time() > end:
                raise AssertionError(f"job {job_id} is {job.state}, wanted {states}")
            await asyncio.sleep(0.02)

    def outcome_messages(self, job_id: str, channel_id: int | None = None) -> list[FakeMessage]:
        """Messages carrying this job's nonce, in every channel (or one)."""
        found = []
        for cid, messages in self.discord.messages.items():
            if channel_id is not None and cid != channel_id:
                continue
            found.extend(m for m in messages if m.nonce == f"stemcord-{job_id}" and not m.deleted)
        return found


MakeWorld = Callable[..., Awaitable[World]]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with FakeDiscord() as discord, FakeVidgo(callback_retry_delays=(0.05, 0.1, 0.2)) as vidgo:
        guild = discord.add_guild()
        member = discord.add_user(name="singer")
        w = World(discord, vidgo, guild, member, tmp_path / "stemcord.sqlite3")
        with discord.redirect_discord_py():
            try:
                yield w
            finally:
                await w.stop()
