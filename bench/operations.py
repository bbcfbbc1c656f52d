"""Operations at scale: a /metrics scrape and a retention run on a large database.

Run: ``.venv/bin/python -m bench.operations [--unfinished 100000] [--finished 100000]``

A SQLite file gets ``--unfinished`` waiting jobs (as in ``bench.scale``) and ``--finished``
delivered jobs that ended 40 days ago. Measured:

* *scrape*: :meth:`StemcordMetrics.scrape` (jobs by state, the oldest unfinished job, the
  exposition), median and worst of ``--scrapes`` runs — the store's lock is held for the
  queries, so this is how long a scrape can delay other database work;
* *prune*: one retention run that deletes every finished job (in batches of 1,000), while
  another coroutine keeps querying the store: its worst wait is what a callback or a poll may
  wait behind during the first prune;
* the database file and WAL sizes before and after (in the JSON results).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.scale import fill
from bot.metrics import StemcordMetrics
from bot.retention import DAY, RetentionPolicy, prune_once
from storage.sqlite import SqliteJobStore

RESULTS = Path(__file__).resolve().parent / "results"


def add_finished(db_path: Path, count: int) -> None:
    """Bulk-insert delivered jobs that ended 40 days ago."""
    ended = time.time() - 40 * DAY
    conn = sqlite3.connect(db_path)
    conn.executemany(
        "INSERT INTO jobs (id, source_kind, source_key, model, requester_id, channel_id, "
        "guild_id, state, outcome, deadline_at, created_at, updated_at, finished_at) "
        "VALUES (?, 'ids', ?, 'separate-vocals', 1, 42, 7, 'delivered', 'succeeded', ?, ?, ?, ?)",
        (
            (f"d{i:09d}", f"separate-vocals:old{i}:a", ended, ended, ended, ended)
            for i in range(count)
        ),
    )
    conn.commit()
    conn.close()


def size_mb(path: Path) -> float:
    return path.stat().st_size / 1e6 if path.exists() else 0.0


async def measure(unfinished: int, finished: int, scrapes: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "ops.sqlite3"
        await fill(db, unfinished, 600.0)
        add_finished(db, finished)
        store = SqliteJobStore(db)
        await store.open()
        try:
            metrics = StemcordMetrics()
            times = []
            for _ in range(scrapes):
                start = time.perf_counter()
                await metrics.scrape(store)
                times.append(time.perf_counter() - start)
            before = {"db_mb": size_mb(db), "wal_mb": size_mb(Path(f"{db}-wal"))}
            # While retention runs, another coroutine keeps using the database: its worst
            # wait is how long a callback or a poll can be held up by the prune.
            waits: list[float] = []
            done = asyncio.Event()

            async def probe() -> None:
                while not done.is_set():
                    start = time.perf_counter()
                    await store.ping()
                    waits.append(time.perf_counter() - start)
                    await asyncio.sleep(0.001)

            prober = asyncio.create_task(probe())
            start = time.perf_counter()
            report = await prune_once(store, RetentionPolicy(), time.time())
            prune_s = time.perf_counter() - start
            done.set()
            await prober
            after = {"db_mb": size_mb(db), "wal_mb": size_mb(Path(f"{db}-wal"))}
            counts = await store.count_by_state()
        finally:
            await store.close()
    return {
        "unfinished": unfinished,
        "finished": finished,
        "scrape_median_ms": statistics.median(times) * 1000,
        "scrape_max_ms": max(times) * 1000,
        "prune_s": prune_s,
        "pruned": report.jobs,
        "probe_wait_max_ms": max(waits) * 1000,
        "probe_wait_median_ms": statistics.median(waits) * 1000,
        "checkpointed": report.checkpointed,
        "left": {state.value: n for state, n in counts.items()},
        "before": before,
        "after": after,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unfinished", type=int, default=100_000)
    parser.add_argument("--finished", type=int, default=100_000)
    parser.add_argument("--scrapes", type=int, default=20)
    args = parser.parse_args()
    row = asyncio.run(measure(args.unfinished, args.finished, args.scrapes))
    print(
        f"{row['unfinished']} unfinished + {row['finished']} finished jobs: "
        f"scrape median {row['scrape_median_ms']:.1f} ms (max {row['scrape_max_ms']:.1f}); "
        f"prune {row['pruned']} in {row['prune_s']:.2f} s "
        f"(other queries waited at most {row['probe_wait_max_ms']:.1f} ms)"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "operations.json").write_text(
        json.dumps(
            {
                "bench": "operations",
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "params": vars(args),
                "row": row,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
