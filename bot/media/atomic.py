"""Files that appear whole or not at all.

A :class:`PartFile` is written under a temporary name; :meth:`PartFile.commit` flushes it to
disk (``fsync``) and only then renames it to its final name, in one ``os.replace`` on the same
file system. A process killed at any moment therefore leaves either no file under the final
name or the complete one, never half a file; what it may leave is a temporary ``*.part`` file,
which its owner cleans up (the media store does so when it opens).

A :class:`DownloadTarget` says where a download goes: :class:`FileTarget` for a plain path,
``MediaStore.target`` for the store. The methods here block on disk I/O; async callers run
them in a worker thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol

PART_SUFFIX = ".part"


@dataclass(frozen=True, slots=True)
class WrittenFile:
    """A committed file: where it is, how big, and the SHA-256 of its bytes (hex)."""

    path: Path
    size: int
    sha256: str


Publish = Callable[[Path, int], Path]
"""Moves a finished temporary file (path, size) to its final place and returns that place."""

SizeCheck = Callable[[int], None]
"""Called with the size a write would reach; raises to refuse the write."""


def temp_name(final_name: str) -> str:
    """A fresh temporary name for a file that will be called ``final_name``."""
    return f".{final_name}.{secrets.token_hex(8)}{PART_SUFFIX}"


def fsync_directory(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (best effort where the OS cannot)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class PartFile:
    """A file being written under a temporary name; see the module docstring.

    Thread-safe: :meth:`discard` may be called from the event loop while a worker thread is
    still inside :meth:`write`; it waits for that write and then removes the file.
    """

    def __init__(
        self, temp_path: Path, publish: Publish, *, check_size: SizeCheck | None = None
    ) -> None:
        # "x": never reuse or follow an existing path, the name is fresh and random.
        self._file = temp_path.open("xb")
        self._temp = temp_path
        self._publish = publish
        self._check_size = check_size
        self._hash = hashlib.sha256()
        self._size = 0
        self._state = "open"
        self._lock = threading.Lock()

    @property
    def temp_path(self) -> Path:
        """Where the bytes are until commit."""
        return self._temp

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._size

    def write(self, data: bytes) -> None:
        """Append ``data``; the size check (if any) may refuse it, and then nothing is written."""
        with self._lock:
            self._require_open()
            new_size = self._size + len(data)
            if self._check_size is not None:
                self._check_size(new_size)
            self._file.write(data)
            self._hash.update(data)
            self._size = new_size

    def commit(self) -> WrittenFile:
        """Flush, fsync, and move the file to its final name; the part file is gone after."""
        with self._lock:
            self._require_open()
            try:
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()
                final = self._publish(self._temp, self._size)
            except BaseException:
                self._drop()
                raise
            self._state = "committed"
            return WrittenFile(path=final, size=self._size, sha256=self._hash.hexdigest())

    def discard(self) -> None:
        """Remove the temporary file; does nothing after :meth:`commit` or a first discard."""
        with self._lock:
            if self._state == "open":
                self._drop()

    def _drop(self) -> None:
        self._state = "discarded"
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(OSError):
            self._temp.unlink(missing_ok=True)

    def _require_open(self) -> None:
        if self._state != "open":
            raise RuntimeError(f"part file already {self._state}")

    def __enter__(self) -> PartFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.discard()


class DownloadTarget(Protocol):
    """Somewhere a download can be written to atomically."""

    def open_part(self, expected_bytes: int | None) -> PartFile:
        """Start a file; ``expected_bytes`` is the announced size, if any (for space checks)."""
        ...


class FileTarget:
    """A plain path: the temporary file sits beside it, so the final rename is atomic."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def open_part(self, expected_bytes: int | None) -> PartFile:
        """Start the temporary file next to :attr:`path` (creating the directory if needed)."""
        del expected_bytes  # a plain path has no space guard
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return PartFile(self.path.parent / temp_name(self.path.name), self._publish)

    def _publish(self, temp: Path, size: int) -> Path:
        del size
        os.replace(temp, self.path)
        fsync_directory(self.path.parent)
        return self.path
