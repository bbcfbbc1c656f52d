"""The singer's key end to end: the real app, discord.py against the fake Discord, real audio
workers and a real media store.

Most tests here seed the media stage's work themselves: each keeps a 440 Hz backing track in
the media store and records a finished separation whose result names it (``result["media"]``)
and whose stage has run (``prepared_at``); the app then posts the
result and everything after is the app's own doing.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bot.engine import follow_up_id
from bot.keys import KEY
from bot.media import MediaStore
from storage.jobstate import JobState
from storage.records import NewJob, SourceKind
from storage.sqlite import SqliteJobStore
from tests.e2e.commands import answer
from tests.e2e.conftest import World
from tests.fakes.discord_models import FakeInteraction, FakeMessage, iter_components
from tests.fakes.vidgo import GENERATION_AUDIO_IDS, GENERATION_TASK_ID
from tests.keys_helpers import TONE_HZ, frequency_of, keep_backing, media_entry, shifted

SEPARATION_ID = "seedsep001"
MEDIA_KEY = "seedmedia1"
SELECT = 3


def media_dir(world: World) -> Path:
    return Path(world.settings().MEDIA_DIR)


async def seed_separation(world: World, *, options: dict[str, Any] | None = None) -> str:
    """A kept backing track and a separation that succeeded with it, due to be posted."""
    media = await MediaStore.open(media_dir(world))
    try:
        await keep_backing(media, world.db_path.parent, media_key=MEDIA_KEY)
    finally:
        media.close()
    store = SqliteJobStore(world.db_path)
    await store.open()
    now = time.time()
    try:
        await store.admit(
            NewJob(
                id=SEPARATION_ID,
                kind="separation",
                source_kind=SourceKind.IDS,
                source_key=f"separate-vocals:{GENERATION_TASK_ID}:{GENERATION_AUDIO_IDS[0]}",
                model="separate-vocals",
                requester_id=world.member.id,
                channel_id=world.guild.channel_id,
                guild_id=world.guild.id,
                source_task_id=GENERATION_TASK_ID,
                source_audio_id=GENERATION_AUDIO_IDS[0],
                deadline_at=now + 1800,
                options=options or {},
            ),
            now,
            submit_lease_until=now,
        )
        await store.transition(SEPARATION_ID, JobState.SUBMITTED, now, vidgo_task_id="seed-task")
        await store.record_outcome(
            SEPARATION_ID,
            JobState.SUCCEEDED,
            now,
            result={
                "stems": {
                    "vocals": "https://storage.example.org/v.mp3",
                    "instrumental": "https://storage.example.org/i.mp3",
                },
                "vidgo_task_id": "seed-task",
                "media": media_entry(MEDIA_KEY),
            },
            track={"title": "Harbour Lights", "duration": 3.0},
        )
        # Its files are kept already: the media stage has run (it would not run again).
        await store.update(SEPARATION_ID, now, prepared_at=now)
    finally:
        await store.close()
    return SEPARATION_ID


def custom_ids(message: FakeMessage) -> list[str]:
    return [str(c["custom_id"]) for c in iter_components(message.components) if "custom_id" in c]


async def posted_result(world: World) -> FakeMessage:
    """The separation's result message, once the app has posted it."""
    return await world.discord.wait_for_message(
        world.guild.channel_id,
        lambda m: m.nonce == f"stemcord-{SEPARATION_ID}",
        timeout=20,
    )


async def open_menu(world: World, result: FakeMessage, user_id: int | None = None) -> FakeMessage:
    """Press **Change key** on the result; the private menu it answers with."""
    pressed = await world.discord.invoke_component(
        guild_id=world.guild.id,
        channel_id=result.channel_id,
        user_id=user_id or world.member.id,
        message_id=result.id,
        custom_id=f"stemcord:key:{SEPARATION_ID}",
    )
    menu = await answer(world, pressed)
    assert menu.ephemeral
    return menu


async def pick(
    world: World, menu: FakeMessage, semitones: int, user_id: int | None = None
) -> tuple[FakeInteraction, FakeMessage]:
    """Pick a key in the menu; the interaction and the private answer."""
    picked = await world.discord.invoke_component(
        guild_id=world.guild.id,
        channel_id=menu.channel_id,
        user_id=user_id or world.member.id,
        message_id=menu.id,
        custom_id=f"stemcord:keypick:{SEPARATION_ID}",
        component_type=SELECT,
        values=[str(semitones)],
    )
    return picked, await answer(world, picked)


def replies_to(world: World, message: FakeMessage) -> list[FakeMessage]:
    return [
        m
        for m in world.discord.channel_messages(message.channel_id)
        if m.reference_id == message.id and not m.deleted
    ]


async def key_reply(world: World, result: FakeMessage, words: str) -> FakeMessage:
    return await world.discord.wait_for_message(
        result.channel_id,
        lambda m: m.reference_id == result.id and words in m.content,
        timeout=30,
    )


async def test_a_key_press_replies_with_the_backing_track_in_that_key(world: World) -> None:
    await seed_separation(world)
    await world.start()
    result = await posted_result(world)
    assert f"stemcord:key:{SEPARATION_ID}" in custom_ids(result)
    menu = await open_menu(world, result)
    assert f"stemcord:keypick:{SEPARATION_ID}" in custom_ids(menu)
    picked, answered = await pick(world, menu, 2)
    assert "as a reply to this result" in answered.content
    reply = await key_reply(world, result, "+2 semitones")
    assert reply.embeds[0]["title"] == "Backing track, +2 semitones"
    [attachment] = reply.attachments
    assert attachment.filename == "Harbour Lights (key +2).mp3"
    # What Discord received is what the member hears: the tone two semitones up.
    assert abs(frequency_of(attachment.data) - 493.88) <= 0.01 * 493.88
    assert attachment.size <= picked.payload["attachment_size_limit"]
    # The reply offers the control again, for another key.
    assert f"stemcord:key:{SEPARATION_ID}" in custom_ids(reply)
    assert world.discord.rule_violations == []


async def test_the_attachment_fits_the_limit_the_interaction_stated(world: World) -> None:
    await seed_separation(world)
    world.guild.upload_limit = 60_000  # the 192 kbps render (~72 KB) does not fit
    await world.start()
    result = await posted_result(world)
    menu = await open_menu(world, result)
    # The result's own post learned the limit only from Discord's refusal (a channel post has
    # no interaction to state it); from the pick on, every upload fits what was stated.
    before, refused = len(world.discord.requests), len(world.discord.rule_violations)
    picked, _ = await pick(world, menu, -3)
    assert picked.payload["attachment_size_limit"] == 60_000
    reply = await key_reply(world, result, "-3 semitones")
    [attachment] = reply.attachments
    assert 0 < attachment.size <= 60_000
    uploads = [f for r in world.discord.requests[before:] for f in r.files]
    assert uploads and all(f.size <= 60_000 for f in uploads)
    assert abs(frequency_of(attachment.data) - shifted(TONE_HZ, -3)) <= 0.01 * shifted(TONE_HZ, -3)
    assert any(f["name"] == "Quality" for f in reply.embeds[0].get("fields", []))
    assert world.discord.rule_violations[refused:] == []


async def test_a_second_pick_and_another_members_pick_reuse_the_posted_track(
    world: World,
) -> None:
    await seed_separation(world)
    await world.start()
    result = await posted_result(world)
    menu = await open_menu(world, result)
    await pick(world, menu, 4)
    reply = await key_reply(world, result, "+4 semitones")
    await world.wait_job(await key_job_id(world), JobState.DELIVERED)
    render = media_dir(world) / MEDIA_KEY / "instrumental_key_plus4.mp3"
    made_at = render.stat().st_mtime_ns
    _, again = await pick(world, menu, 4)
    assert f"/{reply.id}" in again.content  # a pointer, not a second post
    other = world.discord.add_user(name="second singer")
    other_menu = await open_menu(world, result, other.id)
    _, theirs = await pick(world, other_menu, 4, other.id)
    assert f"/{reply.id}" in theirs.content
    assert [m.id for m in replies_to(world, result)] == [reply.id]
    assert render.stat().st_mtime_ns == made_at  # never rendered again
    assert world.discord.rule_violations == []


async def key_job_id(world: World) -> str:
    assert world.app is not None
    [job] = [j for j in await world.app.store.list_jobs() if j.kind == KEY]
    return job.id


async def test_the_key_control_works_after_a_restart(world: World) -> None:
    await seed_separation(world)
    await world.start()
    result = await posted_result(world)
    menu = await open_menu(world, result)
    await world.stop()
    await world.start()
    # A new process knows nothing of the result or the menu: the custom_ids suffice.
    _, answered = await pick(world, menu, 1)
    assert "as a reply to this result" in answered.content
    reply = await key_reply(world, result, "+1 semitone")
    [attachment] = reply.attachments
    assert abs(frequency_of(attachment.data) - shifted(TONE_HZ, 1)) <= 0.01 * shifted(TONE_HZ, 1)
    again = await open_menu(world, result)  # the button on the old result, too
    assert f"stemcord:keypick:{SEPARATION_ID}" in custom_ids(again)
    assert world.discord.rule_violations == []


async def test_a_press_for_a_track_no_longer_kept_answers_plainly(world: World) -> None:
    await seed_separation(world)
    await world.start()
    result = await posted_result(world)
    menu = await open_menu(world, result)
    for kept in (media_dir(world) / MEDIA_KEY).iterdir():
        kept.unlink()  # retention removed it since the result was posted
    _, answered = await pick(world, menu, 2)
    assert answered.ephemeral
    assert answered.content == (
        "The backing track of this song is no longer kept; run /separate again."
    )
    assert replies_to(world, result) == []
    assert world.discord.rule_violations == []


async def test_separate_with_a_key_posts_the_result_then_the_track_in_that_key(
    world: World,
) -> None:
    await seed_separation(world, options={"key": -2, "attachment_limit": 10 * 1024 * 1024})
    await world.start()
    result = await posted_result(world)
    reply = await key_reply(world, result, "-2 semitones")
    [attachment] = reply.attachments
    assert abs(frequency_of(attachment.data) - shifted(TONE_HZ, -2)) <= 0.01 * shifted(TONE_HZ, -2)
    follow_up = await world.wait_job(follow_up_id(SEPARATION_ID, KEY), JobState.DELIVERED)
    assert follow_up.reply_to_message_id == result.id
    assert [m.id for m in replies_to(world, result)] == [reply.id]
    assert world.discord.rule_violations == []


async def test_separate_key_without_a_kept_backing_track_says_so_plainly(world: World) -> None:
    await seed_separation(world, options={"key": 5, "attachment_limit": 10 * 1024 * 1024})
    for kept in (media_dir(world) / MEDIA_KEY).iterdir():
        kept.unlink()
    await world.start()
    result = await posted_result(world)
    reply = await world.discord.wait_for_message(
        result.channel_id, lambda m: m.reference_id == result.id, timeout=20
    )
    assert reply.embeds[0]["description"] == (
        "The backing track of this song is no longer kept; run /separate again."
    )
    assert reply.attachments == []
    assert world.discord.rule_violations == []


async def test_the_separate_command_takes_a_key_and_follows_up_once(world: World) -> None:
    await world.start()
    [command] = [
        c for c in world.discord.synced_commands[world.guild.id] if c["name"] == "separate"
    ]
    [option] = [o for o in command["options"] if o["name"] == "key"]
    assert (option["type"], option["min_value"], option["max_value"]) == (4, -6, 6)
    await world.separate(task_id=GENERATION_TASK_ID, audio_id=GENERATION_AUDIO_IDS[0], key=3)
    job = await world.job_for_task_wait()
    assert job.options["key"] == 3
    assert job.options["attachment_limit"] == world.guild.upload_limit
    await world.vidgo.finish(job.vidgo_task_id or "")
    posted = await world.wait_job(job.id, JobState.DELIVERED)
    follow_up = await world.wait_job(follow_up_id(job.id, KEY), JobState.DELIVERED, timeout=30)
    assert follow_up.options["semitones"] == 3
    assert follow_up.reply_to_message_id == posted.result_message_id
    assert follow_up.requester_id == world.member.id
    # One reply to the result (the track, or why there is none), never two.
    [result] = world.outcome_messages(job.id)
    assert [m.id for m in replies_to(world, result)] == [follow_up.result_message_id]
    assert world.discord.rule_violations == []
