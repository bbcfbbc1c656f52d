"""Moving a Stemcord database between backends: export to a portable file, import from it.

The file is JSON lines (UTF-8), written by :func:`export_store` and read by
:func:`import_store`:

1. a header: ``{"format": "stemcord-export", "format_version": 1, "schema_version": 6,
   "source": "sqlite", "exported_at": "2026-12-03T18:00:00Z", "tables": {"jobs":
   {"columns": [...]}, ...}}``;
2. one line per row, ``{"table": "jobs", "row": [...]}``, the values in the header's column
   order: JSON numbers, strings, ``true``/``false`` and ``null`` as the database holds them
   (a JSON column is its text, verbatim);
3. an end line, ``{"end": {"rows": {"jobs": 1234, ...}}}``: a file cut short is refused.

**What moves.** Every table of the schema with every column, except three that belong to the
database rather than to the bot's data: ``schema_migrations`` (the target records its own),
``health_probe`` (readiness's scratch row) and ``instances`` (processes of the old database;
leases they held are released as orphaned by the first process on the new one). So the jobs,
the results cache, the servers' policies and the server secrets move — the callback-token
secret with them, so every callback URL already given to Vidgo still finds its job. Tables a
later migration adds move too, after the known ones.

**What the import accepts.** A file of this format whose schema version is not newer than
this version's, into a migrated target whose tables are all empty; the whole import is one
transaction, so a refused or failed import leaves the target as it was. Values are converted
to each target column's type (``0``/``1`` and ``false``/``true`` between SQLite's integers and
PostgreSQL's booleans); a value that does not fit is refused with its line number. Text bound
for PostgreSQL has NUL characters replaced by U+FFFD, as the PostgreSQL store does.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TextIO

import asyncpg

from storage.base import JobStore
from storage.migrate import available_migrations, postgresql_schema_version
from storage.postgres import PostgresJobStore
from storage.sqlite import SqliteJobStore

FORMAT = "stemcord-export"
FORMAT_VERSION = 1
# Moved first, in this order; any other table after them, by name.
KNOWN_TABLES = ("app_secrets", "guild_settings", "results_cache", "jobs")
# Tables of the database itself, never moved.
NOT_MOVED = frozenset({"schema_migrations", "health_probe", "instances"})
# Rows inserted per statement on import.
_BATCH = 500


class TransferError(Exception):
    """An export or import that cannot be done; the message is one line for the operator."""


class TargetNotEmpty(TransferError):
    """The import target already holds data."""


class FileTooNew(TransferError):
    """The file was exported by a newer version (a schema this version does not know)."""


class BadExportFile(TransferError):
    """The file is not a complete export of this format."""


@dataclass
class TransferSummary:
    """What an export wrote or an import read: rows per table and the schema version."""

    schema_version: int
    source: str
    rows: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        """``1234 jobs, 10 results_cache, 2 guild_settings, 1 app_secrets``."""
        return ", ".join(f"{count} {table}" for table, count in self.rows.items()) or "no rows"


@dataclass(frozen=True, slots=True)
class Column:
    """A column of a table and its declared type (lower case)."""

    name: str
    type: str


class _Tables(Protocol):
    """The raw access to one backend that export and import need."""

    backend: str

    async def schema_version(self) -> int: ...

    async def tables(self) -> list[str]: ...

    async def columns(self, table: str) -> list[Column]: ...

    async def count(self, table: str) -> int: ...

    def rows(self, table: str, columns: Sequence[str]) -> AsyncIterator[tuple[Any, ...]]: ...


def _ident(name: str) -> str:
    """A table or column name quoted for SQL (names come from the database's own catalog
    or from a checked file header, and are quoted either way)."""
    return '"' + name.replace('"', '""') + '"'


def _order_by(table: str, columns: Sequence[str]) -> str:
    # Leaders before their followers (jobs.leader_id references jobs.id); otherwise the
    # primary key order of a plain table is not needed, but a stable order makes files
    # comparable.
    if table == "jobs" and "leader_id" in columns:
        return " ORDER BY (leader_id IS NOT NULL), created_at, id"
    return f" ORDER BY {_ident(columns[0])}" if columns else ""


def table_order(names: Iterable[str]) -> list[str]:
    """The tables to move, known ones first."""
    present = [name for name in names if name not in NOT_MOVED]
    known = [name for name in KNOWN_TABLES if name in present]
    return known + sorted(name for name in present if name not in KNOWN_TABLES)


class _SqliteTables:
    backend = "sqlite"

    def __init__(self, store: SqliteJobStore) -> None:
        self._conn = store.conn

    async def schema_version(self) -> int:
        async with self._conn.execute("SELECT MAX(version) FROM schema_migrations") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    async def tables(self) -> list[str]:
        async with self._conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ) as cur:
            return [str(row[0]) for row in await cur.fetchall()]

    async def columns(self, table: str) -> list[Column]:
        async with self._conn.execute(f"PRAGMA table_info({_ident(table)})") as cur:
            return [Column(str(row[1]), str(row[2]).lower()) for row in await cur.fetchall()]

    async def count(self, table: str) -> int:
        async with self._conn.execute(f"SELECT COUNT(*) FROM {_ident(table)}") as cur:  # noqa: S608 - quoted catalog name
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def rows(self, table: str, columns: Sequence[str]) -> AsyncIterator[tuple[Any, ...]]:
        names = ", ".join(_ident(c) for c in columns)
        sql = f"SELECT {names} FROM {_ident(table)}{_order_by(table, columns)}"  # noqa: S608 - quoted catalog names
        async with self._conn.execute(sql) as cur:
            while batch := await cur.fetchmany(_BATCH):
                for row in batch:
                    yield tuple(row)


class _PostgresTables:
    backend = "postgresql"

    def __init__(self, conn: Any, schema: str) -> None:
        self._conn = conn
        self._schema = schema

    async def schema_version(self) -> int:
        return await postgresql_schema_version(self._conn)

    async def tables(self) -> list[str]:
        rows = await self._conn.fetch(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = $1 AND table_type = 'BASE TABLE'",
            self._schema,
        )
        return [str(row[0]) for row in rows]

    async def columns(self, table: str) -> list[Column]:
        rows = await self._conn.fetch(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
            self._schema,
            table,
        )
        return [Column(str(row[0]), str(row[1]).lower()) for row in rows]

    async def count(self, table: str) -> int:
        return int(await self._conn.fetchval(f"SELECT COUNT(*) FROM {_ident(table)}"))  # noqa: S608 - quoted catalog name

    async def rows(self, table: str, columns: Sequence[str]) -> AsyncIterator[tuple[Any, ...]]:
        names = ", ".join(_ident(c) for c in columns)
        sql = f"SELECT {names} FROM {_ident(table)}{_order_by(table, columns)}"  # noqa: S608 - quoted catalog names
        # A cursor inside the caller's transaction: rows stream, the snapshot holds.
        async for row in self._conn.cursor(sql, prefetch=_BATCH):
            yield tuple(row)


def _portable(value: Any, table: str, column: str) -> Any:
    """A column value as JSON carries it exactly, or :class:`TransferError`."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TransferError(f"{table}.{column} holds {value!r}, which JSON cannot carry")
        return value
    raise TransferError(
        f"{table}.{column} holds a {type(value).__name__} value, which export cannot carry"
    )


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


async def export_store(store: JobStore, out: TextIO) -> TransferSummary:
    """Write every moved table of ``store`` (open) to ``out``, from one consistent snapshot."""
    if isinstance(store, SqliteJobStore):
        conn = store.conn
        # One read transaction: every table is read as of the same moment.
        await conn.execute("BEGIN")
        try:
            return await _export(_SqliteTables(store), out)
        finally:
            await conn.rollback()
    if isinstance(store, PostgresJobStore):
        schema = store.schema
        assert schema is not None  # noqa: S101 - known once the store is open
        async with (
            store.pool.acquire() as pg,
            pg.transaction(isolation="repeatable_read", readonly=True),
        ):
            return await _export(_PostgresTables(pg, schema), out)
    raise TransferError(f"cannot export from a {type(store).__name__}")


async def _export(tables: _Tables, out: TextIO) -> TransferSummary:
    summary = TransferSummary(await tables.schema_version(), tables.backend)
    names = table_order(await tables.tables())
    layout = {name: [c.name for c in await tables.columns(name)] for name in names}
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "schema_version": summary.schema_version,
        "source": tables.backend,
        "exported_at": _now_iso(),
        "tables": {name: {"columns": columns} for name, columns in layout.items()},
    }
    out.write(json.dumps(header, ensure_ascii=False) + "\n")
    for name, columns in layout.items():
        count = 0
        async for row in tables.rows(name, columns):
            values = [_portable(v, name, c) for v, c in zip(row, columns, strict=True)]
            out.write(
                json.dumps({"table": name, "row": values}, ensure_ascii=False, allow_nan=False)
                + "\n"
            )
            count += 1
        summary.rows[name] = count
    out.write(json.dumps({"end": {"rows": summary.rows}}) + "\n")
    out.flush()
    return summary


# --- import -----------------------------------------------------------------------------


def _converter(column: Column, backend: str) -> Any:
    """A function turning a file value into what the target column stores."""
    kind = column.type
    if backend == "postgresql":
        if kind == "boolean":
            return _to_bool
        if kind in {"bigint", "integer", "smallint"}:
            return _to_int
        if kind in {"double precision", "real", "numeric"}:
            return _to_float
        if kind in {"text", "character varying", "character", "json", "jsonb"}:
            return _to_pg_text
        return _as_is
    # SQLite's type affinity rules, in its own order.
    if "int" in kind:
        return _to_int
    if any(word in kind for word in ("char", "clob", "text")):
        return _to_text
    if any(word in kind for word in ("real", "floa", "doub")):
        return _to_float
    return _as_is


def _as_is(value: Any) -> Any:
    return value


def _to_bool(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError(f"{value!r} is not a boolean")


def _to_int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ValueError(f"{value!r} is not an integer")


def _to_float(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"{value!r} is not a number")


def _to_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"{value!r} is not text")


def _to_pg_text(value: Any) -> str | None:
    text = _to_text(value)
    # PostgreSQL text cannot hold NUL; the PostgreSQL store replaces it the same way.
    return None if text is None else text.replace("\x00", "\ufffd")


@dataclass
class _PlannedTable:
    name: str
    columns: list[str]
    convert: list[Any]
    rows: int = 0


def _read_json(line: str, number: int) -> dict[str, Any]:
    try:
        data = json.loads(line)
    except ValueError:
        raise BadExportFile(f"line {number} is not JSON") from None
    if not isinstance(data, dict):
        raise BadExportFile(f"line {number} is not a JSON object")
    return data


def read_header(line: str) -> dict[str, Any]:
    """The header line of an export file, checked for format and version."""
    header = _read_json(line, 1)
    if header.get("format") != FORMAT:
        raise BadExportFile("this is not a Stemcord export file (no stemcord-export header)")
    if header.get("format_version") != FORMAT_VERSION:
        raise FileTooNew(
            f"the file is in export format {header.get('format_version')!r}; this version "
            f"reads format {FORMAT_VERSION}: import it with the version that exported it"
        )
    version = header.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise BadExportFile("the header carries no schema version")
    tables = header.get("tables")
    if not isinstance(tables, dict) or not all(
        isinstance(spec, dict)
        and isinstance(spec.get("columns"), list)
        and all(isinstance(c, str) for c in spec["columns"])
        for spec in tables.values()
    ):
        raise BadExportFile("the header does not list the tables and their columns")
    return header


class _Writer(Protocol):
    backend: str

    async def insert(self, table: str, columns: Sequence[str], rows: list[list[Any]]) -> None: ...


class _SqliteWriter:
    backend = "sqlite"

    def __init__(self, store: SqliteJobStore) -> None:
        self._conn = store.conn

    async def insert(self, table: str, columns: Sequence[str], rows: list[list[Any]]) -> None:
        names = ", ".join(_ident(c) for c in columns)
        marks = ", ".join("?" for _ in columns)
        sql = f"INSERT INTO {_ident(table)} ({names}) VALUES ({marks})"  # noqa: S608 - quoted checked names
        await self._conn.executemany(sql, rows)


class _PostgresWriter:
    backend = "postgresql"

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def insert(self, table: str, columns: Sequence[str], rows: list[list[Any]]) -> None:
        names = ", ".join(_ident(c) for c in columns)
        marks = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
        sql = f"INSERT INTO {_ident(table)} ({names}) VALUES ({marks})"  # noqa: S608 - quoted checked names
        await self._conn.executemany(sql, rows)


async def import_store(store: JobStore, lines: Iterable[str]) -> TransferSummary:
    """Load an export into ``store`` (open, migrated, empty), in one transaction.

    Raises :class:`BadExportFile`, :class:`FileTooNew` or :class:`TargetNotEmpty` (nothing
    written) with a one-line message.
    """
    if isinstance(store, SqliteJobStore):
        conn = store.conn
        await conn.execute("BEGIN IMMEDIATE")
        try:
            summary = await _import(_SqliteTables(store), _SqliteWriter(store), lines)
        except BaseException:
            await conn.rollback()
            raise
        await conn.commit()
        return summary
    if isinstance(store, PostgresJobStore):
        schema = store.schema
        assert schema is not None  # noqa: S101 - known once the store is open
        async with store.pool.acquire() as pg, pg.transaction():
            return await _import(_PostgresTables(pg, schema), _PostgresWriter(pg), lines)
    raise TransferError(f"cannot import into a {type(store).__name__}")


async def _import(tables: _Tables, writer: _Writer, lines: Iterable[str]) -> TransferSummary:
    stream = iter(lines)
    first = next(stream, None)
    if first is None or not first.strip():
        raise BadExportFile("the file is empty")
    header = read_header(first)
    have = int(header["schema_version"])
    known = max((m.version for m in available_migrations(tables.backend)), default=0)
    if have > known:
        raise FileTooNew(
            f"the file was exported at schema V{have}; this version knows up to V{known}: "
            "import it with that newer version"
        )
    target_version = await tables.schema_version()
    if target_version < have:
        raise TransferError(
            f"the target is at schema V{target_version}, behind the file's V{have}; "
            "run `python -m bot migrate` on it first"
        )
    present = set(await tables.tables())
    plans: dict[str, _PlannedTable] = {}
    for name, spec in header["tables"].items():
        if name in NOT_MOVED:
            raise BadExportFile(f"the file carries table {name}, which is never moved")
        if name not in present:
            raise BadExportFile(f"the target has no table {name}")
        target_columns = {c.name: c for c in await tables.columns(name)}
        columns = list(spec["columns"])
        unknown = [c for c in columns if c not in target_columns]
        if unknown:
            raise BadExportFile(f"the target's table {name} has no column {', '.join(unknown)}")
        convert = [_converter(target_columns[c], tables.backend) for c in columns]
        plans[name] = _PlannedTable(name, columns, convert)
    full = {name: count for name in table_order(present) if (count := await tables.count(name)) > 0}
    if full:
        listed = ", ".join(f"{count} in {name}" for name, count in full.items())
        raise TargetNotEmpty(
            f"the target database is not empty ({listed}); import only into a new, empty "
            "database (or schema)"
        )
    summary = TransferSummary(target_version, str(header.get("source", "?")))
    batch: list[list[Any]] = []
    batch_table: _PlannedTable | None = None
    # Jobs whose leader is not in yet (the file lists leaders first; this catches the rest).
    inserted_jobs: set[str] = set()
    waiting: list[list[Any]] = []
    end: dict[str, Any] | None = None

    async def flush() -> None:
        nonlocal batch
        if batch and batch_table is not None:
            await writer.insert(batch_table.name, batch_table.columns, batch)
        batch = []

    for number, line in enumerate(stream, start=2):
        if not line.strip():
            continue
        if end is not None:
            raise BadExportFile(f"line {number} follows the end line")
        data = _read_json(line, number)
        if "end" in data:
            end = data
            continue
        name, values = data.get("table"), data.get("row")
        plan = plans.get(name) if isinstance(name, str) else None
        if plan is None or not isinstance(values, list) or len(values) != len(plan.columns):
            raise BadExportFile(f"line {number} is not a row of a table the header lists")
        try:
            row = [convert(value) for convert, value in zip(plan.convert, values, strict=True)]
        except ValueError as exc:
            raise BadExportFile(f"line {number} ({plan.name}): {exc}") from None
        if plan is not batch_table:
            await flush()
            batch_table = plan
        if plan.name == "jobs" and "leader_id" in plan.columns:
            leader = row[plan.columns.index("leader_id")]
            if leader is not None and leader not in inserted_jobs:
                waiting.append(row)
                plan.rows += 1
                continue
            inserted_jobs.add(str(row[plan.columns.index("id")]))
        batch.append(row)
        plan.rows += 1
        if len(batch) >= _BATCH:
            await flush()
    await flush()
    if waiting:
        await _insert_waiting(writer, plans["jobs"], waiting, inserted_jobs)
    if end is None:
        raise BadExportFile("the file ends before its end line: it was cut short")
    expected = end["end"].get("rows") if isinstance(end.get("end"), dict) else None
    counted = {name: plan.rows for name, plan in plans.items()}
    if expected != counted:
        raise BadExportFile(
            f"the file's end line counts {expected}, but it holds {counted}: it is damaged"
        )
    summary.rows = counted
    return summary


async def _insert_waiting(
    writer: _Writer, plan: _PlannedTable, waiting: list[list[Any]], inserted: set[str]
) -> None:
    """Insert followers whose leader came later in the file, leaders first."""
    id_at = plan.columns.index("id")
    leader_at = plan.columns.index("leader_id")
    while waiting:
        ready = [row for row in waiting if row[leader_at] in inserted]
        if not ready:
            missing = sorted({str(row[leader_at]) for row in waiting})
            raise BadExportFile(f"jobs name leaders the file does not hold: {', '.join(missing)}")
        await writer.insert(plan.name, plan.columns, ready)
        inserted.update(str(row[id_at]) for row in ready)
        waiting = [row for row in waiting if row[leader_at] not in inserted]


async def live_processes(store: JobStore, now: float, *, stale_after: float) -> list[str]:
    """Processes working on ``store`` (a PostgreSQL one) now, described for a refusal."""
    if not isinstance(store, PostgresJobStore):
        return []
    try:
        alive = await store.live_instances(now, stale_after=stale_after)
    except asyncpg.PostgresError:
        return []
    return [f"pid {i.pid} on host {i.host}" for i in alive]
