"""MIDI in Discord: the MIDI kind's view and its button on separation results.

Behind ``ENABLE_MIDI`` (Vidgo's ``generate-midi`` is undocumented): the **MIDI** button on a
separation's result asks Vidgo for the notes of that separation and replies to the result
with a ``.mid`` file. Only the requester or a moderator may press it (it spends the server's
credits), within the server's channel and role rules and the presser's own limits. A press
for MIDI already posted in the server gets a private link to it.
"""

from __future__ import annotations

import functools
import logging
import re

import discord

from bot.jobs import ErrorKind, Submitted
from bot.midi import MIDI, NO_NOTES, midi_bytes, midi_request, separation_task_of
from cogs.buttons import ONLY_MIDI, ButtonHandler, JobButton, job_template
from cogs.gate import press_refusal
from cogs.i18n import N_, LocaleLike, Translations, member_locale
from cogs.render import (
    COLOR_DONE,
    COLOR_FAILED,
    DESCRIPTION_MAX,
    TITLE_MAX,
    KindWords,
    Outcome,
    common_failure_sentence,
    escape_untrusted,
    format_duration,
    job_footer,
)
from cogs.views import Item, KindView, PressServices
from storage.jobstate import JobState
from storage.records import Admission, JobRecord

log = logging.getLogger(__name__)


class MidiButton(JobButton, template=job_template("midi")):
    """Make a ``.mid`` file from a separation's notes (Vidgo ``generate-midi``)."""

    ACTION = "midi"
    LABEL = N_("MIDI")


def midi_file_name(job: JobRecord) -> str:
    """``Harbour Lights.mid``: the track title reduced to safe file-name characters."""
    title = str((job.track or {}).get("title") or "")
    safe = re.sub(r"[^A-Za-z0-9 ._()-]+", "", title).strip(" .")[:60]
    return f"{safe or 'stemcord-' + job.id}.mid"


def midi_failure_sentence(job: JobRecord, t: Translations, locale: LocaleLike) -> str:
    """Why there is no MIDI, in words about MIDI (the rest as for separations)."""
    kind = job.error_kind
    if kind == NO_NOTES:
        return t.text(locale, "Vidgo found no notes to write down in this song.")
    if kind == ErrorKind.NOT_FOUND:
        return t.text(
            locale, "Vidgo no longer knows this separation, so it cannot make MIDI from it."
        )
    if kind == ErrorKind.VIDGO_FAILED:
        if not job.last_error:
            return t.text(locale, "Vidgo could not make MIDI from this song and gave no reason.")
        reason = escape_untrusted(job.last_error, 900)
        return t.text(locale, "Vidgo could not make MIDI from this song: {reason}", reason=reason)
    if kind == ErrorKind.INVALID:
        reason = escape_untrusted(job.last_error or "", 500)
        return t.text(locale, "Vidgo refused to make MIDI from this song: {reason}", reason=reason)
    if kind == ErrorKind.EXPIRED or job.outcome is JobState.EXPIRED:
        return t.text(locale, "Vidgo did not finish the MIDI in time. Press MIDI again later.")
    common = common_failure_sentence(job, t, locale)
    if common is not None:
        return common
    if job.last_error:
        return escape_untrusted(job.last_error, 900)
    return t.text(locale, "The MIDI could not be made.")


def render_midi(job: JobRecord, t: Translations, locale: LocaleLike) -> Outcome:
    """A MIDI job's message: a reply to the result message with the ``.mid`` attached."""
    mention = f"<@{job.requester_id}>"
    title = escape_untrusted(str((job.track or {}).get("title") or ""), 200)
    data = midi_bytes(job.result) if job.outcome is JobState.SUCCEEDED else None
    if data is None:
        embed = discord.Embed(
            title=t.text(locale, "MIDI failed"),
            description=midi_failure_sentence(job, t, locale)[:DESCRIPTION_MAX],
            colour=COLOR_FAILED,
        )
        embed.set_footer(text=job_footer(job, t, locale))
        content = t.text(locale, "{member} no MIDI this time.", member=mention)
        return Outcome(content, embed, [], reply_to=job.reply_to_message_id)
    result = job.result or {}
    heading = (
        t.text(locale, "MIDI of {title}", title=title)
        if title
        else t.text(locale, "MIDI of this song")
    )
    embed = discord.Embed(
        title=heading[:TITLE_MAX],
        description=t.text(
            locale,
            "Open the attached file in any DAW or MIDI player. "
            "Notes are Vidgo's transcription; expect to tidy them up.",
        ),
        colour=COLOR_DONE,
    )
    lines = []
    for instrument in result.get("instruments") or []:
        if isinstance(instrument, dict):
            name = escape_untrusted(str(instrument.get("name") or "?"), 64)
            count = instrument.get("notes")
            if not isinstance(count, int):
                lines.append(t.text(locale, "{name}: notes not counted", name=name))
                continue
            notes = count
            if instrument.get("drums"):
                line = t.plural(
                    locale,
                    "{name}: {count} note (drums, channel 10)",
                    "{name}: {count} notes (drums, channel 10)",
                    notes,
                    name=name,
                )
            else:
                line = t.plural(
                    locale, "{name}: {count} note", "{name}: {count} notes", notes, name=name
                )
            lines.append(line)
    length = format_duration(result.get("seconds"))
    if length:
        embed.add_field(name=t.text(locale, "Length"), value=length, inline=True)
    if lines:
        embed.add_field(
            name=t.text(locale, "Tracks"), value="\n".join(lines[:20])[:1024], inline=False
        )
    embed.set_footer(text=job_footer(job, t, locale))
    return Outcome(
        t.text(locale, "{member} here is the MIDI.", member=mention),
        embed,
        [],
        files=[(midi_file_name(job), data)],
        reply_to=job.reply_to_message_id,
    )


class MidiView(KindView):
    """The MIDI kind in Discord. ``enabled`` (``ENABLE_MIDI``) offers the button; MIDI jobs
    started before it was switched off are still shown."""

    kind = MIDI
    words = KindWords(
        title=N_("MIDI"),
        working=N_("Writing down the notes… (started {started})"),
        done_below=N_("Done — the MIDI file is in the message below"),
        done_in=N_("Done — the MIDI file is in {channel}"),
        cached=N_("Made before — here it is (no new Vidgo job)"),
        posted=N_("This song's MIDI was already posted here, so it is not posted again: {link}"),
    )

    def __init__(self, *, translations: Translations, enabled: bool) -> None:
        super().__init__(translations=translations)
        self.enabled = enabled

    def render(self, job: JobRecord, locale: LocaleLike) -> Outcome:
        """The ``.mid`` file as a reply to the result, or why there is none."""
        return render_midi(job, self.t, locale)

    def failure_sentence(self, job: JobRecord, locale: LocaleLike) -> str:
        """Why there is no MIDI."""
        return midi_failure_sentence(job, self.t, locale)

    def offer(self, job: JobRecord, locale: LocaleLike) -> Item | None:
        """The MIDI button on succeeded separations with a Vidgo task (when enabled)."""
        if not self.enabled or job.kind == MIDI or job.outcome is not JobState.SUCCEEDED:
            return None
        return MidiButton.labelled(job.id, self.t, locale) if separation_task_of(job) else None

    def buttons(self) -> list[type[JobButton]]:
        """The MIDI button (registered even when off, so old buttons say so)."""
        return [MidiButton]

    def routes(self, services: PressServices) -> dict[str, ButtonHandler]:
        """MIDI presses go to :meth:`press`."""
        return {MidiButton.ACTION: functools.partial(self.press, services)}

    def admitted(self, submitted: Submitted, where: int | None, locale: LocaleLike) -> str:
        """The private answer to a MIDI request (always a reply to the result)."""
        t = self.t
        if submitted.admission is Admission.CACHED:
            return t.text(locale, "This song's MIDI was made before — it's on its way as a reply.")
        if submitted.admission in (Admission.JOINED, Admission.DROPPED):
            return t.text(
                locale, "MIDI for this song is already being made; you'll get a reply with it too."
            )
        return t.text(
            locale, "Making MIDI from this song's notes… I'll reply to the result with a .mid file."
        )

    async def press(
        self, services: PressServices, interaction: discord.Interaction, job_id: str
    ) -> None:
        """Submit (or join, or point to) the MIDI job of this separation."""
        t = self.t
        locale = member_locale(interaction)
        if not self.enabled:
            await interaction.response.send_message(
                t.text(locale, "MIDI is turned off on this bot."), ephemeral=True
            )
            return
        controlled = await services.controls.controlled_job(interaction, job_id, ONLY_MIDI)
        if controlled is None:
            return
        job, policy = controlled
        if separation_task_of(job) is None or job.outcome is not JobState.SUCCEEDED:
            await interaction.response.send_message(
                t.text(locale, "This result has no Vidgo separation to make MIDI from."),
                ephemeral=True,
            )
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        # MIDI spends credits: the channel and role rules of /separate apply to the press.
        refusal = await press_refusal(interaction.client, interaction, policy, job)
        if refusal is not None:
            await interaction.edit_original_response(content=refusal)
            return
        request = midi_request(
            job,
            requester_id=interaction.user.id,
            channel_id=interaction.channel_id or job.channel_id,
            guild_id=job.guild_id,
            reply_to_message_id=interaction.message.id if interaction.message else None,
        )
        # The presser's own limits apply. The reply goes where the result is, whatever the
        # server's result channel is now.
        await services.desk.start_privately(
            interaction,
            request,
            policy.with_changes(result_channel_id=None),
            where=None,
        )
