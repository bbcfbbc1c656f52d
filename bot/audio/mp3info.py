"""What the first frame of an MP3 file says: format, bitrate and the encoder's delay/padding.

Decoders without gapless support (pedalboard's among them) return the encoder's priming
samples at the start and its padding at the end, so every decode-and-encode generation would
push the audio ~25 ms later and make it longer. LAME (and ffmpeg, which uses LAME) writes the
exact amounts in the "LAME" extension of the Xing/Info header; reading them lets the engine
keep a backing track sample-aligned with the song it came from (and with its lyrics timing).

Only the first few kilobytes are read and every field is bounds-checked: the file is untrusted.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

# Decoders of the mpg123 family (JUCE's included) add this many samples of synthesis filter
# delay on top of the encoder's own delay recorded in the LAME header.
DECODER_DELAY = 529

_HEAD_BYTES = 16_384
_BITRATES_V1_L3 = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
_BITRATES_V2_L3 = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)
_SAMPLE_RATES = {
    3: (44_100, 48_000, 32_000),  # MPEG-1
    2: (22_050, 24_000, 16_000),  # MPEG-2
    0: (11_025, 12_000, 8_000),  # MPEG-2.5
}
# Containers whose data could hold a false MPEG sync: never parse them as MP3.
_OTHER_FORMATS = (b"RIFF", b"fLaC", b"OggS", b"FORM")
_XING_FRAMES = 0x1
_XING_BYTES = 0x2
_XING_TOC = 0x4
_XING_QUALITY = 0x8


@dataclass(frozen=True, slots=True)
class Mp3Info:
    """Facts from an MP3's first frame and its Xing/Info/LAME header when present."""

    sample_rate: int
    channels: int
    samples_per_frame: int
    bitrate_kbps: int
    """The first frame's bitrate, or the average over the file for a VBR file with a header."""
    audio_frames: int | None = None
    """Frames of audio (the header frame excluded), from the Xing/Info header."""
    encoder_delay: int | None = None
    padding: int | None = None

    @property
    def gapless(self) -> bool:
        """True when the exact length of the original audio is known."""
        return (
            self.audio_frames is not None
            and self.encoder_delay is not None
            and self.padding is not None
        )

    @property
    def leading_samples(self) -> int:
        """Samples a non-gapless decoder outputs before the original audio starts."""
        return (self.encoder_delay or 0) + DECODER_DELAY if self.gapless else 0

    @property
    def original_samples(self) -> int | None:
        """Length of the audio that was encoded, in samples per channel, when known."""
        if self.audio_frames is None or self.encoder_delay is None or self.padding is None:
            return None
        total = self.audio_frames * self.samples_per_frame
        return max(0, total - self.encoder_delay - self.padding)


def read_mp3_info(path: Path) -> Mp3Info | None:
    """The facts of ``path``'s first MP3 frame, or ``None`` when it is not an MP3 file."""
    with path.open("rb") as file:
        head = file.read(_HEAD_BYTES)
        start = _skip_id3v2(head)
        if start >= len(head):
            file.seek(start)
            head = file.read(_HEAD_BYTES)
            start = 0
    return parse_mp3_head(head, start)


def parse_mp3_head(head: bytes, start: int = 0) -> Mp3Info | None:
    """Parse the first MP3 frame found in ``head`` at or after ``start``."""
    offset = _find_frame(head, start)
    if offset is None:
        return None
    header = struct.unpack_from(">I", head, offset)[0]
    version = (header >> 19) & 0x3
    bitrate_index = (header >> 12) & 0xF
    rate_index = (header >> 10) & 0x3
    mode = (header >> 6) & 0x3
    mpeg1 = version == 3
    channels = 1 if mode == 3 else 2
    sample_rate = _SAMPLE_RATES[version][rate_index]
    samples_per_frame = 1152 if mpeg1 else 576
    bitrate = (_BITRATES_V1_L3 if mpeg1 else _BITRATES_V2_L3)[bitrate_index]
    side_info = (32 if channels == 2 else 17) if mpeg1 else (17 if channels == 2 else 9)
    tag = offset + 4 + side_info
    info = Mp3Info(sample_rate, channels, samples_per_frame, bitrate)
    if head[tag : tag + 4] not in (b"Xing", b"Info") or len(head) < tag + 8:
        return info
    flags = struct.unpack_from(">I", head, tag + 4)[0]
    cursor = tag + 8
    frames = stream_bytes = None
    if flags & _XING_FRAMES and len(head) >= cursor + 4:
        frames = struct.unpack_from(">I", head, cursor)[0]
        cursor += 4
    if flags & _XING_BYTES and len(head) >= cursor + 4:
        stream_bytes = struct.unpack_from(">I", head, cursor)[0]
        cursor += 4
    if flags & _XING_TOC:
        cursor += 100
    if flags & _XING_QUALITY:
        cursor += 4
    if frames and stream_bytes and head[tag : tag + 4] == b"Xing":
        seconds = frames * samples_per_frame / sample_rate
        bitrate = round(stream_bytes * 8 / seconds / 1000)
    info = Mp3Info(sample_rate, channels, samples_per_frame, bitrate, audio_frames=frames)
    # The LAME extension: 9 bytes of encoder name, then at +21 the 12-bit delay and padding.
    lame = cursor
    if frames is None or len(head) < lame + 24 or not head[lame : lame + 4].isalpha():
        return info
    packed = head[lame + 21 : lame + 24]
    delay = (packed[0] << 4) | (packed[1] >> 4)
    padding = ((packed[1] & 0xF) << 8) | packed[2]
    return Mp3Info(
        sample_rate,
        channels,
        samples_per_frame,
        bitrate,
        audio_frames=frames,
        encoder_delay=delay,
        padding=padding,
    )


def _skip_id3v2(head: bytes) -> int:
    """Offset just past an ID3v2 tag at the start of ``head`` (0 when there is none)."""
    if len(head) < 10 or head[:3] != b"ID3":
        return 0
    size_bytes = head[6:10]
    if any(b & 0x80 for b in size_bytes):
        return 0  # not a valid synchsafe size: not an ID3 tag after all
    size = 0
    for b in size_bytes:
        size = (size << 7) | b
    footer = 10 if head[5] & 0x10 else 0
    return 10 + size + footer


def _frame_at(head: bytes, offset: int) -> tuple[int, int] | None:
    """``(version, frame length)`` of a valid MPEG layer III header at ``offset``, or None."""
    if offset + 4 > len(head) or head[offset] != 0xFF or head[offset + 1] & 0xE0 != 0xE0:
        return None
    header = struct.unpack_from(">I", head, offset)[0]
    version = (header >> 19) & 0x3
    layer = (header >> 17) & 0x3
    bitrate_index = (header >> 12) & 0xF
    rate_index = (header >> 10) & 0x3
    if version == 1 or layer != 1 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    mpeg1 = version == 3
    bitrate = (_BITRATES_V1_L3 if mpeg1 else _BITRATES_V2_L3)[bitrate_index]
    rate = _SAMPLE_RATES[version][rate_index]
    padding = (header >> 9) & 0x1
    return version, (144_000 if mpeg1 else 72_000) * bitrate // rate + padding


def _find_frame(head: bytes, start: int) -> int | None:
    """Offset of the first MPEG audio layer III frame in ``head`` that the next frame confirms.

    Two frames in a row are required (unless the first sits right at ``start`` and the next
    lies beyond ``head``): any other file format holds bytes that look like one header.
    """
    if head[start : start + 4] in _OTHER_FORMATS:
        return None
    for offset in range(start, len(head) - 3):
        frame = _frame_at(head, offset)
        if frame is None:
            continue
        version, length = frame
        following = offset + length
        if following + 4 > len(head):
            if offset == start:
                return offset
            continue
        confirmed = _frame_at(head, following)
        if confirmed is not None and confirmed[0] == version:
            return offset
    return None
