"""Karaoke lyrics in Discord: the lyrics kind's view, its Lyrics button, and ``/lyrics``.

A Vidgo song's word-timed lyrics become one message with a synced ``.lrc`` file, a preview of
the first lines and a waveform picture. Two ways in:

* the **Lyrics** button on the result message of a separation whose source is a Vidgo
  generation (uploads and links have no generation to read lyrics from). Anyone allowed to
  use Stemcord in the channel may press it, within their own limits; the button's
  ``custom_id`` (``stemcord:lyrics:<job id>``) carries the separation job, so it works after a
  restart. The lyrics reply to that result message;
* ``/lyrics`` with ``task_id`` + ``audio_id`` or a ``storage.vidgo.ai`` song link.

Both go through :meth:`cogs.desk.JobDesk.start_privately`: one lyrics job per track (a
request identical to one in flight joins it, a second press of the same button is dropped),
and lyrics already posted in the server are pointed to privately instead of posted again.
"""

from __future__ import annotations

import functools
import logging
import re

import discord
from discord import app_commands
from discord.ext import commands

from bot.jobs import ErrorKind, Submitted
from bot.lyrics import (
    LYRICS,
    NO_LYRICS,
    NO_TIMING,
    NO_VOCALS,
    Lyrics,
    lrc_time,
    lyrics_request,
    to_lrc,
)
from bot.policy import Policies
from bot.separation import SEPARATION
from bot.sources import (
    Source,
    SourceError,
    SourceProblem,
    source_from_ids,
    source_from_link,
)
from bot.waveform import draw_waveform
from cogs.access import job_visible_to
from cogs.buttons import ButtonHandler, JobButton, job_template
from cogs.desk import JobDesk
from cogs.gate import admission_gate, press_refusal
from cogs.i18n import N_, LocaleLike, Translations, member_locale
from cogs.render import (
    COLOR_DONE,
    COLOR_FAILED,
    DESCRIPTION_MAX,
    FIELD_VALUE_MAX,
    TITLE_MAX,
    KindWords,
    Outcome,
    common_failure_sentence,
    escape_untrusted,
    format_duration,
    job_footer,
)
from cogs.separate import source_problem_sentence
from cogs.views import Item, KindView, PressServices, where_sentence
from storage.jobstate import JobState
from storage.records import Admission, JobRecord, SourceKind

log = logging.getLogger(__name__)

WAVEFORM_FILE = "waveform.png"
# The embed previews this many lines (and at most PREVIEW_CHARS characters of them).
PREVIEW_LINES = 8
PREVIEW_CHARS = 1500
PREVIEW_LINE_CHARS = 160
_FILE_NAME_CHARS = re.compile(r"[^A-Za-z0-9]+")


# --- the lyrics message ------------------------------------------------------------------------


def song_title(job: JobRecord, t: Translations, locale: LocaleLike) -> str:
    """The song's title as Vidgo gave it (unescaped), or a description of the source."""
    title = (job.track or {}).get("title")
    if isinstance(title, str) and title.strip():
        return title.strip()
    return t.text(locale, "Vidgo song {audio_id}", audio_id=job.source_audio_id)


def lrc_file_name(title: str) -> str:
    """``Harbour Lights (Reprise)`` -> ``Harbour-Lights-Reprise.lrc`` (plain ASCII, short)."""
    stem = _FILE_NAME_CHARS.sub("-", title).strip("-")[:60].strip("-")
    return f"{stem or 'lyrics'}.lrc"


def lyrics_failure_sentence(job: JobRecord, t: Translations, locale: LocaleLike) -> str:
    """One sentence a member can act on, per failure kind of a lyrics job."""
    kind = job.error_kind
    if kind == NO_VOCALS:
        return t.text(locale, "This track has no vocals, so there are no lyrics to time.")
    if kind == NO_TIMING:
        return t.text(
            locale,
            "Vidgo could not line up any of the words with the music, "
            "so no timed lyrics could be made.",
        )
    if kind == NO_LYRICS:
        return t.text(locale, "Vidgo finished but sent no lyrics. Try again later.")
    if kind == ErrorKind.VIDGO_FAILED:
        if not job.last_error:
            return t.text(
                locale, "Vidgo could not time the lyrics of this song and gave no reason."
            )
        reason = escape_untrusted(job.last_error, 900)
        return t.text(
            locale, "Vidgo could not time the lyrics of this song: {reason}", reason=reason
        )
    if kind == ErrorKind.EXPIRED or job.outcome is JobState.EXPIRED:
        return t.text(
            locale, "Vidgo did not finish in time, so Stemcord stopped waiting. Try again later."
        )
    if kind == ErrorKind.INVALID:
        reason = escape_untrusted(job.last_error or "", 500)
        return t.text(locale, "Vidgo refused this request: {reason}", reason=reason)
    if kind == ErrorKind.DUPLICATE:
        return t.text(
            locale, "Vidgo refused to read these lyrics again and Stemcord has no copy. Try later."
        )
    common = common_failure_sentence(job, t, locale)  # worded the same for every kind of job
    if common is not None:
        return common
    if job.last_error:
        return escape_untrusted(job.last_error, 900)
    return t.text(locale, "The lyrics could not be made.")


def preview(lyrics: Lyrics, t: Translations, locale: LocaleLike) -> str:
    """The first lines, each with its time, escaped and within the embed's limits."""
    shown: list[str] = []
    used = 0
    for line in lyrics.lines[:PREVIEW_LINES]:
        minutes_seconds = lrc_time(line.start)[:5]
        text = escape_untrusted(line.text, PREVIEW_LINE_CHARS)
        entry = f"`{minutes_seconds}` *{text}*" if line.section else f"`{minutes_seconds}` {text}"
        if used + len(entry) + 1 > PREVIEW_CHARS:
            break
        shown.append(entry)
        used += len(entry) + 1
    rest = len(lyrics.lines) - len(shown)
    if rest > 0:
        shown.append(
            t.plural(
                locale, "… {count} more line in the file", "… {count} more lines in the file", rest
            )
        )
    return "\n".join(shown)[:DESCRIPTION_MAX]


def render_lyrics(job: JobRecord, t: Translations, locale: LocaleLike) -> Outcome:
    """A lyrics job's one message: the .lrc and the waveform, or why there are none."""
    mention = f"<@{job.requester_id}>"
    title = song_title(job, t, locale)
    shown_title = escape_untrusted(title, TITLE_MAX - 12)
    footer = job_footer(job, t, locale)
    if job.outcome is not JobState.SUCCEEDED or not job.result:
        embed = discord.Embed(
            title=(
                t.text(locale, "No lyrics")
                if job.outcome is JobState.FAILED
                else t.text(locale, "Lyrics timed out")
            ),
            description=lyrics_failure_sentence(job, t, locale)[:DESCRIPTION_MAX],
            colour=COLOR_FAILED,
        )
        embed.add_field(name=t.text(locale, "Song"), value=shown_title, inline=False)
        embed.set_footer(text=footer)
        return Outcome(
            t.text(locale, "{member} no lyrics for this one.", member=mention),
            embed,
            [],
            reply_to=job.reply_to_message_id,
        )

    lyrics = Lyrics.from_stored(job.result)
    duration = (job.track or {}).get("duration")
    length = float(duration) if isinstance(duration, int | float) and duration > 0 else None
    enhanced = job.options.get("enhanced_lrc") is True
    lrc = to_lrc(lyrics, title=title, length=length, enhanced=enhanced)
    span = length or lyrics.end or 1.0
    png = draw_waveform(lyrics.waveform, marks=[line.start / span for line in lyrics.sung_lines])

    embed = discord.Embed(
        title=t.text(locale, "Lyrics — {title}", title=shown_title)[:TITLE_MAX],
        description=preview(lyrics, t, locale),
        colour=COLOR_DONE,
    )
    words = len(lyrics.words)
    embed.add_field(
        name=t.text(locale, "Lines"), value=t.number(locale, len(lyrics.sung_lines)), inline=True
    )
    embed.add_field(name=t.text(locale, "Words"), value=t.number(locale, words), inline=True)
    shown_duration = format_duration(length or lyrics.end)
    if shown_duration:
        embed.add_field(name=t.text(locale, "Duration"), value=shown_duration, inline=True)
    if lyrics.interpolated:
        timing = t.plural(
            locale,
            "{aligned} of {count} word aligned by Vidgo; {missed} could not be aligned and were "
            "timed between their neighbours.",
            "{aligned} of {count} words aligned by Vidgo; {missed} could not be aligned and "
            "were timed between their neighbours.",
            words,
            aligned=t.number(locale, words - lyrics.interpolated),
            missed=t.number(locale, lyrics.interpolated),
        )
    else:
        timing = t.plural(
            locale,
            "All {count} word aligned by Vidgo.",
            "All {count} words aligned by Vidgo.",
            words,
        )
    embed.add_field(name=t.text(locale, "Timing"), value=timing[:FIELD_VALUE_MAX], inline=False)
    embed.set_image(url=f"attachment://{WAVEFORM_FILE}")
    style = (
        t.text(locale, "enhanced LRC (word timestamps)")
        if enhanced
        else t.text(locale, "line-synced LRC")
    )
    embed.set_footer(text=f"{footer} · {style}")
    return Outcome(
        t.text(
            locale,
            "{member} the lyrics are ready — load the .lrc file in your karaoke player.",
            member=mention,
        ),
        embed,
        [],
        files=[(lrc_file_name(title), lrc.encode("utf-8")), (WAVEFORM_FILE, png)],
        reply_to=job.reply_to_message_id,
    )


# --- the button and the view -------------------------------------------------------------------


class LyricsButton(JobButton, template=job_template("lyrics")):
    """The Lyrics button of one separation result; its custom_id names the separation job."""

    ACTION = "lyrics"
    LABEL = N_("Lyrics")
    EMOJI = "\N{MICROPHONE}"


def press_problem(
    separation: JobRecord | None,
    guild_id: int | None,
    user_id: int,
    t: Translations,
    locale: LocaleLike,
) -> str | None:
    """Why a press cannot give lyrics (``None`` when it can)."""
    if separation is None or not job_visible_to(separation, guild_id, user_id):
        return t.text(
            locale, "Stemcord no longer knows this result, so it cannot find the song's lyrics."
        )
    if separation.kind != SEPARATION or separation.source_kind is not SourceKind.IDS:
        return t.text(
            locale, "Lyrics exist only for songs generated on Vidgo, not for uploads or links."
        )
    if separation.outcome is not JobState.SUCCEEDED:
        return t.text(
            locale, "This separation did not succeed, so there is no song to read lyrics from."
        )
    return None


class LyricsView(KindView):
    """The lyrics kind in Discord: its message, its failures, its button on separations."""

    kind = LYRICS
    words = KindWords(
        title=N_("Timed lyrics"),
        working=N_("Timing the lyrics… (started {started})"),
        done_below=N_("Done — the lyrics are in the message below"),
        done_in=N_("Done — the lyrics are in {channel}"),
        cached=N_("Read before — here they are (no new Vidgo job)"),
        posted=N_("These lyrics were already posted here, so they are not posted again: {link}"),
    )

    def __init__(self, *, translations: Translations, enhanced_lrc: bool) -> None:
        super().__init__(translations=translations)
        self.enhanced_lrc = enhanced_lrc

    def render(self, job: JobRecord, locale: LocaleLike) -> Outcome:
        """The .lrc file and the waveform, or why there are none."""
        return render_lyrics(job, self.t, locale)

    def failure_sentence(self, job: JobRecord, locale: LocaleLike) -> str:
        """Why there are no lyrics."""
        return lyrics_failure_sentence(job, self.t, locale)

    def offer(self, job: JobRecord, locale: LocaleLike) -> Item | None:
        """The Lyrics button on results of separations of a Vidgo generation."""
        if (
            job.kind != SEPARATION
            or job.outcome is not JobState.SUCCEEDED
            or job.source_kind is not SourceKind.IDS
            or not job.source_task_id
            or not job.source_audio_id
        ):
            return None
        return LyricsButton.labelled(job.id, self.t, locale)

    def buttons(self) -> list[type[JobButton]]:
        """The Lyrics button."""
        return [LyricsButton]

    def routes(self, services: PressServices) -> dict[str, ButtonHandler]:
        """Lyrics presses go to :meth:`press`."""
        return {LyricsButton.ACTION: functools.partial(self.press, services)}

    def admitted(self, submitted: Submitted, where: int | None, locale: LocaleLike) -> str:
        """The private answer to a lyrics request."""
        t = self.t
        job = submitted.job
        if submitted.admission is Admission.JOINED:
            return t.text(
                locale,
                "Someone asked for these lyrics a moment ago; they are on their way to you too.",
            )
        if submitted.admission is Admission.CACHED:
            said = t.text(
                locale, "Here they are — these lyrics were read before, so they are posted now."
            )
        elif submitted.admission is Admission.DROPPED:
            said = t.text(locale, "The lyrics are already on their way — they will be posted once.")
        elif job.outcome is JobState.SUCCEEDED:
            said = t.text(locale, "Done — the lyrics are posted.")  # Vidgo answered at once
        elif job.outcome is not None:
            said = t.text(locale, "That did not work — the reason is posted.")
        else:
            said = t.text(
                locale,
                "Working on the lyrics (job `{job}`) — they will be posted when ready.",
                job=job.id,
            )
        return f"{said} {where_sentence(t, locale, where)}"

    async def press(
        self, services: PressServices, interaction: discord.Interaction, job_id: str
    ) -> None:
        """A press of a Lyrics button: answer privately, post the lyrics as a reply."""
        # Loading the job and submitting may take longer than Discord's 3 seconds.
        await interaction.response.defer(ephemeral=True, thinking=True)
        separation = await services.engine.get_job(job_id)
        problem = press_problem(
            separation,
            interaction.guild_id,
            interaction.user.id,
            self.t,
            member_locale(interaction),
        )
        if problem is not None or separation is None:
            await interaction.edit_original_response(content=problem)
            return
        assert separation.source_task_id and separation.source_audio_id  # noqa: S101 - checked
        # Lyrics spend credits: the channel and role rules of /separate apply to the press.
        policy = await services.policies.get(separation.guild_id)
        refusal = await press_refusal(interaction.client, interaction, policy, separation)
        if refusal is not None:
            await interaction.edit_original_response(content=refusal)
            return
        result_message = separation.result_message_id or (
            interaction.message.id if interaction.message is not None else None
        )
        request = lyrics_request(
            task_id=separation.source_task_id,
            audio_id=separation.source_audio_id,
            requester_id=interaction.user.id,
            channel_id=interaction.channel_id or separation.channel_id,
            guild_id=separation.guild_id,
            track=separation.track,
            reply_to_message_id=result_message,
            enhanced_lrc=self.enhanced_lrc,
        )
        # Within the presser's own limits; the reply goes where the result is, whatever the
        # server's result channel is now.
        await services.desk.start_privately(
            interaction,
            request,
            policy.with_changes(result_channel_id=None),
            where=None,
        )


# --- the command -----------------------------------------------------------------------------


def lyrics_source(*, task_id: str | None, audio_id: str | None, link: str | None) -> Source:
    """A Vidgo song by its ids or its song link; :class:`SourceError` says how to fix the rest."""
    has_ids = bool(task_id and task_id.strip()) or bool(audio_id and audio_id.strip())
    has_link = bool(link and link.strip())
    if not has_ids and not has_link:
        raise SourceError(SourceProblem.NO_SOURCE)
    if has_ids and has_link:
        raise SourceError(SourceProblem.MANY_SOURCES)
    if has_ids:
        if not (task_id and task_id.strip()) or not (audio_id and audio_id.strip()):
            missing = "audio_id" if task_id and task_id.strip() else "task_id"
            raise SourceError(SourceProblem.ID_MISSING, name=missing)
        return source_from_ids(task_id or "", audio_id or "")
    source = source_from_link(link or "")  # a streaming page is refused (STREAMING_PAGE)
    if source.kind is not SourceKind.IDS:
        raise SourceError(SourceProblem.NOT_A_VIDGO_SONG)
    return source


def lyrics_problem_sentence(error: SourceError, t: Translations, locale: LocaleLike) -> str:
    """What a member is told about ``/lyrics`` input that cannot be used (only a Vidgo song
    will do; the rest is said as for ``/separate``)."""
    if error.problem is SourceProblem.NO_SOURCE:
        return t.text(
            locale,
            "Tell me which Vidgo song: give `task_id` and `audio_id`, "
            "or paste the song's storage.vidgo.ai `link`.",
        )
    if error.problem is SourceProblem.MANY_SOURCES:
        return t.text(locale, "Give only one source: either `task_id` + `audio_id`, or `link`.")
    if error.problem is SourceProblem.STREAMING_PAGE:
        return t.text(
            locale,
            "That link is a {service} page, not a Vidgo song. Lyrics come only from songs "
            "generated on Vidgo: give `task_id` and `audio_id`, or the song's storage.vidgo.ai "
            "`link`. Stemcord does not fetch streaming or video pages.",
            service=error.values.get("service", ""),
        )
    return source_problem_sentence(error, t, locale)


class LyricsCog(commands.Cog):
    """The ``/lyrics`` command."""

    def __init__(
        self, desk: JobDesk, policies: Policies, *, translations: Translations, enhanced_lrc: bool
    ) -> None:
        self.desk = desk
        self.policies = policies
        self.t = translations
        self.enhanced_lrc = enhanced_lrc

    @app_commands.command(name="lyrics", description="Word-timed lyrics of a Vidgo song (.lrc)")
    @app_commands.guild_only()
    @app_commands.describe(
        task_id="Vidgo song: the generation task id (use with audio_id)",
        audio_id="Vidgo song: the track's audio id (use with task_id)",
        link="The song's storage.vidgo.ai link",
    )
    async def lyrics(
        self,
        interaction: discord.Interaction,
        task_id: str | None = None,
        audio_id: str | None = None,
        link: str | None = None,
    ) -> None:
        """Validate, acknowledge privately, and submit one lyrics request."""
        try:
            source = lyrics_source(task_id=task_id, audio_id=audio_id, link=link)
        except SourceError as exc:
            said = lyrics_problem_sentence(exc, self.t, member_locale(interaction))
            await interaction.response.send_message(said, ephemeral=True)
            return
        # Lyrics cost credits like a separation: the server's channel, role and limits apply.
        gate = await admission_gate(self.policies, interaction)
        if gate.refusal is not None:
            await interaction.response.send_message(gate.refusal, ephemeral=True)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        assert source.task_id and source.audio_id  # noqa: S101 - a Vidgo song has both ids
        request = lyrics_request(
            task_id=source.task_id,
            audio_id=source.audio_id,
            requester_id=interaction.user.id,
            channel_id=interaction.channel_id or 0,
            guild_id=interaction.guild_id,
            enhanced_lrc=self.enhanced_lrc,
        )
        where = gate.policy.result_channel_id or interaction.channel_id
        await self.desk.start_privately(interaction, request, gate.policy, where=where)
