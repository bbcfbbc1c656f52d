"""Admission with per-member limits: what checking them inside the transaction costs.

Run: ``.venv/bin/python -m bench.admission [--jobs 5000] [--members 50] [--history 20000]``

Every admit runs on a real SQLite file (WAL) under ``BEGIN IMMEDIATE``. The same number of
requests is admitted twice, on fresh files that already hold ``--history`` finished jobs of the
same members: once with no limits, once with all three limits on (high enough that nothing is
refused, so both runs write the same rows). ``--members`` requests are in flight at once.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from storage.jobstate import JobState
from storage.records import AdmissionLimits, NewJob, SourceKind
from storage.sqlite import SqliteJobStore

GUILD = 1


def _job(index: int, member: int, prefix: str) -> NewJob:
    return NewJob(
        id=f"{prefix}{index:08d}",
        kind="separation",
        source_kind=SourceKind.URL,
        source_key=f"url:{prefix}:{index}",
        model="upload-and-separate-vocals",
        requester_id=member,
        channel_id=10,
        guild_id=GUILD,
        source_url=f"https://cdn.example.org/{index}.mp3",
        deadline_at=time.time() + 3600,
    )


async def _seed(store: SqliteJobStore, history: int, members: int) -> None:
    now = time.time() - 86400 * 3
    for index in range(history):
        admitted = await store.admit(_job(index, index % members, "h"), now, submit_lease_until=now)
        await store.record_outcome(admitted.job.id, JobState.FAILED, now, last_error="old")


async def _run(
    path: Path, jobs: int, members: int, history: int, limits: AdmissionLimits | None
) -> float:
    store = SqliteJobStore(path)
    await store.open()
    try:
        await _seed(store, history, members)
        queue = list(range(jobs))

        async def member(m: int) -> None:
            while queue:
                index = queue.pop()
                now = time.time()
                await store.admit(
                    _job(index, m, "n"), now, submit_lease_until=now + 60, limits=limits
                )

        began = time.perf_counter()
        await asyncio.gather(*(member(m) for m in range(members)))
        return jobs / (time.perf_counter() - began)
    finally:
        await store.close()


async def main_async(jobs: int, members: int, history: int) -> None:
    limits = AdmissionLimits(max_unfinished=jobs, daily_quota=jobs, cooldown_seconds=0)
    with tempfile.TemporaryDirectory() as tmp:
        plain = await _run(Path(tmp) / "plain.sqlite3", jobs, members, history, None)
        limited = await _run(Path(tmp) / "limited.sqlite3", jobs, members, history, limits)
    print(f"admits/s without limits: {plain:,.0f}")
    print(f"admits/s with limits:    {limited:,.0f}  ({limited / plain:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--history", type=int, default=20000)
    args = parser.parse_args()
    asyncio.run(main_async(args.jobs, args.members, args.history))


if __name__ == "__main__":
    main()
