"""MP3 headers: format facts, and the encoder delay/padding that make decoding gapless."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from pedalboard.io import WriteableAudioFile

from bot.audio.mp3info import DECODER_DELAY, parse_mp3_head, read_mp3_info
from bot.audio.stream import probe, read_all
from tests.fakes.audio import StemSound, decode, write_sound

RATE = 44_100


def write_click(path: Path, *, frames: int, at: int, channels: int = 2, kbps: int = 192) -> Path:
    samples = np.zeros((channels, frames), dtype=np.float32)
    samples[:, at] = 0.9
    with WriteableAudioFile(
        str(path), samplerate=RATE, num_channels=channels, quality=f"{kbps} kbps"
    ) as out:
        out.write(samples)
    return path


def id3v2(size: int) -> bytes:
    """An ID3v2.4 tag of ``size`` payload bytes (synchsafe size)."""
    synchsafe = bytes((size >> shift) & 0x7F for shift in (21, 14, 7, 0))
    return b"ID3\x04\x00\x00" + synchsafe + b"\x00" * size


def test_lame_header_gives_format_bitrate_delay_and_padding(tmp_path: Path) -> None:
    path = write_click(tmp_path / "c.mp3", frames=44_100, at=100, kbps=128)
    info = read_mp3_info(path)
    assert info is not None
    assert (info.sample_rate, info.channels, info.bitrate_kbps) == (RATE, 2, 128)
    assert info.samples_per_frame == 1152
    assert info.encoder_delay == 576
    assert info.gapless
    assert info.original_samples == 44_100


def test_mono_files_are_read_too(tmp_path: Path) -> None:
    path = write_click(tmp_path / "m.mp3", frames=30_000, at=5, channels=1, kbps=64)
    info = read_mp3_info(path)
    assert info is not None
    assert (info.channels, info.bitrate_kbps, info.original_samples) == (1, 64, 30_000)


def test_decoding_drops_the_priming_and_padding(tmp_path: Path) -> None:
    path = write_click(tmp_path / "c.mp3", frames=50_000, at=10_000)
    raw, _ = decode(path)
    trimmed = read_all(path)
    # A plain decoder shows the click late and the file long; the engine's reader does not.
    assert int(np.argmax(np.abs(raw[0]))) == 10_000 + 576 + DECODER_DELAY
    assert int(np.argmax(np.abs(trimmed[0]))) == 10_000
    assert trimmed.shape == (2, 50_000)
    assert probe(path).frames == 50_000


def test_an_id3_tag_before_the_audio_is_skipped(tmp_path: Path) -> None:
    plain = write_click(tmp_path / "c.mp3", frames=20_000, at=3_000)
    tagged = tmp_path / "tagged.mp3"
    tagged.write_bytes(id3v2(40_000) + plain.read_bytes())
    info = read_mp3_info(tagged)
    assert info is not None
    assert info.original_samples == 20_000
    assert int(np.argmax(np.abs(read_all(tagged)[0]))) == 3_000


def test_a_file_without_lame_header_is_decoded_as_it_is(tmp_path: Path) -> None:
    path = write_click(tmp_path / "c.mp3", frames=20_000, at=3_000)
    data = bytearray(path.read_bytes())
    tag = data.find(b"Info")
    data[tag : tag + 4] = b"Nope"  # no longer a header: every frame is audio
    stripped = tmp_path / "stripped.mp3"
    stripped.write_bytes(bytes(data))
    info = read_mp3_info(stripped)
    assert info is not None
    assert not info.gapless
    assert info.leading_samples == 0
    raw, _ = decode(stripped)
    assert read_all(stripped).shape[1] >= 20_000
    assert int(np.argmax(np.abs(read_all(stripped)[0]))) == int(np.argmax(np.abs(raw[0])))


def test_a_wav_file_is_not_mp3(tmp_path: Path) -> None:
    wav = write_sound(tmp_path / "t.wav", StemSound(440.0), seconds=0.5)
    assert read_mp3_info(wav) is None
    assert probe(wav).bitrate_kbps is None
    assert probe(wav).frames == 22_050


def test_garbage_and_truncated_headers_are_not_mp3() -> None:
    assert parse_mp3_head(b"") is None
    assert parse_mp3_head(b"\xff" * 3) is None
    assert parse_mp3_head(b"not audio at all" * 100) is None


def test_a_header_cut_inside_the_lame_tag_is_not_gapless(tmp_path: Path) -> None:
    head = write_click(tmp_path / "c.mp3", frames=5_000, at=1).read_bytes()
    lame = head.find(b"LAME")
    info = parse_mp3_head(head[: lame + 10])
    assert info is not None
    assert not info.gapless


@given(st.binary(max_size=3000))
def test_any_bytes_parse_without_error(data: bytes) -> None:
    info = parse_mp3_head(data)
    if info is not None:
        assert info.sample_rate > 0
        assert info.channels in (1, 2)
        assert (info.original_samples or 0) >= 0
