"""The MIDI kind's view: its message, its failures, its button and its press."""

from __future__ import annotations

from typing import Any

import discord
import pytest

from bot.jobs import ErrorKind, Submitted
from bot.midi import MIDI, NO_NOTES, midi_result, parse_midi_data
from bot.policy import GuildPolicy
from cogs.i18n import Translations
from cogs.midi import MidiButton, MidiView, midi_file_name, render_midi
from cogs.views import PressServices
from storage.jobstate import JobState
from storage.records import Admission, JobRecord
from tests.cogs.conftest import Press
from tests.fakes.vidgo import MIDI_INSTRUMENTS
from tests.helpers import interaction, job, private_answer

T = Translations.load()

REQUESTER = 42
SEPARATED = {"result": {"stems": {}, "vidgo_task_id": "sep"}}


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


def test_midi_is_offered_for_succeeded_separations_with_a_task_when_enabled() -> None:
    view = MidiView(translations=T, enabled=True)
    with_task = {"stems": {"vocals": "https://s/v.mp3"}, "vidgo_task_id": "sep"}
    assert isinstance(view.offer(job(result=with_task), "en-US"), MidiButton)
    assert view.offer(job(), "en-US") is None  # no Vidgo task id kept
    assert view.offer(job(result=with_task, outcome=JobState.FAILED), "en-US") is None
    assert view.offer(job(result=with_task, kind=MIDI), "en-US") is None
    assert MidiView(translations=T, enabled=False).offer(job(result=with_task), "en-US") is None


def test_midi_message_replies_with_the_file() -> None:
    outcome = MidiView(translations=T, enabled=True).render(midi_job(), "en-US")
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
        midi_job(state=JobState.FAILED, outcome=JobState.FAILED, result=None, error_kind=NO_NOTES),
        T,
        "en-US",
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
        (ErrorKind.UNCONFIRMED, JobState.FAILED, "could not be confirmed"),
    ],
)
def test_midi_failures_are_worded_for_midi(error_kind: str, outcome: JobState, words: str) -> None:
    failed = midi_job(
        state=outcome, outcome=outcome, result=None, error_kind=error_kind, last_error="boom"
    )
    assert words in MidiView(translations=T, enabled=True).failure_sentence(failed, "en-US")
    assert words in str(render_midi(failed, T, "en-US").embed.description)


def test_midi_file_name_falls_back_to_the_job_id() -> None:
    assert midi_file_name(job(track=None)) == "stemcord-abcdefghjk.mid"


async def test_midi_press_submits_a_reply_job(press: Press, engine: Any) -> None:
    separation = job(**SEPARATED)
    engine.submit.return_value = Submitted(midi_job(), Admission.NEW)
    inter = press(separation)
    await MidiButton(separation.id).callback(inter)
    inter.response.defer.assert_awaited_once_with(ephemeral=True, thinking=True)
    [call] = engine.submit.await_args_list
    request = call.args[0]
    assert request.source_key == "generate-midi:sep" and request.reply_to_message_id == 555
    # The reply goes where the result is, whatever the server's result channel is now.
    assert call.kwargs["policy"].result_channel_id is None
    assert ".mid" in private_answer(inter)


async def test_midi_press_on_a_result_sent_by_dm_works_for_its_requester_only(
    press: Press, engine: Any
) -> None:
    separation = job(**SEPARATED)
    engine.submit.return_value = Submitted(midi_job(), Admission.NEW)
    inter = press(separation)
    inter.guild_id = None  # the DM copy (or the DM fallback) of the result
    await MidiButton(separation.id).callback(inter)
    [call] = engine.submit.await_args_list
    # The job counts in its own server, whose rules apply.
    assert call.args[0].guild_id == separation.guild_id
    stranger = press(separation, user_id=1)
    stranger.guild_id = None
    await MidiButton(separation.id).callback(stranger)
    assert "can't find" in private_answer(stranger)
    assert engine.submit.await_count == 1


async def test_midi_press_without_a_task_is_refused(press: Press, engine: Any) -> None:
    inter = press(job())
    await MidiButton("abcdefghjk").callback(inter)
    assert "no Vidgo separation" in private_answer(inter)
    engine.submit.assert_not_awaited()


async def test_midi_press_is_refused_when_midi_is_off(engine: Any, services: PressServices) -> None:
    inter = interaction()
    await MidiView(translations=T, enabled=False).press(services, inter, "abcdefghjk")
    assert "turned off" in private_answer(inter)
    engine.get_job.assert_not_awaited()


async def test_midi_press_obeys_the_channel_rules(press: Press, engine: Any, policies: Any) -> None:
    policies.get.return_value = GuildPolicy(allowed_channel_ids=(5,))
    inter = press(job(**SEPARATED))
    await MidiButton("abcdefghjk").callback(inter)
    assert "<#5>" in private_answer(inter)
    engine.submit.assert_not_awaited()


async def test_midi_already_posted_is_pointed_to_privately(press: Press, engine: Any) -> None:
    engine.posted_result.return_value = midi_job(state=JobState.DELIVERED, result_message_id=31)
    inter = press(job(**SEPARATED))
    await MidiButton("abcdefghjk").callback(inter)
    assert "MIDI was already posted" in private_answer(inter)
    engine.submit.assert_not_awaited()


def test_the_button_is_a_plain_secondary_button() -> None:
    assert MidiButton("abcdefghjk").item.style is discord.ButtonStyle.secondary
