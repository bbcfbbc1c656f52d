"""Two real bot processes, one shard each, on one PostgreSQL schema.

Each process answers the commands of its own shard's server; a callback that reaches the
other process's listener still finishes the job; a process killed with jobs in flight leaves
them to the survivor, which delivers each exactly once; and a member's cap of one unfinished
job holds even when two requests for the same server reach the two processes at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.policy import GuildPolicy
from storage.jobstate import JobState
from storage.postgres import PostgresJobStore
from tests.e2e.fleet import Fleet, guild_id_on, new_ports, open_store, set_policy, wait_jobs
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_models import FakeInteraction
from tests.fakes.vidgo import GENERATION_AUDIO_IDS, GENERATION_TASK_ID, FakeVidgo

MEMBER = 990_000_000_000_000_077
FINAL = (JobState.DELIVERED, JobState.UNDELIVERABLE, JobState.CANCELLED)


@pytest.fixture
async def store(pg_dsn: str, pg_schema: str) -> AsyncIterator[PostgresJobStore]:
    store = await open_store(pg_dsn, pg_schema)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def fleet(
    pg_dsn: str, pg_schema: str, tmp_path: Path, store: PostgresJobStore
) -> AsyncIterator[Fleet]:
    async with (
        FakeDiscord(shard_count=2) as discord,
        FakeVidgo(callback_retry_delays=(0.2, 0.5, 1.0)) as vidgo,
    ):
        guilds = [discord.add_guild(guild_id_on(shard)) for shard in (0, 1)]
        assert [discord.shard_of(g.id) for g in guilds] == [0, 1]
        discord.add_user(MEMBER, "singer")
        fleet = Fleet(
            discord,
            vidgo,
            f"{pg_dsn}?schema={pg_schema}",
            tmp_path,
            guilds,
            MEMBER,
            webhook_ports=new_ports(2),
        )
        try:
            yield fleet
        finally:
            await fleet.stop()


def callback_port(fleet: Fleet, task_id: str) -> int:
    url = fleet.vidgo.tasks[task_id].callback_url
    assert url is not None
    return int(url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])


async def test_each_process_answers_its_shard_and_a_callback_to_the_other_finishes_the_job(
    fleet: Fleet, store: PostgresJobStore
) -> None:
    await fleet.start(cross_callbacks=True)
    asked = [await fleet.separate_link(shard, f"song-{shard}") for shard in (0, 1)]
    jobs = await wait_jobs(store, lambda js: len(js) == 2 and all(j.vidgo_task_id for j in js))
    by_guild = {job.guild_id: job for job in jobs}
    for shard, interaction in enumerate(asked):
        job = by_guild[fleet.guilds[shard].id]
        # The interaction went to its shard's session, and that process answered it,
        # admitted the job and submitted it.
        assert interaction.shard == shard and interaction.acked
        assert fleet.logged_by(f"job {job.id}: submitted to Vidgo") == [shard]
        # Vidgo will call back the other process's listener.
        assert callback_port(fleet, job.vidgo_task_id or "") == fleet.webhook_ports[1 - shard]
    for job in jobs:
        await fleet.vidgo.finish(job.vidgo_task_id or "")
    done = await wait_jobs(store, lambda js: all(j.state is JobState.DELIVERED for j in js))
    for job in done:
        assert len(fleet.delivered_messages(job.id)) == 1
        # Exactly one process posted it (whichever claimed it after the callback).
        assert len(fleet.logged_by(f"job {job.id}: delivered")) == 1
    # Every callback was accepted by the listener it reached: the token verified there.
    assert fleet.vidgo.callbacks_sent and all(
        status == 200 for _, status in fleet.vidgo.callbacks_sent
    )
    assert fleet.vidgo.detail_count <= 4  # callbacks woke the jobs; nothing polled in a loop
    assert fleet.discord.rule_violations == []


async def test_a_killed_process_s_jobs_are_taken_over_and_delivered_exactly_once(
    fleet: Fleet, store: PostgresJobStore
) -> None:
    # One member sends all three jobs: no per-member cap in the way.
    await set_policy(store, fleet.guilds[1].id, GuildPolicy(max_unfinished=0, daily_quota=0))
    bots = await fleet.start(cross_callbacks=True)
    for i in range(2):
        await fleet.separate_link(1, f"steady-{i}")
    await wait_jobs(store, lambda js: len(js) == 2 and all(j.vidgo_task_id for j in js))
    # The next submit reaches Vidgo (the task exists) but its answer takes 30 s: the
    # process is killed meanwhile, holding that job's lease with the submit unconfirmed.
    fleet.vidgo.lose_answer_next(1, "timeout", delay=30.0, path_prefix="/api/generate/submit")
    await fleet.separate_link(1, "in-flight")
    await fleet.vidgo.wait_for_task(3, timeout=20)
    held = await wait_jobs(
        store, lambda js: len(js) == 3 and any(j.unconfirmed_submit_at for j in js)
    )
    [in_flight] = [j for j in held if j.unconfirmed_submit_at]
    assert in_flight.leased and in_flight.vidgo_task_id is None
    await bots[1].kill()
    # Vidgo finishes every task; the callbacks reach the survivor's listener.
    for task_id in list(fleet.vidgo.tasks):
        await fleet.vidgo.finish(task_id)
    # The survivor sees the dead process gone (same host, its pid no longer exists) at its
    # next heartbeat, releases its lease, adopts the task named by the callback, delivers.
    done = await wait_jobs(store, lambda js: all(j.state in FINAL for j in js), timeout=45)
    for job in done:
        assert job.state is JobState.DELIVERED, job
        assert len(fleet.delivered_messages(job.id)) == 1
    assert fleet.logged_by(f"job {in_flight.id}: delivered") == [0]
    assert fleet.logged_by(f"job {in_flight.id}: adopted Vidgo task") == [0]
    # One Vidgo task per job, each paid once.
    assert len(fleet.vidgo.tasks) == 3 and fleet.vidgo.paid_tasks == 3
    # The survivor's shard was never touched; the dead one's is down.
    status, body = await bots[0].readyz()
    assert status == 200 and body["shards"] == {"count": 2, "connected": [0], "not_connected": []}


async def test_a_cap_of_one_holds_when_two_requests_reach_the_two_processes_at_once(
    fleet: Fleet, store: PostgresJobStore
) -> None:
    # The server on shard 1 sends results to the requester's DMs too, and allows one
    # unfinished job per member.
    guild = fleet.guilds[1]
    await set_policy(store, guild.id, GuildPolicy(max_unfinished=1, dm_on_completion=True))
    await fleet.start(cross_callbacks=True)
    await fleet.discord.invoke_slash(
        guild_id=guild.id,
        channel_id=guild.channel_id,
        user_id=MEMBER,
        name="separate",
        options=[
            {"name": "task_id", "value": GENERATION_TASK_ID},
            {"name": "audio_id", "value": GENERATION_AUDIO_IDS[0]},
        ],
    )
    [song] = await wait_jobs(store, lambda js: len(js) == 1 and bool(js[0].vidgo_task_id))
    await fleet.vidgo.finish(song.vidgo_task_id or "")
    await wait_jobs(store, lambda js: js[0].state is JobState.DELIVERED)
    [copy] = [m for m in fleet.discord.dm_messages(MEMBER) if m.nonce == f"stemcord-{song.id}"]
    # Now, at the same moment: the Lyrics button on the DM copy (a DM: shard 0, the first
    # process) and /separate in the server (shard 1, the second). Both count in that server.
    press, command = await asyncio.gather(
        fleet.discord.invoke_dm_component(
            user_id=MEMBER, message_id=copy.id, custom_id=f"stemcord:lyrics:{song.id}"
        ),
        fleet.separate_link(1, "second-song"),
    )
    assert (press.shard, command.shard) == (0, 1)

    def answer(interaction: FakeInteraction) -> str:
        """What the member sees: a private sentence, or the public status message."""
        for message in [*interaction.followups, interaction.original_message]:
            if message is not None and not message.loading and (message.content or message.embeds):
                return f"{message.content} {message.embeds}"
        return ""

    await fleet.discord.wait_until(lambda: bool(answer(press)) and bool(answer(command)), 20)
    jobs = await store.list_jobs(limit=10)
    started = [j for j in jobs if j.id != song.id]
    # Exactly one passed; the other was told about the cap.
    assert len(started) == 1, [(j.id, j.kind) for j in started]
    refused = [a for a in (answer(press), answer(command)) if "You already have 1 unfinished" in a]
    assert len(refused) == 1, (answer(press), answer(command))
    assert press.acked and command.acked
    assert fleet.discord.rule_violations == []
