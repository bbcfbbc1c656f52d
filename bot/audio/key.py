"""Rendering a track in another key (and optionally at another tempo) with Rubber Band.

Key only (tempo 1.0): streamed through pedalboard's ``PitchShift`` (Rubber Band's real-time
engine) chunk by chunk, in constant memory. Tempo: pedalboard's ``time_stretch`` (Rubber
Band's offline "finer" engine, its best quality) needs the whole track at once, so memory
grows with length (~64 MB per minute of 44.1 kHz stereo, copies inside pedalboard included);
tracks longer than ``max_stretch_seconds`` are refused. Either way the result is kept out
of clipping the same way as the mix: one uniform gain when the shifted audio's peak would
pass the ceiling.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pedalboard import PitchShift, time_stretch

from bot.audio.errors import InputTooLong, InvalidSetting
from bot.audio.mp3 import (
    DEFAULT_BITRATE_KBPS,
    Mp3Writer,
    check_bitrate,
    mp3_sample_rate,
    nearest_bitrate,
)
from bot.audio.spill import CEILING_DBFS, FloatSpill, ceiling_for, gain_for_peak
from bot.audio.stream import CHUNK_FRAMES, AudioInfo, AudioStream, Samples, probe, read_all

MIN_SEMITONES = -6
MAX_SEMITONES = 6
MIN_TEMPO = 0.75
MAX_TEMPO = 1.25
MAX_STRETCH_SECONDS = 10 * 60
"""Longest track a tempo change accepts: its worker peaks at ~730 MB for 10 minutes of stereo."""


@dataclass(frozen=True, slots=True)
class RenderReport:
    """What :func:`render_key` wrote."""

    semitones: int
    tempo: float
    sample_rate: int
    channels: int
    frames: int
    gain: float
    """Uniform gain applied to keep the shifted audio under the ceiling (1.0 = none)."""
    bitrate_kbps: int
    bytes: int

    @property
    def duration_s(self) -> float:
        """Length of the rendered track in seconds."""
        return self.frames / self.sample_rate


def check_key_change(semitones: int, tempo: float) -> None:
    """:class:`InvalidSetting` unless ``semitones`` and ``tempo`` are in the offered ranges."""
    if isinstance(semitones, bool) or not isinstance(semitones, int):
        raise InvalidSetting(f"semitones must be a whole number, not {semitones!r}")
    if not MIN_SEMITONES <= semitones <= MAX_SEMITONES:
        raise InvalidSetting(
            f"a key change of {semitones} semitones is outside {MIN_SEMITONES}..{MAX_SEMITONES}"
        )
    if not MIN_TEMPO <= tempo <= MAX_TEMPO:  # also refuses NaN
        raise InvalidSetting(f"tempo {tempo}x is outside {MIN_TEMPO}x..{MAX_TEMPO}x")


def render_key(
    src: Path,
    out: Path,
    *,
    semitones: int,
    tempo: float = 1.0,
    bitrate_kbps: int | None = None,
    ceiling_dbfs: float = CEILING_DBFS,
    max_stretch_seconds: float = MAX_STRETCH_SECONDS,
    scratch_dir: Path | None = None,
) -> RenderReport:
    """Write ``src`` shifted by ``semitones`` (-6..+6) at ``tempo`` (0.75..1.25) to ``out``.

    ``tempo`` above 1 is faster (shorter); the pitch does not follow it. With no change at
    all the file is copied as it is. ``bitrate_kbps`` defaults to the source's own.
    """
    check_key_change(semitones, tempo)
    info = probe(src)
    bitrate = check_bitrate(bitrate_kbps) if bitrate_kbps is not None else _bitrate_of(info)
    if semitones == 0 and tempo == 1.0 and bitrate_kbps is None and src.suffix == ".mp3":
        shutil.copyfile(src, out)
        return RenderReport(
            semitones, tempo, info.sample_rate, info.channels, info.frames, 1.0, bitrate,
            out.stat().st_size,
        )  # fmt: skip
    rate = mp3_sample_rate(info.sample_rate)
    with FloatSpill(info.channels, directory=scratch_dir or out.parent) as spill:
        if tempo == 1.0:
            _shift_streaming(src, spill, semitones=semitones, rate=rate)
        else:
            if info.duration_s > max_stretch_seconds:
                raise InputTooLong(
                    f"{src.name} lasts {info.duration_s:.0f} s; a tempo change takes at most"
                    f" {max_stretch_seconds:.0f} s"
                )
            _stretch_whole(src, spill, semitones=semitones, tempo=tempo, rate=rate)
        with Mp3Writer(out, sample_rate=rate, channels=info.channels, bitrate_kbps=bitrate) as w:
            gain = gain_for_peak(spill.peak, ceiling_for(w, ceiling_dbfs))
            spill.encode(w, gain)
        frames = spill.frames
    return RenderReport(
        semitones, tempo, rate, info.channels, frames, gain, bitrate, out.stat().st_size
    )


def _bitrate_of(info: AudioInfo) -> int:
    return nearest_bitrate(info.bitrate_kbps) if info.bitrate_kbps else DEFAULT_BITRATE_KBPS


def _shift_streaming(src: Path, spill: FloatSpill, *, semitones: int, rate: int) -> None:
    """Pitch-shift ``src`` into ``spill`` chunk by chunk, keeping its exact length."""
    shifter = PitchShift(semitones=float(semitones))
    wanted = 0
    with AudioStream(src, sample_rate=rate) as stream:
        while (chunk := stream.read(CHUNK_FRAMES)).shape[1]:
            wanted += chunk.shape[1]
            spill.append(shifter.process(chunk, rate, reset=False))
        # The shifter holds back its latency (~1 s); silence pushes the tail out.
        silence = np.zeros((stream.channels, CHUNK_FRAMES), dtype=np.float32)
        while spill.frames < wanted:
            tail: Samples = shifter.process(silence, rate, reset=False)
            spill.append(tail[:, : wanted - spill.frames])


def _stretch_whole(
    src: Path, spill: FloatSpill, *, semitones: int, tempo: float, rate: int
) -> None:
    """Time-stretch (and pitch-shift) all of ``src`` at once into ``spill``."""
    audio = read_all(src, sample_rate=rate)
    stretched: Samples = time_stretch(
        audio, rate, stretch_factor=tempo, pitch_shift_in_semitones=float(semitones)
    )
    del audio  # the input is no longer needed: halve the peak while encoding
    for start in range(0, stretched.shape[1], CHUNK_FRAMES):
        spill.append(stretched[:, start : start + CHUNK_FRAMES])
