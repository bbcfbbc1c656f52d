"""One Stemcord process per SQLite file: an exclusive ``flock`` on a sidecar file.

Only SQLite takes it: a PostgreSQL database is shared by several processes on purpose (each
runs its own Discord shards; its store fences every write by lease), so the commands skip
the lock there and look at the store's process registry instead where it matters
(``migrate``, ``export``, ``import``).

``python -m bot run`` takes the lock before it opens the database or contacts Discord and
holds it until the process ends. Two bots on one database would each claim, submit and post
the same jobs; the lock turns that mistake into one clear line at start-up instead.

* The sidecar is ``<database>.lock`` next to the database (``stemcord.sqlite3.lock``). It holds
  one JSON object naming the holder: pid, host, command and start time (UTC), so the refusal
  can say who holds it.
* The lock is the kernel's ``flock`` on the open file, not the file's existence: the kernel
  drops it when the process ends in any way, SIGKILL and crashes included, so a sidecar left by
  a dead process never blocks the next start; its stale text is simply overwritten.
* The file is never deleted. Deleting it on release would let a process that opened the old
  file and one that creates a new file both "hold" a lock, on two different files.
* ``flock`` works across containers sharing a volume on one host and, on Linux, over NFS
  (the kernel maps it to a POSIX lock there).

``migrate`` and ``check`` try the same lock before they write: while they migrate, a bot
cannot start half-way, and when a bot holds it they read without writing (or say why not).
Nothing only *probes* the lock: a probe could itself make a starting bot fail.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Self

LOCK_SUFFIX = ".lock"
# Far more than the JSON we write; a foreign or damaged file is not read whole.
_MAX_HOLDER_BYTES = 4096


def lock_path(database: Path) -> Path:
    """The sidecar lock file of ``database``."""
    return database.with_name(database.name + LOCK_SUFFIX)


@dataclass(frozen=True, slots=True)
class LockHolder:
    """Who holds the lock, as the holder wrote it (any field may be missing)."""

    pid: int | None = None
    host: str | None = None
    command: str | None = None
    since: str | None = None

    def describe(self) -> str:
        """``pid 4242 on host web-1, `run` since 2026-12-03T18:00:00Z`` (what is known)."""
        where = " ".join(
            part
            for part in (
                f"pid {self.pid}" if self.pid is not None else "",
                f"on host {self.host}" if self.host else "",
            )
            if part
        )
        what = " ".join(
            part
            for part in (
                f"`{self.command}`" if self.command else "",
                f"since {self.since}" if self.since else "",
            )
            if part
        )
        return ", ".join(part for part in (where, what) if part) or "holder unknown"


class InstanceLocked(Exception):
    """Another process holds the database's lock."""

    def __init__(self, database: Path, holder: LockHolder) -> None:
        self.database = database
        self.holder = holder
        super().__init__(
            f"another Stemcord instance holds the database {database} ({holder.describe()})"
        )


def _parse_holder(raw: bytes) -> LockHolder:
    """The holder from the sidecar's text; anything unreadable becomes "unknown"."""
    try:
        data = json.loads(raw.decode("utf-8", errors="replace"))
    except ValueError:
        return LockHolder()
    if not isinstance(data, dict):
        return LockHolder()

    def text(name: str) -> str | None:
        value = data.get(name)
        # Printed in a terminal: only short printable text from the file is shown.
        if isinstance(value, str) and value.isprintable() and len(value) <= 200:
            return value
        return None

    pid = data.get("pid")
    return LockHolder(
        pid=pid if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 else None,
        host=text("host"),
        command=text("command"),
        since=text("since"),
    )


def _read_holder(fd: int) -> LockHolder:
    try:
        return _parse_holder(os.pread(fd, _MAX_HOLDER_BYTES, 0))
    except OSError:
        return LockHolder()


class InstanceLock:
    """An exclusive, non-blocking ``flock`` on ``<database>.lock`` for this process.

    Use :meth:`acquire` / :meth:`release`, or ``with InstanceLock(path, "run"):``.
    """

    def __init__(self, database: Path, command: str) -> None:
        self.database = database
        self.path = lock_path(database)
        self._command = command
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise :class:`InstanceLocked` at once (never waits).

        Creates the database's folder and the sidecar if needed; ``OSError`` when that is
        impossible (a read-only folder, say).
        """
        if self._fd is not None:
            raise RuntimeError("the instance lock is already held by this object")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A child process must not inherit (and so prolong) the lock: O_CLOEXEC, which
        # Python sets on its descriptors anyway (PEP 446), written out for the reader.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise InstanceLocked(self.database, holder) from None
        except BaseException:
            os.close(fd)
            raise
        since = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": self._command,
            "since": since,
        }
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        except OSError:
            # Who holds it is only a courtesy for the refusal message; the lock itself holds.
            pass
        self._fd = fd

    def release(self) -> None:
        """Give the lock up (a no-op when not held); the file stays (see the module doc)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # no stale holder text for the next reader
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
