"""Writing MP3 files: the bitrates LAME offers and an atomic, streaming writer.

The writer encodes into a hidden file next to the destination and renames it into place only
when the encode finished, so a crash or a timeout never leaves a truncated file under the
final name for the caller to post.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from types import TracebackType
from typing import Self

import numpy as np
from pedalboard.io import WriteableAudioFile

from bot.audio.errors import InvalidSetting
from bot.audio.stream import Samples

MP3_BITRATES = (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
"""Constant bitrates (kbps) of MPEG-1 Layer III, the ones LAME can write at 32-48 kHz."""
MP3_SAMPLE_RATES = (32_000, 44_100, 48_000)
DEFAULT_BITRATE_KBPS = 192
# LAME's CBR presets scale the input down by these factors (headroom against clipping):
# a 192 kbps encode decodes 0.26 dB quieter than what went in. The writer compensates so the
# file has the level of the samples given; tests measure every bitrate.
_LAME_LEVEL = {160: 0.95, 192: 0.97, 224: 0.98, 256: 1.0, 320: 1.0}


def lame_level(kbps: int) -> float:
    """The factor LAME's preset for ``kbps`` multiplies the input level by."""
    return _LAME_LEVEL.get(kbps, 0.95)


def check_bitrate(kbps: int) -> int:
    """``kbps`` when it is an MP3 bitrate, else :class:`InvalidSetting`."""
    if kbps not in MP3_BITRATES:
        raise InvalidSetting(f"{kbps} kbps is not an MP3 bitrate (one of {MP3_BITRATES})")
    return kbps


def nearest_bitrate(kbps: float) -> int:
    """The MP3 bitrate closest to ``kbps`` (an average from a VBR file, say)."""
    return min(MP3_BITRATES, key=lambda rate: (abs(rate - kbps), -rate))


def mp3_sample_rate(rate: int) -> int:
    """A sample rate MP3 can hold for audio at ``rate``: itself, or the next one up (max 48k)."""
    if rate in MP3_SAMPLE_RATES:
        return rate
    higher = [candidate for candidate in MP3_SAMPLE_RATES if candidate >= rate]
    return higher[0] if higher else MP3_SAMPLE_RATES[-1]


class Mp3Writer:
    """Encode float32 chunks to ``out`` at a constant bitrate, atomically.

    Use as a context manager: on a clean exit the file is renamed to ``out``; on an error the
    partial file is removed. The file decodes at the level of the samples given (LAME's own
    level scaling is compensated); samples must stay within :attr:`max_peak` or they clip
    (the encoder takes 16-bit input).
    """

    def __init__(self, out: Path, *, sample_rate: int, channels: int, bitrate_kbps: int) -> None:
        check_bitrate(bitrate_kbps)
        if sample_rate not in MP3_SAMPLE_RATES:
            raise InvalidSetting(f"MP3 cannot hold {sample_rate} Hz audio")
        self.out = out
        # Hidden, unique, and ending in .mp3 so the encoder picks the format from the name.
        self._partial = out.with_name(f".{out.stem}.{secrets.token_hex(4)}.partial.mp3")
        self._file = WriteableAudioFile(
            str(self._partial),
            samplerate=sample_rate,
            num_channels=channels,
            quality=f"{bitrate_kbps} kbps",
        )
        self.frames = 0
        self.bitrate_kbps = bitrate_kbps
        self.max_peak = lame_level(bitrate_kbps)
        """Loudest sample value that goes through without clipping."""
        self._compensation = np.float32(1.0 / self.max_peak)

    def write(self, samples: Samples) -> None:
        """Append ``samples`` (shape ``(channels, frames)``)."""
        if samples.shape[1]:
            block = samples * self._compensation if self._compensation != 1 else samples
            self._file.write(np.ascontiguousarray(block, dtype=np.float32))
            self.frames += samples.shape[1]

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            self._file.close()  # flushes the encoder: it can fail too (a full disk)
        except BaseException:
            self._partial.unlink(missing_ok=True)
            raise
        if exc_type is None:
            os.replace(self._partial, self.out)
        else:
            self._partial.unlink(missing_ok=True)
