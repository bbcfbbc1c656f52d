"""Signed, expiring links to stored files.

A link is ``<public base>/media/<key>/<name>?expires=<unix seconds>&sig=<signature>``. The
signature is HMAC-SHA256, keyed with a secret only the bot knows, over the canonical string::

    media:v1\\n<key>\\n<name>\\n<expires>

The ``media:v1`` prefix separates these signatures from anything else the same secret might
ever sign; the newlines cannot occur inside a key or a name (``bot.media.names``), so no two
different links share a canonical string. The signature is the 32-byte MAC in unpadded
base64url (43 characters), compared in constant time.

A link cannot be made to live longer or point elsewhere without the secret: ``expires`` is
inside the signed string. Changing the secret invalidates every link given out.
"""

from __future__ import annotations

import base64
import contextlib
import enum
import hashlib
import hmac
import os
import re
import secrets
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

from bot.media.atomic import temp_name
from bot.media.names import check_key, check_name, is_valid_key, is_valid_name

MEDIA_PATH_PREFIX = "/media"
EXPIRES_PARAM = "expires"
SIGNATURE_PARAM = "sig"
MIN_SECRET_BYTES = 32
_DOMAIN = b"media:v1"
_EXPIRES = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"[A-Za-z0-9_-]{43}")


class LinkVerdict(enum.Enum):
    """What :meth:`MediaSigner.check` found."""

    VALID = "valid"
    BAD_SIGNATURE = "bad_signature"
    """Missing, malformed or wrong: the link was not made by this bot (or was altered)."""
    EXPIRED = "expired"
    """Made by this bot, but its time is over."""


class MediaSigner:
    """Makes and checks signed links; ``secret`` is at least 32 random bytes from the caller."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the media link secret must be at least {MIN_SECRET_BYTES} bytes")
        self._secret = bytes(secret)

    def sign(self, key: str, name: str, expires: int) -> str:
        """The signature of a link to ``name`` of ``key`` valid until ``expires`` (unix s)."""
        check_key(key)
        check_name(name)
        if not 0 <= expires < 10**12:
            raise ValueError("expires is out of range")
        message = b"\n".join((_DOMAIN, key.encode(), name.encode(), str(expires).encode()))
        mac = hmac.new(self._secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")

    def url_for(self, public_base: str, key: str, name: str, *, expires_at: datetime) -> str:
        """The full signed URL; ``public_base`` is where the bot's listener is reachable.

        ``expires_at`` must be timezone-aware; it is rounded down to the second.
        """
        if expires_at.tzinfo is None:
            raise ValueError("expires_at must be timezone-aware")
        parts = urlsplit(public_base)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            raise ValueError("public_base must be an http(s) URL without a query")
        expires = int(expires_at.timestamp())
        query = urlencode({EXPIRES_PARAM: expires, SIGNATURE_PARAM: self.sign(key, name, expires)})
        path = f"{MEDIA_PATH_PREFIX}/{quote(key, safe='')}/{quote(name, safe='')}"
        return f"{public_base.rstrip('/')}{path}?{query}"

    def check(
        self, key: str, name: str, expires: str | int, signature: str, now: datetime
    ) -> LinkVerdict:
        """Judge a link's parts as received (untrusted). The signature is checked first.

        So a link whose ``expires`` was pushed later is ``BAD_SIGNATURE``, never ``EXPIRED``.
        """
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        expires_text = str(expires)
        if (
            not is_valid_key(key)
            or not is_valid_name(name)
            or _EXPIRES.fullmatch(expires_text) is None
            or _SIGNATURE.fullmatch(signature) is None
        ):
            return LinkVerdict.BAD_SIGNATURE
        expected = self.sign(key, name, int(expires_text))
        if not hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii")):
            return LinkVerdict.BAD_SIGNATURE
        if int(expires_text) <= now.timestamp():
            return LinkVerdict.EXPIRED
        return LinkVerdict.VALID

    def verify(
        self, key: str, name: str, expires: str | int, signature: str, now: datetime
    ) -> bool:
        """Whether the link is genuine and not yet expired."""
        return self.check(key, name, expires, signature, now) is LinkVerdict.VALID


def load_or_create_secret(path: Path) -> bytes:
    """Read the link secret from ``path``, creating it (32 random bytes, mode 0600) if absent.

    For operators who set no secret: links then survive restarts as long as the file does.
    The file holds the secret hex-encoded on one line. It appears complete or not at all
    (written aside, then hard-linked into place), so two processes starting together agree.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(temp_name(path.name))
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(secrets.token_hex(MIN_SECRET_BYTES) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(FileExistsError):  # another process was first: use theirs
                os.link(temp, path)
        finally:
            temp.unlink(missing_ok=True)
    text = path.read_text(encoding="ascii").strip()
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"{path.name} does not hold a hex-encoded secret") from None
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"{path.name} holds a secret shorter than {MIN_SECRET_BYTES} bytes")
    return secret
