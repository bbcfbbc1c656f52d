"""The job state machine, written down once.

A job moves through these states::

    accepted ──► submitted ──► running ──► succeeded ──► delivered
       │  │          │            │            │
       │  │          │            │            └──────► undeliverable ──► delivered
       │  │          ├────────────┴──► failed ───► delivered | undeliverable
       │  │          └────────────────► expired ──► delivered | undeliverable
       │  └──► succeeded (answered from the results cache, no Vidgo call)
       └──► failed (Vidgo refused the submit)        any unfinished state ──► cancelled

* ``accepted``: recorded, not yet known to Vidgo (or the submit must be retried).
* ``submitted``: Vidgo returned a task id; ``running``: Vidgo reported it is working.
  A job that joined an identical in-flight job (``leader_id`` set) waits in ``submitted``.
* ``succeeded`` / ``failed`` / ``expired``: the outcome is known and a message is owed.
* ``delivered``: the result or failure message was posted; ``undeliverable``: every delivery
  attempt failed (a moderator may retry, which can still end in ``delivered``).
* ``cancelled``: tracking stopped at a member's request; nothing is posted later.

The outcome (succeeded, failed, expired) stays in the job's ``outcome`` column after delivery.
:func:`check_transition` is the one place the table is enforced; every backend calls it inside
the transaction that changes the state.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    """Where a job is in its life."""

    ACCEPTED = "accepted"
    SUBMITTED = "submitted"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    DELIVERED = "delivered"
    UNDELIVERABLE = "undeliverable"

    @property
    def is_active(self) -> bool:
        """Vidgo work is still pending (submit or polling)."""
        return self in ACTIVE_STATES

    @property
    def awaits_delivery(self) -> bool:
        """The outcome is known and a message is owed."""
        return self in OUTCOME_STATES

    @property
    def is_final(self) -> bool:
        """Nothing more will happen without a person's request."""
        return self in FINAL_STATES


ACTIVE_STATES = frozenset({JobState.ACCEPTED, JobState.SUBMITTED, JobState.RUNNING})
OUTCOME_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.EXPIRED})
FINAL_STATES = frozenset({JobState.DELIVERED, JobState.UNDELIVERABLE, JobState.CANCELLED})

_AFTER_OUTCOME = frozenset({JobState.DELIVERED, JobState.UNDELIVERABLE})

TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.ACCEPTED: frozenset(
        {
            JobState.SUBMITTED,
            JobState.SUCCEEDED,
            JobState.FAILED,
            JobState.EXPIRED,
            JobState.CANCELLED,
        }
    ),
    JobState.SUBMITTED: frozenset(
        {
            JobState.RUNNING,
            JobState.SUCCEEDED,
            JobState.FAILED,
            JobState.EXPIRED,
            JobState.CANCELLED,
        }
    ),
    JobState.RUNNING: frozenset(
        {JobState.SUCCEEDED, JobState.FAILED, JobState.EXPIRED, JobState.CANCELLED}
    ),
    JobState.SUCCEEDED: _AFTER_OUTCOME,
    JobState.FAILED: _AFTER_OUTCOME,
    JobState.EXPIRED: _AFTER_OUTCOME,
    JobState.UNDELIVERABLE: frozenset({JobState.DELIVERED}),
    JobState.DELIVERED: frozenset(),
    JobState.CANCELLED: frozenset(),
}


class InvalidTransition(Exception):
    """A state change the table does not allow (or the job moved on meanwhile)."""

    def __init__(self, job_id: str, current: JobState | None, target: JobState) -> None:
        super().__init__(f"job {job_id}: {current} -> {target} is not allowed")
        self.job_id = job_id
        self.current = current
        self.target = target


def can_transition(current: JobState, target: JobState) -> bool:
    """Whether the table allows ``current -> target``."""
    return target in TRANSITIONS[current]


def check_transition(job_id: str, current: JobState, target: JobState) -> None:
    """Raise :class:`InvalidTransition` unless the table allows ``current -> target``."""
    if not can_transition(current, target):
        raise InvalidTransition(job_id, current, target)
