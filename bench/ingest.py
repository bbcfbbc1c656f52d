"""Callback ingest: valid-token callbacks per second vs a bare aiohttp handler, driven by wrk.

Run: ``.venv/bin/python -m bench.ingest [--seconds 5] [--rounds 3] [--connections 64]
[--jobs 2000] [--database postgresql://postgres@127.0.0.1:5432/test] [--no-pin]
[--profile out.svg] [--before <checkout>]``

Needs ``wrk`` (Debian: ``apt-get install -y wrk``); exits with a message when it is missing.

Two servers, each in its own process: a bare aiohttp handler that reads the body and answers
200, and Stemcord's real callback listener (:class:`bot.webhook.CallbackServer` in front of
:meth:`bot.engine.JobEngine.on_callback`) on a real store — a SQLite file, or with
``--database`` a PostgreSQL schema of its own (created, then dropped). The store holds
``--jobs`` unfinished (submitted, not leased) jobs, and every request carries the real
derived callback token (``<callback_key>.<HMAC>``) of one of them, varied request by request
by a Lua script. The dispatcher is not started: what is measured is ingest only (the detail
read that a callback asks for happens afterwards, off the request path).

wrk runs each server for ``--seconds`` in turn, alternating (bare, Stemcord, bare, …) for
``--rounds`` rounds after a warm-up of each, so both see the same machine load. The server
and wrk are pinned to different cores (``--no-pin`` to leave placement to the kernel) and
each run reports wrk's own CPU share and the server's: the server must be the bottleneck
(near 100 % of its core), not the generator. The ratio is Stemcord's median req/s over the
bare handler's median. Goals: >= 0.5x on SQLite, >= 0.3x on PostgreSQL. Each run also shows
the requests per second of the server's own CPU time, and their ratio is printed too: it
stays comparable when other work takes part of the server's core. ``--before <checkout>``
runs the listener of an earlier checkout as a third server, in turn with the other two, and
compares this code with it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import web

RESULTS = Path(__file__).resolve().parent / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")
BODY = json.dumps(
    {"code": 200, "msg": "success", "data": {"task_id": "bench-task", "status": "finished"}}
)

# One request per token in turn (each wrk thread starts at its own offset); the summary is
# printed as one JSON line the bench reads back.
LUA = r"""
local tokens = {}
local counter = 0
local threads = {}
local offset = 0

setup = function(thread)
  thread:set("offset", offset)
  offset = offset + 7919
  table.insert(threads, thread)
end

init = function(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  counter = tonumber(offset) or 0
  wrk.method = "POST"
  wrk.body = args[2]
  wrk.headers["Content-Type"] = "application/json"
end

request = function()
  counter = counter + 1
  return wrk.format(nil, "/vidgo/callback/" .. tokens[(counter % #tokens) + 1])
end

done = function(summary, latency, requests)
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "non2xx": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def _pin(core: int | None) -> None:
    if core is not None:
        os.sched_setaffinity(0, {core})


def _serve_bare(ready: Any, stop: Any, core: int | None) -> None:
    _pin(core)

    async def main() -> None:
        async def handler(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(body=b'{"ok": true}', content_type="application/json")

        app = web.Application()
        app.router.add_post("/vidgo/callback/{token}", handler)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        ready.put({"port": runner.addresses[0][1], "pid": os.getpid()})
        await asyncio.to_thread(stop.wait)
        await runner.cleanup()

    asyncio.run(main())


async def _seed(store: Any, count: int) -> None:
    """``count`` submitted, unleased jobs with callback keys, the way the engine makes them."""
    from storage.jobstate import JobState
    from storage.records import NewJob, SourceKind

    now = time.time()
    for i in range(count):
        job_id = f"bench{i:06d}"
        new = NewJob(
            id=job_id,
            kind="separation",
            source_kind=SourceKind.URL,
            source_key=f"url:https://cdn.example.org/{i}.mp3",
            model="upload-and-separate-vocals",
            requester_id=1000 + i % 50,
            channel_id=7,
            guild_id=42,
            source_url=f"https://cdn.example.org/{i}.mp3",
            deadline_at=now + 36000,
            callback_key=job_id,
        )
        admitted = await store.admit(new, now, submit_lease_until=now + 3600, owner="seed")
        job = await store.transition(
            job_id, JobState.SUBMITTED, now, lease=admitted.job.lease_id, vidgo_task_id=f"t{i}"
        )
        await store.reschedule(job_id, now, now + 3600, seen_callbacks=0, lease=job.lease_id)


def _serve_stemcord(ready: Any, stop: Any, core: int | None, setup: dict[str, Any]) -> None:
    _pin(core)
    from bot.engine import TOKEN_SECRET_NAME, EngineConfig, JobEngine, callback_token
    from bot.webhook import CallbackServer
    from storage.factory import store_for_url

    class NoDelivery:
        async def deliver(self, job: Any) -> int | None:
            return None

        async def show_progress(self, job: Any) -> None:
            return None

    class NoVidgo:
        async def get_task(self, task_id: str) -> Any:
            raise AssertionError("the dispatcher is not started in this bench")

        async def get_track(self, task_id: str, audio_id: str) -> Any:
            raise AssertionError("the dispatcher is not started in this bench")

    count = setup["jobs"]

    async def main() -> None:
        store = store_for_url(setup["database"])
        await store.open()
        await _seed(store, count)
        secret = await store.secret(TOKEN_SECRET_NAME)
        tokens = "".join(callback_token(secret, f"bench{i:06d}") + "\n" for i in range(count))
        await asyncio.to_thread(Path(setup["tokens"]).write_text, tokens)
        engine = JobEngine(
            store,
            NoVidgo(),
            NoDelivery(),
            EngineConfig(public_url="https://bench.invalid"),
            kinds=[],
        )
        server = CallbackServer(engine, host="127.0.0.1", port=0)
        await server.start()
        ready.put({"port": server.port, "pid": os.getpid()})
        await asyncio.to_thread(stop.wait)
        await server.stop()
        await store.close()

    asyncio.run(main())


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _wrk(port: int, seconds: float, args: argparse.Namespace, paths: dict[str, Path]) -> dict:
    """One wrk run; its summary, plus its own CPU time from the kernel's accounting."""
    core = args.wrk_core
    command = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{max(1, round(seconds))}s",
        "-s",
        str(paths["script"]),
        f"http://127.0.0.1:{port}",
        "--",
        str(paths["tokens"]),
        BODY,
    ]
    proc = subprocess.Popen(  # noqa: S603 - a fixed command line
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=(lambda: _pin(core)) if core is not None else None,  # noqa: PLW1509
    )
    assert proc.stdout is not None and proc.stderr is not None
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {err.strip() or out.strip()}")
    line = next((ln for ln in out.splitlines() if ln.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    summary = json.loads(line.removeprefix("BENCH "))
    duration = summary["duration_us"] / 1e6
    summary["rps"] = summary["requests"] / duration
    summary["wrk_cpu_pct"] = (usage.ru_utime + usage.ru_stime) / duration * 100
    return summary


class Side:
    """One server process, kept up for all of its runs."""

    def __init__(self, name: str, target: Any, args: tuple[Any, ...]) -> None:
        self.name = name
        ctx = mp.get_context("spawn")
        self._ready = ctx.Queue()
        self._stop = ctx.Event()
        self._proc = ctx.Process(target=target, args=(self._ready, self._stop, *args))
        self._proc.start()
        info = self._ready.get(timeout=600)
        self.port: int = info["port"]
        self.pid: int = info["pid"]

    def close(self) -> None:
        self._stop.set()
        self._proc.join(timeout=30)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join()


def _run(side: Side, seconds: float, args: argparse.Namespace, paths: dict[str, Path]) -> dict:
    cpu0 = _cpu_seconds(side.pid)
    began = time.perf_counter()
    row = _wrk(side.port, seconds, args, paths)
    wall = time.perf_counter() - began
    row["server_cpu_pct"] = (_cpu_seconds(side.pid) - cpu0) / wall * 100
    return row


def _wrk_version() -> str:
    done = subprocess.run(["wrk", "-v"], check=False, capture_output=True, text=True)  # noqa: S607
    return (done.stdout or done.stderr).split("\n")[0].strip()


def _schema_url(database: str, schema: str) -> str:
    joiner = "&" if "?" in database else "?"
    return f"{database}{joiner}schema={schema}"


async def _drop_schema(database: str, schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(database)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--database", default=None, help="postgresql://… (default: SQLite)")
    parser.add_argument(
        "--before",
        default=None,
        help="a checkout of earlier code (git worktree add --detach): its listener runs too, "
        "in turn with the others, on a store of its own",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and wrk")
    parser.add_argument(
        "--profile",
        default=None,
        help="py-spy the Stemcord side (.txt: collapsed stacks, or SVG)",
    )
    args = parser.parse_args()

    if shutil.which("wrk") is None:
        sys.exit("bench.ingest needs wrk: apt-get install -y wrk (Debian/Ubuntu)")
    cores = sorted(os.sched_getaffinity(0))
    pin = not args.no_pin and len(cores) >= 2
    server_core = cores[0] if pin else None
    args.wrk_core = cores[1] if pin else None

    with tempfile.TemporaryDirectory() as tmp:
        paths = {"script": Path(tmp) / "callbacks.lua", "tokens": Path(tmp) / "tokens.txt"}
        paths["script"].write_text(LUA)
        schema = None
        if args.database:
            schema = f"bench_ingest_{secrets.token_hex(4)}"
            database = _schema_url(args.database, schema)
            backend = "postgresql"
        else:
            database = f"sqlite:///{Path(tmp) / 'ingest.sqlite3'}"
            backend = "sqlite"
        bare = Side("bare aiohttp", _serve_bare, (server_core,))
        stem = Side(
            "stemcord ingest",
            _serve_stemcord,
            (server_core, {"database": database, "jobs": args.jobs, "tokens": paths["tokens"]}),
        )
        sides = [(bare, paths), (stem, paths)]
        schemas = [schema] if schema is not None else []
        if args.before:
            before_paths = {**paths, "tokens": Path(tmp) / "tokens-before.txt"}
            before_tokens = before_paths["tokens"]
            if args.database:
                schemas.append(f"bench_ingest_{secrets.token_hex(4)}")
                before_db = _schema_url(args.database, schemas[-1])
            else:
                before_db = f"sqlite:///{Path(tmp) / 'ingest-before.sqlite3'}"
            # The child imports this module, the bot and the store from the earlier checkout.
            sys.path.insert(0, str(Path(args.before).resolve()))
            try:
                earlier = Side(
                    "before",
                    _serve_stemcord,
                    (
                        server_core,
                        {"database": before_db, "jobs": args.jobs, "tokens": before_tokens},
                    ),
                )
            finally:
                sys.path.pop(0)
            sides.append((earlier, before_paths))
        runs: dict[str, list[dict[str, Any]]] = {side.name: [] for side, _ in sides}
        profiler = None
        try:
            for side, side_paths in sides:
                _run(side, 1.0, args, side_paths)  # warm-up
            if args.profile:
                spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
                fmt = "raw" if args.profile.endswith(".txt") else "flamegraph"
                command = [spy, "record", "-o", args.profile, "-p", str(stem.pid), "-r", "200"]
                profiler = subprocess.Popen(  # noqa: S603
                    [*command, "-f", fmt, "--threads"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            for _ in range(args.rounds):
                for side, side_paths in sides:
                    runs[side.name].append(_run(side, args.seconds, args, side_paths))
        finally:
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)
                profiler.wait()
            for side, _ in sides:
                side.close()
            for name in schemas:
                asyncio.run(_drop_schema(args.database, name))

    medians = {name: statistics.median(r["rps"] for r in rows) for name, rows in runs.items()}
    ratio = medians[stem.name] / medians[bare.name]
    placement = f"server core {server_core}, wrk core {args.wrk_core}" if pin else "no"
    print(
        f"backend {backend}; wrk -t{args.threads} -c{args.connections}, {args.seconds:g} s x "
        f"{args.rounds} alternating rounds; pinned: {placement}"
    )
    print(
        f"{'server':<18}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}{'errors':>8}"
        f"{'server CPU':>12}{'wrk CPU':>9}{'req/CPU-s':>11}"
    )
    for name, rows in runs.items():
        for r in rows:
            # Requests per second of the server's own CPU time: the same cost per request
            # even when other work took part of the server's core during the run.
            r["req_per_cpu_s"] = r["rps"] / max(r["server_cpu_pct"], 1e-9) * 100
            print(
                f"{name:<18}{r['rps']:>9.0f}{r['p50_us'] / 1000:>9.2f}{r['p99_us'] / 1000:>9.2f}"
                f"{r['non2xx']:>9}{r['socket_errors']:>8}{r['server_cpu_pct']:>11.0f}%"
                f"{r['wrk_cpu_pct']:>8.0f}%{r['req_per_cpu_s']:>11.0f}"
            )
    per_cpu = {
        name: statistics.median(r["req_per_cpu_s"] for r in rows) for name, rows in runs.items()
    }
    print(
        f"median req/s: bare {medians[bare.name]:.0f}, stemcord {medians[stem.name]:.0f}; "
        f"ratio {ratio:.2f}x (goal >= {0.3 if backend == 'postgresql' else 0.5:.1f}x)"
    )
    print(
        f"median req per server CPU-second: bare {per_cpu[bare.name]:.0f}, "
        f"stemcord {per_cpu[stem.name]:.0f}; ratio {per_cpu[stem.name] / per_cpu[bare.name]:.2f}x"
    )
    if "before" in runs:
        print(
            f"this code / before: req/s {medians[stem.name] / medians['before']:.2f}x, "
            f"req per server CPU-second {per_cpu[stem.name] / per_cpu['before']:.2f}x"
        )
    if any(r["non2xx"] for r in runs[stem.name]):
        print("WARNING: Stemcord answered some callbacks with a non-2xx status")

    RESULTS.mkdir(exist_ok=True)
    out = {
        "bench": "ingest",
        "backend": backend,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "loadavg_after": os.getloadavg(),
        },
        "wrk": _wrk_version(),
        "params": {k: v for k, v in vars(args).items() if k != "database"},
        "runs": runs,
        "median_rps": medians,
        "ratio": ratio,
        "median_req_per_cpu_s": per_cpu,
    }
    (RESULTS / f"ingest-{backend}.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
