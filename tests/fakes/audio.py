"""Real test stems and the analysis that checks what the audio engine made of them.

Each stem name has its own sound (:data:`STEM_SOUNDS`): a sine at a distinct frequency, or a
gated sound at a known rate (``drums`` are noise bursts four times a second, ``percussion`` a
2960 Hz tone pulsed eight times a second). No frequency is a multiple of another, so a test
can tell from the spectrum which stems a mix contains. Files are written in chunks (MP3 through
pedalboard's LAME, or WAV/FLAC by suffix), so long stems for benchmarks take constant memory.

The analysis helpers decode with pedalboard *without* gapless trimming (as any plain player
would) and measure by spectrum: a sine's level at a frequency in dBFS, the dominant
frequency, the rate of bursts in a band, durations and peaks.

Run ``python -m tests.fakes.audio OUT_DIR --seconds 30`` to write a set of stems to listen to.
"""

from __future__ import annotations

import argparse
import functools
import math
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pedalboard.io import ReadableAudioFile, WriteableAudioFile

Samples = npt.NDArray[np.float32]

UPLOAD_STEMS = ("vocals", "bass", "drums", "piano", "guitar", "other")
STEM_SPLIT_STEMS = (
    "vocals",
    "backing_vocals",
    "bass",
    "brass",
    "drums",
    "fx",
    "guitar",
    "keyboard",
    "percussion",
    "strings",
    "synth",
    "woodwinds",
    "piano",
)
_WRITE_CHUNK_S = 10.0
DEFAULT_AMPLITUDE = 0.2


@dataclass(frozen=True, slots=True)
class StemSound:
    """How a stem sounds: a sine (``rate`` 0), or a sine/noise switched on ``rate`` times a
    second for ``burst_s`` (noise when ``frequency`` is 0)."""

    frequency: float
    rate: float = 0.0
    burst_s: float = 0.04

    @property
    def is_noise(self) -> bool:
        """True for noise bursts."""
        return self.frequency == 0.0


STEM_SOUNDS: dict[str, StemSound] = {
    "vocals": StemSound(440.0),
    "backing_vocals": StemSound(587.0),
    "bass": StemSound(110.0),
    "brass": StemSound(740.0),
    "drums": StemSound(0.0, rate=4.0),
    "fx": StemSound(1960.0),
    "guitar": StemSound(330.0),
    "keyboard": StemSound(523.0),
    "percussion": StemSound(2960.0, rate=8.0, burst_s=0.05),
    "strings": StemSound(392.0),
    "synth": StemSound(1175.0),
    "woodwinds": StemSound(932.0),
    "piano": StemSound(262.0),
    "other": StemSound(1397.0),
}
DRUMS_BAND = (6000.0, 12000.0)
"""Only the drums' noise has energy here: measure their bursts in this band."""


def render(
    sound: StemSound,
    *,
    start: int,
    frames: int,
    sample_rate: int,
    channels: int,
    amplitude: float,
    seed: int = 0,
) -> Samples:
    """``frames`` samples of ``sound`` from sample ``start`` on (continuous across calls)."""
    t = (np.arange(start, start + frames, dtype=np.float64)) / sample_rate
    if sound.is_noise:
        # Seeded by the chunk's position: the same file comes out the same on every run.
        rng = np.random.default_rng([seed, start])
        signal = rng.uniform(-1.0, 1.0, frames)
    else:
        signal = np.sin(2 * np.pi * sound.frequency * t)
    if sound.rate:
        signal = signal * ((t * sound.rate) % 1.0 < sound.burst_s * sound.rate)
    mono = (amplitude * signal).astype(np.float32)
    return np.repeat(mono[np.newaxis, :], channels, axis=0)


def write_sound(
    path: Path,
    sound: StemSound,
    *,
    seconds: float,
    sample_rate: int = 44_100,
    channels: int = 2,
    amplitude: float = DEFAULT_AMPLITUDE,
    bitrate_kbps: int = 192,
    noise_db: float | None = None,
    seed: int = 0,
) -> Path:
    """Write ``seconds`` of ``sound`` to ``path`` (MP3 at ``bitrate_kbps``, or by suffix).

    ``noise_db`` adds white noise at that level (dBFS peak), for material that keeps an
    encoder as busy as music does.
    """
    total = round(seconds * sample_rate)
    chunk = round(_WRITE_CHUNK_S * sample_rate)
    quality = f"{bitrate_kbps} kbps" if path.suffix == ".mp3" else None
    noise = StemSound(0.0)
    with WriteableAudioFile(
        str(path), samplerate=sample_rate, num_channels=channels, quality=quality
    ) as out:
        for start in range(0, total, chunk):
            frames = min(chunk, total - start)
            block = render(
                sound,
                start=start,
                frames=frames,
                sample_rate=sample_rate,
                channels=channels,
                amplitude=amplitude,
                seed=seed,
            )
            if noise_db is not None:
                block = block + render(
                    noise,
                    start=start,
                    frames=frames,
                    sample_rate=sample_rate,
                    channels=channels,
                    amplitude=10 ** (noise_db / 20),
                    seed=seed + 1000,
                )
            out.write(block)
    return path


def write_stem(
    path: Path,
    name: str,
    *,
    seconds: float = 3.0,
    sample_rate: int = 44_100,
    channels: int = 2,
    amplitude: float = DEFAULT_AMPLITUDE,
    bitrate_kbps: int = 192,
) -> Path:
    """Write the stem ``name`` (its sound from :data:`STEM_SOUNDS`) to ``path``."""
    return write_sound(
        path,
        STEM_SOUNDS[name],
        seconds=seconds,
        sample_rate=sample_rate,
        channels=channels,
        amplitude=amplitude,
        bitrate_kbps=bitrate_kbps,
        seed=_seed(name),
    )


def write_stems(
    directory: Path,
    names: Iterable[str] = UPLOAD_STEMS,
    *,
    seconds: float = 3.0,
    sample_rate: int = 44_100,
    channels: int = 2,
    amplitude: float = DEFAULT_AMPLITUDE,
    bitrate_kbps: int = 192,
    noise_db: float | None = None,
    suffix: str = ".mp3",
) -> dict[str, Path]:
    """Write one file per stem name into ``directory``; ``{name: path}``."""
    directory.mkdir(parents=True, exist_ok=True)
    return {
        name: write_sound(
            directory / f"{name}{suffix}",
            STEM_SOUNDS[name],
            seconds=seconds,
            sample_rate=sample_rate,
            channels=channels,
            amplitude=amplitude,
            bitrate_kbps=bitrate_kbps,
            noise_db=noise_db,
            seed=_seed(name),
        )
        for name in names
    }


# What Vidgo's own "instrumental" (separate-vocals) holds in the fake: these stems' sounds.
INSTRUMENTAL_PARTS = ("bass", "drums", "piano", "guitar", "other")
FAKE_STEM_SECONDS = 2.0


def write_instrumental(
    path: Path,
    *,
    seconds: float = FAKE_STEM_SECONDS,
    sample_rate: int = 44_100,
    channels: int = 2,
    amplitude: float = DEFAULT_AMPLITUDE,
    bitrate_kbps: int = 192,
) -> Path:
    """Write an instrumental: the sum of :data:`INSTRUMENTAL_PARTS` (each at ``amplitude``
    divided among them, so the sum cannot clip)."""
    total = round(seconds * sample_rate)
    share = amplitude * 2 / len(INSTRUMENTAL_PARTS)
    quality = f"{bitrate_kbps} kbps" if path.suffix == ".mp3" else None
    with WriteableAudioFile(
        str(path), samplerate=sample_rate, num_channels=channels, quality=quality
    ) as out:
        block = sum(
            render(
                STEM_SOUNDS[name],
                start=0,
                frames=total,
                sample_rate=sample_rate,
                channels=channels,
                amplitude=share,
                seed=_seed(name),
            )
            for name in INSTRUMENTAL_PARTS
        )
        out.write(np.asarray(block, dtype=np.float32))
    return path


@functools.cache
def stem_mp3(name: str, seconds: float = FAKE_STEM_SECONDS) -> bytes:
    """The bytes of a real MP3 of stem ``name`` (``instrumental`` too), made once per process.

    What the fake Vidgo serves as a separation's files: short, so tests stay fast, and cached,
    so a test session encodes each stem once.
    """
    with tempfile.TemporaryDirectory(prefix="stemcord-fake-stem-") as folder:
        path = Path(folder) / f"{name}.mp3"
        if name == "instrumental":
            write_instrumental(path, seconds=seconds)
        else:
            write_stem(path, name, seconds=seconds)
        return path.read_bytes()


def _seed(name: str) -> int:
    return sum(ord(c) * 31**i for i, c in enumerate(name)) % 2**31


# -- analysis -------------------------------------------------------------------------------


def decode(path: Path) -> tuple[Samples, int]:
    """All of ``path`` as float32 ``(channels, frames)`` and its sample rate (no trimming)."""
    with ReadableAudioFile(str(path)) as file:
        return file.read(file.frames), round(file.samplerate)


def duration_s(path: Path) -> float:
    """Length of ``path`` as a plain decoder sees it (MP3 priming and padding included)."""
    with ReadableAudioFile(str(path)) as file:
        return file.frames / file.samplerate


def peak(samples: Samples) -> float:
    """Largest absolute sample value."""
    return float(np.max(np.abs(samples))) if samples.size else 0.0


def rms_db(samples: Samples) -> float:
    """Root-mean-square level in dBFS."""
    mean_square = float(np.mean(np.square(samples, dtype=np.float64)))
    return 10 * math.log10(mean_square) if mean_square > 0 else -math.inf


def _spectrum(samples: Samples, sample_rate: int) -> tuple[npt.NDArray[np.float64], float]:
    """Amplitude spectrum (a full-scale sine reads 1.0) of the channels' average; bin width."""
    mono = np.asarray(samples, dtype=np.float64).mean(axis=0)
    window = np.hanning(mono.size)
    amplitude = 2 * np.abs(np.fft.rfft(mono * window)) / window.sum()
    return amplitude, sample_rate / mono.size


def magnitude_db(
    samples: Samples, sample_rate: int, frequency: float, *, tolerance_hz: float = 2.0
) -> float:
    """Level in dBFS of the sine at ``frequency`` (±``tolerance_hz``) in ``samples``."""
    amplitude, bin_hz = _spectrum(samples, sample_rate)
    low = max(0, math.floor((frequency - tolerance_hz) / bin_hz))
    high = min(amplitude.size - 1, math.ceil((frequency + tolerance_hz) / bin_hz))
    value = float(amplitude[low : high + 1].max())
    return 20 * math.log10(value) if value > 0 else -math.inf


def dominant_frequency(
    samples: Samples, sample_rate: int, *, low: float = 20.0, high: float | None = None
) -> float:
    """The loudest frequency between ``low`` and ``high`` Hz, interpolated between bins."""
    amplitude, bin_hz = _spectrum(samples, sample_rate)
    first = max(1, math.ceil(low / bin_hz))
    last = amplitude.size - 2 if high is None else min(amplitude.size - 2, int(high / bin_hz))
    index = first + int(np.argmax(amplitude[first : last + 1]))
    # Quadratic fit on the log magnitudes of the peak bin and its neighbours.
    a, b, c = np.log(amplitude[index - 1 : index + 2] + 1e-20)
    offset = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) != 0 else 0.0
    return float((index + offset) * bin_hz)


def band_level_db(samples: Samples, sample_rate: int, band: tuple[float, float]) -> float:
    """Power in ``band`` (Hz) in dB: compares how much of a band two signals hold."""
    spectrum = np.fft.rfft(np.asarray(samples, dtype=np.float64).mean(axis=0))
    freqs = np.fft.rfftfreq(samples.shape[1], 1 / sample_rate)
    mask = (freqs >= band[0]) & (freqs <= band[1])
    power = float(np.sum(np.abs(spectrum[mask]) ** 2)) / samples.shape[1] ** 2
    return 10 * math.log10(power) if power > 0 else -math.inf


def burst_rate(
    samples: Samples, sample_rate: int, *, band: tuple[float, float] = DRUMS_BAND
) -> float:
    """How many times a second the energy in ``band`` pulses (0.5-50 Hz)."""
    mono = np.asarray(samples, dtype=np.float64).mean(axis=0)
    spectrum = np.fft.rfft(mono)
    freqs = np.fft.rfftfreq(mono.size, 1 / sample_rate)
    spectrum[(freqs < band[0]) | (freqs > band[1])] = 0
    banded = np.fft.irfft(spectrum, mono.size)
    hop = sample_rate // 200  # a 5 ms envelope
    frames = banded.size // hop
    envelope = np.abs(banded[: frames * hop]).reshape(frames, hop).mean(axis=1)
    envelope = envelope - envelope.mean()
    modulation = np.abs(np.fft.rfft(envelope * np.hanning(envelope.size)))
    rates = np.fft.rfftfreq(envelope.size, hop / sample_rate)
    usable = (rates >= 0.5) & (rates <= 50)
    return float(rates[usable][np.argmax(modulation[usable])])


def plain_sum(paths: Mapping[str, Path] | Iterable[Path]) -> tuple[Samples, int]:
    """The sample-by-sample sum of decoded files (shorter ones padded), as a reference."""
    files = list(paths.values()) if isinstance(paths, Mapping) else list(paths)
    decoded = [decode(path) for path in files]
    rate = decoded[0][1]
    length = max(samples.shape[1] for samples, _ in decoded)
    channels = max(samples.shape[0] for samples, _ in decoded)
    total = np.zeros((channels, length), dtype=np.float32)
    for samples, _ in decoded:
        total[:, : samples.shape[1]] += samples
    return total, rate


def main() -> None:
    parser = argparse.ArgumentParser(description="Write a set of test stems.")
    parser.add_argument("out", type=Path)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--split", action="store_true", help="the 13 stem-split stems")
    args = parser.parse_args()
    names = STEM_SPLIT_STEMS if args.split else UPLOAD_STEMS
    for name, path in write_stems(args.out, names, seconds=args.seconds).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
