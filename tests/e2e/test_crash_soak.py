"""The short crash soak: the bot process is SIGKILLed while jobs complete; nothing is lost."""

from __future__ import annotations

from pathlib import Path

from bench.soak import run_soak


async def test_killed_bot_delivers_every_accepted_job_exactly_once(tmp_path: Path) -> None:
    report = await run_soak(
        jobs=100, kills=3, seed=11, workdir=tmp_path, settle_timeout=45, lost_answers=0.15
    )
    assert report.kills == 3
    # Every accepted job reached a final state: none was left holding a lease or a slot.
    assert report.unfinished == []
    # Lost submit answers happened, and none of them made Vidgo create a second task.
    assert report.lost_answers >= 3
    assert report.tasks <= report.accepted
    assert report.paid_tasks == report.succeeded
    # Interactions that reached a dying bot are lost (never acknowledged); most are accepted.
    assert report.accepted >= 50
    assert report.missing == []
    assert report.duplicates == {}
    assert report.strays == 0
    assert report.delivered_once == report.accepted
    assert report.integrity_ok
    # A second `run` on the same file meanwhile was refused (instance lock) before Discord.
    assert report.second_process_exit == 4 and report.second_process_logins == 0
    # The only rule broken is by the dead bot: interactions it never got to answer.
    assert len(report.rule_violations) <= report.lost_interactions * 2
    assert report.ok
