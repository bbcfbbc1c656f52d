"""A float32 spill file: the first pass writes processed audio and learns its peak, the
second pass applies one gain to the whole of it while encoding.

This is how the engine avoids clipping without limiting: it cannot know the loudest sample of
a mix (or of a pitch-shifted track) before it has computed all of it, and it must not keep
all of it in memory. The file is anonymous (unlinked at creation), so nothing is left behind
even when a worker is killed mid-job.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import numpy as np

from bot.audio.errors import AudioInputError
from bot.audio.mp3 import Mp3Writer
from bot.audio.stream import CHUNK_FRAMES, Samples

CEILING_DBFS = -1.0
"""Highest sample peak the engine writes: 1 dB of headroom for the MP3 encoder's overshoot."""


def db_to_gain(db: float) -> float:
    """Linear gain of ``db`` decibels."""
    return float(10 ** (db / 20))


def gain_to_db(gain: float) -> float:
    """Decibels of a linear gain (``-inf`` for silence)."""
    return 20 * math.log10(gain) if gain > 0 else -math.inf


def gain_for_peak(peak: float, ceiling: float) -> float:
    """1.0 when ``peak`` stays at or under ``ceiling`` (linear), else the uniform gain that
    brings it down to the ceiling exactly."""
    return 1.0 if peak <= ceiling else ceiling / peak


def ceiling_for(writer: Mp3Writer, ceiling_dbfs: float = CEILING_DBFS) -> float:
    """The linear ceiling for audio encoded by ``writer``: ``ceiling_dbfs``, or lower when
    the encoder's input would clip before that."""
    return min(db_to_gain(ceiling_dbfs), writer.max_peak)


class FloatSpill:
    """Audio appended chunk by chunk to an anonymous temporary file, with its peak tracked."""

    def __init__(self, channels: int, *, directory: Path) -> None:
        self.channels = channels
        self.frames = 0
        self.peak = 0.0
        # Owned by the spill and closed in close(), which __exit__ calls.
        self._file: IO[bytes] = tempfile.TemporaryFile(dir=directory, prefix=".spill")  # noqa: SIM115

    def append(self, samples: Samples) -> None:
        """Add ``samples`` (shape ``(channels, frames)``) after what is already there."""
        if not samples.shape[1]:
            return
        loudest = max(float(samples.max()), -float(samples.min()))
        if not math.isfinite(loudest):
            raise AudioInputError("the audio decodes to non-finite samples")
        self.peak = max(self.peak, loudest)
        # Stored interleaved (frame after frame), so chunks of any size read back the same.
        np.ascontiguousarray(samples.T, dtype=np.float32).tofile(self._file)
        self.frames += samples.shape[1]

    def encode(self, writer: Mp3Writer, gain: float) -> None:
        """Write everything appended so far to ``writer``, multiplied by ``gain``."""
        self._file.flush()
        self._file.seek(0)
        while True:
            data = np.fromfile(self._file, dtype=np.float32, count=self.channels * CHUNK_FRAMES)
            if not data.size:
                return
            block = data.reshape(-1, self.channels).T
            if gain != 1.0:
                block *= np.float32(gain)
            writer.write(block)

    def close(self) -> None:
        """Drop the file (its space is freed at once)."""
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
