"""Karaoke-ready results end to end: the real app and discord.py against both fakes.

The fake Vidgo serves real MP3 stems; the bot keeps them, mixes the backing track, attaches it
within the upload limit the fake Discord states, and serves its own signed links.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from storage.jobstate import JobState
from storage.records import JobRecord
from tests.e2e.conftest import World
from tests.fakes.audio import (
    INSTRUMENTAL_PARTS,
    STEM_SOUNDS,
    decode,
    duration_s,
    magnitude_db,
    peak,
    stem_mp3,
)
from tests.fakes.discord_models import FakeAttachment, FakeInteraction, FakeMessage, iter_components

UPLOAD = {"filename": "Harbour Song.mp3", "content_type": "audio/mpeg", "data": b"ID3 song"}


def link_buttons(message: FakeMessage) -> dict[str, str]:
    return {
        str(c["label"]): str(c["url"]) for c in iter_components(message.components) if c.get("url")
    }


def custom_ids(message: FakeMessage) -> list[str]:
    return [str(c["custom_id"]) for c in iter_components(message.components) if c.get("custom_id")]


def embed_text(message: FakeMessage) -> str:
    """The embeds' description and field values as a member reads them (escapes removed)."""
    parts: list[str] = []
    for embed in message.embeds:
        parts.append(str(embed.get("description") or ""))
        parts += [f"{f['name']}: {f['value']}" for f in embed.get("fields") or []]
    return re.sub(r"\\(.)", r"\1", "\n".join(parts))


async def delivered_result(world: World) -> FakeMessage:
    job = await world.job_for_task_wait()
    await world.vidgo.finish(job.vidgo_task_id or "")
    await world.wait_job(job.id, JobState.DELIVERED, timeout=30)
    [result] = world.outcome_messages(job.id)
    return result


def level_db(path: Path, stem: str) -> float:
    samples, rate = decode(path)
    return magnitude_db(samples, rate, STEM_SOUNDS[stem].frequency)


async def press(world: World, message: FakeMessage, custom_id: str) -> FakeInteraction:
    interaction = await world.discord.invoke_component(
        guild_id=world.guild.id,
        channel_id=message.channel_id,
        user_id=world.member.id,
        message_id=message.id,
        custom_id=custom_id,
    )
    await world.discord.wait_until(lambda: interaction.acked)
    return interaction


async def test_an_uploaded_song_ends_with_its_backing_track_attached_and_playable(
    world: World, tmp_path: Path
) -> None:
    world.vidgo.stem_seconds = 6.0  # a backing track of ~140 KB at the stems' 192 kbps
    limit = 100 * 1024
    world.guild.upload_limit = limit  # what this server's interactions state
    await world.start()
    await world.separate(attachments=[UPLOAD])
    result = await delivered_result(world)

    names = [a.filename for a in result.attachments]
    assert names == ["Harbour Song - backing track.mp3"]
    # What Discord received stays within the limit it stated, all files together.
    assert sum(len(a.data) for a in result.attachments) <= limit
    [backing] = result.attachments
    assert len(backing.data) == backing.size
    path = tmp_path / "backing.mp3"
    path.write_bytes(backing.data)
    vocals = tmp_path / "vocals.mp3"
    vocals.write_bytes(stem_mp3("vocals", 6.0))
    # Every accompaniment stem is in it; the lead vocal is at least 40 dB down; nothing clips.
    for stem in ("bass", "drums", "piano", "guitar", "other"):
        if STEM_SOUNDS[stem].frequency:
            assert level_db(path, stem) > -30, stem
    assert level_db(path, "vocals") <= level_db(vocals, "vocals") - 40
    samples, _ = decode(path)
    assert peak(samples) < 1.0
    assert duration_s(path) == pytest.approx(6.0, abs=0.1)
    # The vocals did not fit next to it: the message says so instead of failing.
    assert "The vocals could not be attached: too large for the 0.1 MB upload limit" in (
        embed_text(result)
    )
    assert world.discord.rule_violations == []


async def test_both_files_are_attached_where_they_fit(world: World, tmp_path: Path) -> None:
    await world.start()
    await world.separate_song(0)
    result = await delivered_result(world)
    # A separate-vocals result: Vidgo's own instrumental is the backing track, as it is.
    by_name = {a.filename: a for a in result.attachments}
    assert set(by_name) == {"Harbour Lights - backing track.mp3", "Harbour Lights - vocals.mp3"}
    assert by_name["Harbour Lights - backing track.mp3"].data == stem_mp3("instrumental")
    assert by_name["Harbour Lights - vocals.mp3"].data == stem_mp3("vocals")
    assert "play them right here" in embed_text(result)
    path = tmp_path / "instrumental.mp3"
    path.write_bytes(by_name["Harbour Lights - backing track.mp3"].data)
    for stem in INSTRUMENTAL_PARTS:
        if STEM_SOUNDS[stem].frequency:
            assert level_db(path, stem) > -40, stem


async def test_kept_files_are_served_by_signed_links_in_ranges_and_refused_when_forged(
    world: World,
) -> None:
    app = await world.start()
    await world.separate_song(0)
    result = await delivered_result(world)
    url = link_buttons(result)["Vocals"]
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "audio/mpeg"
            assert await response.read() == stem_mp3("vocals")
        async with http.get(url, headers={"Range": "bytes=100-199"}) as response:
            assert response.status == 206
            assert await response.read() == stem_mp3("vocals")[100:200]
        forged = url[:-1] + ("A" if url[-1] != "A" else "B")
        async with http.get(forged) as response:
            assert response.status == 403
        assert app.media is not None
        key = url.split("/media/")[1].split("/")[0]
        expired = app.media.signer.url_for(
            f"{world.settings().PUBLIC_URL}",
            key,
            "vocals.mp3",
            expires_at=datetime.now(UTC) - timedelta(seconds=5),
        )
        async with http.get(expired) as response:
            assert response.status == 410
            assert "link expired" in await response.text()


async def test_get_links_answers_privately_with_fresh_working_links(world: World) -> None:
    await world.start()
    await world.separate_song(0)
    result = await delivered_result(world)
    [links_id] = [cid for cid in custom_ids(result) if cid.startswith("stemcord:links:")]
    interaction = await press(world, result, links_id)
    assert interaction.ephemeral
    [answer] = [r for r in interaction.responses if r.type == 4]
    assert answer.data is not None and "Fresh links" in str(answer.data.get("content"))
    urls = {
        str(c["label"]): str(c["url"])
        for c in iter_components(answer.data.get("components") or [])
        if c.get("url")
    }
    assert set(urls) == {"Vocals", "Instrumental"}
    async with aiohttp.ClientSession() as http, http.get(urls["Instrumental"]) as response:
        assert response.status == 200
        assert await response.read() == stem_mp3("instrumental")


async def test_without_a_public_address_get_links_sends_the_kept_files(world: World) -> None:
    world.callbacks = False  # no PUBLIC_URL: no links of the bot's own
    await world.start()
    await world.separate_song(0)
    result = await delivered_result(world)
    # The buttons are Vidgo's links while they live; the files came attached.
    assert all(u.startswith(world.vidgo.base_url) for u in link_buttons(result).values())
    assert len(result.attachments) == 2
    [links_id] = [cid for cid in custom_ids(result) if cid.startswith("stemcord:links:")]
    interaction = await press(world, result, links_id)
    await world.discord.wait_until(lambda: bool(interaction.followups))
    [followup] = interaction.followups
    assert followup.ephemeral
    attached: list[FakeAttachment] = followup.attachments
    assert {a.filename for a in attached} == {
        "Harbour Lights - backing track.mp3",
        "Harbour Lights - vocals.mp3",
    }
    assert sum(len(a.data) for a in attached) <= world.guild.upload_limit
    assert world.discord.rule_violations == []


@pytest.mark.parametrize(
    ("fault", "sentence"),
    [
        ("off_list_host", "on a host this bot does not download from (localhost)"),
        ("redirect_off_list", "sent the download somewhere this bot does not download from"),
        ("oversized", "a stem is larger than the 1 MB this bot keeps"),
        ("truncated", "the download was cut off before the end"),
    ],
)
async def test_a_failed_download_is_said_plainly_and_vidgos_links_are_still_delivered(
    world: World, fault: str, sentence: str
) -> None:
    world.overrides["MEDIA_MAX_STEM_MB"] = 1
    if fault == "off_list_host":
        world.vidgo.stem_host = "localhost"
    else:
        world.vidgo.media_fault_next(99, fault, stem="vocals")
    await world.start()
    await world.separate_song(0)
    result = await delivered_result(world)
    assert sentence in embed_text(result)
    buttons = link_buttons(result)
    assert set(buttons) == {"Vocals", "Instrumental"}
    # The stem that could not be kept links to Vidgo (the instrumental, when kept, to us).
    assert "/files/" in buttons["Vocals"] and "/media/" not in buttons["Vocals"]
    assert all(a.filename.endswith("backing track.mp3") for a in result.attachments)
    assert world.discord.rule_violations == []


async def test_a_repeated_request_reposts_the_kept_files_without_downloading_again(
    world: World,
) -> None:
    await world.start()
    await world.separate(link="https://cdn.example.org/songs/demo.mp3")
    first = await delivered_result(world)
    [task_id] = list(world.vidgo.tasks)
    assert world.vidgo.stem_downloads(task_id) == 6
    await world.separate(link="https://cdn.example.org/songs/demo.mp3")
    assert world.app is not None
    store = world.app.store
    jobs: list[JobRecord] = []

    async def both_recorded() -> None:
        while len(jobs) < 2:
            jobs[:] = await store.list_jobs(limit=2)
            await asyncio.sleep(0.02)

    await asyncio.wait_for(both_recorded(), 10)
    newest = jobs[0]
    assert newest.state is not JobState.ACCEPTED  # answered from the cache, not submitted
    await world.wait_job(newest.id, JobState.DELIVERED, timeout=30)
    [again] = world.outcome_messages(newest.id)
    assert again.id != first.id
    assert [a.data for a in again.attachments] == [a.data for a in first.attachments]
    assert world.vidgo.stem_downloads(task_id) == 6  # each stem was downloaded once
    assert len(world.vidgo.tasks) == 1  # and Vidgo was not asked again
