"""The errors of the media package, one type per thing a caller does about it.

Every failure is a :class:`MediaError`; callers branch on the subclass, never on the message.
Messages are one line, name at most a host (never a whole URL, whose query may hold a storage
signature) and never echo untrusted text beyond a short, cleaned host name.

Downloads (:class:`FetchError`) carry ``retryable``: ``True`` when trying the same URL again
later may work (a timeout, a cut connection, a 5xx), ``False`` when it cannot (a host off the
list, a file over the cap, a 404).
"""

from __future__ import annotations


class MediaError(Exception):
    """Something in the media package failed; ``message`` is one line fit for a log."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


# -- downloads --------------------------------------------------------------------------------


class FetchError(MediaError):
    """A download failed and left no file under its final name."""

    retryable: bool = False


class InvalidUrl(FetchError):
    """The URL is not an absolute http(s) URL with a host, or carries credentials."""


class HostNotAllowed(FetchError):
    """The URL's host is not on the allowed list; no connection was made."""

    def __init__(self, host: str) -> None:
        super().__init__(f"host not allowed: {host}")
        self.host = host


class InsecureUrl(FetchError):
    """Plain http to a host that is not loopback; https is required there."""

    def __init__(self, host: str) -> None:
        super().__init__(f"https required for {host}")
        self.host = host


class RedirectNotAllowed(FetchError):
    """A redirect pointed somewhere the fetcher may not go; it was not followed."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"redirect refused: {reason}")
        self.reason = reason


class TooManyRedirects(FetchError):
    """More redirects than allowed in a row."""

    def __init__(self, hops: int) -> None:
        super().__init__(f"too many redirects (more than {hops})")
        self.hops = hops


class TooLarge(FetchError):
    """The file is bigger than the cap (announced by ``Content-Length`` or seen while reading)."""

    def __init__(self, limit: int, announced: int | None = None) -> None:
        if announced is not None:
            message = f"too large: {announced} bytes announced, the cap is {limit}"
        else:
            message = f"too large: more than the cap of {limit} bytes"
        super().__init__(message)
        self.limit = limit
        self.announced = announced


class Truncated(FetchError):
    """The body ended early: fewer bytes than announced, or the connection was cut."""

    retryable = True

    def __init__(self, received: int, expected: int | None) -> None:
        if expected is None:
            message = f"truncated: connection cut after {received} bytes"
        else:
            message = f"truncated: got {received} of {expected} bytes"
        super().__init__(message)
        self.received = received
        self.expected = expected


class FetchTimeout(FetchError):
    """A timeout fired: ``phase`` is ``connect``, ``read`` (between reads) or ``total``."""

    retryable = True

    def __init__(self, phase: str, host: str, seconds: float) -> None:
        what = {
            "connect": "connecting to",
            "read": "waiting for data from",
            "total": "downloading from",
        }[phase]
        super().__init__(f"timed out {what} {host} after {seconds:g} s")
        self.phase = phase
        self.host = host
        self.seconds = seconds


class HttpStatusError(FetchError):
    """The server answered with a status other than 200 (and not a redirect that was followed)."""

    def __init__(self, status: int, host: str) -> None:
        super().__init__(f"HTTP status {status} from {host}")
        self.status = status
        self.host = host
        # A server error or a rate limit may pass; a 4xx about this URL will not.
        self.retryable = status >= 500 or status in (408, 429)


class FetchConnectionError(FetchError):
    """No usable answer: the host could not be reached, or the reply was not valid HTTP."""

    retryable = True

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"could not download from {host}: {reason}")
        self.host = host


class NotAudio(FetchError):
    """The body does not start like any audio format Stemcord accepts (see ``bot.media.sniff``)."""

    def __init__(self) -> None:
        super().__init__("not audio: the body does not start like an audio file")


# -- the store --------------------------------------------------------------------------------


class StoreError(MediaError):
    """The media store refused or failed an operation."""


class InvalidMediaName(StoreError, ValueError):
    """A result key or file name is not of the allowed shape (see ``bot.media.names``)."""


class InsufficientSpace(StoreError):
    """Writing would leave less free disk space than the configured minimum; nothing was kept."""

    def __init__(self, *, free: int, needed: int, minimum: int) -> None:
        super().__init__(
            f"not enough disk space: {free} bytes free, {needed} needed, "
            f"at least {minimum} must stay free"
        )
        self.free = free
        self.needed = needed
        self.minimum = minimum
