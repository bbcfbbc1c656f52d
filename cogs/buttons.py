"""Buttons on Stemcord's messages that keep working after a restart, and the status controls.

Every job button is a :class:`discord.ui.DynamicItem` whose ``custom_id`` is
``stemcord:<action>:<job id>`` (:func:`job_custom_id`, the one format). When one is pressed,
discord.py matches the id against the registered classes, and the button hands the press to
the client's :class:`ButtonRouter`, which calls the handler the composition root routed its
action to, with the job id; the handler reloads the job, so a button on a message posted
before a restart works.

The status message's two buttons are handled here (:class:`StatusControls`):

* **Refresh** re-reads the job, asks Vidgo now (``JobEngine.poll_now``) and edits the status
  message; at most once per job every :data:`REFRESH_INTERVAL` seconds, so members cannot make
  Stemcord hammer Vidgo.
* **Cancel** stops tracking the job (Vidgo has no cancel endpoint); a late result is not
  posted.

Only the requester or a moderator may press them; anyone else gets a private refusal. A job
id from another server is "not found".
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

import discord

from bot.engine import JobEngine
from bot.policy import GuildPolicy, Policies
from cogs.access import job_visible_to, may_control
from cogs.i18n import N_, LocaleLike, Translations, member_locale
from storage.jobstate import JobState
from storage.records import JobRecord

log = logging.getLogger(__name__)

REFRESH_INTERVAL = 10.0
# Job ids are short lowercase letters and digits (bot.engine.new_job_id).
JOB_ID_PATTERN = r"[a-z0-9]{1,32}"
SOMETHING_WENT_WRONG = N_("Something went wrong on Stemcord's side; please try again in a minute.")

Button = discord.ui.Button[discord.ui.View]
# What a press of a job button does: (interaction, job id).
ButtonHandler = Callable[[discord.Interaction, str], Awaitable[None]]


def job_custom_id(action: str, job_id: str) -> str:
    """The one ``custom_id`` format of every job button."""
    return f"stemcord:{action}:{job_id}"


def job_template(action: str) -> str:
    """The pattern discord.py matches presses of ``action`` buttons against."""
    return rf"^stemcord:{action}:(?P<job_id>{JOB_ID_PATTERN})$"


class ButtonRouter:
    """Sends each press of a job button to the handler routed to its action.

    The client holds one (:class:`cogs.client.StemcordBot`); the composition root routes every
    action once, when the handlers exist. A press whose action has no route (a button of a
    feature this bot no longer runs) gets a private sentence, in the member's language.
    """

    def __init__(self, *, translations: Translations) -> None:
        self.t = translations
        self._handlers: dict[str, ButtonHandler] = {}

    def route(self, action: str, handler: ButtonHandler) -> None:
        """Presses of ``action`` buttons go to ``handler``."""
        if action in self._handlers:
            raise ValueError(f"the {action!r} button is routed twice")
        self._handlers[action] = handler

    async def press(self, action: str, interaction: discord.Interaction, job_id: str) -> None:
        """Run the handler of ``action``; an unexpected error still gets the member a sentence."""
        handler = self._handlers.get(action)
        locale = member_locale(interaction)
        if handler is None:
            gone = self.t.text(locale, "This button no longer does anything.")
            await answer_privately(interaction, gone)
            return
        try:
            await handler(interaction, job_id)
        except Exception:
            log.exception("job %s: the %s button failed", job_id, action)
            await answer_privately(interaction, self.t.text(locale, SOMETHING_WENT_WRONG))


@runtime_checkable
class RoutingClient(Protocol):
    """A client that routes job-button presses (:class:`cogs.client.StemcordBot`)."""

    @property
    def router(self) -> ButtonRouter:
        """The client's router."""
        ...


class JobButton(discord.ui.DynamicItem[Button], template=job_template("[a-z]+")):
    """A button about one job. Subclasses set ``ACTION``, ``LABEL`` (an English message id,
    marked with ``N_``), ``STYLE`` (``EMOJI``) and their template.

    :meth:`labelled` makes one whose label is in the reader's language; a button rebuilt from
    a press needs no label (only its ``custom_id`` counts).
    """

    ACTION: ClassVar[str] = ""
    LABEL: ClassVar[str] = ""
    STYLE: ClassVar[discord.ButtonStyle] = discord.ButtonStyle.secondary
    EMOJI: ClassVar[str | None] = None

    def __init__(self, job_id: str, *, label: str | None = None) -> None:
        super().__init__(
            discord.ui.Button(
                label=(label or self.LABEL)[:80],
                emoji=self.EMOJI,
                style=self.STYLE,
                custom_id=job_custom_id(self.ACTION, job_id),
            )
        )
        self.job_id = job_id

    @classmethod
    def labelled(cls, job_id: str, t: Translations, locale: LocaleLike) -> Self:
        """The button of ``job_id`` with its label in the language of ``locale``."""
        return cls(job_id, label=t.text(locale, cls.LABEL))

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        """Rebuild the button from the pressed ``custom_id`` (also after a restart)."""
        return cls(match["job_id"])

    async def callback(self, interaction: discord.Interaction) -> None:
        """Hand the press to the client's router."""
        client = interaction.client
        if not isinstance(client, RoutingClient):
            raise TypeError("job buttons need a client with a ButtonRouter")
        await client.router.press(self.ACTION, interaction, self.job_id)


async def answer_privately(interaction: discord.Interaction, text: str) -> None:
    """A private answer, whether or not the interaction was answered yet."""
    try:
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True)
        else:
            await interaction.response.send_message(text, ephemeral=True)
    except discord.HTTPException as exc:
        log.info("could not answer an interaction (%s)", exc.status)


class RefreshButton(JobButton, template=job_template("refresh")):
    """Re-read a job (asking Vidgo) and update its status message."""

    ACTION = "refresh"
    LABEL = N_("Refresh")


class CancelButton(JobButton, template=job_template("cancel")):
    """Stop tracking a job; its result, if Vidgo still finishes it, is not posted."""

    ACTION = "cancel"
    LABEL = N_("Cancel")
    STYLE = discord.ButtonStyle.danger


def status_items(job: JobRecord, t: Translations, locale: LocaleLike) -> list[discord.ui.Item[Any]]:
    """Refresh and Cancel while the job waits on Vidgo; nothing once it ended."""
    if not job.state.is_active:
        return []
    return [RefreshButton.labelled(job.id, t, locale), CancelButton.labelled(job.id, t, locale)]


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


StatusMessage = Callable[[JobRecord], Awaitable[tuple[discord.Embed, discord.ui.View | None]]]

# Who may press what: the refusal names the action in a whole sentence ({requester}: a mention).
ONLY_REFRESH = N_("Only {requester}, who asked for this job, or a moderator, can refresh it.")
ONLY_CANCEL = N_("Only {requester}, who asked for this job, or a moderator, can cancel it.")
ONLY_MIDI = N_("Only {requester}, who asked for this job, or a moderator, can make MIDI from it.")
JOB_GONE = N_("I can't find that job any more.")


class JobControls:
    """Who may act on a job from a button: the job, if visible and the member may."""

    def __init__(
        self, engine: JobEngine, policies: Policies, *, translations: Translations
    ) -> None:
        self.engine = engine
        self.policies = policies
        self.t = translations

    async def controlled_job(
        self, interaction: discord.Interaction, job_id: str, only: str
    ) -> tuple[JobRecord, GuildPolicy] | None:
        """The job (and its server's policy) if the member may act on it.

        Otherwise answer privately (in the member's language) and return ``None``; ``only``
        is the refusal for a member who may not (:data:`ONLY_REFRESH` …). A result that
        reached its requester by DM carries the same buttons: there, the job is the
        requester's own, and its server's rules still apply.
        """
        locale = member_locale(interaction)
        job = await self.engine.get_job(job_id)
        if job is None or not job_visible_to(job, interaction.guild_id, interaction.user.id):
            await interaction.response.send_message(self.t.text(locale, JOB_GONE), ephemeral=True)
            return None
        policy = await self.policies.get(job.guild_id)
        if not may_control(interaction.user, job, policy):
            requester = f"<@{job.requester_id}>"
            await interaction.response.send_message(
                self.t.text(locale, only, requester=requester), ephemeral=True
            )
            return None
        return job, policy


class StatusControls:
    """The handlers of the status message's Refresh and Cancel buttons."""

    def __init__(
        self,
        controls: JobControls,
        status_message: StatusMessage,
        limiter: RefreshLimiter,
    ) -> None:
        self.controls = controls
        self.status_message = status_message
        self.limiter = limiter

    async def refresh(self, interaction: discord.Interaction, job_id: str) -> None:
        """Check, rate-limit, ask Vidgo, and show where the job is now."""
        controlled = await self.controls.controlled_job(interaction, job_id, ONLY_REFRESH)
        if controlled is None:
            return
        job, _ = controlled
        wait = self.limiter.wait_left(job.id)
        if wait > 0:
            t = self.controls.t
            await interaction.response.send_message(
                t.plural(
                    member_locale(interaction),
                    "This job was refreshed a moment ago; try again in {count} second.",
                    "This job was refreshed a moment ago; try again in {count} seconds.",
                    math.ceil(wait),
                ),
                ephemeral=True,
            )
            return
        if job.state.is_active:
            # Vidgo is asked by the dispatcher; a change shows up as the usual status edit.
            job = await self.controls.engine.poll_now(job.id) or job
        embed, view = await self.status_message(job)
        await interaction.response.edit_message(embed=embed, view=view)

    async def cancel(self, interaction: discord.Interaction, job_id: str) -> None:
        """Cancel if the job is still waiting on Vidgo, then show its state."""
        controlled = await self.controls.controlled_job(interaction, job_id, ONLY_CANCEL)
        if controlled is None:
            return
        job, _ = controlled
        if job.state.is_active:
            job = await self.controls.engine.cancel(job.id) or job
        embed, view = await self.status_message(job)
        await interaction.response.edit_message(embed=embed, view=view)
        t = self.controls.t
        locale = member_locale(interaction)
        if job.state is JobState.CANCELLED:
            log.info("job %s: cancelled by %s", job.id, interaction.user.id)
            note = t.text(
                locale,
                "Cancelled. Vidgo cannot stop a task it has started, so it may still finish, "
                "but Stemcord will not post its result.",
            )
        else:
            note = t.text(locale, "This job had already finished, so there was nothing to cancel.")
        await interaction.followup.send(note, ephemeral=True)

    def routes(self) -> dict[str, ButtonHandler]:
        """Refresh and Cancel, by action."""
        return {RefreshButton.ACTION: self.refresh, CancelButton.ACTION: self.cancel}
