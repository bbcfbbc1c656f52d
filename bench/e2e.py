"""End to end: from Vidgo's callback POST to the result message at Discord.

Run: ``.venv/bin/python -m bench.e2e [--rates 50 200 1000] [--seconds 2]``

The real bot runs as ``python -m bot`` against the fake Discord and the fake Vidgo (both in
this process). First, enough ``/separate`` jobs are submitted for every rate. Then, for each
offered rate, Vidgo finishes that many tasks per second for ``--seconds`` (each finish sends
its callback), and the time from the callback being sent to the result message being stored
at the fake Discord is measured per job. Goal: p99 <= 50 ms at 200 jobs/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.soak import BotProcess, bot_env, lift_limits
from tests.fakes.discord import FakeDiscord
from tests.fakes.vidgo import FakeVidgo

RESULTS = Path(__file__).resolve().parent / "results"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _task_to_job(db_path: Path) -> dict[str, str]:
    conn = sqlite3.connect(db_path, timeout=30)
    try:
        return {
            str(task): str(job)
            for job, task in conn.execute(
                "SELECT id, vidgo_task_id FROM jobs WHERE vidgo_task_id IS NOT NULL"
            )
        }
    finally:
        conn.close()


async def run(rates: list[int], seconds: float, workdir: Path) -> list[dict[str, Any]]:
    """Measure each offered rate; return one row per rate."""
    db_path = workdir / "e2e.sqlite3"
    arrivals: dict[str, float] = {}
    async with FakeDiscord() as discord, FakeVidgo(api_key="e2e-key") as vidgo:

        def time_arrival(message: Any) -> None:
            nonce = str(message.nonce or "")
            if nonce.startswith("stemcord-"):
                arrivals.setdefault(nonce.removeprefix("stemcord-"), time.perf_counter())

        discord.message_observers.append(time_arrival)
        guild = discord.add_guild()
        member = discord.add_user(name="singer")
        # Polls far away: completion must come from the callback.
        env = bot_env(
            discord,
            vidgo,
            db_path,
            guild.id,
            POLL_INTERVAL_SECONDS="600",
            VIDGO_RATE_PER_SECOND="5000",
            VIDGO_MAX_CONCURRENCY="64",
        )
        bot = BotProcess(env, workdir / "bot.log")
        await lift_limits(db_path, guild.id)
        await bot.start()
        rows: list[dict[str, Any]] = []
        try:
            await discord.wait_until_ready(60)
            await discord.wait_until(lambda: guild.id in discord.synced_commands, 30)
            total = sum(int(rate * seconds) for rate in rates)
            for i in range(total):
                await discord.invoke_slash(
                    guild_id=guild.id,
                    channel_id=guild.channel_id,
                    user_id=member.id,
                    name="separate",
                    options=[{"name": "link", "value": f"https://cdn.example.org/e2e/{i}.mp3"}],
                )
                if i % 50 == 49:
                    await discord.wait_until(lambda i=i: len(vidgo.tasks) >= i - 10, 60)
            await discord.wait_until(lambda: len(vidgo.tasks) >= total, 120)
            await asyncio.sleep(1.0)
            task_ids = list(vidgo.tasks)
            mapping = _task_to_job(db_path)
            for rate in rates:
                count = int(rate * seconds)
                batch, task_ids = task_ids[:count], task_ids[count:]
                sent: dict[str, float] = {}
                start = time.perf_counter()
                for k, task_id in enumerate(batch):
                    target = start + k / rate
                    delay = target - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    sent[mapping[task_id]] = time.perf_counter()
                    await vidgo.finish(task_id)
                await discord.wait_until(lambda sent=sent: all(j in arrivals for j in sent), 120)
                latencies = [arrivals[j] - t for j, t in sent.items()]
                rows.append(
                    {
                        "offered_jobs_per_s": rate,
                        "jobs": count,
                        "p50_ms": _percentile(latencies, 0.5) * 1000,
                        "p99_ms": _percentile(latencies, 0.99) * 1000,
                        "max_ms": max(latencies) * 1000,
                    }
                )
                await asyncio.sleep(0.5)
        finally:
            await bot.stop()
        rows_violations = list(discord.rule_violations)
    for row in rows:
        row["rule_violations"] = len(rows_violations)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=int, nargs="+", default=[50, 200, 1000])
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = asyncio.run(run(args.rates, args.seconds, Path(tmp)))
    print(f"{'jobs/s':>8}{'jobs':>7}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for r in rows:
        print(
            f"{r['offered_jobs_per_s']:>8}{r['jobs']:>7}{r['p50_ms']:>9.1f}"
            f"{r['p99_ms']:>9.1f}{r['max_ms']:>9.1f}"
        )
    print("goal: p99 <= 50 ms at 200 jobs/s")
    RESULTS.mkdir(exist_ok=True)
    machine = {"cpus": os.cpu_count(), "python": platform.python_version()}
    (RESULTS / "e2e.json").write_text(
        json.dumps(
            {"bench": "e2e", "machine": machine, "params": vars(args), "rows": rows}, indent=2
        )
    )


if __name__ == "__main__":
    main()
