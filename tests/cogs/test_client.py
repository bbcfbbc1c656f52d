"""The client's defaults and the command tree's one error handler."""

from __future__ import annotations

import logging
from unittest import mock

import discord
import pytest
from discord import app_commands

from cogs.buttons import ButtonRouter
from cogs.client import StemcordBot, answer_command_error, bot_intents, error_sentence
from cogs.i18n import Translations
from tests.helpers import interaction, private_answer

T = Translations.load()


def test_the_client_asks_for_guild_events_only_and_pings_nobody_by_default() -> None:
    intents = bot_intents()
    assert intents.guilds and not intents.messages and not intents.message_content
    assert not intents.members and not intents.presences

    async def setup(_: StemcordBot) -> None:
        return None

    bot = StemcordBot(setup=setup, router=ButtonRouter(translations=T))
    mentions = bot.allowed_mentions
    assert mentions is not None
    assert mentions.to_dict() == discord.AllowedMentions.none().to_dict()
    # The tree's error handler is Stemcord's own.
    assert bot.tree.on_error is answer_command_error


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (app_commands.NoPrivateMessage(), "servers only"),
        (app_commands.MissingPermissions(["manage_guild"]), "may not use"),
        (app_commands.CheckFailure(), "may not use"),
        (app_commands.CommandInvokeError(mock.Mock(), RuntimeError("bug")), "went wrong"),
    ],
)
def test_every_command_failure_has_a_sentence(
    error: app_commands.AppCommandError, words: str
) -> None:
    assert words in error_sentence(error)


async def test_a_failure_before_any_answer_is_answered_privately(
    caplog: pytest.LogCaptureFixture,
) -> None:
    inter = interaction()
    inter.command = mock.Mock(spec_set=app_commands.Command, qualified_name="jobs queue")
    error = app_commands.CommandInvokeError(mock.Mock(), RuntimeError("bug"))
    with caplog.at_level(logging.ERROR, logger="cogs.client"):
        await answer_command_error(inter, error)
    assert "went wrong" in private_answer(inter)
    assert "command /jobs queue failed" in caplog.text


async def test_a_failure_after_deferring_is_answered_with_a_private_followup() -> None:
    inter = interaction()
    inter.command = None
    inter.response.is_done.return_value = True
    await answer_command_error(inter, app_commands.CheckFailure())
    inter.response.send_message.assert_not_awaited()
    [call] = inter.followup.send.await_args_list
    assert call.kwargs == {"ephemeral": True} and "may not use" in call.args[0]
