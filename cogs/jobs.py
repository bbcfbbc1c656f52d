"""``/jobs``: members follow their jobs; moderators see and control the server's queue.

* ``mine``, ``status`` and ``cancel`` (own jobs) are for everyone;
* ``queue``, ``retry`` and cancelling someone else's job are for moderators (Manage Messages
  or the server's moderator role); ``balance`` only for the bot's owner (the balance is the
  operator's one account, not any server's business).

The group cannot carry ``default_permissions`` (Discord applies it to every subcommand, and
members need ``mine``), so every restricted subcommand checks in code (:mod:`cogs.access`).
A job of another server is always "not found". Every answer is private (ephemeral), so it
is worded in the language of the member who asked (``interaction.locale``).
"""

from __future__ import annotations

import logging
import re

import discord
from discord import app_commands
from discord.ext import commands

from bot.balance import BalanceCache
from bot.engine import JOB_ID_LENGTH, JobEngine
from bot.policy import GuildPolicy, Policies
from bot.vidgo.errors import VidgoError
from cogs.access import is_moderator, job_visible_to, may_control
from cogs.i18n import N_, LocaleLike, Translations, member_locale
from cogs.joblist import (
    JOBS_PER_PAGE,
    SOURCE_MAX,
    job_detail_embed,
    job_list_embed,
    source_text,
    state_word,
)
from cogs.mentions import relative_time
from cogs.owner import ONLY_THE_OWNER, BotOwner
from cogs.pages import Pages, page_count
from storage.jobstate import ACTIVE_STATES, OUTCOME_STATES, JobState
from storage.records import JobRecord

log = logging.getLogger(__name__)

MINE_LIMIT = 100  # the member's most recent jobs
QUEUE_LIMIT = 500  # unfinished jobs shown to moderators
AUTOCOMPLETE_LIMIT = 25  # Discord shows at most 25 choices
CHOICE_NAME_MAX = 100
# Jobs a retry can move: still waiting on Vidgo, or with a message still owed.
RETRYABLE_STATES = ACTIVE_STATES | OUTCOME_STATES | {JobState.UNDELIVERABLE}
NOT_A_MODERATOR = N_("Only moderators (Manage Messages or the moderator role) can do that.")


def not_found(t: Translations, locale: LocaleLike, job_id: str) -> str:
    """The same answer for an unknown id and a job of another server.

    The typed id is echoed only with the characters a job id can have, so nothing a member
    types can break out of the code span.
    """
    shown = re.sub(r"[^0-9a-z]", "", job_id.lower())[: JOB_ID_LENGTH * 2]
    if not shown:
        return t.text(locale, "No such job in this server.")
    return t.text(locale, "No job `{job_id}` in this server.", job_id=shown)


def choice_for(t: Translations, locale: LocaleLike, job: JobRecord) -> app_commands.Choice[str]:
    """An autocomplete entry: the id, then what it is (plain text, on one line)."""
    title = (job.track or {}).get("title") or job.options.get("title") or job.source_kind.value
    name = " ".join(f"{job.id} · {state_word(t, locale, job)} · {title}".split())
    return app_commands.Choice(name=name[:CHOICE_NAME_MAX], value=job.id)


class JobsCog(commands.Cog):
    """``/jobs mine|status|queue|cancel|retry|balance``."""

    jobs = app_commands.Group(
        name="jobs", description="Your Stemcord jobs, and the server's queue", guild_only=True
    )

    def __init__(
        self,
        engine: JobEngine,
        policies: Policies,
        balance: BalanceCache,
        owner: BotOwner,
        translations: Translations,
    ) -> None:
        self.t = translations
        self.engine = engine
        self.policies = policies
        self.balance_cache = balance
        # Who may see the operator's balance (/jobs balance).
        self.owner = owner

    async def _policy(self, interaction: discord.Interaction) -> GuildPolicy:
        return await self.policies.get(interaction.guild_id)

    async def _visible_job(self, interaction: discord.Interaction, job_id: str) -> JobRecord | None:
        job = await self.engine.get_job(job_id.strip().lower())
        return job if job_visible_to(job, interaction.guild_id, interaction.user.id) else None

    async def _choices(
        self,
        interaction: discord.Interaction,
        current: str,
        *,
        states: frozenset[JobState] | None = None,
        anyone: bool = False,
    ) -> list[app_commands.Choice[str]]:
        jobs = await self.engine.list_jobs(
            guild_id=interaction.guild_id,
            requester_id=None if anyone else interaction.user.id,
            states=states,
            limit=MINE_LIMIT,
        )
        typed = current.strip().lower()
        locale = member_locale(interaction)
        chosen = [j for j in jobs if j.id.startswith(typed)][:AUTOCOMPLETE_LIMIT]
        return [choice_for(self.t, locale, j) for j in chosen]

    async def recent_job_ids(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        """Autocomplete: the caller's recent jobs in this server."""
        return await self._choices(interaction, current)

    async def cancellable_job_ids(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        """Autocomplete: unfinished jobs the caller may cancel (a moderator: all of them)."""
        moderator = is_moderator(interaction.user, await self._policy(interaction))
        return await self._choices(interaction, current, states=ACTIVE_STATES, anyone=moderator)

    async def retryable_job_ids(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        """Autocomplete for moderators: this server's jobs that a retry can move."""
        if not is_moderator(interaction.user, await self._policy(interaction)):
            return []
        return await self._choices(interaction, current, states=RETRYABLE_STATES, anyone=True)

    @jobs.command(name="mine", description="Your recent jobs in this server")
    async def mine(self, interaction: discord.Interaction) -> None:
        """The caller's recent jobs, newest first, ten a page."""
        found = await self.engine.list_jobs(
            guild_id=interaction.guild_id, requester_id=interaction.user.id, limit=MINE_LIMIT
        )
        pages = page_count(len(found), JOBS_PER_PAGE)
        t, locale = self.t, member_locale(interaction)
        title = t.text(locale, "Your jobs in this server")
        empty = t.text(locale, "You have no jobs here yet. Start one with `/separate`.")

        def render(page: int) -> discord.Embed:
            return job_list_embed(
                t, locale, title, found, page=page, pages=pages, with_requester=False, empty=empty
            )

        await Pages(render, pages, owner_id=interaction.user.id, t=t, locale=locale).send(
            interaction
        )

    @jobs.command(name="status", description="Where one job of this server is")
    @app_commands.describe(job="The job id (from its status message or /jobs mine)")
    @app_commands.autocomplete(job=recent_job_ids)
    async def status(self, interaction: discord.Interaction, job: str) -> None:
        """One job of this server; another server's job is "not found"."""
        locale = member_locale(interaction)
        found = await self._visible_job(interaction, job)
        if found is None:
            await interaction.response.send_message(not_found(self.t, locale, job), ephemeral=True)
            return
        embed = job_detail_embed(self.t, locale, found)
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @jobs.command(name="queue", description="Moderators: every unfinished job of this server")
    async def queue(self, interaction: discord.Interaction) -> None:
        """Unfinished jobs of this server, oldest first, with requester, state and age."""
        t, locale = self.t, member_locale(interaction)
        if not is_moderator(interaction.user, await self._policy(interaction)):
            await interaction.response.send_message(t.text(locale, NOT_A_MODERATOR), ephemeral=True)
            return
        found = await self.engine.list_jobs(
            guild_id=interaction.guild_id,
            states=ACTIVE_STATES,
            limit=QUEUE_LIMIT,
            oldest_first=True,
        )
        pages = page_count(len(found), JOBS_PER_PAGE)
        if len(found) < QUEUE_LIMIT:
            title = t.plural(
                locale,
                "Queue: {count} unfinished job",
                "Queue: {count} unfinished jobs",
                len(found),
            )
        else:
            title = t.plural(
                locale,
                "Queue: the oldest {count} unfinished job",
                "Queue: the oldest {count} unfinished jobs",
                QUEUE_LIMIT,
            )
        empty = t.text(locale, "Nothing is waiting.")

        def render(page: int) -> discord.Embed:
            return job_list_embed(
                t, locale, title, found, page=page, pages=pages, with_requester=True, empty=empty
            )

        await Pages(render, pages, owner_id=interaction.user.id, t=t, locale=locale).send(
            interaction
        )

    @jobs.command(name="cancel", description="Stop a job (yours, or any as a moderator)")
    @app_commands.describe(job="The job id to cancel")
    @app_commands.autocomplete(job=cancellable_job_ids)
    async def cancel(self, interaction: discord.Interaction, job: str) -> None:
        """Stop tracking a job; Vidgo has no cancel, so a late result is simply not posted."""
        t, locale = self.t, member_locale(interaction)
        found = await self._visible_job(interaction, job)
        if found is None:
            await interaction.response.send_message(not_found(t, locale, job), ephemeral=True)
            return
        if not may_control(interaction.user, found, await self._policy(interaction)):
            await interaction.response.send_message(
                t.text(
                    locale, "Only the member who asked for this job, or a moderator, can cancel it."
                ),
                ephemeral=True,
            )
            return
        if not found.state.is_active:
            await interaction.response.send_message(
                t.text(
                    locale,
                    "Job `{job_id}` is already {state}; there is nothing to cancel.",
                    job_id=found.id,
                    state=state_word(t, locale, found),
                ),
                ephemeral=True,
            )
            return
        cancelled = await self.engine.cancel(found.id)
        if cancelled is None or cancelled.state is not JobState.CANCELLED:
            if cancelled is None:
                said = t.text(
                    locale,
                    "Job `{job_id}` is gone: it finished before it could be cancelled.",
                    job_id=found.id,
                )
            else:
                said = t.text(
                    locale,
                    "Job `{job_id}` finished before it could be cancelled ({state}).",
                    job_id=found.id,
                    state=state_word(t, locale, cancelled),
                )
            await interaction.response.send_message(said, ephemeral=True)
            return
        await interaction.response.send_message(
            t.text(
                locale,
                "Cancelled job `{job_id}` ({source}). Vidgo has no way to cancel a task, so it "
                "may still run there, but Stemcord stopped tracking it and will not post its "
                "result.",
                job_id=found.id,
                source=source_text(t, locale, found, SOURCE_MAX),
            ),
            ephemeral=True,
        )  # the engine updates the status message to say "Cancelled"

    @jobs.command(name="retry", description="Moderators: check a job now, or post it again")
    @app_commands.describe(job="The job id to retry")
    @app_commands.autocomplete(job=retryable_job_ids)
    async def retry(self, interaction: discord.Interaction, job: str) -> None:
        """Poll an unfinished job now, or deliver an undeliverable one again."""
        t, locale = self.t, member_locale(interaction)
        if not is_moderator(interaction.user, await self._policy(interaction)):
            await interaction.response.send_message(t.text(locale, NOT_A_MODERATOR), ephemeral=True)
            return
        found = await self._visible_job(interaction, job)
        if found is None:
            await interaction.response.send_message(not_found(t, locale, job), ephemeral=True)
            return
        if found.state.is_active:
            done = t.text(locale, "Asking Vidgo about job `{job_id}` now.", job_id=found.id)
        elif found.state is JobState.UNDELIVERABLE or found.state.awaits_delivery:
            done = t.text(
                locale, "Posting the result of job `{job_id}` again now.", job_id=found.id
            )
        else:
            await interaction.response.send_message(
                t.text(
                    locale,
                    "Job `{job_id}` is {state}; there is nothing to retry.",
                    job_id=found.id,
                    state=state_word(t, locale, found),
                ),
                ephemeral=True,
            )
            return
        await self.engine.poll_now(found.id)
        await interaction.response.send_message(done, ephemeral=True)

    @jobs.command(name="balance", description="The bot's owner: Vidgo credits left")
    async def balance(self, interaction: discord.Interaction) -> None:
        """Vidgo's credit balance, cached for at least a minute; for the bot's owner only."""
        # Deferred first: the owner is looked up from Discord the first time.
        await interaction.response.defer(ephemeral=True, thinking=True)
        t, locale = self.t, member_locale(interaction)
        if not await self.owner.is_owner(interaction.user):
            await interaction.edit_original_response(content=t.text(locale, ONLY_THE_OWNER))
            return
        try:
            balance = await self.balance_cache.get()
        except VidgoError as exc:
            log.warning("could not read the Vidgo balance: %s", exc)
            await interaction.edit_original_response(
                content=t.text(
                    locale,
                    "Vidgo did not answer with the balance just now; try again in a minute.",
                )
            )
            return
        await interaction.edit_original_response(
            content=t.text(
                locale,
                "Vidgo credits left: **{credits}** (as of {when}). Credits are charged only when "
                "a separation succeeds.",
                credits=t.number(locale, balance.credits),
                when=relative_time(balance.fetched_at),
            )
        )
