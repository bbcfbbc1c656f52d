"""Tell an audio file from anything else by its first bytes.

The fetcher checks the body, not the ``Content-Type`` header: object stores often label audio
``application/octet-stream``, while an error page served with status 200 is the thing worth
catching (it would otherwise be kept and served back as ``audio/mpeg``). Only the magic bytes
of common containers are checked; a file that starts right but is damaged later still passes.
"""

from __future__ import annotations

SNIFF_BYTES = 12
"""How many leading bytes :func:`sniff_audio` needs to decide."""


def sniff_audio(head: bytes) -> str | None:
    """The audio format ``head`` starts with (``mp3``, ``wav``, ...), or ``None``.

    ``head`` should hold at least :data:`SNIFF_BYTES` bytes; fewer is never audio.
    """
    if len(head) < SNIFF_BYTES:
        return None
    if head.startswith(b"ID3"):
        return "mp3"
    if head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        # An MPEG audio frame sync. Layer bits 00 are ADTS (AAC); 01-11 are MPEG layers III-I.
        return "aac" if head[1] & 0x06 == 0 else "mp3"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "wav"
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"OggS"):
        return "ogg"
    if head[4:8] == b"ftyp":
        return "m4a"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"
    if head.startswith(b"FORM") and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    return None
