"""The small interface through which the engine tells people about their jobs.

The engine never imports Discord: the Discord layer implements :class:`Delivery`. A delivery
carries :func:`delivery_key`, stable per job and at most 25 characters, so the implementation
can send it as a message nonce and a retry after a crash returns the first message instead of
posting a second one.
"""

from __future__ import annotations

from typing import Protocol

from storage.records import JobRecord

NONCE_MAX = 25


class DeliveryError(Exception):
    """A delivery attempt failed.

    ``permanent`` means retrying cannot help (for example: the channel is gone and the
    requester does not accept DMs); the job then ends ``undeliverable`` at once.
    """

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class Delivery(Protocol):
    """Implemented by the Discord layer (and by recorders in tests)."""

    async def deliver(self, job: JobRecord) -> int | None:
        """Post the job's outcome (result, failure or expiry) once; return the message id.

        Raise :class:`DeliveryError` on failure. Must be idempotent for the same job:
        use :func:`delivery_key` as the message nonce.
        """
        ...

    async def show_progress(self, job: JobRecord) -> None:
        """Best-effort update of the job's status message (errors are logged, not fatal)."""
        ...


def delivery_key(job_id: str) -> str:
    """The stable per-job key (message nonce) of a job's delivery."""
    key = f"stemcord-{job_id}"
    if len(key) > NONCE_MAX:
        raise ValueError("job ids must be short enough for a message nonce")
    return key
