"""Export and import: SQLite -> PostgreSQL -> SQLite keeps every row and column, and an
import that cannot be right (a target with data, a newer or damaged file) writes nothing."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from bot.engine import TOKEN_SECRET_NAME, callback_token
from storage.base import JobStore
from storage.jobstate import JobState
from storage.postgres import PostgresJobStore
from storage.records import CachedResult, JobRecord
from storage.sqlite import SqliteJobStore
from storage.transfer import (
    BadExportFile,
    FileTooNew,
    TargetNotEmpty,
    export_store,
    import_store,
    table_order,
)
from tests.conftest import StoreBackend
from tests.helpers import NOW, new_job
from tests.storage.backends import execute, fetch_rows

# A Discord snowflake far past 2**53: JSON and both backends must keep every digit.
SNOWFLAKE = 1_300_000_000_000_000_001
# Every table export carries, with how each one's rows are listed for comparison.
TABLE_ROWS = {
    "app_secrets": "SELECT name, value, created_at FROM app_secrets ORDER BY name",
    "guild_settings": "SELECT guild_id, settings, updated_at FROM guild_settings ORDER BY guild_id",
    "results_cache": (
        "SELECT source_key, model, vidgo_task_id, result, track, created_at "
        "FROM results_cache ORDER BY source_key"
    ),
}


async def seed(store: JobStore) -> None:
    """Jobs in many states (a leader with followers among them), the cache, policies, the
    callback secret; one job with every column filled, odd text and a big snowflake."""
    await store.secret(TOKEN_SECRET_NAME)
    await store.secret("media-links")
    await store.set_flag("credits-low-warned", True, NOW)
    await store.put_guild_settings(100, {"max_unfinished": 2, "z_first": 1, "a_then": 2}, NOW)
    await store.put_guild_settings(SNOWFLAKE, {}, NOW + 1)
    await store.cache_put(
        CachedResult("cached:1", "separate-vocals", "TASKC", {"b": 1, "a": [1, 2]}, None, NOW)
    )
    # A leader and two followers of the same song, then its outcome copied to them.
    await store.admit(new_job("leader0001", key="song"), NOW, submit_lease_until=NOW + 60)
    for i in (2, 3):
        await store.admit(new_job(f"follower0{i}", key="song"), NOW + i, submit_lease_until=NOW)
    await store.record_outcome(
        "leader0001",
        JobState.SUCCEEDED,
        NOW + 10,
        result={"stems": {"vocals": "https://cdn/v.mp3"}, "order": "kept"},
        track={"title": "Tide", "duration": 183.25},
    )
    await store.transition("follower02", JobState.DELIVERED, NOW + 11, due_at=None)
    # Unfinished work, leased by a process of the old database.
    await store.admit(new_job("pending001", key="other"), NOW + 20, submit_lease_until=NOW + 80)
    await store.admit(
        new_job("everycol01", key="all", guild_id=SNOWFLAKE, channel_id=SNOWFLAKE - 1),
        NOW + 30,
        submit_lease_until=NOW + 90,
        owner="old-process",
    )
    everything = {
        "status_message_id": SNOWFLAKE + 2,
        "reply_to_message_id": SNOWFLAKE + 3,
        "vidgo_task_id": "TASKEVERY",
        "outcome": None,
        "attempts": 3,
        "polls": 7,
        "delivery_attempts": 1,
        "last_error": "Vidgo said: “nope” — ünïcödé 🎤",
        "error_kind": "transient",
        "callbacks": 2,
        "result": '{"z": 1, "a": {"nested": [true, null, 1.5]}}',
        "track": '{"title": "Ça va"}',
        "result_message_id": SNOWFLAKE + 4,
        "finished_at": None,
        "result_channel_id": SNOWFLAKE + 5,
        "dm_on_completion": True,
        "unconfirmed_submit_at": NOW + 31.125,
        "task_hint": "HINT1",
        "faults": 1,
        "delivery_started_at": NOW + 32.5,
        "polled_at": NOW + 33.0625,
        "source_url": "https://cdn.example.org/a.mp3?x=1&y=2",
        "options": '{"stems": "vocals", "k": 2}',
        "callback_key": "everycol01",
        "prepared_at": NOW + 34.25,
    }
    columns = ", ".join(f"{name} = ?" for name in everything)
    values = [
        int(v) if isinstance(v, bool) and isinstance(store, SqliteJobStore) else v
        for v in everything.values()
    ]
    await execute(store, f"UPDATE jobs SET {columns} WHERE id = ?", *values, "everycol01")  # noqa: S608


async def everything_in(store: JobStore) -> dict[str, Any]:
    """What a store holds, through its own API (so backends compare like for like)."""
    jobs = sorted(await store.list_jobs(limit=1000), key=lambda j: j.id)
    return {
        "jobs": jobs,
        "secrets": [await store.secret(TOKEN_SECRET_NAME), await store.secret("media-links")],
        "policies": [
            await store.get_guild_settings(100),
            await store.get_guild_settings(SNOWFLAKE),
        ],
        "cache": await store.cache_get("cached:1"),
        "raw": {table: await fetch_rows(store, sql) for table, sql in TABLE_ROWS.items()},
    }


async def export_text(store: JobStore) -> str:
    out = io.StringIO()
    await export_store(store, out)
    return out.getvalue()


def rows_of(text: str) -> list[str]:
    """The row lines of an export (the header names the time it was made)."""
    return text.splitlines()[1:]


async def test_sqlite_to_postgresql_to_sqlite_keeps_every_row_and_column(
    sqlite_backend: StoreBackend, pg_backend: StoreBackend, tmp_path: Path
) -> None:
    source = await sqlite_backend.open_store()
    await seed(source)
    before = await everything_in(source)
    first = await export_text(source)

    middle = await pg_backend.open_store()
    summary = await import_store(middle, io.StringIO(first))
    assert summary.source == "sqlite"
    assert summary.rows == {
        "app_secrets": 2,
        "guild_settings": 2,
        "results_cache": 1,
        "jobs": 5,
        "operator_flags": 1,
    }
    assert await everything_in(middle) == before
    second = await export_text(middle)

    back = SqliteJobStore(tmp_path / "back" / "again.sqlite3")
    await back.open()
    try:
        await import_store(back, io.StringIO(second))
        assert await everything_in(back) == before
        # Same backend at both ends: the very same rows, byte for byte.
        assert rows_of(await export_text(back)) == rows_of(first)
    finally:
        await back.close()


async def test_every_job_column_is_carried(sqlite_backend: StoreBackend) -> None:
    store = await sqlite_backend.open_store()
    await seed(store)
    lines = (await export_text(store)).splitlines()
    header = json.loads(lines[0])
    columns = header["tables"]["jobs"]["columns"]
    assert set(columns) == {f for f in JobRecord.__dataclass_fields__}
    rows = [json.loads(line)["row"] for line in lines[1:-1] if '"table": "jobs"' in line]
    filled = {name for row in rows for name, value in zip(columns, row, strict=True) if value}
    # The seed gives every column a value somewhere, so a dropped one would show.
    assert filled == set(columns)
    assert header["schema_version"] >= 6 and header["source"] == "sqlite"
    assert set(header["tables"]) == {
        "app_secrets",
        "guild_settings",
        "results_cache",
        "jobs",
        "operator_flags",
    }


async def test_a_job_s_callback_still_finds_it_after_the_move(
    sqlite_backend: StoreBackend, pg_backend: StoreBackend
) -> None:
    source = await sqlite_backend.open_store()
    await seed(source)
    token = callback_token(await source.secret(TOKEN_SECRET_NAME), "everycol01")
    target = await pg_backend.open_store()
    await import_store(target, io.StringIO(await export_text(source)))
    # The URL Vidgo holds was made from the old database's secret: the new one derives it too.
    assert callback_token(await target.secret(TOKEN_SECRET_NAME), "everycol01") == token
    noted = await target.note_callback(NOW + 40, callback_key="everycol01")
    assert noted is not None and noted.id == "everycol01" and noted.callbacks == 3


async def test_import_refuses_a_target_that_holds_data_and_changes_nothing(
    store: JobStore, tmp_path: Path
) -> None:
    source = SqliteJobStore(tmp_path / "src.sqlite3")
    await source.open()
    try:
        await seed(source)
        text = await export_text(source)
    finally:
        await source.close()
    await store.put_guild_settings(7, {"max_unfinished": 1}, NOW)
    with pytest.raises(TargetNotEmpty, match=r"not empty \(1 in guild_settings\)"):
        await import_store(store, io.StringIO(text))
    assert await store.list_jobs(limit=10) == []
    assert await store.get_guild_settings(7) == {"max_unfinished": 1}


async def test_a_secret_the_target_made_for_itself_makes_it_not_empty(
    store: JobStore, sqlite_backend: StoreBackend
) -> None:
    # A bot that already started on the new database made its own callback secret: the
    # moved jobs' callback URLs would no longer verify, so the import is refused.
    source = await sqlite_backend.open_store()
    text = await export_text(source)
    await store.secret(TOKEN_SECRET_NAME)
    with pytest.raises(TargetNotEmpty, match="app_secrets"):
        await import_store(store, io.StringIO(text))


def header_with(text: str, **changes: object) -> str:
    lines = text.splitlines()
    header = json.loads(lines[0])
    header.update(changes)
    return "\n".join([json.dumps(header), *lines[1:]]) + "\n"


async def seeded_export(tmp_path: Path) -> str:
    source = SqliteJobStore(tmp_path / "src.sqlite3")
    await source.open()
    try:
        await seed(source)
        return await export_text(source)
    finally:
        await source.close()


async def test_a_file_from_a_newer_schema_is_refused(store: JobStore, tmp_path: Path) -> None:
    text = await seeded_export(tmp_path)
    version = json.loads(text.splitlines()[0])["schema_version"]
    with pytest.raises(FileTooNew, match=f"schema V{version + 1}"):
        await import_store(store, io.StringIO(header_with(text, schema_version=version + 1)))
    with pytest.raises(FileTooNew, match="export format 2"):
        await import_store(store, io.StringIO(header_with(text, format_version=2)))
    assert await store.list_jobs(limit=10) == []


async def test_a_file_cut_short_is_refused_and_nothing_is_kept(
    store: JobStore, tmp_path: Path
) -> None:
    text = await seeded_export(tmp_path)
    lines = text.splitlines()
    with pytest.raises(BadExportFile, match="cut short"):
        await import_store(store, io.StringIO("\n".join(lines[:-1]) + "\n"))
    # Rows before the cut were inserted in the transaction and rolled back with it.
    assert await store.list_jobs(limit=10) == []
    assert await store.get_guild_settings(100) == {}
    missing_row = [*lines[:3], *lines[4:]]
    with pytest.raises(BadExportFile, match="damaged"):
        await import_store(store, io.StringIO("\n".join(missing_row) + "\n"))
    assert await store.list_jobs(limit=10) == []


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda row: {**row, "row": ["not-an-int", *row["row"][1:]]}, "is not an integer"),
        (lambda row: {**row, "row": row["row"][:-1]}, "not a row of a table"),
        (lambda row: {**row, "table": "instances"}, "not a row of a table"),
    ],
)
async def test_a_value_that_does_not_fit_its_column_is_refused_with_its_line(
    store: JobStore, tmp_path: Path, damage: Any, words: str
) -> None:
    text = await seeded_export(tmp_path)
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if '"table": "guild_settings"' in line)
    lines[at] = json.dumps(damage(json.loads(lines[at])))
    with pytest.raises(BadExportFile, match=f"line {at + 1}.*{words}|{words}"):
        await import_store(store, io.StringIO("\n".join(lines) + "\n"))
    assert await store.get_guild_settings(100) == {}


async def test_a_column_the_target_does_not_have_is_refused(
    store: JobStore, tmp_path: Path
) -> None:
    text = await seeded_export(tmp_path)
    header = json.loads(text.splitlines()[0])
    header["tables"]["guild_settings"]["columns"][-1] = "from_the_future"
    with pytest.raises(BadExportFile, match="no column from_the_future"):
        await import_store(store, io.StringIO(header_with(text, tables=header["tables"])))


async def test_followers_listed_before_their_leader_still_import(
    store: JobStore, tmp_path: Path
) -> None:
    text = await seeded_export(tmp_path)
    lines = text.splitlines()
    jobs = [line for line in lines if '"table": "jobs"' in line]
    others = [line for line in lines[1:-1] if line not in jobs]
    # The followers first, as a hand-edited or foreign file might list them.
    reordered = [lines[0], *others, *reversed(jobs), lines[-1]]
    await import_store(store, io.StringIO("\n".join(reordered) + "\n"))
    followers = await store.followers("leader0001")
    assert sorted(f.id for f in followers) == ["follower02", "follower03"]


async def test_text_with_a_nul_reaches_postgresql_with_a_replacement_character(
    sqlite_backend: StoreBackend, pg_store: PostgresJobStore
) -> None:
    source = await sqlite_backend.open_store()
    await source.admit(new_job("nulljob001", key="n"), NOW, submit_lease_until=NOW)
    await execute(
        source, "UPDATE jobs SET last_error = ? WHERE id = ?", "bad\x00byte", "nulljob001"
    )
    await import_store(pg_store, io.StringIO(await export_text(source)))
    moved = await pg_store.get("nulljob001")
    assert moved is not None and moved.last_error == "bad\ufffdbyte"


def test_known_tables_move_first_and_database_tables_never() -> None:
    assert table_order(["jobs", "zeta", "instances", "health_probe", "app_secrets", "alpha"]) == [
        "app_secrets",
        "jobs",
        "alpha",
        "zeta",
    ]


async def test_a_leased_job_stays_leased_to_its_gone_owner_until_a_process_releases_it(
    sqlite_backend: StoreBackend, pg_backend: StoreBackend
) -> None:
    source = await sqlite_backend.open_store()
    await seed(source)
    target = await pg_backend.open_store()
    await import_store(target, io.StringIO(await export_text(source)))
    moved = await target.get("everycol01")
    assert moved is not None and moved.leased and moved.lease_owner == "old-process"
    # No process of the new database is that owner: the first heartbeat frees the job.
    assert await target.release_orphaned_leases(NOW + 50, stale_before=NOW) >= 1
    freed = await target.get("everycol01")
    assert isinstance(freed, JobRecord) and not freed.leased and freed.due_at == NOW + 50
