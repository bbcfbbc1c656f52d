"""A real engine wired to the fake Vidgo over HTTP, a SQLite file and a recording delivery."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import aiohttp

from bot.delivery import DeliveryError
from bot.engine import CallbackOutcome, EngineConfig, JobEngine, SeparationRequest, Submitted
from bot.sources import StemChoice, plan_for, source_from_ids, source_from_link
from bot.vidgo.client import VidgoClient
from bot.webhook import CallbackServer
from storage.jobstate import JobState
from storage.records import JobRecord
from storage.sqlite import SqliteJobStore
from tests.fakes.vidgo import GENERATION_AUDIO_IDS, GENERATION_TASK_ID, FakeVidgo

FAST = EngineConfig(
    poll_interval=0.05,
    poll_max_interval=0.2,
    poll_max_interval_with_callbacks=0.5,
    job_timeout=10.0,
    delivery_backoff_base=0.01,
    delivery_backoff_max=0.05,
    submit_backoff_max=0.05,
    work_lease=5.0,
    instance_heartbeat=0.1,
    instance_timeout=0.5,
    fault_backoff_base=0.01,
    fault_backoff_max=0.05,
)


class RecordingDelivery:
    """Implements the delivery interface by remembering what it was asked to deliver."""

    def __init__(self) -> None:
        self.delivered: list[JobRecord] = []
        self.attempts = 0
        self.fail_next = 0
        self.permanent = False
        self.progress: list[tuple[str, JobState]] = []
        self._changed = asyncio.Condition()

    async def deliver(self, job: JobRecord) -> int | None:
        self.attempts += 1
        if self.fail_next:
            self.fail_next -= 1
            raise DeliveryError("channel unavailable", permanent=self.permanent)
        async with self._changed:
            self.delivered.append(job)
            self._changed.notify_all()
        return 9000 + len(self.delivered)

    async def show_progress(self, job: JobRecord) -> None:
        self.progress.append((job.id, job.state))

    def for_job(self, job_id: str) -> list[JobRecord]:
        return [j for j in self.delivered if j.id == job_id]

    async def wait_for(
        self, predicate: Callable[[list[JobRecord]], bool], timeout: float = 5.0
    ) -> None:
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: predicate(self.delivered)), timeout
            )


class _LateSink:
    """Lets the callback server start (and learn its port) before the engine exists."""

    engine: JobEngine | None = None

    async def on_callback(self, token: str, task_hint: str | None = None) -> CallbackOutcome:
        assert self.engine is not None
        return await self.engine.on_callback(token, task_hint)


@dataclass
class Harness:
    """Everything a test needs; build with :func:`harness`."""

    vidgo: FakeVidgo
    db_path: Path
    session: aiohttp.ClientSession
    delivery: RecordingDelivery = field(default_factory=RecordingDelivery)
    config: EngineConfig = FAST
    callbacks: bool = True
    busy_timeout_ms: int = 5000
    api_key: str = "test-vidgo-key"
    client_timeout: float = 2.0
    engine: JobEngine | None = None
    store: SqliteJobStore | None = None
    server: CallbackServer | None = None
    client: VidgoClient | None = None
    _sink: _LateSink = field(default_factory=_LateSink)

    @property
    def public_url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}"

    async def start(self) -> JobEngine:
        """Start (or restart) an engine on the same database file."""
        config = self.config
        if self.callbacks:
            if self.server is None:
                self.server = CallbackServer(self._sink, host="127.0.0.1", port=0)
                await self.server.start()
            config = replace(config, public_url=self.public_url)
        self.store = SqliteJobStore(self.db_path, busy_timeout_ms=self.busy_timeout_ms)
        await self.store.open()
        self.client = VidgoClient(
            self.session,
            self.vidgo.base_url,
            self.api_key,
            timeout=self.client_timeout,
            max_retries=2,
            rate_per_second=1000.0,
            max_concurrency=16,
            backoff_base=0.01,
            backoff_max=0.05,
        )
        self.engine = JobEngine(self.store, self.client, self.delivery, config)
        self._sink.engine = self.engine
        await self.engine.start()
        return self.engine

    async def stop(self) -> None:
        """Stop the engine and close its store (the callback server stays up)."""
        if self.engine is not None:
            await self.engine.stop(grace=1.0)
            self.engine = None
        if self.store is not None:
            await self.store.close()
            self.store = None

    async def close(self) -> None:
        await self.stop()
        if self.server is not None:
            await self.server.stop()

    async def separate_ids(
        self, audio_index: int = 0, *, stems: StemChoice = StemChoice.VOCALS, requester: int = 1
    ) -> Submitted:
        source = source_from_ids(GENERATION_TASK_ID, GENERATION_AUDIO_IDS[audio_index])
        return await self.request(
            source_plan=(source, plan_for(source, stems)), requester=requester
        )

    async def separate_link(self, link: str, *, requester: int = 1) -> Submitted:
        source = source_from_link(link)
        return await self.request(
            source_plan=(source, plan_for(source, StemChoice.VOCALS)), requester=requester
        )

    async def request(self, *, source_plan: tuple[object, object], requester: int = 1) -> Submitted:
        assert self.engine is not None
        source, plan = source_plan
        return await self.engine.submit(
            SeparationRequest(
                source=source,  # type: ignore[arg-type]
                plan=plan,  # type: ignore[arg-type]
                requester_id=requester,
                channel_id=500,
                guild_id=400,
            )
        )

    async def job(self, job_id: str) -> JobRecord:
        assert self.store is not None
        found = await self.store.get(job_id)
        assert found is not None
        return found

    async def wait_state(self, job_id: str, *states: JobState, timeout: float = 5.0) -> JobRecord:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            job = await self.job(job_id)
            if job.state in states:
                return job
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"job {job_id} stayed {job.state}, wanted {states}")
            await asyncio.sleep(0.01)
