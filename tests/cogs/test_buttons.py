"""Buttons and the status message's progress: rendering, checks and callbacks with mocks."""

from __future__ import annotations

import re
from dataclasses import replace
from unittest import mock

import discord
import pytest

from bot.engine import ErrorKind, Submitted
from bot.midi import MIDI, NO_NOTES, midi_result, parse_midi_data
from bot.progress import Progress, ProgressTracker
from cogs.buttons import (
    CancelButton,
    MidiButton,
    RefreshButton,
    RefreshLimiter,
    midi_file_name,
    render_midi,
    status_items,
)
from cogs.delivery import DiscordDelivery
from cogs.render import (
    eta_text,
    ordinal,
    queue_text,
    render_outcome,
    rough_duration,
    status_embed,
)
from storage.base import JobStore
from storage.jobstate import JobState
from storage.records import Admission, JobRecord
from tests.cogs.test_render import job
from tests.fakes.vidgo import MIDI_INSTRUMENTS

REQUESTER = 42
WAITING = {"state": JobState.RUNNING, "outcome": None}


# -- progress text ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "text"), [(1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th"), (22, "22nd")]
)
def test_ordinals(n: int, text: str) -> None:
    assert ordinal(n) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(5, "under a minute"), (90, "about 2 min"), (3599, "about 1 h"), (4000, "about 1 h 7 min")],
)
def test_rough_durations(seconds: float, text: str) -> None:
    assert rough_duration(seconds) == text


def test_queue_and_eta_text() -> None:
    assert queue_text(Progress(1, 1, None, 0)) == "1st of 1 unfinished job in this server"
    assert queue_text(Progress(3, 7, None, 0)) == "3rd of 7 unfinished jobs in this server"
    assert queue_text(Progress(None, None, None, 0)) is None
    assert eta_text(Progress(1, 1, None, 10)) == "no estimate yet"
    assert eta_text(Progress(1, 1, 300, 60)) == "about 4 min (typical: about 5 min)"
    assert eta_text(Progress(1, 1, 30, 60)).startswith("any moment now")


def test_status_embed_shows_progress_only_while_waiting() -> None:
    fields = {
        f.name: f.value for f in status_embed(job(**WAITING), None, Progress(2, 3, 600, 0)).fields
    }
    assert fields["Queue"] == "2nd of 3 unfinished jobs in this server"
    assert fields["ETA"].startswith("about 10 min")
    done = status_embed(job(), None, Progress(2, 3, 600, 0))
    assert {f.name for f in done.fields}.isdisjoint({"Queue", "ETA"})


# -- which buttons where --------------------------------------------------------------------


def test_status_has_refresh_and_cancel_only_while_waiting() -> None:
    items = status_items(job(**WAITING))
    assert [i.custom_id for i in items] == [  # type: ignore[attr-defined]
        "stemcord:refresh:abcdefghjk",
        "stemcord:cancel:abcdefghjk",
    ]
    for state in (JobState.SUCCEEDED, JobState.DELIVERED, JobState.CANCELLED):
        assert status_items(job(state=state)) == []


def test_custom_ids_round_trip_through_their_templates() -> None:
    for cls in (RefreshButton, CancelButton, MidiButton):
        button = cls("2345abcdef")
        assert len(button.custom_id) <= 100
        match = re.match(button.template, button.custom_id)
        assert match is not None and match["job_id"] == "2345abcdef"
        assert re.match(button.template, button.custom_id.replace("stemcord", "other")) is None


def test_midi_is_offered_for_succeeded_separations_with_a_task() -> None:
    with_task = {"stems": {"vocals": "https://s/v.mp3"}, "vidgo_task_id": "sep"}
    assert isinstance(MidiButton.offer(job(result=with_task)), MidiButton)
    assert MidiButton.offer(job()) is None  # no Vidgo task id kept
    assert MidiButton.offer(job(result=with_task, outcome=JobState.FAILED)) is None
    assert MidiButton.offer(job(result=with_task, kind=MIDI)) is None


def test_refresh_limiter_allows_one_refresh_per_interval() -> None:
    now = [0.0]
    limiter = RefreshLimiter(10.0, monotonic=lambda: now[0])
    assert limiter.wait_left("a") == 0.0
    now[0] = 4.0
    assert limiter.wait_left("a") == pytest.approx(6.0)
    assert limiter.wait_left("b") == 0.0
    now[0] = 10.5
    assert limiter.wait_left("a") == 0.0


# -- the MIDI message -----------------------------------------------------------------------


def midi_job(**changes: object) -> JobRecord:
    result = midi_result(parse_midi_data({"instruments": list(MIDI_INSTRUMENTS)}), "midi-task")
    fields: dict[str, object] = {
        "kind": MIDI,
        "model": "generate-midi",
        "result": result,
        "reply_to_message_id": 777,
        "track": {"title": "Harbour <@&1> Lights/..", "duration": 3},
    }
    fields.update(changes)
    return job(**fields)


def test_midi_message_replies_with_the_file() -> None:
    outcome = render_outcome(midi_job())
    assert outcome.reply_to == 777
    [(name, data)] = outcome.files
    assert name == "Harbour 1 Lights.mid" and data.startswith(b"MThd")
    fields = {f.name: str(f.value) for f in outcome.embed.fields}
    assert "Drums: 3 notes (drums, channel 10)" in fields["Tracks"]
    assert fields["Length"] == "0:02"
    assert "<@&1>" not in str(outcome.embed.title)
    assert outcome.content.startswith(f"<@{REQUESTER}>")


def test_failed_midi_says_why_without_a_file() -> None:
    outcome = render_midi(
        midi_job(state=JobState.FAILED, outcome=JobState.FAILED, result=None, error_kind=NO_NOTES)
    )
    assert outcome.files == [] and outcome.reply_to == 777
    assert "no notes" in str(outcome.embed.description)


@pytest.mark.parametrize(
    ("error_kind", "outcome", "words"),
    [
        (ErrorKind.NOT_FOUND, JobState.FAILED, "no longer knows this separation"),
        (ErrorKind.VIDGO_FAILED, JobState.FAILED, "could not make MIDI from this song: boom"),
        (ErrorKind.INVALID, JobState.FAILED, "refused to make MIDI"),
        (ErrorKind.EXPIRED, JobState.EXPIRED, "did not finish the MIDI in time"),
        (ErrorKind.AUTH, JobState.FAILED, "misconfigured"),
    ],
)
def test_midi_failures_are_worded_for_midi(error_kind: str, outcome: JobState, words: str) -> None:
    failed = midi_job(
        state=outcome, outcome=outcome, result=None, error_kind=error_kind, last_error="boom"
    )
    assert words in str(render_midi(failed).embed.description)


def test_midi_file_name_falls_back_to_the_job_id() -> None:
    assert midi_file_name(job(track=None)) == "stemcord-abcdefghjk.mid"


# -- callbacks -------------------------------------------------------------------------------


def make_interaction(
    stored: JobRecord | None, *, user_id: int = REQUESTER, manage_messages: bool = False
) -> mock.Mock:
    interaction = mock.Mock(spec_set=discord.Interaction)
    interaction.response = mock.Mock(spec_set=discord.InteractionResponse)
    interaction.response.send_message = mock.AsyncMock()
    interaction.response.edit_message = mock.AsyncMock()
    interaction.response.defer = mock.AsyncMock()
    interaction.followup = mock.Mock(spec_set=discord.Webhook)
    interaction.followup.send = mock.AsyncMock()
    member = mock.Mock(spec_set=discord.Member)
    member.id = user_id
    member.guild_permissions = discord.Permissions(manage_messages=manage_messages)
    # What Discord resolved for the member in this interaction (access checks read it first).
    member.resolved_permissions = discord.Permissions(manage_messages=manage_messages)
    member.roles = []
    interaction.user = member
    interaction.guild_id = 9
    interaction.channel_id = 7
    interaction.message = mock.Mock(id=555)
    bot = mock.Mock()
    bot.settings.ENABLE_MIDI = True
    bot.refresh_limiter = RefreshLimiter()
    bot.engine = mock.AsyncMock()
    bot.engine.get_job.return_value = stored
    bot.engine.posted_result.return_value = None
    bot.engine.poll_now.return_value = stored
    bot.engine.store.get_guild_settings = mock.AsyncMock(return_value={})
    bot.delivery.status_message = mock.AsyncMock(return_value=(discord.Embed(), None))
    interaction.client = bot
    return interaction


def ephemeral_text(interaction: mock.Mock) -> str:
    args, kwargs = interaction.response.send_message.call_args
    assert kwargs["ephemeral"] is True
    return str(args[0])


async def test_others_are_refused_privately() -> None:
    waiting = job(**WAITING)
    for button in (RefreshButton(waiting.id), CancelButton(waiting.id), MidiButton(waiting.id)):
        interaction = make_interaction(waiting, user_id=1)
        await button.callback(interaction)
        assert f"Only <@{REQUESTER}>" in ephemeral_text(interaction)
        interaction.client.engine.cancel.assert_not_awaited()
        interaction.client.engine.poll_now.assert_not_awaited()
        interaction.client.engine.submit.assert_not_awaited()


async def test_a_job_of_another_server_is_not_found() -> None:
    interaction = make_interaction(job(guild_id=1234, **WAITING))
    await CancelButton("abcdefghjk").callback(interaction)
    assert "can't find" in ephemeral_text(interaction)
    interaction.client.engine.cancel.assert_not_awaited()


async def test_moderator_cancels_someone_elses_job() -> None:
    waiting = job(**WAITING)
    interaction = make_interaction(waiting, user_id=1, manage_messages=True)
    interaction.client.engine.cancel.return_value = job(state=JobState.CANCELLED, outcome=None)
    await CancelButton(waiting.id).callback(interaction)
    interaction.client.engine.cancel.assert_awaited_once_with(waiting.id)
    interaction.response.edit_message.assert_awaited_once()
    [call] = interaction.followup.send.await_args_list
    assert "will not post" in call.args[0] and call.kwargs["ephemeral"] is True


async def test_refresh_asks_vidgo_once_per_interval() -> None:
    waiting = job(**WAITING)
    interaction = make_interaction(waiting)
    await RefreshButton(waiting.id).callback(interaction)
    interaction.client.engine.poll_now.assert_awaited_once_with(waiting.id)
    interaction.response.edit_message.assert_awaited_once()
    await RefreshButton(waiting.id).callback(interaction)
    assert "try again in 10 s" in ephemeral_text(interaction)
    assert interaction.client.engine.poll_now.await_count == 1


async def test_refreshing_a_finished_job_does_not_ask_vidgo() -> None:
    interaction = make_interaction(job(state=JobState.DELIVERED))
    await RefreshButton("abcdefghjk").callback(interaction)
    interaction.client.engine.poll_now.assert_not_awaited()
    interaction.response.edit_message.assert_awaited_once_with(embed=mock.ANY, view=None)


async def test_midi_press_submits_a_reply_job() -> None:
    separation = job(result={"stems": {}, "vidgo_task_id": "sep"})
    interaction = make_interaction(separation)
    interaction.client.engine.submit.return_value = Submitted(midi_job(), Admission.NEW)
    await MidiButton(separation.id).callback(interaction)
    interaction.response.defer.assert_awaited_once_with(ephemeral=True, thinking=True)
    [call] = interaction.client.engine.submit.await_args_list
    request = call.args[0]
    assert request.source_key == "generate-midi:sep" and request.reply_to_message_id == 555
    assert ".mid" in interaction.followup.send.call_args.args[0]


async def test_midi_press_on_a_result_sent_by_dm_works_for_its_requester_only() -> None:
    separation = job(result={"stems": {}, "vidgo_task_id": "sep"})
    interaction = make_interaction(separation)
    interaction.guild_id = None  # the DM copy (or the DM fallback) of the result
    interaction.client.engine.submit.return_value = Submitted(midi_job(), Admission.NEW)
    await MidiButton(separation.id).callback(interaction)
    [call] = interaction.client.engine.submit.await_args_list
    # The job counts in its own server, whose rules apply.
    assert call.args[0].guild_id == separation.guild_id
    stranger = make_interaction(separation, user_id=1)
    stranger.guild_id = None
    await MidiButton(separation.id).callback(stranger)
    assert "can't find" in ephemeral_text(stranger)
    stranger.client.engine.submit.assert_not_awaited()


async def test_midi_press_without_a_task_or_when_off_is_refused() -> None:
    interaction = make_interaction(job())
    await MidiButton("abcdefghjk").callback(interaction)
    assert "no Vidgo separation" in ephemeral_text(interaction)
    interaction = make_interaction(job(result={"stems": {}, "vidgo_task_id": "sep"}))
    interaction.client.settings.ENABLE_MIDI = False
    await MidiButton("abcdefghjk").callback(interaction)
    assert "turned off" in ephemeral_text(interaction)
    interaction.client.engine.submit.assert_not_awaited()


# -- the delivery path -----------------------------------------------------------------------


def delivery_with(store: mock.Mock, **kw: object) -> tuple[DiscordDelivery, mock.Mock]:
    client = mock.Mock(spec_set=discord.Client)
    channel = mock.Mock(spec_set=discord.PartialMessageable)
    channel.send = mock.AsyncMock(return_value=mock.Mock(id=321))
    status = mock.Mock(spec_set=discord.PartialMessage)
    status.edit = mock.AsyncMock()
    channel.get_partial_message.return_value = status
    client.get_partial_messageable.return_value = channel
    return DiscordDelivery(client, progress=ProgressTracker(store), **kw), channel


def progress_store() -> mock.Mock:
    store = mock.Mock(spec_set=JobStore)
    store.queue_position = mock.AsyncMock(return_value=(1, 1))
    store.recent_durations = mock.AsyncMock(return_value=[])
    return store


async def test_delivering_costs_no_progress_query_and_removes_the_status_buttons() -> None:
    store = progress_store()
    delivery, channel = delivery_with(store, result_items=[MidiButton.offer])
    done = job(result={"stems": {"vocals": "https://s/v.mp3"}, "vidgo_task_id": "sep"})
    assert await delivery.deliver(replace(done, status_message_id=99)) == 321
    store.queue_position.assert_not_awaited()
    store.recent_durations.assert_not_awaited()
    # The result carries the offered MIDI button after the stem link.
    view = channel.send.call_args.kwargs["view"]
    assert [getattr(i, "custom_id", None) for i in view.children] == [
        None,
        f"stemcord:midi:{done.id}",
    ]
    channel.get_partial_message.assert_called_once_with(99)
    channel.get_partial_message.return_value.edit.assert_awaited_once_with(
        embed=mock.ANY, view=None
    )


async def test_a_waiting_jobs_status_has_progress_and_buttons() -> None:
    store = progress_store()
    delivery, channel = delivery_with(store)
    await delivery.show_progress(job(status_message_id=99, **WAITING))
    kwargs = channel.get_partial_message.return_value.edit.call_args.kwargs
    assert [i.custom_id for i in kwargs["view"].children] == [
        "stemcord:refresh:abcdefghjk",
        "stemcord:cancel:abcdefghjk",
    ]
    fields = {f.name: f.value for f in kwargs["embed"].fields}
    assert fields["Queue"].startswith("1st of 1") and fields["ETA"] == "no estimate yet"
    store.queue_position.assert_awaited_once()


async def test_a_failing_progress_query_still_edits_the_status() -> None:
    store = progress_store()
    store.queue_position.side_effect = RuntimeError("database is locked")
    delivery, channel = delivery_with(store)
    await delivery.show_progress(job(status_message_id=99, **WAITING))
    kwargs = channel.get_partial_message.return_value.edit.call_args.kwargs
    assert "Queue" not in {f.name for f in kwargs["embed"].fields}


async def test_a_job_without_a_status_message_is_not_rendered() -> None:
    store = progress_store()
    delivery, channel = delivery_with(store)
    await delivery.show_progress(job(kind=MIDI, **WAITING))
    channel.get_partial_message.assert_not_called()
    store.queue_position.assert_not_awaited()
