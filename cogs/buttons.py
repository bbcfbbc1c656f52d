"""Buttons on Stemcord's messages that keep working after a restart.

Each button is a :class:`discord.ui.DynamicItem` whose ``custom_id`` carries the job id
(``stemcord:<action>:<job id>``). When one is pressed, discord.py matches the id against the
registered templates (``bot.add_dynamic_items``), and the callback reloads the job from the
store: nothing in memory is needed, so a button on a message posted before a restart works.

* **Refresh** (status messages): re-reads the job, asks Vidgo now (``JobEngine.poll_now``) and
  edits the status message; at most once per job every :data:`REFRESH_INTERVAL` seconds, so
  members cannot make Stemcord hammer Vidgo.
* **Cancel** (status messages): stops tracking the job (Vidgo has no cancel endpoint); a late
  result is not posted.
* **MIDI** (result messages, only with ``ENABLE_MIDI``): asks Vidgo's ``generate-midi`` for the
  separation's notes; the ``.mid`` file arrives as a reply to the result message.

Only the requester or a moderator may press them (MIDI spends the server's Vidgo credits);
anyone else gets a private refusal. A job id from another server is "not found".
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Self, cast

import discord

from bot.engine import ErrorKind
from bot.midi import MIDI, NO_NOTES, midi_bytes, midi_request, separation_task_of
from bot.policy import GuildPolicy, load_policy
from cogs.access import job_visible_in, may_control
from cogs.gate import limit_sentence, posted_pointer, press_refusal
from cogs.render import (
    COLOR_DONE,
    COLOR_FAILED,
    DESCRIPTION_MAX,
    OUTCOME_RENDERERS,
    TITLE_MAX,
    Outcome,
    escape_untrusted,
    failure_sentence,
    format_duration,
)
from storage.jobstate import JobState
from storage.records import Admission, JobRecord, LimitReached

if TYPE_CHECKING:
    from bot.app import StemcordBot
    from bot.engine import JobEngine
    from cogs.delivery import DiscordDelivery

log = logging.getLogger(__name__)

# Job ids are short lowercase letters and digits (bot.engine.new_job_id).
_JOB_ID = r"(?P<job_id>[a-z0-9]{1,32})"
REFRESH_INTERVAL = 10.0

Button = discord.ui.Button[discord.ui.View]


class JobButton(discord.ui.DynamicItem[Button], template=rf"^stemcord:[a-z]+:{_JOB_ID}$"):
    """A button about one job; its ``custom_id`` is ``stemcord:<ACTION>:<job id>``.

    Subclasses set ``ACTION``, ``LABEL`` and ``STYLE`` and their own template (the one
    discord.py matches presses against); this base class is never registered itself.
    """

    ACTION = ""
    LABEL = ""
    STYLE = discord.ButtonStyle.secondary
    EMOJI: str | None = None

    def __init__(self, job_id: str) -> None:
        super().__init__(
            discord.ui.Button(
                label=self.LABEL,
                emoji=self.EMOJI,
                style=self.STYLE,
                custom_id=f"stemcord:{self.ACTION}:{job_id}",
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        """Rebuild the button from the pressed ``custom_id`` (also after a restart)."""
        return cls(match["job_id"])


class RefreshLimiter:
    """At most one refresh of a job every ``interval`` seconds (in memory; a restart resets)."""

    def __init__(
        self,
        interval: float = REFRESH_INTERVAL,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self._monotonic = monotonic
        self._last: dict[str, float] = {}

    def wait_left(self, job_id: str) -> float:
        """Seconds until the job may be refreshed again; ``0`` = allowed now (and recorded)."""
        now = self._monotonic()
        # Forget old entries so the map only holds recently refreshed jobs.
        if len(self._last) > 1024:
            self._last = {k: t for k, t in self._last.items() if now - t < self.interval}
        last = self._last.get(job_id)
        if last is not None and now - last < self.interval:
            return self.interval - (now - last)
        self._last[job_id] = now
        return 0.0


def _bot(interaction: discord.Interaction) -> StemcordBot:
    return cast("StemcordBot", interaction.client)


def _wiring(interaction: discord.Interaction) -> tuple[JobEngine, DiscordDelivery]:
    bot = _bot(interaction)
    assert bot.engine is not None and bot.delivery is not None  # noqa: S101 - set before login
    return bot.engine, bot.delivery


async def _controlled_job(
    interaction: discord.Interaction, job_id: str, action: str
) -> tuple[JobRecord, GuildPolicy] | None:
    """The job (and the server's policy) if the member may ``action`` it.

    Otherwise answer privately and return None.
    """
    engine, _ = _wiring(interaction)
    job = await engine.get_job(job_id)
    # A result that reached its requester by DM carries the same buttons: there, the job is
    # the requester's own (and its server's rules still apply).
    in_own_dm = (
        job is not None and interaction.guild_id is None and job.requester_id == interaction.user.id
    )
    if job is None or not (job_visible_in(job, interaction.guild_id) or in_own_dm):
        await interaction.response.send_message("I can't find that job any more.", ephemeral=True)
        return None
    policy = await load_policy(engine.store, job.guild_id)
    if not may_control(interaction.user, job, policy):
        await interaction.response.send_message(
            f"Only <@{job.requester_id}>, who asked for this job, or a moderator can {action} it.",
            ephemeral=True,
        )
        return None
    return job, policy


class RefreshButton(JobButton, template=rf"^stemcord:refresh:{_JOB_ID}$"):
    """Re-read a job (asking Vidgo) and update its status message."""

    ACTION = "refresh"
    LABEL = "Refresh"

    async def callback(self, interaction: discord.Interaction) -> None:
        """Check, rate-limit, ask Vidgo, and show where the job is now."""
        controlled = await _controlled_job(interaction, self.job_id, "refresh")
        if controlled is None:
            return
        job, _ = controlled
        engine, delivery = _wiring(interaction)
        wait = _bot(interaction).refresh_limiter.wait_left(job.id)
        if wait > 0:
            await interaction.response.send_message(
                f"This job was refreshed a moment ago; try again in {math.ceil(wait)} s.",
                ephemeral=True,
            )
            return
        if job.state.is_active:
            # Vidgo is asked by the dispatcher; a change shows up as the usual status edit.
            job = await engine.poll_now(job.id) or job
        embed, view = await delivery.status_message(job)
        await interaction.response.edit_message(embed=embed, view=view)


class CancelButton(JobButton, template=rf"^stemcord:cancel:{_JOB_ID}$"):
    """Stop tracking a job; its result, if Vidgo still finishes it, is not posted."""

    ACTION = "cancel"
    LABEL = "Cancel"
    STYLE = discord.ButtonStyle.danger

    async def callback(self, interaction: discord.Interaction) -> None:
        """Cancel if the job is still waiting on Vidgo, then show its state."""
        controlled = await _controlled_job(interaction, self.job_id, "cancel")
        if controlled is None:
            return
        job, _ = controlled
        engine, delivery = _wiring(interaction)
        if job.state.is_active:
            job = await engine.cancel(job.id) or job
        embed, view = await delivery.status_message(job)
        await interaction.response.edit_message(embed=embed, view=view)
        if job.state is JobState.CANCELLED:
            log.info("job %s: cancelled by %s", job.id, interaction.user.id)
            note = (
                "Cancelled. Vidgo cannot stop a task it has started, so it may still finish, "
                "but Stemcord will not post its result."
            )
        else:
            note = "This job had already finished, so there was nothing to cancel."
        await interaction.followup.send(note, ephemeral=True)


class MidiButton(JobButton, template=rf"^stemcord:midi:{_JOB_ID}$"):
    """Make a ``.mid`` file from a separation's notes (Vidgo ``generate-midi``)."""

    ACTION = "midi"
    LABEL = "MIDI"

    @classmethod
    def offer(cls, job: JobRecord) -> MidiButton | None:
        """The button for a result message: succeeded separations with a Vidgo task."""
        if job.kind == MIDI or job.outcome is not JobState.SUCCEEDED:
            return None
        return cls(job.id) if separation_task_of(job) else None

    async def callback(self, interaction: discord.Interaction) -> None:
        """Submit (or join, or answer from the cache) the MIDI job of this separation."""
        if not _bot(interaction).settings.ENABLE_MIDI:
            await interaction.response.send_message(
                "MIDI is turned off on this bot.", ephemeral=True
            )
            return
        controlled = await _controlled_job(interaction, self.job_id, "make MIDI from")
        if controlled is None:
            return
        job, policy = controlled
        if separation_task_of(job) is None or job.outcome is not JobState.SUCCEEDED:
            await interaction.response.send_message(
                "This result has no Vidgo separation to make MIDI from.", ephemeral=True
            )
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        # MIDI spends credits: the channel and role rules of /separate apply to the press.
        refusal = await press_refusal(interaction.client, interaction, policy, job)
        if refusal is not None:
            await interaction.followup.send(refusal, ephemeral=True)
            return
        engine, _ = _wiring(interaction)
        request = midi_request(
            job,
            requester_id=interaction.user.id,
            channel_id=interaction.channel_id or job.channel_id,
            guild_id=job.guild_id,
            reply_to_message_id=interaction.message.id if interaction.message else None,
        )
        earlier = await engine.posted_result(request)
        if earlier is not None:
            await interaction.followup.send(
                posted_pointer(earlier, "This song's MIDI was"), ephemeral=True
            )
            return
        try:
            # MIDI spends credits: the presser's own limits apply. The reply goes where the
            # result is, whatever the server's result channel is now.
            submitted = await engine.submit(
                request, policy=policy.with_changes(result_channel_id=None)
            )
        except LimitReached as refused:
            await interaction.followup.send(limit_sentence(refused), ephemeral=True)
            return
        except Exception:
            log.exception("job %s: could not record a MIDI request", job.id)
            await interaction.followup.send(
                "Something went wrong while recording your request; please try again.",
                ephemeral=True,
            )
            return
        if submitted.admission is Admission.CACHED:
            note = "This song's MIDI was made before — it's on its way as a reply."
        elif submitted.admission is Admission.JOINED:
            note = "MIDI for this song is already being made; you'll get a reply with it too."
        else:
            note = "Making MIDI from this song's notes… I'll reply to the result with a .mid file."
        await interaction.followup.send(note, ephemeral=True)


DYNAMIC_ITEMS = (RefreshButton, CancelButton, MidiButton)


def status_items(job: JobRecord) -> list[discord.ui.Item[Any]]:
    """Refresh and Cancel while the job waits on Vidgo; nothing once it ended."""
    if not job.state.is_active:
        return []
    return [RefreshButton(job.id), CancelButton(job.id)]


def midi_file_name(job: JobRecord) -> str:
    """``Harbour Lights.mid``: the track title reduced to safe file-name characters."""
    title = str((job.track or {}).get("title") or "")
    safe = re.sub(r"[^A-Za-z0-9 ._()-]+", "", title).strip(" .")[:60]
    return f"{safe or 'stemcord-' + job.id}.mid"


def midi_failure_sentence(job: JobRecord) -> str:
    """Why there is no MIDI, in words about MIDI (the rest as for separations)."""
    kind = job.error_kind
    if kind == NO_NOTES:
        return "Vidgo found no notes to write down in this song."
    if kind == ErrorKind.NOT_FOUND:
        return "Vidgo no longer knows this separation, so it cannot make MIDI from it."
    if kind == ErrorKind.VIDGO_FAILED:
        reason = escape_untrusted(job.last_error or "no reason given", 900)
        return f"Vidgo could not make MIDI from this song: {reason}"
    if kind == ErrorKind.INVALID:
        reason = escape_untrusted(job.last_error or "", 500)
        return f"Vidgo refused to make MIDI from this song: {reason}"
    if kind == ErrorKind.EXPIRED or job.outcome is JobState.EXPIRED:
        return "Vidgo did not finish the MIDI in time. Press MIDI again later."
    return failure_sentence(job)


def render_midi(job: JobRecord) -> Outcome:
    """A MIDI job's message: a reply to the result message with the ``.mid`` attached."""
    mention = f"<@{job.requester_id}>"
    title = escape_untrusted(str((job.track or {}).get("title") or ""), 200) or "this song"
    data = midi_bytes(job.result) if job.outcome is JobState.SUCCEEDED else None
    if data is None:
        embed = discord.Embed(
            title="MIDI failed",
            description=midi_failure_sentence(job)[:DESCRIPTION_MAX],
            colour=COLOR_FAILED,
        )
        embed.set_footer(text=f"Job {job.id}")
        return Outcome(f"{mention} no MIDI this time.", embed, [], reply_to=job.reply_to_message_id)
    result = job.result or {}
    embed = discord.Embed(
        title=f"MIDI of {title}"[:TITLE_MAX],
        description="Open the attached file in any DAW or MIDI player. "
        "Notes are Vidgo's transcription; expect to tidy them up.",
        colour=COLOR_DONE,
    )
    lines = []
    for instrument in result.get("instruments") or []:
        if isinstance(instrument, dict):
            name = escape_untrusted(str(instrument.get("name") or "?"), 64)
            drums = " (drums, channel 10)" if instrument.get("drums") else ""
            count = instrument.get("notes")
            notes = str(count) if isinstance(count, int) else "?"
            lines.append(f"{name}: {notes} notes{drums}")
    length = format_duration(result.get("seconds"))
    if length:
        embed.add_field(name="Length", value=length, inline=True)
    if lines:
        embed.add_field(name="Tracks", value="\n".join(lines[:20])[:1024], inline=False)
    embed.set_footer(text=f"Job {job.id}")
    return Outcome(
        f"{mention} here is the MIDI.",
        embed,
        [],
        files=[(midi_file_name(job), data)],
        reply_to=job.reply_to_message_id,
    )


OUTCOME_RENDERERS[MIDI] = render_midi
