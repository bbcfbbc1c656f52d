"""Several engine processes on one PostgreSQL schema: finished jobs per second at saturation.

Run: ``.venv/bin/python -m bench.processes --database postgresql://postgres@127.0.0.1:5432/test
[--processes 1 2] [--jobs 3000] [--rounds 2]``

For each process count N (alternating between the counts, ``--rounds`` times): a fresh
schema holds ``--jobs`` accepted link jobs, not yet due; N children each run a real
:class:`bot.engine.JobEngine` (its dispatcher, leases, the PostgreSQL store with its
``LISTEN``) against the fake Vidgo, which finishes every task the moment it is submitted,
and a delivery that records nothing (no Discord). Once every child is ready, all jobs are
made due in one ``UPDATE`` and announced on the store's channel, and the bench counts
delivered jobs until all are. Each job costs its engine a claim, a submit, a detail read,
the outcome and the delivery record (about ten statements and two HTTP calls).

Reported per N: finished jobs/s (all jobs over the time from the wake-up to the last one
delivered) and the CPU each part used meanwhile, in cores: the engine children together,
PostgreSQL's server processes, and this process (the fake Vidgo). The machine has two
cores; the CPU columns show which part runs out first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def child(url: str, vidgo_url: str) -> None:
    """One engine process until stdin closes; prints one line once it is running."""
    import aiohttp

    from bot.engine import EngineConfig, JobEngine
    from bot.separation import SeparationKind
    from bot.vidgo.client import VidgoClient
    from storage.factory import store_for_url

    class NoDelivery:
        async def deliver(self, job: Any) -> int | None:
            return 1

        async def show_progress(self, job: Any) -> None:
            return None

    async def main() -> None:
        store = store_for_url(url)
        await store.open()
        connector = aiohttp.TCPConnector(limit=64)
        async with aiohttp.ClientSession(connector=connector) as session:
            client = VidgoClient(
                session, vidgo_url, "bench-key", rate_per_second=100_000, max_concurrency=64
            )
            engine = JobEngine(
                store,
                client,
                NoDelivery(),
                # Polling only (no callbacks), the first poll almost at once: the fake
                # finishes tasks as they are submitted, so the engines are what is measured.
                EngineConfig(public_url=None, poll_interval=0.01, poll_max_interval=0.05),
                kinds=[SeparationKind(client)],
            )
            await engine.start()
            sys.stdout.write("ready\n")
            sys.stdout.flush()
            await asyncio.to_thread(sys.stdin.read)
            await engine.stop(grace=1)
        await store.close()

    asyncio.run(main())


def _cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _postgres_cpu() -> dict[int, float]:
    """CPU seconds of every PostgreSQL server process now (backends come and go)."""
    used = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in {"postgres", "postmaster"}:
                    used[int(entry.name)] = _cpu(int(entry.name))
            except OSError:
                continue
    return used


async def _seed(conn: Any, count: int) -> None:
    now = time.time()
    records = [
        (
            f"p{i:08d}",
            "separation",
            "url",
            f"url:https://cdn.example.org/{i}.mp3",
            "upload-and-separate-vocals",
            1000 + i % 50,
            7,
            42,
            f"https://cdn.example.org/{i}.mp3",
            "accepted",
            now + 3600,
            now + 36000,
            now,
            now,
            f"p{i:08d}",
        )
        for i in range(count)
    ]
    await conn.copy_records_to_table(
        "jobs",
        records=records,
        columns=[
            "id",
            "kind",
            "source_kind",
            "source_key",
            "model",
            "requester_id",
            "channel_id",
            "guild_id",
            "source_url",
            "state",
            "due_at",
            "deadline_at",
            "created_at",
            "updated_at",
            "callback_key",
        ],
    )
    await conn.execute("ANALYZE jobs")


async def measure(database: str, processes: int, jobs: int, limit: float) -> dict[str, Any]:
    """One run with ``processes`` engines; the figures of that run."""
    import asyncpg

    from storage.postgres import PostgresJobStore, due_channel
    from tests.fakes.vidgo import FakeVidgo

    schema = f"bench_procs_{secrets.token_hex(4)}"
    joiner = "&" if "?" in database else "?"
    url = f"{database}{joiner}schema={schema}"
    store = PostgresJobStore(database, schema=schema)
    await store.open()  # creates and migrates the schema
    await store.close()
    conn = await asyncpg.connect(database, server_settings={"search_path": schema})
    vidgo = FakeVidgo(api_key="bench-key", auto_finish_after=0.0)
    vidgo.send_callbacks = False
    await vidgo.start()
    children: list[asyncio.subprocess.Process] = []
    try:
        await _seed(conn, jobs)
        for _ in range(processes):
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.processes",
                "--child",
                url,
                vidgo.base_url,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            children.append(proc)
        for proc in children:
            assert proc.stdout is not None
            await asyncio.wait_for(proc.stdout.readline(), 60)
        pg = _postgres_cpu()
        cpu_children = sum(_cpu(p.pid) for p in children)
        cpu_self = time.process_time()
        began = time.perf_counter()
        now = time.time()
        await conn.execute("UPDATE jobs SET due_at = $1", now)
        await conn.execute("SELECT pg_notify($1, $2)", due_channel(schema), f"{now!r} bench")
        done = 0
        while done < jobs and time.perf_counter() - began < limit:
            await asyncio.sleep(0.25)
            done = await conn.fetchval("SELECT COUNT(*) FROM jobs WHERE state = 'delivered'")
        elapsed = time.perf_counter() - began
        used = {
            "engines": (sum(_cpu(p.pid) for p in children) - cpu_children) / elapsed,
            # A backend started during the run counts from zero.
            "postgresql": sum(t - pg.get(pid, 0.0) for pid, t in _postgres_cpu().items()) / elapsed,
            "fake_vidgo": (time.process_time() - cpu_self) / elapsed,
        }
    finally:
        for proc in children:
            if proc.stdin is not None:
                proc.stdin.close()
        for proc in children:
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
        await vidgo.close()
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()
    return {
        "processes": processes,
        "jobs": jobs,
        "delivered": done,
        "seconds": elapsed,
        "jobs_per_s": done / elapsed,
        "cpu_cores": used,
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", required=True, help="postgresql://…")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--limit", type=float, default=300.0, help="seconds per run at most")
    args = parser.parse_args()
    runs: dict[int, list[dict[str, Any]]] = {n: [] for n in args.processes}
    for _ in range(args.rounds):
        for n in args.processes:
            row = asyncio.run(measure(args.database, n, args.jobs, args.limit))
            runs[n].append(row)
            cores = row["cpu_cores"]
            print(
                f"{n} process(es): {row['delivered']}/{row['jobs']} jobs in "
                f"{row['seconds']:.1f} s = {row['jobs_per_s']:.0f} jobs/s; CPU cores: engines "
                f"{cores['engines']:.2f}, PostgreSQL {cores['postgresql']:.2f}, "
                f"fake Vidgo {cores['fake_vidgo']:.2f}; load {os.getloadavg()[0]:.2f}"
            )
    medians = {n: statistics.median(r["jobs_per_s"] for r in rows) for n, rows in runs.items()}
    base = medians[args.processes[0]]
    for n, value in medians.items():
        print(f"median {n} process(es): {value:.0f} jobs/s ({value / base:.2f}x)")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "processes.json").write_text(
        json.dumps(
            {
                "bench": "processes",
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "params": {k: v for k, v in vars(args).items() if k != "database"},
                "runs": {str(n): rows for n, rows in runs.items()},
                "median_jobs_per_s": {str(n): v for n, v in medians.items()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
