"""Waking other processes over PostgreSQL: NOTIFY on every write that makes a job due, LISTEN
on a dedicated connection that comes back after it was lost.

Two stores with their own pools and listeners stand for two bot processes. The *listener*
store sets a case up (its own writes are never echoed back to it); the *writer* store makes
the write under test. Notifications of one channel arrive in commit order, so a test proves
that a write sent nothing by making a second, known write (the barrier) and checking that the
barrier is the first thing the listener heard.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from bot.engine import EngineConfig, JobEngine, VidgoApi
from storage.jobstate import JobState
from storage.postgres import WAKE_AFTER_GAP, PostgresJobStore, due_channel, parse_due_payload
from storage.records import Admission, CachedResult, InstanceInfo
from tests.bot.engine_harness import RecordingDelivery
from tests.conftest import StoreBackend
from tests.helpers import NOW, new_job

# Guards against a wake-up that never comes (the bug being tested for); never a speed target.
HANG_GUARD = 30.0
BARRIER_AT = NOW + 12_345.0


class DueTimes:
    """What a listener handed to its dispatcher, in order."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[float] = asyncio.Queue()

    def __call__(self, due_at: float) -> None:
        self.queue.put_nowait(due_at)

    async def next(self) -> float:
        return await asyncio.wait_for(self.queue.get(), HANG_GUARD)


class Pair:
    """A listening store, a writing store on the same schema, and what the first heard."""

    def __init__(self, listener: PostgresJobStore, writer: PostgresJobStore) -> None:
        self.listener = listener
        self.writer = writer
        self.heard = DueTimes()

    async def barrier(self) -> None:
        """A notifying write by the writer, due at ``BARRIER_AT``."""
        if await self.listener.get("barrier") is None:
            await self.listener.admit(
                new_job("barrier", key="barrier"), NOW, submit_lease_until=NOW
            )
            await self.listener.update("barrier", NOW, due_at=NOW + 99_999)
        await self.writer.expedite("barrier", BARRIER_AT)


def pg_store(backend: StoreBackend, **options: Any) -> PostgresJobStore:
    """A store on the backend's schema (closed with the backend's stores), not opened."""
    store = backend.new_store(**options)
    assert isinstance(store, PostgresJobStore)
    backend.opened.append(store)
    return store


@pytest.fixture
async def pair(pg_backend: StoreBackend) -> AsyncIterator[Pair]:
    listener, writer = pg_store(pg_backend), pg_store(pg_backend)
    await listener.open()
    await writer.open()
    both = Pair(listener, writer)
    await listener.listen_for_due(both.heard)
    yield both
    await listener.stop_listening()


async def submitted(store: PostgresJobStore, job_id: str, due_at: float) -> None:
    await store.admit(new_job(job_id, key=job_id), NOW, submit_lease_until=NOW)
    await store.transition(
        job_id, JobState.SUBMITTED, NOW, vidgo_task_id=f"t-{job_id}", due_at=due_at
    )


# --- each write that makes a job due wakes the other process ----------------------------------
# A case sets up with the listener, writes with the writer and returns the due time to hear.

Case = Callable[[PostgresJobStore, PostgresJobStore], Awaitable[float]]


async def admitting_a_new_job(mine: PostgresJobStore, theirs: PostgresJobStore) -> float:
    # Due when the admitter's lease ends: another process takes it up if the admitter hangs.
    await theirs.admit(new_job("j"), NOW, submit_lease_until=NOW + 60, owner="them")
    return NOW + 60


async def admitting_a_cached_answer(mine: PostgresJobStore, theirs: PostgresJobStore) -> float:
    await mine.cache_put(CachedResult("song", "separate-vocals", "t", {"stems": {}}, None, NOW))
    admitted = await theirs.admit(new_job("j", key="song"), NOW + 1, submit_lease_until=NOW + 61)
    assert admitted.admission is Admission.CACHED
    return NOW + 1


async def a_callback(mine: PostgresJobStore, theirs: PostgresJobStore) -> float:
    await submitted(mine, "j", NOW + 600)
    assert await theirs.note_callback(NOW + 2, token_hash="hash-j") is not None
    return NOW + 2


async def a_reschedule_after_a_callback(mine: PostgresJobStore, theirs: PostgresJobStore) -> float:
    await submitted(mine, "j", NOW)
    [held] = await theirs.claim_due(NOW, NOW + 120, 1, owner="them")
    await mine.note_callback(NOW + 1, token_hash="hash-j")  # leased: nobody is woken yet
    await theirs.reschedule(
        "j", NOW + 3, NOW + 60, seen_callbacks=held.callbacks, lease=held.lease_id
    )
    return NOW + 3


async def releasing_orphaned_leases(mine: PostgresJobStore, theirs: PostgresJobStore) -> float:
    await mine.admit(new_job("j"), NOW, submit_lease_until=NOW + 60, owner="gone")
    assert await theirs.release_orphaned_leases(NOW + 4, stale_before=NOW) == 1
    return NOW + 4


async def a_clean_stop(mine: PostgresJobStore, theirs: PostgresJobStore) -> float:
    await mine.register_instance(InstanceInfo("them", 1, "h", NOW, NOW))
    await mine.admit(new_job("j"), NOW, submit_lease_until=NOW + 60, owner="them")
    assert await theirs.unregister_instance("them", NOW + 5) == 1
    return NOW + 5


async def an_expedite(mine: PostgresJobStore, theirs: PostgresJobStore) -> float:
    await submitted(mine, "j", NOW + 600)
    await theirs.expedite("j", NOW + 6)
    return NOW + 6


async def an_outcome_owed_to_a_channel(mine: PostgresJobStore, theirs: PostgresJobStore) -> float:
    await submitted(mine, "j", NOW + 600)
    await theirs.record_outcome("j", JobState.FAILED, NOW + 7, last_error="x", error_kind="x")
    return NOW + 7


async def cancelling_a_leader_with_an_heir(
    mine: PostgresJobStore, theirs: PostgresJobStore
) -> float:
    await mine.admit(new_job("lead"), NOW, submit_lease_until=NOW + 60, owner="me")
    await mine.admit(new_job("heir", requester=2), NOW, submit_lease_until=NOW)
    await theirs.cancel("lead", NOW + 8)
    return NOW + 8


WAKING: dict[str, Case] = {
    case.__name__: case
    for case in (
        admitting_a_new_job,
        admitting_a_cached_answer,
        a_callback,
        a_reschedule_after_a_callback,
        releasing_orphaned_leases,
        a_clean_stop,
        an_expedite,
        an_outcome_owed_to_a_channel,
        cancelling_a_leader_with_an_heir,
    )
}


@pytest.mark.parametrize("case", WAKING.values(), ids=WAKING.keys())
async def test_postgresql_a_write_that_makes_a_job_due_wakes_the_other_process(
    pair: Pair, case: Case
) -> None:
    due_at = await case(pair.listener, pair.writer)
    await pair.barrier()
    assert await pair.heard.next() == due_at
    assert await pair.heard.next() == BARRIER_AT


# --- writes that make nothing due sooner stay quiet --------------------------------------------


async def a_reschedule_without_a_callback(mine: PostgresJobStore, theirs: PostgresJobStore) -> None:
    await submitted(mine, "j", NOW)
    [held] = await theirs.claim_due(NOW, NOW + 120, 1, owner="them")
    await theirs.reschedule(
        "j", NOW + 3, NOW + 60, seen_callbacks=held.callbacks, lease=held.lease_id
    )


async def an_outcome_its_worker_delivers_itself(
    mine: PostgresJobStore, theirs: PostgresJobStore
) -> None:
    await mine.admit(new_job("j"), NOW, submit_lease_until=NOW + 60, owner="them")
    await theirs.record_outcome(
        "j", JobState.SUCCEEDED, NOW + 1, result={}, lease=1, lease_until=NOW + 120, owner="them"
    )


async def a_callback_for_a_leased_job(mine: PostgresJobStore, theirs: PostgresJobStore) -> None:
    await submitted(mine, "j", NOW)
    await mine.claim_due(NOW, NOW + 120, 1, owner="me")
    assert await theirs.note_callback(NOW + 1, token_hash="hash-j") is not None


async def a_worker_backing_off(mine: PostgresJobStore, theirs: PostgresJobStore) -> None:
    await mine.admit(new_job("j"), NOW, submit_lease_until=NOW + 60, owner="them")
    await theirs.update("j", NOW + 1, lease=1, due_at=NOW + 30, faults=1)


async def a_claim_and_a_renewal(mine: PostgresJobStore, theirs: PostgresJobStore) -> None:
    await submitted(mine, "j", NOW)
    await theirs.claim_due(NOW, NOW + 120, 1, owner="them")
    await theirs.renew_leases("them", NOW + 240, ["j"])


async def joining_an_identical_job(mine: PostgresJobStore, theirs: PostgresJobStore) -> None:
    await mine.admit(new_job("lead"), NOW, submit_lease_until=NOW + 60, owner="me")
    joined = await theirs.admit(new_job("f", requester=2), NOW, submit_lease_until=NOW + 60)
    assert joined.admission is Admission.JOINED


async def the_listeners_own_write(mine: PostgresJobStore, theirs: PostgresJobStore) -> None:
    # Its process woke its own dispatcher already.
    await submitted(mine, "j", NOW + 600)
    await mine.expedite("j", NOW + 1)


QuietCase = Callable[[PostgresJobStore, PostgresJobStore], Awaitable[None]]
QUIET: dict[str, QuietCase] = {
    case.__name__: case
    for case in (
        a_reschedule_without_a_callback,
        an_outcome_its_worker_delivers_itself,
        a_callback_for_a_leased_job,
        a_worker_backing_off,
        a_claim_and_a_renewal,
        joining_an_identical_job,
        the_listeners_own_write,
    )
}


@pytest.mark.parametrize("case", QUIET.values(), ids=QUIET.keys())
async def test_postgresql_a_write_that_makes_nothing_due_sooner_wakes_nobody(
    pair: Pair, case: QuietCase
) -> None:
    await case(pair.listener, pair.writer)
    await pair.barrier()
    assert await pair.heard.next() == BARRIER_AT


async def test_postgresql_notifications_that_name_no_due_time_are_dropped(
    pair: Pair, pg_dsn: str
) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        for junk in ("", "soon", "nan x", "inf x", "-inf x", "1e999 x", "9" * 300):
            await conn.execute("SELECT pg_notify($1, $2)", pair.listener.channel, junk)
    finally:
        await conn.close()
    await pair.barrier()
    assert await pair.heard.next() == BARRIER_AT


def test_notifications_are_read_as_a_due_time_and_a_sender() -> None:
    assert parse_due_payload("1800000000.5 abc") == (1_800_000_000.5, "abc")
    assert parse_due_payload("1800000000") == (1_800_000_000.0, "")
    for junk in (None, b"1 x", "x 1", "nan", "inf", "", "1" * 201):
        assert parse_due_payload(junk) is None


def test_each_schema_has_its_own_channel_short_enough_for_postgresql() -> None:
    assert due_channel("stemcord") == "stemcord_due_stemcord"
    longest = "a" * 62 + "b"
    other = "a" * 62 + "c"
    assert len(due_channel(longest)) <= 63
    assert due_channel(longest) != due_channel(other)
    with pytest.raises(ValueError, match="schema name"):
        due_channel("Bad-Name")


# --- a lost connection ------------------------------------------------------------------------


async def terminate(pg_dsn: str, backend_pid: int) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", backend_pid) is True
    finally:
        await conn.close()


async def test_postgresql_a_lost_listener_reconnects_and_wakes_its_dispatcher_once(
    pair: Pair, pg_dsn: str
) -> None:
    before = pair.listener.listener_backend_pid
    assert before is not None
    await terminate(pg_dsn, before)
    # Announcements may have been missed while it was gone: look at the store once.
    assert await pair.heard.next() == WAKE_AFTER_GAP
    after = pair.listener.listener_backend_pid
    assert after is not None and after != before
    # It listens again, and that one wake-up was all.
    await pair.barrier()
    assert await pair.heard.next() == BARRIER_AT
    assert pair.heard.queue.empty()
    assert pair.listener.listening


async def test_postgresql_a_listener_keeps_trying_until_it_can_listen_then_wakes_once(
    pg_backend: StoreBackend, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    listener = pg_store(pg_backend, listen_retry=(0.01, 0.04))
    writer = pg_store(pg_backend)
    await listener.open()
    await writer.open()
    both = Pair(listener, writer)
    connect = listener._connect_listener
    attempts = 0

    async def refused_three_times(on_due: Callable[[float], None]) -> Any:
        nonlocal attempts
        attempts += 1
        if attempts <= 3:
            raise ConnectionRefusedError("the server is restarting")
        return await connect(on_due)

    monkeypatch.setattr(listener, "_connect_listener", refused_three_times)
    await listener.listen_for_due(both.heard)  # returns after the first, failed, attempt
    assert await both.heard.next() == WAKE_AFTER_GAP
    assert attempts == 4
    await both.barrier()
    assert await both.heard.next() == BARRIER_AT
    assert both.heard.queue.empty()


class SilencingProxy:
    """A TCP proxy on 127.0.0.1 to the PostgreSQL server that can go silent on one connection.

    A silenced connection stays open but forwards nothing either way, as a network path
    does when a NAT entry or a firewall state expires: no error ever reaches either side.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.connections: list[asyncio.Event] = []  # set = forwarding
        self._writers: list[asyncio.StreamWriter] = []
        self._pumps: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> SilencingProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        for pump in self._pumps:
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        forwarding = asyncio.Event()
        forwarding.set()
        self.connections.append(forwarding)
        self._writers += [writer, up_writer]
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            pump = asyncio.create_task(self._pump(source, sink, forwarding))
            self._pumps.add(pump)

    @staticmethod
    async def _pump(
        source: asyncio.StreamReader, sink: asyncio.StreamWriter, forwarding: asyncio.Event
    ) -> None:
        while data := await source.read(65536):
            await forwarding.wait()  # silenced: hold everything, close nothing
            sink.write(data)
            await sink.drain()
        sink.close()


async def test_postgresql_a_listener_whose_network_path_went_silent_reconnects(
    pg_backend: StoreBackend, pg_dsn: str
) -> None:
    server = urlsplit(pg_dsn)
    async with SilencingProxy(server.hostname or "127.0.0.1", server.port or 5432) as proxy:
        through_proxy = urlunsplit(
            server._replace(netloc=f"{server.username}@127.0.0.1:{proxy.port}")
        )
        listener = PostgresJobStore(
            through_proxy,
            schema=pg_backend.schema,
            connect_timeout=1.0,
            listen_check=0.05,
            listen_retry=(0.01, 0.04),
        )
        writer = await pg_backend.open_store()
        assert isinstance(writer, PostgresJobStore)
        await listener.open()
        try:
            both = Pair(listener, writer)
            await listener.listen_for_due(both.heard)
            # The listener opened the last connection; its path now drops every packet.
            proxy.connections[-1].clear()
            assert await both.heard.next() == WAKE_AFTER_GAP
            await both.barrier()
            assert await both.heard.next() == BARRIER_AT
            assert both.heard.queue.empty()
        finally:
            await listener.close()


async def test_postgresql_listening_stops_and_can_start_again(pair: Pair) -> None:
    with pytest.raises(RuntimeError, match="already listens"):
        await pair.listener.listen_for_due(pair.heard)
    await pair.listener.stop_listening()
    assert not pair.listener.listening and pair.listener.listener_backend_pid is None
    await pair.listener.stop_listening()  # harmless twice
    again = DueTimes()
    await pair.listener.listen_for_due(again)
    await pair.barrier()
    assert await again.next() == BARRIER_AT
    await pair.listener.close()
    assert not pair.listener.listening


async def test_postgresql_a_store_that_is_not_open_cannot_listen(pg_backend: StoreBackend) -> None:
    with pytest.raises(RuntimeError, match="not open"):
        await pg_store(pg_backend).listen_for_due(DueTimes())


# --- the engine -------------------------------------------------------------------------------


async def test_postgresql_an_engine_delivers_a_job_another_process_made_due(
    pg_backend: StoreBackend,
) -> None:
    store, other = await pg_backend.open_store(), await pg_backend.open_store()
    assert isinstance(store, PostgresJobStore)
    delivery = RecordingDelivery()
    # Nothing else would wake it: no jobs at start (it sleeps for the longest sleep) and no
    # housekeeping before the test ends.
    config = EngineConfig(instance_heartbeat=3600.0)
    engine = JobEngine(store, cast(VidgoApi, object()), delivery, config, kinds=[])
    await engine.start()
    try:
        assert store.listening
        now = time.time()
        await other.cache_put(
            CachedResult("song", "separate-vocals", "t", {"stems": {}}, None, now)
        )
        admitted = await other.admit(new_job("j", key="song"), now, submit_lease_until=now + 60)
        assert admitted.admission is Admission.CACHED
        await delivery.wait_for(lambda done: [j.id for j in done] == ["j"], timeout=HANG_GUARD)
    finally:
        await engine.stop(grace=1.0)
    assert not store.listening
    delivered = await other.get("j")
    assert delivered is not None and delivered.state is JobState.DELIVERED
