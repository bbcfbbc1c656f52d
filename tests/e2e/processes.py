"""The bot as a real ``python -m bot`` process against the fakes, for process-level tests."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp

from tests.fakes.discord import FakeDiscord
from tests.fakes.vidgo import FakeVidgo

ROOT = Path(__file__).resolve().parents[2]
# Settings the test process may carry that must not leak into a child bot.
SETTING_PREFIXES = (
    "DISCORD_",
    "VIDGO_",
    "WEBHOOK_",
    "ADMIN_",
    "LOG_",
    "PUBLIC_URL",
    "DATABASE_URL",
    "DEV_GUILD",
    "POLL_",
    "JOB_",
    "STEMCORD_",
)


async def eventually(predicate: Callable[[], bool], timeout: float = 20) -> None:
    """Wait until ``predicate()`` holds (checked every 20 ms); TimeoutError after ``timeout``."""
    async with asyncio.timeout(timeout):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.02)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bot_env(discord: FakeDiscord, vidgo: FakeVidgo, db_path: Path, **values: str) -> dict[str, str]:
    """Environment for ``python -m bot`` pointed at both fakes (polling, admin on a free port)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SETTING_PREFIXES)}
    env.update(
        PYTHONPATH=str(ROOT),
        DISCORD_TOKEN=discord.token,
        DISCORD_API_BASE=discord.api_base,
        DISCORD_GATEWAY_URL=discord.gateway_url,
        VIDGO_API_KEY=vidgo.api_key,
        VIDGO_BASE_URL=vidgo.base_url,
        DATABASE_URL=f"sqlite:///{db_path}",
        ADMIN_PORT=str(free_port()),
        LOG_LEVEL="INFO",
    )
    env.update(values)
    return env


class BotProcess:
    """``python -m bot ARGS`` as a child; stderr is collected as it comes."""

    def __init__(
        self, env: dict[str, str], cwd: Path, *argv: str, unprivileged: bool = False
    ) -> None:
        self.env = env
        self.cwd = cwd
        self.argv = argv or ("run",)
        self.unprivileged = unprivileged
        self.proc: asyncio.subprocess.Process | None = None
        self.stderr = bytearray()
        self.stdout = bytearray()
        self._drains: list[asyncio.Task[None]] = []

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.env['ADMIN_PORT']}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.returncode

    def err_text(self) -> str:
        return self.stderr.decode(errors="replace")

    async def start(self) -> Self:
        launcher = ["-m", "tests.e2e.unprivileged"] if self.unprivileged else []
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *launcher,
            "-m",
            "bot",
            *self.argv,
            cwd=self.cwd,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._drains = [
            asyncio.create_task(self._drain(self.proc.stdout, self.stdout)),
            asyncio.create_task(self._drain(self.proc.stderr, self.stderr)),
        ]
        return self

    @staticmethod
    async def _drain(stream: asyncio.StreamReader, into: bytearray) -> None:
        while chunk := await stream.read(65536):
            into.extend(chunk)

    async def wait(self, timeout: float = 60) -> int:
        """Wait for the process to end; its exit status."""
        assert self.proc is not None
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        await asyncio.gather(*self._drains)
        return code

    async def readyz(self) -> tuple[int, dict[str, Any]]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.admin_url + "/readyz") as resp,
        ):
            return resp.status, json.loads(await resp.text())

    async def wait_ready(self, timeout: float = 30) -> None:
        """Until /readyz says 200; fails with the bot's stderr if it exits first."""
        async with asyncio.timeout(timeout):
            while True:
                if self.returncode is not None:
                    raise AssertionError(f"the bot exited {self.returncode}: {self.err_text()}")
                try:
                    if (await self.readyz())[0] == 200:
                        return
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.1)

    async def stop(self) -> int:
        """SIGTERM (the clean shutdown) and wait."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return await self.wait(30)

    async def kill(self) -> int:
        """SIGKILL: no clean-up of any kind."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.kill()
        return await self.wait(30)

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is not None and self.proc.returncode is None:
            await self.kill()
