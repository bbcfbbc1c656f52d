"""/separate's fast layer: choosing the source, and the command over the real desk."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from unittest import mock

import discord
import pytest

from bot.jobs import JobRequest, Submitted
from bot.policy import GuildPolicy
from bot.sources import SourceError
from cogs.desk import JobDesk
from cogs.i18n import Translations
from cogs.separate import (
    AttachmentInfo,
    SeparateCog,
    SeparationView,
    choose_source,
    source_problem_sentence,
)
from storage.jobstate import JobState
from storage.records import Admission, LimitReached, LimitRule, SourceKind
from tests.helpers import interaction, job, private_answer

T = Translations.load()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "Tell me what to separate"),
        ({"task_id": "T", "audio_id": "A", "link": "https://x.org/a.mp3"}, "only one source"),
        ({"task_id": "T"}, "`audio_id` is missing"),
        ({"audio_id": "A"}, "`task_id` is missing"),
        ({"link": "ftp://x"}, "not an http"),
    ],
)
def test_invalid_combinations_explain_the_fix(options: dict[str, Any], message: str) -> None:
    with pytest.raises(SourceError) as refused:
        choose_source(
            task_id=options.get("task_id"),
            audio_id=options.get("audio_id"),
            link=options.get("link"),
            file=None,
            max_bytes=100,
        )
    assert message in source_problem_sentence(refused.value, T, "en-US")


def test_each_single_source_is_accepted() -> None:
    assert (
        choose_source(task_id="T", audio_id="A", link=None, file=None, max_bytes=1).kind
        is SourceKind.IDS
    )
    assert (
        choose_source(
            task_id=None, audio_id=None, link="https://x.org/a.mp3", file=None, max_bytes=1
        ).kind
        is SourceKind.URL
    )
    info = AttachmentInfo("https://cdn.discordapp.com/a/1/s.mp3", "s.mp3", "audio/mpeg", 10)
    assert (
        choose_source(task_id=None, audio_id=None, link=None, file=info, max_bytes=100).kind
        is SourceKind.ATTACHMENT
    )


@pytest.fixture
def cog(desk: JobDesk, policies: Any, engine: Any) -> SeparateCog:
    engine.submit.return_value = Submitted(job(), Admission.NEW)
    engine.attach_status_message.return_value = job()
    return SeparateCog(desk, policies, translations=T, max_upload_mb=10)


async def test_bad_input_is_ephemeral_and_nothing_is_submitted(
    cog: SeparateCog, engine: Any
) -> None:
    inter = interaction()
    await cog.separate.callback(cog, inter, task_id="T")
    assert "audio_id" in private_answer(inter)
    inter.response.defer.assert_not_awaited()
    engine.submit.assert_not_awaited()


async def test_valid_input_defers_then_submits_the_planned_job(
    cog: SeparateCog, engine: Any, delivery: Any
) -> None:
    inter = interaction()
    inter.user = mock.Mock(spec_set=discord.Member, id=42, roles=[])
    stems = discord.app_commands.Choice(name="every stem", value="all")
    await cog.separate.callback(cog, inter, task_id=" T ", audio_id="A", stems=stems)
    inter.response.defer.assert_awaited_once_with(thinking=True)
    [call] = engine.submit.await_args_list
    request: JobRequest = call.args[0]
    assert request.model == "stem-split"
    assert request.source_task_id == "T"
    assert (request.requester_id, request.channel_id, request.guild_id) == (42, 7, 9)
    # The deferred answer became the job's status message.
    delivery.remember_interaction.assert_called_once_with(job().id, inter, Admission.NEW)
    inter.edit_original_response.assert_awaited()
    engine.attach_status_message.assert_awaited_once_with(job().id, 555)


async def test_a_limit_raised_at_admission_becomes_a_private_refusal(
    cog: SeparateCog, engine: Any
) -> None:
    engine.submit.side_effect = LimitReached(LimitRule.COOLDOWN, 30, 1_800_000_030.0)
    inter = interaction()
    await cog.separate.callback(cog, inter, task_id="T", audio_id="A")
    inter.response.defer.assert_awaited_once()
    inter.delete_original_response.assert_awaited_once()
    assert private_answer(inter).startswith("Cooldown")
    engine.attach_status_message.assert_not_awaited()


async def test_the_gate_refuses_before_acknowledging(
    cog: SeparateCog, engine: Any, policies: Any
) -> None:
    policies.get.return_value = GuildPolicy(allowed_channel_ids=(1,))
    inter = interaction()
    await cog.separate.callback(cog, inter, task_id="T", audio_id="A")
    assert "<#1>" in private_answer(inter)
    inter.response.defer.assert_not_awaited()
    engine.submit.assert_not_awaited()


async def test_a_failure_to_record_says_nothing_was_sent(cog: SeparateCog, engine: Any) -> None:
    engine.submit.side_effect = RuntimeError("disk full")
    inter = interaction()
    await cog.separate.callback(cog, inter, task_id="T", audio_id="A")
    content = inter.edit_original_response.await_args.kwargs["content"]
    assert "Nothing was sent to Vidgo" in content


def test_the_quality_of_an_upload_is_on_its_status_and_its_result() -> None:
    enhanced = job(
        source_kind=SourceKind.URL,
        model="upload-and-separate-vocals",
        source_url="https://cdn.example.org/a.mp3",
        options={"model_name": "enhanced", "output_type": "general"},
        outcome=JobState.SUCCEEDED,
        result={"stems": {"vocals": "https://cdn.example.org/v.mp3"}},
    )
    assert ("Quality", "enhanced") in SeparationView(translations=T).status_details(
        enhanced, "en-US"
    )
    fields = {
        f.name: f.value
        for f in SeparationView(translations=T).render(enhanced, "en-US").embed.fields
    }
    assert fields["Quality"] == "enhanced"
    # A job from before the option sent no model_name: Vidgo's default, standard.
    older = replace(enhanced, options={"output_type": "general"})
    assert ("Quality", "standard") in SeparationView(translations=T).status_details(older, "en-US")


def test_a_quality_asked_for_a_vidgo_song_is_said_to_be_unused() -> None:
    asked = job(source_kind=SourceKind.IDS, options={"quality": "enhanced"})
    [_stems, (name, value)] = SeparationView(translations=T).status_details(asked, "en-US")
    assert name == "Quality" and "for files and links" in value
    assert SeparationView(translations=T).status_details(
        job(source_kind=SourceKind.IDS, options={}), "en-US"
    ) == [("Stems", "vocals + instrumental")]
