"""The shapes of result keys and file names, and the content type a name is served with.

A stored file lives at ``<root>/<key>/<name>``. Both parts come from the bot (a job id, a Vidgo
task id, a stem name), but they also arrive in served URLs, so they are checked strictly and
the same way everywhere:

* a **key** is 1-128 of ``A-Z a-z 0-9 _ -`` (a job id from ``secrets.token_urlsafe`` and a
  Vidgo task id both fit). No dot at all, so never ``.`` or ``..``;
* a **name** is a stem of 1-100 of the same characters, one dot, and a lowercase extension of
  1-8 letters or digits, e.g. ``vocals.mp3``. Exactly one dot keeps ``..``, hidden files and
  double extensions (``x.mp3.gz``) out.

Nothing else is accepted: no slash or backslash, no NUL or other control character, no space,
no non-ASCII letter that could look like another one.
"""

from __future__ import annotations

import re

from bot.media.errors import InvalidMediaName

_KEY = re.compile(r"[A-Za-z0-9_-]{1,128}")
_NAME = re.compile(r"[A-Za-z0-9_-]{1,100}\.[a-z0-9]{1,8}")

# Content types by extension. Audio is what players stream; the rest are the other files a
# result may hold (MIDI, lyrics, a waveform picture). Unknown extensions are served as bytes.
CONTENT_TYPES: dict[str, str] = {
    "mp3": "audio/mpeg",
    "wav": "audio/wav",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "opus": "audio/ogg",
    "m4a": "audio/mp4",
    "aac": "audio/aac",
    "webm": "audio/webm",
    "aiff": "audio/aiff",
    "mid": "audio/midi",
    "lrc": "text/plain; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
    "json": "application/json",
    "png": "image/png",
    "jpg": "image/jpeg",
}
FALLBACK_CONTENT_TYPE = "application/octet-stream"


def is_valid_key(key: str) -> bool:
    """Whether ``key`` has the shape of a result key."""
    return _KEY.fullmatch(key) is not None


def is_valid_name(name: str) -> bool:
    """Whether ``name`` has the shape of a stored file name."""
    return _NAME.fullmatch(name) is not None


def check_key(key: str) -> str:
    """Return ``key`` or raise :class:`InvalidMediaName` (the message never echoes it)."""
    if not is_valid_key(key):
        raise InvalidMediaName("invalid result key: use 1-128 of A-Z a-z 0-9 _ -")
    return key


def check_name(name: str) -> str:
    """Return ``name`` or raise :class:`InvalidMediaName` (the message never echoes it)."""
    if not is_valid_name(name):
        raise InvalidMediaName(
            "invalid file name: use 1-100 of A-Z a-z 0-9 _ -, one dot, a lowercase extension"
        )
    return name


def extension_of(name: str) -> str:
    """The extension of a valid name, without the dot."""
    return check_name(name).rsplit(".", 1)[1]


def content_type_for(name: str) -> str:
    """The ``Content-Type`` a stored file is served with."""
    return CONTENT_TYPES.get(extension_of(name), FALLBACK_CONTENT_TYPE)


def is_playable(name: str) -> bool:
    """Audio a browser can play inline (served ``inline``; everything else is an attachment)."""
    return content_type_for(name).startswith("audio/") and extension_of(name) != "mid"
