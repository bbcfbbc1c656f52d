"""Scale: many unfinished jobs — resume time, RSS, idle CPU, Vidgo calls per minute.

Run: ``.venv/bin/python -m bench.scale [--sizes 10000 100000] [--idle 30] [--busy 20]``
or, on PostgreSQL (a schema of its own, dropped afterwards; default size 1,000,000):
``.venv/bin/python -m bench.scale --database postgresql://postgres@127.0.0.1:5432/test``

For each size the database is filled with unfinished (``submitted``) jobs — SQLite through
``executemany``, PostgreSQL through ``COPY`` — then the engine is started in a child process
against the fake Vidgo:

* *resume*: from opening the database to the dispatcher running (the child reports it), and
  *ready*: from spawning the process (imports included) to that point;
* *RSS*: the child's resident memory after resuming (``/proc``);
* *idle CPU*: the child's CPU time over ``--idle`` seconds while every job waits for its next
  safety poll (callbacks on: jobs are not due within the window) — the dispatcher must sleep;
* *Vidgo calls while idle*: counted at the fake Vidgo over the same window (must be 0);
* *Vidgo calls per minute*: a second phase where every job is due now, counted at the fake
  Vidgo over ``--busy`` seconds; the client-side limit (``VIDGO_RATE_PER_SECOND``) bounds
  it. On SQLite the child is restarted to see the change (one process owns the file, and
  nothing else writes it while the bot runs); on PostgreSQL the bench announces it on the
  store's ``LISTEN`` channel, as another process's write would, and the running child wakes.

Goals: at 100,000 on SQLite resume <= 2 s, RSS <= 200 MB, idle CPU <= 2 %; at 1,000,000 on
PostgreSQL a process ready in <= 2 s, RSS <= 200 MB, idle CPU <= 2 %, no Vidgo call while
nothing is due.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


async def fill(db_path: Path, count: int, due_in: float) -> None:
    """Create the schema through the real store, then bulk-insert unfinished jobs."""
    from storage.sqlite import SqliteJobStore

    store = SqliteJobStore(db_path)
    await store.open()
    await store.close()
    now = time.time()
    conn = sqlite3.connect(db_path)
    conn.executemany(
        "INSERT INTO jobs (id, kind, source_kind, source_key, model, requester_id, channel_id, "
        "guild_id, source_task_id, source_audio_id, vidgo_task_id, state, due_at, deadline_at, "
        "callback_token_hash, created_at, updated_at, callback_key) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        _rows(count, now, due_in),
    )
    conn.commit()
    conn.close()


def _rows(count: int, now: float, due_in: float) -> Any:
    """Unfinished jobs spread over a minute of due times, as a long outage leaves them."""
    for i in range(count):
        yield (
            f"s{i:09d}",
            "separation",
            "ids",
            f"separate-vocals:gen{i}:aud{i}",
            "separate-vocals",
            1000 + i % 50,
            42,
            7,
            f"gen{i}",
            f"aud{i}",
            f"task-bench-{i}",
            "submitted",
            now + due_in + (i % 600) / 10,
            now + 36000,
            f"hash{i}",
            now,
            now,
            f"s{i:09d}",
        )


async def fill_postgresql(url: str, count: int, due_in: float) -> float:
    """Create the schema through the real store, then ``COPY`` the jobs in; seconds taken."""
    import asyncpg

    from storage.factory import postgresql_dsn
    from storage.postgres import PostgresJobStore

    dsn, schema = postgresql_dsn(url)
    store = PostgresJobStore(dsn, schema=schema)
    await store.open()
    await store.close()
    began = time.perf_counter()
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema or "public"})
    try:
        await conn.copy_records_to_table(
            "jobs",
            records=_rows(count, time.time(), due_in),
            columns=[
                "id",
                "kind",
                "source_kind",
                "source_key",
                "model",
                "requester_id",
                "channel_id",
                "guild_id",
                "source_task_id",
                "source_audio_id",
                "vidgo_task_id",
                "state",
                "due_at",
                "deadline_at",
                "callback_token_hash",
                "created_at",
                "updated_at",
                "callback_key",
            ],
        )
        await conn.execute("ANALYZE jobs")
    finally:
        await conn.close()
    return time.perf_counter() - began


def child(database: str, vidgo_url: str, rate: float) -> None:
    """Run the engine until stdin closes; print one JSON line when resumed."""
    import aiohttp

    from bot.engine import EngineConfig, JobEngine
    from bot.separation import SeparationKind
    from bot.vidgo.client import VidgoClient
    from storage.factory import store_for_url

    class NoDelivery:
        async def deliver(self, job: Any) -> int | None:
            return None

        async def show_progress(self, job: Any) -> None:
            return None

    async def main() -> None:
        began = time.perf_counter()
        store = store_for_url(database)
        await store.open()
        async with aiohttp.ClientSession() as session:
            client = VidgoClient(session, vidgo_url, "bench-key", rate_per_second=rate)
            engine = JobEngine(
                store,
                client,
                NoDelivery(),
                EngineConfig(public_url="https://bench.invalid"),
                kinds=[SeparationKind(client)],
            )
            await engine.start()
            await asyncio.sleep(0)  # let the dispatcher take its first look
            resumed = time.perf_counter() - began
            sys.stdout.write(json.dumps({"resume_s": resumed}) + "\n")
            sys.stdout.flush()
            await asyncio.to_thread(sys.stdin.read)
            await engine.stop(grace=1)
        await store.close()

    asyncio.run(main())


async def _spawn_child(database: str, vidgo_url: str, rate: float) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.scale",
        "--child",
        database,
        vidgo_url,
        str(rate),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _rss_mb(pid: int) -> float:
    pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return pages * PAGE / 1_048_576


class Backend:
    """Where one size is measured: a SQLite file or a PostgreSQL schema of its own."""

    def __init__(self, postgresql: str | None, tmp: Path) -> None:
        self.postgresql = postgresql
        if postgresql is None:
            self.path = tmp / "scale.sqlite3"
            self.url = f"sqlite:///{self.path}"
            self.schema = ""
        else:
            self.schema = f"bench_scale_{secrets.token_hex(4)}"
            joiner = "&" if "?" in postgresql else "?"
            self.url = f"{postgresql}{joiner}schema={self.schema}"

    async def fill(self, count: int, due_in: float) -> float:
        began = time.perf_counter()
        if self.postgresql is None:
            await fill(self.path, count, due_in)
            return time.perf_counter() - began
        return await fill_postgresql(self.url, count, due_in)

    async def make_everything_due(self) -> float:
        """Every job due now (as after a long outage); seconds the UPDATE took."""
        began = time.perf_counter()
        if self.postgresql is None:
            conn = sqlite3.connect(self.path, timeout=30)
            conn.execute("UPDATE jobs SET due_at = ? WHERE due_at IS NOT NULL", (time.time(),))
            conn.commit()
            conn.close()
            return time.perf_counter() - began
        import asyncpg

        from storage.postgres import due_channel

        conn = await asyncpg.connect(self.postgresql, server_settings={"search_path": self.schema})
        try:
            now = time.time()
            await conn.execute("UPDATE jobs SET due_at = $1 WHERE due_at IS NOT NULL", now)
            # What another process's write announces: the running child hears it on LISTEN.
            await conn.execute("SELECT pg_notify($1, $2)", due_channel(self.schema), f"{now!r} x")
        finally:
            await conn.close()
        return time.perf_counter() - began

    async def drop(self) -> None:
        if self.postgresql is None:
            return
        import asyncpg

        conn = await asyncpg.connect(self.postgresql)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        finally:
            await conn.close()


async def measure(
    size: int, idle: float, busy: float, rate: float, postgresql: str | None
) -> dict[str, Any]:
    from tests.fakes.vidgo import FakeVidgo

    with tempfile.TemporaryDirectory() as tmp:
        backend = Backend(postgresql, Path(tmp))
        vidgo = FakeVidgo(api_key="bench-key")
        try:
            fill_s = await backend.fill(size, due_in=idle + 120)
            await vidgo.start()
            spawned = time.perf_counter()
            proc = await _spawn_child(backend.url, vidgo.base_url, rate)
            assert proc.stdout is not None and proc.stdin is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 120)
            resume_s = json.loads(line)["resume_s"]
            process_ready_s = time.perf_counter() - spawned
            rss = _rss_mb(proc.pid)
            await asyncio.sleep(1.0)  # start-up's own work settles (first heartbeat excluded)
            cpu0 = _cpu_seconds(proc.pid)
            calls0 = len(vidgo.requests)
            await asyncio.sleep(idle)
            idle_cpu = (_cpu_seconds(proc.pid) - cpu0) / idle * 100
            idle_calls = len(vidgo.requests) - calls0
            idle_rss = _rss_mb(proc.pid)
            update_s = await backend.make_everything_due()
            if postgresql is None:
                # One process owns the file: an outage-recovery restart is what makes the
                # bot see the change, so restart it the way an operator would.
                proc.stdin.close()
                await asyncio.wait_for(proc.wait(), 30)
                proc = await _spawn_child(backend.url, vidgo.base_url, rate)
                assert proc.stdout is not None and proc.stdin is not None
                await asyncio.wait_for(proc.stdout.readline(), 120)
            before = len(vidgo.requests)
            cpu1 = _cpu_seconds(proc.pid)
            await asyncio.sleep(busy)
            calls = len(vidgo.requests) - before
            busy_cpu = (_cpu_seconds(proc.pid) - cpu1) / busy * 100
            busy_rss = _rss_mb(proc.pid)
            proc.stdin.close()
            await asyncio.wait_for(proc.wait(), 60)
        finally:
            await vidgo.close()
            await backend.drop()
    return {
        "backend": "sqlite" if postgresql is None else "postgresql",
        "jobs": size,
        "fill_s": fill_s,
        "resume_s": resume_s,
        "process_ready_s": process_ready_s,
        "rss_mb": rss,
        "idle_cpu_pct": idle_cpu,
        "idle_vidgo_calls": idle_calls,
        "idle_rss_mb": idle_rss,
        "make_due_s": update_s,
        "busy_vidgo_calls_per_min": calls / busy * 60,
        "busy_cpu_pct": busy_cpu,
        "busy_rss_mb": busy_rss,
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], float(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=None)
    parser.add_argument("--database", default=None, help="postgresql://… (default: SQLite)")
    parser.add_argument("--idle", type=float, default=30.0)
    parser.add_argument("--busy", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=5.0, help="VIDGO_RATE_PER_SECOND")
    args = parser.parse_args()
    if args.sizes is None:
        args.sizes = [1_000_000] if args.database else [10_000, 100_000]
    rows = [
        asyncio.run(measure(n, args.idle, args.busy, args.rate, args.database)) for n in args.sizes
    ]
    head = f"{'jobs':>9}{'fill s':>8}{'resume s':>10}{'ready s':>9}{'RSS MB':>8}"
    print(head + f"{'idle CPU %':>12}{'idle calls':>12}{'calls/min':>11}{'busy CPU %':>12}")
    for r in rows:
        print(
            f"{r['jobs']:>9}{r['fill_s']:>8.1f}{r['resume_s']:>10.3f}"
            f"{r['process_ready_s']:>9.2f}{r['rss_mb']:>8.1f}{r['idle_cpu_pct']:>12.2f}"
            f"{r['idle_vidgo_calls']:>12}{r['busy_vidgo_calls_per_min']:>11.0f}"
            f"{r['busy_cpu_pct']:>12.1f}"
        )
    RESULTS.mkdir(exist_ok=True)
    name = "scale-postgresql.json" if args.database else "scale.json"
    (RESULTS / name).write_text(
        json.dumps(
            {
                "bench": "scale",
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "params": {k: v for k, v in vars(args).items() if k != "database"},
                "rows": rows,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
