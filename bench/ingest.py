"""Callback ingest: valid-token callbacks per second into SQLite vs a bare aiohttp handler.

Run: ``.venv/bin/python -m bench.ingest [--seconds 5] [--concurrency 64] [--jobs 2000]``

Each server runs in its own process (the load generator must not share its core); both are
measured in the same run on the same machine, and the ratio is what counts (goal >= 0.3x).
The Stemcord side is the real :class:`bot.webhook.CallbackServer` and
:meth:`bot.engine.JobEngine.on_callback` on a real SQLite file: token lookup, the UPDATE that
records the callback, and the 200. The dispatcher is not started, so the measured path is
ingest only (the re-read from Vidgo happens afterwards, off the request path).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

RESULTS = Path(__file__).resolve().parent / "results"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, round(q * (len(ordered) - 1)))
    return ordered[index]


def _serve_bare(port_queue: Any, stop: Any) -> None:
    async def main() -> None:
        async def handler(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(body=b'{"ok": true}', content_type="application/json")

        app = web.Application()
        app.router.add_post("/vidgo/callback/{token}", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port_queue.put(runner.addresses[0][1])
        await asyncio.to_thread(stop.wait)
        await runner.cleanup()

    asyncio.run(main())


def _serve_stemcord(port_queue: Any, stop: Any, db_path: str, tokens: list[str]) -> None:
    from bot.engine import EngineConfig, JobEngine, hash_token
    from bot.webhook import CallbackServer
    from storage.records import NewJob, SourceKind
    from storage.sqlite import SqliteJobStore

    class NoDelivery:
        async def deliver(self, job: Any) -> int | None:
            return None

        async def show_progress(self, job: Any) -> None:
            return None

    async def main() -> None:
        store = SqliteJobStore(db_path)
        await store.open()
        now = time.time()
        for i, token in enumerate(tokens):
            new = NewJob(
                id=f"bench{i:05d}",
                kind="separation",
                source_kind=SourceKind.URL,
                source_key=f"k{i}",
                model="upload-and-separate-vocals",
                requester_id=1,
                channel_id=1,
                deadline_at=now + 3600,
                callback_token_hash=hash_token(token),
            )
            await store.admit(new, now, submit_lease_until=now + 3600)
            await store.update(new.id, now, due_at=now + 3600)
        engine = JobEngine(
            store,
            vidgo=None,  # type: ignore[arg-type]
            delivery=NoDelivery(),
            config=EngineConfig(public_url="https://bench.invalid"),
            kinds=[],
        )
        server = CallbackServer(engine, host="127.0.0.1", port=0)
        await server.start()
        port_queue.put(server.port)
        await asyncio.to_thread(stop.wait)
        await server.stop()
        await store.close()

    asyncio.run(main())


async def _load(port: int, tokens: list[str], seconds: float, concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    body = json.dumps({"code": 200, "data": {"task_id": "t", "status": "finished", "files": []}})
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(offset: int) -> None:
            i = offset
            while time.perf_counter() < deadline:
                token = tokens[i % len(tokens)]
                i += concurrency
                start = time.perf_counter()
                async with session.post(
                    f"http://127.0.0.1:{port}/vidgo/callback/{token}",
                    data=body,
                    headers={"Content-Type": "application/json"},
                ) as resp:
                    await resp.read()
                    statuses[resp.status] = statuses.get(resp.status, 0) + 1
                latencies.append(time.perf_counter() - start)

        began = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        elapsed = time.perf_counter() - began
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": _percentile(latencies, 0.5) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000 if latencies else float("nan"),
        "non_200": sum(n for s, n in statuses.items() if s != 200),
    }


def _run_side(
    target: Any, args: tuple[Any, ...], tokens: list[str], seconds: float, concurrency: int
) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    port_queue = ctx.Queue()
    stop = ctx.Event()
    proc = ctx.Process(target=target, args=(port_queue, stop, *args), daemon=True)
    proc.start()
    try:
        port = port_queue.get(timeout=60)
        asyncio.run(_load(port, tokens, 1.0, concurrency))  # warm-up
        return asyncio.run(_load(port, tokens, seconds, concurrency))
    finally:
        stop.set()
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--jobs", type=int, default=2000)
    args = parser.parse_args()

    tokens = [os.urandom(16).hex()[:22] for _ in range(args.jobs)]
    bare = _run_side(_serve_bare, (), tokens, args.seconds, args.concurrency)
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "bench.sqlite3")
        stem = _run_side(_serve_stemcord, (db, tokens), tokens, args.seconds, args.concurrency)
    ratio = stem["rps"] / bare["rps"]

    print(f"{'server':<22}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-200':>10}")
    for name, row in (("bare aiohttp", bare), ("stemcord ingest", stem)):
        print(
            f"{name:<22}{row['rps']:>10.0f}{row['p50_ms']:>10.2f}{row['p99_ms']:>10.2f}{row['non_200']:>10.0f}"
        )
    print(f"ratio stemcord/bare: {ratio:.2f}x (goal >= 0.30x)")

    RESULTS.mkdir(exist_ok=True)
    out = {
        "bench": "ingest",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "params": vars(args),
        "bare": bare,
        "stemcord": stem,
        "ratio": ratio,
    }
    (RESULTS / "ingest.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
