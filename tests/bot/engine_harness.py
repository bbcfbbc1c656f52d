"""A real engine wired to the fake Vidgo over HTTP, a SQLite file and a recording delivery."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp

from bot.delivery import DeliveryError
from bot.engine import CallbackOutcome, EngineConfig, JobEngine
from bot.jobs import JobRequest, Submitted
from bot.kinds import JobKind, UnusableResult
from bot.lyrics import LyricsKind
from bot.midi import MidiKind
from bot.separation import SeparationKind, separation_request
from bot.sources import StemChoice, plan_for, source_from_ids, source_from_link
from bot.vidgo.client import VidgoClient
from bot.vidgo.results import Model, SubmitReceipt, TaskDetail
from bot.webhook import CallbackServer
from storage.base import JobStore
from storage.jobstate import JobState
from storage.records import JobRecord, SourceKind
from tests.conftest import StoreBackend
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
    backend: StoreBackend
    session: aiohttp.ClientSession
    delivery: RecordingDelivery = field(default_factory=RecordingDelivery)
    config: EngineConfig = FAST
    callbacks: bool = True
    busy_timeout_ms: int = 5000
    api_key: str = "test-vidgo-key"
    client_timeout: float = 2.0
    # More kinds (or replacements of the usual ones, by name), made with each engine's client.
    extra_kinds: Callable[[VidgoClient], list[JobKind]] | None = None
    engine: JobEngine | None = None
    store: JobStore | None = None
    server: CallbackServer | None = None
    client: VidgoClient | None = None
    _sink: _LateSink = field(default_factory=_LateSink)

    @property
    def db_path(self) -> Path:
        """The SQLite file (SQLite-only tests)."""
        assert self.backend.path is not None, "a SQLite-only test ran on another backend"
        return self.backend.path

    @property
    def public_url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}"

    async def start(self) -> JobEngine:
        """Start (or restart) an engine on the same database."""
        config = self.config
        if self.callbacks:
            if self.server is None:
                self.server = CallbackServer(self._sink, host="127.0.0.1", port=0)
                await self.server.start()
            config = replace(config, public_url=self.public_url)
        options = {"busy_timeout_ms": self.busy_timeout_ms} if self.backend.name == "sqlite" else {}
        self.store = self.backend.new_store(**options)
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
        kinds: list[JobKind] = [
            SeparationKind(self.client),
            LyricsKind(self.client),
            MidiKind(self.client),
        ]
        if self.extra_kinds is not None:
            extra = self.extra_kinds(self.client)
            names = {kind.NAME for kind in extra}
            kinds = [kind for kind in kinds if kind.NAME not in names] + extra
        self.engine = JobEngine(self.store, self.client, self.delivery, config, kinds=kinds)
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
            separation_request(
                source,  # type: ignore[arg-type]
                plan,  # type: ignore[arg-type]
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


# --- a callback sink for listener tests ------------------------------------------------------

KNOWN = "k" * 22
DONE = "d" * 22


class RecordingSink:
    def __init__(self) -> None:
        self.tokens: list[str] = []

    async def on_callback(self, token: str, task_hint: str | None = None) -> CallbackOutcome:
        self.tokens.append(token)
        if token == KNOWN:
            return CallbackOutcome.ACCEPTED
        if token == DONE:
            return CallbackOutcome.IGNORED
        return CallbackOutcome.UNKNOWN


# --- a job kind of the tests' own ---------------------------------------------------------------


class EchoKind(JobKind):
    """Submits a real separation to the fake Vidgo, but keeps its own kind of result."""

    NAME = "echo"

    def __init__(self, client: VidgoClient, *, at_submit: bool = False, usable: bool = True):
        self.client = client
        self.at_submit = at_submit
        self.usable = usable

    async def submit(self, job: JobRecord, callback_url: str | None) -> SubmitReceipt:
        assert job.source_task_id and job.source_audio_id
        return await self.client.submit_separation(
            Model.SEPARATE_VOCALS,
            task_id=job.source_task_id,
            audio_id=job.source_audio_id,
            callback_url=callback_url,
        )

    def result_of(self, job: JobRecord, detail: TaskDetail) -> dict[str, Any]:
        if not self.usable:
            raise UnusableResult("no_echo", "nothing to echo")
        return {"echo": len(detail.files), "task": detail.task_id}

    def result_at_submit(self, job: JobRecord, receipt: SubmitReceipt) -> dict[str, Any] | None:
        return {"echo": "at once", "status": receipt.data.get("status")} if self.at_submit else None


def echo_request(audio_index: int = 0) -> JobRequest:
    audio_id = GENERATION_AUDIO_IDS[audio_index]
    return JobRequest(
        kind="echo",
        model="echo",
        source_kind=SourceKind.IDS,
        source_key=f"echo:{GENERATION_TASK_ID}:{audio_id}",
        requester_id=1,
        channel_id=500,
        guild_id=400,
        source_task_id=GENERATION_TASK_ID,
        source_audio_id=audio_id,
    )


async def with_kind(h: Harness, kind: EchoKind) -> None:
    assert h.engine is not None
    h.engine.kinds["echo"] = kind
