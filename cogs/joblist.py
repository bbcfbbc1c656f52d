"""The private job lists and details of ``/jobs``, in the language of the member who asked.

``/jobs mine``, ``/jobs queue`` (one page of a list) and ``/jobs status`` (one job) are private
answers, so they are worded in ``interaction.locale``. Times are Discord timestamps
(``<t:…:R>``), which every client writes in its own language and time zone; counts go
through :meth:`cogs.i18n.Translations.plural`; text from members or Vidgo (titles, file names)
only ever fills a placeholder, escaped by :func:`cogs.render.escape_untrusted`.
"""

from __future__ import annotations

from collections.abc import Mapping

import discord

from bot.keys import KEY
from bot.lyrics import LYRICS
from bot.midi import MIDI
from bot.separation import SEPARATION
from cogs.i18n import N_, LocaleLike, Translations
from cogs.mentions import user_mention
from cogs.render import (
    COLOR_WORKING,
    DESCRIPTION_MAX,
    FIELD_VALUE_MAX,
    TITLE_MAX,
    escape_untrusted,
)
from storage.jobstate import JobState
from storage.records import JobRecord, SourceKind

JOBS_PER_PAGE = 10
SOURCE_MAX = 200  # a source in a detail field
LINE_SOURCE_MAX = 80  # a source on one line of a list

# A job's state in a few words, on a line of /jobs mine and /jobs queue.
STATE_WORDS: Mapping[JobState, str] = {
    # TRANSLATORS: a job's state in a few words (a job is feminine in Spanish and Portuguese).
    JobState.ACCEPTED: N_("queued"),
    JobState.SUBMITTED: N_("queued at Vidgo"),
    JobState.RUNNING: N_("working"),
    JobState.SUCCEEDED: N_("done, posting"),
    JobState.FAILED: N_("failed, posting"),
    JobState.EXPIRED: N_("timed out, posting"),
    JobState.CANCELLED: N_("cancelled"),
    JobState.DELIVERED: N_("done"),
    JobState.UNDELIVERABLE: N_("could not be posted"),
}
FAILED = N_("failed")
TIMED_OUT = N_("timed out")
JOINED = N_("joined an identical job")

# What each kind of job is, as the title of /jobs status.
KIND_TITLES: Mapping[str, str] = {
    SEPARATION: N_("Stem separation"),
    LYRICS: N_("Timed lyrics"),
    MIDI: N_("MIDI"),
    KEY: N_("Key change"),
}
SOME_JOB = N_("Job")


def state_word(t: Translations, locale: LocaleLike, job: JobRecord) -> str:
    """A job's state in a few words (a delivered failure says so)."""
    if job.state is JobState.DELIVERED and job.outcome is JobState.FAILED:
        return t.text(locale, FAILED)
    if job.state is JobState.DELIVERED and job.outcome is JobState.EXPIRED:
        return t.text(locale, TIMED_OUT)
    if job.state is JobState.SUBMITTED and job.is_follower:
        return t.text(locale, JOINED)
    return t.text(locale, STATE_WORDS[job.state])


def source_text(t: Translations, locale: LocaleLike, job: JobRecord, limit: int) -> str:
    """The job's source for display (escaped, at most ``limit`` characters)."""
    title = (job.track or {}).get("title")
    if title:
        return escape_untrusted(str(title), limit)
    if job.source_kind is SourceKind.IDS:
        named = t.text(locale, "Vidgo song {audio_id}", audio_id=job.source_audio_id or "?")
        return escape_untrusted(named, limit)
    name = job.options.get("title") or job.source_url
    if name:
        return escape_untrusted(str(name), limit)
    return t.text(locale, "audio")


def result_link(job: JobRecord) -> str | None:
    """A link to the job's result message, once it was posted in a server channel."""
    if job.result_message_id is None or job.guild_id is None:
        return None
    channel_id = job.result_channel_id or job.channel_id
    return f"https://discord.com/channels/{job.guild_id}/{channel_id}/{job.result_message_id}"


def job_line(
    t: Translations, locale: LocaleLike, job: JobRecord, *, with_requester: bool = False
) -> str:
    """One line of a job list: id, source, state, age (and requester, link when done)."""
    parts = [
        f"`{job.id}`",
        source_text(t, locale, job, LINE_SOURCE_MAX),
        state_word(t, locale, job),
        f"<t:{int(job.created_at)}:R>",
    ]
    if with_requester:
        parts.append(t.text(locale, "by {member}", member=user_mention(job.requester_id)))
    link = result_link(job)
    if link is not None and job.outcome is JobState.SUCCEEDED:
        if job.kind == SEPARATION:
            # TRANSLATORS: a link to the posted result of a separation, on a line of a job list.
            parts.append(t.text(locale, "[stems]({link})", link=link))
        else:
            parts.append(t.text(locale, "[result]({link})", link=link))
    return " · ".join(parts)


def job_list_embed(
    t: Translations,
    locale: LocaleLike,
    title: str,
    jobs: list[JobRecord],
    *,
    page: int,
    pages: int,
    with_requester: bool,
    empty: str,
) -> discord.Embed:
    """One page of a job list; ``page`` counts from 0. ``title`` and ``empty`` are worded."""
    start = page * JOBS_PER_PAGE
    lines = [
        job_line(t, locale, j, with_requester=with_requester)
        for j in jobs[start : start + JOBS_PER_PAGE]
    ]
    description = "\n".join(lines) if lines else empty
    embed = discord.Embed(
        title=title[:TITLE_MAX], description=description[:DESCRIPTION_MAX], colour=COLOR_WORKING
    )
    embed.set_footer(
        text=t.text(
            locale,
            "Page {page}/{pages}",
            page=t.number(locale, page + 1),
            pages=t.number(locale, max(pages, 1)),
        )
    )
    return embed


def job_detail_embed(t: Translations, locale: LocaleLike, job: JobRecord) -> discord.Embed:
    """``/jobs status``: what the job is, where it is, who asked, when, and the result link."""
    title = t.text(locale, KIND_TITLES.get(job.kind, SOME_JOB))
    embed = discord.Embed(title=title[:TITLE_MAX], colour=COLOR_WORKING)
    source = source_text(t, locale, job, SOURCE_MAX)
    embed.add_field(name=t.text(locale, "Source"), value=source, inline=False)
    embed.add_field(name=t.text(locale, "State"), value=state_word(t, locale, job), inline=True)
    embed.add_field(
        name=t.text(locale, "Requested by"), value=f"<@{job.requester_id}>", inline=True
    )
    embed.add_field(name=t.text(locale, "Asked"), value=f"<t:{int(job.created_at)}:R>", inline=True)
    link = result_link(job)
    if link is not None:
        # TRANSLATORS: a link to the job's posted result message.
        value = t.text(locale, "[message]({link})", link=link)
        embed.add_field(name=t.text(locale, "Result"), value=value, inline=True)
    if job.state is JobState.UNDELIVERABLE and job.last_error:
        # Discord's own words for why the post failed, as the operator's log has them.
        embed.add_field(
            name=t.text(locale, "Why it was not posted"),
            value=escape_untrusted(job.last_error, FIELD_VALUE_MAX),
            inline=False,
        )
    embed.set_footer(text=t.text(locale, "Job {job_id}", job_id=job.id))
    return embed
