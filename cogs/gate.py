"""Who may start a job where, and how much: the server's policy applied to one request.

Cheap rules are checked before the interaction is acknowledged, so a refusal is a private
(ephemeral) reply: the channel and role rules, and a read-only early answer for the
per-member limits. The limits are authoritative only inside the store's admitting
transaction (:meth:`storage.base.JobStore.admit`); a request that loses a race there gets
the same sentence through :func:`refuse_after_defer`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import discord

from bot.policy import GuildPolicy, Policies
from cogs.access import is_moderator
from storage.records import JobRecord, LimitReached, LimitRule

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Gate:
    """The server's policy, and why this request may not start (``None``: it may)."""

    policy: GuildPolicy
    refusal: str | None


def limit_sentence(refused: LimitReached) -> str:
    """One sentence naming the rule and when it frees up."""
    when = f"<t:{int(refused.frees_at)}:R>" if refused.frees_at is not None else None
    if refused.rule is LimitRule.MAX_UNFINISHED:
        jobs = "job" if refused.limit == 1 else "jobs"
        return (
            f"You already have {refused.limit} unfinished {jobs} in this server; "
            "one frees up when a job finishes (see `/jobs mine`)."
        )
    if refused.rule is LimitRule.DAILY_QUOTA:
        return f"Daily quota of {refused.limit} reached; resets {when} (00:00 UTC)."
    if refused.rule is LimitRule.SERVER_DAILY_CAP:
        jobs = "job" if refused.limit == 1 else "jobs"
        return (
            f"This server's daily cap of {refused.limit} {jobs} for everyone together is "
            f"reached; it resets {when} (00:00 UTC)."
        )
    return f"Cooldown: try again {when}."


def channel_allowed(policy: GuildPolicy, channel: object, channel_id: int | None) -> bool:
    """Empty list = everywhere; a thread counts as its parent channel."""
    if not policy.allowed_channel_ids:
        return True
    parent_id = getattr(channel, "parent_id", None)
    return channel_id in policy.allowed_channel_ids or parent_id in policy.allowed_channel_ids


def has_role(member: discord.Member | discord.User, role_id: int) -> bool:
    """The member holds the role."""
    return isinstance(member, discord.Member) and any(r.id == role_id for r in member.roles)


def rule_refusal(policy: GuildPolicy, interaction: discord.Interaction) -> str | None:
    """The channel and role rules (no I/O)."""
    if not channel_allowed(policy, interaction.channel, interaction.channel_id):
        where = ", ".join(f"<#{cid}>" for cid in policy.allowed_channel_ids[:20])
        return f"Stemcord is not available in this channel. Try {where}."
    role_id = policy.required_role_id
    user = interaction.user
    if role_id is not None and not has_role(user, role_id) and not is_moderator(user, policy):
        return f"You need the <@&{role_id}> role to use Stemcord in this server."
    return None


async def admission_gate(policies: Policies, interaction: discord.Interaction) -> Gate:
    """Load the server's policy and say whether this member may start a job here now."""
    guild_id = interaction.guild_id
    policy = await policies.get(guild_id)
    refusal = rule_refusal(policy, interaction)
    if refusal is None and guild_id is not None:
        early = await policies.early_refusal(guild_id, interaction.user.id, policy)
        refusal = limit_sentence(early) if early is not None else None
    return Gate(policy, refusal)


async def press_refusal(
    client: discord.Client, interaction: discord.Interaction, policy: GuildPolicy, job: JobRecord
) -> str | None:
    """The channel and role rules of ``/separate``, applied to a button that spends credits.

    Pressed in the server: exactly :func:`rule_refusal`. Pressed on a result that went to the
    requester's DMs: no channel rule applies there, but the server's role rule still does, so
    the member is looked up in the job's server.
    """
    if interaction.guild_id is not None:
        return rule_refusal(policy, interaction)
    role_id = policy.required_role_id
    if role_id is None:
        return None
    refusal = f"You need the <@&{role_id}> role in that server to use this button."
    if job.guild_id is None:
        return refusal
    # A DM press reaches shard 0's process, which caches only its own shards' servers: the
    # job's server may be another process's, so it is asked for over REST then.
    guild = client.get_guild(job.guild_id)
    if guild is None:
        try:
            guild = await client.fetch_guild(job.guild_id)
        except discord.HTTPException:
            return refusal  # the bot left that server, or Discord cannot say now
    try:
        member = guild.get_member(interaction.user.id) or await guild.fetch_member(
            interaction.user.id
        )
    except discord.HTTPException:
        return refusal  # not a member any more, or unknowable: no credits on a guess
    if has_role(member, role_id) or is_moderator(member, policy):
        return None
    return refusal


def posted_pointer(earlier: JobRecord, what: str) -> str:
    """A private answer pointing to where ``what`` was already posted."""
    assert earlier.result_message_id is not None  # noqa: S101 - only posted jobs are given
    channel_id = earlier.result_channel_id or earlier.channel_id
    where = (
        f"https://discord.com/channels/{earlier.guild_id}/{channel_id}/{earlier.result_message_id}"
    )
    return f"{what} already posted here, so it is not posted again: {where}"


async def refuse_after_defer(interaction: discord.Interaction, refused: LimitReached) -> None:
    """The public "thinking…" answer is already out: replace it with a private refusal."""
    try:
        await interaction.delete_original_response()
    except discord.HTTPException as exc:
        log.info("could not remove the deferred answer of a refused request (%s)", exc.status)
    await interaction.followup.send(limit_sentence(refused), ephemeral=True)
