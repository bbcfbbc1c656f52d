"""/jobs end to end: lists and pages, status, the moderators' queue, cancel, retry, balance."""

from __future__ import annotations

import time

from storage.jobstate import JobState
from storage.records import NewJob, SourceKind
from tests.e2e.commands import MANAGER, MEMBER, MODERATOR, answer, slash, text
from tests.e2e.conftest import World
from tests.fakes.discord_models import FakeMessage, iter_components


async def seed_jobs(
    world: World, count: int, *, user_id: int, guild_id: int, prefix: str = "seed"
) -> list[str]:
    """Jobs recorded straight in the store (no Vidgo work is due for them during the test)."""
    assert world.app is not None
    ids = []
    for index in range(count):
        now = time.time() - 1000 + index
        job = NewJob(
            id=f"{prefix}{index:06d}",
            kind="separation",
            source_kind=SourceKind.URL,
            source_key=f"url:seed-{guild_id}-{index}",
            model="upload-and-separate-vocals",
            requester_id=user_id,
            channel_id=world.guild.channel_id,
            guild_id=guild_id,
            source_url=f"https://cdn.example.org/{index}.mp3",
            options={"title": f"Seeded **song** {index} @everyone"},
            deadline_at=now + 10**9,
        )
        await world.app.store.admit(job, now, submit_lease_until=now + 10**9)
        ids.append(job.id)
    return ids


def button(message: FakeMessage, label: str) -> str:
    [custom_id] = [
        c["custom_id"] for c in iter_components(message.components) if c.get("label") == label
    ]
    return str(custom_id)


async def press(world: World, message: FakeMessage, label: str, user_id: int) -> None:
    edits = len(message.edits)
    await world.discord.invoke_component(
        guild_id=world.guild.id,
        channel_id=message.channel_id,
        user_id=user_id,
        message_id=message.id,
        custom_id=button(message, label),
    )
    await world.discord.wait_until(lambda: len(message.edits) > edits)


async def test_mine_pages_through_the_members_jobs_with_buttons(world: World) -> None:
    await world.start()
    await seed_jobs(world, 12, user_id=world.member.id, guild_id=world.guild.id)
    other = world.discord.add_user(name="other").id
    await seed_jobs(world, 1, user_id=other, guild_id=world.guild.id + 1, prefix="else")
    await seed_jobs(world, 1, user_id=world.member.id, guild_id=world.guild.id + 1, prefix="away")
    reply = await answer(world, await slash(world, "jobs mine"))
    assert reply.ephemeral
    first = text(reply)
    assert "else" not in first and "away" not in first  # other servers' jobs never show
    assert "Page 1/2" in first and "seed000011" in first and "seed000002" in first
    assert "seed000001" not in first
    # Titles are escaped: no markdown, no mass ping.
    description = reply.embeds[0]["description"]
    assert "@everyone" not in description and "\\*\\*song\\*\\*" in description
    await press(world, reply, "Next", world.member.id)
    second = text(reply)
    assert "Page 2/2" in second and "seed000000" in second and "seed000011" not in second
    await press(world, reply, "Previous", world.member.id)
    assert "Page 1/2" in text(reply)
    assert world.discord.rule_violations == []


async def test_mine_with_nothing_yet(world: World) -> None:
    await world.start()
    reply = await answer(world, await slash(world, "jobs mine"))
    assert reply.ephemeral and "no jobs here yet" in text(reply) and not reply.components


async def test_status_shows_a_job_of_this_server_only(world: World) -> None:
    await world.start()
    [mine] = await seed_jobs(world, 1, user_id=world.member.id, guild_id=world.guild.id)
    assert world.app is not None
    foreign = NewJob(
        id="foreign0001",
        kind="separation",
        source_kind=SourceKind.URL,
        source_key="url:foreign",
        model="upload-and-separate-vocals",
        requester_id=world.member.id,
        channel_id=1,
        guild_id=world.guild.id + 99,
        source_url="https://cdn.example.org/f.mp3",
        deadline_at=2e9,
    )
    await world.app.store.admit(foreign, time.time(), submit_lease_until=2e9)
    shown = await answer(world, await slash(world, "jobs status", job=mine))
    assert shown.ephemeral and f"Job {mine}" in text(shown)
    assert f"<@{world.member.id}>" in text(shown)
    for unknown in ("foreign0001", "nosuchjob1"):
        hidden = await answer(world, await slash(world, "jobs status", job=unknown))
        assert hidden.ephemeral and f"No job `{unknown}` in this server." == hidden.content
    assert world.discord.rule_violations == []


async def test_queue_is_for_moderators_and_lists_oldest_first(world: World) -> None:
    await world.start()
    singer = world.member.id
    other = world.discord.add_user(name="duet").id
    await seed_jobs(world, 3, user_id=other, guild_id=world.guild.id)
    await seed_jobs(world, 2, user_id=other, guild_id=world.guild.id + 1, prefix="away")
    refused = await answer(world, await slash(world, "jobs queue"))
    assert refused.ephemeral and "Only moderators" in refused.content
    await world.separate_song(0)
    await world.job_for_task_wait()
    reply = await answer(world, await slash(world, "jobs queue", permissions=MODERATOR))
    shown = text(reply)
    assert "4 unfinished jobs" in shown and "Page 1/1" in shown and "away" not in shown
    assert shown.index("seed000000") < shown.index("seed000002")
    assert f"<@{singer}>" in shown and f"<@{other}>" in shown
    assert not reply.pinged.get("users")
    # The server's moderator role works as well as Manage Messages.
    mods = world.discord.add_role(world.guild.id, "karaoke mods")
    assert world.app is not None
    bot = world.app.bot
    await world.discord.wait_until(
        lambda: (g := bot.get_guild(world.guild.id)) is not None and g.get_role(mods) is not None
    )
    world.discord.give_role(world.guild.id, other, mods)
    assert (
        "Only moderators"
        in (await answer(world, await slash(world, "jobs queue", user_id=other))).content
    )
    await answer(
        world, await slash(world, "karaoke settings moderator_role", permissions=MANAGER, role=mods)
    )
    allowed = await answer(world, await slash(world, "jobs queue", user_id=other))
    assert "4 unfinished jobs" in text(allowed)
    assert world.discord.rule_violations == []


async def test_cancel_by_the_requester_stops_tracking_and_a_late_result_is_not_posted(
    world: World,
) -> None:
    await world.start()
    await world.separate_song(0)
    job = await world.job_for_task_wait()
    stranger = world.discord.add_user(name="stranger").id
    refused = await answer(world, await slash(world, "jobs cancel", user_id=stranger, job=job.id))
    assert refused.ephemeral and "Only the member who asked" in refused.content
    reply = await answer(world, await slash(world, "jobs cancel", job=job.id))
    assert reply.ephemeral and "Vidgo has no way to cancel" in reply.content
    assert "will not post its result" in reply.content
    assert (await world.wait_job(job.id, JobState.CANCELLED)).state is JobState.CANCELLED
    status = await world.discord.wait_for_message(
        world.guild.channel_id, lambda m: f"Job {job.id}" in str(m.embeds) and not m.ephemeral
    )
    await world.discord.wait_until(lambda: "Cancelled" in str(status.embeds))
    # Vidgo finishes anyway and calls back: the cancelled job forgot its callback token, so
    # the callback is refused and nothing is posted.
    await world.vidgo.finish(job.vidgo_task_id or "")
    sent = await world.vidgo.wait_for_callbacks(1)
    assert sent[0][1] == 404
    assert world.outcome_messages(job.id) == []
    again = await answer(world, await slash(world, "jobs cancel", job=job.id))
    assert "already cancelled" in again.content
    assert world.discord.rule_violations == []


async def test_a_moderator_may_cancel_someone_elses_job(world: World) -> None:
    await world.start()
    await world.separate_song(1)
    job = await world.job_for_task_wait()
    moderator = world.discord.add_user(name="mod").id
    reply = await answer(
        world,
        await slash(world, "jobs cancel", user_id=moderator, permissions=MODERATOR, job=job.id),
    )
    assert "Cancelled job" in reply.content
    await world.wait_job(job.id, JobState.CANCELLED)


async def test_retry_redelivers_an_undeliverable_job_for_moderators(world: World) -> None:
    await world.start()
    await world.separate_song(0)
    job = await world.job_for_task_wait()
    world.discord.deny_channel(world.guild.channel_id)
    world.discord.block_dms(world.member.id)
    await world.vidgo.finish(job.vidgo_task_id or "")
    await world.wait_job(job.id, JobState.UNDELIVERABLE)
    detail = await answer(world, await slash(world, "jobs status", job=job.id))
    assert "could not be posted" in text(detail) or "Why it was not posted" in text(detail)
    refused = await answer(world, await slash(world, "jobs retry", job=job.id))
    assert "Only moderators" in refused.content
    world.discord.users[world.member.id].dms_blocked = False  # the member opened their DMs
    reply = await answer(world, await slash(world, "jobs retry", permissions=MODERATOR, job=job.id))
    assert reply.ephemeral and "again" in reply.content
    await world.wait_job(job.id, JobState.DELIVERED)
    assert len(world.outcome_messages(job.id)) == 1
    done = await answer(world, await slash(world, "jobs retry", permissions=MODERATOR, job=job.id))
    assert "nothing to retry" in done.content
    assert world.discord.rule_violations == []


async def test_retry_polls_an_unfinished_job_now(world: World) -> None:
    world.overrides["POLL_INTERVAL_SECONDS"] = 3600  # no poll would come on its own
    world.vidgo.send_callbacks = False
    await world.start()
    await world.separate_song(0)
    job = await world.job_for_task_wait()
    await world.vidgo.finish(job.vidgo_task_id or "")
    reply = await answer(world, await slash(world, "jobs retry", permissions=MODERATOR, job=job.id))
    assert "Asking Vidgo" in reply.content
    await world.wait_job(job.id, JobState.DELIVERED)


async def test_balance_is_for_the_bots_owner_and_cached(world: World) -> None:
    await world.start()
    for permissions in (MEMBER, MODERATOR, MANAGER):
        refused = await answer(world, await slash(world, "jobs balance", permissions=permissions))
        assert refused.ephemeral and "Only the bot's owner" in refused.content
    owner = world.discord.owner_id
    first = await answer(world, await slash(world, "jobs balance", user_id=owner))
    assert first.ephemeral and f"{world.vidgo.credits:,}" in first.content
    await answer(world, await slash(world, "jobs balance", user_id=owner))
    # The credit watch's read at start and both questions share one cached read.
    balance_reads = [p for _, p in world.vidgo.requests if p.endswith("/balance")]
    assert len(balance_reads) == 1
    assert world.discord.rule_violations == []


async def test_status_autocomplete_offers_the_callers_recent_ids_in_this_server(
    world: World,
) -> None:
    await world.start()
    ids = await seed_jobs(world, 30, user_id=world.member.id, guild_id=world.guild.id)
    other = world.discord.add_user(name="other").id
    await seed_jobs(world, 1, user_id=other, guild_id=world.guild.id, prefix="othr")
    await seed_jobs(world, 1, user_id=world.member.id, guild_id=world.guild.id + 1, prefix="away")
    asked = await world.discord.invoke_autocomplete(
        guild_id=world.guild.id,
        channel_id=world.guild.channel_id,
        user_id=world.member.id,
        name="jobs status",
        focused="job",
    )
    await world.discord.wait_until(lambda: asked.choices is not None)
    assert asked.choices is not None
    values = [c["value"] for c in asked.choices]
    assert values == list(reversed(ids))[:25]  # newest first, only the caller's, only here
    narrowed = await world.discord.invoke_autocomplete(
        guild_id=world.guild.id,
        channel_id=world.guild.channel_id,
        user_id=world.member.id,
        name="jobs status",
        focused="job",
        typed="seed00000",
    )
    await world.discord.wait_until(lambda: narrowed.choices is not None)
    assert narrowed.choices is not None
    assert sorted(c["value"] for c in narrowed.choices) == ids[:10]
    assert world.discord.rule_violations == []


async def test_manage_messages_in_one_channel_only_is_not_a_moderator(world: World) -> None:
    # The interaction says Manage Messages (a channel overwrite grants it there), but no role
    # gives it server-wide: /jobs queue stays closed.
    await world.start()
    interaction = await world.discord.invoke_slash(
        guild_id=world.guild.id,
        channel_id=world.guild.channel_id,
        user_id=world.member.id,
        name="jobs queue",
        options=[],
        permissions=MODERATOR,
    )
    refused = await answer(world, interaction)
    assert refused.ephemeral and "Only moderators" in refused.content
