"""The media store: result files on disk, grouped per result, written atomically.

Layout under the root directory (``MEDIA_DIR``)::

    <root>/<key>/<name>          one result's files, e.g. <task id>/vocals.mp3
    <root>/.tmp/<session>/       one open store's files being written (and its scratch space)
    <root>/.tmp/<session>.lock   held (flock) by that store while it is open
    <root>/.tree.lock            flock: shared while a file is renamed into a result,
                                 exclusive while a result is taken out

Keys and names are checked strictly (``bot.media.names``), so no path built here can leave the
root. Every put goes through a temporary file in the store's own session folder under ``.tmp``
(same file system as the results) and one rename, so a file is either whole or absent.

**Several processes.** Any number of processes (bot replicas sharing a volume, an offline
command) may open the same root at once. Each open store writes only in its own session folder,
locked for as long as it is open; at open, a store removes only the session folders whose lock
nobody holds (their process is gone) and stray entries, never another live process's files in
flight. Removing a result (:meth:`MediaStore.delete`, retention) takes the tree lock
exclusively, looks at the result again and renames it out of the tree into the session folder
before deleting it, while every rename *into* a result holds the tree lock shared: a file that
lands while another process prunes is never lost with the result it landed in.

**Disk guard.** A put is refused with :class:`~bot.media.errors.InsufficientSpace` when it
would leave less than ``min_free_bytes`` free: checked before writing (with the announced size,
if any), on every write (against the space free at the start), and once more just before the
rename (against the space actually free then, which also catches concurrent writers).

**Retention.** :meth:`MediaStore.prune` deletes whole results whose newest file is older than
N days, oldest first, and reports what it freed; 0 days keeps everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import secrets
import shutil
import stat
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType

from bot.media.atomic import PartFile, WrittenFile, fsync_directory, temp_name
from bot.media.errors import InsufficientSpace, StoreError
from bot.media.names import check_key, check_name, is_valid_key, is_valid_name

TEMP_DIR = ".tmp"
TREE_LOCK = ".tree.lock"
SESSION_LOCK_SUFFIX = ".lock"
COPY_CHUNK_BYTES = 1024 * 1024
# Tries to set up a session folder before giving up (a concurrent cleaner may take one away).
_SESSION_TRIES = 5

FreeSpace = Callable[[Path], int]
"""Returns the free bytes of the file system holding a path (injectable for tests)."""


def disk_free_bytes(path: Path) -> int:
    """Free bytes available to this process on the file system of ``path``."""
    return shutil.disk_usage(path).free


@dataclass(frozen=True, slots=True)
class StoredFile:
    """One file of a result."""

    key: str
    name: str
    size: int
    modified: datetime
    path: Path


@dataclass(frozen=True, slots=True)
class ResultInfo:
    """One result: its file count, total size and when its newest file was written."""

    key: str
    files: int
    size: int
    last_modified: datetime


@dataclass(frozen=True, slots=True)
class PruneReport:
    """What one retention run removed, in the order it removed it (oldest first)."""

    removed: tuple[ResultInfo, ...] = ()

    @property
    def bytes_freed(self) -> int:
        """Bytes of the files removed."""
        return sum(r.size for r in self.removed)

    @property
    def files_removed(self) -> int:
        """Number of files removed."""
        return sum(r.files for r in self.removed)


def _mtime(st: os.stat_result) -> datetime:
    return datetime.fromtimestamp(st.st_mtime, UTC)


class MediaStore:
    """Result files under one root directory; see the module docstring.

    Create it with :meth:`open` (or :meth:`open_sync`) and :meth:`close` it at shutdown. Cheap
    look-ups (:meth:`path_of`, :meth:`stat`, :meth:`exists`) are synchronous; anything that
    writes or walks directories is ``async`` and runs in a worker thread.
    """

    def __init__(
        self,
        root: Path,
        session: Path,
        lock_fd: int,
        *,
        min_free_bytes: int,
        free_bytes: FreeSpace,
        cleaned_at_open: int,
    ) -> None:
        self._root = root
        self._session = session
        self._lock_fd: int | None = lock_fd
        self._min_free = min_free_bytes
        self._free_bytes = free_bytes
        self.cleaned_at_open = cleaned_at_open
        """How many leftovers (of processes that are gone) :meth:`open` removed."""

    # -- life cycle ---------------------------------------------------------------------------

    @classmethod
    async def open(
        cls, root: Path, *, min_free_bytes: int = 0, free_bytes: FreeSpace = disk_free_bytes
    ) -> MediaStore:
        """Create the root if needed, start this store's session, remove the leftovers of
        processes that are gone (never the files of one still running)."""
        return await asyncio.to_thread(
            cls.open_sync, root, min_free_bytes=min_free_bytes, free_bytes=free_bytes
        )

    @classmethod
    def open_sync(
        cls, root: Path, *, min_free_bytes: int = 0, free_bytes: FreeSpace = disk_free_bytes
    ) -> MediaStore:
        """:meth:`open` for synchronous callers (the CLI)."""
        if min_free_bytes < 0:
            raise ValueError("min_free_bytes must not be negative")
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        root = root.resolve()
        temp_dir = root / TEMP_DIR
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISDIR(temp_dir.lstat().st_mode):
                temp_dir.unlink()  # not ours to follow: a stray file or symlink named .tmp
        temp_dir.mkdir(exist_ok=True)
        session, lock_fd = _start_session(temp_dir)
        try:
            cleaned = _clean_temp_dir(temp_dir, keep=session.name)
        except BaseException:
            _end_session(session, lock_fd)
            raise
        return cls(
            root,
            session,
            lock_fd,
            min_free_bytes=min_free_bytes,
            free_bytes=free_bytes,
            cleaned_at_open=cleaned,
        )

    def close(self) -> None:
        """End this store's session (its temporary files go); it must not be used afterwards."""
        if self._lock_fd is not None:
            fd, self._lock_fd = self._lock_fd, None
            _end_session(self._session, fd)

    def __enter__(self) -> MediaStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def root(self) -> Path:
        """The resolved root directory."""
        return self._root

    @property
    def min_free_bytes(self) -> int:
        """The free space a put must leave."""
        return self._min_free

    # -- look-ups -----------------------------------------------------------------------------

    def path_of(self, key: str, name: str) -> Path:
        """Where ``name`` of result ``key`` is (or would be); raises ``InvalidMediaName``."""
        return self._root / check_key(key) / check_name(name)

    def stat(self, key: str, name: str) -> StoredFile | None:
        """The stored file, or ``None`` if absent (or not a plain file: symlinks don't count).

        Raises ``InvalidMediaName`` for a key or name of the wrong shape.
        """
        path = self.path_of(key, name)
        try:
            dir_st = path.parent.lstat()
            st = path.lstat()
        except OSError:
            return None
        if not stat.S_ISDIR(dir_st.st_mode) or not stat.S_ISREG(st.st_mode):
            return None
        return StoredFile(key=key, name=name, size=st.st_size, modified=_mtime(st), path=path)

    def exists(self, key: str, name: str) -> bool:
        """Whether the file is stored."""
        return self.stat(key, name) is not None

    async def list_files(self, key: str) -> list[StoredFile]:
        """A result's files with sizes, by name; empty for an unknown result."""
        check_key(key)
        return await asyncio.to_thread(self._list_files, key)

    async def list_results(self) -> list[ResultInfo]:
        """Every result, oldest (by newest file) first."""
        return await asyncio.to_thread(self._list_results)

    # -- writing ------------------------------------------------------------------------------

    def open_part(self, key: str, name: str, expected_bytes: int | None = None) -> PartFile:
        """Start writing ``name`` of ``key``; it appears only on ``commit()`` (blocking I/O).

        ``expected_bytes`` (if known) is checked against the disk guard at once.
        """
        final = self.path_of(key, name)
        self._require_open()
        free = self._free_bytes(self._root)
        budget = free - self._min_free
        needed = expected_bytes or 0
        if needed > budget:
            raise InsufficientSpace(free=free, needed=needed, minimum=self._min_free)

        def check_size(size: int) -> None:
            if size > budget:
                raise InsufficientSpace(free=free, needed=size, minimum=self._min_free)

        def publish(temp: Path, size: int) -> Path:
            return self._publish(temp, final, size)

        return PartFile(self._session / temp_name(name), publish, check_size=check_size)

    def check_space(self, needed_bytes: int) -> None:
        """Raise :class:`InsufficientSpace` unless ``needed_bytes`` more would leave the
        minimum free (a check before work whose output size is only estimated, like a mix)."""
        self._require_open()
        free = self._free_bytes(self._root)
        if needed_bytes > free - self._min_free:
            raise InsufficientSpace(free=free, needed=needed_bytes, minimum=self._min_free)

    @contextlib.asynccontextmanager
    async def scratch(self) -> AsyncIterator[Path]:
        """A private folder on the store's file system for work in progress (a mix being
        encoded), removed afterwards; finished files go in with :meth:`move_in`."""
        self._require_open()
        folder = self._session / f"work-{secrets.token_hex(6)}"
        folder.mkdir()
        try:
            yield folder
        finally:
            await asyncio.to_thread(shutil.rmtree, folder, True)

    def target(self, key: str, name: str) -> StoreTarget:
        """A download target for ``StemFetcher.fetch`` (the key and name are checked now)."""
        self.path_of(key, name)
        return StoreTarget(self, key, name)

    async def put_bytes(self, key: str, name: str, data: bytes) -> StoredFile:
        """Store ``data`` as ``name`` of ``key`` (replacing an older file of that name)."""
        self.path_of(key, name)
        written = await asyncio.to_thread(self._put_bytes, key, name, data)
        return self._stored(key, name, written)

    async def put_file(self, key: str, name: str, source: Path) -> StoredFile:
        """Copy ``source`` in as ``name`` of ``key``; ``source`` is left as it was."""
        self.path_of(key, name)
        written = await asyncio.to_thread(self._put_file, key, name, source)
        return self._stored(key, name, written)

    async def move_in(self, key: str, name: str, source: Path) -> StoredFile:
        """Move a finished file (made in :meth:`scratch`) in as ``name`` of ``key``.

        One rename when ``source`` is on the store's file system (it is, in :meth:`scratch`),
        a copy otherwise; the disk guard is checked against what is free now.
        """
        final = self.path_of(key, name)
        self._require_open()
        written = await asyncio.to_thread(self._move_in, key, name, source, final)
        return self._stored(key, name, written)

    # -- removing -----------------------------------------------------------------------------

    async def delete(self, key: str) -> ResultInfo | None:
        """Remove a whole result; returns what it held, or ``None`` if there was none."""
        check_key(key)
        return await asyncio.to_thread(self._delete, key, None)

    async def prune(self, older_than_days: float, *, now: datetime) -> PruneReport:
        """Delete results whose newest file is older than ``older_than_days``; 0 keeps all.

        Results go oldest first, so a run cut short has removed the ones most overdue.
        """
        if older_than_days < 0:
            raise ValueError("older_than_days must not be negative")
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        if older_than_days == 0:
            return PruneReport()
        cutoff = now - timedelta(days=older_than_days)
        return await asyncio.to_thread(self._prune, cutoff)

    # -- worker-thread bodies -----------------------------------------------------------------

    def _require_open(self) -> None:
        if self._lock_fd is None:
            raise StoreError("the media store is closed")

    @contextlib.contextmanager
    def _tree(self, *, exclusive: bool) -> Iterator[None]:
        """The tree lock (see the module docstring), for this thread and every process.

        Each use opens the lock file anew: flock locks belong to an open file description, so
        two threads of this process exclude each other just as two processes do.
        """
        fd = os.open(self._root / TREE_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    def _publish(self, temp: Path, final: Path, size: int) -> Path:
        # The bytes are on disk now, so the space they took is already gone from ``free``.
        free = self._free_bytes(self._root)
        if free < self._min_free:
            raise InsufficientSpace(free=free, needed=size, minimum=self._min_free)
        with self._tree(exclusive=False):
            result_dir = final.parent
            result_dir.mkdir(exist_ok=True)
            if not stat.S_ISDIR(result_dir.lstat().st_mode):
                raise StoreError("a result directory is not a plain directory")
            os.replace(temp, final)
            fsync_directory(result_dir)
        return final

    def _move_in(self, key: str, name: str, source: Path, final: Path) -> WrittenFile:
        try:
            same_fs = source.stat().st_dev == self._session.stat().st_dev
        except OSError as exc:
            raise StoreError(f"cannot read the file to store ({exc.strerror})") from None
        if not same_fs:
            written = self._put_file(key, name, source)
            source.unlink(missing_ok=True)
            return written
        size = source.stat().st_size
        with source.open("rb") as handle:
            os.fsync(handle.fileno())
        final_path = self._publish(source, final, size)
        return WrittenFile(path=final_path, size=size, sha256="")

    def _put_bytes(self, key: str, name: str, data: bytes) -> WrittenFile:
        with self.open_part(key, name, len(data)) as part:
            part.write(data)
            return part.commit()

    def _put_file(self, key: str, name: str, source: Path) -> WrittenFile:
        with source.open("rb") as src:
            size = os.fstat(src.fileno()).st_size
            with self.open_part(key, name, size) as part:
                while chunk := src.read(COPY_CHUNK_BYTES):
                    part.write(chunk)
                return part.commit()

    def _stored(self, key: str, name: str, written: WrittenFile) -> StoredFile:
        found = self.stat(key, name)
        if found is not None:
            return found
        # Removed again between the rename and this look-up (a concurrent delete).
        return StoredFile(key, name, written.size, datetime.now(UTC), written.path)

    def _scan(self, key: str) -> Iterator[StoredFile]:
        directory = self._root / key
        try:
            if not stat.S_ISDIR(directory.lstat().st_mode):
                return
            entries = list(os.scandir(directory))
        except OSError:
            return
        for entry in entries:
            if not is_valid_name(entry.name):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                yield StoredFile(key, entry.name, st.st_size, _mtime(st), Path(entry.path))

    def _list_files(self, key: str) -> list[StoredFile]:
        return sorted(self._scan(key), key=lambda f: f.name)

    def _info(self, key: str) -> ResultInfo | None:
        directory = self._root / key
        try:
            dir_st = directory.lstat()
        except OSError:
            return None
        if not stat.S_ISDIR(dir_st.st_mode):
            return None
        files = list(self._scan(key))
        newest = max((f.modified for f in files), default=_mtime(dir_st))
        return ResultInfo(key, len(files), sum(f.size for f in files), newest)

    def _list_results(self) -> list[ResultInfo]:
        infos: list[ResultInfo] = []
        with os.scandir(self._root) as entries:
            for entry in entries:
                if is_valid_key(entry.name) and (info := self._info(entry.name)) is not None:
                    infos.append(info)
        return sorted(infos, key=lambda r: (r.last_modified, r.key))

    def _delete(self, key: str, cutoff: datetime | None) -> ResultInfo | None:
        self._require_open()
        trash = self._session / f"trash-{key}-{secrets.token_hex(4)}"
        with self._tree(exclusive=True):
            # Looked at again under the lock: a put (of any process) may have landed since.
            info = self._info(key)
            if info is None or (cutoff is not None and info.last_modified >= cutoff):
                return None
            # Out of the tree at once; the slow part (deleting) runs without the lock.
            os.rename(self._root / key, trash)
        # rmtree removes symlinks found inside without following them.
        shutil.rmtree(trash, ignore_errors=True)
        return info

    def _prune(self, cutoff: datetime) -> PruneReport:
        removed: list[ResultInfo] = []
        for info in self._list_results():
            if info.last_modified >= cutoff:
                break  # sorted oldest first: everything after is newer
            gone = self._delete(info.key, cutoff)
            if gone is not None:
                removed.append(gone)
        return PruneReport(tuple(removed))


class StoreTarget:
    """A :class:`~bot.media.atomic.DownloadTarget` writing one file of the store."""

    def __init__(self, store: MediaStore, key: str, name: str) -> None:
        self._store = store
        self.key = key
        self.name = name

    def open_part(self, expected_bytes: int | None) -> PartFile:
        """Start the file, checking the disk guard with the announced size."""
        return self._store.open_part(self.key, self.name, expected_bytes)


def _start_session(temp_dir: Path) -> tuple[Path, int]:
    """A new session folder under ``temp_dir`` and the descriptor holding its lock.

    The lock file is created and locked under a hidden name, then renamed into place, so a
    cleaner never sees an unlocked lock of a live session; the folder is made after that.
    """
    for _ in range(_SESSION_TRIES):
        name = secrets.token_hex(8)
        pending = temp_dir / f".{name}{SESSION_LOCK_SUFFIX}.new"
        fd = os.open(pending, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(pending, temp_dir / f"{name}{SESSION_LOCK_SUFFIX}")
        except OSError:
            # A cleaner took the pending lock file away between its creation and the lock.
            os.close(fd)
            continue
        session = temp_dir / name
        session.mkdir()
        return session, fd
    raise StoreError("could not start a media store session (the .tmp folder keeps changing)")


def _end_session(session: Path, lock_fd: int) -> None:
    """Remove the session's folder and lock file, then release the lock."""
    shutil.rmtree(session, ignore_errors=True)
    with contextlib.suppress(OSError):
        session.with_name(session.name + SESSION_LOCK_SUFFIX).unlink()
    os.close(lock_fd)


def _lock_is_free(path: Path) -> bool:
    """Nobody holds ``path``'s flock (its session's process is gone); missing counts as free."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def _clean_temp_dir(temp_dir: Path, *, keep: str) -> int:
    """Remove what processes that are gone left in ``temp_dir``; return how many entries.

    A session folder goes when nobody holds its lock, with the lock file; anything else that
    is not a live session's (a stray file, a folder without a lock) goes too. ``keep`` is this
    store's own session.
    """
    removed = 0
    with os.scandir(temp_dir) as entries:
        listed = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
    for name, is_dir in listed:
        if name in (keep, keep + SESSION_LOCK_SUFFIX):
            continue
        path = temp_dir / name
        if not is_dir and name.endswith(SESSION_LOCK_SUFFIX):
            if _lock_is_free(path):
                session = temp_dir / name.removesuffix(SESSION_LOCK_SUFFIX)
                if session.exists():
                    shutil.rmtree(session, ignore_errors=True)
                    removed += 1
                with contextlib.suppress(OSError):
                    path.unlink()
            continue
        if not is_dir and name.endswith(SESSION_LOCK_SUFFIX + ".new"):
            # A session being set up right now holds it; a crash in that moment leaves it.
            if _lock_is_free(path):
                with contextlib.suppress(OSError):
                    path.unlink()
            continue
        if is_dir and (temp_dir / (name + SESSION_LOCK_SUFFIX)).exists():
            continue  # a session folder: judged by its lock file's own entry
        if not path.exists():
            continue  # removed above, with its lock
        if is_dir:
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()
        removed += 1
    return removed
