"""``/separate``: one command, exactly one source, answered within Discord's 3 seconds.

Input mistakes are found before anything is sent anywhere and answered privately
(ephemeral) with how to fix them. A valid request is deferred publicly at once, recorded by the
engine, and the deferred answer becomes the job's status message.

Everything after the source is validated is :func:`start_separation`, shared by ``/separate``
and the "Separate vocals" message menu (:mod:`cogs.separate_message`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.engine import SeparationRequest
from bot.sources import (
    Source,
    SourceError,
    StemChoice,
    plan_for,
    source_from_attachment,
    source_from_ids,
    source_from_link,
)
from cogs.gate import admission_gate, refuse_after_defer
from storage.records import LimitReached

if TYPE_CHECKING:
    from bot.app import StemcordBot

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AttachmentInfo:
    """The parts of a Discord attachment that validation needs."""

    url: str
    filename: str
    content_type: str | None
    size: int


def choose_source(
    *,
    task_id: str | None,
    audio_id: str | None,
    link: str | None,
    file: AttachmentInfo | None,
    max_bytes: int,
) -> Source:
    """Exactly one source, validated; :class:`SourceError` says how to fix anything else."""
    has_ids = bool(task_id and task_id.strip()) or bool(audio_id and audio_id.strip())
    given = [
        name for name, present in (("ids", has_ids), ("link", link), ("file", file)) if present
    ]
    if not given:
        raise SourceError(
            "Tell me what to separate: give `task_id` and `audio_id` of a Vidgo song, "
            "or a `link` to an audio file, or attach a `file`."
        )
    if len(given) > 1:
        raise SourceError(
            "Give only one source: either `task_id` + `audio_id`, or `link`, or `file`."
        )
    if has_ids:
        if not (task_id and task_id.strip()) or not (audio_id and audio_id.strip()):
            missing = "audio_id" if task_id and task_id.strip() else "task_id"
            raise SourceError(
                f"`{missing}` is missing: a Vidgo song needs both `task_id` and `audio_id` "
                "(or paste its storage.vidgo.ai link as `link`)."
            )
        return source_from_ids(task_id or "", audio_id or "")
    if link:
        return source_from_link(link)
    assert file is not None  # noqa: S101 - one source was given
    return source_from_attachment(file.url, file.filename, file.content_type, file.size, max_bytes)


class SeparateCog(commands.Cog):
    """The ``/separate`` command."""

    def __init__(self, bot: StemcordBot) -> None:
        self.bot = bot

    @app_commands.command(name="separate", description="Split a song into karaoke stems")
    @app_commands.guild_only()
    @app_commands.describe(
        task_id="Vidgo song: the generation task id (use with audio_id)",
        audio_id="Vidgo song: the track's audio id (use with task_id)",
        link="A storage.vidgo.ai song link, or any http(s) link to an audio file",
        file="An audio file to separate",
        stems="Which stems you want (default: vocals + instrumental)",
    )
    @app_commands.choices(
        stems=[
            app_commands.Choice(name="vocals + instrumental", value=StemChoice.VOCALS.value),
            app_commands.Choice(name="every stem", value=StemChoice.ALL.value),
        ]
    )
    async def separate(  # noqa: PLR0917 - one parameter per command option
        self,
        interaction: discord.Interaction,
        task_id: str | None = None,
        audio_id: str | None = None,
        link: str | None = None,
        file: discord.Attachment | None = None,
        stems: app_commands.Choice[str] | None = None,
    ) -> None:
        """Validate, acknowledge, record and report one separation request."""
        settings = self.bot.settings
        info = (
            AttachmentInfo(file.url, file.filename, file.content_type, file.size)
            if file is not None
            else None
        )
        try:
            source = choose_source(
                task_id=task_id,
                audio_id=audio_id,
                link=link,
                file=info,
                max_bytes=int(settings.MAX_UPLOAD_MB * 1_048_576),
            )
        except SourceError as exc:
            await interaction.response.send_message(str(exc), ephemeral=True)
            return
        choice = StemChoice(stems.value) if stems is not None else StemChoice.VOCALS
        await start_separation(self.bot, interaction, source, choice)


async def start_separation(
    bot: StemcordBot, interaction: discord.Interaction, source: Source, choice: StemChoice
) -> None:
    """Apply the server's policy, then acknowledge, record and report a validated request.

    Shared by ``/separate`` and the "Separate vocals" message menu, so both obey the same
    channel, role and per-member rules. The status message is public.
    """
    gate = await admission_gate(bot, interaction)
    if gate.refusal is not None:
        await interaction.response.send_message(gate.refusal, ephemeral=True)
        return
    # Everything after this may be slow: acknowledge first (Discord allows 3 s).
    await interaction.response.defer(thinking=True)
    engine = bot.engine
    delivery = bot.delivery
    assert engine is not None and delivery is not None  # noqa: S101 - set before login
    request = SeparationRequest(
        source=source,
        plan=plan_for(source, choice),
        requester_id=interaction.user.id,
        channel_id=interaction.channel_id or 0,
        guild_id=interaction.guild_id,
    )
    try:
        submitted = await engine.submit(request, policy=gate.policy)
    except LimitReached as refused:  # lost a race the early check could not see
        await refuse_after_defer(interaction, refused)
        return
    except Exception:
        log.exception("could not record a separation request")
        await interaction.edit_original_response(
            content="Something went wrong while recording your request. "
            "Nothing was sent to Vidgo; please try again in a minute."
        )
        return
    job = submitted.job
    delivery.remember_interaction(job.id, interaction, submitted.admission)
    embed, view = await delivery.status_message(job, submitted.admission)
    message = await interaction.edit_original_response(embed=embed, view=view)
    fresh = await engine.attach_status_message(job.id, message.id)
    if fresh.state is not job.state:
        # The job moved while we were answering (a fast result): show where it is now.
        await delivery.show_progress(fresh)


async def setup(bot: StemcordBot) -> None:
    """discord.py extension entry point."""
    await bot.add_cog(SeparateCog(bot))
