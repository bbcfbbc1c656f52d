"""Versioned SQL migrations (``migrations/V<n>__<name>.sql``), applied in order.

Each applied version is recorded in ``schema_migrations``; running the migrator again is a
no-op. A migration and its record are written in one transaction, so a crash mid-way leaves
the previous version intact.

Each backend has its own files under the same version numbers and meaning: SQLite's are in
``storage/migrations/``, PostgreSQL's in ``storage/migrations/postgresql/``. PostgreSQL is
shared by several processes, so its migrator holds an advisory lock while it works.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any, TypeAlias

import aiosqlite
import asyncpg
from asyncpg.pool import PoolConnectionProxy

_NAME = re.compile(r"^V(?P<version>\d+)__(?P<name>[a-z0-9_]+)\.sql$")

# Where each backend's migration files live (a package, so they ship with the wheel).
MIGRATION_PACKAGES: dict[str, str] = {
    "sqlite": "storage.migrations",
    "postgresql": "storage.migrations.postgresql",
}

# A PostgreSQL connection, plain or lent by a pool.
PgConnection: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"


@dataclass(frozen=True, slots=True)
class Migration:
    """One SQL file."""

    version: int
    name: str
    sql: str


def available_migrations(backend: str = "sqlite") -> list[Migration]:
    """Every migration shipped for ``backend`` (``sqlite`` or ``postgresql``), in order."""
    try:
        package = MIGRATION_PACKAGES[backend]
    except KeyError:
        raise ValueError(f"no migrations for backend {backend!r}") from None
    found: list[Migration] = []
    for entry in resources.files(package).iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match["version"]), match["name"], entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions: {versions}")
    return found


async def applied_versions(conn: aiosqlite.Connection) -> set[int]:
    """Versions recorded as applied."""
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
    )
    async with conn.execute("SELECT version FROM schema_migrations") as cur:
        return {int(row[0]) for row in await cur.fetchall()}


async def migrate(conn: aiosqlite.Connection) -> list[int]:
    """Apply pending migrations; return the versions applied now."""
    done = await applied_versions(conn)
    applied: list[int] = []
    for migration in available_migrations():
        if migration.version in done:
            continue
        # executescript commits anything pending first; the explicit BEGIN makes the file
        # and its record one transaction.
        # Values come from our own file names (checked by _NAME), never from input.
        values = f"({migration.version}, '{migration.name}', {time.time()!r})"
        record = f"INSERT INTO schema_migrations (version, name, applied_at) VALUES {values};"  # noqa: S608
        try:
            await conn.executescript(f"BEGIN IMMEDIATE;\n{migration.sql}\n;{record}\nCOMMIT;")
        except BaseException:
            if conn.in_transaction:
                await conn.rollback()
            raise
        applied.append(migration.version)
    return applied


async def schema_version(conn: aiosqlite.Connection) -> int:
    """The highest applied version (0 for an empty database)."""
    versions = await applied_versions(conn)
    return max(versions, default=0)


# --- PostgreSQL ---------------------------------------------------------------------------

_PG_MIGRATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
)
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def check_schema_name(schema: str) -> str:
    """Return ``schema`` if it is a plain lower-case identifier, else raise ``ValueError``.

    Only such names are accepted: they need no quoting rules of their own, and they mean the
    same thing in ``search_path`` (which folds case) and in ``CREATE SCHEMA``.
    """
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(
            "a PostgreSQL schema name must be lower-case letters, digits and _ "
            "(at most 63, not starting with a digit)"
        )
    return schema


def advisory_key(*parts: object) -> int:
    """A signed 64-bit advisory-lock key for ``parts``, the same in every process.

    A stable hash (not Python's salted ``hash``) so that two processes agree on the key.
    """
    text = "\x1f".join(str(part) for part in parts)
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def postgresql_applied_versions(conn: PgConnection) -> set[int]:
    """Versions recorded as applied in the connection's current schema (none if no table)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return set()
    rows = await conn.fetch("SELECT version FROM schema_migrations")
    return {int(row[0]) for row in rows}


async def postgresql_schema_version(conn: PgConnection) -> int:
    """The highest version applied in the connection's current schema (0 when empty)."""
    return max(await postgresql_applied_versions(conn), default=0)


async def migrate_postgresql(conn: PgConnection, schema: str) -> list[int]:
    """Create ``schema`` if needed and apply its pending migrations; return those applied.

    The connection's ``search_path`` must name ``schema`` first (tables are created there).
    A session advisory lock keyed on the schema is held throughout, so processes starting
    together migrate one after the other: the first applies, the others find nothing left.
    """
    check_schema_name(schema)
    key = advisory_key("stemcord", "migrate", schema)
    await conn.execute("SELECT pg_advisory_lock($1)", key)
    try:
        # Look before creating: CREATE SCHEMA IF NOT EXISTS still asks for the CREATE
        # privilege on the database, which a role that owns only its schema may lack.
        present = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema
        )
        if not present:
            await conn.execute(f"CREATE SCHEMA {schema}")  # checked identifier
        await conn.execute(_PG_MIGRATIONS_TABLE)
        done = await postgresql_applied_versions(conn)
        applied: list[int] = []
        for migration in available_migrations("postgresql"):
            if migration.version in done:
                continue
            # PostgreSQL's DDL is transactional: the file and its record commit together.
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    time.time(),
                )
            applied.append(migration.version)
        return applied
    finally:
        # A connection that broke has lost its session lock already.
        if not conn.is_closed():
            await conn.execute("SELECT pg_advisory_unlock($1)", key)
