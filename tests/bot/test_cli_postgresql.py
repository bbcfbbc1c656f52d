"""``python -m bot`` with ``DATABASE_URL=postgresql://…``: migrate (alone and two at once),
jobs, and the refusals that keep migrations from running under live bots."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from bot.cli import main
from storage import migrate as migrate_module
from storage.migrate import Migration, available_migrations
from storage.postgres import PostgresJobStore
from storage.records import InstanceInfo
from tests.helpers import NOW, free_port, new_job

ROOT = Path(__file__).resolve().parents[2]
LATEST = max(m.version for m in available_migrations("postgresql"))
SETTING_PREFIXES = ("DISCORD_", "VIDGO_", "WEBHOOK_", "POLL_", "JOB_", "PUBLIC_URL", "DATABASE_URL")

pytestmark = pytest.mark.postgresql


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


@pytest.fixture
def schema(pg_dsn: str) -> Iterator[str]:
    """A fresh schema name, dropped afterwards (the commands run their own event loops)."""
    name = f"t_{uuid.uuid4().hex[:20]}"
    yield name

    async def drop() -> None:
        conn = await asyncpg.connect(pg_dsn)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        finally:
            await conn.close()

    run(drop())


@pytest.fixture
def pg_url(pg_dsn: str, schema: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """DATABASE_URL of the schema, set in the environment (no secrets, no .env)."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(SETTING_PREFIXES):
            monkeypatch.delenv(name)
    url = f"{pg_dsn}?schema={schema}"
    monkeypatch.setenv("DATABASE_URL", url)
    return url


def operator_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("stemcord:")]


async def versions(dsn: str, schema: str) -> list[int]:
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        return [int(r[0]) for r in await conn.fetch("SELECT version FROM schema_migrations")]
    finally:
        await conn.close()


def test_migrate_creates_the_schema_then_says_it_is_current(
    pg_url: str, pg_dsn: str, schema: str, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = pg_url  # it carries no password, so it is shown as it is
    assert main(["migrate"]) == 0
    listed = ", ".join(f"V{m.version}" for m in available_migrations("postgresql"))
    assert capsys.readouterr().out == f"{shown}: applied {listed}; schema version {LATEST}\n"
    assert main(["migrate"]) == 0
    assert capsys.readouterr().out == (
        f"{shown}: the schema is current (version {LATEST}); nothing to apply\n"
    )
    assert sorted(run(versions(pg_dsn, schema))) == [  # type: ignore[arg-type]
        m.version for m in available_migrations("postgresql")
    ]


async def test_two_migrates_at_once_take_turns_and_apply_each_version_once(
    pg_dsn: str, pg_schema: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(SETTING_PREFIXES)}
    env.update(PYTHONPATH=str(ROOT), DATABASE_URL=f"{pg_dsn}?schema={pg_schema}")

    async def migrate() -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "migrate",
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        return proc.returncode or 0, out.decode(), err.decode()

    results = await asyncio.gather(migrate(), migrate())
    assert [code for code, _, _ in results] == [0, 0], results
    outs = sorted(out for _, out, _ in results)
    # One applied everything; the other waited for the advisory lock and found nothing left.
    assert sum("applied V1, " in out for out in outs) == 1, outs
    assert sum("the schema is current" in out for out in outs) == 1, outs
    assert sorted(await versions(pg_dsn, pg_schema)) == [
        m.version for m in available_migrations("postgresql")
    ]


def register_live_bot(dsn: str, schema: str) -> None:
    async def work() -> None:
        store = PostgresJobStore(dsn, schema=schema)
        await store.open()
        try:
            now = time.time()
            await store.register_instance(InstanceInfo("bot-a", 4242, "web-1", now, now))
        finally:
            await store.close()

    run(work())


def test_migrate_refuses_while_live_bots_work_on_a_schema_with_migrations_pending(
    pg_url: str,
    pg_dsn: str,
    schema: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["migrate"]) == 0
    register_live_bot(pg_dsn, schema)
    capsys.readouterr()
    # Nothing pending: fine beside the bots.
    assert main(["migrate"]) == 0
    assert "nothing to apply" in capsys.readouterr().out
    # A newer version with one more migration, while a bot of this version runs.
    shipped = available_migrations("postgresql")
    newer = Migration(LATEST + 1, "newer", "CREATE TABLE newer_thing (id INTEGER)")
    monkeypatch.setattr(
        migrate_module,
        "available_migrations",
        lambda backend="sqlite": [*shipped, newer] if backend == "postgresql" else shipped,
    )
    assert main(["migrate"]) == 4
    [line] = operator_lines(capsys.readouterr().err)
    assert line.startswith(f"stemcord: not migrating {pg_url}: V{LATEST + 1} pending, and 1 ")
    assert "(pid 4242 on host web-1)" in line
    assert LATEST + 1 not in run(versions(pg_dsn, schema))  # type: ignore[operator]


def test_a_bot_silent_past_the_instance_timeout_does_not_block_migrate(
    pg_url: str, pg_dsn: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["migrate"]) == 0

    async def register_stale() -> None:
        store = PostgresJobStore(pg_dsn, schema=schema)
        await store.open()
        try:
            # Its last heartbeat an hour ago: killed, and nobody released its registration.
            then = time.time() - 3600
            await store.register_instance(InstanceInfo("gone", 7, "web-2", then, then))
        finally:
            await store.close()

    run(register_stale())
    shipped = available_migrations("postgresql")
    newer = Migration(LATEST + 1, "newer", "CREATE TABLE newer_thing (id INTEGER)")
    monkeypatch.setattr(
        migrate_module,
        "available_migrations",
        lambda backend="sqlite": [*shipped, newer] if backend == "postgresql" else shipped,
    )
    assert main(["migrate"]) == 0
    assert LATEST + 1 in run(versions(pg_dsn, schema))  # type: ignore[operator]


def test_jobs_list_and_show_read_postgresql(
    pg_url: str, pg_dsn: str, schema: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async def seed() -> None:
        store = PostgresJobStore(pg_dsn, schema=schema)
        await store.open()
        try:
            await store.admit(new_job("pgjob00001", key="k1"), NOW, submit_lease_until=NOW)
        finally:
            await store.close()

    run(seed())
    assert main(["jobs", "list"]) == 0
    out = capsys.readouterr().out
    assert "pgjob00001" in out and "accepted" in out
    assert main(["jobs", "show", "PGJOB00001"]) == 0
    assert "id: pgjob00001" in capsys.readouterr().out
    assert main(["jobs", "show", "nosuchjob0"]) == 1
    assert operator_lines(capsys.readouterr().err) == [f"stemcord: no job 'nosuchjob0' in {pg_url}"]


def test_jobs_on_a_schema_without_tables_says_how_to_create_them(
    pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["jobs", "list"]) == 1
    assert operator_lines(capsys.readouterr().err) == [
        f"stemcord: no Stemcord tables in {pg_url}; the bot creates them at its first start, "
        "or run `python -m bot migrate`"
    ]


def test_an_unreachable_server_is_one_line_that_never_shows_the_password(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    monkeypatch.setenv(
        "DATABASE_URL", f"postgresql://stemcord:hunter2-secret@127.0.0.1:{port}/test?schema=x"
    )
    for argv in (["migrate"], ["jobs", "list"], ["export"]):
        assert main(argv) == 2
        captured = capsys.readouterr()
        [line] = operator_lines(captured.err)
        assert f"postgresql://stemcord@127.0.0.1:{port}/test?schema=x" in line
        assert "ConnectionRefusedError" in line
        assert "hunter2" not in captured.err + captured.out
