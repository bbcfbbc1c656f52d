"""API economy: Vidgo detail calls per completed job, with callbacks on and polling only.

Run: ``.venv/bin/python -m bench.economy [--jobs 100] [--min 2] [--max 20]``

The real engine (default poll timing: first poll after 5 s, x1.5 with jitter) runs against the
fake Vidgo over HTTP. Each task finishes after a random time between ``--min`` and ``--max``
seconds. Counted at the fake: detail reads of each job's own task, and reads of the source
generation (one per job, for the song's title and cover). Goal with callbacks: <= 1.1 reads of
the job's task per completed job.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp

from bot.engine import EngineConfig
from storage.jobstate import JobState
from tests.bot.engine_harness import Harness
from tests.fakes.vidgo import FakeVidgo

RESULTS = Path(__file__).resolve().parent / "results"


async def run(callbacks: bool, jobs: int, low: float, high: float) -> dict[str, Any]:
    rng = random.Random(7)
    vidgo = FakeVidgo()
    await vidgo.start()
    # Enough distinct generations that no request coalesces with another.
    audio_ids = [f"00000000-0000-4000-8000-{i:012d}" for i in range(jobs)]
    vidgo.add_generation(
        "BENCHGEN",
        [{"audio_id": a, "title": f"Song {i}", "duration": 180.0} for i, a in enumerate(audio_ids)],
    )
    try:
        async with aiohttp.ClientSession() as session:
            with tempfile.TemporaryDirectory() as tmp:
                h = Harness(
                    vidgo=vidgo,
                    db_path=Path(tmp) / "economy.sqlite3",
                    session=session,
                    config=replace(EngineConfig(), max_parallel=64),
                    callbacks=callbacks,
                )
                await h.start()
                from bot.separation import separation_request
                from bot.sources import StemChoice, plan_for, source_from_ids

                began = time.perf_counter()
                finishers = []
                job_ids = []
                for audio_id in audio_ids:
                    source = source_from_ids("BENCHGEN", audio_id)
                    assert h.engine is not None
                    sub = await h.engine.submit(
                        separation_request(
                            source,
                            plan_for(source, StemChoice.VOCALS),
                            requester_id=1,
                            channel_id=1,
                            guild_id=None,
                        )
                    )
                    job_ids.append(sub.job.id)
                    task_id = sub.job.vidgo_task_id or ""

                    async def finish_later(task_id: str = task_id) -> None:
                        await asyncio.sleep(rng.uniform(low, high))
                        await vidgo.finish(task_id)

                    finishers.append(asyncio.create_task(finish_later()))
                await asyncio.gather(*finishers)
                for job_id in job_ids:
                    await h.wait_state(job_id, JobState.DELIVERED, timeout=120)
                elapsed = time.perf_counter() - began
                await h.close()
                own = sum(t.detail_calls for t in vidgo.tasks.values())
    finally:
        await vidgo.close()
    source_reads = vidgo.detail_count - own
    return {
        "mode": "callbacks" if callbacks else "polling only",
        "jobs": jobs,
        "task_reads_per_job": own / jobs,
        "source_reads_per_job": source_reads / jobs,
        "seconds": elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--min", type=float, default=2.0)
    parser.add_argument("--max", type=float, default=20.0)
    args = parser.parse_args()
    rows = [asyncio.run(run(cb, args.jobs, args.min, args.max)) for cb in (True, False)]
    print(f"{'mode':<14}{'jobs':>6}{'task reads/job':>16}{'source reads/job':>18}{'seconds':>9}")
    for r in rows:
        print(
            f"{r['mode']:<14}{r['jobs']:>6}{r['task_reads_per_job']:>16.2f}"
            f"{r['source_reads_per_job']:>18.2f}{r['seconds']:>9.1f}"
        )
    print("goal with callbacks: task reads/job <= 1.1")
    RESULTS.mkdir(exist_ok=True)
    machine = {"cpus": os.cpu_count(), "python": platform.python_version()}
    (RESULTS / "economy.json").write_text(
        json.dumps(
            {"bench": "economy", "machine": machine, "params": vars(args), "rows": rows}, indent=2
        )
    )


if __name__ == "__main__":
    main()
