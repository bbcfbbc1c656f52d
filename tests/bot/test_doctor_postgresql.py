"""``check``'s database line on PostgreSQL: the server, its version, the schema and its
version; what is wrong when it cannot be used; never a migration, never the password."""

from __future__ import annotations

import asyncpg

from bot.doctor import Status, check_database
from bot.settings import Settings, load_settings
from storage.migrate import available_migrations
from storage.postgres import PostgresJobStore
from tests.helpers import free_port

LATEST = max(m.version for m in available_migrations("postgresql"))


def settings_for(url: str) -> Settings:
    return load_settings(
        _env_file=None,
        DISCORD_TOKEN="a-discord-token-value",
        VIDGO_API_KEY="a-vidgo-key-value",
        DATABASE_URL=url,
    )


async def server_version(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        return str(await conn.fetchval("SHOW server_version")).split(" ")[0]
    finally:
        await conn.close()


async def test_a_current_schema_is_reported_with_the_server_and_written_once(
    pg_dsn: str, pg_schema: str
) -> None:
    store = PostgresJobStore(pg_dsn, schema=pg_schema)
    await store.open()
    await store.close()
    url = f"{pg_dsn}?schema={pg_schema}"
    result = await check_database(settings_for(url))
    assert result.status is Status.OK, result
    version = await server_version(pg_dsn)
    assert result.detail == (
        f"{url}: PostgreSQL {version}, schema {pg_schema}, schema version {LATEST}"
    )
    conn = await asyncpg.connect(pg_dsn, server_settings={"search_path": pg_schema})
    try:
        written = await conn.fetchval("SELECT written_at FROM health_probe WHERE id = 1")
    finally:
        await conn.close()
    assert written > 0  # readiness's write went through with the bot's role


async def test_an_empty_schema_is_ok_and_is_not_created_by_check(
    pg_dsn: str, pg_schema: str
) -> None:
    result = await check_database(settings_for(f"{pg_dsn}?schema={pg_schema}"))
    assert result.status is Status.OK, result
    assert result.detail.endswith("no Stemcord tables yet: the bot creates them at its first start")
    conn = await asyncpg.connect(pg_dsn)
    try:
        exists = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", pg_schema
        )
    finally:
        await conn.close()
    assert not exists


async def test_pending_migrations_are_reported_not_applied(pg_dsn: str, pg_schema: str) -> None:
    store = PostgresJobStore(pg_dsn, schema=pg_schema)
    await store.open()
    await store.close()
    conn = await asyncpg.connect(pg_dsn, server_settings={"search_path": pg_schema})
    try:
        await conn.execute("DELETE FROM schema_migrations WHERE version = $1", LATEST)
        result = await check_database(settings_for(f"{pg_dsn}?schema={pg_schema}"))
        still = await conn.fetchval(
            "SELECT COUNT(*) FROM schema_migrations WHERE version = $1", LATEST
        )
    finally:
        await conn.close()
    assert result.status is Status.OK, result
    assert f"schema version {LATEST - 1}; a bot of this version applies V{LATEST}-V{LATEST}" in (
        result.detail
    )
    assert still == 0  # check migrated nothing: other bots may be running on it


async def test_an_unreachable_server_fails_in_words_without_the_password() -> None:
    port = free_port()
    url = f"postgresql://stemcord:topsecret-pw@127.0.0.1:{port}/stemcord?schema=s"
    result = await check_database(settings_for(url))
    assert result.status is Status.FAIL
    assert result.detail == (
        f"cannot reach PostgreSQL for postgresql://stemcord@127.0.0.1:{port}/stemcord?schema=s: "
        "connection refused (nothing listens there)"
    )
    assert result.fix is not None and "host and port in DATABASE_URL" in result.fix
    assert "topsecret" not in f"{result.detail} {result.fix}"


async def test_a_role_the_server_does_not_know_is_a_refused_login(pg_dsn: str) -> None:
    host = pg_dsn.split("@", 1)[1]
    url = f"postgresql://nobody_here:pw@{host}?schema=s"
    result = await check_database(settings_for(url))
    assert result.status is Status.FAIL
    assert "PostgreSQL refused the login" in result.detail
    assert result.fix is not None and "user and password" in result.fix


async def test_a_database_that_does_not_exist_says_how_to_create_it(pg_dsn: str) -> None:
    base = pg_dsn.rsplit("/", 1)[0]
    result = await check_database(settings_for(f"{base}/no_such_database_here?schema=s"))
    assert result.status is Status.FAIL
    assert "does not exist" in result.detail
    assert result.fix is not None and "CREATE DATABASE" in result.fix
