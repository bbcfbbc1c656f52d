"""Crash soak: kill the real bot process at random moments and count what members received.

Run: ``.venv/bin/python -m bench.soak [--jobs 500] [--kills 10] [--seed 1]``
or, on PostgreSQL with two processes: ``... -m bench.soak --database postgresql://…``

The fake Discord and the fake Vidgo run in this process; ``python -m bot`` runs as a child
process pointed at them. Members run ``/separate`` with distinct links while Vidgo finishes
(or fails) tasks at random times and sends callbacks; the answers to some submits are lost
after Vidgo created the task (``--lost-answers``, a share of submits: timeouts, 502/504,
resets, unreadable replies); the bot is SIGKILLed ``--kills`` times and restarted each time.
At the end every job the bot accepted (a row in its database) must be in a final state and
have exactly one message at the fake Discord — its result or an explicit failure — found by
the job's nonce; no job may have made Vidgo create more than one task (*tasks per job* and
*paid tasks per succeeded job* must be 1.00); and ``PRAGMA integrity_check`` must say ok.
Interactions the bot never acknowledged because it was dead are counted as *lost* (Discord
shows the member "the application did not respond"; nothing was accepted).

On SQLite the soak also starts a second ``python -m bot run`` on the same file while the first
works: it must exit with status 4 (the instance lock) without logging in to Discord, and the
first must go on delivering.

With ``--database postgresql://…`` the soak runs **two** bot processes on a schema of its own
in that database (created, then dropped at the end): the fake Discord has two shards, one
server on each, and each process runs one shard. Each kill SIGKILLs one of the two at
random and restarts it; the survivor takes over the dead one's leased jobs. Vidgo's
callbacks reach the processes through a small round-robin balancer that skips a process
refusing connections, as a load balancer in front of real ones would. The same
accounting follows (the integrity line is then every row read back from the server).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

from bot.policy import GuildPolicy, save_policy
from storage.factory import postgresql_dsn
from storage.postgres import PostgresJobStore
from storage.sqlite import SqliteJobStore, integrity_ok
from tests.fakes.discord import FakeDiscord
from tests.fakes.vidgo import FakeVidgo

RESULTS = Path(__file__).resolve().parent / "results"
FINAL_STATES = ("delivered", "undeliverable", "cancelled")


@dataclass
class SoakReport:
    """What the soak saw."""

    invoked: int = 0
    accepted: int = 0
    lost_interactions: int = 0
    kills: int = 0
    delivered_once: int = 0
    duplicates: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    undeliverable: int = 0
    failed_outcomes: int = 0
    unconfirmed: int = 0
    unfinished: list[str] = field(default_factory=list)
    lost_answers: int = 0
    tasks: int = 0
    paid_tasks: int = 0
    succeeded: int = 0
    strays: int = 0
    integrity_ok: bool = False
    rule_violations: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # Where and how: "sqlite" (one process) or "postgresql" (two processes, one shard each).
    database: str = "sqlite"
    processes: int = 1
    # SQLite only: the exit status of a second `run` started on the same file (4 expected)
    # and whether it logged in to Discord (it must not).
    second_process_exit: int | None = None
    second_process_logins: int = 0

    @property
    def tasks_per_job(self) -> float:
        """Vidgo tasks created per accepted job (each soak job has its own source)."""
        return self.tasks / self.accepted if self.accepted else 0.0

    @property
    def paid_tasks_per_job(self) -> float:
        """Tasks Vidgo charged for (finished ones) per job that succeeded."""
        return self.paid_tasks / self.succeeded if self.succeeded else 0.0

    @property
    def ok(self) -> bool:
        """Every accepted job final and delivered exactly once, one task per job at most,
        nothing stray, database intact."""
        return (
            self.accepted > 0
            and not self.unfinished
            and self.delivered_once == self.accepted
            and not self.duplicates
            and not self.missing
            and self.strays == 0
            and self.tasks <= self.accepted
            and self.paid_tasks == self.succeeded
            and self.integrity_ok
            and (self.database != "sqlite" or self.second_process_exit == 4)
            and self.second_process_logins == 0
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bot_env(
    discord: FakeDiscord, vidgo: FakeVidgo, db_path: Path, guild_id: int, **overrides: str
) -> dict[str, str]:
    """Environment for ``python -m bot`` pointed at the two fakes, callbacks on."""
    port = _free_port()
    return {
        **os.environ,
        "DISCORD_TOKEN": discord.token,
        "DISCORD_API_BASE": discord.api_base,
        "DISCORD_GATEWAY_URL": discord.gateway_url,
        "VIDGO_API_KEY": vidgo.api_key,
        "VIDGO_BASE_URL": vidgo.base_url,
        "DATABASE_URL": f"sqlite:///{db_path}",
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "WEBHOOK_HOST": "127.0.0.1",
        "WEBHOOK_PORT": str(port),
        "DEV_GUILD_ID": str(guild_id),
        "LOG_LEVEL": "WARNING",
        "ADMIN_PORT": "0",  # any free port: runs side by side never collide on 8081
        **overrides,
    }


class BotProcess:
    """``python -m bot`` as a child process that can be killed and restarted."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self._env = env
        self._log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Start the bot."""
        log = self._log_path.open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", env=self._env, stdout=log, stderr=log
        )
        log.close()

    async def wait(self, within: float) -> int:
        """Wait (at most ``within`` seconds) for the process to end on its own; its status."""
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), within)

    async def kill(self) -> None:
        """SIGKILL: no clean-up of any kind."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()

    async def stop(self) -> None:
        """SIGTERM and wait (the clean shutdown path)."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                await self.kill()


async def lift_limits(db_path: Path, guild_id: int) -> None:
    """Turn the server's per-member limits off: one member sends every job of a benchmark."""
    store = SqliteJobStore(db_path)
    await store.open()
    try:
        policy = GuildPolicy(max_unfinished=0, daily_quota=0, cooldown_seconds=0)
        await save_policy(store, guild_id, policy, time.time())
    finally:
        await store.close()


async def lift_limits_postgresql(dsn: str, schema: str, guild_ids: list[int]) -> None:
    """:func:`lift_limits` for each server, in the soak's PostgreSQL schema (created here)."""
    store = PostgresJobStore(dsn, schema=schema, application_name="stemcord-soak")
    await store.open()
    try:
        policy = GuildPolicy(max_unfinished=0, daily_quota=0, cooldown_seconds=0)
        for guild_id in guild_ids:
            await save_policy(store, guild_id, policy, time.time())
    finally:
        await store.close()


LOSS_MODES = ("timeout", "502", "504", "reset", "garbage")


async def _vidgo_worker(
    vidgo: FakeVidgo,
    rng: random.Random,
    stop: asyncio.Event,
    lost_answers: float,
) -> None:
    """Finish (or now and then fail) each submitted task after a random delay; lose the
    answers of a share of submits after Vidgo created their task."""
    due: dict[str, float] = {}
    seen_submits = 0
    while not stop.is_set():
        if vidgo.submit_count > seen_submits:
            new = vidgo.submit_count - seen_submits
            seen_submits = vidgo.submit_count
            # Roughly that share of the submits that follow lose their answer.
            losses = sum(1 for _ in range(new) if rng.random() < lost_answers)
            if losses:
                vidgo.lose_answer_next(
                    losses, rng.choice(LOSS_MODES), delay=3.0, path_prefix="/api/generate/submit"
                )
        now = time.monotonic()
        for task_id, task in list(vidgo.tasks.items()):
            if task.status in ("finished", "failed"):
                continue
            if task_id not in due:
                due[task_id] = now + rng.uniform(0.2, 2.5)
            elif now >= due[task_id]:
                if rng.random() < 0.05:
                    await vidgo.fail(task_id, "The audio could not be processed (soak).")
                else:
                    await vidgo.finish(task_id)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.05)


JobRow = tuple[str, str, str | None, str | None]


async def _read_jobs_postgresql(dsn: str, schema: str) -> list[JobRow]:
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        if not await conn.fetchval("SELECT to_regclass('jobs') IS NOT NULL"):
            return []
        rows = await conn.fetch("SELECT id, state, outcome, error_kind FROM jobs")
        return [(str(r[0]), str(r[1]), r[2], r[3]) for r in rows]
    finally:
        await conn.close()


async def _drop_schema(dsn: str, schema: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")  # a generated name
    finally:
        await conn.close()


def _read_jobs(db_path: Path) -> list[tuple[str, str, str | None, str | None]]:
    if not db_path.exists():
        return []
    conn = sqlite3.connect(db_path, timeout=30)
    try:
        return [
            (str(r[0]), str(r[1]), r[2], r[3])
            for r in conn.execute("SELECT id, state, outcome, error_kind FROM jobs")
        ]
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


async def run_soak(
    *,
    jobs: int,
    kills: int,
    seed: int,
    workdir: Path,
    settle_timeout: float = 120.0,
    lost_answers: float = 0.1,
) -> SoakReport:
    """Run one soak; return the accounting."""
    rng = random.Random(seed)
    report = SoakReport()
    began = time.monotonic()
    db_path = workdir / "soak.sqlite3"
    async with (
        FakeDiscord() as discord,
        # Vidgo's own callback retry schedule (1, 2, 4 s): a callback that finds the bot dead
        # is retried while it restarts.
        FakeVidgo(api_key="soak-key", callback_retry_delays=(1.0, 2.0, 4.0)) as vidgo,
    ):
        guild = discord.add_guild()
        member = discord.add_user(name="singer")
        env = bot_env(
            discord,
            vidgo,
            db_path,
            guild.id,
            POLL_INTERVAL_SECONDS="0.5",
            POLL_MAX_INTERVAL_SECONDS="1.5",
            POLL_MAX_INTERVAL_WITH_CALLBACKS_SECONDS="3",
            VIDGO_RATE_PER_SECOND="500",
            VIDGO_MAX_CONCURRENCY="32",
            # Lost answers are resolved by the callback within seconds here; a submit that
            # died with the process before reaching Vidgo waits this long, then fails.
            VIDGO_TIMEOUT_SECONDS="1",
            SUBMIT_CONFIRM_GRACE_SECONDS="15",
        )
        bot = BotProcess(env, workdir / "bot.log")
        stop = asyncio.Event()
        worker = asyncio.create_task(_vidgo_worker(vidgo, rng, stop, lost_answers))
        kill_after = set(rng.sample(range(1, jobs), min(kills, jobs - 1)))
        try:
            await lift_limits(db_path, guild.id)
            await bot.start()
            await discord.wait_until_ready(60)
            await discord.wait_until(lambda: guild.id in discord.synced_commands, 30)
            for i in range(jobs):
                await discord.invoke_slash(
                    guild_id=guild.id,
                    channel_id=guild.channel_id,
                    user_id=member.id,
                    name="separate",
                    options=[{"name": "link", "value": f"https://cdn.example.org/soak/{i}.mp3"}],
                )
                report.invoked += 1
                await asyncio.sleep(rng.uniform(0.0, 0.02))
                if i == jobs // 3 and report.second_process_exit is None:
                    # A second bot on the same file, while this one works: refused.
                    (
                        report.second_process_exit,
                        report.second_process_logins,
                    ) = await _second_process(env, workdir, discord)
                if i in kill_after:
                    await asyncio.sleep(rng.uniform(0.0, 0.05))
                    await bot.kill()
                    report.kills += 1
                    await asyncio.sleep(rng.uniform(0.0, 1.0))  # callbacks bounce meanwhile
                    await bot.start()
                    await discord.wait_until_ready(60)
            # Let everything accepted reach a final state.
            deadline = time.monotonic() + settle_timeout
            while time.monotonic() < deadline:
                rows = _read_jobs(db_path)
                if rows and all(state in FINAL_STATES for _, state, _, _ in rows):
                    break
                await asyncio.sleep(0.25)
            await asyncio.sleep(0.5)  # a last in-flight edit may still land
            await bot.stop()
        finally:
            stop.set()
            await worker
            await bot.kill()

        _account(report, _read_jobs(db_path), vidgo, discord)
        report.integrity_ok = integrity_ok(db_path)
    report.seconds = time.monotonic() - began
    return report


def _account(
    report: SoakReport, rows: list[JobRow], vidgo: FakeVidgo, discord: FakeDiscord
) -> None:
    """Fill the report from the jobs the database holds and what the fakes saw."""
    report.accepted = len(rows)
    report.lost_interactions = report.invoked - report.accepted
    report.unfinished = [job_id for job_id, state, _, _ in rows if state not in FINAL_STATES]
    report.undeliverable = sum(1 for _, state, _, _ in rows if state == "undeliverable")
    report.failed_outcomes = sum(1 for _, _, outcome, _ in rows if outcome in ("failed", "expired"))
    report.unconfirmed = sum(1 for _, _, _, kind in rows if kind == "unconfirmed")
    report.succeeded = sum(1 for _, _, outcome, _ in rows if outcome == "succeeded")
    report.tasks = len(vidgo.tasks)
    report.lost_answers = vidgo.lost_answers
    report.paid_tasks = vidgo.paid_tasks
    counts: Counter[str] = Counter()
    for messages in discord.messages.values():
        for message in messages:
            nonce = str(message.nonce or "")
            if nonce.startswith("stemcord-") and not message.deleted:
                counts[nonce.removeprefix("stemcord-")] += 1
    job_ids = {job_id for job_id, _, _, _ in rows}
    for job_id in job_ids:
        n = counts.get(job_id, 0)
        if n == 1:
            report.delivered_once += 1
        elif n == 0:
            report.missing.append(job_id)
        else:
            report.duplicates[job_id] = n
    report.strays = sum(n for job_id, n in counts.items() if job_id not in job_ids)
    report.rule_violations = list(discord.rule_violations)


def _logins(discord: FakeDiscord) -> int:
    return sum(1 for r in discord.requests if r.path == "/users/@me")


async def _second_process(
    env: dict[str, str], workdir: Path, discord: FakeDiscord
) -> tuple[int, int]:
    """Start another `run` on the same SQLite file: its exit status and its Discord logins."""
    before = _logins(discord)
    second = BotProcess({**env, "ADMIN_PORT": "0"}, workdir / "second.log")
    await second.start()
    try:
        status = await second.wait(30)
    finally:
        await second.kill()
    return status, _logins(discord) - before


class CallbackBalancer:
    """A small load balancer for Vidgo's callbacks, as in front of real processes: each
    request goes to the next backend in turn, and to the one after when a backend refuses
    the connection (it is dead or restarting). 502 only when none answers."""

    def __init__(self, ports: list[int]) -> None:
        self._ports = ports
        self._turn = 0
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self.port = 0

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1."""
        app = web.Application()
        app.router.add_post("/{path:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._http = aiohttp.ClientSession()

    async def close(self) -> None:
        """Stop listening."""
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._http is not None
        body = await request.read()
        self._turn += 1
        order = [self._ports[(self._turn + i) % len(self._ports)] for i in range(len(self._ports))]
        for port in order:
            try:
                async with self._http.post(
                    f"http://127.0.0.1:{port}{request.path_qs}",
                    data=body,
                    headers={"Content-Type": request.content_type},
                    timeout=aiohttp.ClientTimeout(total=10),
                ) as response:
                    return web.Response(status=response.status, body=await response.read())
            except (aiohttp.ClientConnectionError, TimeoutError):
                continue
        return web.Response(status=502, text="no backend answered")


def _guild_on(shard: int, shard_count: int = 2) -> int:
    """A guild id whose events belong to ``shard`` (Discord: ``(id >> 22) % shard_count``)."""
    return ((4_000_000 + shard) << 22) | 3


async def run_fleet_soak(
    *,
    database_url: str,
    jobs: int,
    kills: int,
    seed: int,
    workdir: Path,
    settle_timeout: float = 120.0,
    lost_answers: float = 0.1,
) -> SoakReport:
    """Two bot processes, one shard each, on a fresh schema of ``database_url``; each kill
    SIGKILLs one of them at random and restarts it. The schema is dropped at the end."""
    rng = random.Random(seed)
    report = SoakReport(database="postgresql", processes=2)
    began = time.monotonic()
    dsn, _ = postgresql_dsn(database_url)
    schema = f"soak_{seed}_{os.getpid()}_{rng.randrange(1 << 30):x}"
    url = f"{dsn}{'&' if '?' in dsn else '?'}schema={schema}"
    try:
        async with (
            FakeDiscord(shard_count=2) as discord,
            FakeVidgo(api_key="soak-key", callback_retry_delays=(1.0, 2.0, 4.0)) as vidgo,
        ):
            guilds = [discord.add_guild(_guild_on(shard)) for shard in (0, 1)]
            member = discord.add_user(name="singer")
            ports = [_free_port(), _free_port()]
            while ports[1] == ports[0]:
                ports[1] = _free_port()
            balancer = CallbackBalancer(ports)
            await balancer.start()
            bots = []
            for shard in (0, 1):
                env = bot_env(
                    discord,
                    vidgo,
                    workdir / "unused.sqlite3",
                    guilds[shard].id,
                    DATABASE_URL=url,
                    SHARD_COUNT="2",
                    SHARD_IDS=str(shard),
                    WEBHOOK_PORT=str(ports[shard]),
                    # Behind one balancer, as in production: half the callbacks reach the
                    # process that did not submit the job, and none is lost to a dead one.
                    PUBLIC_URL=f"http://127.0.0.1:{balancer.port}",
                    POLL_INTERVAL_SECONDS="0.5",
                    POLL_MAX_INTERVAL_SECONDS="1.5",
                    POLL_MAX_INTERVAL_WITH_CALLBACKS_SECONDS="3",
                    VIDGO_RATE_PER_SECOND="500",
                    VIDGO_MAX_CONCURRENCY="32",
                    VIDGO_TIMEOUT_SECONDS="1",
                    SUBMIT_CONFIRM_GRACE_SECONDS="15",
                )
                bots.append(BotProcess(env, workdir / f"bot-{shard}.log"))
            stop = asyncio.Event()
            worker = asyncio.create_task(_vidgo_worker(vidgo, rng, stop, lost_answers))
            kill_after = set(rng.sample(range(1, jobs), min(kills, jobs - 1)))
            try:
                await lift_limits_postgresql(dsn, schema, [g.id for g in guilds])
                await asyncio.gather(*(bot.start() for bot in bots))
                await discord.wait_until_ready(60)
                for guild in guilds:
                    await discord.wait_until(lambda g=guild: g.id in discord.synced_commands, 30)
                for i in range(jobs):
                    guild = guilds[i % 2]
                    await discord.invoke_slash(
                        guild_id=guild.id,
                        channel_id=guild.channel_id,
                        user_id=member.id,
                        name="separate",
                        options=[
                            {"name": "link", "value": f"https://cdn.example.org/soak/{i}.mp3"}
                        ],
                    )
                    report.invoked += 1
                    await asyncio.sleep(rng.uniform(0.0, 0.02))
                    if i in kill_after:
                        victim = rng.randrange(2)
                        await asyncio.sleep(rng.uniform(0.0, 0.05))
                        await bots[victim].kill()
                        report.kills += 1
                        await asyncio.sleep(rng.uniform(0.0, 1.0))
                        await bots[victim].start()
                        await discord.wait_until_ready(60, shard=victim)
                deadline = time.monotonic() + settle_timeout
                while time.monotonic() < deadline:
                    rows = await _read_jobs_postgresql(dsn, schema)
                    if rows and all(state in FINAL_STATES for _, state, _, _ in rows):
                        break
                    await asyncio.sleep(0.25)
                await asyncio.sleep(0.5)
                await asyncio.gather(*(bot.stop() for bot in bots))
            finally:
                stop.set()
                await worker
                for bot in bots:
                    await bot.kill()
                await balancer.close()
            rows = await _read_jobs_postgresql(dsn, schema)
            _account(report, rows, vidgo, discord)
            # Every row was read back from the server (PostgreSQL keeps its own pages whole).
            report.integrity_ok = len(rows) == report.accepted
    finally:
        await _drop_schema(dsn, schema)
    report.seconds = time.monotonic() - began
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--lost-answers", type=float, default=0.1)
    parser.add_argument(
        "--database",
        default="sqlite",
        help="sqlite (one process, the default) or a postgresql:// URL (two processes on a "
        "schema of their own there, dropped afterwards)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.database == "sqlite":
            report = asyncio.run(
                run_soak(
                    jobs=args.jobs,
                    kills=args.kills,
                    seed=args.seed,
                    workdir=Path(tmp),
                    lost_answers=args.lost_answers,
                )
            )
        else:
            report = asyncio.run(
                run_fleet_soak(
                    database_url=args.database,
                    jobs=args.jobs,
                    kills=args.kills,
                    seed=args.seed,
                    workdir=Path(tmp),
                    lost_answers=args.lost_answers,
                )
            )
    data: dict[str, Any] = asdict(report)
    print(f"{'database':<20}{report.database:>12}")
    print(f"{'processes':<20}{report.processes:>12}")
    print(f"{'seed':<20}{args.seed:>12}")
    for key in ("invoked", "accepted", "lost_interactions", "kills", "delivered_once"):
        print(f"{key:<20}{data[key]:>12}")
    print(f"{'duplicates':<20}{len(report.duplicates):>12}")
    print(f"{'missing':<20}{len(report.missing):>12}")
    print(f"{'strays':<20}{report.strays:>12}")
    print(f"{'unfinished':<20}{len(report.unfinished):>12}")
    print(f"{'lost submit answers':<20}{report.lost_answers:>12}")
    print(f"{'tasks per job':<20}{report.tasks_per_job:>12.2f}")
    print(f"{'paid tasks per job':<20}{report.paid_tasks_per_job:>12.2f}")
    print(f"{'failure messages':<20}{report.failed_outcomes:>12}")
    print(f"{'  unconfirmed':<20}{report.unconfirmed:>12}")
    print(f"{'undeliverable':<20}{report.undeliverable:>12}")
    if report.database == "sqlite":
        print(f"{'integrity_check':<20}{'ok' if report.integrity_ok else 'FAILED':>12}")
        second = report.second_process_exit
        print(f"{'second run exits':<20}{'-' if second is None else second:>12}")
    else:
        print(f"{'rows read back':<20}{'ok' if report.integrity_ok else 'FAILED':>12}")
    print(f"{'seconds':<20}{report.seconds:>12.1f}")
    print("exactly once:", "yes" if report.ok else "NO")
    RESULTS.mkdir(exist_ok=True)
    name = "soak.json" if report.database == "sqlite" else "soak-postgresql.json"
    (RESULTS / name).write_text(
        json.dumps(
            {
                "bench": "soak",
                "seed": args.seed,
                **data,
                "tasks_per_job": report.tasks_per_job,
                "paid_tasks_per_job": report.paid_tasks_per_job,
                "ok": report.ok,
            },
            indent=2,
        )
    )
    raise SystemExit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
