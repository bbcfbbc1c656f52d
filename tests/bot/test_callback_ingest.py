"""The callback fast path: remembered HMAC checks, prebuilt answers, batches in flight.

Each test crosses the real listener over HTTP into a real store (both backends where the
behaviour is the engine's), or the store itself where the behaviour is the store's.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import asyncpg
import pytest

import bot.engine as engine_module
from bot.engine import VERIFIED_TOKENS_KEPT, callback_token
from storage import postgres
from storage.base import JobStore
from storage.jobstate import JobState
from storage.postgres import PostgresJobStore
from tests.bot.engine_harness import Harness
from tests.fakes.vidgo import FakeVidgo
from tests.helpers import NOW, new_job


async def test_a_verified_token_skips_the_hmac_on_its_repeats(
    h: Harness, vidgo: FakeVidgo, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = (await h.separate_ids()).job
    task = vidgo.tasks[job.vidgo_task_id or ""]
    assert task.callback_url is not None
    checks: list[str] = []
    real_check = engine_module.callback_key_of

    def counted(secret: bytes, token: str) -> str | None:
        checks.append(token)
        return real_check(secret, token)

    monkeypatch.setattr(engine_module, "callback_key_of", counted)
    for _ in range(3):
        async with session.post(task.callback_url, json={"data": {}}) as resp:
            assert resp.status == 200
    assert len(checks) == 1
    stored = await h.job(job.id)
    assert stored.callbacks == 3  # every repeat still reached the database


async def test_a_forged_token_is_never_remembered_and_stays_refused(
    h: Harness, session: aiohttp.ClientSession
) -> None:
    assert h.engine is not None
    job = (await h.separate_ids()).job
    before = await h.job(job.id)
    real = await h.engine.callback_token_of(before)
    key, _, mac = real.rpartition(".")
    forged = f"{key}.{'A' if mac[0] != 'A' else 'B'}{mac[1:]}"
    for _ in range(2):
        async with session.post(f"{h.public_url}/vidgo/callback/{forged}", json={}) as resp:
            assert resp.status == 404
    assert forged not in h.engine._verified
    # Nothing counted (the job's own polls may move it on meanwhile; a callback never did).
    assert (await h.job(job.id)).callbacks == before.callbacks == 0


async def test_the_memory_of_verified_tokens_is_bounded(h: Harness) -> None:
    assert h.engine is not None and h.store is not None
    secret = await h.store.secret("callback-token")
    for i in range(VERIFIED_TOKENS_KEPT + 10):
        await h.engine.on_callback(callback_token(secret, f"nosuchjob{i}"))
    assert 0 < len(h.engine._verified) <= VERIFIED_TOKENS_KEPT


async def test_the_answer_sent_for_an_accepted_callback_is_the_documented_json(
    h: Harness, vidgo: FakeVidgo, session: aiohttp.ClientSession
) -> None:
    job = (await h.separate_ids()).job
    task = vidgo.tasks[job.vidgo_task_id or ""]
    assert task.callback_url is not None
    async with session.post(task.callback_url, json={"data": {}}) as resp:
        raw = await resp.read()
        assert resp.headers["Content-Type"] == "application/json"
    assert json.loads(raw) == {"ok": True, "message": "accepted"}
    async with session.post(f"{h.public_url}/vidgo/callback/{'x' * 30}", json={}) as resp:
        assert json.loads(await resp.read()) == {"ok": False, "message": "unknown callback"}


async def test_a_burst_longer_than_several_batches_is_stored_whole(store: JobStore) -> None:
    count = 700  # more than two batches of 256: batches are written one after another
    for i in range(count):
        await store.admit(
            new_job(f"j{i}", key=f"k{i}", callback_key=f"key{i}"), NOW, submit_lease_until=NOW
        )
        await store.update(f"j{i}", NOW, due_at=NOW + 60)
    found = await asyncio.gather(
        *(store.note_callback(NOW + 1, callback_key=f"key{i}") for i in range(count))
    )
    assert [j.id if j else None for j in found] == [f"j{i}" for i in range(count)]
    assert all(j is not None and j.due_at == NOW + 1 for j in found)
    again = await store.list_jobs(states={JobState.ACCEPTED}, limit=count)
    assert {j.callbacks for j in again} == {1}


@pytest.mark.postgresql
async def test_postgresql_callbacks_relax_the_wal_flush_for_their_own_transaction_only(
    pg_store: PostgresJobStore, pg_dsn: str
) -> None:
    await pg_store.admit(new_job("j", callback_key="key"), NOW, submit_lease_until=NOW)
    # The batch statement on a connection of its own (a pool would reset it on release).
    conn = await asyncpg.connect(pg_dsn, server_settings={"search_path": pg_store.schema or ""})
    try:
        rows = await conn.fetch(
            postgres.NOTE_CALLBACKS, NOW + 1, ["key"], [], 2.0, pg_store.channel, "t"
        )
        assert [row["id"] for row in rows] == ["j"]
        assert rows[0]["relaxed"] == 1  # the setting was made inside the statement
        assert await conn.fetchval("SHOW synchronous_commit") == "on"  # and ended with it
    finally:
        await conn.close()
    stored = await pg_store.get("j")
    assert stored is not None and stored.callbacks == 1
