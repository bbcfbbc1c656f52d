"""The server's rules apply to every way of starting a job, not only /separate."""

from __future__ import annotations

import asyncio

from bot.policy import GuildPolicy
from storage.jobstate import JobState
from tests.e2e.commands import answer, answered, lyrics_tasks, press, separated, set_policy, slash
from tests.e2e.conftest import World
from tests.fakes.vidgo import GENERATION_AUDIO_IDS, GENERATION_TASK_ID

OTHER_MEMBER = 990_000_000_000_000_003


async def test_the_message_menu_obeys_the_allowed_channels(world: World) -> None:
    elsewhere = world.discord.add_channel(world.guild.id, name="karaoke-only")
    await set_policy(world, GuildPolicy(allowed_channel_ids=(elsewhere,)))
    await world.start()
    posted = world.discord.add_message(
        world.guild.channel_id,
        author_id=OTHER_MEMBER,
        content="try this one https://cdn.example.org/songs/demo.mp3",
    )
    interaction = await world.discord.invoke_message_context(
        guild_id=world.guild.id,
        channel_id=world.guild.channel_id,
        user_id=world.member.id,
        name="Separate vocals",
        message_id=posted.id,
    )
    refused = await answer(world, interaction)
    assert refused.ephemeral and f"<#{elsewhere}>" in refused.content
    assert world.vidgo.tasks == {}
    assert world.discord.rule_violations == []


async def test_the_lyrics_command_obeys_the_required_role(world: World) -> None:
    singers = world.discord.add_role(world.guild.id, "singers")
    await set_policy(world, GuildPolicy(required_role_id=singers))
    await world.start()
    options = {"task_id": GENERATION_TASK_ID, "audio_id": GENERATION_AUDIO_IDS[0]}
    refused = await answer(world, await slash(world, "lyrics", **options))
    assert refused.ephemeral and f"<@&{singers}>" in refused.content
    assert not refused.pinged.get("roles")
    assert lyrics_tasks(world) == []
    world.discord.give_role(world.guild.id, world.member.id, singers)
    accepted = await answer(world, await slash(world, "lyrics", **options))
    assert accepted.ephemeral and "Working on the lyrics" in accepted.content
    await world.discord.wait_until(lambda: len(lyrics_tasks(world)) == 1)


async def test_a_lyrics_press_counts_against_the_members_daily_quota(world: World) -> None:
    await set_policy(world, GuildPolicy(daily_quota=1))
    await world.start()
    job, result = await separated(world)
    assert job.state is JobState.DELIVERED
    # The separation used the requester's one job of the day; the press would be a second.
    refused = await answer(world, await press(world, result))
    assert refused.ephemeral and "Daily quota of 1 reached" in refused.content
    assert lyrics_tasks(world) == []
    # Anyone else in the channel still may.
    other = await answer(world, await press(world, result, OTHER_MEMBER))
    assert other.ephemeral and "reply to this result" in other.content
    await world.discord.wait_until(lambda: len(lyrics_tasks(world)) == 1)
    assert world.discord.rule_violations == []


async def test_a_midi_press_counts_against_the_members_daily_quota(world: World) -> None:
    world.overrides["ENABLE_MIDI"] = True
    await set_policy(world, GuildPolicy(daily_quota=1))
    await world.start()
    job, result = await separated(world)
    pressed = await world.discord.invoke_component(
        guild_id=world.guild.id,
        channel_id=result.channel_id,
        user_id=world.member.id,
        message_id=result.id,
        custom_id=f"stemcord:midi:{job.id}",
    )
    refused = await answer(world, pressed)
    assert refused.ephemeral and "Daily quota of 1 reached" in refused.content
    assert [t for t in world.vidgo.tasks.values() if t.model == "generate-midi"] == []


async def test_lyrics_name_the_result_channel_they_go_to(world: World) -> None:
    results = world.discord.add_channel(world.guild.id, name="karaoke-results")
    await set_policy(world, GuildPolicy(result_channel_id=results))
    await world.start()
    options = {"task_id": GENERATION_TASK_ID, "audio_id": GENERATION_AUDIO_IDS[0]}
    accepted = await answer(world, await slash(world, "lyrics", **options))
    assert accepted.ephemeral and f"<#{results}>" in accepted.content


async def test_a_lyrics_press_obeys_the_required_role(world: World) -> None:
    singers = world.discord.add_role(world.guild.id, "singers")
    world.discord.give_role(world.guild.id, world.member.id, singers)
    await set_policy(world, GuildPolicy(required_role_id=singers))
    await world.start()
    _, result = await separated(world)
    # A member without the role cannot spend the server's credits through the button.
    refused = await answered(world, await press(world, result, OTHER_MEMBER))
    assert f"<@&{singers}>" in refused
    await asyncio.sleep(0.2)
    assert lyrics_tasks(world) == []
    accepted = await answered(world, await press(world, result))
    assert "reply to this result" in accepted
    await world.discord.wait_until(lambda: len(lyrics_tasks(world)) == 1)
    assert world.discord.rule_violations == []


async def test_a_lyrics_press_obeys_the_allowed_channels(world: World) -> None:
    await world.start()
    _, result = await separated(world)
    elsewhere = world.discord.add_channel(world.guild.id, name="karaoke-only")
    await set_policy(world, GuildPolicy(allowed_channel_ids=(elsewhere,)))
    refused = await answered(world, await press(world, result))
    assert f"<#{elsewhere}>" in refused
    await asyncio.sleep(0.2)
    assert lyrics_tasks(world) == []


async def test_a_midi_press_obeys_the_required_role_even_for_the_requester(world: World) -> None:
    world.overrides["ENABLE_MIDI"] = True
    singers = world.discord.add_role(world.guild.id, "singers")
    world.discord.give_role(world.guild.id, world.member.id, singers)
    await set_policy(world, GuildPolicy(required_role_id=singers))
    await world.start()
    job, result = await separated(world)
    world.discord.take_role(world.guild.id, world.member.id, singers)
    pressed = await world.discord.invoke_component(
        guild_id=world.guild.id,
        channel_id=result.channel_id,
        user_id=world.member.id,
        message_id=result.id,
        custom_id=f"stemcord:midi:{job.id}",
    )
    refused = await answer(world, pressed)
    assert refused.ephemeral and f"<@&{singers}>" in refused.content
    assert [t for t in world.vidgo.tasks.values() if t.model == "generate-midi"] == []
