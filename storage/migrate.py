"""Versioned SQL migrations (``migrations/V<n>__<name>.sql``), applied in order.

Each applied version is recorded in ``schema_migrations``; running the migrator again is a
no-op. A migration and its record are written in one transaction, so a crash mid-way leaves
the previous version intact.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from importlib import resources

import aiosqlite

_NAME = re.compile(r"^V(?P<version>\d+)__(?P<name>[a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One SQL file."""

    version: int
    name: str
    sql: str


def available_migrations() -> list[Migration]:
    """Every migration shipped with the package, in version order."""
    found: list[Migration] = []
    for entry in resources.files("storage.migrations").iterdir():
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
