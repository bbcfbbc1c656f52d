"""Job buttons: one custom_id format, the router, and the status message's Refresh and Cancel."""

from __future__ import annotations

import re
from typing import Any
from unittest import mock

import discord
import pytest

from cogs.buttons import (
    ButtonRouter,
    CancelButton,
    JobButton,
    RefreshButton,
    RefreshLimiter,
    job_custom_id,
    status_items,
)
from cogs.i18n import Translations
from cogs.lyrics import LyricsButton
from cogs.midi import MidiButton
from storage.jobstate import JobState
from tests.cogs.conftest import Press
from tests.helpers import interaction, job, private_answer

T = Translations.load()

REQUESTER = 42
WAITING = {"state": JobState.RUNNING, "outcome": None}
MODERATOR = discord.Permissions(manage_messages=True)


# -- one format -----------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [RefreshButton, CancelButton, LyricsButton, MidiButton])
def test_every_job_button_uses_the_one_custom_id_format(cls: type[JobButton]) -> None:
    button = cls("2345abcdef")
    assert button.custom_id == job_custom_id(cls.ACTION, "2345abcdef")
    assert button.custom_id == f"stemcord:{cls.ACTION}:2345abcdef"
    assert len(button.custom_id) <= 100
    match = re.match(button.template, button.custom_id)
    assert match is not None and match["job_id"] == "2345abcdef"
    assert re.match(button.template, button.custom_id.replace("stemcord", "other")) is None
    # Each template matches its own action only.
    others = {RefreshButton, CancelButton, LyricsButton, MidiButton} - {cls}
    assert all(re.match(button.template, o("2345abcdef").custom_id) is None for o in others)


def test_status_has_refresh_and_cancel_only_while_waiting() -> None:
    items = status_items(job(**WAITING), T, "en-US")
    assert [i.custom_id for i in items] == [  # type: ignore[attr-defined]
        "stemcord:refresh:abcdefghjk",
        "stemcord:cancel:abcdefghjk",
    ]
    for state in (JobState.SUCCEEDED, JobState.DELIVERED, JobState.CANCELLED):
        assert status_items(job(state=state), T, "en-US") == []


def test_refresh_limiter_allows_one_refresh_per_interval() -> None:
    now = [0.0]
    limiter = RefreshLimiter(10.0, monotonic=lambda: now[0])
    assert limiter.wait_left("a") == 0.0
    now[0] = 4.0
    assert limiter.wait_left("a") == pytest.approx(6.0)
    assert limiter.wait_left("b") == 0.0
    now[0] = 10.5
    assert limiter.wait_left("a") == 0.0


# -- the router -----------------------------------------------------------------------------


def client_with(router: ButtonRouter) -> mock.Mock:
    client = mock.Mock(spec_set=["router"])
    client.router = router
    return client


async def test_a_press_reaches_the_handler_routed_to_its_action() -> None:
    router = ButtonRouter(translations=T)
    handler = mock.AsyncMock()
    router.route("refresh", handler)
    inter = interaction()
    inter.client = client_with(router)
    await RefreshButton("2345abcdef").callback(inter)
    handler.assert_awaited_once_with(inter, "2345abcdef")


async def test_an_unrouted_button_and_a_failing_handler_get_a_private_sentence() -> None:
    router = ButtonRouter(translations=T)
    router.route("cancel", mock.AsyncMock(side_effect=RuntimeError("bug")))
    unrouted = interaction()
    unrouted.client = client_with(router)
    await RefreshButton("2345abcdef").callback(unrouted)
    assert "no longer does anything" in private_answer(unrouted)
    failing = interaction()
    failing.client = client_with(router)
    await CancelButton("2345abcdef").callback(failing)
    assert "went wrong" in private_answer(failing)


def test_an_action_is_routed_once() -> None:
    router = ButtonRouter(translations=T)
    router.route("refresh", mock.AsyncMock())
    with pytest.raises(ValueError, match="twice"):
        router.route("refresh", mock.AsyncMock())


# -- Refresh and Cancel ---------------------------------------------------------------------


@pytest.mark.parametrize("cls", [RefreshButton, CancelButton, MidiButton])
async def test_others_are_refused_privately(
    cls: type[JobButton], press: Press, engine: Any
) -> None:
    waiting = job(**WAITING, result={"stems": {}, "vidgo_task_id": "sep"})
    inter = press(waiting, user_id=1)
    await cls(waiting.id).callback(inter)
    assert f"Only <@{REQUESTER}>" in private_answer(inter)
    engine.cancel.assert_not_awaited()
    engine.poll_now.assert_not_awaited()
    engine.submit.assert_not_awaited()


async def test_a_job_of_another_server_is_not_found(press: Press, engine: Any) -> None:
    inter = press(job(guild_id=1234, **WAITING))
    await CancelButton("abcdefghjk").callback(inter)
    assert "can't find" in private_answer(inter)
    engine.cancel.assert_not_awaited()


async def test_moderator_cancels_someone_elses_job(press: Press, engine: Any) -> None:
    waiting = job(**WAITING)
    engine.cancel.return_value = job(state=JobState.CANCELLED, outcome=None)
    inter = press(waiting, user_id=1, perms=MODERATOR)
    await CancelButton(waiting.id).callback(inter)
    engine.cancel.assert_awaited_once_with(waiting.id)
    inter.response.edit_message.assert_awaited_once()
    assert "will not post" in private_answer(inter)


async def test_the_moderator_role_counts_as_a_moderator(
    press: Press, engine: Any, policies: Any
) -> None:
    from bot.policy import GuildPolicy

    policies.get.return_value = GuildPolicy(moderator_role_id=77)
    engine.cancel.return_value = job(state=JobState.CANCELLED, outcome=None)
    inter = press(job(**WAITING), user_id=1, roles=(77,))
    await CancelButton("abcdefghjk").callback(inter)
    engine.cancel.assert_awaited_once()


async def test_refresh_asks_vidgo_once_per_interval(press: Press, engine: Any) -> None:
    waiting = job(**WAITING)
    engine.poll_now.return_value = waiting
    inter = press(waiting)
    await RefreshButton(waiting.id).callback(inter)
    engine.poll_now.assert_awaited_once_with(waiting.id)
    inter.response.edit_message.assert_awaited_once()
    again = press(waiting)
    await RefreshButton(waiting.id).callback(again)
    assert "try again in 10 s" in private_answer(again)
    assert engine.poll_now.await_count == 1


async def test_refreshing_a_finished_job_does_not_ask_vidgo(press: Press, engine: Any) -> None:
    inter = press(job(state=JobState.DELIVERED))
    await RefreshButton("abcdefghjk").callback(inter)
    engine.poll_now.assert_not_awaited()
    inter.response.edit_message.assert_awaited_once_with(embed=mock.ANY, view=None)
