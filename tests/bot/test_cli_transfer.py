"""``python -m bot export`` and ``import``: the commands around :mod:`storage.transfer`."""

from __future__ import annotations

import asyncio
import io
import json
import os
import stat
import sys
from pathlib import Path

import pytest

from bot.cli import build_parser, main
from bot.instance_lock import InstanceLock
from storage.sqlite import SqliteJobStore
from tests.helpers import NOW, new_job

SETTING_PREFIXES = ("DISCORD_", "VIDGO_", "WEBHOOK_", "POLL_", "JOB_", "PUBLIC_URL", "DATABASE_URL")


@pytest.fixture
def source(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A SQLite database with two jobs and a policy; DATABASE_URL names it."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(SETTING_PREFIXES):
            monkeypatch.delenv(name)
    db = tmp_path / "old.sqlite3"

    async def seed() -> None:
        store = SqliteJobStore(db)
        await store.open()
        try:
            await store.admit(new_job("moved00001", key="a"), NOW, submit_lease_until=NOW)
            await store.admit(new_job("moved00002", key="b"), NOW + 1, submit_lease_until=NOW)
            await store.put_guild_settings(100, {"max_unfinished": 1}, NOW)
            await store.secret("callback-token")
        finally:
            await store.close()

    asyncio.run(seed())
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{db}")
    return db


def jobs_in(path: Path) -> list[str]:
    async def read() -> list[str]:
        store = SqliteJobStore(path)
        await store.open(read_only=True)
        try:
            return sorted(j.id for j in await store.list_jobs(limit=10))
        finally:
            await store.close()

    return asyncio.run(read())


def test_help_describes_export_and_import(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    for argv, words in ((["export", "--help"], "--while-running"), (["import", "--help"], "FILE")):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)
        assert words in capsys.readouterr().out


def test_export_writes_a_private_file_then_import_fills_an_empty_database(
    source: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "move.jsonl"
    assert main(["export", "--output", str(out)]) == 0
    said = capsys.readouterr().out
    assert said == (
        f"exported 1 app_secrets, 1 guild_settings, 0 results_cache, 2 jobs, 0 operator_flags "
        f"(schema V9) from "
        f"{source} to {out}\n"
    )
    # It holds the server secret: readable by its owner only, and no half-written leftover.
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert not out.with_name("move.jsonl.partial").exists()
    target = tmp_path / "new" / "new.sqlite3"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{target}")
    assert main(["import", str(out)]) == 0
    assert capsys.readouterr().out.startswith(
        "imported 1 app_secrets, 1 guild_settings, 0 results_cache, 2 jobs, 0 operator_flags "
        f"(exported from sqlite) into {target}, schema V9"
    )
    assert jobs_in(target) == ["moved00001", "moved00002"]
    # A second import into the now full database is refused, status 1, nothing doubled.
    assert main(["import", str(out)]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"stemcord: not imported into {target}: the target database is not ")
    assert jobs_in(target) == ["moved00001", "moved00002"]


def test_export_never_overwrites_a_file(
    source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "kept.jsonl"
    out.write_text("precious\n")
    assert main(["export", "-o", str(out)]) == 2
    assert "File exists" in capsys.readouterr().err
    assert out.read_text() == "precious\n"


def test_export_refuses_while_a_bot_runs_on_the_sqlite_file_unless_asked(
    source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "snap.jsonl"
    with InstanceLock(source, "run"):
        assert main(["export", "-o", str(out)]) == 4
        [line] = capsys.readouterr().err.splitlines()
        assert line.startswith(f"stemcord: another Stemcord instance holds the database {source}")
        assert "--while-running" in line
        assert not out.exists()
        # A snapshot for keeping is allowed, read-only beside the bot.
        assert main(["export", "-o", str(out), "--while-running"]) == 0
    assert json.loads(out.read_text().splitlines()[0])["format"] == "stemcord-export"


def test_import_refuses_while_a_bot_runs_on_the_target(
    source: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "move.jsonl"
    assert main(["export", "-o", str(out)]) == 0
    target = tmp_path / "busy.sqlite3"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{target}")
    capsys.readouterr()
    with InstanceLock(target, "run"):
        assert main(["import", str(out)]) == 4
    assert "stop it before importing" in capsys.readouterr().err
    assert not target.exists()


def test_export_to_standard_output_and_import_from_standard_input(
    source: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["export"]) == 0
    captured = capsys.readouterr()
    # The data alone on standard output; what was done on standard error.
    assert captured.out.splitlines()[-1].startswith('{"end": ')
    assert captured.err.startswith("exported ") and "to standard output" in captured.err
    target = tmp_path / "piped.sqlite3"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{target}")
    monkeypatch.setattr(sys, "stdin", io.StringIO(captured.out))
    assert main(["import", "-"]) == 0
    assert jobs_in(target) == ["moved00001", "moved00002"]


def test_import_of_a_file_that_is_not_an_export_is_refused(
    source: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bogus = tmp_path / "notes.txt"
    bogus.write_text('{"hello": "world"}\n')
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    assert main(["import", str(bogus)]) == 1
    assert "not a Stemcord export file" in capsys.readouterr().err
    assert main(["import", str(tmp_path / "missing.jsonl")]) == 2
    assert "cannot read" in capsys.readouterr().err
