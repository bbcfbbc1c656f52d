"""What every kind of job shares in Discord: escaping, the status embed, the outcome message
shape, job lists.

Text that comes from members or from Vidgo (titles, file names, error messages) is rendered
only through :func:`escape_untrusted`, which neutralises markdown and mentions, removes
invisible characters and truncates to the limit of the place it goes. Every builder here stays
within Discord's limits (checked by the tests and enforced by the fake Discord). What differs
by kind (wording, the outcome message itself) lives in each kind's view (:mod:`cogs.views`).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import discord
from babel.lists import format_list

from bot.jobs import ErrorKind
from bot.progress import Progress
from cogs.i18n import N_, LocaleLike, Translations
from storage.jobstate import JobState
from storage.records import Admission, JobRecord, SourceKind

TITLE_MAX = 256
DESCRIPTION_MAX = 4096
FIELD_VALUE_MAX = 1024
FIELD_NAME_MAX = 256
FIELDS_MAX = 25
FOOTER_MAX = 2048
EMBED_TOTAL_MAX = 6000
BUTTON_LABEL_MAX = 80
LINK_URL_MAX = 512
BUTTONS_PER_ROW = 5
BUTTONS_MAX = 25
CONTENT_MAX = 2000

COLOR_WORKING = discord.Colour.blurple()
COLOR_DONE = discord.Colour.green()
COLOR_FAILED = discord.Colour.red()

_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0]"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_MENTION = re.compile(r"<(@[!&]?|#)(\d+)>")
_MASS = re.compile(r"@(everyone|here)", re.IGNORECASE)
_MARKDOWN = re.compile(r"([\\*_~`|>\[\]()#:-])")

STEM_LABELS = {
    "vocals": N_("Vocals"),
    "instrumental": N_("Instrumental"),
    "backing_vocals": N_("Backing vocals"),
    "bass": N_("Bass"),
    "drums": N_("Drums"),
    "piano": N_("Piano"),
    "guitar": N_("Guitar"),
    "other": N_("Other"),
}


def escape_untrusted(text: str | None, limit: int) -> str:
    """Make untrusted text safe to show: no markdown, no pings, no invisible characters.

    The result is at most ``limit`` characters; a cut is marked with an ellipsis.
    """
    if not text:
        return ""
    cleaned = _CONTROL.sub(" ", _INVISIBLE.sub("", text))
    cleaned = _MARKDOWN.sub(r"\\\1", cleaned)
    # Break mentions: a full-width commercial at looks the same and never pings.
    cleaned = _MASS.sub(lambda m: "\uff20" + m.group(1), cleaned)
    cleaned = _MENTION.sub(lambda m: "<\uff20" + m.group(1)[1:] + m.group(2) + ">", cleaned)
    cleaned = cleaned.replace("@", "\uff20")
    if len(cleaned) > limit:
        cleaned = cleaned[: max(0, limit - 1)].rstrip("\\") + "…"
    return cleaned


def is_safe_link(url: str | None) -> bool:
    """An http(s) URL short enough for a link button."""
    if not url or len(url) > LINK_URL_MAX:
        return False
    parts = urlsplit(url)
    return parts.scheme in {"http", "https"} and bool(parts.netloc)


def pack_lines(lines: list[str], limit: int) -> list[str]:
    """Join lines into as few blocks of at most ``limit`` characters as keep each line whole.

    A line longer than ``limit`` on its own is left out (a cut link would not work).
    """
    blocks: list[str] = []
    current = ""
    for line in lines:
        if len(line) > limit:
            continue
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            blocks.append(current)
            candidate = line
        current = candidate
    if current:
        blocks.append(current)
    return blocks


def stem_label(name: str, t: Translations, locale: LocaleLike) -> str:
    """``backing_vocals`` -> ``Backing vocals`` (in the language of ``locale``).

    A stem Vidgo names that has no label here is shown by its own name, not translated.
    """
    known = STEM_LABELS.get(name)
    label = t.text(locale, known) if known else name.replace("_", " ").capitalize()
    return label[:BUTTON_LABEL_MAX]


def stems_asked(job: JobRecord, t: Translations, locale: LocaleLike) -> str:
    """What the member asked for, in words."""
    if job.model == "separate-vocals":
        return t.text(locale, "vocals + instrumental")
    if job.model == "stem-split":
        return t.text(locale, "every stem")
    return t.text(locale, "six stems (bass, drums, piano, guitar, vocals, other)")


def _english(t: Translations | None) -> Translations:
    """The translations given, or English alone (for callers that speak English)."""
    return t if t is not None else Translations.source_only()


def source_text(job: JobRecord, t: Translations | None = None, locale: LocaleLike = None) -> str:
    """The job's source for display (escaped)."""
    title = (job.track or {}).get("title")
    if title:
        return escape_untrusted(str(title), 200)
    if job.source_kind is SourceKind.IDS:
        said = _english(t).text(locale, "Vidgo song {audio_id}", audio_id=job.source_audio_id)
        return escape_untrusted(said, 200)
    name = job.options.get("title") or job.source_url
    if not name:
        return _english(t).text(locale, "audio")
    return escape_untrusted(str(name), 200)


def format_duration(seconds: object) -> str | None:
    """``184.3`` -> ``3:04``."""
    if not isinstance(seconds, int | float) or seconds <= 0:
        return None
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


@dataclass(frozen=True, slots=True)
class KindWords:
    """How the status of one kind of job is worded (each kind's view has one).

    Each is a whole English sentence marked with ``N_`` where the view defines it (its
    placeholders as noted), and said in the reader's language where it is shown (:meth:`say`).
    """

    title: str  # the status message's title: "Stem separation"
    working: str  # "Separating… (started {started})"
    done_below: str  # "Done — the stems are in the message below"
    done_in: str  # "Done — the stems are in {channel}"
    cached: str  # "Already separated — here it is (no new Vidgo job)"
    posted: str  # "These stems were already posted here, so they are not posted again: {link}"
    # Between the success and the post, while the kind's post-success step runs (if any).
    preparing: str | None = None

    def say(self, t: Translations, locale: LocaleLike, words: str, **values: object) -> str:
        """One of these words in the language of ``locale``."""
        return t.text(locale, words, **values)


def state_text(
    job: JobRecord,
    words: KindWords,
    admission: Admission | None = None,
    *,
    t: Translations,
    locale: LocaleLike,
) -> str:
    """One line on where the job is."""
    started = f"<t:{int(job.created_at)}:R>"
    if job.state is JobState.ACCEPTED and job.unconfirmed_submit_at is not None:
        return t.text(
            locale,
            "Sent to Vidgo, but its answer got lost — waiting for Vidgo to report back "
            "(nothing is sent twice)",
        )
    if job.state is JobState.ACCEPTED:
        return t.text(locale, "Queued — sending it to Vidgo")
    if job.state is JobState.SUBMITTED and job.is_follower:
        return t.text(
            locale,
            "Joined an identical request that is already running — you'll get the result too",
        )
    if job.state is JobState.SUBMITTED:
        return t.text(locale, "Queued at Vidgo (started {started})", started=started)
    if job.state is JobState.RUNNING:
        return words.say(t, locale, words.working, started=started)
    if job.state is JobState.CANCELLED:
        return t.text(locale, "Cancelled")
    outcome = job.outcome or job.state
    if outcome is JobState.SUCCEEDED:
        if (
            words.preparing
            and job.state is JobState.SUCCEEDED
            and job.prepared_at is None
            and admission is not Admission.CACHED
        ):
            return words.say(t, locale, words.preparing)
        if admission is Admission.CACHED:
            return words.say(t, locale, words.cached)
        if job.result_channel_id is not None and job.result_channel_id != job.channel_id:
            return words.say(t, locale, words.done_in, channel=f"<#{job.result_channel_id}>")
        return words.say(t, locale, words.done_below)
    if outcome is JobState.EXPIRED:
        return t.text(locale, "Timed out")
    return t.text(locale, "Failed — see the message below")


def rough_duration(seconds: float, t: Translations, locale: LocaleLike) -> str:
    """``42`` -> ``under a minute``, ``150`` -> ``about 3 min``, ``4000`` -> ``about 1 h 7 min``."""
    if seconds < 60:
        return t.text(locale, "under a minute")
    minutes = round(seconds / 60)
    if minutes < 60:
        return t.text(locale, "about {minutes} min", minutes=minutes)
    hours, rest = divmod(minutes, 60)
    if rest:
        return t.text(locale, "about {hours} h {minutes} min", hours=hours, minutes=rest)
    return t.text(locale, "about {hours} h", hours=hours)


def queue_text(progress: Progress, t: Translations, locale: LocaleLike) -> str | None:
    """``No. 2 of 5 unfinished jobs in this server``."""
    if progress.position is None or progress.unfinished is None:
        return None
    return t.plural(
        locale,
        "No. {position} of {count} unfinished job in this server",
        "No. {position} of {count} unfinished jobs in this server",
        progress.unfinished,
        position=t.number(locale, progress.position),
    )


def eta_text(progress: Progress, t: Translations, locale: LocaleLike) -> str:
    """How long the job should still take, from the model's recent jobs."""
    remaining = progress.remaining_seconds
    if remaining is None:
        return t.text(locale, "no estimate yet")
    if remaining <= 0:
        return t.text(locale, "any moment now (taking longer than usual)")
    return t.text(
        locale,
        "{remaining} (typical: {typical})",
        remaining=rough_duration(remaining, t, locale),
        typical=rough_duration(progress.typical_seconds or 0, t, locale),
    )


def job_footer(job: JobRecord, t: Translations | None = None, locale: LocaleLike = None) -> str:
    """``Job <id>``: every status and outcome message carries it (the delivery finds its
    earlier posts by the id in it)."""
    return _english(t).text(locale, "Job {id}", id=job.id)


def status_embed(
    job: JobRecord,
    words: KindWords,
    admission: Admission | None = None,
    progress: Progress | None = None,
    *,
    details: list[tuple[str, str]] | None = None,
    t: Translations,
    locale: LocaleLike,
) -> discord.Embed:
    """The public status message of a job, edited as it moves, in the language of ``locale``.

    ``details`` are the kind's own fields (a separation's stems asked for); ``progress``
    (unfinished jobs only) adds the job's place in the server's queue and an ETA.
    """
    outcome = job.outcome
    colour = (
        COLOR_DONE
        if outcome is JobState.SUCCEEDED
        else COLOR_FAILED
        if outcome in (JobState.FAILED, JobState.EXPIRED)
        else COLOR_WORKING
    )
    embed = discord.Embed(title=words.say(t, locale, words.title)[:TITLE_MAX], colour=colour)
    embed.add_field(name=t.text(locale, "Source"), value=source_text(job, t, locale), inline=False)
    for name, value in details or ():
        embed.add_field(name=name, value=value, inline=True)
    embed.add_field(
        name=t.text(locale, "State"),
        value=state_text(job, words, admission, t=t, locale=locale),
        inline=False,
    )
    if progress is not None and job.state.is_active:
        queue = queue_text(progress, t, locale)
        if queue is not None:
            embed.add_field(name=t.text(locale, "Queue"), value=queue, inline=True)
        embed.add_field(
            name=t.text(locale, "ETA"), value=eta_text(progress, t, locale), inline=True
        )
    embed.set_footer(text=job_footer(job, t, locale))
    return embed


def common_failure_sentence(job: JobRecord, t: Translations, locale: LocaleLike) -> str | None:
    """The sentence for failures worded the same for every kind of job (``None``: none)."""
    kind = job.error_kind
    if kind == ErrorKind.AUTH:
        return t.text(
            locale,
            "The bot is misconfigured (Vidgo rejected its API key) — tell the server owner.",
        )
    if kind == ErrorKind.NOT_FOUND:
        return t.text(
            locale,
            "Vidgo does not know that song. Check the `task_id` and `audio_id` "
            "(or paste the song's storage.vidgo.ai link).",
        )
    if kind == ErrorKind.SUBMIT_GAVE_UP:
        return t.text(locale, "Vidgo could not be reached for a long time. Try again later.")
    if kind == ErrorKind.UNCONFIRMED:
        return t.text(
            locale,
            "Vidgo may have this task, but it could not be confirmed: the answer to Stemcord's "
            "request was lost and Vidgo never reported back. Stemcord did not send it again, "
            "so you were not charged twice. Try again later; if Vidgo says it was already "
            "done, a moderator can look the task up on Vidgo.",
        )
    if kind == ErrorKind.MALFORMED:
        return t.text(
            locale,
            "Vidgo's answer could not be read, so there is no result to show. Try again later.",
        )
    if kind == ErrorKind.INTERNAL:
        return t.text(
            locale,
            "Stemcord kept running into an error on this job and stopped. "
            "The server owner can find the details in the bot's log.",
        )
    if kind == ErrorKind.NOT_ENABLED:
        return t.text(locale, "This bot no longer runs this kind of job.")
    return None


@dataclass(frozen=True, slots=True)
class Upload:
    """A kept file offered as an attachment of an outcome message, if it fits.

    The delivery fits it to the upload limit of the place it posts in (re-encoding it at a
    lower bitrate when that keeps it listenable) and leaves it out, saying so, when it cannot.
    ``key``/``name`` name it in the media store; ``filename`` is what members see; ``what``
    names it in a sentence ("the backing track": an English message id marked with ``N_``,
    said in the reader's language by :func:`files_listed`).
    """

    key: str
    name: str
    filename: str
    what: str


@dataclass(frozen=True, slots=True)
class Attached:
    """An upload fitted for one destination: the file to send and the name to send it by."""

    path: Path
    filename: str
    size: int


@dataclass(frozen=True)
class Outcome:
    """A rendered outcome message.

    ``buttons`` are link buttons; ``items`` are interactive components (restart-proof
    ``DynamicItem`` buttons) placed after them. ``files`` are attachments as (name, bytes):
    a fresh ``discord.File`` is made for every send, so a retried delivery uploads them again.
    ``uploads`` are kept files to attach where they fit (in order of importance; see
    :class:`Upload`). ``reply_to`` makes the message a reply (to a result message, say)
    without pinging anyone.
    """

    content: str
    embed: discord.Embed
    buttons: list[tuple[str, str]]  # (label, url)
    items: list[discord.ui.Item[Any]] = field(default_factory=list)
    files: list[tuple[str, bytes]] = field(default_factory=list)
    reply_to: int | None = None
    uploads: list[Upload] = field(default_factory=list)

    def view(self) -> discord.ui.View | None:
        """Link buttons then the other items, at most 5 a row and 25 in all."""
        if not self.buttons and not self.items:
            return None
        view = discord.ui.View(timeout=None)
        links = self.buttons[: BUTTONS_MAX - len(self.items[:BUTTONS_MAX])]
        for index, (label, url) in enumerate(links):
            view.add_item(
                discord.ui.Button(
                    style=discord.ButtonStyle.link,
                    label=label,
                    url=url,
                    row=index // BUTTONS_PER_ROW,
                )
            )
        # Interactive items get rows of their own below the links while rows are left, then
        # fill the last rows' gaps; explicit rows keep the layout the same on every send.
        used = [0] * (BUTTONS_MAX // BUTTONS_PER_ROW)
        for index in range(len(links)):
            used[index // BUTTONS_PER_ROW] += 1
        first_free = -(-len(links) // BUTTONS_PER_ROW)
        for item in self.items[:BUTTONS_MAX]:
            candidates = [*range(first_free, len(used)), *range(first_free)]
            row = next(r for r in candidates if used[r] < BUTTONS_PER_ROW)
            used[row] += 1
            item.row = row
            view.add_item(item)
        return view

    def discord_files(self, attached: list[Attached] | None = None) -> list[discord.File]:
        """New file objects for one send (``attached``: the uploads fitted for it)."""
        files = [discord.File(io.BytesIO(data), filename=name) for name, data in self.files]
        files += [discord.File(item.path, filename=item.filename) for item in attached or ()]
        return files


def megabytes(size: int) -> str:
    """``10485760`` -> ``10 MB``, ``26214400`` -> ``25 MB`` (as Discord words its limits)."""
    value = size / 1_048_576
    return f"{value:.0f} MB" if value >= 10 or value == int(value) else f"{value:.1f} MB"


def files_listed(whats: list[str], t: Translations, locale: LocaleLike) -> str:
    """``the backing track and the vocals``, in the language of ``locale``, capitalised (it
    starts the sentences it is used in)."""
    said = [t.text(locale, what) for what in whats]
    listed = format_list(said, locale=t.language(locale)) if said else ""
    return listed[:1].upper() + listed[1:]


def left_out_sentence(whats: list[str], limit: int, t: Translations, locale: LocaleLike) -> str:
    """Why some kept files are not attached: the upload limit of where the message went."""
    return t.plural(
        locale,
        "{files} could not be attached: too large for the {limit} upload limit here, even at "
        "a lower bitrate. Use the links.",
        "{files} could not be attached: too large for the {limit} upload limit here, even at "
        "a lower bitrate. Use the links.",
        len(whats),
        files=files_listed(whats, t, locale),
        limit=megabytes(limit),
    )


def safe_file_name(title: str, fallback: str) -> str:
    """A title reduced to characters safe in a file name (``fallback`` when nothing is left)."""
    safe = re.sub(r"[^A-Za-z0-9 ._()-]+", "", title).strip(" .")[:60]
    return safe or fallback
