"""``/separate`` and the separation kind's view: stems of a song, in one message.

Input mistakes are found before anything is sent anywhere and answered privately
(ephemeral) with how to fix them. A valid request goes through the server's channel and role
rules, is deferred publicly at once, recorded by the engine, and the deferred answer becomes
the job's status message (:meth:`cogs.desk.JobDesk.start_with_status`, shared with the
"Separate vocals" message menu).

The result message (:func:`render_separation`) carries a link button per stem: to the bot's
own kept copy (a signed link that expires, when the bot has a public address), else to
Vidgo's file while Vidgo's link lives. The backing track and the vocals come as attachments
where they fit the upload limit (:class:`cogs.delivery.DiscordDelivery` fits them). When
anything is kept, a restart-proof **Get links** button answers privately with fresh links,
or, without a public address, with the files themselves.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import discord
from discord import app_commands
from discord.ext import commands

from bot.jobs import ErrorKind
from bot.media.keeper import MediaEntry
from bot.media.links import MediaLinks, UploadFitter
from bot.policy import Policies
from bot.separation import (
    NO_STEMS,
    SEPARATION,
    kept_media,
    links_alive,
    separation_request,
)
from bot.sources import (
    Quality,
    Source,
    SourceError,
    SourceProblem,
    StemChoice,
    plan_for,
    source_from_attachment,
    source_from_ids,
    source_from_link,
)
from cogs.access import job_visible_to
from cogs.buttons import ButtonHandler, JobButton, job_template
from cogs.desk import JobDesk
from cogs.gate import admission_gate, press_refusal
from cogs.i18n import N_, LocaleLike, Translations, member_locale
from cogs.render import (
    BUTTONS_MAX,
    BUTTONS_PER_ROW,
    COLOR_DONE,
    COLOR_FAILED,
    DESCRIPTION_MAX,
    FIELD_VALUE_MAX,
    FIELDS_MAX,
    TITLE_MAX,
    KindWords,
    Outcome,
    Upload,
    common_failure_sentence,
    escape_untrusted,
    format_duration,
    is_safe_link,
    job_footer,
    left_out_sentence,
    pack_lines,
    safe_file_name,
    source_text,
    stem_label,
    stems_asked,
)
from cogs.views import Item, KindView, PressServices
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
        raise SourceError(SourceProblem.NO_SOURCE)
    if len(given) > 1:
        raise SourceError(SourceProblem.MANY_SOURCES)
    if has_ids:
        if not (task_id and task_id.strip()) or not (audio_id and audio_id.strip()):
            missing = "audio_id" if task_id and task_id.strip() else "task_id"
            raise SourceError(SourceProblem.ID_MISSING, name=missing)
        return source_from_ids(task_id or "", audio_id or "")
    if link:
        return source_from_link(link)
    assert file is not None  # noqa: S101 - one source was given
    return source_from_attachment(file.url, file.filename, file.content_type, file.size, max_bytes)


def _shown_name(value: object) -> str:
    """A member's file name inside a code span: no backticks, not too long."""
    return str(value).replace("`", "'")[:200]


def _megabytes(t: Translations, locale: LocaleLike, size: object, digits: int) -> str:
    return t.number(locale, round(float(size) / 1_048_576 if isinstance(size, int) else 0, digits))


def source_problem_sentence(error: SourceError, t: Translations, locale: LocaleLike) -> str:
    """What a member is told about an input that cannot be used, and how to fix it."""
    values = error.values
    name = str(values.get("name", ""))
    match error.problem:
        case SourceProblem.NO_SOURCE:
            return t.text(
                locale,
                "Tell me what to separate: give `task_id` and `audio_id` of a Vidgo song, "
                "or a `link` to an audio file, or attach a `file`.",
            )
        case SourceProblem.MANY_SOURCES:
            return t.text(
                locale,
                "Give only one source: either `task_id` + `audio_id`, or `link`, or `file`.",
            )
        case SourceProblem.ID_MISSING:
            return t.text(
                locale,
                "`{name}` is missing: a Vidgo song needs both `task_id` and `audio_id` "
                "(or paste its storage.vidgo.ai link as `link`).",
                name=name,
            )
        case SourceProblem.ID_EMPTY:
            return t.text(
                locale, "`{name}` is empty: paste the id from your Vidgo song.", name=name
            )
        case SourceProblem.ID_TOO_LONG:
            return t.text(
                locale,
                "`{name}` is {length} characters long; Vidgo ids are at most {limit}. "
                "Check that you pasted only the id.",
                name=name,
                length=values.get("length", ""),
                limit=values.get("limit", ""),
            )
        case SourceProblem.ID_CHARACTERS:
            return t.text(
                locale,
                "`{name}` may contain only letters, digits, `-`, `_` and `.`; "
                "remove spaces and other characters.",
                name=name,
            )
        case SourceProblem.LINK_EMPTY:
            return t.text(locale, "`link` is empty: paste an http(s) link to an audio file.")
        case SourceProblem.LINK_TOO_LONG:
            return t.text(
                locale,
                "That link is {length} characters long; the limit is {limit}. "
                "Use a shorter link to the file.",
                length=values.get("length", ""),
                limit=values.get("limit", ""),
            )
        case SourceProblem.LINK_INVISIBLE:
            return t.text(locale, "That link contains spaces or invisible characters; remove them.")
        case SourceProblem.NOT_HTTP:
            return t.text(
                locale,
                "That is not an http(s) link. Paste a link that starts with https://, "
                "or attach the audio file instead.",
            )
        case SourceProblem.STREAMING_PAGE:
            return t.text(
                locale,
                "That link is a {service} page, not an audio file. Stemcord does not take songs "
                "from streaming or video sites, and Vidgo cannot separate a web page. Instead, "
                "attach the audio file itself (the `file` option of `/separate`), or give a "
                "direct link to an audio file (one that ends in .mp3, .wav, .flac …), or a "
                "Vidgo song (`task_id` + `audio_id`, or its storage.vidgo.ai link).",
                service=values.get("service", ""),
            )
        case SourceProblem.NOT_AUDIO:
            return t.text(
                locale,
                "`{filename}` does not look like audio. Attach an audio file "
                "(mp3, wav, flac, ogg, m4a …).",
                filename=_shown_name(values.get("filename", "")),
            )
        case SourceProblem.FILE_TOO_LARGE:
            return t.text(
                locale,
                "`{filename}` is {size} MB; the limit here is {limit} MB. "
                "Attach a shorter or compressed file.",
                filename=_shown_name(values.get("filename", "")),
                size=_megabytes(t, locale, values.get("size"), 1),
                limit=_megabytes(t, locale, values.get("limit"), 0),
            )
        case SourceProblem.NO_AUDIO_IN_MESSAGE:
            return t.text(
                locale,
                "That message has no audio attachment or link. Use **Separate vocals** on a "
                "message with an audio file or an http(s) link to one, or run `/separate`.",
            )
        case SourceProblem.NOT_A_VIDGO_SONG:
            return t.text(
                locale,
                "Lyrics need a song generated on Vidgo, and that is not a Vidgo song link "
                "(`https://storage.vidgo.ai/audio/<task_id>/…_audio_<audio_id>.mp3`). "
                "Other audio has no lyrics to read; `/separate` still splits it.",
            )


# The media stage's sentences about a result's kept files (bot.media.keeper, bot.separation),
# said in the reader's language: the fixed ones as they are written into the result, the ones
# with a value (a host, a size, an HTTP status) through STAGE_TEMPLATES.
STAGE_SENTENCES = frozenset(
    {
        N_("Stemcord could not keep a copy of the stems: the download failed."),
        N_(
            "Stemcord could not keep a copy of the stems: the bot kept running into an error "
            "(its log has the details)."
        ),
        N_("Stemcord could not keep a copy of the stems: Vidgo's links have expired."),
        N_(
            "Stemcord could not keep a copy of the stems: Vidgo's storage sent the download "
            "somewhere this bot does not download from."
        ),
        N_(
            "Stemcord could not keep a copy of the stems: Vidgo gave a link this bot does not "
            "download (only https links are kept)."
        ),
        N_(
            "Stemcord could not keep a copy of the stems: the download was cut off before the "
            "end, every time it was tried."
        ),
        N_(
            "Stemcord could not keep a copy of the stems: Vidgo's storage took too long to send "
            "the files."
        ),
        N_("Stemcord could not keep a copy of the stems: Vidgo's storage no longer has the files."),
        N_("Stemcord could not keep a copy of the stems: Vidgo's storage could not be reached."),
        N_("Stemcord could not keep a copy of the stems: what Vidgo's storage sent was not audio."),
        N_("Stemcord could not keep a copy of the stems: the bot's disk is nearly full."),
        N_("The backing track could not be made: not every stem could be kept."),
        N_("The backing track could not be made: the bot's disk is nearly full."),
        N_("The backing track could not be made: the stems could not be mixed."),
        N_("The backing track could not be made: it could not be stored."),
    }
)


STAGE_TEMPLATES = (
    N_(
        "Stemcord could not keep a copy of the stems: Vidgo's files are on a host this bot does "
        "not download from ({host})."
    ),
    N_(
        "Stemcord could not keep a copy of the stems: a stem is larger than the {size} MB this "
        "bot keeps."
    ),
    N_(
        "Stemcord could not keep a copy of the stems: Vidgo's storage answered with an error "
        "(HTTP {status})."
    ),
)


def _template_pattern(template: str) -> re.Pattern[str]:
    """``template`` as a pattern that matches the sentence it makes, naming its values."""
    pieces = re.split(r"\{(\w+)\}", template)
    pattern = "".join(
        re.escape(piece) if i % 2 == 0 else f"(?P<{piece}>[^()\n]{{1,100}}?)"
        for i, piece in enumerate(pieces)
    )
    return re.compile(pattern)


_STAGE_PATTERNS = tuple((template, _template_pattern(template)) for template in STAGE_TEMPLATES)


def stage_error_text(error: str, t: Translations, locale: LocaleLike) -> str:
    """Why some of a result's files are not kept, in the reader's language when the catalogs
    know the sentence (escaped as written otherwise)."""
    if error in STAGE_SENTENCES:
        return t.text(locale, error)
    for template, pattern in _STAGE_PATTERNS:
        found = pattern.fullmatch(error)
        if found is not None:
            values = {
                name: escape_untrusted(value, 100) for name, value in found.groupdict().items()
            }
            return t.text(locale, template, **values)
    return escape_untrusted(error, 500)


class LinksButton(JobButton, template=job_template("links")):
    """Fresh links to a result's kept files (or the files themselves), answered privately."""

    ACTION = "links"
    LABEL = N_("Get links")
    EMOJI = "\N{LINK SYMBOL}"


BACKING_LABEL = N_("Backing track")
NOTHING_LEFT = N_(
    "This song's files are no longer available: Vidgo's links have expired and no copy is "
    "kept here any more. Run `/separate` again to separate it anew."
)


class SeparationView(KindView):
    """How a separation looks in Discord: its status words, its stems message, its failures.

    ``links`` makes signed links to kept files (``None``: no public address, or nothing is
    kept); ``fitter`` fits kept files to an upload limit for the private **Get links** answer.
    """

    kind = SEPARATION
    words = KindWords(
        title=N_("Stem separation"),
        working=N_("Separating… (started {started})"),
        done_below=N_("Done — the stems are in the message below"),
        done_in=N_("Done — the stems are in {channel}"),
        cached=N_("Already separated — here it is (no new Vidgo job)"),
        posted=N_("These stems were already posted here, so they are not posted again: {link}"),
        preparing=N_("Done at Vidgo — keeping the files and making the backing track…"),
    )

    def __init__(
        self,
        *,
        translations: Translations,
        links: MediaLinks | None = None,
        fitter: UploadFitter | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(translations=translations)
        self.links = links
        self.fitter = fitter
        self._clock = clock

    def status_details(self, job: JobRecord, locale: LocaleLike) -> list[tuple[str, str]]:
        """The stems and the quality asked for, on the status message."""
        t = self.t
        quality = quality_text(job, t, locale)
        stems = [(t.text(locale, "Stems"), stems_asked(job, t, locale))]
        return stems + ([(t.text(locale, "Quality"), quality)] if quality else [])

    def failure_sentence(self, job: JobRecord, locale: LocaleLike) -> str:
        """One sentence a member can act on, per failure kind."""
        t = self.t
        kind = job.error_kind
        if kind == ErrorKind.DUPLICATE:
            return t.text(
                locale,
                "This track was already separated on Vidgo (each song can be split only once), "
                "and Stemcord has no copy of that result. Try `stems` with the other choice, "
                "or use the earlier result.",
            )
        if kind == ErrorKind.VIDGO_FAILED:
            if not job.last_error:
                return t.text(locale, "Vidgo could not separate this song and gave no reason.")
            reason = escape_untrusted(job.last_error, 900)
            return t.text(locale, "Vidgo could not separate this song: {reason}", reason=reason)
        if kind == ErrorKind.EXPIRED or job.outcome is JobState.EXPIRED:
            return t.text(
                locale,
                "Vidgo did not finish in time, so Stemcord stopped waiting. "
                "Run `/separate` again later.",
            )
        if kind == ErrorKind.INVALID:
            reason = escape_untrusted(job.last_error or "", 500)
            return t.text(
                locale,
                "Vidgo refused this input: {reason} Check the link or file and try again.",
                reason=reason,
            )
        if kind == NO_STEMS:
            return t.text(
                locale, "Vidgo finished but returned no usable stem links. Try again later."
            )
        common = common_failure_sentence(job, t, locale)
        if common is not None:
            return common
        if job.last_error:
            return escape_untrusted(job.last_error, 900)
        return t.text(locale, "The separation failed.")

    def render(self, job: JobRecord, locale: LocaleLike) -> Outcome:
        """A separation's message: the stems, or why there are none."""
        return render_separation(
            job,
            self.failure_sentence(job, locale),
            t=self.t,
            locale=locale,
            links=self.links,
            now=self._clock(),
        )

    def buttons(self) -> list[type[JobButton]]:
        """The **Get links** button (restart-proof)."""
        return [LinksButton]

    def routes(self, services: PressServices) -> dict[str, ButtonHandler]:
        """**Get links** presses go to :meth:`press_links`."""
        return {LinksButton.ACTION: functools.partial(self.press_links, services)}

    async def press_links(
        self, services: PressServices, interaction: discord.Interaction, job_id: str
    ) -> None:
        """Answer privately with fresh links to the kept files (or the files, or why not).

        Anyone who can see the result may ask (it is public in the channel), within the
        server's channel and role rules.
        """
        t = self.t
        locale = member_locale(interaction)
        job = await services.engine.get_job(job_id)
        if job is None or not job_visible_to(job, interaction.guild_id, interaction.user.id):
            await interaction.response.send_message(
                t.text(locale, "I can't find that job any more."), ephemeral=True
            )
            return
        policy = await services.policies.get(job.guild_id)
        refusal = await press_refusal(interaction.client, interaction, policy, job)
        if refusal is not None:
            await interaction.response.send_message(refusal, ephemeral=True)
            return
        result = job.result or {}
        entry = kept_media(result)
        title = song_title(job, t, locale)
        if entry is not None and entry.files and self.links is not None and self.links.enabled:
            fresh = kept_links(entry, self.links, dict(result.get("stems") or {}), t, locale)
            if fresh:
                await interaction.response.send_message(
                    t.text(
                        locale,
                        "Fresh links to **{title}**, working for {hours}:",
                        title=title,
                        hours=hours_text(self.links.ttl_hours, t, locale),
                    ),
                    view=link_view(fresh),
                    ephemeral=True,
                )
                return
        if entry is not None and entry.files and self.fitter is not None:
            await self._send_files(interaction, job, entry, title)
            return
        if links_alive(result, self._clock()):
            stems = {n: u for n, u in dict(result.get("stems") or {}).items() if is_safe_link(u)}
            if stems:
                await interaction.response.send_message(
                    t.plural(
                        locale,
                        "Vidgo's links to **{title}** (they stop working about {count} day "
                        "after the separation):",
                        "Vidgo's links to **{title}** (they stop working about {count} days "
                        "after the separation):",
                        vidgo_lifetime_days(job),
                        title=title,
                    ),
                    view=link_view([(stem_label(n, t, locale), u) for n, u in stems.items()]),
                    ephemeral=True,
                )
                return
        await interaction.response.send_message(t.text(locale, NOTHING_LEFT), ephemeral=True)

    async def _send_files(
        self, interaction: discord.Interaction, job: JobRecord, entry: MediaEntry, title: str
    ) -> None:
        """The kept backing track and vocals as private attachments (no public address)."""
        assert self.fitter is not None  # noqa: S101 - checked by the caller
        t = self.t
        locale = member_locale(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        limit = interaction.filesize_limit
        remaining = limit
        files: list[discord.File] = []
        left_out: list[str] = []
        for upload in uploads_of(job, entry):
            fitted = await self.fitter.fitting(upload.key, upload.name, remaining)
            if fitted is None:
                left_out.append(upload.what)
                continue
            files.append(discord.File(fitted.path, filename=upload.filename))
            remaining -= fitted.size
        if not files:
            text = (
                t.text(locale, "The kept files of **{title}** cannot be sent here.", title=title)
                + " "
                + left_out_sentence(left_out, limit, t, locale)
                if left_out
                else t.text(locale, NOTHING_LEFT)
            )
            await interaction.followup.send(text, ephemeral=True)
            return
        text = t.text(
            locale,
            "The kept files of **{title}** (this bot has no public address for links):",
            title=title,
        )
        if left_out:
            text += " " + left_out_sentence(left_out, limit, t, locale)
        await interaction.followup.send(text, files=files, ephemeral=True)


def song_title(job: JobRecord, t: Translations, locale: LocaleLike) -> str:
    """The song's title as shown (escaped)."""
    title = escape_untrusted(str((job.track or {}).get("title") or ""), 200)
    return title or source_text(job, t, locale)


def hours_text(hours: float, t: Translations, locale: LocaleLike) -> str:
    """``24`` -> ``24 hours``, ``1`` -> ``1 hour``, ``0.5`` -> ``30 minutes``."""
    if hours < 1:
        return t.plural(locale, "{count} minute", "{count} minutes", round(hours * 60))
    return t.plural(locale, "{count} hour", "{count} hours", round(hours))


def vidgo_lifetime_days(job: JobRecord) -> int:
    """How many days Vidgo's links live, about (a day; three for uploads)."""
    return 1 if job.source_kind is SourceKind.IDS else 3


def link_view(links: list[tuple[str, str]]) -> discord.ui.View:
    """A view of link buttons, five a row, at most 25."""
    view = discord.ui.View(timeout=None)
    for index, (label, url) in enumerate(links[:BUTTONS_MAX]):
        view.add_item(
            discord.ui.Button(
                style=discord.ButtonStyle.link,
                label=label,
                url=url,
                row=index // BUTTONS_PER_ROW,
            )
        )
    return view


def kept_links(
    entry: MediaEntry,
    links: MediaLinks,
    stems: dict[str, str],
    t: Translations,
    locale: LocaleLike,
) -> list[tuple[str, str]]:
    """Signed links to every kept file: the stems in Vidgo's order, then a mixed backing."""
    found: list[tuple[str, str]] = []
    for stem, name in entry.files.items():
        if stem == "instrumental" and "instrumental" not in stems:
            continue  # the mix: listed last, under its own label
        url = links.url_for(entry.key, name)
        if url is not None and is_safe_link(url):
            found.append((stem_label(stem, t, locale), url))
    if entry.backing is not None and "instrumental" not in stems:
        url = links.url_for(entry.key, entry.backing)
        if url is not None and is_safe_link(url):
            found.append((t.text(locale, BACKING_LABEL), url))
    return found


def uploads_of(job: JobRecord, entry: MediaEntry) -> list[Upload]:
    """What a result attaches when it fits: the backing track first, then the vocals."""
    named = str((job.track or {}).get("title") or "")
    if not named and job.source_kind is not SourceKind.IDS:
        # An upload: the file's own name, without its extension.
        named = str(job.options.get("title") or "").rsplit(".", 1)[0]
    title = safe_file_name(named, f"stemcord-{job.id}")
    found: list[Upload] = []
    if entry.backing is not None:
        found.append(
            Upload(
                entry.key, entry.backing, f"{title} - backing track.mp3", N_("the backing track")
            )
        )
    vocals = entry.files.get("vocals")
    if vocals is not None:
        extension = vocals.rsplit(".", 1)[-1]
        found.append(Upload(entry.key, vocals, f"{title} - vocals.{extension}", N_("the vocals")))
    return found


def quality_text(job: JobRecord, t: Translations, locale: LocaleLike) -> str | None:
    """The separation quality in words, or ``None`` when there is nothing to say.

    Files and links: what was sent as ``model_name`` (a job from before the option is
    standard, Vidgo's default). A Vidgo song: only if a quality was asked, to say it was not
    used (those models have no such choice).
    """
    if job.source_kind is SourceKind.IDS:
        asked = job.options.get("quality")
        return t.text(locale, "Vidgo's own (`quality` is for files and links)") if asked else None
    if job.options.get("model_name") == "enhanced":
        return t.text(locale, "enhanced")
    return t.text(locale, "standard")


def render_separation(
    job: JobRecord,
    failure: str,
    *,
    t: Translations,
    locale: LocaleLike,
    links: MediaLinks | None = None,
    now: float | None = None,
) -> Outcome:
    """A separation's message: the stems, or why there are none, in ``locale``'s language."""
    mention = f"<@{job.requester_id}>"
    footer = job_footer(job, t, locale)
    if job.outcome is not JobState.SUCCEEDED:
        embed = discord.Embed(
            title=t.text(locale, "Separation failed")
            if job.outcome is JobState.FAILED
            else t.text(locale, "Separation timed out"),
            description=failure[:DESCRIPTION_MAX],
            colour=COLOR_FAILED,
        )
        embed.add_field(
            name=t.text(locale, "Source"), value=source_text(job, t, locale), inline=False
        )
        embed.set_footer(text=footer)
        content = t.text(locale, "{member} your separation did not work out.", member=mention)
        return Outcome(content, embed, [])

    track = job.track or {}
    result = job.result or {}
    stems: dict[str, str] = dict(result.get("stems") or {})
    entry = kept_media(result)
    alive = links_alive(result, time.time() if now is None else now)
    signing = links if links is not None and links.enabled else None
    kept = dict(entry.files) if entry is not None else {}
    title = escape_untrusted(str(track.get("title") or ""), TITLE_MAX) or source_text(job)
    title = title or t.text(locale, "Your stems")
    embed = discord.Embed(title=title[:TITLE_MAX], colour=COLOR_DONE)
    cover = track.get("cover_url")
    if isinstance(cover, str) and is_safe_link(cover):
        embed.set_thumbnail(url=cover)
    duration = format_duration(track.get("duration"))
    if duration:
        embed.add_field(name=t.text(locale, "Duration"), value=duration, inline=True)
    if job.source_kind is not SourceKind.IDS:  # the quality option only exists for uploads
        embed.add_field(
            name=t.text(locale, "Quality"), value=quality_text(job, t, locale), inline=True
        )
    buttons: list[tuple[str, str]] = []
    extra: list[str] = []
    missing = 0
    for name, vidgo_url in stems.items():
        url: str | None = None
        if entry is not None and signing is not None and name in kept:
            url = signing.url_for(entry.key, kept[name])
        if url is None and alive:
            url = vidgo_url
        if url is None:
            missing += 1
        elif is_safe_link(url) and len(buttons) < BUTTONS_MAX:
            buttons.append((stem_label(name, t, locale), url))
        else:
            # The name comes from Vidgo: escaped, so it cannot bring its own markdown.
            extra.append(f"[{escape_untrusted(stem_label(name, t, locale), 80)}](<{url}>)")
    mixed = entry is not None and entry.backing is not None and "instrumental" not in stems
    if entry is not None and entry.backing is not None and mixed and signing is not None:
        backing_url = signing.url_for(entry.key, entry.backing)
        if backing_url is not None and is_safe_link(backing_url) and len(buttons) < BUTTONS_MAX:
            buttons.append((t.text(locale, BACKING_LABEL), backing_url))
    uploads = uploads_of(job, entry) if entry is not None else []
    if not kept and not alive:
        embed.description = t.text(locale, NOTHING_LEFT)
        embed.set_footer(text=footer)
        gone = t.text(locale, "{member} this song's stems are no longer available.", member=mention)
        return Outcome(gone, embed, [])
    lines = [t.plural(locale, "{count} stem ready.", "{count} stems ready.", len(stems))]
    if mixed:
        lines.append(
            t.text(locale, "The backing track is every stem but the lead vocal, mixed for singing.")
        )
    lines.append(links_sentence(job, entry, signing, alive, missing, t, locale))
    if entry is not None and entry.error:
        lines.append(f"\N{WARNING SIGN} {stage_error_text(entry.error, t, locale)}")
    embed.description = "\n".join(lines)[:DESCRIPTION_MAX]
    # Stems beyond the buttons go into fields, whole links only, each field within its limit.
    for value in pack_lines(extra, FIELD_VALUE_MAX):
        if len(embed.fields) >= FIELDS_MAX - 2:
            break
        embed.add_field(name=t.text(locale, "More stems"), value=value, inline=False)
    embed.set_footer(text=footer)
    items: list[Item] = [LinksButton.labelled(job.id, t, locale)] if kept else []
    ready = t.text(locale, "{member} your stems are ready.", member=mention)
    return Outcome(ready, embed, buttons, items=items, uploads=uploads)


def links_sentence(  # noqa: PLR0917 - the links' state, and the language to say it in
    job: JobRecord,
    entry: MediaEntry | None,
    signing: MediaLinks | None,
    alive: bool,
    missing: int,
    t: Translations,
    locale: LocaleLike,
) -> str:
    """What the buttons link to and how long they work."""
    kept = entry is not None and bool(entry.files)
    days = vidgo_lifetime_days(job)
    if kept and signing is not None:
        sentence = t.text(
            locale,
            "The buttons link to copies kept by this bot; each link works for {hours}, "
            "and **Get links** gives fresh ones.",
            hours=hours_text(signing.ttl_hours, t, locale),
        )
        if signing.retention_days:
            sentence += " " + t.text(
                locale,
                "The copies are kept for {days} days.",
                days=t.number(locale, signing.retention_days),
            )
        return sentence
    if kept and alive:
        return t.plural(
            locale,
            "The buttons are Vidgo's links, which stop working about {count} day after the "
            "separation; **Get links** gets the kept files after that.",
            "The buttons are Vidgo's links, which stop working about {count} days after the "
            "separation; **Get links** gets the kept files after that.",
            days,
        )
    if kept and missing:
        return t.text(
            locale,
            "Vidgo's links have expired (some stems could not be kept): "
            "**Get links** gets the kept files.",
        )
    if kept:
        return t.text(locale, "Vidgo's links have expired: **Get links** gets the kept files.")
    return t.plural(
        locale,
        "The links may expire within {count} day, download them soon.",
        "The links may expire within {count} days, download them soon.",
        days,
    )


class SeparateCog(commands.Cog):
    """The ``/separate`` command."""

    def __init__(
        self,
        desk: JobDesk,
        policies: Policies,
        *,
        translations: Translations,
        max_upload_mb: float,
    ) -> None:
        self.desk = desk
        self.policies = policies
        self.t = translations
        self.max_upload_bytes = int(max_upload_mb * 1_048_576)

    @app_commands.command(name="separate", description="Split a song into karaoke stems")
    @app_commands.guild_only()
    @app_commands.describe(
        task_id="Vidgo song: the generation task id (use with audio_id)",
        audio_id="Vidgo song: the track's audio id (use with task_id)",
        link="A storage.vidgo.ai song link, or any http(s) link to an audio file",
        file="An audio file to separate",
        stems="Which stems you want (default: vocals + instrumental)",
        key="Also send the backing track in another key: semitones, -6 (lower) to +6 (higher)",
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
        key: app_commands.Range[int, -6, 6] | None = None,
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
            said = source_problem_sentence(exc, self.t, member_locale(interaction))
            await interaction.response.send_message(said, ephemeral=True)
            return
        choice = StemChoice(stems.value) if stems is not None else StemChoice.VOCALS
        # 0 is the song's own key: nothing more to make.
        asked = Quality(quality.value) if quality is not None else None
        await start_separation(
            self.desk, self.policies, interaction, source, choice, key=key or None, quality=asked
        )


async def start_separation(
    desk: JobDesk,
    policies: Policies,
    interaction: discord.Interaction,
    source: Source,
    choice: StemChoice,
    *,
    key: int | None = None,
    quality: Quality | None = None,
) -> None:
    """Apply the server's policy, then start a validated separation with a status message.

    Shared by ``/separate`` and the "Separate vocals" message menu, so both obey the same
    channel, role and per-member rules. ``key`` (semitones) also asks for the backing track
    in that key once the separation is posted; the upload limit Discord states for this
    place goes with it, so the track is made to fit where it will be posted. ``quality``: what
    the member asked (``None``: not asked, standard for files and links).
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
        key=key,
        attachment_limit=int(interaction.filesize_limit) if key is not None else None,
    )
    await desk.start_with_status(interaction, request, gate.policy)
