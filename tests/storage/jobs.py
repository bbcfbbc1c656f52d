"""Requests for store tests: a fixed clock and a :class:`NewJob` with sensible defaults."""

from __future__ import annotations

from storage.records import NewJob, SourceKind

NOW = 1_800_000_000.0


def new_job(
    job_id: str, *, key: str = "separate-vocals:T:A", requester: int = 1, **kw: object
) -> NewJob:
    """A separation request of member ``requester`` in guild 100 for source ``key``."""
    fields: dict[str, object] = {
        "id": job_id,
        "kind": "separation",
        "source_kind": SourceKind.IDS,
        "source_key": key,
        "model": "separate-vocals",
        "requester_id": requester,
        "channel_id": 10,
        "guild_id": 100,
        "source_task_id": "T",
        "source_audio_id": "A",
        "deadline_at": NOW + 1800,
        "callback_token_hash": f"hash-{job_id}",
    }
    fields.update(kw)
    return NewJob(**fields)  # type: ignore[arg-type]
