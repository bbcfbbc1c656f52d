"""Refresh, Cancel and MIDI buttons and the status message's progress, end to end."""

from __future__ import annotations

import asyncio
import io
import time
from typing import Any

import mido

from bot.policy import GuildPolicy
from storage.jobstate import JobState
from storage.records import JobRecord, NewJob, SourceKind
from storage.sqlite import SqliteJobStore
from tests.e2e.commands import answer, set_policy
from tests.e2e.conftest import World
from tests.fakes.discord_models import FakeInteraction, FakeMessage
from tests.fakes.vidgo import GENERATION_TITLES, MIDI_INSTRUMENTS

STRANGER = 990_000_000_000_000_001


def custom_ids(message: FakeMessage) -> list[str]:
    return [
        c["custom_id"]
        for row in message.components
        for c in row.get("components", [])
        if c.get("custom_id")
    ]


def embed_text(message: FakeMessage) -> str:
    return str(message.embeds)


async def status_of(world: World, job: JobRecord) -> FakeMessage:
    return await world.discord.wait_for_message(
        world.guild.channel_id,
        lambda m: m.interaction_id is not None and f"Job {job.id}" in embed_text(m),
    )


async def press(
    world: World, message: FakeMessage, custom_id: str, user_id: int | None = None
) -> FakeInteraction:
    interaction = await world.discord.invoke_component(
        guild_id=world.guild.id,
        channel_id=message.channel_id,
        user_id=user_id if user_id is not None else world.member.id,
        message_id=message.id,
        custom_id=custom_id,
    )
    await world.discord.wait_until(lambda: interaction.acked)
    return interaction


async def next_job(world: World, after: JobRecord | None = None) -> JobRecord:
    """The server's newest job (other than ``after``) once Vidgo has its task."""
    assert world.app is not None
    store = world.app.store
    async with asyncio.timeout(10):
        while True:
            newest = await store.list_jobs(guild_id=world.guild.id, limit=1)
            if newest and newest[0].vidgo_task_id and (after is None or newest[0].id != after.id):
                return newest[0]
            await asyncio.sleep(0.02)


def reply_text(interaction: FakeInteraction) -> str:
    """The interaction's ephemeral answer (initial message or followups)."""
    texts = [str((r.data or {}).get("content")) for r in interaction.responses if r.type == 4]
    texts += [m.content for m in interaction.followups]
    return " ".join(texts)


async def test_status_buttons_refresh_and_disappear_when_done(world: World) -> None:
    await world.start()
    await world.separate_song(0)
    job = await world.job_for_task_wait()
    status = await status_of(world, job)
    await world.discord.wait_until(lambda: bool(custom_ids(status)))
    assert custom_ids(status) == [f"stemcord:refresh:{job.id}", f"stemcord:cancel:{job.id}"]
    task = world.vidgo.tasks[job.vidgo_task_id or ""]
    world.vidgo.set_running(task.task_id)
    before = task.detail_calls
    refresh = await press(world, status, f"stemcord:refresh:{job.id}")
    # The press edits the message it is on, and Vidgo is asked at once (not after 30 s).
    assert refresh.response_type == 7
    await world.wait_job(job.id, JobState.RUNNING)
    assert task.detail_calls > before
    await world.discord.wait_until(lambda: "Separating" in embed_text(status))
    # A second press within the rate limit does not reach Vidgo.
    calls = task.detail_calls
    again = await press(world, status, f"stemcord:refresh:{job.id}")
    assert again.ephemeral and "try again in" in reply_text(again)
    assert task.detail_calls == calls
    await world.vidgo.finish(task.task_id)
    await world.wait_job(job.id, JobState.DELIVERED)
    await world.discord.wait_until(lambda: "Done" in embed_text(status))
    assert custom_ids(status) == []
    assert world.discord.rule_violations == []


async def test_others_are_refused_and_the_job_goes_on(world: World) -> None:
    await world.start()
    await world.separate_song(0)
    job = await world.job_for_task_wait()
    status = await status_of(world, job)
    await world.discord.wait_until(lambda: bool(custom_ids(status)))
    for action in ("cancel", "refresh"):
        refused = await press(world, status, f"stemcord:{action}:{job.id}", STRANGER)
        assert refused.ephemeral
        assert f"Only <@{world.member.id}>" in reply_text(refused) and action in reply_text(refused)
    assert (await world.wait_job(job.id, JobState.SUBMITTED)).state is JobState.SUBMITTED
    await world.vidgo.finish(job.vidgo_task_id or "")
    await world.wait_job(job.id, JobState.DELIVERED)
    assert len(world.outcome_messages(job.id)) == 1


MODERATOR = 990_000_000_000_000_002


async def make_moderator_role(world: World) -> None:
    """A role without permissions, configured as the server's moderator role."""
    role_id = world.discord.add_role(world.guild.id, "karaoke mods")
    world.discord.give_role(world.guild.id, MODERATOR, role_id)
    await set_policy(world, GuildPolicy(moderator_role_id=role_id))


async def test_moderator_cancels_and_the_late_result_is_not_posted(world: World) -> None:
    await make_moderator_role(world)
    await world.start()
    await world.separate_song(0)
    job = await world.job_for_task_wait()
    status = await status_of(world, job)
    await world.discord.wait_until(lambda: bool(custom_ids(status)))
    # The moderator holds only the configured moderator role, no Manage Messages.
    refresh = await press(world, status, f"stemcord:refresh:{job.id}", MODERATOR)
    assert refresh.response_type == 7 and not refresh.ephemeral
    cancel = await press(world, status, f"stemcord:cancel:{job.id}", MODERATOR)
    assert cancel.response_type == 7
    await world.wait_job(job.id, JobState.CANCELLED)
    await world.discord.wait_until(lambda: bool(cancel.followups))
    assert cancel.followups[0].ephemeral and "will not post" in reply_text(cancel)
    assert "Cancelled" in embed_text(status) and custom_ids(status) == []
    # The cancelled job's interaction is not kept for the life of the process.
    assert world.app is not None
    delivery = world.app.delivery
    await world.discord.wait_until(lambda: job.id not in delivery._interactions)
    # Vidgo finishes anyway and calls back: nothing is posted.
    await world.vidgo.finish(job.vidgo_task_id or "")
    await world.vidgo.wait_for_callbacks(1)
    await asyncio.sleep(0.3)
    assert world.outcome_messages(job.id) == []
    assert (await world.wait_job(job.id, JobState.CANCELLED)).state is JobState.CANCELLED
    assert world.discord.rule_violations == []


async def test_a_job_id_from_another_server_is_not_found(world: World) -> None:
    other_guild = world.discord.add_guild(name="Other Club")
    await world.start()
    await world.separate_song(0)
    job = await world.job_for_task_wait()
    # A message in the other server carrying a button with this server's job id.
    forged = world.discord.add_message(other_guild.channel_id, author_id=STRANGER, content="x")
    forged.components = [
        {
            "type": 1,
            "components": [
                {"type": 2, "style": 4, "label": "Cancel", "custom_id": f"stemcord:cancel:{job.id}"}
            ],
        }
    ]
    interaction = await world.discord.invoke_component(
        guild_id=other_guild.id,
        channel_id=other_guild.channel_id,
        user_id=world.member.id,
        message_id=forged.id,
        custom_id=f"stemcord:cancel:{job.id}",
    )
    await world.discord.wait_until(lambda: interaction.acked)
    assert interaction.ephemeral and "can't find" in reply_text(interaction)
    assert (await world.wait_job(job.id, JobState.SUBMITTED)).state is JobState.SUBMITTED


async def test_requester_cancels_a_job_that_already_finished(world: World) -> None:
    await world.start()
    await world.separate_song(0)
    job = await world.job_for_task_wait()
    status = await status_of(world, job)
    await world.discord.wait_until(lambda: bool(custom_ids(status)))
    await world.vidgo.finish(job.vidgo_task_id or "")
    await world.wait_job(job.id, JobState.DELIVERED)
    # A stale copy of the buttons (e.g. the edit was lost): pressing Cancel explains.
    status.components = [
        {
            "type": 1,
            "components": [{"type": 2, "style": 4, "label": "Cancel", "custom_id": cid}],
        }
        for cid in [f"stemcord:cancel:{job.id}"]
    ]
    cancel = await press(world, status, f"stemcord:cancel:{job.id}")
    await world.discord.wait_until(lambda: bool(cancel.followups))
    assert "already finished" in reply_text(cancel)
    assert custom_ids(status) == []
    assert (await world.wait_job(job.id, JobState.DELIVERED)).state is JobState.DELIVERED


async def test_buttons_work_after_a_restart(world: World) -> None:
    await world.start()
    await world.separate_song(0)
    job = await world.job_for_task_wait()
    await world.separate_song(1)
    other = await next_job(world, job)
    status = await status_of(world, job)
    other_status = await status_of(world, other)
    await world.discord.wait_until(lambda: bool(custom_ids(status) and custom_ids(other_status)))
    await world.stop()
    await world.start()
    # A new process knows nothing of these messages: the custom_id and the store suffice.
    refresh = await press(world, other_status, f"stemcord:refresh:{other.id}")
    assert refresh.response_type == 7 and not refresh.ephemeral
    cancel = await press(world, status, f"stemcord:cancel:{job.id}")
    assert cancel.response_type == 7
    await world.wait_job(job.id, JobState.CANCELLED)
    await world.vidgo.finish(other.vidgo_task_id or "")
    await world.wait_job(other.id, JobState.DELIVERED)
    await world.vidgo.finish(job.vidgo_task_id or "")
    await asyncio.sleep(0.3)
    assert world.outcome_messages(job.id) == []
    assert len(world.outcome_messages(other.id)) == 1
    assert world.discord.rule_violations == []


async def seed_finished(world: World, model: str, durations: list[float]) -> None:
    """Delivered jobs of ``model`` that took ``durations`` seconds (before the app starts)."""
    store = SqliteJobStore(world.db_path)
    await store.open()
    # Within the last day, so retention at start-up keeps them.
    first = time.time() - 86_400.0
    for i, seconds in enumerate(durations):
        created = first + i * 1000
        job_id = f"seed{i}{model[:3]}"
        await store.admit(
            NewJob(
                id=job_id,
                kind="separation",
                source_kind=SourceKind.URL,
                source_key=f"{model}:seed:{i}",
                model=model,
                requester_id=1,
                channel_id=1,
                guild_id=1,
                source_url="https://cdn.example.org/seed.mp3",
                deadline_at=created + 1800,
            ),
            created,
            submit_lease_until=created + 60,
        )
        await store.transition(
            job_id, JobState.SUBMITTED, created + 1, vidgo_task_id=f"seed-task-{job_id}"
        )
        await store.record_outcome(
            job_id, JobState.SUCCEEDED, created + seconds, result={"stems": {}}
        )
        await store.transition(job_id, JobState.DELIVERED, created + seconds, due_at=None)
    await store.close()


async def test_status_shows_queue_position_and_eta(world: World) -> None:
    await seed_finished(world, "stem-split", [100.0, 200.0, 300.0, 600.0, 150.0])
    await world.start()
    await world.separate_song(0)
    first = await next_job(world)
    first_status = await status_of(world, first)
    # The edit after the submit (with the track's title) is the last one until it finishes.
    await world.discord.wait_until(lambda: GENERATION_TITLES[0] in embed_text(first_status))
    await world.separate_song(1, stems="all")
    second = await next_job(world, first)
    second_status = await status_of(world, second)
    await world.discord.wait_until(lambda: "ETA" in embed_text(second_status))
    # No separate-vocals job has finished yet; stem-split's median is 200 s.
    assert "No. 1 of 1 unfinished job in this server" in embed_text(first_status)
    assert "no estimate yet" in embed_text(first_status)
    assert "No. 2 of 2 unfinished jobs in this server" in embed_text(second_status)
    assert "about 3 min (typical: about 3 min)" in embed_text(second_status)
    # The first one ending moves the second up (shown on its next refresh).
    await world.vidgo.finish(first.vidgo_task_id or "")
    await world.wait_job(first.id, JobState.DELIVERED)
    await press(world, second_status, f"stemcord:refresh:{second.id}")
    await world.discord.wait_until(lambda: "No. 1 of 1 unfinished" in embed_text(second_status))
    # The first one's end reaches its status message within one status-edit interval.
    await world.discord.wait_until(lambda: "ETA" not in embed_text(first_status))
    assert world.discord.rule_violations == []


# -- the message menu -----------------------------------------------------------------------


async def separate_message(world: World, message: FakeMessage) -> FakeInteraction:
    interaction = await world.discord.invoke_message_context(
        guild_id=world.guild.id,
        channel_id=world.guild.channel_id,
        user_id=world.member.id,
        name="Separate vocals",
        message_id=message.id,
    )
    await world.discord.wait_until(lambda: interaction.acked)
    return interaction


async def test_message_menu_with_an_audio_attachment(world: World) -> None:
    await world.start()
    posted = world.discord.add_message(
        world.guild.channel_id,
        author_id=STRANGER,
        content="my cover, what do you think",
        attachments=[
            {"filename": "notes.txt", "content_type": "text/plain", "data": b"lyrics"},
            {"filename": "cover.mp3", "content_type": "audio/mpeg", "data": b"ID3..."},
        ],
    )
    interaction = await separate_message(world, posted)
    assert not interaction.ephemeral
    job = await world.job_for_task_wait()
    assert job.source_kind is SourceKind.ATTACHMENT and job.requester_id == world.member.id
    task = world.vidgo.tasks[job.vidgo_task_id or ""]
    assert task.model == "upload-and-separate-vocals"
    assert "cover.mp3" in task.input["audio_url"]
    status = await status_of(world, job)
    assert status.interaction_id == interaction.id
    await world.vidgo.finish(task.task_id)
    await world.wait_job(job.id, JobState.DELIVERED)
    assert len(world.outcome_messages(job.id)) == 1
    assert world.discord.rule_violations == []


async def test_message_menu_with_a_vidgo_song_link(world: World) -> None:
    await world.start()
    gen_id, tracks = next(iter(world.vidgo.generations.items()))
    path = str(tracks[1]["audio_url"]).removeprefix(world.vidgo.base_url)
    posted = world.discord.add_message(
        world.guild.channel_id,
        author_id=STRANGER,
        content=f"see https://example.org/page and <https://storage.vidgo.ai{path}>!",
    )
    await separate_message(world, posted)
    job = await world.job_for_task_wait()
    assert job.source_kind is SourceKind.IDS
    assert (job.source_task_id, job.source_audio_id) == (gen_id, tracks[1]["audio_id"])
    assert world.vidgo.tasks[job.vidgo_task_id or ""].model == "separate-vocals"


async def test_message_menu_without_audio_explains_privately(world: World) -> None:
    await world.start()
    posted = world.discord.add_message(
        world.guild.channel_id,
        author_id=STRANGER,
        content="no links here",
        attachments=[{"filename": "photo.png", "content_type": "image/png", "data": b"PNG"}],
    )
    interaction = await separate_message(world, posted)
    assert interaction.ephemeral and "no audio attachment or link" in reply_text(interaction)
    assert world.vidgo.tasks == {}


# -- MIDI -----------------------------------------------------------------------------------


async def finished_result(world: World) -> tuple[JobRecord, FakeMessage]:
    await world.separate_song(0)
    job = await world.job_for_task_wait()
    await world.vidgo.finish(job.vidgo_task_id or "")
    done = await world.wait_job(job.id, JobState.DELIVERED)
    [result] = world.outcome_messages(job.id)
    return done, result


def notes_of(data: bytes) -> dict[str, list[tuple[int, int, int]]]:
    """Track name -> [(channel, note, velocity)] of every note_on, read back with mido."""
    midi = mido.MidiFile(file=io.BytesIO(data))
    tracks: dict[str, list[tuple[int, int, int]]] = {}
    for track in midi.tracks[1:]:
        tracks[track.name] = [(m.channel, m.note, m.velocity) for m in track if m.type == "note_on"]
    return tracks


async def test_midi_button_replies_with_a_midi_file(world: World) -> None:
    world.overrides["ENABLE_MIDI"] = True
    await world.start()
    job, result = await finished_result(world)
    assert f"stemcord:midi:{job.id}" in custom_ids(result)
    press_midi = await press(world, result, f"stemcord:midi:{job.id}")
    answered = await answer(world, press_midi)
    assert answered.ephemeral and ".mid" in answered.content
    [midi_task] = [t for t in world.vidgo.tasks.values() if t.model == "generate-midi"]
    assert midi_task.input == {"task_id": job.vidgo_task_id}
    await world.vidgo.finish(midi_task.task_id)
    await world.discord.wait_until(
        lambda: any(m.reference_id == result.id for m in world.discord.messages[result.channel_id])
    )
    [reply] = [m for m in world.discord.messages[result.channel_id] if m.reference_id == result.id]
    assert f"<@{world.member.id}>" in reply.content
    [attachment] = reply.attachments
    assert attachment.filename == "Harbour Lights.mid"
    tracks = notes_of(attachment.data)
    expected: dict[str, Any] = {
        i["name"]: [(n["pitch"], max(1, round(n["velocity"] * 127))) for n in i["notes"]]
        for i in MIDI_INSTRUMENTS
    }
    assert set(tracks) == set(expected)
    for name, notes in tracks.items():
        assert sorted((note, vel) for _, note, vel in notes) == sorted(expected[name])
        channels = {channel for channel, _, _ in notes}
        # Drums on MIDI channel 10 (index 9), and only drums.
        assert (channels == {9}) if name == "Drums" else (9 not in channels)
    # A second press gets a private pointer to the MIDI already posted: no second Vidgo task
    # and no second public post.
    await world.wait_job(await midi_job_id(world), JobState.DELIVERED)
    again = await press(world, result, f"stemcord:midi:{job.id}")
    pointer = await answer(world, again)
    assert pointer.ephemeral and f"/{reply.id}" in pointer.content
    await asyncio.sleep(0.3)
    replies = [m for m in world.discord.messages[result.channel_id] if m.reference_id == result.id]
    assert len(replies) == 1
    assert sum(1 for t in world.vidgo.tasks.values() if t.model == "generate-midi") == 1
    assert world.discord.rule_violations == []


async def midi_job_id(world: World) -> str:
    assert world.app is not None
    [midi_job] = [j for j in await world.app.store.list_jobs() if j.kind == "midi"]
    return midi_job.id


async def test_midi_with_no_notes_says_so(world: World) -> None:
    world.overrides["ENABLE_MIDI"] = True
    world.vidgo.empty_midi = True
    await world.start()
    job, result = await finished_result(world)
    await press(world, result, f"stemcord:midi:{job.id}")
    await world.discord.wait_until(
        lambda: any(t.model == "generate-midi" for t in world.vidgo.tasks.values())
    )
    [midi_task] = [t for t in world.vidgo.tasks.values() if t.model == "generate-midi"]
    await world.vidgo.finish(midi_task.task_id)
    await world.discord.wait_until(
        lambda: any(m.reference_id == result.id for m in world.discord.messages[result.channel_id])
    )
    [reply] = [m for m in world.discord.messages[result.channel_id] if m.reference_id == result.id]
    assert reply.attachments == [] and "no notes" in embed_text(reply)


async def test_midi_is_off_by_default(world: World) -> None:
    await world.start()
    job, result = await finished_result(world)
    assert not any(cid.startswith("stemcord:midi:") for cid in custom_ids(result))
    # A MIDI button left on a message from when it was on answers that it is off.
    result.components.append(
        {
            "type": 1,
            "components": [
                {"type": 2, "style": 2, "label": "MIDI", "custom_id": f"stemcord:midi:{job.id}"}
            ],
        }
    )
    pressed = await press(world, result, f"stemcord:midi:{job.id}")
    assert pressed.ephemeral and "turned off" in reply_text(pressed)
    assert not any(t.model == "generate-midi" for t in world.vidgo.tasks.values())
    assert world.discord.rule_violations == []
