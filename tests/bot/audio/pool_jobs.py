"""Top-level jobs for the pool tests (workers import them by name)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def pid() -> int:
    return os.getpid()


def niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, 0)


def add(a: int, b: int, *, scale: int = 1) -> int:
    return (a + b) * scale


def wait_for(flag: Path, pid_file: Path | None = None, answer: str = "done") -> str:
    """Block until ``flag`` exists (the test decides when), recording our pid first."""
    if pid_file is not None:
        # Written whole, then renamed: a reader never sees the file empty.
        partial = pid_file.with_name(pid_file.name + ".partial")
        partial.write_text(str(os.getpid()))
        partial.replace(pid_file)
    while not flag.exists():
        time.sleep(0.01)
    return answer


def exit_hard(code: int) -> None:
    os._exit(code)


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def raise_value_error(text: str) -> None:
    raise ValueError(text)


class Unpicklable(Exception):
    def __init__(self) -> None:
        super().__init__("cannot cross processes")
        self.lock = __import__("threading").Lock()


def raise_unpicklable() -> None:
    raise Unpicklable


def return_unpicklable() -> object:
    return lambda: None


def broken_worker(*_: object) -> None:
    """A worker that dies at start, as one with a broken installation would."""
    os._exit(70)
