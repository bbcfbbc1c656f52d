"""The gate before /separate: channel and role rules, limit sentences, the race fallback."""

from __future__ import annotations

from typing import Any
from unittest import mock

import discord
import pytest

from bot.policy import GuildPolicy
from cogs.gate import (
    admission_gate,
    channel_allowed,
    limit_sentence,
    press_refusal,
    refuse_after_defer,
    rule_refusal,
)
from storage.records import LimitReached, LimitRule
from tests.helpers import interaction, job, member


@pytest.mark.parametrize(
    ("refused", "expected"),
    [
        (
            LimitReached(LimitRule.MAX_UNFINISHED, 2, None),
            "You already have 2 unfinished jobs in this server; one frees up when a job finishes",
        ),
        (
            LimitReached(LimitRule.MAX_UNFINISHED, 1, None),
            "You already have 1 unfinished job in this server",
        ),
        (
            LimitReached(LimitRule.DAILY_QUOTA, 10, 1_800_028_800.0),
            "Daily quota of 10 reached; resets <t:1800028800:R>",
        ),
        (
            LimitReached(LimitRule.COOLDOWN, 30, 1_800_000_030.5),
            "Cooldown: try again <t:1800000030:R>.",
        ),
        (
            LimitReached(LimitRule.SERVER_DAILY_CAP, 50, 1_800_028_800.0),
            "This server's daily cap of 50 jobs for everyone together is reached; "
            "it resets <t:1800028800:R> (00:00 UTC).",
        ),
        (
            LimitReached(LimitRule.SERVER_DAILY_CAP, 1, 1_800_028_800.0),
            "daily cap of 1 job for everyone",
        ),
    ],
)
def test_each_limit_has_one_sentence_with_when_it_frees_up(
    refused: LimitReached, expected: str
) -> None:
    assert expected in limit_sentence(refused)


def test_empty_allowed_list_means_everywhere_and_threads_follow_their_parent() -> None:
    assert channel_allowed(GuildPolicy(), None, 1)
    policy = GuildPolicy(allowed_channel_ids=(5,))
    assert channel_allowed(policy, None, 5)
    assert not channel_allowed(policy, None, 6)
    assert channel_allowed(policy, mock.Mock(parent_id=5), 99)


def test_channel_rule_names_the_allowed_channels() -> None:
    refusal = rule_refusal(GuildPolicy(allowed_channel_ids=(5, 6)), interaction(channel_id=7))
    assert refusal is not None and "<#5>, <#6>" in refusal


def test_required_role_applies_to_members_but_not_moderators() -> None:
    policy = GuildPolicy(required_role_id=50)
    assert "<@&50>" in (rule_refusal(policy, interaction()) or "")
    with_role = member(perms=discord.Permissions.none(), roles=(50,))
    assert rule_refusal(policy, interaction(user=with_role)) is None
    moderator = member(perms=discord.Permissions(manage_messages=True))
    assert rule_refusal(policy, interaction(user=moderator)) is None


async def test_gate_asks_for_an_early_answer_on_the_limits(policies: Any) -> None:
    policies.get.return_value = GuildPolicy(daily_quota=3)
    policies.early_refusal.return_value = LimitReached(LimitRule.DAILY_QUOTA, 3, 100.0)
    gate = await admission_gate(policies, interaction())
    assert gate.policy.daily_quota == 3
    assert gate.refusal is not None and "Daily quota of 3" in gate.refusal
    policies.early_refusal.assert_awaited_once_with(9, 1, GuildPolicy(daily_quota=3))


async def test_channel_refusal_needs_no_limit_check(policies: Any) -> None:
    policies.get.return_value = GuildPolicy(allowed_channel_ids=(5,))
    gate = await admission_gate(policies, interaction(channel_id=7))
    assert gate.refusal is not None and "<#5>" in gate.refusal
    policies.early_refusal.assert_not_awaited()


async def test_a_request_that_loses_the_race_is_refused_privately() -> None:
    inter = interaction()
    inter.delete_original_response.side_effect = discord.NotFound(
        mock.Mock(status=404, reason="gone"), "gone"
    )
    await refuse_after_defer(inter, LimitReached(LimitRule.MAX_UNFINISHED, 1, None))
    inter.delete_original_response.assert_awaited_once()
    [call] = inter.followup.send.await_args_list
    assert call.kwargs == {"ephemeral": True} and "1 unfinished job" in call.args[0]


def dm_press(user_id: int = 42) -> mock.Mock:
    inter = interaction()
    inter.guild_id = None
    inter.user = mock.Mock(spec_set=discord.User, id=user_id)
    return inter


def client_with(guild: mock.Mock | None, *, fetched: mock.Mock | None = None) -> mock.Mock:
    """A client that caches ``guild`` (None: not cached) and can fetch ``fetched`` over REST."""
    client = mock.Mock(spec_set=discord.Client)
    client.get_guild.return_value = guild
    if fetched is None:
        client.fetch_guild.side_effect = discord.NotFound(mock.Mock(status=404), "Unknown Guild")
    else:
        client.fetch_guild.return_value = fetched
    return client


async def test_a_dm_press_about_a_server_of_another_shard_fetches_it() -> None:
    # Shard 0's process got the DM press; the job's server is on another process's shard,
    # so it is not in this process's cache.
    policy = GuildPolicy(required_role_id=77)
    holder = guild_with(member(roles=(77,), user_id=42))
    client = client_with(None, fetched=holder)
    assert await press_refusal(client, dm_press(), policy, job(guild_id=9)) is None
    client.fetch_guild.assert_awaited_once_with(9)
    holder.fetch_member.assert_awaited_once_with(42)


def guild_with(found: object) -> mock.Mock:
    guild = mock.Mock(spec_set=discord.Guild)
    guild.get_member.return_value = None
    if isinstance(found, Exception):
        guild.fetch_member = mock.AsyncMock(side_effect=found)
    else:
        guild.fetch_member = mock.AsyncMock(return_value=found)
    return guild


async def test_a_press_in_the_server_gets_the_channel_and_role_rules() -> None:
    policy = GuildPolicy(allowed_channel_ids=(5,))
    refusal = await press_refusal(client_with(None), interaction(channel_id=7), policy, job())
    assert refusal is not None and "<#5>" in refusal


async def test_a_dm_press_without_a_role_rule_is_allowed() -> None:
    assert await press_refusal(client_with(None), dm_press(), GuildPolicy(), job()) is None


async def test_a_dm_press_checks_the_role_in_the_jobs_server() -> None:
    policy = GuildPolicy(required_role_id=77)
    holder = guild_with(member(roles=(77,), user_id=42))
    assert await press_refusal(client_with(holder), dm_press(), policy, job()) is None
    holder.fetch_member.assert_awaited_once_with(42)
    lacking = guild_with(member(roles=(5,), user_id=42))
    refusal = await press_refusal(client_with(lacking), dm_press(), policy, job())
    assert refusal is not None and "<@&77>" in refusal


@pytest.mark.parametrize("guild", [None, "left"])
async def test_a_dm_press_is_refused_when_the_role_cannot_be_checked(guild: object) -> None:
    policy = GuildPolicy(required_role_id=77)
    found = (
        guild_with(discord.NotFound(mock.Mock(status=404, reason="x"), "Unknown Member"))
        if guild == "left"
        else None
    )
    assert await press_refusal(client_with(found), dm_press(), policy, job()) is not None
