"""/separate's fast layer: choosing the source, and the command callback with mocks."""

from __future__ import annotations

from typing import Any
from unittest import mock

import discord
import pytest

from bot.engine import SeparationRequest, Submitted
from bot.sources import SourceError
from bot.vidgo.results import Model
from cogs.separate import AttachmentInfo, SeparateCog, choose_source
from storage.records import Admission, SourceKind
from tests.cogs.test_render import job


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
    with pytest.raises(SourceError, match=message):
        choose_source(
            task_id=options.get("task_id"),
            audio_id=options.get("audio_id"),
            link=options.get("link"),
            file=None,
            max_bytes=100,
        )


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


def make_cog() -> tuple[SeparateCog, mock.Mock]:
    bot = mock.Mock()
    bot.settings.MAX_UPLOAD_MB = 10
    bot.engine = mock.AsyncMock()
    bot.engine.submit.return_value = Submitted(job(), Admission.NEW)
    bot.engine.attach_status_message.return_value = job()
    bot.engine.store.get_guild_settings.return_value = {}  # the default policy
    bot.engine.store.limit_reached.return_value = None
    bot.delivery = mock.Mock()
    bot.delivery.show_progress = mock.AsyncMock()
    bot.delivery.status_message = mock.AsyncMock(return_value=(discord.Embed(), None))
    return SeparateCog(bot), bot


def make_interaction() -> mock.Mock:
    interaction = mock.Mock(spec_set=discord.Interaction)
    interaction.response = mock.Mock(spec_set=discord.InteractionResponse)
    interaction.response.send_message = mock.AsyncMock()
    interaction.response.defer = mock.AsyncMock()
    interaction.edit_original_response = mock.AsyncMock(return_value=mock.Mock(id=555))
    interaction.user = mock.Mock(id=42)
    interaction.channel_id = 7
    interaction.guild_id = 9
    return interaction


async def test_bad_input_is_ephemeral_and_nothing_is_submitted() -> None:
    cog, bot = make_cog()
    interaction = make_interaction()
    await cog.separate.callback(cog, interaction, task_id="T")
    interaction.response.send_message.assert_awaited_once()
    args, kwargs = interaction.response.send_message.call_args
    assert kwargs["ephemeral"] is True and "audio_id" in args[0]
    interaction.response.defer.assert_not_awaited()
    bot.engine.submit.assert_not_awaited()


async def test_valid_input_defers_then_submits_the_planned_job() -> None:
    cog, bot = make_cog()
    interaction = make_interaction()
    stems = discord.app_commands.Choice(name="every stem", value="all")
    await cog.separate.callback(cog, interaction, task_id=" T ", audio_id="A", stems=stems)
    interaction.response.defer.assert_awaited_once_with(thinking=True)
    [call] = bot.engine.submit.await_args_list
    request: SeparationRequest = call.args[0]
    assert request.plan.model is Model.STEM_SPLIT
    assert request.source.task_id == "T"
    assert (request.requester_id, request.channel_id, request.guild_id) == (42, 7, 9)
    interaction.edit_original_response.assert_awaited()
    bot.engine.attach_status_message.assert_awaited_once_with(job().id, 555)
