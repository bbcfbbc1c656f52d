"""Attachments of a result: fitted to the upload limit of where the message goes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from unittest import mock

import discord
import pytest

from bot.media.links import UploadFitter
from bot.media.store import StoredFile
from bot.progress import ProgressTracker
from cogs.delivery import DiscordDelivery
from cogs.i18n import Translations
from cogs.views import KindViews
from storage.base import JobStore
from storage.records import Admission, JobRecord
from tests.helpers import autospec, interaction, job

T = Translations.load()

KEY = "task-1"
MEDIA = {
    "key": KEY,
    "files": {"vocals": "vocals.mp3", "instrumental": "instrumental.mp3"},
    "backing": "instrumental.mp3",
    "error": None,
}


def kept() -> JobRecord:
    result = {
        "stems": {"vocals": "https://s/v.mp3", "instrumental": "https://s/i.mp3"},
        "vidgo_task_id": KEY,
        "media": MEDIA,
    }
    return job(result=result)


class Files:
    """A fitter that answers with files of the sizes a test chose (``None``: does not fit)."""

    def __init__(self, tmp_path: Path, sizes: dict[str, int | None]) -> None:
        self.tmp_path = tmp_path
        self.sizes = sizes
        self.asked: list[tuple[str, int]] = []
        self.fitter = autospec(UploadFitter)
        self.fitter.fitting.side_effect = self.fitting

    async def fitting(self, key: str, name: str, limit: int) -> StoredFile | None:
        self.asked.append((name, limit))
        size = self.sizes.get(name)
        if size is None or size > limit:
            return None
        path = self.tmp_path / name
        path.write_bytes(b"x" * size)
        return StoredFile(key, name, size, datetime.now(UTC), path)


def client_with(guild_limit: int | None) -> tuple[mock.Mock, mock.Mock]:
    client = mock.Mock(spec_set=discord.Client)
    client.user = mock.Mock(spec_set=discord.ClientUser, id=1)
    channel = mock.Mock(spec=discord.PartialMessageable, id=7)
    channel.send = mock.AsyncMock(return_value=mock.Mock(id=70))
    client.get_partial_messageable.return_value = channel
    if guild_limit is None:
        client.get_guild.return_value = None
    else:
        client.get_guild.return_value = mock.Mock(
            spec_set=discord.Guild, filesize_limit=guild_limit
        )
    return client, channel


def delivery(client: mock.Mock, views: KindViews, files: Files) -> DiscordDelivery:
    store = mock.Mock(spec_set=JobStore)
    return DiscordDelivery(
        client, views, ProgressTracker(store), translations=T, fitter=files.fitter
    )


def sent(channel: mock.Mock) -> tuple[list[discord.File], discord.Embed]:
    kwargs = channel.send.await_args.kwargs
    return kwargs.get("files", []), kwargs["embed"]


def note(embed: discord.Embed) -> str:
    [field] = [f for f in embed.fields if f.name == "Files"]
    return str(field.value)


async def test_both_files_are_attached_when_they_fit_together(
    views: KindViews, tmp_path: Path
) -> None:
    client, channel = client_with(guild_limit=1000)
    files = Files(tmp_path, {"instrumental.mp3": 600, "vocals.mp3": 400})
    await delivery(client, views, files).deliver(kept())
    attached, embed = sent(channel)
    assert [f.filename for f in attached] == ["Song - backing track.mp3", "Song - vocals.mp3"]
    # Each file is fitted to what the ones before it left of the limit.
    assert files.asked == [("instrumental.mp3", 1000), ("vocals.mp3", 400)]
    assert "The backing track and the vocals: play them right here." in note(embed)


async def test_what_does_not_fit_is_left_out_and_the_message_says_so(
    views: KindViews, tmp_path: Path
) -> None:
    client, channel = client_with(guild_limit=1000)
    files = Files(tmp_path, {"instrumental.mp3": 700, "vocals.mp3": 400})
    await delivery(client, views, files).deliver(kept())
    attached, embed = sent(channel)
    assert [f.filename for f in attached] == ["Song - backing track.mp3"]
    assert "The vocals could not be attached" in note(embed)


async def test_the_limit_is_the_one_the_requests_interaction_states(
    views: KindViews, tmp_path: Path
) -> None:
    client, channel = client_with(guild_limit=10_000_000)
    files = Files(tmp_path, {"instrumental.mp3": 600, "vocals.mp3": 400})
    shipping = delivery(client, views, files)
    inter = interaction(guild_id=9)
    inter.filesize_limit = 800
    shipping.remember_interaction("abcdefghjk", inter, Admission.NEW)
    assert shipping.upload_limit(kept(), dm=False) == 800
    await shipping.deliver(kept())
    attached, _ = sent(channel)
    assert [f.filename for f in attached] == ["Song - backing track.mp3"]


@pytest.mark.parametrize(
    ("guild_limit", "expected"), [(26_214_400, 26_214_400), (None, 10_485_760)]
)
def test_without_an_interaction_the_guilds_limit_or_discords_default_applies(
    views: KindViews, tmp_path: Path, guild_limit: int | None, expected: int
) -> None:
    client, _ = client_with(guild_limit)
    shipping = delivery(client, views, Files(tmp_path, {}))
    assert shipping.upload_limit(kept(), dm=False) == expected
    assert shipping.upload_limit(kept(), dm=True) == discord.utils.DEFAULT_FILE_SIZE_LIMIT_BYTES


async def test_a_size_discord_refuses_is_posted_without_attachments(
    views: KindViews, tmp_path: Path
) -> None:
    client, channel = client_with(guild_limit=1000)
    too_large = discord.HTTPException(mock.Mock(status=413, reason="Payload Too Large"), "big")
    channel.send.side_effect = [too_large, mock.Mock(id=70)]
    files = Files(tmp_path, {"instrumental.mp3": 600, "vocals.mp3": 400})
    assert await delivery(client, views, files).deliver(kept()) == 70
    assert channel.send.await_count == 2
    attached, embed = sent(channel)
    assert attached == []
    assert "could not be attached here (Discord refused the size)" in note(embed)
    # Same nonce: still one message.
    nonces = {c.kwargs["nonce"] for c in channel.send.await_args_list}
    assert nonces == {"stemcord-abcdefghjk"}


async def test_a_result_without_kept_files_has_no_files_line(
    views: KindViews, tmp_path: Path
) -> None:
    client, channel = client_with(guild_limit=1000)
    files = Files(tmp_path, {})
    await delivery(client, views, files).deliver(job())
    attached, embed = sent(channel)
    assert attached == [] and all(f.name != "Files" for f in embed.fields)
    assert files.asked == []
