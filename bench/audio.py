"""Audio engine cost: backing-track mix against ffmpeg, key shift speed, worker memory against
song length, and the event loop's lag while two mixes run in the pool.

Run: ``.venv/bin/python -m bench.audio [--runs 5] [--minutes 4] [--lengths 1,5,10]``

The songs are generated (six stems of ``tests/fakes/audio.py``, 44.1 kHz stereo, 192 kbps,
each with a low noise floor so the encoder works as hard as on music) into a temporary
directory, or into ``--songs DIR`` to reuse them between runs.

* **Mix vs ffmpeg**: the same work (decode six MP3 stems, sum, encode at 192 kbps), timed
  as CPU seconds (user + system) of the process doing it; ours inside a pool worker, ffmpeg's
  as a child process. Runs alternate, ours first. ffmpeg is only a yardstick: when it is not
  installed the comparison is skipped with a note.
* **Key shift**: CPU seconds of ``render_key(+2 semitones)`` on the backing track, over the
  song's duration (the real-time factor); the tempo path is measured too.
* **Memory**: peak RSS (VmHWM) of a fresh worker for one job on songs of each length.
* **Event-loop lag**: a 10 ms ticker in this process while two mixes run in a two-worker
  pool; lateness of each tick past its 10 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.audio import AudioPool, mix_backing_track, render_key
from tests.fakes.audio import STEM_SOUNDS, UPLOAD_STEMS, write_sound

RESULTS = Path(__file__).resolve().parent / "results"
BITRATE = 192
NOISE_DB = -30.0


# -- run in worker processes (top level so they pickle) --------------------------------------


def write_stem_file(path: Path, name: str, seconds: float) -> None:
    if not path.exists():
        partial = path.with_name(f".{path.stem}.partial.mp3")
        write_sound(
            partial,
            STEM_SOUNDS[name],
            seconds=seconds,
            bitrate_kbps=BITRATE,
            noise_db=NOISE_DB,
            seed=len(name),
        )
        partial.rename(path)


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def measured(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Run ``fn`` and report its CPU seconds, the RSS before it and the process's peak."""
    baseline = _rss_kib("VmRSS")
    cpu = time.process_time()
    wall = time.perf_counter()
    report = fn(*args, **kwargs)
    return {
        "cpu_s": time.process_time() - cpu,
        "wall_s": time.perf_counter() - wall,
        "rss_before_mib": baseline / 1024,
        "peak_rss_mib": _rss_kib("VmHWM") / 1024,
        "report": report,
    }


# -- the benchmark ---------------------------------------------------------------------------


async def make_songs(root: Path, minutes: list[float]) -> dict[float, list[Path]]:
    """Six stems per song length, generated in parallel in a pool."""
    songs: dict[float, list[Path]] = {}
    jobs = []
    async with AudioPool(workers=2, queue_limit=100, timeout=None) as pool:
        for length in minutes:
            directory = root / f"{length:g}min"
            directory.mkdir(parents=True, exist_ok=True)
            songs[length] = [directory / f"{name}.mp3" for name in UPLOAD_STEMS]
            jobs += [
                pool.run(write_stem_file, path, name, length * 60)
                for path, name in zip(songs[length], UPLOAD_STEMS, strict=True)
            ]
        await asyncio.gather(*jobs)
    return songs


def ffmpeg_mix(ffmpeg: str, stems: list[Path], out: Path) -> float:
    """CPU seconds of ffmpeg decoding, summing and encoding ``stems`` like the engine does."""
    inputs = [arg for stem in stems for arg in ("-i", str(stem))]
    command = [
        ffmpeg,
        "-nostdin",
        "-v",
        "error",
        "-y",
        *inputs,
        "-filter_complex",
        f"amix=inputs={len(stems)}:duration=longest:normalize=0",
        "-c:a",
        "libmp3lame",
        "-b:a",
        f"{BITRATE}k",
        str(out),
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, check=True)  # noqa: S603 - fixed arguments, our own files
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def spread(values: list[float]) -> dict[str, float]:
    return {
        "min": min(values),
        "median": statistics.median(values),
        "max": max(values),
    }


async def bench_mix(stems: list[Path], work: Path, runs: int) -> dict[str, Any]:
    ffmpeg = shutil.which("ffmpeg")
    ours: list[float] = []
    theirs: list[float] = []
    async with AudioPool(workers=1, queue_limit=0, timeout=None) as pool:
        for _ in range(runs):
            result = await pool.run(measured, mix_backing_track, stems, work / "ours.mp3")
            ours.append(result["cpu_s"])
            if ffmpeg:
                theirs.append(ffmpeg_mix(ffmpeg, stems, work / "ffmpeg.mp3"))
    row: dict[str, Any] = {"ours_cpu_s": spread(ours), "runs": runs}
    if theirs:
        row["ffmpeg_cpu_s"] = spread(theirs)
        row["ratio_median"] = statistics.median(ours) / statistics.median(theirs)
        row["ratio_min"] = min(ours) / min(theirs)
    else:
        row["note"] = "ffmpeg not installed: comparison skipped"
    return row


async def bench_key(backing: Path, work: Path, seconds: float, runs: int) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    async with AudioPool(workers=1, queue_limit=0, timeout=None) as pool:
        for label, options in (
            ("key +2", {"semitones": 2}),
            ("key -3, tempo 0.9x", {"semitones": -3, "tempo": 0.9}),
        ):
            cpus = []
            for _ in range(runs):
                result = await pool.run(measured, render_key, backing, work / "key.mp3", **options)
                cpus.append(result["cpu_s"])
            rows[label] = {
                "cpu_s": spread(cpus),
                "realtime_factor_median": statistics.median(cpus) / seconds,
            }
    return rows


async def bench_memory(songs: dict[float, list[Path]], work: Path) -> list[dict[str, Any]]:
    rows = []
    for length, stems in songs.items():
        row: dict[str, Any] = {"minutes": length}
        backing = work / f"backing{length:g}.mp3"
        for label, fn, args, kwargs in (
            ("mix", mix_backing_track, (stems[1:], backing), {}),
            ("key +2", render_key, (backing, work / "k.mp3"), {"semitones": 2}),
            ("tempo 0.9x", render_key, (backing, work / "t.mp3"), {"semitones": 0, "tempo": 0.9}),
        ):
            # A fresh worker per measurement: its peak RSS belongs to this job alone.
            async with AudioPool(workers=1, queue_limit=0, timeout=None) as pool:
                result = await pool.run(measured, fn, *args, **kwargs)
            row[label] = {
                "rss_before_mib": round(result["rss_before_mib"], 1),
                "peak_rss_mib": round(result["peak_rss_mib"], 1),
            }
        rows.append(row)
    return rows


async def bench_loop_lag(stems: list[Path], work: Path) -> dict[str, Any]:
    lateness: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            start = time.perf_counter()
            await asyncio.sleep(0.010)
            lateness.append(time.perf_counter() - start - 0.010)

    async with AudioPool(workers=2, queue_limit=0, timeout=None) as pool:
        ticking = asyncio.create_task(ticker())
        wall = time.perf_counter()
        await asyncio.gather(
            pool.run(mix_backing_track, stems, work / "lag1.mp3"),
            pool.run(mix_backing_track, stems, work / "lag2.mp3"),
        )
        wall = time.perf_counter() - wall
        stop.set()
        await ticking
    ordered = sorted(lateness)
    return {
        "ticks": len(ordered),
        "mixes_wall_s": wall,
        "p50_ms": ordered[len(ordered) // 2] * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        "max_ms": ordered[-1] * 1000,
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    lengths = sorted({args.minutes, *(float(x) for x in args.lengths.split(",") if x)})
    root = args.songs or Path(tempfile.mkdtemp(prefix="stemcord-audio-bench-"))
    work = Path(tempfile.mkdtemp(prefix="stemcord-audio-out-"))
    try:
        started = time.perf_counter()
        songs = await make_songs(root, lengths)
        print(f"songs ready in {time.perf_counter() - started:.0f} s under {root}")
        main_song = songs[args.minutes]
        seconds = args.minutes * 60
        results: dict[str, Any] = {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_before": os.getloadavg(),
        }
        results["mix"] = await bench_mix(main_song, work, args.runs)
        backing = work / "backing.mp3"
        mix_backing_track(main_song[1:], backing)
        results["key"] = await bench_key(backing, work, seconds, max(1, args.runs // 2))
        results["loop_lag"] = await bench_loop_lag(main_song, work)
        if not args.skip_memory:
            results["memory"] = await bench_memory(
                {k: v for k, v in songs.items() if k in lengths}, work
            )
        results["load_after"] = os.getloadavg()
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if args.songs is None:
            shutil.rmtree(root, ignore_errors=True)


def render(results: dict[str, Any], minutes: float) -> None:
    mix = results["mix"]
    print(
        f"\n## Mix of six stems, {minutes:g} min, 44.1 kHz stereo, {BITRATE} kbps"
        f" ({mix['runs']} runs)"
    )
    print("| | min s | median s | max s |")
    print("|---|---:|---:|---:|")
    for label, key in (("Stemcord (CPU)", "ours_cpu_s"), ("ffmpeg (CPU)", "ffmpeg_cpu_s")):
        if key in mix:
            s = mix[key]
            print(f"| {label} | {s['min']:.2f} | {s['median']:.2f} | {s['max']:.2f} |")
    if "ratio_median" in mix:
        print(f"ratio (median) {mix['ratio_median']:.2f}x, (min) {mix['ratio_min']:.2f}x")
    else:
        print(mix["note"])
    print("\n## Key shift of the backing track")
    for label, row in results["key"].items():
        s = row["cpu_s"]
        print(
            f"| {label} | {s['min']:.2f} / {s['median']:.2f} / {s['max']:.2f} s CPU "
            f"| {row['realtime_factor_median']:.3f}x real time |"
        )
    lag = results["loop_lag"]
    print(
        f"\n## Event-loop lag, two mixes in the pool ({lag['mixes_wall_s']:.1f} s, "
        f"{lag['ticks']} ticks): p50 {lag['p50_ms']:.2f} ms, p99 {lag['p99_ms']:.2f} ms, "
        f"max {lag['max_ms']:.2f} ms"
    )
    if "memory" in results:
        print("\n## Peak RSS of a fresh worker (MiB; before the job -> peak)")
        print("| song | mix | key +2 | tempo 0.9x |")
        print("|---:|---:|---:|---:|")
        for row in results["memory"]:
            cells = [
                f"{row[k]['rss_before_mib']:.0f} -> {row[k]['peak_rss_mib']:.0f}"
                for k in ("mix", "key +2", "tempo 0.9x")
            ]
            print(f"| {row['minutes']:g} min | " + " | ".join(cells) + " |")
    print(f"\nload average before {results['load_before']}, after {results['load_after']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--lengths", default="1,5,10", help="song lengths for the memory check")
    parser.add_argument("--songs", type=Path, help="keep generated songs here (reused)")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    render(results, args.minutes)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "audio.json").write_text(json.dumps(results, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
