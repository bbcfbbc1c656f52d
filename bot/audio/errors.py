"""Every failure of the audio engine is one of these types, so callers can tell them apart.

Input problems (:class:`AudioInputError` and its subclasses) are about the files or arguments
given; pool problems (:class:`PoolError` and its subclasses) are about running the work.
"""

from __future__ import annotations

from pathlib import Path


class AudioError(Exception):
    """Base class of every error raised by :mod:`bot.audio`."""


class AudioInputError(AudioError):
    """The files or arguments given cannot be processed as asked."""


class UnreadableAudio(AudioInputError):
    """A file could not be opened or decoded as audio."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"cannot read {path.name} as audio: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self) -> tuple[type[UnreadableAudio], tuple[Path, str]]:
        # Errors cross the process boundary of the pool by pickling.
        return (type(self), (self.path, self.reason))


class UnsupportedLayout(AudioInputError):
    """A file has a channel layout the engine does not handle (more than two channels)."""

    def __init__(self, path: Path, channels: int) -> None:
        super().__init__(f"{path.name} has {channels} channels; only mono and stereo are supported")
        self.path = path
        self.channels = channels

    def __reduce__(self) -> tuple[type[UnsupportedLayout], tuple[Path, int]]:
        return (type(self), (self.path, self.channels))


class NothingToMix(AudioInputError):
    """No stem is left to build a backing track from."""


class InvalidSetting(AudioInputError, ValueError):
    """An argument is outside what the engine accepts (a bitrate, a key shift, a tempo)."""


class PoolError(AudioError):
    """Base class of the errors of :class:`bot.audio.pool.AudioPool`."""


class PoolBusy(PoolError):
    """The pool's queue is full; the job was not accepted. Try again later."""


class PoolClosed(PoolError):
    """The pool is shut down (or shutting down) and accepts no more work."""


class JobTimedOut(PoolError):
    """A job ran longer than its time limit; its worker was stopped."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"audio job did not finish within {seconds:g} s")
        self.seconds = seconds

    def __reduce__(self) -> tuple[type[JobTimedOut], tuple[float]]:
        return (type(self), (self.seconds,))


class WorkerCrashed(PoolError):
    """The worker process running a job died before answering (killed, crashed, out of memory)."""

    def __init__(self, exitcode: int | None) -> None:
        super().__init__(f"audio worker died while running a job (exit code {exitcode})")
        self.exitcode = exitcode

    def __reduce__(self) -> tuple[type[WorkerCrashed], tuple[int | None]]:
        return (type(self), (self.exitcode,))


class UnpicklableJob(PoolError, TypeError):
    """The function or an argument cannot be sent to a worker process (a lambda, a lock).

    Raised by the caller's ``run`` before the job is accepted."""


class JobFailed(PoolError):
    """A job raised an error that could not be sent back as itself (it does not pickle)."""


class InputTooLong(AudioInputError):
    """The audio is longer than an operation that holds it all in memory accepts."""
