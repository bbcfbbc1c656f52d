"""The singer's key in Discord: the **Change key** control on results and the key's reply.

A separation whose backing track is kept (its result's ``media`` entry names one and the file
is still in the media store) gets a **Change key** button. Pressing it answers privately with
a menu of keys, -6 to +6 semitones; picking one renders the backing track in that key
(:mod:`bot.keys`) and posts it as a reply to the result, attached, with the key in words
("Backing track, +2 semitones"). Both the button and the menu are restart-proof dynamic items
whose ``custom_id`` carries the separation's job id (``stemcord:key:<id>``,
``stemcord:keypick:<id>``), so a result posted before a restart, or a menu opened before it,
still works. The reply carries the button too, so another key is one press away.

Anyone allowed to use Stemcord in the channel may pick a key, within the server's channel and
role rules (:func:`cogs.gate.press_refusal`) and their own limits (the press goes through
:meth:`cogs.desk.JobDesk.start_privately`, like Lyrics): a key already posted in the server is
pointed to instead of posted again, and a second pick of a key being made is dropped.

The attachment always fits the upload limit Discord stated for the place of the press
(``Interaction.filesize_limit``, Discord's ``attachment_size_limit``), stored with the request:
the render itself when it fits, else a copy re-encoded to fit (:func:`bot.audio.fit_to_limit`);
when not even the lowest acceptable bitrate fits, the reply says so instead of attaching.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Any, ClassVar, Self

import discord

from bot.audio import AudioError
from bot.jobs import ErrorKind, Submitted
from bot.keys import (
    KEY,
    KEY_STEPS,
    NO_SPACE,
    NOT_KEPT,
    TOO_LONG,
    UNREADABLE,
    KeyRenders,
    check_semitones,
    key_request,
    rendition_base,
)
from bot.media import MediaError
from bot.policy import GuildPolicy
from bot.separation import SEPARATION
from cogs.access import job_visible_to
from cogs.buttons import (
    JOB_ID_PATTERN,
    ButtonHandler,
    JobButton,
    RoutingClient,
    job_custom_id,
    job_template,
)
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
from cogs.views import Item, JobItem, KindView, PressServices, where_sentence
from storage.jobstate import JobState
from storage.records import Admission, JobRecord

log = logging.getLogger(__name__)

Select = discord.ui.Select[discord.ui.View]
NOT_KEPT_SENTENCE = N_("The backing track of this song is no longer kept; run /separate again.")
_FITTED = re.compile(r"_(\d+)k\.mp3$")


class KeyButton(JobButton, template=job_template("key")):
    """Open the key menu for a separation's kept backing track."""

    ACTION = "key"
    LABEL = N_("Change key")


def key_words(semitones: int, t: Translations, locale: LocaleLike) -> str:
    """``+2 semitones``, ``-1 semitone`` in the language of ``locale``."""
    return t.plural(
        locale,
        "{sign}{count} semitone",
        "{sign}{count} semitones",
        abs(semitones),
        sign="-" if semitones < 0 else "+",
    )


def key_options(t: Translations, locale: LocaleLike) -> list[discord.SelectOption]:
    """-6 … +6 semitones, lowest first; 0 is the backing track as it is."""
    options = []
    for steps in KEY_STEPS:
        if steps > 0:
            tone = t.plural(locale, "{count} semitone higher", "{count} semitones higher", steps)
        else:
            tone = t.plural(locale, "{count} semitone lower", "{count} semitones lower", -steps)
        options.append(
            discord.SelectOption(
                label=key_words(steps, t, locale)[:100], value=str(steps), description=tone[:100]
            )
        )
    return options


class KeyPicker(discord.ui.DynamicItem[Select], template=job_template("keypick")):
    """The private menu of keys; the pick goes to the client's router like a button press."""

    ACTION: ClassVar[str] = "keypick"

    def __init__(
        self,
        job_id: str,
        *,
        translations: Translations | None = None,
        locale: LocaleLike = None,
    ) -> None:
        # Rebuilt from a pick, the menu needs no words (only its custom_id counts): English.
        t = translations if translations is not None else Translations.source_only()
        super().__init__(
            discord.ui.Select(
                custom_id=job_custom_id(self.ACTION, job_id),
                placeholder=t.text(locale, "Pick a key")[:150],
                min_values=1,
                max_values=1,
                options=key_options(t, locale),
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        """Rebuild the menu from the picked ``custom_id`` (also after a restart)."""
        return cls(match["job_id"])

    async def callback(self, interaction: discord.Interaction) -> None:
        """Hand the pick to the client's router."""
        client = interaction.client
        if not isinstance(client, RoutingClient):
            raise TypeError("the key menu needs a client with a ButtonRouter")
        await client.router.press(self.ACTION, interaction, self.job_id)


def picked_semitones(interaction: discord.Interaction) -> int | None:
    """The key a member picked in the menu (``None`` for anything that is not one)."""
    data: Any = interaction.data or {}
    values = data.get("values") if isinstance(data, dict) else None
    if not isinstance(values, list) or len(values) != 1 or not isinstance(values[0], str):
        return None
    if re.fullmatch(r"[+-]?\d{1,2}", values[0]) is None:
        return None
    try:
        return check_semitones(int(values[0]))
    except ValueError:
        return None


def key_file_name(job: JobRecord, semitones: int) -> str:
    """``Harbour Lights (key +2).mp3``: the track title reduced to safe file-name characters."""
    title = str((job.track or {}).get("title") or "")
    safe = re.sub(r"[^A-Za-z0-9 ._()-]+", "", title).strip(" .")[:60]
    return f"{safe or 'backing track'} (key {semitones:+d}).mp3"


def key_failure_sentence(job: JobRecord, t: Translations, locale: LocaleLike) -> str:
    """Why there is no backing track in the key asked for, in one sentence."""
    kind = job.error_kind
    if kind == NOT_KEPT:
        return t.text(locale, NOT_KEPT_SENTENCE)
    if kind == UNREADABLE:
        return t.text(
            locale,
            "The kept backing track could not be read, so its key cannot be changed; "
            "run /separate again.",
        )
    if kind == NO_SPACE:
        return t.text(
            locale, "The bot's disk is too full to keep another track just now; try again later."
        )
    if kind == TOO_LONG:
        return t.text(locale, "This song is too long to change its key in the time the bot allows.")
    if kind == ErrorKind.EXPIRED or job.outcome is JobState.EXPIRED:
        return t.text(
            locale, "The bot's audio workers stayed busy for too long; pick the key again later."
        )
    common = common_failure_sentence(job, t, locale)
    if common is not None:
        return common
    if job.last_error:
        return escape_untrusted(job.last_error, 900)
    return t.text(locale, "The key could not be changed.")


class KeyView(KindView):
    """The key kind in Discord: its reply, its failures, its button and menu."""

    kind = KEY
    words = KindWords(
        title=N_("Key change"),
        working=N_("Changing the key… (started {started})"),
        done_below=N_("Done — the backing track is in the message below"),
        done_in=N_("Done — the backing track is in {channel}"),
        cached=N_("Made before — here it is (no new work)"),
        posted=N_(
            "The backing track in this key was already posted here, so it is not posted "
            "again: {link}"
        ),
    )

    def __init__(self, renders: KeyRenders, *, translations: Translations) -> None:
        super().__init__(translations=translations)
        self.renders = renders

    # -- the outcome message ------------------------------------------------------------

    def render(self, job: JobRecord, locale: LocaleLike) -> Outcome:
        """The backing track in the key, attached, as a reply to the result."""
        t = self.t
        mention = f"<@{job.requester_id}>"
        semitones = _semitones_of(job)
        if semitones is not None:
            words = key_words(semitones, t, locale)
            heading = t.text(locale, "Backing track, {key}", key=words)
        else:
            heading = t.text(locale, "Backing track in another key")
        no_track = t.text(locale, "{member} no backing track this time.", member=mention)
        if job.outcome is not JobState.SUCCEEDED:
            reason = self.failure_sentence(job, locale)
            return self._without_file(job, no_track, heading, reason, locale)
        result = job.result or {}
        media_key, base = result.get("media_key"), result.get("base")
        limit = _limit_of(job)
        if not isinstance(media_key, str) or not isinstance(base, str):
            reason = t.text(locale, NOT_KEPT_SENTENCE)
            return self._without_file(job, no_track, heading, reason, locale)
        try:
            found = self.renders.attachment(media_key, base, limit)
            # Read while rendering the message: Discord needs the bytes in the request, and
            # the file is at most one upload limit (it was fitted to it).
            data = found.path.read_bytes() if found is not None else None
        except (OSError, MediaError):
            found, data = None, None
        if found is None or data is None or len(data) > limit:
            if self.renders.rendition(media_key, base) is None:
                reason = t.text(locale, NOT_KEPT_SENTENCE)
            else:
                reason = t.text(
                    locale,
                    "The track in this key is too large for the upload limit here "
                    "({limit} MB), even at the lowest bitrate Stemcord accepts; a server's "
                    "limit grows with its boost level.",
                    limit=t.number(locale, round(limit / 1_048_576, 1)),
                )
            return self._without_file(job, no_track, heading, reason, locale)
        title = escape_untrusted(str((job.track or {}).get("title") or ""), 200)
        higher = semitones is not None and semitones > 0
        if title and higher:
            description = t.text(
                locale,
                "The backing track of **{title}**, higher so it sits in your voice. "
                "The tempo is unchanged.",
                title=title,
            )
        elif title:
            description = t.text(
                locale,
                "The backing track of **{title}**, lower so it sits in your voice. "
                "The tempo is unchanged.",
                title=title,
            )
        elif higher:
            description = t.text(
                locale,
                "The backing track of this song, higher so it sits in your voice. "
                "The tempo is unchanged.",
            )
        else:
            description = t.text(
                locale,
                "The backing track of this song, lower so it sits in your voice. "
                "The tempo is unchanged.",
            )
        embed = discord.Embed(
            title=heading[:TITLE_MAX], description=description[:DESCRIPTION_MAX], colour=COLOR_DONE
        )
        if semitones is not None:
            embed.add_field(
                name=t.text(locale, "Key"), value=key_words(semitones, t, locale), inline=True
            )
        length = format_duration(result.get("seconds"))
        if length:
            embed.add_field(name=t.text(locale, "Length"), value=length, inline=True)
        fitted = _FITTED.search(found.name)
        if fitted is not None:
            embed.add_field(
                name=t.text(locale, "Quality"),
                value=t.text(
                    locale,
                    "{kbps} kbps, to fit this channel's upload limit",
                    kbps=fitted.group(1),
                ),
                inline=True,
            )
        embed.set_footer(text=job_footer(job, t, locale))
        here = t.text(
            locale,
            "{member} here is the backing track, {key}.",
            member=mention,
            key=key_words(semitones or 0, t, locale),
        )
        return Outcome(
            here,
            embed,
            [],
            files=[(key_file_name(job, semitones or 0), data)],
            reply_to=job.reply_to_message_id,
        )

    def _without_file(
        self, job: JobRecord, content: str, heading: str, reason: str, locale: LocaleLike
    ) -> Outcome:
        embed = discord.Embed(
            title=heading[:TITLE_MAX], description=reason[:DESCRIPTION_MAX], colour=COLOR_FAILED
        )
        embed.set_footer(text=job_footer(job, self.t, locale))
        return Outcome(content, embed, [], reply_to=job.reply_to_message_id)

    def failure_sentence(self, job: JobRecord, locale: LocaleLike) -> str:
        """Why there is no backing track in the key."""
        return key_failure_sentence(job, self.t, locale)

    def status_details(self, job: JobRecord, locale: LocaleLike) -> list[tuple[str, str]]:
        """The key asked for."""
        semitones = _semitones_of(job)
        if semitones is None:
            return []
        return [(self.t.text(locale, "Key"), key_words(semitones, self.t, locale))]

    # -- the control --------------------------------------------------------------------

    def offer(self, job: JobRecord, locale: LocaleLike) -> Item | None:
        """**Change key** on a separation whose backing track is kept, and on a key's reply."""
        if job.outcome is not JobState.SUCCEEDED:
            return None
        if job.kind == SEPARATION:
            if self.renders.kept(job) is None:
                return None
            return KeyButton.labelled(job.id, self.t, locale)
        if job.kind == KEY:
            separation_id = job.options.get("separation_job")
            media_key, backing = job.options.get("media_key"), job.options.get("backing")
            if (
                isinstance(separation_id, str)
                and re.fullmatch(JOB_ID_PATTERN, separation_id)
                and isinstance(media_key, str)
                and isinstance(backing, str)
                and self._still_kept(media_key, backing)
            ):
                return KeyButton.labelled(separation_id, self.t, locale)
        return None

    def _still_kept(self, media_key: str, name: str) -> bool:
        try:
            return self.renders.store is not None and self.renders.store.exists(media_key, name)
        except MediaError:
            return False

    def buttons(self) -> list[type[JobItem]]:
        """The button and the menu (both restart-proof)."""
        return [KeyButton, KeyPicker]

    def routes(self, services: PressServices) -> dict[str, ButtonHandler]:
        """A press opens the menu; a pick starts the key change."""
        return {
            KeyButton.ACTION: functools.partial(self.open_menu, services),
            KeyPicker.ACTION: functools.partial(self.pick, services),
        }

    def admitted(self, submitted: Submitted, where: int | None, locale: LocaleLike) -> str:
        """The private answer to a pick (the track is posted as a reply to the result)."""
        t = self.t
        job = submitted.job
        semitones = _semitones_of(job) or 0
        key = key_words(semitones, t, locale)
        if submitted.admission is Admission.CACHED:
            said = t.text(
                locale,
                "This key was made before — the backing track, {key}, is on its way.",
                key=key,
            )
        elif submitted.admission in (Admission.JOINED, Admission.DROPPED):
            said = t.text(locale, "This key is already being made; it will be posted once.")
        elif job.outcome is JobState.SUCCEEDED:
            said = t.text(locale, "Done — the backing track, {key}, is on its way.", key=key)
        elif job.outcome is not None:
            said = t.text(locale, "That did not work — the reason is posted.")
        else:
            said = t.text(
                locale,
                "The bot's audio workers are busy; the backing track, {key}, will be posted as "
                "soon as one is free (job `{job}`).",
                key=key,
                job=job.id,
            )
        return f"{said} {where_sentence(t, locale, where)}"

    # -- presses ------------------------------------------------------------------------

    async def _usable_separation(
        self, services: PressServices, interaction: discord.Interaction, job_id: str
    ) -> tuple[JobRecord, GuildPolicy] | None:
        """The separation and its server's policy if this member may change its key here;
        otherwise the deferred answer says why and ``None`` is returned."""
        t = self.t
        locale = member_locale(interaction)
        separation = await services.engine.get_job(job_id)
        problem: str | None = None
        if separation is None or not job_visible_to(
            separation, interaction.guild_id, interaction.user.id
        ):
            problem = t.text(
                locale, "Stemcord no longer knows this result, so it cannot change its key."
            )
        elif separation.kind != SEPARATION or separation.outcome is not JobState.SUCCEEDED:
            problem = t.text(locale, "This result has no backing track to change the key of.")
        elif self.renders.kept(separation) is None:
            problem = t.text(locale, NOT_KEPT_SENTENCE)
        if problem is not None or separation is None:
            await interaction.edit_original_response(content=problem)
            return None
        policy = await services.policies.get(separation.guild_id)
        # The channel and role rules of /separate apply to the press.
        refusal = await press_refusal(interaction.client, interaction, policy, separation)
        if refusal is not None:
            await interaction.edit_original_response(content=refusal)
            return None
        return separation, policy

    async def open_menu(
        self, services: PressServices, interaction: discord.Interaction, job_id: str
    ) -> None:
        """A press of **Change key**: answer privately with the menu of keys."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        usable = await self._usable_separation(services, interaction, job_id)
        if usable is None:
            return
        separation, _ = usable
        t = self.t
        locale = member_locale(interaction)
        title = escape_untrusted(str((separation.track or {}).get("title") or ""), 200)
        menu = discord.ui.View(timeout=None)
        menu.add_item(KeyPicker(separation.id, translations=t, locale=locale))
        if title:
            content = t.text(
                locale,
                "Pick a key for the backing track of **{title}**: higher (+) or lower (-), in "
                "semitones. It is posted as a reply to the result.",
                title=title,
            )
        else:
            content = t.text(
                locale,
                "Pick a key for the backing track of this song: higher (+) or lower (-), in "
                "semitones. It is posted as a reply to the result.",
            )
        await interaction.edit_original_response(content=content, view=menu)

    async def pick(
        self, services: PressServices, interaction: discord.Interaction, job_id: str
    ) -> None:
        """A key picked in the menu: make (or reuse) it and reply to the result with it."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        semitones = picked_semitones(interaction)
        if semitones is None:
            await interaction.edit_original_response(
                content=self.t.text(member_locale(interaction), "Pick one of the keys in the menu.")
            )
            return
        usable = await self._usable_separation(services, interaction, job_id)
        if usable is None:
            return
        separation, policy = usable
        # The limit Discord states for this place: the answer is posted in this channel.
        limit = int(interaction.filesize_limit)
        await self._fit_kept_render(separation, semitones, limit)
        request = key_request(
            separation,
            semitones,
            requester_id=interaction.user.id,
            channel_id=interaction.channel_id or separation.channel_id,
            guild_id=separation.guild_id,
            reply_to_message_id=separation.result_message_id,
            attachment_limit=limit,
        )
        # Within the presser's own limits; the reply goes where the result is, whatever the
        # server's result channel is now.
        await services.desk.start_privately(
            interaction, request, policy.with_changes(result_channel_id=None), where=None
        )

    async def _fit_kept_render(self, separation: JobRecord, semitones: int, limit: int) -> None:
        """A key rendered before (the cache will answer) may have been fitted only to another
        place's limit: fit it to this one first, so the cached answer can attach it."""
        backing = self.renders.kept(separation)
        if backing is None:
            return
        base = rendition_base(backing.name, semitones)
        if self.renders.rendition(backing.media_key, base) is None:
            return  # not made yet: the job makes it, fitted to this limit
        try:
            await self.renders.fit(backing.media_key, base, limit)
        except (AudioError, MediaError, OSError) as exc:
            # The reply then says the track does not fit; nothing is lost.
            log.warning("could not fit a kept key change to %d bytes (%s)", limit, exc)


def _semitones_of(job: JobRecord) -> int | None:
    try:
        return check_semitones(job.options.get("semitones"))
    except ValueError:
        return None


def _limit_of(job: JobRecord) -> int:
    """The upload limit the job's answer must fit: the one Discord stated at the request.

    A job recorded without one (it should not happen) gets discord.py's default limit, the
    smallest Discord applies anywhere.
    """
    limit = job.options.get("attachment_limit")
    if type(limit) is int and limit > 0:
        return limit
    return discord.utils.DEFAULT_FILE_SIZE_LIMIT_BYTES
