"""``python -m bot``: every command's help, the offline commands, and ``check`` as a process."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import socket
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot import cli
from bot.cli import EXIT_STATUSES, build_parser, format_job_table, main
from bot.instance_lock import InstanceLock
from storage.jobstate import JobState
from storage.migrate import available_migrations
from storage.sqlite import SqliteJobStore
from tests.fakes.discord import FakeDiscord
from tests.fakes.vidgo import FakeVidgo
from tests.helpers import NOW, free_port, make_old_database, new_job

ROOT = Path(__file__).resolve().parents[2]
LATEST = max(m.version for m in available_migrations())
SETTING_PREFIXES = ("DISCORD_", "VIDGO_", "WEBHOOK_", "POLL_", "JOB_", "PUBLIC_URL", "DATABASE_URL")


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No secrets, no .env; DATABASE_URL points into tmp_path."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(SETTING_PREFIXES):
            monkeypatch.delenv(name)
    db = tmp_path / "data" / "jobs.sqlite3"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{db}")
    return db


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], "Without a command, runs the bot"),
        (["run"], "until SIGINT or SIGTERM"),
        (["check"], "exit 1 if any check failed"),
        (["sync"], "--guild"),
        (["jobs"], "list"),
        (["jobs", "list"], "--state"),
        (["jobs", "show"], "Show every field of one job"),
        (["migrate"], "Apply pending schema migrations"),
    ],
)
def test_every_command_has_help(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main([*argv, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m bot")
    assert expected in " ".join(out.split())


def test_jobs_needs_an_action() -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["jobs"])
    assert info.value.code == 2


def test_migrate_creates_then_says_the_schema_is_current(
    offline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate"]) == 0
    first = capsys.readouterr().out
    assert "applied V1" in first and "V5" in first and offline.exists()
    assert main(["migrate"]) == 0
    assert capsys.readouterr().out == (
        f"{offline}: the schema is current (version {LATEST}); nothing to apply\n"
    )


def test_jobs_without_a_database_says_so(offline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["jobs", "list"]) == 1
    assert "no database at" in capsys.readouterr().err
    assert not offline.exists()  # reading never creates the file


def seed(db: Path) -> None:
    async def go() -> None:
        store = SqliteJobStore(db)
        await store.open()
        try:
            await store.admit(new_job("aaaaaaaaaa", key="k1"), NOW, submit_lease_until=NOW)
            await store.admit(new_job("bbbbbbbbbb", key="k2"), NOW + 60, submit_lease_until=NOW)
            await store.transition("bbbbbbbbbb", JobState.SUBMITTED, NOW + 61, vidgo_task_id="VT")
            await store.record_outcome(
                "bbbbbbbbbb", JobState.FAILED, NOW + 62, last_error="Vidgo said\nno"
            )
        finally:
            await store.close()

    asyncio.run(go())


def test_jobs_list_and_show(offline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed(offline)
    assert main(["jobs", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "ID",
        "STATE",
        "MODEL",
        "CREATED",
        "(UTC)",
        "AGE",
        "VIDGO",
        "TASK",
        "ERROR",
    ]
    assert lines[1].split()[:2] == ["bbbbbbbbbb", "failed"]  # newest first
    assert "Vidgo said no" in lines[1] and "VT" in lines[1]
    assert lines[2].split()[:2] == ["aaaaaaaaaa", "accepted"]

    assert main(["jobs", "list", "--state", "accepted", "--json"]) == 0
    [row] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["id"] == "aaaaaaaaaa" and row["state"] == "accepted"
    assert row["created_at"] == "2027-01-15T08:00:00Z"
    assert "callback_token_hash" not in row

    assert main(["jobs", "show", "BBBBBBBBBB"]) == 0
    out = capsys.readouterr().out
    assert "state: failed" in out and "vidgo_task_id: VT" in out and "outcome: failed" in out
    assert "finished_at: 2027-01-15T08:01:02Z" in out
    assert main(["jobs", "show", "bbbbbbbbbb", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["last_error"] == "Vidgo said\nno"

    assert main(["jobs", "show", "zzzzzzzzzz"]) == 1
    assert "no job 'zzzzzzzzzz'" in capsys.readouterr().err


def test_empty_job_table() -> None:
    assert format_job_table([], now=NOW) == "no jobs"


# --- check as a real process ------------------------------------------------------------------


def child_env(tmp_path: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(SETTING_PREFIXES)}
    env["PYTHONPATH"] = str(ROOT)
    env.update(values)
    return env


async def run_cli(tmp_path: Path, env: dict[str, str], *argv: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *argv,
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_check_command_exit_status_follows_the_checklist(tmp_path: Path) -> None:
    async with FakeVidgo() as vidgo, FakeDiscord() as discord:
        good = child_env(
            tmp_path,
            DISCORD_TOKEN=discord.token,
            DISCORD_API_BASE=discord.api_base,
            VIDGO_API_KEY=vidgo.api_key,
            VIDGO_BASE_URL=vidgo.base_url,
            DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        )
        code, out, _ = await run_cli(tmp_path, good, "check")
        assert code == 0, out
        assert out.splitlines()[0] == "Stemcord check"
        assert out.splitlines()[-1] == "All checks passed."

        secret = "vidgo-key-that-is-wrong-987"
        code, out, err = await run_cli(tmp_path, {**good, "VIDGO_API_KEY": secret}, "check")
        assert code == 1
        assert "FAIL  vidgo" in out and "fix:" in out
        assert secret not in out + err

    missing = child_env(tmp_path)
    code, out, _ = await run_cli(tmp_path, missing, "check")
    assert code == 1
    assert "FAIL  settings" in out and "DISCORD_TOKEN is required" in out


async def test_run_with_a_taken_admin_port_names_the_settings(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = child_env(
            tmp_path,
            DISCORD_TOKEN="unused-token-value",
            VIDGO_API_KEY="unused-key-value",
            DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
            ADMIN_PORT=str(port),
        )
        code, _, err = await run_cli(tmp_path, env, "run")
    assert code == 2
    assert "address already in use" in err and "ADMIN_PORT" in err
    assert "Traceback" not in err


async def test_sync_command_registers_the_commands_in_one_guild(tmp_path: Path) -> None:
    async with FakeDiscord() as discord, FakeVidgo() as vidgo:
        guild = discord.add_guild()
        env = child_env(
            tmp_path,
            DISCORD_TOKEN=discord.token,
            DISCORD_API_BASE=discord.api_base,
            DISCORD_GATEWAY_URL=discord.gateway_url,
            VIDGO_API_KEY=vidgo.api_key,
            DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        )
        code, out, err = await run_cli(tmp_path, env, "sync", "--guild", str(guild.id))
        assert code == 0, err
        commands = discord.synced_commands[guild.id]
    assert out.strip() == f"synced {len(commands)} command(s) to guild {guild.id}"
    assert "separate" in {c["name"] for c in commands}


def test_jobs_reads_without_writing_to_the_database(
    offline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(offline)
    # A copy taken out of WAL mode (a backup, say): opening it for writing would switch it back.
    conn = sqlite3.connect(offline)
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.close()
    before = offline.read_bytes()
    assert main(["jobs", "list"]) == 0
    assert main(["jobs", "show", "aaaaaaaaaa"]) == 0
    capsys.readouterr()
    assert offline.read_bytes() == before


def test_jobs_refuses_a_database_older_than_its_schema(
    offline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = available_migrations()[0]
    offline.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(offline)
    conn.executescript(first.sql)
    conn.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT, applied_at REAL)"
    )
    conn.execute("INSERT INTO schema_migrations VALUES (1, ?, 0)", (first.name,))
    conn.commit()
    conn.close()
    assert main(["jobs", "list"]) == 1
    assert "run `python -m bot migrate` first" in capsys.readouterr().err
    conn = sqlite3.connect(offline)
    assert conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone() == (1,)
    conn.close()


# --- one line and an exit status for what the operator can fix ---------------------------------


def test_help_lists_the_exit_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ([], ["run"], ["sync"]):
        with pytest.raises(SystemExit):
            main([*argv, "--help"])
        out = capsys.readouterr().out
        assert "exit status:" in out
        assert max(len(line) for line in out.split("exit status:")[1].splitlines()) <= 79
        flowing = " ".join(out.split())
        for code, meaning in EXIT_STATUSES:
            assert f" {code} {meaning}" in flowing


def operator_lines(err: str) -> list[str]:
    """The lines meant for the operator (log lines have a timestamp and a level)."""
    return [line for line in err.splitlines() if line.startswith("stemcord: ")]


def bot_settings_env(tmp_path: Path, **values: str) -> dict[str, str]:
    return child_env(
        tmp_path,
        DISCORD_TOKEN="unused-token-value",
        VIDGO_API_KEY="unused-key-value",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        ADMIN_PORT="0",
        **values,
    )


@pytest.mark.parametrize("command", [["run"], ["sync"], ["sync", "--guild", "42"]])
async def test_discord_refusing_the_connection_is_one_line_and_status_3(
    tmp_path: Path, command: list[str]
) -> None:
    port = free_port()
    env = bot_settings_env(tmp_path, DISCORD_API_BASE=f"http://127.0.0.1:{port}/api/v10")
    code, _, err = await run_cli(tmp_path, env, *command)
    assert code == 3
    assert operator_lines(err) == [
        f"stemcord: cannot reach Discord at http://127.0.0.1:{port}/api/v10: connection refused "
        f"by 127.0.0.1:{port} (nothing listens there); check DISCORD_API_BASE, DNS and that "
        "this host can make outbound https requests"
    ]
    assert "Traceback" not in err


async def test_a_discord_host_dns_cannot_resolve_is_one_line_and_status_3(tmp_path: Path) -> None:
    env = bot_settings_env(tmp_path, DISCORD_API_BASE="https://stemcord-test.invalid/api/v10")
    code, _, err = await run_cli(tmp_path, env, "run")
    assert code == 3
    [line] = operator_lines(err)
    assert "the host name stemcord-test.invalid could not be resolved (DNS)" in line
    assert "Traceback" not in err


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """main() installs the bot's handler on the root logger; put pytest's back after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_discord_that_never_answers_is_given_up_on_with_one_line(
    offline: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    restore_logging: None,
) -> None:
    monkeypatch.setattr(cli, "DISCORD_TIMEOUT_SECONDS", 0.5)
    with socket.socket() as silent:  # accepts connections (the backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        monkeypatch.setenv("DISCORD_TOKEN", "unused-token-value")
        monkeypatch.setenv("VIDGO_API_KEY", "unused-key-value")
        monkeypatch.setenv("ADMIN_ENABLED", "false")
        monkeypatch.setenv("DISCORD_API_BASE", f"http://127.0.0.1:{port}/api/v10")
        assert main(["run"]) == 3
        assert main(["sync"]) == 3
    err = capsys.readouterr().err
    expected = (
        f"stemcord: cannot reach Discord at http://127.0.0.1:{port}/api/v10: no answer within "
        "0.5 s; check DISCORD_API_BASE, DNS and that this host can make outbound https requests"
    )
    assert operator_lines(err) == [expected, expected]


async def test_sync_to_a_server_discord_does_not_know_says_so(tmp_path: Path) -> None:
    async with FakeDiscord() as discord, FakeVidgo() as vidgo:
        env = child_env(
            tmp_path,
            DISCORD_TOKEN=discord.token,
            DISCORD_API_BASE=discord.api_base,
            VIDGO_API_KEY=vidgo.api_key,
            DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        )
        code, out, err = await run_cli(tmp_path, env, "sync", "--guild", "424242")
    assert code == 1, err
    assert operator_lines(err) == [
        "stemcord: Discord knows no server 424242 (Unknown Guild); copy the server id again "
        "(Developer Mode on, right-click the server, Copy Server ID)"
    ]
    assert out == ""


def test_run_beside_a_running_bot_exits_4_before_touching_discord(
    offline: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    restore_logging: None,
) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "unused-token-value")
    monkeypatch.setenv("VIDGO_API_KEY", "unused-key-value")
    # Were Discord tried, this would end in status 3 (refused), not 4.
    monkeypatch.setenv("DISCORD_API_BASE", f"http://127.0.0.1:{free_port()}/api/v10")
    with InstanceLock(offline, "run"):
        assert main(["run"]) == 4
    [line] = operator_lines(capsys.readouterr().err)
    assert line.startswith(f"stemcord: another Stemcord instance holds the database {offline} (")
    assert not offline.exists()  # the database was not even opened


def test_migrate_beside_a_running_bot(offline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_old_database(offline, 1)
    before = offline.read_bytes()
    with InstanceLock(offline, "run"):
        assert main(["migrate"]) == 4
    [line] = operator_lines(capsys.readouterr().err)
    pending = ", ".join(f"V{v}" for v in range(2, LATEST + 1))
    assert line.startswith(f"stemcord: not migrating {offline}: {pending} pending, and another ")
    assert line.endswith("(the bot migrates at every start)")
    assert offline.read_bytes() == before  # untouched

    assert main(["migrate"]) == 0  # once nothing holds it
    capsys.readouterr()
    with InstanceLock(offline, "run"):
        assert main(["migrate"]) == 0  # nothing pending: fine beside the bot
    assert capsys.readouterr().out == (
        f"{offline}: the schema is current (version {LATEST}); nothing to apply\n"
    )


def test_run_refuses_a_database_folder_it_cannot_create(
    offline: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    restore_logging: None,
) -> None:
    blocker = offline.parent
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("a file where the database folder should be")
    monkeypatch.setenv("DISCORD_TOKEN", "unused-token-value")
    monkeypatch.setenv("VIDGO_API_KEY", "unused-key-value")
    assert main(["run"]) == 2
    [line] = operator_lines(capsys.readouterr().err)
    assert line.startswith(f"stemcord: cannot create {offline}.lock: ")
    assert line.endswith("; point DATABASE_URL at a folder this user can write")


class HeldVidgo:
    """A Vidgo that accepts the balance request and answers only when the test says."""

    def __init__(self) -> None:
        self.connected = asyncio.Event()
        self.release = asyncio.Event()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")  # read it all, so the close is a clean one
        self.connected.set()
        await self.release.wait()
        writer.close()  # hang up without an answer


async def test_check_prints_each_item_as_it_runs_and_nothing_else(tmp_path: Path) -> None:
    vidgo = HeldVidgo()
    server = await asyncio.start_server(vidgo.serve, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with FakeDiscord() as discord:
        env = child_env(
            tmp_path,
            DISCORD_TOKEN=discord.token,
            DISCORD_API_BASE=discord.api_base,
            VIDGO_API_KEY="vidgo-key-for-the-held-server",
            VIDGO_BASE_URL=url,
            VIDGO_TIMEOUT_SECONDS="60",  # only the test ends the wait
            DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
            LOG_LEVEL="DEBUG",
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "check",
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert proc.stdout is not None
            seen: list[str] = []
            while not seen or not seen[-1].startswith("  ..    vidgo"):
                line = await asyncio.wait_for(proc.stdout.readline(), 60)
                assert line, seen
                seen.append(line.decode().rstrip("\n"))
            # The check is waiting on Vidgo, and says so, before it has an answer.
            await asyncio.wait_for(vidgo.connected.wait(), 60)
            assert proc.returncode is None
            media = tmp_path / "media"
            assert seen[:5] == [
                "Stemcord check",
                "  ok    settings    valid",
                f"  ..    database    opening {tmp_path / 'db.sqlite3'}",
                f"  ok    database    {tmp_path / 'db.sqlite3'}, schema version {LATEST}",
                f"  ..    media       writing a test file in {media}",
            ]
            assert re.fullmatch(
                rf"  ok    media       {re.escape(str(media))}, writable, [\d,]+ MB free "
                r"\(1,024 MB kept free\)",
                seen[5],
            ), seen[5]
            assert seen[6:] == [
                f"  ..    vidgo       asking {url} for the credit balance (up to 15 s)"
            ]
            vidgo.release.set()
            rest, err = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            server.close()
            await server.wait_closed()
    lines = rest.decode().splitlines()
    assert lines[0] == (
        f"  FAIL  vidgo       cannot reach Vidgo at {url}: "
        "the server closed the connection without answering"
    )
    assert lines[-1] == "1 check(s) failed; fix them and run again."
    assert proc.returncode == 1
    assert err.decode() == ""  # no log line (a retry warning, a voice warning) in between


async def test_sync_with_a_rejected_token_is_one_line_and_status_2(tmp_path: Path) -> None:
    async with FakeDiscord() as discord:
        env = child_env(
            tmp_path,
            DISCORD_TOKEN="a-token-discord-does-not-know",
            DISCORD_API_BASE=discord.api_base,
            VIDGO_API_KEY="unused-key-value",
            DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        )
        code, out, err = await run_cli(tmp_path, env, "sync")
    assert code == 2
    assert operator_lines(err) == [
        "stemcord: Discord rejected DISCORD_TOKEN; copy the bot token again"
    ]
    assert "Traceback" not in err and "a-token-discord-does-not-know" not in err + out
