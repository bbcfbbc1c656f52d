"""The Discord side of the engine's delivery interface.

* :meth:`DiscordDelivery.deliver` posts the job's one outcome message in the server's result
  channel if it has one, else in the channel of the request, with the job's nonce so that a
  retry after a crash returns the first message instead of posting again. If the channel is
  gone or the bot may not post there, it tries the request's channel, then the requester by
  DM; if that fails too, the delivery fails permanently. When the server asks for it, the
  requester also gets a DM copy (best effort: it never makes the delivery fail or repeat).
* :meth:`DiscordDelivery.show_progress` edits the public status message: through the
  interaction while its token is valid (15 minutes, with a margin), afterwards — or after a
  restart — through the channel message. While the job waits on Vidgo the status message
  shows its place in the server's queue and an ETA (:mod:`bot.progress`) and carries the
  Refresh and Cancel buttons (:mod:`cogs.buttons`); they go away when the job ends.
* Status edits are coalesced (:class:`bot.progress.StatusEdits`): one edit per job every
  :data:`bot.progress.STATUS_EDIT_INTERVAL` seconds at most, showing the newest state; the
  edit that shows the end is never dropped. A delivery hands its status edit over and
  returns: the result message, not the courtesy edit, is what the worker waits for.
  :meth:`DiscordDelivery.settle` makes the edits still waiting at shutdown.

Each job is shown by its kind's view (:mod:`cogs.views`): its status words, its outcome
message, and the buttons other kinds offer on it (Lyrics and MIDI on separation results).

**Attachments.** An outcome may offer kept files (``Outcome.uploads``: a separation's backing
track, then its vocals). They are attached where they fit the upload limit of the place the
message goes: the interaction's ``filesize_limit`` when the request's interaction is known (it
is Discord's own figure for that server now), else ``guild.filesize_limit``, and discord.py's
default outside servers. All attachments of one message stay within that limit together;
one that does not fit is re-encoded at a lower bitrate (:class:`bot.media.links.UploadFitter`,
never below the floor of ``docs/audio.md``) or left out, and a field of the message says which
files came along and which are too large. Should Discord still refuse the size (413), the
message is posted without attachments, saying so, rather than not at all.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import discord

from bot.delivery import DeliveryError, delivery_key
from bot.jobs import REQUESTER_LOCALE, SERVER_LOCALE
from bot.media.links import UploadFitter
from bot.progress import STATUS_EDIT_INTERVAL, Progress, ProgressTracker, StatusEdits
from cogs.buttons import status_items
from cogs.i18n import LocaleLike, Translations
from cogs.render import (
    Attached,
    KindWords,
    Outcome,
    files_listed,
    left_out_sentence,
    status_embed,
)
from storage.records import Admission, JobRecord

log = logging.getLogger(__name__)

# Interaction tokens live 15 minutes; stop using one a minute early.
INTERACTION_WINDOW = 14 * 60.0
# Discord returns the first message for a repeated nonce "for a few minutes"; past this
# much time since an earlier attempt, its nonce is no longer trusted to prevent a repeat.
NONCE_TRUST_SECONDS = 120.0
# How far back in a channel to look for an earlier post of the same job.
HISTORY_LOOKBACK = 100
TOO_LARGE_STATUS = 413
ENGLISH = "en-US"


@dataclass(frozen=True, slots=True)
class Fitted:
    """The uploads of one outcome fitted to one destination's limit, and what to say."""

    attached: list[Attached] = field(default_factory=list)
    note: str | None = None


NOTHING_FITTED = Fitted()


def files_note(
    attached: list[str], left_out: list[str], limit: int, t: Translations, locale: LocaleLike
) -> str | None:
    """The sentence under a result about its attachments (``None`` when it offers none)."""
    parts: list[str] = []
    if attached:
        parts.append(
            t.plural(
                locale,
                "\N{BLACK RIGHT-POINTING TRIANGLE} {files}: play it right here.",
                "\N{BLACK RIGHT-POINTING TRIANGLE} {files}: play them right here.",
                len(attached),
                files=files_listed(attached, t, locale),
            )
        )
    if left_out:
        parts.append(left_out_sentence(left_out, limit, t, locale))
    return " ".join(parts) or None


async def _send(
    target: discord.abc.Messageable,
    job: JobRecord,
    outcome: Outcome,
    allowed: discord.AllowedMentions,
    fitted: Fitted = NOTHING_FITTED,
    *,
    files_field: str,
) -> discord.Message:
    view = outcome.view()
    extra: dict[str, Any] = {}
    if view is not None:
        extra["view"] = view
    if outcome.files or fitted.attached:
        extra["files"] = outcome.discord_files(fitted.attached)
    embed = outcome.embed
    if fitted.note is not None:
        # A deep copy: Embed.copy shares the list of fields, and the outcome's embed is sent
        # again (another channel, a DM copy) without this destination's note.
        embed = discord.Embed.from_dict(copy.deepcopy(embed.to_dict()))
        embed.add_field(name=files_field, value=fitted.note[:1024], inline=False)
    if outcome.reply_to is not None and isinstance(target, discord.PartialMessageable):
        # A reply (to a result message, say); no ping, and still posted if it was deleted.
        extra["reference"] = discord.MessageReference(
            message_id=outcome.reply_to, channel_id=target.id, fail_if_not_exists=False
        )
    return await target.send(
        content=outcome.content,
        embed=embed,
        allowed_mentions=allowed,
        nonce=delivery_key(job.id),
        **extra,
    )


class ShownKind(Protocol):
    """How one kind of job is shown (a :class:`cogs.views.KindView`)."""

    @property
    def words(self) -> KindWords:
        """The kind's status words."""
        ...

    def render(self, job: JobRecord, locale: LocaleLike) -> Outcome:
        """The job's one outcome message."""
        ...

    def status_details(self, job: JobRecord, locale: LocaleLike) -> list[tuple[str, str]]:
        """The kind's own fields on the status message."""
        ...


class KindShowing(Protocol):
    """Every kind's view (:class:`cogs.views.KindViews`)."""

    def of(self, job: JobRecord) -> ShownKind:
        """The view of the job's kind."""
        ...

    def offers(self, job: JobRecord, locale: LocaleLike) -> list[discord.ui.Item[Any]]:
        """The buttons other kinds put on this job's result message."""
        ...


class DiscordDelivery:
    """Implements :class:`bot.delivery.Delivery` with a discord.py client.

    Everything posted in a channel (the status message, the result) is in the server's
    language: ``guild.preferred_locale`` when this process has the server, else the server's
    locale recorded with the request. A result sent by DM is in the requester's own language,
    recorded when the job was accepted (:data:`bot.jobs.REQUESTER_LOCALE`).
    """

    def __init__(
        self,
        client: discord.Client,
        views: KindShowing,
        progress: ProgressTracker,
        *,
        translations: Translations,
        fitter: UploadFitter | None = None,
        clock: Callable[[], float] = time.time,
        status_interval: float = STATUS_EDIT_INTERVAL,
    ) -> None:
        self.client = client
        self.views = views
        self.progress = progress
        self.t = translations
        self.fitter = fitter
        self._clock = clock
        self._interactions: dict[str, tuple[discord.Interaction, float]] = {}
        self._admissions: dict[str, Admission] = {}
        self.status_edits = StatusEdits(self._show_status, interval=status_interval)

    def remember_interaction(
        self, job_id: str, interaction: discord.Interaction, admission: Admission
    ) -> None:
        """Keep the command's interaction so status edits can use it while it is valid."""
        self._interactions[job_id] = (interaction, time.monotonic())
        self._admissions[job_id] = admission

    def _forget(self, job_id: str) -> None:
        self._interactions.pop(job_id, None)
        self._admissions.pop(job_id, None)

    def channel_locale(self, job: JobRecord) -> str:
        """The language of what is posted about ``job`` in a channel: the server's."""
        if job.guild_id is not None:
            guild = self.client.get_guild(job.guild_id)
            if guild is not None:
                return str(guild.preferred_locale.value)
        recorded = job.options.get(SERVER_LOCALE) or job.options.get(REQUESTER_LOCALE)
        return str(recorded) if recorded else ENGLISH

    def dm_locale(self, job: JobRecord) -> str:
        """The language of a result sent to the requester by DM: their own."""
        recorded = job.options.get(REQUESTER_LOCALE)
        return str(recorded) if recorded else self.channel_locale(job)

    def render(self, job: JobRecord, locale: LocaleLike) -> Outcome:
        """The job's outcome message with the buttons other kinds offer on it."""
        outcome = self.views.of(job).render(job, locale)
        extra = self.views.offers(job, locale)
        if extra:
            outcome = dataclasses.replace(outcome, items=[*outcome.items, *extra])
        return outcome

    async def deliver(self, job: JobRecord) -> int | None:
        """Post the outcome once; DM the requester when the channel is unusable."""
        outcome = self.render(job, self.channel_locale(job))
        allowed = discord.AllowedMentions(
            everyone=False,
            roles=False,
            replied_user=False,
            users=[discord.Object(job.requester_id)],
        )
        # The server's result channel first (if it has one), then where the command ran.
        channel_ids = [job.channel_id]
        if job.result_channel_id is not None and job.result_channel_id != job.channel_id:
            channel_ids.insert(0, job.result_channel_id)
        earlier = job.delivery_started_at
        if earlier is not None and self._clock() - earlier > NONCE_TRUST_SECONDS:
            # An earlier attempt may have posted and died before recording it, and Discord
            # no longer dedupes its nonce: look for that post before posting again.
            found = await self._earlier_post(job, channel_ids)
            if found is not None:
                log.info("job %s: found its earlier post %s; not posting again", job.id, found)
                await self.status_edits.show(job, wait=False)
                return found
        refused: list[str] = []
        message: discord.Message | None = None
        for channel_id in channel_ids:
            channel = self.client.get_partial_messageable(channel_id)
            try:
                fitted = await self._fit(job, outcome, dm=False)
                message = await self._send_fitted(channel, job, outcome, allowed, fitted, dm=False)
                break
            except (discord.NotFound, discord.Forbidden) as exc:
                log.warning("job %s: cannot post in channel %s (%s)", job.id, channel_id, exc.text)
                refused.append(f"channel {channel_id}: {exc.text or exc.status}")
            except discord.HTTPException as exc:
                raise DeliveryError(f"Discord answered {exc.status}: {exc.text}") from exc
            except (OSError, TimeoutError) as exc:
                raise DeliveryError(f"Discord unreachable: {exc}") from exc
        dm_sent = message is None
        if message is None:
            log.warning("job %s: no channel to post in; sending a DM instead", job.id)
            try:
                user = await self.client.fetch_user(job.requester_id)
                personal = self.render(job, self.dm_locale(job))
                fitted = await self._fit(job, personal, dm=True)
                message = await self._send_fitted(user, job, personal, allowed, fitted, dm=True)
            except discord.HTTPException as dm_exc:
                raise DeliveryError(
                    "; ".join(
                        [*refused, f"DM to {job.requester_id}: {dm_exc.text or dm_exc.status}"]
                    ),
                    permanent=True,
                ) from dm_exc
        if job.dm_on_completion and not dm_sent:
            await self._dm_copy(job, self.render(job, self.dm_locale(job)), allowed)
        # The end on the status message follows in the background (never dropped).
        await self.status_edits.show(job, wait=False)
        return int(message.id)

    def upload_limit(self, job: JobRecord, *, dm: bool) -> int:
        """The largest upload Discord takes where the job's message goes, in bytes.

        In a server: the request's interaction states it (``attachment_size_limit``) while it
        is remembered; otherwise the cached guild's (by its boost level); DMs and unknown
        servers get discord.py's default for places without boosts.
        """
        default = discord.utils.DEFAULT_FILE_SIZE_LIMIT_BYTES
        if dm or job.guild_id is None:
            return default
        remembered = self._interactions.get(job.id)
        if remembered is not None and remembered[0].guild_id == job.guild_id:
            return int(remembered[0].filesize_limit)
        guild = self.client.get_guild(job.guild_id)
        return int(guild.filesize_limit) if guild is not None else default

    async def _fit(self, job: JobRecord, outcome: Outcome, *, dm: bool) -> Fitted:
        """The outcome's uploads that fit the destination's limit together, most important
        first (the same limit gives the same files: fitted copies are kept and reused)."""
        if not outcome.uploads:
            return NOTHING_FITTED
        limit = self.upload_limit(job, dm=dm)
        attached: list[Attached] = []
        left_out: list[str] = []
        remaining = limit - sum(len(data) for _, data in outcome.files)
        for upload in outcome.uploads:
            fitted = None
            if self.fitter is not None and remaining > 0:
                fitted = await self.fitter.fitting(upload.key, upload.name, remaining)
            if fitted is None:
                left_out.append(upload.what)
                continue
            attached.append(Attached(fitted.path, upload.filename, fitted.size))
            remaining -= fitted.size
        if left_out:
            log.info("job %s: not attached (limit %d bytes): %s", job.id, limit, left_out)
        names = [u.what for u in outcome.uploads if u.what not in left_out]
        locale = self.dm_locale(job) if dm else self.channel_locale(job)
        return Fitted(attached, files_note(names, left_out, limit, self.t, locale))

    async def _send_fitted(
        self,
        target: discord.abc.Messageable,
        job: JobRecord,
        outcome: Outcome,
        allowed: discord.AllowedMentions,
        fitted: Fitted,
        *,
        dm: bool,
    ) -> discord.Message:
        """Post with the fitted attachments; without them if Discord finds them too large."""
        locale = self.dm_locale(job) if dm else self.channel_locale(job)
        files_field = self.t.text(locale, "Files")
        try:
            return await _send(target, job, outcome, allowed, fitted, files_field=files_field)
        except discord.HTTPException as exc:
            if exc.status != TOO_LARGE_STATUS or not fitted.attached:
                raise
            log.warning("job %s: Discord refused the attachments as too large", job.id)
        whats = [u.what for u in outcome.uploads]
        note = self.t.plural(
            locale,
            "{files} could not be attached here (Discord refused the size): use the links.",
            "{files} could not be attached here (Discord refused the size): use the links.",
            len(whats),
            files=files_listed(whats, self.t, locale),
        )
        return await _send(target, job, outcome, allowed, Fitted([], note), files_field=files_field)

    async def _earlier_post(self, job: JobRecord, channel_ids: list[int]) -> int | None:
        """The id of this bot's own post of the job's outcome in recent history, if any.

        Matched by author (this bot) and the job's id in the footer every outcome carries
        (``Job <id>`` in any language: :func:`cogs.render.job_footer`). The requester's DMs are
        searched too, where an undeliverable channel sends it.
        """
        me = self.client.user
        targets: list[discord.abc.Messageable] = [
            self.client.get_partial_messageable(cid) for cid in channel_ids
        ]
        try:
            user = await self.client.fetch_user(job.requester_id)
            targets.append(user.dm_channel or await user.create_dm())
        except (discord.HTTPException, OSError, TimeoutError) as exc:
            log.info("job %s: cannot look at the requester's DMs (%s)", job.id, exc)
        marker = re.compile(rf"(?<![A-Za-z0-9]){re.escape(job.id)}(?![A-Za-z0-9])")
        for target in targets:
            try:
                async for message in target.history(limit=HISTORY_LOOKBACK):
                    if me is not None and message.author.id != me.id:
                        continue
                    if any(marker.search(e.footer.text or "") for e in message.embeds):
                        return int(message.id)
            except (discord.HTTPException, OSError, TimeoutError) as exc:
                # No Read Message History there (or it is gone): a post there is unknowable.
                log.warning("job %s: cannot read history of %s (%s)", job.id, target, exc)
        return None

    async def _dm_copy(
        self, job: JobRecord, outcome: Outcome, allowed: discord.AllowedMentions
    ) -> None:
        """The server asked for a DM copy: best effort, never a reason to post again."""
        try:
            user = await self.client.fetch_user(job.requester_id)
            fitted = await self._fit(job, outcome, dm=True)
            await self._send_fitted(user, job, outcome, allowed, fitted, dm=True)
        except (discord.HTTPException, OSError, TimeoutError) as exc:
            log.info("job %s: no DM copy for %s (%s)", job.id, job.requester_id, exc)

    async def show_progress(self, job: JobRecord) -> None:
        """Show the job on its status message: at once if its last edit is old enough, else
        (coalesced with whatever comes next) when the interval is over."""
        await self.status_edits.show(job)

    async def settle(self, grace: float = 10.0) -> None:
        """Make the status edits still waiting now (at shutdown: no end is left unshown)."""
        await self.status_edits.settle(grace)

    async def _show_status(self, job: JobRecord) -> None:
        """One status edit (called by :class:`StatusEdits`); an ended job is then forgotten."""
        try:
            await self._edit_status(job)
        finally:
            if not job.state.is_active:
                # Nothing more will be shown for it (a delivery or a cancellation).
                self._forget(job.id)

    async def status_message(
        self, job: JobRecord, admission: Admission | None = None
    ) -> tuple[discord.Embed, discord.ui.View | None]:
        """The status embed and its buttons (``None`` = no buttons: remove them on edit)."""
        progress: Progress | None = None
        if job.state.is_active:
            try:
                progress = await self.progress.progress_of(job)
            except Exception:  # the status message is a courtesy: show it without progress
                log.warning("job %s: no queue position or ETA", job.id, exc_info=True)
        kind = self.views.of(job)
        locale = self.channel_locale(job)
        embed = status_embed(
            job,
            kind.words,
            admission or self._admissions.get(job.id),
            progress,
            details=kind.status_details(job, locale),
            t=self.t,
            locale=locale,
        )
        items = status_items(job, self.t, locale)
        if not items:
            return embed, None
        buttons = discord.ui.View(timeout=None)
        for item in items:
            buttons.add_item(item)
        return embed, buttons

    async def _edit_status(self, job: JobRecord) -> None:
        remembered = self._interactions.get(job.id)
        live = remembered is not None and time.monotonic() - remembered[1] < INTERACTION_WINDOW
        if not live and job.status_message_id is None:
            return  # no status message (a MIDI job, say)
        embed, view = await self.status_message(job)
        try:
            if remembered is not None and live:
                await remembered[0].edit_original_response(embed=embed, view=view)
            elif job.status_message_id is not None:
                channel = self.client.get_partial_messageable(job.channel_id)
                await channel.get_partial_message(job.status_message_id).edit(
                    embed=embed, view=view
                )
        except discord.HTTPException as exc:
            # The status message is a courtesy; the outcome message is what counts.
            log.info("job %s: status message not updated (%s)", job.id, exc.status)
