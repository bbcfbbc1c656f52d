"""/karaoke settings and the per-member limits, end to end through the fake Discord."""

from __future__ import annotations

import asyncio

from storage.jobstate import JobState
from tests.e2e.commands import MANAGER, MEMBER, MODERATOR, answer, slash, text
from tests.e2e.conftest import World
from tests.fakes.discord_models import FakeInteraction


async def separate_link(world: World, name: str, **kw: object) -> FakeInteraction:
    return await slash(world, "separate", link=f"https://cdn.example.org/songs/{name}.mp3", **kw)


async def jobs_of(world: World, user_id: int | None = None) -> int:
    assert world.app is not None
    return len(await world.app.store.list_jobs(requester_id=user_id or world.member.id))


async def test_settings_show_lists_the_defaults_privately(world: World) -> None:
    await world.start()
    reply = await answer(world, await slash(world, "karaoke settings show", permissions=MANAGER))
    assert reply.ephemeral
    shown = text(reply)
    assert "everywhere" in shown and "2 jobs" in shown and "10 jobs" in shown
    assert "where the command ran" in shown and "off" in shown
    assert world.discord.rule_violations == []


async def test_only_server_managers_may_change_settings(world: World) -> None:
    await world.start()
    commands = {c["name"]: c for c in world.discord.synced_commands[world.guild.id]}
    # Hidden by default from members without Manage Server ...
    assert str(commands["karaoke"]["default_member_permissions"]) == str(1 << 5)
    # ... and refused in code when a server admin has made it visible to everyone.
    for permissions in (MEMBER, MODERATOR):
        reply = await answer(
            world,
            await slash(world, "karaoke settings daily_quota", permissions=permissions, count=0),
        )
        assert reply.ephemeral and "Manage Server" in reply.content
    shown = await answer(world, await slash(world, "karaoke settings show", permissions=MANAGER))
    assert "10 jobs" in text(shown)


async def test_daily_quota_refuses_privately_and_says_when_it_resets(world: World) -> None:
    await world.start()
    done = await answer(
        world, await slash(world, "karaoke settings daily_quota", permissions=MANAGER, count=1)
    )
    assert "1 job" in done.content and done.ephemeral
    await answer(world, await separate_link(world, "one"))
    refused = await answer(world, await separate_link(world, "two"))
    assert refused.ephemeral
    assert "Daily quota of 1 reached; resets <t:" in refused.content
    assert await jobs_of(world) == 1
    # Zero lifts the quota at once.
    await answer(
        world, await slash(world, "karaoke settings daily_quota", permissions=MANAGER, count=0)
    )
    await answer(world, await separate_link(world, "three"))
    assert await jobs_of(world) == 2
    assert world.discord.rule_violations == []


async def test_cooldown_names_when_to_try_again(world: World) -> None:
    await world.start()
    await answer(
        world, await slash(world, "karaoke settings cooldown", permissions=MANAGER, seconds=600)
    )
    await answer(world, await separate_link(world, "one"))
    refused = await answer(world, await separate_link(world, "two"))
    assert refused.ephemeral and refused.content.startswith("Cooldown: try again <t:")
    # Another member is not held back by it.
    other = world.discord.add_user(name="duet").id
    await answer(world, await separate_link(world, "three", user_id=other))
    assert await jobs_of(world, other) == 1


async def test_default_cap_of_two_unfinished_jobs(world: World) -> None:
    await world.start()
    await answer(world, await separate_link(world, "one"))
    await answer(world, await separate_link(world, "two"))
    refused = await answer(world, await separate_link(world, "three"))
    assert refused.ephemeral and "2 unfinished jobs" in refused.content
    # When one finishes, the member may ask again.
    assert world.app is not None
    first = (await world.app.store.list_jobs(requester_id=world.member.id, oldest_first=True))[0]
    await world.discord.wait_until(lambda: bool(world.vidgo.tasks))
    job = await world.wait_job(first.id, JobState.SUBMITTED, JobState.RUNNING)
    await world.vidgo.finish(job.vidgo_task_id or "")
    await world.wait_job(first.id, JobState.DELIVERED)
    accepted = await answer(world, await separate_link(world, "four"))
    assert not accepted.ephemeral
    assert await jobs_of(world) == 3


async def test_two_simultaneous_requests_cannot_both_pass_a_cap_of_one(world: World) -> None:
    await world.start()
    await answer(
        world, await slash(world, "karaoke settings max_unfinished", permissions=MANAGER, count=1)
    )
    first, second = await asyncio.gather(separate_link(world, "a"), separate_link(world, "b"))
    replies = [await answer(world, first), await answer(world, second)]
    refused = [r for r in replies if r.ephemeral]
    assert len(refused) == 1 and "1 unfinished job" in refused[0].content
    assert await jobs_of(world) == 1
    # No public "thinking…" placeholder is left behind for the refused request.
    public = [
        m
        for m in world.discord.channel_messages(world.guild.channel_id)
        if not m.ephemeral and not m.deleted and m.interaction_id is not None
    ]
    assert len(public) == 1
    assert world.discord.rule_violations == []


async def test_allowed_channels_and_the_required_role(world: World) -> None:
    await world.start()
    karaoke = world.discord.add_channel(world.guild.id, name="karaoke-night")
    singers = world.discord.add_role(world.guild.id, "singers")
    assert world.app is not None
    await world.discord.wait_until(
        lambda: (
            (g := world.app.bot.get_guild(world.guild.id)) is not None
            and g.get_role(singers) is not None
            and g.get_channel(karaoke) is not None
        )
    )
    await answer(
        world,
        await slash(world, "karaoke settings allow_channel", permissions=MANAGER, channel=karaoke),
    )
    refused = await answer(world, await separate_link(world, "elsewhere"))
    assert refused.ephemeral and f"<#{karaoke}>" in refused.content
    await answer(
        world,
        await slash(world, "karaoke settings required_role", permissions=MANAGER, role=singers),
    )
    no_role = await answer(world, await separate_link(world, "norole", channel_id=karaoke))
    assert no_role.ephemeral and f"<@&{singers}>" in no_role.content
    assert not no_role.pinged.get("roles")
    world.discord.give_role(world.guild.id, world.member.id, singers)
    ok = await answer(world, await separate_link(world, "ok", channel_id=karaoke))
    assert not ok.ephemeral
    shown = text(
        await answer(world, await slash(world, "karaoke settings show", permissions=MANAGER))
    )
    assert f"<#{karaoke}>" in shown and f"<@&{singers}>" in shown
    # Taking the only channel off the list means everywhere again.
    await answer(
        world,
        await slash(world, "karaoke settings remove_channel", permissions=MANAGER, channel=karaoke),
    )
    back = await answer(world, await separate_link(world, "back"))
    assert not back.ephemeral
    assert world.discord.rule_violations == []


async def test_settings_of_one_server_do_not_touch_another(world: World) -> None:
    other = world.discord.add_guild(name="Other Club")
    app = await world.start()
    await app.bot.tree.sync()  # global commands, so the second server has them too
    await answer(
        world, await slash(world, "karaoke settings daily_quota", permissions=MANAGER, count=1)
    )
    await answer(world, await separate_link(world, "one"))
    assert (await answer(world, await separate_link(world, "two"))).ephemeral
    elsewhere = await answer(
        world, await separate_link(world, "three", guild_id=other.id, channel_id=other.channel_id)
    )
    assert not elsewhere.ephemeral
    shown = await answer(
        world,
        await slash(
            world,
            "karaoke settings show",
            permissions=MANAGER,
            guild_id=other.id,
            channel_id=other.channel_id,
        ),
    )
    assert "10 jobs" in text(shown)


async def finish_newest(world: World) -> str:
    job = await world.job_for_task_wait()
    await world.vidgo.finish(job.vidgo_task_id or "")
    await world.wait_job(job.id, JobState.DELIVERED)
    return job.id


async def test_results_go_to_the_result_channel_and_status_stays(world: World) -> None:
    await world.start()
    results = world.discord.add_channel(world.guild.id, name="karaoke-results")
    await answer(
        world,
        await slash(world, "karaoke settings result_channel", permissions=MANAGER, channel=results),
    )
    status = await answer(world, await separate_link(world, "song"))
    assert status.channel_id == world.guild.channel_id
    job_id = await finish_newest(world)
    [result] = world.outcome_messages(job_id)
    assert result.channel_id == results
    assert f"<@{world.member.id}>" in result.content
    await world.discord.wait_until(lambda: f"in <#{results}>" in str(status.embeds))
    # A result channel the bot may not post in falls back to where the command ran; the
    # setting warns about it.
    world.discord.deny_channel(results)
    assert world.app is not None
    bot = world.app.bot
    await world.discord.wait_until(
        lambda: not (c := bot.get_channel(results)).permissions_for(c.guild.me).send_messages  # type: ignore[union-attr]
    )
    warned = await answer(
        world,
        await slash(world, "karaoke settings result_channel", permissions=MANAGER, channel=results),
    )
    assert "I cannot post there yet" in warned.content
    await answer(world, await separate_link(world, "second"))
    second = await finish_newest(world)
    [fallback] = world.outcome_messages(second)
    assert fallback.channel_id == world.guild.channel_id
    # Clearing the setting posts where the command ran again.
    cleared = await answer(
        world, await slash(world, "karaoke settings result_channel", permissions=MANAGER)
    )
    assert "where the command ran" in cleared.content
    assert world.discord.rule_violations == []


async def test_dm_on_completion_sends_a_copy_and_a_blocked_dm_changes_nothing(
    world: World,
) -> None:
    await world.start()
    await answer(
        world,
        await slash(world, "karaoke settings dm_on_completion", permissions=MANAGER, enabled=True),
    )
    await answer(world, await separate_link(world, "song"))
    job_id = await finish_newest(world)
    nonce = f"stemcord-{job_id}"
    assert len(world.outcome_messages(job_id, world.guild.channel_id)) == 1
    assert [m.nonce for m in world.discord.dm_messages(world.member.id)] == [nonce]
    # With DMs closed the channel message still counts: delivered once, no retry.
    world.discord.block_dms(world.member.id)
    await answer(world, await separate_link(world, "other"))
    second = await finish_newest(world)
    assert len(world.outcome_messages(second, world.guild.channel_id)) == 1
    assert world.outcome_messages(second, world.discord.users[world.member.id].dm_channel_id) == []
    assert world.discord.rule_violations == []


async def test_settings_survive_a_restart(world: World) -> None:
    await world.start()
    await answer(
        world, await slash(world, "karaoke settings cooldown", permissions=MANAGER, seconds=45)
    )
    await world.stop()
    await world.start()
    shown = await answer(world, await slash(world, "karaoke settings show", permissions=MANAGER))
    assert "45 seconds" in text(shown)
