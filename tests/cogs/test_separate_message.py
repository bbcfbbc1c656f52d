"""The "Separate vocals" message menu: finding the audio in a message, and its callback."""

from __future__ import annotations

from typing import Any
from unittest import mock

import discord
import pytest

from bot.jobs import Submitted
from bot.sources import SourceError, StreamingPage
from cogs.desk import JobDesk
from cogs.i18n import Translations
from cogs.separate import AttachmentInfo, source_problem_sentence
from cogs.separate_message import SeparateMessageCog, links_in, source_from_message
from storage.records import Admission, SourceKind
from tests.helpers import interaction, job, private_answer

T = Translations.load()

SONG = (
    "https://storage.vidgo.ai/audio/8FDN1I7M7Q68DDG8/1764061200_k3v9qz1a_tmp7f2c_audio_"
    "62e4542a-73be-44e1-b397-7716ee7505c6.mp3"
)
MP3 = AttachmentInfo("https://cdn.discordapp.com/a/1/song.mp3", "song.mp3", "audio/mpeg", 10)
PNG = AttachmentInfo("https://cdn.discordapp.com/a/1/cat.png", "cat.png", "image/png", 10)


def test_the_first_audio_attachment_wins_over_links() -> None:
    source = source_from_message(f"also {SONG}", [PNG, MP3], max_bytes=100)
    assert source.kind is SourceKind.ATTACHMENT and source.filename == "song.mp3"


def test_an_audio_file_by_extension_counts() -> None:
    wav = AttachmentInfo("https://cdn.discordapp.com/a/1/take.WAV", "take.WAV", None, 10)
    assert source_from_message("", [wav], max_bytes=100).filename == "take.WAV"


def test_an_oversized_audio_attachment_explains_the_limit() -> None:
    with pytest.raises(SourceError) as refused:
        source_from_message("", [MP3], max_bytes=5)
    assert "the limit here is" in source_problem_sentence(refused.value, T, "en-US")


def test_a_vidgo_song_link_counts_as_ids() -> None:
    source = source_from_message(f"listen: <{SONG}>!", [PNG], max_bytes=100)
    assert source.kind is SourceKind.IDS and source.task_id == "8FDN1I7M7Q68DDG8"


def test_an_audio_looking_link_is_preferred_to_a_page() -> None:
    content = "page https://example.org/about, file https://cdn.example.org/a%20b.flac."
    source = source_from_message(content, [], max_bytes=100)
    assert source.url == "https://cdn.example.org/a%20b.flac"


def test_otherwise_the_first_link_is_used() -> None:
    source = source_from_message("https://a.example/x and https://b.example/y", [], max_bytes=1)
    assert source.url == "https://a.example/x"


@pytest.mark.parametrize("content", ["", "no links", "ftp://x.example/a.mp3", "www.example.org"])
def test_no_audio_is_explained(content: str) -> None:
    with pytest.raises(SourceError) as refused:
        source_from_message(content, [PNG], max_bytes=100)
    said = source_problem_sentence(refused.value, T, "en-US")
    assert "no audio attachment or link" in said


def test_links_lose_wrapping_and_trailing_punctuation() -> None:
    assert links_in("(see https://x.example/a.mp3), or <https://y.example/b>.") == [
        "https://x.example/a.mp3",
        "https://y.example/b",
    ]


@pytest.fixture
def tree() -> Any:
    return mock.Mock(spec_set=discord.app_commands.CommandTree)


@pytest.fixture
def cog(desk: JobDesk, policies: Any, engine: Any, tree: Any) -> SeparateMessageCog:
    engine.submit.return_value = Submitted(job(), Admission.NEW)
    engine.attach_status_message.return_value = job()
    return SeparateMessageCog(desk, policies, tree, translations=T, max_upload_mb=10)


def make_message(content: str, attachments: list[discord.Attachment]) -> mock.Mock:
    message = mock.Mock(spec_set=discord.Message)
    message.content = content
    message.attachments = attachments
    return message


def attachment(filename: str, content_type: str | None) -> mock.Mock:
    found = mock.Mock(spec_set=discord.Attachment)
    found.url = f"https://cdn.discordapp.com/a/1/{filename}"
    found.filename = filename
    found.content_type = content_type
    found.size = 1000
    return found


async def test_menu_starts_the_shared_separation_flow(cog: SeparateMessageCog, engine: Any) -> None:
    inter = interaction()
    await cog.separate_message(inter, make_message("", [attachment("a.ogg", "audio/ogg")]))
    # The same path as /separate: a public status message, the default stems.
    inter.response.defer.assert_awaited_once_with(thinking=True)
    [call] = engine.submit.await_args_list
    request = call.args[0]
    assert request.source_kind is SourceKind.ATTACHMENT
    assert request.options.get("title") == "a.ogg" or request.source_url.endswith("a.ogg")
    assert request.model == "upload-and-separate-vocals"


async def test_menu_without_audio_answers_privately(cog: SeparateMessageCog, engine: Any) -> None:
    inter = interaction()
    await cog.separate_message(inter, make_message("hello", [attachment("x.txt", "text/plain")]))
    engine.submit.assert_not_awaited()
    assert "no audio" in private_answer(inter)


async def test_menu_is_added_to_and_removed_from_the_tree(
    cog: SeparateMessageCog, tree: Any
) -> None:
    await cog.cog_load()
    tree.add_command.assert_called_once_with(cog.menu)
    assert cog.menu.name == "Separate vocals"
    payload = cog.menu.to_dict(
        discord.app_commands.CommandTree(discord.Client(intents=discord.Intents.none()))
    )
    assert payload["type"] == 3 and payload["dm_permission"] is False
    assert payload["contexts"] == [0]  # servers only
    await cog.cog_unload()
    tree.remove_command.assert_called_once_with(
        "Separate vocals", type=discord.AppCommandType.message
    )


def test_a_link_that_is_not_a_streaming_page_is_preferred_to_one_that_is() -> None:
    text = "video https://youtu.be/abc and the stems page https://example.org/take/42"
    assert source_from_message(text, [], max_bytes=100).url == "https://example.org/take/42"


def test_a_message_whose_only_links_are_streaming_pages_is_refused() -> None:
    text = "https://open.spotify.com/track/1 or https://www.youtube.com/watch?v=2"
    with pytest.raises(StreamingPage) as refused:
        source_from_message(text, [], max_bytes=100)
    assert refused.value.service == "Spotify"
