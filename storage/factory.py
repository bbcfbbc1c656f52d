"""Open the job store that a ``DATABASE_URL`` names.

* ``sqlite:///relative/path`` or ``sqlite:////absolute/path`` -> :class:`SqliteJobStore`
  (the embedded default: one process, one file);
* ``postgresql://user:password@host:5432/database`` (or ``postgres://``) ->
  :class:`PostgresJobStore` (several processes sharing one database). An optional
  ``?schema=name`` keeps Stemcord's tables in that schema (created on open); other query
  parameters are passed to the driver as connection settings.

Errors are one line and never repeat the URL, which may hold a password.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from storage.base import JobStore
from storage.migrate import check_schema_name
from storage.postgres import PostgresJobStore
from storage.sqlite import SqliteJobStore

SQLITE_PREFIX = "sqlite:///"
POSTGRESQL_SCHEMES = frozenset({"postgresql", "postgres"})
EXPECTED = (
    "DATABASE_URL must look like sqlite:///data/stemcord.sqlite3 "
    "or postgresql://user:password@host:5432/database"
)


class DatabaseUrlError(ValueError):
    """``DATABASE_URL`` names no store this version can open; the message is one line."""


def backend_of(url: str) -> str:
    """``"sqlite"`` or ``"postgresql"``: which backend ``url`` selects (checked first)."""
    check_database_url(url)
    return "sqlite" if url.startswith(SQLITE_PREFIX) else "postgresql"


def sqlite_path(url: str) -> Path:
    """The file a ``sqlite:///`` URL names."""
    if not url.startswith(SQLITE_PREFIX) or len(url) == len(SQLITE_PREFIX):
        raise DatabaseUrlError(EXPECTED)
    return Path(url[len(SQLITE_PREFIX) :])


def postgresql_dsn(url: str) -> tuple[str, str | None]:
    """The driver's DSN and the schema (``?schema=``, removed from the DSN) of a URL."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port raises ValueError when it is not a number
    except ValueError:
        raise DatabaseUrlError(f"{EXPECTED} (the host or port cannot be read)") from None
    if parts.scheme not in POSTGRESQL_SCHEMES or not url.startswith(f"{parts.scheme}://"):
        raise DatabaseUrlError(EXPECTED)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for key, value in query if key == "schema"]
    if len(schemas) > 1:
        raise DatabaseUrlError("DATABASE_URL names more than one schema")
    schema: str | None = None
    if schemas:
        try:
            schema = check_schema_name(schemas[0])
        except ValueError as exc:
            raise DatabaseUrlError(f"DATABASE_URL schema: {exc}") from None
    rest = urlencode([(key, value) for key, value in query if key != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


def check_database_url(url: str) -> None:
    """Raise :class:`DatabaseUrlError` (one line) unless a store can be opened for ``url``."""
    if url.startswith(SQLITE_PREFIX):
        sqlite_path(url)
    elif url.split(":", 1)[0] in POSTGRESQL_SCHEMES:
        postgresql_dsn(url)
    else:
        raise DatabaseUrlError(EXPECTED)


def display_url(url: str) -> str:
    """``DATABASE_URL`` fit to print: the SQLite file, or the PostgreSQL URL without secrets.

    For PostgreSQL: user, host, port, database and schema; never the password, and no other
    query parameter (libpq accepts ``password=`` there too).
    """
    if backend_of(url) == "sqlite":
        return str(sqlite_path(url))
    dsn, schema = postgresql_dsn(url)
    parts = urlsplit(dsn)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = (f"{parts.username}@" if parts.username else "") + host
    if parts.port is not None:
        netloc += f":{parts.port}"
    shown = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return shown + (f"?schema={schema}" if schema else "")


def database_password(url: str) -> str | None:
    """The password a PostgreSQL URL carries (for redaction), or ``None``."""
    if url.split(":", 1)[0] not in POSTGRESQL_SCHEMES:
        return None
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


def store_for_url(url: str, **options: Any) -> JobStore:
    """The (not yet opened) store ``url`` names; ``options`` go to its constructor.

    For PostgreSQL a ``schema`` option wins over the URL's ``?schema=``.
    """
    if backend_of(url) == "sqlite":
        return SqliteJobStore(sqlite_path(url), **options)
    dsn, schema = postgresql_dsn(url)
    options.setdefault("schema", schema)
    return PostgresJobStore(dsn, **options)
