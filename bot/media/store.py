"""The media store: result files on disk, grouped per result, written atomically.

Layout under the root directory (``MEDIA_DIR``)::

    <root>/.lock             held (flock) by the one process that owns the store
    <root>/.tmp/*.part       files being written; whatever is here at open is a crash's leftover
    <root>/<key>/<name>      one result's files, e.g. <job id>/vocals.mp3

Keys and names are checked strictly (``bot.media.names``), so no path built here can leave the
root. Every put goes through a temporary file in ``.tmp`` (same file system as the results)
and one rename, so a file is either whole or absent.

**Disk guard.** A put is refused with :class:`~bot.media.errors.InsufficientSpace` when it
would leave less than ``min_free_bytes`` free: checked before writing (with the announced size,
if any), on every write (against the space free at the start), and once more just before the
rename (against the space actually free then, which also catches concurrent writers).

**Retention.** :meth:`MediaStore.prune` deletes whole results whose newest file is older than
N days, oldest first, and reports what it freed; 0 days keeps everything.

**One owner.** Opening takes an exclusive lock on ``<root>/.lock``; a second opener gets
:class:`~bot.media.errors.MediaStoreBusy`. That is what makes deleting ``.tmp`` at open safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType

from bot.media.atomic import PartFile, WrittenFile, fsync_directory, temp_name
from bot.media.errors import InsufficientSpace, MediaStoreBusy, StoreError
from bot.media.names import check_key, check_name, is_valid_key, is_valid_name

TEMP_DIR = ".tmp"
LOCK_FILE = ".lock"
COPY_CHUNK_BYTES = 1024 * 1024

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
        lock_fd: int,
        *,
        min_free_bytes: int,
        free_bytes: FreeSpace,
        cleaned_at_open: int,
    ) -> None:
        self._root = root
        self._lock_fd: int | None = lock_fd
        self._min_free = min_free_bytes
        self._free_bytes = free_bytes
        # Serializes "rename into a result" against "delete a result" (prune, delete), which
        # run in worker threads: a file must never land in a directory being removed.
        self._tree_lock = threading.Lock()
        self.cleaned_at_open = cleaned_at_open
        """How many leftover temporary files :meth:`open` removed."""

    # -- life cycle ---------------------------------------------------------------------------

    @classmethod
    async def open(
        cls, root: Path, *, min_free_bytes: int = 0, free_bytes: FreeSpace = disk_free_bytes
    ) -> MediaStore:
        """Create the root if needed, take the lock, delete a crash's leftover temp files."""
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
        lock_fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise MediaStoreBusy(
                "the media directory is in use by another process (one owner per MEDIA_DIR)"
            ) from None
        try:
            cleaned = _clean_temp_dir(root / TEMP_DIR)
        except BaseException:
            os.close(lock_fd)
            raise
        return cls(
            root,
            lock_fd,
            min_free_bytes=min_free_bytes,
            free_bytes=free_bytes,
            cleaned_at_open=cleaned,
        )

    def close(self) -> None:
        """Release the lock; the store must not be used afterwards."""
        if self._lock_fd is not None:
            fd, self._lock_fd = self._lock_fd, None
            os.close(fd)  # closing the descriptor releases the flock

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

        temp_dir = self._root / TEMP_DIR
        temp_dir.mkdir(exist_ok=True)
        return PartFile(temp_dir / temp_name(name), publish, check_size=check_size)

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

    def _publish(self, temp: Path, final: Path, size: int) -> Path:
        # The bytes are on disk now, so the space they took is already gone from ``free``.
        free = self._free_bytes(self._root)
        if free < self._min_free:
            raise InsufficientSpace(free=free, needed=size, minimum=self._min_free)
        with self._tree_lock:
            result_dir = final.parent
            result_dir.mkdir(exist_ok=True)
            if not stat.S_ISDIR(result_dir.lstat().st_mode):
                raise StoreError("a result directory is not a plain directory")
            os.replace(temp, final)
            fsync_directory(result_dir)
        return final

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
        with self._tree_lock:
            info = self._info(key)
            if info is None or (cutoff is not None and info.last_modified >= cutoff):
                return None
            # rmtree removes symlinks found inside without following them.
            shutil.rmtree(self._root / key)
            return info

    def _prune(self, cutoff: datetime) -> PruneReport:
        removed: list[ResultInfo] = []
        for info in self._list_results():
            if info.last_modified >= cutoff:
                break  # sorted oldest first: everything after is newer
            # Looked at again under the lock: a put may have landed since the listing.
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


def _clean_temp_dir(temp_dir: Path) -> int:
    """Remove everything in ``temp_dir`` (a crash's leftovers); return how many entries."""
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISDIR(temp_dir.lstat().st_mode):
            temp_dir.unlink()  # not ours to follow: a stray file or symlink named .tmp
    temp_dir.mkdir(exist_ok=True)
    removed = 0
    with os.scandir(temp_dir) as entries:
        for entry in list(entries):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed += 1
    return removed
