"""Exactly once past Discord's nonce window: a bot killed between posting and recording it.

The real ``python -m bot`` runs as a child process against both fakes. The fake Discord
stores the result message at once but answers the POST late, so the bot is SIGKILLed after
its post exists and before it could record it. Once Discord's nonce would no longer return
the first message, the restarted bot must find its own post instead of posting again.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from bench.soak import BotProcess, bot_env, lift_limits
from tests.fakes.discord import FakeDiscord
from tests.fakes.vidgo import GENERATION_AUDIO_IDS, GENERATION_TASK_ID, FakeVidgo


def job_row(db_path: Path) -> tuple[str, str, int | None, float | None]:
    conn = sqlite3.connect(db_path, timeout=30)
    try:
        row = conn.execute(
            "SELECT id, state, result_message_id, delivery_started_at FROM jobs"
        ).fetchone()
    finally:
        conn.close()
    assert row is not None
    return str(row[0]), str(row[1]), row[2], row[3]


def age_the_delivery_attempt(db_path: Path, seconds: float) -> None:
    """What the bot's clock would show after ``seconds`` more: the attempt is that old."""
    conn = sqlite3.connect(db_path, timeout=30)
    try:
        conn.execute("UPDATE jobs SET delivery_started_at = delivery_started_at - ?", (seconds,))
        conn.commit()
    finally:
        conn.close()


async def wait_until(predicate: object, timeout: float) -> None:
    assert callable(predicate)
    async with asyncio.timeout(timeout):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.05)


async def test_a_restart_after_the_nonce_window_finds_the_first_post(tmp_path: Path) -> None:
    db_path = tmp_path / "bot.sqlite3"
    async with FakeDiscord() as discord, FakeVidgo(callback_retry_delays=(0.2, 0.4)) as vidgo:
        guild = discord.add_guild()
        member = discord.add_user(name="singer")
        bot = BotProcess(bot_env(discord, vidgo, db_path, guild.id), tmp_path / "bot.log")
        try:
            await lift_limits(db_path, guild.id)
            await bot.start()
            await discord.wait_until_ready(60)
            await discord.wait_until(lambda: guild.id in discord.synced_commands, 30)
            await discord.invoke_slash(
                guild_id=guild.id,
                channel_id=guild.channel_id,
                user_id=member.id,
                name="separate",
                options=[
                    {"name": "task_id", "value": GENERATION_TASK_ID},
                    {"name": "audio_id", "value": GENERATION_AUDIO_IDS[0]},
                ],
            )
            [task] = await vidgo.wait_for_task(1, timeout=20)
            # The result POST lands at once but its answer would come a minute late.
            discord.delay_next(
                1, 60.0, method="POST", path_contains=f"/channels/{guild.channel_id}/messages"
            )
            await vidgo.finish(task.task_id)
            job_id = job_row(db_path)[0]
            nonce = f"stemcord-{job_id}"

            def posted() -> list[object]:
                return [
                    m
                    for m in discord.messages.get(guild.channel_id, [])
                    if m.nonce == nonce and not m.deleted
                ]

            await wait_until(lambda: len(posted()) == 1, 20)
            await bot.kill()
            _, state, message_id, started = job_row(db_path)
            assert state == "succeeded" and message_id is None and started is not None
            # Ten minutes pass: Discord forgets the nonce, and so does the bot's record.
            discord.advance_clock(600)
            age_the_delivery_attempt(db_path, 600)
            await bot.start()
            await wait_until(lambda: job_row(db_path)[1] == "delivered", 30)
            _, state, message_id, _ = job_row(db_path)
            assert state == "delivered"
            [first] = posted()
            assert message_id == first.id  # type: ignore[attr-defined]
            assert discord.nonce_replays == 0  # found by its footer, not by the nonce
            await bot.stop()
        finally:
            await bot.kill()
