"""The offline trial (docs/development.md, linked from the README), done as written: both
fakes as processes, the bot against them through environment variables, a member's /separate
through the fake's control API."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiohttp

from tests.e2e.processes import ROOT, SETTING_PREFIXES, BotProcess, eventually
from tests.fakes.discord import DEFAULT_TOKEN
from tests.fakes.vidgo import GENERATION_AUDIO_IDS, GENERATION_TASK_ID

GUIDE = (ROOT / "docs" / "development.md").read_text()
VIDGO_ARGS = ("--api-key", "offline-vidgo-key", "--auto-finish", "3")
DISCORD_ARGS = ("--seed",)


def test_the_guide_documents_these_commands() -> None:
    assert f"-m tests.fakes.vidgo --port 8900 {' '.join(VIDGO_ARGS)}" in GUIDE
    assert "-m tests.fakes.discord --port 8901 --seed" in GUIDE
    assert f"DISCORD_TOKEN={DEFAULT_TOKEN}" in GUIDE
    assert "VIDGO_API_KEY=offline-vidgo-key" in GUIDE
    assert f'"value": "{GENERATION_TASK_ID}"' in GUIDE
    assert f'"value": "{GENERATION_AUDIO_IDS[0]}"' in GUIDE
    assert "your stems are ready" in GUIDE


async def start_fake(module: str, *args: str) -> tuple[asyncio.subprocess.Process, dict[str, str]]:
    """A fake as its own process on a free port; the KEY=value lines it prints at start."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        "--port",
        "0",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    printed: dict[str, str] = {}
    wanted = 5 if "--seed" in args else 1
    while len(printed) < wanted:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
        assert line, f"{module} ended before printing its addresses"
        key, _, value = line.partition("=")
        printed[key] = value
    return proc, printed


async def test_the_offline_trial_separates_a_song(tmp_path: Path) -> None:
    vidgo, vidgo_printed = await start_fake("tests.fakes.vidgo", *VIDGO_ARGS)
    discord, ids = await start_fake("tests.fakes.discord", *DISCORD_ARGS)
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(SETTING_PREFIXES)}
        env.update(
            PYTHONPATH=str(ROOT),
            DISCORD_TOKEN=DEFAULT_TOKEN,
            DISCORD_API_BASE=ids["FAKE_DISCORD_API"],
            DISCORD_GATEWAY_URL=ids["FAKE_DISCORD_GATEWAY"],
            VIDGO_API_KEY="offline-vidgo-key",
            VIDGO_BASE_URL=vidgo_printed["FAKE_VIDGO_URL"],
            DATABASE_URL=f"sqlite:///{tmp_path / 'offline.sqlite3'}",
            PUBLIC_URL="",
            DEV_GUILD_ID="",
            ADMIN_ENABLED="false",
        )
        guild = ids["FAKE_DISCORD_GUILD_ID"]
        check = BotProcess(env, tmp_path, "check")
        await check.start()
        assert await check.wait() == 0, check.stdout.decode()
        assert check.stdout.decode().splitlines()[-1] == "All checks passed."
        sync = BotProcess(env, tmp_path, "sync", "--guild", guild)
        await sync.start()
        assert await sync.wait() == 0, sync.err_text()

        async with BotProcess(env, tmp_path) as bot, aiohttp.ClientSession() as session:
            await eventually(lambda: "ready: logged in as" in bot.err_text(), 30)
            control = ids["FAKE_DISCORD_API"].removesuffix("/api/v10") + "/_control"
            body = {
                "guild_id": int(guild),
                "channel_id": int(ids["FAKE_DISCORD_CHANNEL_ID"]),
                "user_id": int(ids["FAKE_DISCORD_USER_ID"]),
                "name": "separate",
                "options": [
                    {"name": "task_id", "value": GENERATION_TASK_ID},
                    {"name": "audio_id", "value": GENERATION_AUDIO_IDS[0]},
                ],
            }
            async with session.post(control + "/slash", json=body) as resp:
                assert resp.status == 200, await resp.text()
            url = f"{control}/messages?channel_id={ids['FAKE_DISCORD_CHANNEL_ID']}"
            messages: list[dict[str, object]] = []

            async def result_posted() -> None:
                while True:
                    async with session.get(url) as resp:
                        messages[:] = await resp.json()
                    if any("your stems are ready" in str(m["content"]) for m in messages):
                        return
                    await asyncio.sleep(0.2)

            await asyncio.wait_for(result_posted(), 60)
            assert await bot.stop() == 0, bot.err_text()
    finally:
        for proc in (vidgo, discord):
            proc.terminate()
            await proc.wait()
