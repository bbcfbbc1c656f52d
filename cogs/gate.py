"""Who may start a job where, and how much: the server's policy applied to one request.

Cheap rules are checked before the interaction is acknowledged, so a refusal is a private
(ephemeral) reply: the channel and role rules, and a read-only early answer for the
per-member limits. The limits are authoritative only inside the store's admitting
transaction (:meth:`storage.base.JobStore.admit`); a request that loses a race there gets
the same sentence through :func:`refuse_after_defer`.

Every refusal is private, so it is worded in the member's own language
(:func:`cogs.i18n.member_locale`). The catalogs are the ``translations`` a caller passes, or
else the ones the composition root gave the client (``interaction.client.translations``);
without either the sentence is English.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import discord

from bot.policy import GuildPolicy, Policies
from cogs.access import is_moderator
from cogs.i18n import LocaleLike, Translations, member_locale
from cogs.mentions import relative_time, role_mention
from storage.records import JobRecord, LimitReached, LimitRule

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Gate:
    """The server's policy, and why this request may not start (``None``: it may)."""

    policy: GuildPolicy
    refusal: str | None


def translations_for(
    interaction: discord.Interaction[Any] | None, given: Translations | None
) -> Translations:
    """``given``, else the client's catalogs (the composition root's), else English."""
    if given is not None:
        return given
    found = getattr(interaction.client, "translations", None) if interaction is not None else None
    return found if isinstance(found, Translations) else Translations.source_only()


def limit_sentence(
    refused: LimitReached, t: Translations | None = None, locale: LocaleLike = None
) -> str:
    """One sentence naming the rule and when it frees up, in the language of ``locale``."""
    t = t if t is not None else Translations.source_only()
    # Discord writes a timestamp in each reader's own language and time zone.
    when = relative_time(refused.frees_at) if refused.frees_at is not None else None
    limit = t.number(locale, refused.limit)
    if refused.rule is LimitRule.MAX_UNFINISHED:
        return t.plural(
            locale,
            "You already have {count} unfinished job in this server; one frees up when a job "
            "finishes (see `/jobs mine`).",
            "You already have {count} unfinished jobs in this server; one frees up when a job "
            "finishes (see `/jobs mine`).",
            refused.limit,
        )
    if refused.rule is LimitRule.DAILY_QUOTA:
        if when is None:
            return t.text(
                locale, "Daily quota of {limit} reached; it resets at 00:00 UTC.", limit=limit
            )
        return t.text(
            locale,
            "Daily quota of {limit} reached; resets {when} (00:00 UTC).",
            limit=limit,
            when=when,
        )
    if refused.rule is LimitRule.SERVER_DAILY_CAP:
        if when is None:
            return t.plural(
                locale,
                "This server's daily cap of {count} job for everyone together is reached; it "
                "resets at 00:00 UTC.",
                "This server's daily cap of {count} jobs for everyone together is reached; it "
                "resets at 00:00 UTC.",
                refused.limit,
            )
        return t.plural(
            locale,
            "This server's daily cap of {count} job for everyone together is reached; it "
            "resets {when} (00:00 UTC).",
            "This server's daily cap of {count} jobs for everyone together is reached; it "
            "resets {when} (00:00 UTC).",
            refused.limit,
            when=when,
        )
    if when is None:
        return t.text(locale, "Cooldown: try again in a moment.")
    return t.text(locale, "Cooldown: try again {when}.", when=when)


def channel_allowed(policy: GuildPolicy, channel: object, channel_id: int | None) -> bool:
    """Empty list = everywhere; a thread counts as its parent channel."""
    if not policy.allowed_channel_ids:
        return True
    parent_id = getattr(channel, "parent_id", None)
    return channel_id in policy.allowed_channel_ids or parent_id in policy.allowed_channel_ids


def has_role(member: discord.Member | discord.User, role_id: int) -> bool:
    """The member holds the role."""
    return isinstance(member, discord.Member) and any(r.id == role_id for r in member.roles)


def rule_refusal(
    policy: GuildPolicy, interaction: discord.Interaction, t: Translations | None = None
) -> str | None:
    """The channel and role rules (no I/O), worded in the member's language."""
    t = translations_for(interaction, t)
    locale = member_locale(interaction)
    if not channel_allowed(policy, interaction.channel, interaction.channel_id):
        # Channel mentions: Discord shows each as the channel's name, in any language.
        channels = ", ".join(f"<#{cid}>" for cid in policy.allowed_channel_ids[:20])
        return t.text(
            locale, "Stemcord is not available in this channel. Try {channels}.", channels=channels
        )
    role_id = policy.required_role_id
    user = interaction.user
    if role_id is not None and not has_role(user, role_id) and not is_moderator(user, policy):
        return t.text(
            locale,
            "You need the {role} role to use Stemcord in this server.",
            role=role_mention(role_id),
        )
    return None


async def admission_gate(
    policies: Policies, interaction: discord.Interaction, t: Translations | None = None
) -> Gate:
    """Load the server's policy and say whether this member may start a job here now."""
    t = translations_for(interaction, t)
    guild_id = interaction.guild_id
    policy = await policies.get(guild_id)
    refusal = rule_refusal(policy, interaction, t)
    if refusal is None and guild_id is not None:
        early = await policies.early_refusal(guild_id, interaction.user.id, policy)
        refusal = (
            limit_sentence(early, t, member_locale(interaction)) if early is not None else None
        )
    return Gate(policy, refusal)


async def press_refusal(
    client: discord.Client,
    interaction: discord.Interaction,
    policy: GuildPolicy,
    job: JobRecord,
    t: Translations | None = None,
) -> str | None:
    """The channel and role rules of ``/separate``, applied to a button that spends credits.

    Pressed in the server: exactly :func:`rule_refusal`. Pressed on a result that went to the
    requester's DMs: no channel rule applies there, but the server's role rule still does, so
    the member is looked up in the job's server.
    """
    t = translations_for(interaction, t)
    if interaction.guild_id is not None:
        return rule_refusal(policy, interaction, t)
    role_id = policy.required_role_id
    if role_id is None:
        return None
    refusal = t.text(
        member_locale(interaction),
        "You need the {role} role in that server to use this button.",
        role=role_mention(role_id),
    )
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


async def refuse_after_defer(
    interaction: discord.Interaction, refused: LimitReached, t: Translations | None = None
) -> None:
    """The public "thinking…" answer is already out: replace it with a private refusal."""
    sentence = limit_sentence(refused, translations_for(interaction, t), member_locale(interaction))
    try:
        await interaction.delete_original_response()
    except discord.HTTPException as exc:
        log.info("could not remove the deferred answer of a refused request (%s)", exc.status)
    await interaction.followup.send(sentence, ephemeral=True)
