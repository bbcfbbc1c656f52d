"""The errors :class:`~bot.vidgo.client.VidgoClient` raises, one type per thing a caller does.

Every failure of a Vidgo call is a :class:`VidgoError`; callers branch on the subclass, never on
the message. Messages come from Vidgo's reply (untrusted text, escape it where it is rendered),
are at most :data:`MAX_MESSAGE_CHARS` long and never contain the API key.

* :class:`VidgoAuthError`: 401/403, the key is wrong or revoked. Not retried.
* :class:`VidgoDuplicateError`: 409, the track was already separated (§9). Not retried.
* :class:`VidgoRateLimited`: 429, 430, or body code 405. Retried.
* :class:`VidgoInvalidRequest`: 400, 422, redirects and any other 4xx. Not retried.
* :class:`VidgoNotFound`: 404, an unknown task (or, at submit, track). Not retried.
* :class:`VidgoTransientError`: 5xx, 408, 455 (maintenance), timeouts, connection errors.
  Retried; a submit only when Vidgo certainly did not act on it (see
  :attr:`VidgoTransientError.maybe_processed`).
* :class:`VidgoMalformedResponse` (a transient error): a reply that is not JSON or not of the
  documented shape.

Which failures mean "Vidgo certainly did not act" and which "it may have" is set out in §6 of
``docs/vidgo-api.md`` (the document "§N" refers to).
"""

from __future__ import annotations

MAX_MESSAGE_CHARS = 500


class VidgoError(Exception):
    """A Vidgo call failed.

    ``message`` is a short human sentence; ``status`` is the HTTP status (or the body ``code``
    when Vidgo answered HTTP 200 with an error code), ``None`` when no reply arrived.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status!r})"


class VidgoAuthError(VidgoError):
    """Vidgo refused the API key (401/403). Retrying cannot help; the operator must act."""


class VidgoDuplicateError(VidgoError):
    """Vidgo refused a repeat separation of the same track (409, the once-per-track rule)."""


class VidgoRateLimited(VidgoError):
    """Vidgo asked us to slow down (429, 430, or body code 405).

    ``retry_after`` is the delay in seconds Vidgo asked for (from ``Retry-After``), if any.
    """

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class VidgoInvalidRequest(VidgoError):
    """Vidgo rejected the request itself (400, 422, other 4xx): fix the input, do not retry."""


class VidgoNotFound(VidgoError):
    """Vidgo does not know the task (or, at submit, the track) that was named (404)."""


class VidgoTransientError(VidgoError):
    """A failure that may pass: 5xx, maintenance, timeout, dropped connection.

    ``maybe_processed`` is ``True`` when the request reached Vidgo and it may have acted on it
    (a read timeout, a reset after sending, a 500). For a submit that means a task may exist
    even though no task id came back, so the client does not retry it blindly; the caller
    decides. It is ``False`` when the request certainly was not acted on (the connection could
    not be opened, 408, 502, 503, 455).
    """

    def __init__(
        self, message: str, *, status: int | None = None, maybe_processed: bool = True
    ) -> None:
        super().__init__(message, status=status)
        self.maybe_processed = maybe_processed


class VidgoMalformedResponse(VidgoTransientError):
    """Vidgo answered, but not with JSON of the documented shape."""
