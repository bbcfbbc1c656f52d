"""End to end, two checkouts side by side: ``bench.e2e`` of an earlier commit and of this one.

Run: ``.venv/bin/python -m bench.e2e_compare --before /path/to/checkout [--runs 5]
[--rates 200] [--seconds 2]``

Make the earlier checkout with ``git worktree add --detach /tmp/stemcord-before <commit>``.
Each run starts ``python -m bench.e2e`` inside one checkout (its working directory and
``PYTHONPATH``, so the bench, the fakes and the bot it starts are all that checkout's code,
with this virtualenv's packages), the two checkouts alternating run by run, so both see the
same machine load over the session. Each run's table is read from that checkout's
``bench/results/e2e.json``. The report gives min / median / max of p50 and p99 per offered
rate and the ratio of the medians (now / before: below 1 is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
HERE = Path(__file__).resolve().parent.parent


def _run(checkout: Path, rates: list[int], seconds: float) -> list[dict[str, Any]]:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    command = [sys.executable, "-m", "bench.e2e", "--rates", *map(str, rates)]
    command += ["--seconds", str(seconds)]
    result = checkout / "bench" / "results" / "e2e.json"
    result.unlink(missing_ok=True)
    done = subprocess.run(  # noqa: S603 - this interpreter, a fixed module
        command, cwd=checkout, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0 or not result.exists():
        raise RuntimeError(f"bench.e2e failed in {checkout}:\n{done.stdout}\n{done.stderr}")
    rows: list[dict[str, Any]] = json.loads(result.read_text())["rows"]
    return rows


def _spread(values: list[float]) -> str:
    return f"{min(values):.1f} / {statistics.median(values):.1f} / {max(values):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the earlier checkout")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rates", type=int, nargs="+", default=[200])
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    sides = {"before": args.before.resolve(), "now": HERE}
    for name, path in sides.items():
        commit = subprocess.run(  # noqa: S603 - git, with a path the operator gave
            ["git", "-C", str(path), "rev-parse", "--short", "HEAD"],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        print(f"{name}: {path} ({commit or 'not a git checkout'})")
    runs: dict[str, list[list[dict[str, Any]]]] = {name: [] for name in sides}
    loads: list[float] = []
    for i in range(args.runs):
        order = list(sides) if i % 2 == 0 else list(reversed(sides))
        for name in order:
            loads.append(os.getloadavg()[0])
            began = time.perf_counter()
            rows = _run(sides[name], args.rates, args.seconds)
            runs[name].append(rows)
            p99 = ", ".join(f"{r['offered_jobs_per_s']}/s p99 {r['p99_ms']:.1f} ms" for r in rows)
            print(f"run {i + 1} {name:<7} {p99}  ({time.perf_counter() - began:.0f} s)")

    print()
    print(f"{'jobs/s':>7} {'side':<7} {'p50 ms min/med/max':>24} {'p99 ms min/med/max':>26}")
    summary: dict[str, Any] = {}
    for k, rate in enumerate(args.rates):
        medians = {}
        for name in sides:
            p50 = [rows[k]["p50_ms"] for rows in runs[name]]
            p99 = [rows[k]["p99_ms"] for rows in runs[name]]
            medians[name] = statistics.median(p99)
            print(f"{rate:>7} {name:<7} {_spread(p50):>24} {_spread(p99):>26}")
            summary[f"{rate}/{name}"] = {"p50_ms": p50, "p99_ms": p99}
        ratio = medians["now"] / medians["before"]
        summary[f"{rate}/ratio_of_median_p99"] = ratio
        print(f"{rate:>7} ratio of median p99, now / before: {ratio:.2f}x")
    print(f"load average (1 min) at each run's start: {min(loads):.2f}-{max(loads):.2f}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "e2e_compare.json").write_text(
        json.dumps(
            {
                "bench": "e2e_compare",
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "params": {**vars(args), "before": str(args.before)},
                "summary": summary,
                "loadavg": loads,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
