"""``/separate`` and the separation kind's view: stems of a song, in one message.

Input mistakes are found before anything is sent anywhere and answered privately
(ephemeral) with how to fix them. A valid request goes through the server's channel and role
rules, is deferred publicly at once, recorded by the engine, and the deferred answer becomes
the job's status message (:meth:`cogs.desk.JobDesk.start_with_status`, shared with the
"Separate vocals" message menu).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import discord
from discord import app_commands
from discord.ext import commands

from bot.jobs import ErrorKind
from bot.policy import Policies
from bot.separation import NO_STEMS, SEPARATION, separation_request
from bot.sources import (
    Quality,
    Source,
    SourceError,
    StemChoice,
    plan_for,
    source_from_attachment,
    source_from_ids,
    source_from_link,
)
from cogs.desk import JobDesk
from cogs.gate import admission_gate
from cogs.render import (
    BUTTONS_MAX,
    COLOR_DONE,
    COLOR_FAILED,
    DESCRIPTION_MAX,
    FIELD_VALUE_MAX,
    FIELDS_MAX,
    TITLE_MAX,
    KindWords,
    Outcome,
    common_failure_sentence,
    escape_untrusted,
    format_duration,
    is_safe_link,
    pack_lines,
    source_text,
    stem_label,
    stems_asked,
)
from cogs.views import KindView
from storage.jobstate import JobState
from storage.records import JobRecord, SourceKind

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


class SeparationView(KindView):
    """How a separation looks in Discord: its status words, its stems message, its failures."""

    kind = SEPARATION
    words = KindWords(
        title="Stem separation",
        working="Separating…",
        result="the stems are",
        cached="Already separated",
        posted="These stems were",
    )

    def status_details(self, job: JobRecord) -> list[tuple[str, str]]:
        """The stems and the quality asked for, on the status message."""
        quality = quality_text(job)
        return [("Stems", stems_asked(job))] + ([("Quality", quality)] if quality else [])

    def failure_sentence(self, job: JobRecord) -> str:
        """One sentence a member can act on, per failure kind."""
        kind = job.error_kind
        if kind == ErrorKind.DUPLICATE:
            return (
                "This track was already separated on Vidgo (each song can be split only once), "
                "and Stemcord has no copy of that result. Try `stems` with the other choice, "
                "or use the earlier result."
            )
        if kind == ErrorKind.VIDGO_FAILED:
            reason = escape_untrusted(job.last_error or "no reason given", 900)
            return f"Vidgo could not separate this song: {reason}"
        if kind == ErrorKind.EXPIRED or job.outcome is JobState.EXPIRED:
            return (
                "Vidgo did not finish in time, so Stemcord stopped waiting. "
                "Run `/separate` again later."
            )
        if kind == ErrorKind.INVALID:
            reason = escape_untrusted(job.last_error or "", 500)
            return f"Vidgo refused this input: {reason} Check the link or file and try again."
        if kind == NO_STEMS:
            return "Vidgo finished but returned no usable stem links. Try again later."
        common = common_failure_sentence(job)
        if common is not None:
            return common
        return escape_untrusted(job.last_error or "The separation failed.", 900)

    def render(self, job: JobRecord) -> Outcome:
        """A separation's message: the stems, or why there are none."""
        return render_separation(job, self.failure_sentence(job))


def quality_text(job: JobRecord) -> str | None:
    """The separation quality in words, or ``None`` when there is nothing to say.

    Files and links: what was sent as ``model_name`` (a job from before the option is
    standard, Vidgo's default). A Vidgo song: only if a quality was asked, to say it was not
    used (those models have no such choice).
    """
    if job.source_kind is SourceKind.IDS:
        asked = job.options.get("quality")
        return "Vidgo's own (`quality` is for files and links)" if asked else None
    return "enhanced" if job.options.get("model_name") == "enhanced" else "standard"


def render_separation(job: JobRecord, failure: str) -> Outcome:
    """A separation's message: the stems, or why there are none."""
    mention = f"<@{job.requester_id}>"
    if job.outcome is not JobState.SUCCEEDED:
        embed = discord.Embed(
            title="Separation failed" if job.outcome is JobState.FAILED else "Separation timed out",
            description=failure[:DESCRIPTION_MAX],
            colour=COLOR_FAILED,
        )
        embed.add_field(name="Source", value=source_text(job) or "audio", inline=False)
        embed.set_footer(text=f"Job {job.id}")
        return Outcome(f"{mention} your separation did not work out.", embed, [])

    track = job.track or {}
    stems: dict[str, str] = dict((job.result or {}).get("stems") or {})
    title = escape_untrusted(str(track.get("title") or ""), TITLE_MAX) or source_text(job)
    embed = discord.Embed(
        title=title[:TITLE_MAX] or "Your stems",
        description=f"{len(stems)} stem{'s' if len(stems) != 1 else ''} ready — "
        "the links may expire within a day, download them soon.",
        colour=COLOR_DONE,
    )
    cover = track.get("cover_url")
    if isinstance(cover, str) and is_safe_link(cover):
        embed.set_thumbnail(url=cover)
    duration = format_duration(track.get("duration"))
    if duration:
        embed.add_field(name="Duration", value=duration, inline=True)
    if job.source_kind is not SourceKind.IDS:  # the quality option only exists for uploads
        embed.add_field(name="Quality", value=quality_text(job), inline=True)
    buttons: list[tuple[str, str]] = []
    extra: list[str] = []
    for name, url in stems.items():
        if is_safe_link(url) and len(buttons) < BUTTONS_MAX:
            buttons.append((stem_label(name), url))
        else:
            # The name comes from Vidgo: escaped, so it cannot bring its own markdown.
            extra.append(f"[{escape_untrusted(stem_label(name), 80)}](<{url}>)")
    # Stems beyond the buttons go into fields, whole links only, each field within its limit.
    for value in pack_lines(extra, FIELD_VALUE_MAX):
        if len(embed.fields) >= FIELDS_MAX - 1:
            break
        embed.add_field(name="More stems", value=value, inline=False)
    embed.set_footer(text=f"Job {job.id}")
    return Outcome(f"{mention} your stems are ready.", embed, buttons)


class SeparateCog(commands.Cog):
    """The ``/separate`` command."""

    def __init__(self, desk: JobDesk, policies: Policies, *, max_upload_mb: float) -> None:
        self.desk = desk
        self.policies = policies
        self.max_upload_bytes = int(max_upload_mb * 1_048_576)

    @app_commands.command(name="separate", description="Split a song into karaoke stems")
    @app_commands.guild_only()
    @app_commands.describe(
        task_id="Vidgo song: the generation task id (use with audio_id)",
        audio_id="Vidgo song: the track's audio id (use with task_id)",
        link="A storage.vidgo.ai song link, or any http(s) link to an audio file",
        file="An audio file to separate",
        stems="Which stems you want (default: vocals + instrumental)",
        quality="Files and links: standard (default) or enhanced; Vidgo songs use their own",
    )
    @app_commands.choices(
        stems=[
            app_commands.Choice(name="vocals + instrumental", value=StemChoice.VOCALS.value),
            app_commands.Choice(name="every stem", value=StemChoice.ALL.value),
        ],
        quality=[
            app_commands.Choice(name="standard", value=Quality.STANDARD.value),
            app_commands.Choice(name="enhanced (higher quality)", value=Quality.ENHANCED.value),
        ],
    )
    async def separate(  # noqa: PLR0917 - one parameter per command option
        self,
        interaction: discord.Interaction,
        task_id: str | None = None,
        audio_id: str | None = None,
        link: str | None = None,
        file: discord.Attachment | None = None,
        stems: app_commands.Choice[str] | None = None,
        quality: app_commands.Choice[str] | None = None,
    ) -> None:
        """Validate, acknowledge, record and report one separation request."""
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
                max_bytes=self.max_upload_bytes,
            )
        except SourceError as exc:
            await interaction.response.send_message(str(exc), ephemeral=True)
            return
        choice = StemChoice(stems.value) if stems is not None else StemChoice.VOCALS
        asked = Quality(quality.value) if quality is not None else None
        await start_separation(self.desk, self.policies, interaction, source, choice, quality=asked)


async def start_separation(
    desk: JobDesk,
    policies: Policies,
    interaction: discord.Interaction,
    source: Source,
    choice: StemChoice,
    *,
    quality: Quality | None = None,
) -> None:
    """Apply the server's policy, then start a validated separation with a status message.

    Shared by ``/separate`` and the "Separate vocals" message menu, so both obey the same
    channel, role and per-member rules. ``quality``: what the member asked (``None``: not
    asked, standard for files and links).
    """
    gate = await admission_gate(policies, interaction)
    if gate.refusal is not None:
        await interaction.response.send_message(gate.refusal, ephemeral=True)
        return
    request = separation_request(
        source,
        plan_for(source, choice, quality),
        requester_id=interaction.user.id,
        channel_id=interaction.channel_id or 0,
        guild_id=interaction.guild_id,
    )
    await desk.start_with_status(interaction, request, gate.policy)
