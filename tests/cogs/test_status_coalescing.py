"""Status edits through the Discord delivery: coalesced per job, the end never lost.

What is asserted is what was sent to Discord (the edit calls on the status message).
"""

from __future__ import annotations

from dataclasses import replace
from unittest import mock

import discord

from bot.progress import ProgressTracker
from cogs.delivery import DiscordDelivery
from cogs.i18n import Translations
from cogs.views import KindViews
from storage.base import JobStore
from storage.jobstate import JobState
from tests.helpers import job

T = Translations.load()


def client_with_status() -> tuple[mock.Mock, mock.AsyncMock, mock.AsyncMock]:
    """A client whose channel 7 posts (id 70) and whose status message 99 records edits."""
    client = mock.Mock(spec_set=discord.Client)
    client.user = mock.Mock(spec_set=discord.ClientUser, id=1)
    channel = mock.Mock(spec=discord.PartialMessageable, id=7)
    channel.send = mock.AsyncMock(return_value=mock.Mock(id=70))
    status = mock.Mock(spec_set=discord.PartialMessage)
    status.edit = mock.AsyncMock()
    channel.get_partial_message.return_value = status
    client.get_partial_messageable.return_value = channel
    return client, channel.send, status.edit


def tracker() -> ProgressTracker:
    store = mock.Mock(spec_set=JobStore)
    store.queue_position = mock.AsyncMock(return_value=(1, 1))
    store.recent_durations = mock.AsyncMock(return_value=[])
    return ProgressTracker(store)


def buttons(edit_call: mock._Call) -> list[str]:
    view = edit_call.kwargs["view"]
    return [] if view is None else [item.custom_id for item in view.children]


async def test_a_delivery_returns_before_its_status_edit_which_then_shows_the_end(
    views: KindViews,
) -> None:
    client, send, edit = client_with_status()
    delivery = DiscordDelivery(client, views, tracker(), translations=T, status_interval=3600.0)
    running = job(status_message_id=99, state=JobState.RUNNING, outcome=None, updated_at=1.0)
    await delivery.show_progress(running)
    assert buttons(edit.call_args_list[0]) == [
        "stemcord:refresh:abcdefghjk",
        "stemcord:cancel:abcdefghjk",
    ]
    done = replace(
        running,
        state=JobState.SUCCEEDED,
        outcome=JobState.SUCCEEDED,
        result={"stems": {"vocals": "https://s/v.mp3"}, "vidgo_task_id": "sep"},
        updated_at=2.0,
    )
    assert await delivery.deliver(done) == 70
    send.assert_awaited_once()
    assert edit.await_count == 1  # the end waits for the interval, off the delivery's path
    await delivery.settle()
    assert edit.await_count == 2
    assert buttons(edit.call_args_list[1]) == []  # the end: the buttons are gone


async def test_a_burst_of_progress_edits_sends_one_edit_with_the_newest_state(
    views: KindViews,
) -> None:
    client, _, edit = client_with_status()
    delivery = DiscordDelivery(client, views, tracker(), translations=T, status_interval=3600.0)
    base = job(status_message_id=99, state=JobState.SUBMITTED, outcome=None, updated_at=1.0)
    await delivery.show_progress(base)
    for i in range(2, 10):
        await delivery.show_progress(replace(base, state=JobState.RUNNING, updated_at=float(i)))
    await delivery.show_progress(replace(base, state=JobState.CANCELLED, updated_at=10.0))
    assert edit.await_count == 1
    await delivery.settle()
    assert edit.await_count == 2
    assert buttons(edit.call_args_list[1]) == []  # the cancelled job, not a running one
