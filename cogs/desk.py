"""The one path from an interaction to a recorded job and the member's answer.

Commands, the message menu and result buttons all start jobs here, so every entry point
obeys the same rules and says the same things:

* :meth:`JobDesk.start_with_status` — ``/separate`` and the "Separate vocals" menu: the
  interaction is deferred publicly and its answer becomes the job's status message, edited as
  the job moves.
* :meth:`JobDesk.start_privately` — ``/lyrics`` and the Lyrics and MIDI buttons: the member
  gets a private answer; the result itself is posted publicly (as a reply to the result it
  was asked from). Something already posted in the server is pointed to instead of posted
  again, and a second press of the same button changes nothing (the store drops it).

In both, a per-member limit reached in the admitting transaction gets its one sentence, and any
other failure to record the request says so without pretending anything was sent to Vidgo.
"""

from __future__ import annotations

import logging
from typing import Protocol

import discord

from bot.engine import JobEngine
from bot.jobs import JobRequest, Submitted, with_locales
from bot.policy import GuildPolicy
from cogs.delivery import DiscordDelivery
from cogs.gate import limit_sentence, refuse_after_defer
from cogs.i18n import N_, LocaleLike, Translations, member_locale
from storage.records import JobRecord, LimitReached

log = logging.getLogger(__name__)

NOT_RECORDED = N_(
    "Something went wrong while recording your request. "
    "Nothing was sent to Vidgo; please try again in a minute."
)


class KindAnswers(Protocol):
    """What each kind says to a member (its view's words; :class:`cogs.views.KindViews`)."""

    def posted_sentence(self, kind: str, link: str, locale: LocaleLike) -> str:
        """ "These lyrics were already posted here …: <link>"."""
        ...

    def admitted(
        self, kind: str, submitted: Submitted, where: int | None, locale: LocaleLike
    ) -> str:
        """The private answer to a request of ``kind``."""
        ...


def recorded_locales(request: JobRequest, interaction: discord.Interaction) -> JobRequest:
    """The request with the requester's language and the server's recorded in it, so that
    what is said about the job later (a DM, a post after a restart) is in the right one."""
    server = interaction.guild_locale
    return with_locales(
        request, interaction.locale.value, server.value if server is not None else None
    )


def message_link(job: JobRecord) -> str:
    """The link to a posted result message."""
    assert job.result_message_id is not None  # noqa: S101 - only posted jobs are given
    channel_id = job.result_channel_id or job.channel_id
    return f"https://discord.com/channels/{job.guild_id}/{channel_id}/{job.result_message_id}"


class JobDesk:
    """Starts jobs for members and answers them (see the module docstring).

    Private answers are in the member's own language (``interaction.locale``); the status
    message is in the server's (:class:`cogs.delivery.DiscordDelivery`).
    """

    def __init__(
        self,
        engine: JobEngine,
        delivery: DiscordDelivery,
        answers: KindAnswers,
        *,
        translations: Translations,
    ) -> None:
        self.engine = engine
        self.delivery = delivery
        self.answers = answers
        self.t = translations

    async def start_with_status(
        self, interaction: discord.Interaction, request: JobRequest, policy: GuildPolicy
    ) -> Submitted | None:
        """Defer publicly, record the job, and make the answer its status message.

        The caller has applied the server's channel and role rules.
        """
        # Everything after this may be slow: acknowledge first (Discord allows 3 s).
        await interaction.response.defer(thinking=True)
        request = recorded_locales(request, interaction)
        try:
            submitted = await self.engine.submit(request, policy=policy)
        except LimitReached as refused:  # lost a race the early check could not see
            await refuse_after_defer(interaction, refused)
            return None
        except Exception:
            log.exception("could not record a %s request", request.kind)
            not_recorded = self.t.text(member_locale(interaction), NOT_RECORDED)
            await interaction.edit_original_response(content=not_recorded)
            return None
        job = submitted.job
        self.delivery.remember_interaction(job.id, interaction, submitted.admission)
        embed, view = await self.delivery.status_message(job, submitted.admission)
        message = await interaction.edit_original_response(embed=embed, view=view)
        fresh = await self.engine.attach_status_message(job.id, message.id)
        if fresh.state is not job.state:
            # The job moved while we were answering (a fast result): show where it is now.
            await self.delivery.show_progress(fresh)
        return submitted

    async def start_privately(
        self,
        interaction: discord.Interaction,
        request: JobRequest,
        policy: GuildPolicy,
        *,
        where: int | None,
    ) -> Submitted | None:
        """Record the job and tell the member privately, in their language, what happens next.

        The interaction must already be deferred privately; ``where`` is the channel the
        result will be posted in (``None``: as a reply to the result it was asked from).
        """
        locale = member_locale(interaction)
        earlier = await self.engine.posted_result(request)
        if earlier is not None:
            pointer = self.answers.posted_sentence(request.kind, message_link(earlier), locale)
            await interaction.edit_original_response(content=pointer)
            return None
        request = recorded_locales(request, interaction)
        try:
            submitted = await self.engine.submit(request, policy=policy)
        except LimitReached as refused:
            await interaction.edit_original_response(content=limit_sentence(refused))
            return None
        except Exception:
            log.exception("could not record a %s request", request.kind)
            await interaction.edit_original_response(content=self.t.text(locale, NOT_RECORDED))
            return None
        answer = self.answers.admitted(request.kind, submitted, where, locale)
        await interaction.edit_original_response(content=answer)
        return submitted
