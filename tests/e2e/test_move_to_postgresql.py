"""Moving a running installation from SQLite to PostgreSQL with ``export`` and ``import``.

A job is in flight at Vidgo when the SQLite bot stops; the database moves; the bot starts on
PostgreSQL; Vidgo's callback — to the URL it was given before the move — still finds the job,
which is delivered once.
"""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage.jobstate import JobState
from storage.postgres import PostgresJobStore
from tests.e2e.processes import BotProcess, bot_env, free_port
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_models import FakeGuild
from tests.fakes.vidgo import FakeVidgo


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeDiscord, FakeVidgo, FakeGuild]]:
    async with FakeDiscord() as discord, FakeVidgo(callback_retry_delays=(0.2, 0.5)) as vidgo:
        guild = discord.add_guild()
        discord.add_user(990_000_000_000_000_101, "singer")
        yield discord, vidgo, guild


async def run_command(env: dict[str, str], cwd: Path, *argv: str) -> tuple[int, str, str]:
    proc = BotProcess(env, cwd, *argv)
    await proc.start()
    code = await proc.wait(60)
    return code, proc.stdout.decode(), proc.err_text()


async def test_a_job_in_flight_survives_the_move_and_its_callback_still_lands(
    tmp_path: Path,
    fakes: tuple[FakeDiscord, FakeVidgo, FakeGuild],
    pg_dsn: str,
    pg_schema: str,
) -> None:
    discord, vidgo, guild = fakes
    port = free_port()
    sqlite_db = tmp_path / "stemcord.sqlite3"
    postgres_url = f"{pg_dsn}?schema={pg_schema}"
    common = {
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "WEBHOOK_HOST": "127.0.0.1",
        "WEBHOOK_PORT": str(port),
        "DEV_GUILD_ID": str(guild.id),
        # Only the callback can finish the job within the test.
        "POLL_INTERVAL_SECONDS": "600",
        "POLL_MAX_INTERVAL_WITH_CALLBACKS_SECONDS": "600",
    }
    on_sqlite = bot_env(discord, vidgo, sqlite_db, **common)
    on_postgres = {**bot_env(discord, vidgo, sqlite_db, **common), "DATABASE_URL": postgres_url}

    async with BotProcess(on_sqlite, tmp_path) as old:
        await old.wait_ready()
        await discord.wait_until(lambda: guild.id in discord.synced_commands, 20)
        await discord.invoke_slash(
            guild_id=guild.id,
            channel_id=guild.channel_id,
            user_id=990_000_000_000_000_101,
            name="separate",
            options=[{"name": "link", "value": "https://cdn.example.org/move/song.mp3"}],
        )
        [task] = await vidgo.wait_for_task(1, timeout=20)
        await discord.wait_until(lambda: f"submitted to Vidgo as {task.task_id}" in old.err_text())
        assert await old.stop() == 0, old.err_text()

    export = tmp_path / "move.jsonl"
    code, out, err = await run_command(on_sqlite, tmp_path, "export", "--output", str(export))
    assert code == 0, err
    # The callback tokens' secret (made at the submit) and the media links' (made at start).
    assert out.startswith("exported 2 app_secrets, 0 guild_settings, 0 results_cache, 1 jobs")
    assert stat.S_IMODE(export.stat().st_mode) == 0o600
    code, out, err = await run_command(on_postgres, tmp_path, "import", str(export))
    assert code == 0, err
    assert "1 jobs, 0 operator_flags (exported from sqlite) into postgresql://" in out

    async with BotProcess(on_postgres, tmp_path) as new:
        await new.wait_ready()
        # Vidgo finishes the task and calls the URL it was given before the move.
        await vidgo.finish(task.task_id)
        await discord.wait_until(lambda: "delivered (message" in new.err_text(), 30)
        assert vidgo.callbacks_sent[0] == (task.task_id, 200)  # the token verified
        store = PostgresJobStore(pg_dsn, schema=pg_schema)
        await store.open()
        try:
            [job] = await store.list_jobs(limit=5)
        finally:
            await store.close()
        assert job.state is JobState.DELIVERED and job.vidgo_task_id == task.task_id
        posted = [
            m
            for messages in discord.messages.values()
            for m in messages
            if m.nonce == f"stemcord-{job.id}" and not m.deleted
        ]
        assert len(posted) == 1
        assert len(vidgo.tasks) == 1  # nothing was submitted again
        assert await new.stop() == 0, new.err_text()
    assert discord.rule_violations == []
