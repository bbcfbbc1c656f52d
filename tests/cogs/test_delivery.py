"""The Discord side of delivery: where the one message goes, its status message, progress.

The fallback chain is tested directly: the server's result channel, then the channel of the
request, then the requester's DMs; both unusable and DMs closed ends the delivery for good.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from unittest import mock

import discord
import pytest

from bot.delivery import DeliveryError
from bot.midi import MIDI
from bot.progress import Progress, ProgressTracker
from cogs.delivery import NONCE_TRUST_SECONDS, DiscordDelivery
from cogs.i18n import Translations
from cogs.render import eta_text, queue_text, rough_duration, status_embed
from cogs.separate import SeparationView
from cogs.views import KindViews
from storage.base import JobStore
from storage.jobstate import JobState
from tests.helpers import job

T = Translations.load()

WAITING = {"state": JobState.RUNNING, "outcome": None}
NOW = 1_800_000_000.0


def http_error(cls: type[discord.HTTPException], status: int, text: str) -> discord.HTTPException:
    return cls(mock.Mock(status=status, reason=text), text)


class Channels:
    """A client whose channels and users answer as each test says."""

    def __init__(self) -> None:
        self.client = mock.Mock(spec_set=discord.Client)
        self.client.user = mock.Mock(spec_set=discord.ClientUser, id=1)
        self.channels: dict[int, mock.Mock] = {}
        self.client.get_partial_messageable.side_effect = self.channel
        self.user = mock.Mock(spec_set=discord.User, id=42, dm_channel=None)
        self.user.send = mock.AsyncMock(return_value=mock.Mock(id=900))
        self.client.fetch_user = mock.AsyncMock(return_value=self.user)

    def channel(self, channel_id: int) -> mock.Mock:
        if channel_id not in self.channels:
            # spec, not spec_set: discord.py keeps ``id`` in a slot mock cannot see.
            channel = mock.Mock(spec=discord.PartialMessageable, id=channel_id)
            channel.send = mock.AsyncMock(return_value=mock.Mock(id=channel_id * 10))
            status = mock.Mock(spec_set=discord.PartialMessage)
            status.edit = mock.AsyncMock()
            channel.get_partial_message.return_value = status
            self.channels[channel_id] = channel
        return self.channels[channel_id]


def progress_store() -> mock.Mock:
    store = mock.Mock(spec_set=JobStore)
    store.queue_position = mock.AsyncMock(return_value=(1, 1))
    store.recent_durations = mock.AsyncMock(return_value=[])
    return store


def delivery_with(
    channels: Channels, views: KindViews, store: mock.Mock | None = None, **kw: Any
) -> DiscordDelivery:
    return DiscordDelivery(
        channels.client, views, ProgressTracker(store or progress_store()), translations=T, **kw
    )


# -- the fallback chain --------------------------------------------------------------------


async def test_the_result_goes_to_the_result_channel_first(views: KindViews) -> None:
    channels = Channels()
    delivery = delivery_with(channels, views)
    assert await delivery.deliver(job(result_channel_id=8)) == 80
    channels.channel(8).send.assert_awaited_once()
    channels.channel(7).send.assert_not_awaited()
    channels.user.send.assert_not_awaited()


async def test_an_unusable_result_channel_falls_back_to_the_request_channel(
    views: KindViews,
) -> None:
    channels = Channels()
    channels.channel(8).send.side_effect = http_error(discord.Forbidden, 403, "Missing Access")
    delivery = delivery_with(channels, views)
    assert await delivery.deliver(job(result_channel_id=8)) == 70
    channels.user.send.assert_not_awaited()


@pytest.mark.parametrize("error", [discord.NotFound, discord.Forbidden])
async def test_no_usable_channel_sends_a_dm(
    views: KindViews, error: type[discord.HTTPException]
) -> None:
    channels = Channels()
    channels.channel(8).send.side_effect = http_error(error, 404, "Unknown Channel")
    channels.channel(7).send.side_effect = http_error(error, 404, "Unknown Channel")
    delivery = delivery_with(channels, views)
    assert await delivery.deliver(job(result_channel_id=8)) == 900
    # The same message, with the same nonce, went to the DM.
    assert channels.user.send.await_args.kwargs["nonce"] == "stemcord-abcdefghjk"


async def test_no_channel_and_closed_dms_fail_for_good_naming_both(views: KindViews) -> None:
    channels = Channels()
    channels.channel(7).send.side_effect = http_error(discord.NotFound, 404, "Unknown Channel")
    channels.user.send.side_effect = http_error(discord.Forbidden, 403, "Cannot send messages")
    delivery = delivery_with(channels, views)
    with pytest.raises(DeliveryError) as failed:
        await delivery.deliver(job())
    assert failed.value.permanent
    assert "channel 7" in failed.value.reason and "DM to 42" in failed.value.reason


async def test_a_discord_outage_is_a_retryable_failure_not_a_dm(views: KindViews) -> None:
    channels = Channels()
    channels.channel(7).send.side_effect = http_error(discord.DiscordServerError, 503, "down")
    delivery = delivery_with(channels, views)
    with pytest.raises(DeliveryError) as failed:
        await delivery.deliver(job())
    assert not failed.value.permanent
    channels.user.send.assert_not_awaited()


async def test_the_message_pings_only_the_requester(views: KindViews) -> None:
    channels = Channels()
    await delivery_with(channels, views).deliver(job())
    allowed: discord.AllowedMentions = channels.channel(7).send.await_args.kwargs[
        "allowed_mentions"
    ]
    assert allowed.everyone is False and allowed.roles is False
    assert allowed.replied_user is False
    assert [user.id for user in allowed.users] == [42]  # type: ignore[union-attr]


# -- past the nonce window ---------------------------------------------------------------------


def history(*messages: Any) -> Any:
    async def listing(limit: int) -> Any:
        for message in messages:
            yield message

    return listing


def posted(message_id: int, *, author: int = 1, footer: str = "Job abcdefghjk") -> mock.Mock:
    embed = discord.Embed()
    embed.set_footer(text=footer)
    return mock.Mock(
        spec_set=discord.Message, id=message_id, author=mock.Mock(id=author), embeds=[embed]
    )


async def test_an_old_attempt_is_looked_for_before_posting_again(views: KindViews) -> None:
    channels = Channels()
    channel = channels.channel(7)
    channel.history = history(posted(11, footer="Job other00001"), posted(12, author=5), posted(13))
    delivery = delivery_with(channels, views, clock=lambda: NOW)
    earlier = job(delivery_started_at=NOW - NONCE_TRUST_SECONDS - 1)
    assert await delivery.deliver(earlier) == 13  # its own post: by the bot, its job's footer
    channel.send.assert_not_awaited()


async def test_a_recent_attempt_relies_on_the_nonce_and_nothing_found_is_posted(
    views: KindViews,
) -> None:
    channels = Channels()
    channel = channels.channel(7)
    channel.history = mock.Mock(side_effect=AssertionError("history read within the window"))
    delivery = delivery_with(channels, views, clock=lambda: NOW)
    assert await delivery.deliver(job(delivery_started_at=NOW - 5)) == 70
    channel.history = history(posted(11, footer="Job other00001"))
    channels.user.dm_channel = mock.Mock(spec=discord.DMChannel, history=history())
    old = job(delivery_started_at=NOW - 3600)
    assert await delivery.deliver(old) == 70  # nothing of its own there: posted


# -- the status message -------------------------------------------------------------------------


async def test_delivering_costs_no_progress_query_and_removes_the_status_buttons(
    views: KindViews,
) -> None:
    store = progress_store()
    channels = Channels()
    delivery = delivery_with(channels, views, store)
    done = job(result={"stems": {"vocals": "https://s/v.mp3"}, "vidgo_task_id": "sep"})
    assert await delivery.deliver(replace(done, status_message_id=99)) == 70
    await delivery.settle()  # the status edit follows the delivery in the background
    store.queue_position.assert_not_awaited()
    store.recent_durations.assert_not_awaited()
    # The result carries the stem link, then the buttons other kinds offer on it.
    view = channels.channel(7).send.call_args.kwargs["view"]
    assert [getattr(i, "custom_id", None) for i in view.children] == [
        None,
        f"stemcord:lyrics:{done.id}",
        f"stemcord:midi:{done.id}",
    ]
    status = channels.channel(7).get_partial_message
    status.assert_called_once_with(99)
    status.return_value.edit.assert_awaited_once_with(embed=mock.ANY, view=None)


async def test_a_waiting_jobs_status_has_progress_and_buttons(views: KindViews) -> None:
    store = progress_store()
    channels = Channels()
    await delivery_with(channels, views, store).show_progress(job(status_message_id=99, **WAITING))
    kwargs = channels.channel(7).get_partial_message.return_value.edit.call_args.kwargs
    assert [i.custom_id for i in kwargs["view"].children] == [
        "stemcord:refresh:abcdefghjk",
        "stemcord:cancel:abcdefghjk",
    ]
    fields = {f.name: f.value for f in kwargs["embed"].fields}
    assert fields["Queue"].startswith("No. 1 of 1") and fields["ETA"] == "no estimate yet"
    assert fields["Stems"] == "vocals + instrumental"  # the kind's own field
    store.queue_position.assert_awaited_once()


async def test_a_failing_progress_query_still_edits_the_status(views: KindViews) -> None:
    store = progress_store()
    store.queue_position.side_effect = RuntimeError("database is locked")
    channels = Channels()
    await delivery_with(channels, views, store).show_progress(job(status_message_id=99, **WAITING))
    kwargs = channels.channel(7).get_partial_message.return_value.edit.call_args.kwargs
    assert "Queue" not in {f.name for f in kwargs["embed"].fields}


async def test_a_job_without_a_status_message_is_not_rendered(views: KindViews) -> None:
    store = progress_store()
    channels = Channels()
    await delivery_with(channels, views, store).show_progress(job(kind=MIDI, **WAITING))
    assert channels.channels == {}
    store.queue_position.assert_not_awaited()


# -- progress text ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(5, "under a minute"), (90, "about 2 min"), (3599, "about 1 h"), (4000, "about 1 h 7 min")],
)
def test_rough_durations(seconds: float, text: str) -> None:
    assert rough_duration(seconds, T, "en-US") == text


def test_queue_and_eta_text() -> None:
    en = "en-US"
    assert queue_text(Progress(1, 1, None, 0), T, en) == "No. 1 of 1 unfinished job in this server"
    assert queue_text(Progress(3, 7, None, 0), T, en) == "No. 3 of 7 unfinished jobs in this server"
    assert queue_text(Progress(None, None, None, 0), T, en) is None
    assert eta_text(Progress(1, 1, None, 10), T, en) == "no estimate yet"
    assert eta_text(Progress(1, 1, 300, 60), T, en) == "about 4 min (typical: about 5 min)"
    assert eta_text(Progress(1, 1, 30, 60), T, en).startswith("any moment now")


def test_queue_and_eta_text_in_japanese_and_portuguese() -> None:
    for locale in ("ja", "pt-BR"):
        queue = queue_text(Progress(2, 1234, None, 0), T, locale)
        expected = T.plural(
            locale,
            "No. {position} of {count} unfinished job in this server",
            "No. {position} of {count} unfinished jobs in this server",
            1234,
            position="2",
        )
        assert queue == expected
        assert "unfinished" not in expected  # translated, not the English
        eta = eta_text(Progress(1, 1, 300, 60), T, locale)
        minutes = T.text(locale, "about {minutes} min", minutes=4)
        assert eta == T.text(
            locale,
            "{remaining} (typical: {typical})",
            remaining=minutes,
            typical=T.text(locale, "about {minutes} min", minutes=5),
        )
        assert minutes != "about 4 min"
    assert "1.234" in str(queue_text(Progress(2, 1234, None, 0), T, "pt-BR"))


def test_status_embed_shows_progress_only_while_waiting() -> None:
    words = SeparationView.words
    waiting = status_embed(job(**WAITING), words, None, Progress(2, 3, 600, 0), t=T, locale="en-US")
    fields = {f.name: f.value for f in waiting.fields}
    assert fields["Queue"] == "No. 2 of 3 unfinished jobs in this server"
    assert fields["ETA"].startswith("about 10 min")
    done = status_embed(job(), words, None, Progress(2, 3, 600, 0), t=T, locale="en-US")
    assert {f.name for f in done.fields}.isdisjoint({"Queue", "ETA"})


# -- languages ----------------------------------------------------------------------------------


def guild_speaking(locale: discord.Locale) -> mock.Mock:
    guild = mock.Mock(spec_set=discord.Guild)
    guild.preferred_locale = locale
    guild.filesize_limit = 10 * 1_048_576
    return guild


async def test_the_channel_reads_the_servers_language_and_a_dm_the_requesters(
    views: KindViews,
) -> None:
    channels = Channels()
    channels.client.get_guild.return_value = guild_speaking(discord.Locale.japanese)
    channels.channel(7).send.side_effect = http_error(discord.Forbidden, 403, "Missing Access")
    recorded = job(options={"requester_locale": "pt-BR", "server_locale": "ko"})
    delivery = delivery_with(channels, views)
    assert delivery.channel_locale(recorded) == "ja"  # the server as Discord says now
    assert delivery.dm_locale(recorded) == "pt-BR"
    assert await delivery.deliver(recorded) == 900
    tried = channels.channel(7).send.await_args.kwargs
    assert tried["content"] == T.text("ja", "{member} your stems are ready.", member="<@42>")
    dm = channels.user.send.await_args.kwargs
    assert dm["content"] == T.text("pt-BR", "{member} your stems are ready.", member="<@42>")
    assert dm["embed"].footer.text == T.text("pt-BR", "Job {id}", id=recorded.id)


async def test_a_server_this_process_does_not_have_reads_its_recorded_language(
    views: KindViews,
) -> None:
    channels = Channels()
    channels.client.get_guild.return_value = None  # another shard's process has it
    delivery = delivery_with(channels, views)
    assert delivery.channel_locale(job(options={"server_locale": "ko"})) == "ko"
    assert delivery.channel_locale(job(options={"requester_locale": "es-ES"})) == "es-ES"
    assert delivery.channel_locale(job()) == "en-US"  # recorded before languages were kept
    await delivery.deliver(job(options={"server_locale": "ko"}))
    sent = channels.channel(7).send.await_args.kwargs
    assert sent["content"] == T.text("ko", "{member} your stems are ready.", member="<@42>")
    fields = [f.name for f in sent["embed"].fields]
    assert T.text("ko", "Duration") in fields and "Duration" not in fields


async def test_an_earlier_post_in_another_language_is_still_found(views: KindViews) -> None:
    channels = Channels()
    channel = channels.channel(7)
    footer = T.text("ja", "Job {id}", id="abcdefghjk")
    assert footer != "Job abcdefghjk"
    channel.history = history(posted(11, footer="ジョブ abcdefghjk0"), posted(13, footer=footer))
    delivery = delivery_with(channels, views, clock=lambda: NOW)
    earlier = job(delivery_started_at=NOW - NONCE_TRUST_SECONDS - 1)
    assert await delivery.deliver(earlier) == 13
    channel.send.assert_not_awaited()
