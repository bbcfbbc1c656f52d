"""Builders every test package shares: records, Discord mocks, small waits.

Test modules import from here (or from a package's own helper module such as
``tests/bot/engine_harness.py``), never from one another. Discord objects are mocked with
``spec_set`` so a misspelt attribute fails the test; Stemcord's own classes are mocked with
``create_autospec`` where a test needs one (see ``autospec``).
"""

from __future__ import annotations

import asyncio
import re
import socket
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

import discord

from storage.base import JobStore
from storage.jobstate import JobState
from storage.migrate import available_migrations
from storage.records import JobRecord, NewJob, SourceKind

T = TypeVar("T")
# Anything that would ping: @everyone, @here, a user, role or channel mention.
MASS = re.compile(r"@(everyone|here)|<@&?!?\d+>|<#\d+>")

# --- records -------------------------------------------------------------------------------

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


def job(**changes: object) -> JobRecord:
    base = JobRecord(
        id="abcdefghjk",
        kind="separation",
        source_kind=SourceKind.IDS,
        source_key="k",
        model="separate-vocals",
        requester_id=42,
        channel_id=7,
        guild_id=9,
        source_task_id="T",
        source_audio_id="A",
        source_url=None,
        options={},
        status_message_id=None,
        reply_to_message_id=None,
        vidgo_task_id="task",
        leader_id=None,
        state=JobState.SUCCEEDED,
        outcome=JobState.SUCCEEDED,
        attempts=1,
        polls=1,
        delivery_attempts=0,
        due_at=None,
        deadline_at=0.0,
        last_error=None,
        error_kind=None,
        callback_token_hash=None,
        callbacks=0,
        result={"stems": {"vocals": "https://s/v.mp3", "instrumental": "https://s/i.mp3"}},
        track={"title": "Song", "cover_url": "https://s/c.jpg", "duration": 184.3},
        result_message_id=None,
        created_at=1_800_000_000.0,
        updated_at=1_800_000_000.0,
        finished_at=None,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


async def delivered(store: JobStore, job_id: str, at: float, *, key: str | None = None) -> None:
    """A job that succeeded at ``at`` and was delivered."""
    await store.admit(new_job(job_id, key=key or f"k-{job_id}"), at, submit_lease_until=at)
    await store.record_outcome(job_id, JobState.SUCCEEDED, at, result={"stems": {}})
    await store.transition(job_id, JobState.DELIVERED, at, due_at=None)


def make_old_database(path: Path, version: int) -> None:
    """A database at schema ``version`` (as an older Stemcord left it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    for migration in available_migrations()[:version]:
        conn.executescript(migration.sql)
    conn.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT, applied_at REAL)"
    )
    for migration in available_migrations()[:version]:
        conn.execute(
            "INSERT INTO schema_migrations VALUES (?, ?, 0)", (migration.version, migration.name)
        )
    conn.commit()
    conn.close()


# --- Discord mocks -------------------------------------------------------------------------


def member(
    *,
    perms: discord.Permissions | None = None,
    roles: tuple[int, ...] = (),
    user_id: int = 1,
    in_channel: discord.Permissions | None = None,
) -> mock.Mock:
    """A member with server-wide ``perms``; ``in_channel`` is what the interaction resolved
    for the channel of the press (server-wide plus that channel's overwrites)."""
    m = mock.Mock(spec_set=discord.Member)
    m.id = user_id
    m.guild_permissions = perms or discord.Permissions.none()
    m.resolved_permissions = in_channel or m.guild_permissions
    m.roles = [mock.Mock(spec_set=discord.Role, id=r) for r in roles]
    return m


def interaction(
    *,
    channel_id: int = 7,
    guild_id: int | None = 9,
    parent_id: int | None = None,
    user: mock.Mock | None = None,
) -> mock.Mock:
    """An interaction in guild 9, channel 7 (a thread of ``parent_id`` if given), not answered
    yet; every way of answering is recorded."""
    inter = mock.Mock(spec_set=discord.Interaction)
    inter.channel_id = channel_id
    inter.channel = mock.Mock(spec_set=discord.Thread, parent_id=parent_id)
    inter.guild_id = guild_id
    inter.locale = discord.Locale.american_english
    inter.guild_locale = discord.Locale.american_english if guild_id is not None else None
    inter.user = user or member(perms=discord.Permissions.none())
    inter.response = mock.Mock(spec_set=discord.InteractionResponse)
    inter.response.is_done.return_value = False
    inter.response.send_message = mock.AsyncMock()
    inter.response.edit_message = mock.AsyncMock()
    inter.response.defer = mock.AsyncMock()
    inter.edit_original_response = mock.AsyncMock(
        return_value=mock.Mock(spec_set=discord.InteractionMessage, id=555)
    )
    inter.delete_original_response = mock.AsyncMock()
    inter.followup = mock.Mock(spec_set=discord.Webhook)
    inter.followup.send = mock.AsyncMock()
    return inter


def private_answer(inter: mock.Mock) -> str:
    """The text of the private answer an interaction got, however it was given."""
    for answer in (inter.response.send_message, inter.followup.send):
        if answer.await_count:
            args, kwargs = answer.await_args
            assert kwargs.get("ephemeral") is True, "the answer was public"
            return str(args[0] if args else kwargs.get("content"))
    if inter.edit_original_response.await_count:
        deferred = inter.response.defer.await_args
        assert deferred is not None and deferred.kwargs.get("ephemeral") is True
        return str(inter.edit_original_response.await_args.kwargs.get("content"))
    raise AssertionError("the interaction was never answered")


def autospec(cls: type[T], **attributes: Any) -> Any:
    """A mock of one of Stemcord's classes: only its real methods exist (coroutines stay
    coroutines), so a renamed or misspelt method fails the test instead of passing."""
    fake = mock.create_autospec(cls, instance=True, spec_set=True)
    for name, value in attributes.items():
        setattr(fake, name, value)
    return fake


# --- small helpers ---------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``predicate()`` holds (checked every 10 ms), or fail after ``timeout``."""
    async with asyncio.timeout(timeout):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.01)
