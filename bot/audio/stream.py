"""Reading audio files chunk by chunk, in the layout a caller asks for, in constant memory.

:class:`AudioStream` decodes any file pedalboard reads (MP3, WAV, FLAC, OGG), drops the MP3
encoder's priming and padding when the file records them (see :mod:`bot.audio.mp3info`),
resamples to the asked rate with a streaming resampler, and converts mono to stereo (or
stereo to mono). Each :meth:`AudioStream.read` returns exactly the frames asked for until the
end, so several streams read in step stay sample-aligned.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import numpy as np
import numpy.typing as npt
from pedalboard.io import ReadableAudioFile, StreamResampler

from bot.audio.errors import InvalidSetting, UnreadableAudio, UnsupportedLayout
from bot.audio.mp3info import Mp3Info, read_mp3_info

Samples = npt.NDArray[np.float32]
"""Audio as float32, shape ``(channels, frames)``, full scale at 1.0."""

CHUNK_FRAMES = 1 << 16
"""Frames per chunk in the streaming passes: ~1.5 s at 44.1 kHz, 512 KiB per stereo chunk."""


@dataclass(frozen=True, slots=True)
class AudioInfo:
    """What a file holds, as the engine will decode it."""

    path: Path
    sample_rate: int
    channels: int
    frames: int
    """Frames after dropping MP3 priming/padding; exact for WAV/FLAC and gapless MP3s."""
    bitrate_kbps: int | None
    """For MP3 files: the constant (or average) bitrate; ``None`` for other formats."""

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return self.frames / self.sample_rate


def _open(path: Path) -> ReadableAudioFile:
    try:
        return ReadableAudioFile(str(path))
    except (OSError, ValueError, RuntimeError) as exc:
        raise UnreadableAudio(path, str(exc) or type(exc).__name__) from exc


def _mp3_info(path: Path) -> Mp3Info | None:
    try:
        return read_mp3_info(path)
    except OSError as exc:
        raise UnreadableAudio(path, str(exc)) from exc


def probe(path: Path) -> AudioInfo:
    """Sample rate, channels, length and bitrate of ``path`` without decoding it."""
    with _open(path) as file:
        rate = round(file.samplerate)
        channels = file.num_channels
        frames = file.frames
    mp3 = _mp3_info(path)
    if mp3 is not None and mp3.original_samples is not None:
        frames = min(mp3.original_samples, max(0, frames - mp3.leading_samples))
    return AudioInfo(
        path=path,
        sample_rate=rate,
        channels=channels,
        frames=frames,
        bitrate_kbps=mp3.bitrate_kbps if mp3 is not None else None,
    )


class AudioStream:
    """Decode ``path`` chunk by chunk as float32 at ``sample_rate`` with ``channels``.

    ``None`` keeps the file's own rate or channel count. Files with more than two channels
    raise :class:`UnsupportedLayout`; unreadable ones :class:`UnreadableAudio`.
    """

    def __init__(
        self, path: Path, *, sample_rate: int | None = None, channels: int | None = None
    ) -> None:
        self.path = path
        self._file = _open(path)
        try:
            self.source_rate = round(self._file.samplerate)
            self.source_channels = self._file.num_channels
            if self.source_channels not in (1, 2):
                raise UnsupportedLayout(path, self.source_channels)
            self.sample_rate = sample_rate or self.source_rate
            self.channels = channels or self.source_channels
            if self.sample_rate <= 0 or self.channels not in (1, 2):
                raise InvalidSetting(
                    f"cannot stream as {self.channels} channels at {self.sample_rate} Hz"
                )
            mp3 = _mp3_info(path)
        except BaseException:
            self._file.close()
            raise
        self._skip = mp3.leading_samples if mp3 is not None else 0
        self._remaining = mp3.original_samples if mp3 is not None else None
        self._resampler = (
            StreamResampler(self.source_rate, self.sample_rate, self.source_channels)
            if self.sample_rate != self.source_rate
            else None
        )
        self._pending: list[Samples] = []
        self._pending_frames = 0
        self._source_done = False
        self._source_frames = 0
        self._resampled_frames = 0

    def read(self, frames: int = CHUNK_FRAMES) -> Samples:
        """The next ``frames`` frames; fewer only at the end; shape ``(0 frames)`` after it."""
        while self._pending_frames < frames and not self._source_done:
            self._pull(frames)
        if not self._pending:
            return np.zeros((self.channels, 0), dtype=np.float32)
        joined = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending, 1)
        chunk, rest = joined[:, :frames], joined[:, frames:]
        self._pending = [rest] if rest.shape[1] else []
        self._pending_frames = rest.shape[1]
        return chunk

    def _pull(self, frames: int) -> None:
        """Decode about ``frames`` more source frames into the pending buffer."""
        raw = self._decode(frames)
        if raw.shape[1] == 0:
            self._source_done = True
            if self._resampler is not None:
                self._append(self._exact_tail(self._resampler.process()))
            return
        if self._resampler is not None:
            self._source_frames += raw.shape[1]
            raw = self._resampler.process(raw)
            self._resampled_frames += raw.shape[1]
        self._append(raw)

    def _exact_tail(self, tail: Samples) -> Samples:
        """The resampler's flushed tail cut or padded so the stream lasts exactly as long as
        the source (its filter may leave a sample more or less)."""
        expected = round(self._source_frames * self.sample_rate / self.source_rate)
        wanted = expected - self._resampled_frames
        if wanted <= tail.shape[1]:
            return tail[:, : max(0, wanted)]
        padding = np.zeros((tail.shape[0], wanted - tail.shape[1]), dtype=np.float32)
        return np.concatenate([tail, padding], axis=1)

    def _decode(self, frames: int) -> Samples:
        """Source frames with the MP3 priming skipped and the padding cut off."""
        while True:
            if self._remaining is not None and self._remaining <= 0:
                return np.zeros((self.source_channels, 0), dtype=np.float32)
            try:
                raw: Samples = self._file.read(frames)
            except (OSError, ValueError, RuntimeError) as exc:
                raise UnreadableAudio(self.path, str(exc) or type(exc).__name__) from exc
            if raw.shape[1] == 0:
                return raw
            if self._skip:
                dropped = min(self._skip, raw.shape[1])
                self._skip -= dropped
                raw = raw[:, dropped:]
                if raw.shape[1] == 0:
                    continue
            if self._remaining is not None:
                raw = raw[:, : self._remaining]
                self._remaining -= raw.shape[1]
            return raw

    def _append(self, samples: Samples) -> None:
        if samples.shape[1] == 0:
            return
        if samples.shape[0] != self.channels:
            samples = (
                np.repeat(samples, self.channels, axis=0)
                if samples.shape[0] == 1
                else samples.mean(axis=0, keepdims=True, dtype=np.float32)
            )
        self._pending.append(samples)
        self._pending_frames += samples.shape[1]

    def close(self) -> None:
        """Release the file."""
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


def read_all(path: Path, *, sample_rate: int | None = None, channels: int | None = None) -> Samples:
    """The whole of ``path`` in memory (for short files and for work that needs it all).

    The array is allocated once at the probed length (not grown chunk by chunk and joined,
    which would briefly need twice the memory of a long track).
    """
    info = probe(path)
    with AudioStream(path, sample_rate=sample_rate, channels=channels) as stream:
        expected = round(info.frames * stream.sample_rate / stream.source_rate)
        audio = np.empty((stream.channels, expected), dtype=np.float32)
        filled = 0
        while (chunk := stream.read(CHUNK_FRAMES)).shape[1]:
            frames = chunk.shape[1]
            if filled + frames > audio.shape[1]:  # the probe underestimated: grow by a quarter
                size = max(filled + frames, audio.shape[1] * 5 // 4)
                grown = np.empty((stream.channels, size), dtype=np.float32)
                grown[:, :filled] = audio[:, :filled]
                audio = grown
            audio[:, filled : filled + frames] = chunk
            filled += frames
    return audio[:, :filled]
