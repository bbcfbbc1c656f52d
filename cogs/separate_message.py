"""The "Separate vocals" message menu (Apps → Separate vocals on any message).

It takes the message's first audio attachment, or else a link in its text, and runs the same
flow as ``/separate`` with the default stems (:func:`cogs.separate.start_separation`). Among
several links, the first that looks like audio (a Vidgo song link or an audio file name) wins,
else the first that is not a streaming or video page, else the first link. A message with
neither gets a private explanation, and so does one whose only links are streaming or video
pages (:func:`bot.sources.streaming_service`): nothing is fetched and Vidgo is not asked.

Discord includes the target message's text and attachments in the interaction, so this needs
no message intent.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

import discord
from discord import app_commands
from discord.ext import commands

from bot.policy import Policies
from bot.sources import (
    AUDIO_EXTENSIONS,
    Source,
    SourceError,
    SourceProblem,
    StemChoice,
    parse_vidgo_song_link,
    source_from_attachment,
    source_from_link,
    streaming_service,
)
from cogs.desk import JobDesk
from cogs.i18n import Translations, member_locale
from cogs.separate import AttachmentInfo, source_problem_sentence, start_separation

MENU_NAME = "Separate vocals"
_LINK = re.compile(r"https?://[^\s<>\"'`]+", re.IGNORECASE)
# Punctuation that ends a sentence rather than a URL.
_TRAILING = ".,;:!?)]}*_~|"


def is_audio_attachment(info: AttachmentInfo) -> bool:
    """Content type ``audio/*`` or an audio file extension."""
    suffix = PurePosixPath(info.filename).suffix.lower()
    return (info.content_type or "").lower().startswith("audio/") or suffix in AUDIO_EXTENSIONS


def links_in(text: str) -> list[str]:
    """http(s) links in message text, in order (``<…>`` wrapping and trailing punctuation off)."""
    found = []
    for match in _LINK.finditer(text or ""):
        link = match.group(0).rstrip(_TRAILING)
        if link:
            found.append(link)
    return found


def _looks_like_audio(link: str) -> bool:
    if parse_vidgo_song_link(link) is not None:
        return True
    suffix = PurePosixPath(unquote(urlsplit(link).path)).suffix.lower()
    return suffix in AUDIO_EXTENSIONS


def source_from_message(
    content: str, attachments: Sequence[AttachmentInfo], *, max_bytes: int
) -> Source:
    """The message's audio: its first audio attachment, else its best link.

    Raises :class:`SourceError` (its problem says what to fix) when there is none or it is
    unusable.
    """
    for info in attachments:
        if is_audio_attachment(info):
            return source_from_attachment(
                info.url, info.filename, info.content_type, info.size, max_bytes
            )
    links = links_in(content)
    if not links:
        raise SourceError(SourceProblem.NO_AUDIO_IN_MESSAGE)
    chosen = next(
        (link for link in links if _looks_like_audio(link)),
        next((link for link in links if streaming_service(link) is None), links[0]),
    )
    return source_from_link(chosen)


class SeparateMessageCog(commands.Cog):
    """Adds the message menu to the command tree while loaded."""

    def __init__(
        self,
        desk: JobDesk,
        policies: Policies,
        tree: app_commands.CommandTree[Any],
        *,
        translations: Translations,
        max_upload_mb: float,
    ) -> None:
        self.desk = desk
        self.policies = policies
        self.t = translations
        self.tree = tree
        self.max_upload_bytes = int(max_upload_mb * 1_048_576)
        # Servers only, like /separate (jobs, queues and moderators belong to a server).
        self.menu = app_commands.ContextMenu(
            name=MENU_NAME,
            callback=self.separate_message,
            allowed_contexts=app_commands.AppCommandContext(guild=True),
        )
        self.menu.guild_only = True

    async def cog_load(self) -> None:
        """Register the menu (context menus cannot be declared inside a cog)."""
        self.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        """Take the menu out of the tree again."""
        self.tree.remove_command(self.menu.name, type=self.menu.type)

    async def separate_message(
        self, interaction: discord.Interaction, message: discord.Message
    ) -> None:
        """Find the audio in ``message`` and start a separation, or explain privately."""
        attachments = [
            AttachmentInfo(a.url, a.filename, a.content_type, a.size) for a in message.attachments
        ]
        try:
            source = source_from_message(
                message.content,
                attachments,
                max_bytes=self.max_upload_bytes,
            )
        except SourceError as exc:
            said = source_problem_sentence(exc, self.t, member_locale(interaction))
            await interaction.response.send_message(said, ephemeral=True)
            return
        await start_separation(self.desk, self.policies, interaction, source, StemChoice.VOCALS)
