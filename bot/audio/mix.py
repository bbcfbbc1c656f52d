"""The backing-track mix: every accompaniment stem summed into one MP3, never clipped.

Two streaming passes, so memory does not grow with the song's length: the first decodes all
stems chunk by chunk, sums them, tracks the peak and spills the float sum to an anonymous
temporary file; the second applies one gain to the whole track and encodes it. The gain is
1.0 when the sum's peak stays under the ceiling (-1 dBFS), so the mix has exactly the level
of the plain sum; otherwise the whole track is scaled down uniformly (no limiter, no
per-chunk gain that would pump). Each stem is decoded once and the result encoded once.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bot.audio.errors import NothingToMix
from bot.audio.mp3 import (
    DEFAULT_BITRATE_KBPS,
    Mp3Writer,
    check_bitrate,
    mp3_sample_rate,
    nearest_bitrate,
)
from bot.audio.spill import CEILING_DBFS, FloatSpill, ceiling_for, gain_for_peak, gain_to_db
from bot.audio.stream import CHUNK_FRAMES, AudioInfo, AudioStream, probe


@dataclass(frozen=True, slots=True)
class MixReport:
    """What :func:`mix_backing_track` wrote."""

    stems: int
    sample_rate: int
    channels: int
    frames: int
    peak_before_gain: float
    """Loudest sample of the plain sum (linear, 1.0 = full scale); may exceed 1.0."""
    gain: float
    """The one gain applied to the whole track: 1.0, or less when the sum would clip."""
    bitrate_kbps: int
    bytes: int

    @property
    def duration_s(self) -> float:
        """Length of the backing track in seconds (that of the longest stem)."""
        return self.frames / self.sample_rate

    @property
    def peak_before_gain_dbfs(self) -> float:
        """:attr:`peak_before_gain` in dBFS."""
        return gain_to_db(self.peak_before_gain)

    @property
    def gain_db(self) -> float:
        """:attr:`gain` in dB (0.0 or negative)."""
        return gain_to_db(self.gain)


def output_layout(infos: Sequence[AudioInfo]) -> tuple[int, int]:
    """Sample rate and channel count of a mix of files with these facts.

    The highest rate wins (so nothing is downsampled needlessly), raised to one MP3 can hold;
    stereo when any stem is stereo (mono stems then play in both channels).
    """
    rate = mp3_sample_rate(max(info.sample_rate for info in infos))
    channels = max(info.channels for info in infos)
    return rate, channels


def matching_bitrate(infos: Sequence[AudioInfo]) -> int:
    """The bitrate of the best MP3 input (the mix should not sound worse than its stems)."""
    rates = [info.bitrate_kbps for info in infos if info.bitrate_kbps]
    return nearest_bitrate(max(rates)) if rates else DEFAULT_BITRATE_KBPS


def mix_backing_track(
    stems: Sequence[Path],
    out: Path,
    *,
    bitrate_kbps: int | None = None,
    ceiling_dbfs: float = CEILING_DBFS,
    scratch_dir: Path | None = None,
) -> MixReport:
    """Sum ``stems`` into the MP3 ``out`` and report its length, peak and gain.

    ``bitrate_kbps`` defaults to the stems' own (the highest of them). Stems of different
    sample rates are resampled to the highest, mono stems are played in both channels, and
    shorter stems are padded with silence: the track lasts as long as the longest stem.
    The float sum is spilled to ``scratch_dir`` (default: ``out``'s directory); it takes
    ~21 MB per stereo minute at 44.1 kHz and disappears with the job. Raises
    :class:`NothingToMix` without stems or when they hold no audio, and the errors of
    :class:`AudioStream` for unreadable or unsupported files.
    """
    if not stems:
        raise NothingToMix("no stems given")
    infos = [probe(path) for path in stems]
    rate, channels = output_layout(infos)
    bitrate = check_bitrate(bitrate_kbps) if bitrate_kbps is not None else matching_bitrate(infos)
    with ExitStack() as stack:
        streams = [
            stack.enter_context(AudioStream(path, sample_rate=rate, channels=channels))
            for path in stems
        ]
        spill = stack.enter_context(FloatSpill(channels, directory=scratch_dir or out.parent))
        total = np.empty((channels, CHUNK_FRAMES), dtype=np.float32)
        while True:
            longest = 0
            for stream in streams:
                chunk = stream.read(CHUNK_FRAMES)
                frames = chunk.shape[1]
                if not frames:
                    continue
                # A stem that ended leaves zeros after it: that is its silence padding.
                if frames > longest:
                    total[:, longest:frames] = 0.0
                    longest = frames
                total[:, :frames] += chunk
            if not longest:
                break
            spill.append(total[:, :longest])
        if not spill.frames:
            raise NothingToMix("the stems hold no audio")
        with Mp3Writer(out, sample_rate=rate, channels=channels, bitrate_kbps=bitrate) as writer:
            gain = gain_for_peak(spill.peak, ceiling_for(writer, ceiling_dbfs))
            spill.encode(writer, gain)
    return MixReport(
        stems=len(stems),
        sample_rate=rate,
        channels=channels,
        frames=spill.frames,
        peak_before_gain=spill.peak,
        gain=gain,
        bitrate_kbps=bitrate,
        bytes=out.stat().st_size,
    )
