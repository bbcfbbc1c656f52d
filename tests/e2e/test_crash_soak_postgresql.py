"""The short crash soak on PostgreSQL: two bot processes, one shard each, one killed at random
again and again while jobs complete; every accepted job is delivered exactly once."""

from __future__ import annotations

from pathlib import Path

from bench.soak import run_fleet_soak


async def test_two_processes_killed_in_turn_deliver_every_accepted_job_exactly_once(
    tmp_path: Path, pg_dsn: str
) -> None:
    report = await run_fleet_soak(
        database_url=pg_dsn,
        jobs=60,
        kills=3,
        seed=11,
        workdir=tmp_path,
        settle_timeout=45,
        lost_answers=0.15,
    )
    assert (report.database, report.processes, report.kills) == ("postgresql", 2, 3)
    # Every accepted job reached a final state and was posted exactly once.
    assert report.unfinished == []
    assert report.missing == [] and report.duplicates == {} and report.strays == 0
    assert report.delivered_once == report.accepted >= 40
    # Lost submit answers happened, and none made Vidgo run (or charge) a task twice.
    assert report.lost_answers >= 1
    assert report.tasks <= report.accepted
    assert report.paid_tasks == report.succeeded
    assert report.integrity_ok
    # The only rules broken are the dead process's: interactions it never answered.
    assert len(report.rule_violations) <= report.lost_interactions * 2
    assert report.ok
