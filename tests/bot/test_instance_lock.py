"""One process per database: the sidecar flock, who holds it, and what never blocks."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from bot.instance_lock import InstanceLock, InstanceLocked, LockHolder, lock_path


def test_the_lock_file_sits_next_to_the_database(tmp_path: Path) -> None:
    db = tmp_path / "data" / "stemcord.sqlite3"
    assert lock_path(db) == tmp_path / "data" / "stemcord.sqlite3.lock"
    with InstanceLock(db, "run") as lock:
        assert lock.held and lock.path.exists()  # the folder was created for it
    assert not lock.held


def test_a_second_holder_is_refused_with_who_holds_it(tmp_path: Path) -> None:
    db = tmp_path / "stemcord.sqlite3"
    # Another open of the file is another holder, exactly as another process would be.
    with InstanceLock(db, "run"), pytest.raises(InstanceLocked) as info:
        InstanceLock(db, "run").acquire()
    holder = info.value.holder
    assert holder.pid == os.getpid()
    assert holder.host == socket.gethostname()
    assert holder.command == "run"
    assert holder.since is not None and holder.since.endswith("Z")
    assert str(info.value) == (
        f"another Stemcord instance holds the database {db} ({holder.describe()})"
    )
    assert holder.describe() == (
        f"pid {os.getpid()} on host {socket.gethostname()}, `run` since {holder.since}"
    )


def test_release_lets_the_next_one_in_and_clears_the_holder(tmp_path: Path) -> None:
    db = tmp_path / "stemcord.sqlite3"
    first = InstanceLock(db, "migrate")
    first.acquire()
    first.release()
    assert lock_path(db).read_text() == ""  # no stale holder for the next reader
    with InstanceLock(db, "run"):
        record = json.loads(lock_path(db).read_text())
        assert record["command"] == "run" and record["pid"] == os.getpid()
    first.release()  # releasing twice is harmless


def test_a_stale_file_from_a_dead_process_never_blocks(tmp_path: Path) -> None:
    db = tmp_path / "stemcord.sqlite3"
    # What a killed bot leaves: the file with its record, but no lock (the kernel dropped it).
    lock_path(db).write_text(json.dumps({"pid": 999999, "host": "gone", "command": "run"}))
    with InstanceLock(db, "run"):
        assert json.loads(lock_path(db).read_text())["pid"] == os.getpid()


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not json",
        b"[1, 2]",
        json.dumps({"pid": "12", "host": "x\x1b[2Jy", "since": 5}).encode(),
        json.dumps({"pid": True, "command": "r" * 500}).encode(),
    ],
)
def test_an_unreadable_holder_record_is_reported_as_unknown(tmp_path: Path, content: bytes) -> None:
    db = tmp_path / "stemcord.sqlite3"
    with InstanceLock(db, "run"):
        lock_path(db).write_bytes(content)  # whatever another program left in the file
        with pytest.raises(InstanceLocked) as info:
            InstanceLock(db, "check").acquire()
    assert info.value.holder == LockHolder()
    assert info.value.holder.describe() == "holder unknown"


def test_a_partly_known_holder_says_what_is_known() -> None:
    assert LockHolder(host="web-1").describe() == "on host web-1"
    assert LockHolder(pid=7, since="2026-12-03T18:00:00Z").describe() == (
        "pid 7, since 2026-12-03T18:00:00Z"
    )


def test_a_folder_that_cannot_be_created_is_an_os_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(OSError):
        InstanceLock(blocker / "stemcord.sqlite3", "run").acquire()
