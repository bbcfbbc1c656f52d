"""Choosing and opening the store a ``DATABASE_URL`` names."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import DatabaseSettings, SettingsError, load_database_settings
from storage.factory import (
    DatabaseUrlError,
    backend_of,
    check_database_url,
    postgresql_dsn,
    store_for_url,
)
from storage.postgres import PostgresJobStore
from storage.sqlite import SqliteJobStore
from tests.helpers import NOW, new_job


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///data/x.sqlite3", Path("data/x.sqlite3")),
        ("sqlite:////var/lib/x.db", Path("/var/lib/x.db")),
    ],
)
def test_a_sqlite_url_names_a_file(url: str, path: Path) -> None:
    store = store_for_url(url)
    assert isinstance(store, SqliteJobStore) and store.path == path
    assert backend_of(url) == "sqlite"


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_a_postgresql_url_selects_the_postgresql_store(scheme: str) -> None:
    url = f"{scheme}://bot:pw@db.internal:5432/stemcord?schema=karaoke"
    store = store_for_url(url)
    assert isinstance(store, PostgresJobStore) and store.schema == "karaoke"
    assert backend_of(url) == "postgresql"


def test_the_schema_parameter_is_taken_out_of_the_dsn_and_the_rest_kept() -> None:
    dsn, schema = postgresql_dsn("postgresql://h:5432/db?schema=s&sslmode=disable")
    assert (dsn, schema) == ("postgresql://h:5432/db?sslmode=disable", "s")
    assert postgresql_dsn("postgresql://h/db") == ("postgresql://h/db", None)


def test_a_schema_option_wins_over_the_url() -> None:
    store = store_for_url("postgresql://h/db?schema=from_url", schema="from_option")
    assert isinstance(store, PostgresJobStore) and store.schema == "from_option"


def test_options_reach_the_sqlite_store(tmp_path: Path) -> None:
    store = store_for_url(f"sqlite:///{tmp_path / 'x.sqlite3'}", busy_timeout_ms=10)
    assert isinstance(store, SqliteJobStore)
    with pytest.raises(TypeError):
        store_for_url(f"sqlite:///{tmp_path / 'x.sqlite3'}", schema="nope")


@pytest.mark.parametrize(
    "url",
    [
        "",
        "data.sqlite3",
        "sqlite:///",
        "sqlite://data.sqlite3",
        "mysql://bot:s3cret-pw@h/db",
        "postgresql:bot:s3cret-pw@h/db",
        "postgresql://bot:s3cret-pw@h:port/db",
        "postgresql://bot:s3cret-pw@h/db?schema=Bad-Name",
        "postgresql://bot:s3cret-pw@h/db?schema=a&schema=b",
        "POSTGRESQL://bot:s3cret-pw@h/db",
    ],
)
def test_a_bad_url_gives_one_line_without_the_password(url: str) -> None:
    with pytest.raises(DatabaseUrlError) as caught:
        check_database_url(url)
    message = str(caught.value)
    assert "\n" not in message and "s3cret-pw" not in message
    assert message.startswith("DATABASE_URL")
    with pytest.raises(DatabaseUrlError):
        store_for_url(url)


def test_settings_accept_both_backends_and_refuse_others_without_echoing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    assert DatabaseSettings(DATABASE_URL="postgresql://bot@db/stemcord").DATABASE_URL
    assert DatabaseSettings(DATABASE_URL="sqlite:///data/x.sqlite3").database_path == Path(
        "data/x.sqlite3"
    )
    monkeypatch.setenv("DATABASE_URL", "mysql://bot:s3cret-pw@h/db")
    with pytest.raises(SettingsError) as caught:
        load_database_settings()
    assert "DATABASE_URL" in str(caught.value) and "s3cret-pw" not in str(caught.value)


async def test_a_url_opens_a_working_store_on_each_backend(
    tmp_path: Path, pg_dsn: str, pg_schema: str
) -> None:
    separator = "&" if "?" in pg_dsn else "?"
    for url in (
        f"sqlite:///{tmp_path / 'db' / 'jobs.sqlite3'}",
        f"{pg_dsn}{separator}schema={pg_schema}",
    ):
        store = store_for_url(url)
        await store.open()
        try:
            admitted = await store.admit(new_job("j"), NOW, submit_lease_until=NOW)
            assert await store.get("j") == admitted.job
        finally:
            await store.close()
    assert (tmp_path / "db" / "jobs.sqlite3").exists()
