"""Fitting a track under an upload limit by re-encoding it at a lower bitrate.

The caller passes the limit (Discord's per-file limit depends on the server's boost level).
A track that already fits is copied untouched. Otherwise the highest MP3 bitrate whose size
is predicted to fit is tried (each try is checked against the real size, and the next lower
bitrate tried if it still does not fit), down to a floor under which an MP3 sounds
noticeably worse than the original: 96 kbps for stereo, 64 kbps for mono. Below the floor the
answer is ``None`` and the caller should link to the file instead of attaching it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from bot.audio.errors import InvalidSetting
from bot.audio.mp3 import MP3_BITRATES, Mp3Writer, mp3_sample_rate
from bot.audio.spill import FloatSpill, gain_for_peak
from bot.audio.stream import CHUNK_FRAMES, AudioInfo, AudioStream, probe

FLOOR_STEREO_KBPS = 96
FLOOR_MONO_KBPS = 64
# An encode is bitrate x duration plus the Info header frame and the encoder's priming and
# padding (about two frames more); a little margin absorbs the rest.
_OVERHEAD_FRAMES = 3
_SAMPLES_PER_FRAME = 1152


@dataclass(frozen=True, slots=True)
class FitResult:
    """The MP3 written by :func:`fit_to_limit`."""

    bitrate_kbps: int
    bytes: int
    reencoded: bool
    """False when the source already fitted and was copied as it is."""
    attempts: int
    """Encodes made (0 for a copy); more than one only when a prediction was too low."""


def floor_kbps(channels: int) -> int:
    """Lowest bitrate the engine accepts for a track with ``channels`` channels."""
    return FLOOR_MONO_KBPS if channels == 1 else FLOOR_STEREO_KBPS


def predicted_bytes(info: AudioInfo, bitrate_kbps: int) -> int:
    """Expected size of ``info``'s audio encoded at ``bitrate_kbps``, slightly pessimistic."""
    rate = mp3_sample_rate(info.sample_rate)
    frames = info.frames * rate / info.sample_rate
    frame_bytes = bitrate_kbps * 1000 / 8 * _SAMPLES_PER_FRAME / rate
    audio_frames = frames / _SAMPLES_PER_FRAME + _OVERHEAD_FRAMES
    return int(audio_frames * (frame_bytes + 1)) + 1  # +1: a frame may carry a padding byte


def fit_to_limit(
    src: Path, out: Path, *, limit_bytes: int, scratch_dir: Path | None = None
) -> FitResult | None:
    """Write ``src`` to ``out`` as an MP3 of at most ``limit_bytes``, or return ``None``.

    ``None`` (and no ``out``) when even the floor bitrate would not fit. Never encodes at a
    higher bitrate than the source's: that would add bytes, not quality. The decoded
    source is spilled to ``scratch_dir`` (default: ``out``'s directory) while encoding.
    """
    if limit_bytes <= 0:
        raise InvalidSetting(f"an upload limit of {limit_bytes} bytes cannot hold a file")
    info = probe(src)
    size = src.stat().st_size
    if info.bitrate_kbps is not None and size <= limit_bytes:
        shutil.copyfile(src, out)
        return FitResult(info.bitrate_kbps, size, reencoded=False, attempts=0)
    ceiling = info.bitrate_kbps or MP3_BITRATES[-1]
    candidates = [
        rate
        for rate in sorted(MP3_BITRATES, reverse=True)
        if floor_kbps(info.channels) <= rate <= ceiling
        and predicted_bytes(info, rate) <= limit_bytes
    ]
    if not candidates:
        return None
    sample_rate = mp3_sample_rate(info.sample_rate)
    # Decoded once, into a spill: a retry at a lower bitrate only encodes again.
    with FloatSpill(info.channels, directory=scratch_dir or out.parent) as spill:
        with AudioStream(src, sample_rate=sample_rate) as stream:
            while (chunk := stream.read(CHUNK_FRAMES)).shape[1]:
                spill.append(chunk)
        for attempt, bitrate in enumerate(candidates, start=1):
            with Mp3Writer(
                out, sample_rate=sample_rate, channels=info.channels, bitrate_kbps=bitrate
            ) as writer:
                # Same level as the source; lowered only where the encoder input would clip.
                spill.encode(writer, gain_for_peak(spill.peak, writer.max_peak))
            written = out.stat().st_size
            if written <= limit_bytes:
                return FitResult(bitrate, written, reencoded=True, attempts=attempt)
    out.unlink(missing_ok=True)
    return None
