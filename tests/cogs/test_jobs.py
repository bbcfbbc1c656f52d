"""/jobs and /karaoke fast layer: callbacks called directly over a real store (each backend),
with the engine an autospec mock that reads and cancels through that store."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from unittest import mock

import discord

from bot.balance import Balance, BalanceCache
from bot.engine import JobEngine
from bot.policy import GuildPolicy, Policies, load_policy
from bot.separation import SEPARATION
from bot.vidgo.errors import VidgoTransientError
from cogs.i18n import Translations
from cogs.joblist import (
    STATE_WORDS,
    job_detail_embed,
    job_line,
    job_list_embed,
    result_link,
    state_word,
)
from cogs.jobs import JobsCog, choice_for
from cogs.karaoke import KaraokeCog, policy_embed
from cogs.lyrics import LyricsView
from cogs.midi import MidiView
from cogs.owner import BotOwner
from cogs.pages import Pages, page_count
from cogs.render import EMBED_TOTAL_MAX, FIELD_VALUE_MAX, status_embed
from cogs.separate import SeparationView
from cogs.views import KindViews
from storage.base import JobStore
from storage.jobstate import JobState
from storage.records import NewJob, SourceKind
from tests.helpers import autospec, job, member

T = Translations.load()

NOW = 1_800_000_000.0
GUILD = 9
VIEWS = KindViews(
    [
        SeparationView(translations=T),
        LyricsView(translations=T, enhanced_lrc=False),
        MidiView(translations=T, enabled=True),
    ],
    fallback=SEPARATION,
)
WORDS = SeparationView.words


async def add_job(store: JobStore, job_id: str, *, requester: int = 42, guild: int = GUILD) -> None:
    new = NewJob(
        id=job_id,
        kind="separation",
        source_kind=SourceKind.URL,
        source_key=f"url:{job_id}",
        model="upload-and-separate-vocals",
        requester_id=requester,
        channel_id=7,
        guild_id=guild,
        source_url="https://x.org/a.mp3",
        options={"title": "Song " + job_id},
        deadline_at=NOW + 1e6,
    )
    await store.admit(new, NOW, submit_lease_until=NOW + 1e6)


def jobs_cog(store: JobStore) -> tuple[JobsCog, Any, Any]:
    """The cog, its engine (reading and cancelling through ``store``) and its balance cache."""
    engine = autospec(JobEngine)
    engine.get_job.side_effect = store.get
    engine.list_jobs.side_effect = store.list_jobs

    async def cancel(job_id: str) -> object:
        return await store.cancel(job_id, NOW + 5)

    engine.cancel.side_effect = cancel
    engine.poll_now.return_value = None
    balance = autospec(BalanceCache)
    balance.get.return_value = Balance(17276, NOW)
    client = autospec(discord.Client)
    client.application_info.return_value = mock.Mock(
        spec_set=discord.AppInfo, owner=member(user_id=OWNER_ID), team=None
    )
    owner = BotOwner(client)
    return JobsCog(engine, Policies(store), balance, owner, T), engine, balance


def make_interaction(user: Any, guild_id: int = GUILD) -> mock.Mock:
    inter = mock.Mock(spec_set=discord.Interaction)
    inter.user = user
    inter.guild_id = guild_id
    inter.response = mock.Mock(spec_set=discord.InteractionResponse)
    inter.response.send_message = mock.AsyncMock()
    inter.response.defer = mock.AsyncMock()
    inter.edit_original_response = mock.AsyncMock()
    return inter


def sent(inter: mock.Mock) -> tuple[str, dict[str, Any]]:
    [call] = inter.response.send_message.await_args_list
    return (call.args[0] if call.args else ""), call.kwargs


OWNER_ID = 4242
PLAIN = discord.Permissions.none()
MODERATOR = discord.Permissions(manage_messages=True)
MANAGER = discord.Permissions(manage_guild=True)


async def test_status_of_another_servers_job_is_not_found(store: JobStore) -> None:
    await add_job(store, "here000001")
    await add_job(store, "there00001", guild=10)
    cog, _, _ = jobs_cog(store)
    inter = make_interaction(member(user_id=42, perms=PLAIN))
    await cog.status.callback(cog, inter, job="there00001")
    text, kwargs = sent(inter)
    assert text == "No job `there00001` in this server." and kwargs["ephemeral"]
    inter = make_interaction(member(user_id=42, perms=PLAIN))
    await cog.status.callback(cog, inter, job=" HERE000001 ")
    _, kwargs = sent(inter)
    assert kwargs["embed"].footer.text == "Job here000001" and kwargs["ephemeral"]


async def test_cancel_checks_requester_or_moderator(store: JobStore) -> None:
    await add_job(store, "job0000001", requester=42)
    cog, engine, _balance = jobs_cog(store)
    stranger = make_interaction(member(user_id=5, perms=PLAIN))
    await cog.cancel.callback(cog, stranger, job="job0000001")
    assert "Only the member who asked" in sent(stranger)[0]
    engine.cancel.assert_not_awaited()
    moderator = make_interaction(member(user_id=5, perms=MODERATOR))
    await cog.cancel.callback(cog, moderator, job="job0000001")
    assert "Vidgo has no way to cancel" in sent(moderator)[0]
    assert (await store.get("job0000001")).state is JobState.CANCELLED  # type: ignore[union-attr]
    engine.cancel.assert_awaited_once_with("job0000001")
    again = make_interaction(member(user_id=42, perms=PLAIN))
    await cog.cancel.callback(cog, again, job="job0000001")
    assert "already cancelled" in sent(again)[0]


async def test_queue_and_retry_refuse_members(store: JobStore) -> None:
    await add_job(store, "job0000001")
    cog, engine, _balance = jobs_cog(store)
    for command in (cog.queue, cog.retry):
        inter = make_interaction(member(user_id=42, perms=PLAIN))
        kwargs = {"job": "job0000001"} if command is cog.retry else {}
        await command.callback(cog, inter, **kwargs)  # type: ignore[arg-type]
        assert "Only moderators" in sent(inter)[0]
    engine.poll_now.assert_not_awaited()


async def test_retry_polls_unfinished_jobs_for_moderators(store: JobStore) -> None:
    await add_job(store, "job0000001")
    cog, engine, _balance = jobs_cog(store)
    inter = make_interaction(member(user_id=5, perms=MODERATOR))
    await cog.retry.callback(cog, inter, job="job0000001")
    assert "Asking Vidgo" in sent(inter)[0]
    engine.poll_now.assert_awaited_once_with("job0000001")


async def test_queue_lists_unfinished_jobs_oldest_first(store: JobStore) -> None:
    for index in range(3):
        await add_job(store, f"job000000{index}", requester=40 + index)
    await store.cancel("job0000001", NOW)
    cog, _, _ = jobs_cog(store)
    inter = make_interaction(member(user_id=5, perms=MODERATOR))
    await cog.queue.callback(cog, inter)
    _, kwargs = sent(inter)
    embed = kwargs["embed"]
    assert embed.title == "Queue: 2 unfinished jobs"
    assert embed.description.index("job0000000") < embed.description.index("job0000002")
    assert "job0000001" not in embed.description and "by <@40>" in embed.description


async def test_balance_answers_only_the_bots_owner_even_among_server_managers(
    store: JobStore,
) -> None:
    cog, _engine, balance = jobs_cog(store)
    for perms in (MODERATOR, MANAGER, discord.Permissions(administrator=True)):
        other = make_interaction(member(perms=perms, user_id=OWNER_ID + 1))
        await cog.balance.callback(cog, other)
        assert other.response.defer.await_args.kwargs["ephemeral"] is True
        refusal = other.edit_original_response.await_args.kwargs["content"]
        assert refusal == "Only the bot's owner can see its Vidgo balance."
    balance.get.assert_not_awaited()  # nobody else's question reaches Vidgo
    owner = make_interaction(member(perms=PLAIN, user_id=OWNER_ID))
    await cog.balance.callback(cog, owner)
    assert owner.response.defer.await_args.kwargs["ephemeral"] is True
    assert "17,276" in owner.edit_original_response.await_args.kwargs["content"]


async def test_balance_reports_vidgo_errors_to_the_owner(store: JobStore) -> None:
    cog, _engine, balance = jobs_cog(store)
    balance.get.side_effect = VidgoTransientError("down")
    failing = make_interaction(member(perms=PLAIN, user_id=OWNER_ID))
    await cog.balance.callback(cog, failing)
    assert "try again" in failing.edit_original_response.await_args.kwargs["content"]


async def test_autocomplete_offers_the_callers_recent_ids_in_this_server(
    store: JobStore,
) -> None:
    for index in range(30):
        await add_job(store, f"a{index:09d}")
    await add_job(store, "b000000001")
    await add_job(store, "c000000001", requester=5)
    await add_job(store, "d000000001", guild=10)
    cog, _, _ = jobs_cog(store)
    inter = make_interaction(member(user_id=42, perms=PLAIN))
    choices = await cog.recent_job_ids(inter, "")
    assert len(choices) == 25
    assert all(len(c.name) <= 100 for c in choices)
    values = {c.value for c in await cog.recent_job_ids(inter, "")}
    assert "c000000001" not in values and "d000000001" not in values
    assert [c.value for c in await cog.recent_job_ids(inter, "B")] == ["b000000001"]


def test_choice_names_fit_discords_limit() -> None:
    long = job(track={"title": "x" * 300})
    choice = choice_for(T, None, long)
    assert len(choice.name) == 100 and choice.value == long.id


def test_every_state_has_words_and_lines_escape_titles() -> None:
    assert set(STATE_WORDS) == set(JobState)
    assert state_word(T, None, job(state=JobState.DELIVERED, outcome=JobState.FAILED)) == "failed"
    line = job_line(T, None, job(track={"title": "@everyone **x**"}), with_requester=True)
    assert "@everyone" not in line and "\\*\\*x\\*\\*" in line and "by <@42>" in line


def test_result_link_points_at_the_result_channel() -> None:
    posted = job(result_message_id=555, state=JobState.DELIVERED)
    assert result_link(posted) == "https://discord.com/channels/9/7/555"
    elsewhere = replace(posted, result_channel_id=8)
    assert result_link(elsewhere) == "https://discord.com/channels/9/8/555"
    assert "[stems](https://discord.com/channels/9/8/555)" in job_line(T, None, elsewhere)
    assert result_link(job()) is None


def test_lists_and_details_stay_inside_embed_limits() -> None:
    jobs = [job(id=f"j{index:09d}", track={"title": "t" * 500}) for index in range(25)]
    for page in range(3):
        embed = job_list_embed(
            T, None, "Queue", jobs, page=page, pages=3, with_requester=True, empty="-"
        )
        assert len(embed) <= EMBED_TOTAL_MAX
    undeliverable = job(state=JobState.UNDELIVERABLE, last_error="e" * 5000)
    assert len(job_detail_embed(T, None, undeliverable)) <= EMBED_TOTAL_MAX


def test_settings_embed_stays_inside_limits_with_many_channels() -> None:
    policy = GuildPolicy(allowed_channel_ids=tuple(10**18 + i for i in range(200)))
    embed = policy_embed(T, None, policy)
    assert all(len(field.value or "") <= FIELD_VALUE_MAX for field in embed.fields)
    assert embed.fields[0].value is not None and embed.fields[0].value.endswith("…")


async def test_karaoke_changes_need_manage_server_and_are_stored(store: JobStore) -> None:
    cog = KaraokeCog(Policies(store), T)
    moderator = make_interaction(member(perms=MODERATOR))
    await cog.daily_quota.callback(cog, moderator, count=3)
    assert "Manage Server" in sent(moderator)[0]
    assert (await load_policy(store, GUILD)).daily_quota == 10
    manager = make_interaction(member(perms=MANAGER))
    await cog.daily_quota.callback(cog, manager, count=3)
    text, kwargs = sent(manager)
    assert "3 jobs" in text and kwargs["ephemeral"]
    assert (await load_policy(store, GUILD)).daily_quota == 3
    assert (await load_policy(store, GUILD + 1)).daily_quota == 10


async def test_server_daily_cap_needs_manage_server_and_is_stored(store: JobStore) -> None:
    cog = KaraokeCog(Policies(store), T)
    moderator = make_interaction(member(perms=MODERATOR))
    await cog.server_daily_cap.callback(cog, moderator, count=50)
    assert "Manage Server" in sent(moderator)[0]
    assert (await load_policy(store, GUILD)).server_daily_cap == 0
    manager = make_interaction(member(perms=MANAGER))
    await cog.server_daily_cap.callback(cog, manager, count=50)
    text, kwargs = sent(manager)
    assert "whole server: 50 jobs" in text and kwargs["ephemeral"]
    assert (await load_policy(store, GUILD)).server_daily_cap == 50
    assert (await load_policy(store, GUILD + 1)).server_daily_cap == 0
    fields = {
        f.name: f.value for f in policy_embed(T, None, GuildPolicy(server_daily_cap=50)).fields
    }
    assert fields["Daily cap for the server"] == "50 jobs (resets 00:00 UTC)"


def test_pages_disable_the_buttons_at_the_ends() -> None:
    assert page_count(0, 10) == 1 and page_count(10, 10) == 1 and page_count(11, 10) == 2
    pages = Pages(lambda n: discord.Embed(title=str(n)), 3, owner_id=1, t=T, locale=None)
    assert pages.previous.disabled and not pages.next.disabled


async def test_cancel_and_retry_of_another_servers_job_are_not_found(
    store: JobStore,
) -> None:
    await add_job(store, "there00001", guild=10)
    cog, engine, _balance = jobs_cog(store)
    cancel = make_interaction(member(user_id=42, perms=MODERATOR))
    await cog.cancel.callback(cog, cancel, job="there00001")
    retry = make_interaction(member(user_id=42, perms=MODERATOR))
    await cog.retry.callback(cog, retry, job="there00001")
    assert sent(cancel)[0] == sent(retry)[0] == "No job `there00001` in this server."
    engine.cancel.assert_not_awaited()
    engine.poll_now.assert_not_awaited()


def test_status_points_at_the_result_channel_when_results_go_elsewhere() -> None:
    done = job(state=JobState.DELIVERED, result_channel_id=8)
    assert "<#8>" in str(status_embed(done, WORDS, t=T, locale="en-US").to_dict())
    assert "message below" in str(
        status_embed(job(state=JobState.DELIVERED), WORDS, t=T, locale="en-US").to_dict()
    )


async def test_channel_list_edits_are_made_from_the_stored_list(store: JobStore) -> None:
    cog = KaraokeCog(Policies(store), T)
    for channel_id in (1, 2, 2):
        await cog.allow_channel.callback(
            cog, make_interaction(member(perms=MANAGER)), channel=mock.Mock(id=channel_id)
        )
    assert (await load_policy(store, GUILD)).allowed_channel_ids == (1, 2)
    await cog.remove_channel.callback(
        cog, make_interaction(member(perms=MANAGER)), channel=mock.Mock(id=1)
    )
    assert (await load_policy(store, GUILD)).allowed_channel_ids == (2,)
    await cog.all_channels.callback(cog, make_interaction(member(perms=MANAGER)))
    assert (await load_policy(store, GUILD)).allowed_channel_ids == ()


async def test_cancel_and_retry_autocomplete_follow_who_may_act(store: JobStore) -> None:
    await add_job(store, "mine000001", requester=42)
    await add_job(store, "them000001", requester=5)
    await add_job(store, "done000001", requester=42)
    await store.cancel("done000001", NOW)
    cog, _, _ = jobs_cog(store)
    plain = make_interaction(member(user_id=42, perms=PLAIN))
    assert [c.value for c in await cog.cancellable_job_ids(plain, "")] == ["mine000001"]
    assert await cog.retryable_job_ids(plain, "") == []
    moderator = make_interaction(member(user_id=7, perms=MODERATOR))
    assert {c.value for c in await cog.cancellable_job_ids(moderator, "")} == {
        "mine000001",
        "them000001",
    }
    assert {c.value for c in await cog.retryable_job_ids(moderator, "")} == {
        "mine000001",
        "them000001",
    }


def test_not_found_echoes_only_what_a_job_id_can_hold() -> None:
    from cogs.jobs import not_found

    assert not_found(T, None, "AbC123") == "No job `abc123` in this server."
    assert not_found(T, None, "`@everyone`") == "No job `everyone` in this server."
    assert not_found(T, None, "***") == "No such job in this server."


def test_choice_names_are_one_line() -> None:
    assert "\n" not in choice_for(T, None, job(track={"title": "two\nlines"})).name
