"""A bot killed in the middle of its media stage: the next one resumes it, once.

The real ``python -m bot`` runs as a child process against both fakes. The fake Vidgo holds
the download of one stem, so the bot is SIGKILLed with some stems kept and the rest not; the
restarted bot must finish the stage without fetching again what it already kept, and post the
result (with its backing track attached) exactly once.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from tests.e2e.processes import BotProcess, bot_env, eventually
from tests.fakes.discord import FakeDiscord
from tests.fakes.vidgo import UPLOAD_KEYS, FakeVidgo


def job_row(db_path: Path) -> dict[str, Any]:
    conn = sqlite3.connect(db_path, timeout=30)
    try:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT id, state, result, prepared_at FROM jobs").fetchone()
    finally:
        conn.close()
    assert row is not None
    found = dict(row)
    found["result"] = json.loads(found["result"]) if found["result"] else None
    return found


async def test_a_bot_killed_mid_stage_resumes_it_and_delivers_once(tmp_path: Path) -> None:
    db_path = tmp_path / "stemcord.sqlite3"
    async with FakeDiscord() as discord, FakeVidgo() as vidgo:
        guild = discord.add_guild()
        member = discord.add_user(name="singer")
        env = bot_env(
            discord,
            vidgo,
            db_path,
            DEV_GUILD_ID=str(guild.id),
            POLL_INTERVAL_SECONDS="0.2",
            POLL_MAX_INTERVAL_SECONDS="0.5",
        )
        bot = BotProcess(env, tmp_path)
        try:
            await bot.start()
            await bot.wait_ready(60)
            await discord.wait_until(lambda: guild.id in discord.synced_commands, 30)
            await discord.invoke_slash(
                guild_id=guild.id,
                channel_id=guild.channel_id,
                user_id=member.id,
                name="separate",
                options=[{"name": "link", "value": "https://cdn.example.org/songs/demo.mp3"}],
            )
            [task] = await vidgo.wait_for_task(1, timeout=20)
            # The stems come vocals first, then in Vidgo's order: the fourth is the piano.
            vidgo.media_fault_next(1, "stall", stem="piano")
            await vidgo.finish(task.task_id, callback=False)
            await eventually(lambda: vidgo.stalled == ["piano"], 30)

            kept = tmp_path / "media" / task.task_id
            assert sorted(p.name for p in kept.iterdir()) == ["bass.mp3", "drums.mp3", "vocals.mp3"]
            row = job_row(db_path)
            assert row["state"] == "succeeded" and row["prepared_at"] is None
            # The stage recorded its progress as it went.
            assert set(row["result"]["media"]["files"]) == {"vocals", "bass", "drums"}

            await bot.kill()
            await bot.start()
            await eventually(lambda: job_row(db_path)["state"] == "delivered", 60)

            row = job_row(db_path)
            assert row["prepared_at"] is not None
            media = row["result"]["media"]
            assert media["backing"] == "instrumental.mp3" and media["error"] is None
            assert set(media["files"]) == {*UPLOAD_KEYS, "instrumental"}
            # Nothing kept before the kill was fetched again; the held download was retried.
            for stem in UPLOAD_KEYS:
                expected = 2 if stem == "piano" else 1
                assert vidgo.stem_downloads(task.task_id, stem) == expected, stem
            posted = [
                m
                for m in discord.messages.get(guild.channel_id, [])
                if m.nonce == f"stemcord-{row['id']}" and not m.deleted
            ]
            assert len(posted) == 1
            assert [a.filename for a in posted[0].attachments] == [
                "demo - backing track.mp3",
                "demo - vocals.mp3",
            ]
            assert await bot.stop() == 0, bot.err_text()
        finally:
            vidgo.release_stems()
            await bot.kill()
