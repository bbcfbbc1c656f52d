"""Karaoke lyrics end to end: the real app, fake Discord and fake Vidgo over real sockets."""

from __future__ import annotations

import asyncio
import io

import aiohttp
import pytest
from lrcparser import LrcParser
from PIL import Image

from bot.waveform import HEIGHT, WIDTH
from storage.jobstate import JobState
from storage.records import JobRecord
from tests.e2e.commands import (
    answered,
    lyrics_button,
    lyrics_replies,
    lyrics_tasks,
    press,
    separated,
)
from tests.e2e.conftest import World
from tests.fakes.vidgo import (
    GENERATION_AUDIO_IDS,
    GENERATION_TASK_ID,
    GENERATION_TITLES,
    INSTRUMENTAL_AUDIO_ID,
    INSTRUMENTAL_TASK_ID,
)

SUNG = ["Lights", "on", "the", "water", "Shine", "on", "me"]
SUNG += ["Harbour", "lights,", "(ooh)", "guide", "me", "home"]


async def download(url: str) -> bytes:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        return await response.read()


def sung_words(lrc: str) -> list[str]:
    parsed = LrcParser.parse(lrc)
    words: list[str] = []
    for line in parsed["lrc_lines"]:
        text = "".join(segment.text for segment in line.text).strip()
        if text in ("", "(Verse)", "(Chorus)"):
            continue
        words.extend(text.split())
    return words


async def test_pressing_lyrics_replies_with_the_lrc_and_the_waveform(world: World) -> None:
    await world.start()
    separation, result = await separated(world)
    assert lyrics_button(result) == f"stemcord:lyrics:{separation.id}"
    interaction = await press(world, result)
    text = await answered(world, interaction)
    assert "Working on the lyrics" in text
    await world.discord.wait_until(lambda: len(lyrics_tasks(world)) == 1)
    [task_id] = lyrics_tasks(world)
    await world.vidgo.finish(task_id)
    await world.discord.wait_until(lambda: len(lyrics_replies(world, result)) == 1)
    [reply] = lyrics_replies(world, result)
    assert f"<@{world.member.id}>" in reply.content
    assert [a.filename for a in reply.attachments] == ["Harbour-Lights.lrc", "waveform.png"]
    lrc_attachment, png_attachment = reply.attachments
    # The bytes as anyone would download them from the CDN.
    lrc = (await download(lrc_attachment.url)).decode("utf-8")
    assert lrc.encode() == lrc_attachment.data
    parsed = LrcParser.parse(lrc)
    assert parsed["attributes"]["ti"] == GENERATION_TITLES[0]
    assert parsed["attributes"]["length"] == "03:04"
    times = [line.start_time.to_str() for line in parsed["lrc_lines"]]
    assert times == sorted(times)
    assert sung_words(lrc) == SUNG
    image = Image.open(io.BytesIO(await download(png_attachment.url)))
    assert image.format == "PNG" and image.size == (WIDTH, HEIGHT)
    [embed] = reply.embeds
    assert embed["image"]["url"] == "attachment://waveform.png"
    assert "Lights on the water" in embed["description"]
    assert "2 could not be aligned" in str(embed["fields"])
    # Only the presser is pinged; the reply does not ping the result's author.
    assert reply.pinged.get("users") == [world.member.id]
    assert world.discord.rule_violations == []


async def test_the_button_works_after_a_restart(world: World) -> None:
    await world.start()
    separation, result = await separated(world)
    await world.stop()
    await world.start()
    interaction = await press(world, result)
    await answered(world, interaction)
    await world.discord.wait_until(lambda: len(lyrics_tasks(world)) == 1)
    await world.vidgo.finish(lyrics_tasks(world)[0])
    await world.discord.wait_until(lambda: len(lyrics_replies(world, result)) == 1)
    [reply] = lyrics_replies(world, result)
    assert reply.attachments[0].filename.endswith(".lrc")
    assert separation.result_message_id == result.id


async def test_a_lyrics_job_in_flight_survives_a_restart(world: World) -> None:
    world.overrides["POLL_INTERVAL_SECONDS"] = 1.0
    await world.start()
    _, result = await separated(world)
    await answered(world, await press(world, result))
    await world.discord.wait_until(lambda: len(lyrics_tasks(world)) == 1)
    await world.stop()
    await world.vidgo.finish(lyrics_tasks(world)[0])  # the callback finds nobody
    await world.start()
    await world.discord.wait_until(lambda: len(lyrics_replies(world, result)) == 1, timeout=15)
    await asyncio.sleep(0.3)
    assert len(lyrics_replies(world, result)) == 1


async def test_duplicate_presses_cost_one_vidgo_call_and_post_once(world: World) -> None:
    await world.start()
    _, result = await separated(world)
    other = world.discord.add_user(name="duet")
    first, second = await press(world, result), await press(world, result, other.id)
    texts = [await answered(world, first), await answered(world, second)]
    assert any("already on their way" in t for t in texts)
    await world.discord.wait_until(lambda: len(lyrics_tasks(world)) == 1)
    await world.vidgo.finish(lyrics_tasks(world)[0])
    await world.discord.wait_until(lambda: len(lyrics_replies(world, result)) == 1)
    await asyncio.sleep(0.3)
    assert len(lyrics_replies(world, result)) == 1
    # A later press gets a private link to the lyrics already posted: no Vidgo call, and
    # nothing is posted publicly again.
    [reply] = lyrics_replies(world, result)
    assert world.app is not None
    [lyrics_job] = [
        j for j in await world.app.store.list_jobs() if j.kind == "lyrics" and j.leader_id is None
    ]
    await world.wait_job(lyrics_job.id, JobState.DELIVERED)
    submits = world.vidgo.submit_count
    later = await press(world, result, other.id)
    text = await answered(world, later)
    assert "already posted" in text and f"/{reply.id}" in text
    await asyncio.sleep(0.3)
    assert len(lyrics_replies(world, result)) == 1
    assert world.vidgo.submit_count == submits
    assert len(lyrics_tasks(world)) == 1
    assert world.discord.rule_violations == []


async def test_an_instrumental_says_no_vocals_and_attaches_nothing(world: World) -> None:
    await world.start()
    _, result = await separated(world, INSTRUMENTAL_TASK_ID, INSTRUMENTAL_AUDIO_ID)
    await answered(world, await press(world, result))
    await world.discord.wait_until(lambda: len(lyrics_tasks(world)) == 1)
    await world.vidgo.finish(lyrics_tasks(world)[0])
    await world.discord.wait_until(lambda: len(lyrics_replies(world, result)) == 1)
    [reply] = lyrics_replies(world, result)
    assert reply.attachments == []
    assert "no vocals" in str(reply.embeds)
    assert world.discord.rule_violations == []


@pytest.mark.parametrize("shape", ["submit", "detail_object", "detail_string_alt"])
async def test_every_result_shape_reaches_the_channel(world: World, shape: str) -> None:
    world.vidgo.lyrics_shape = shape
    world.overrides["LYRICS_ENHANCED_LRC"] = True
    await world.start()
    _, result = await separated(world)
    await answered(world, await press(world, result))
    await world.discord.wait_until(lambda: len(lyrics_tasks(world)) == 1)
    if shape != "submit":
        await world.vidgo.finish(lyrics_tasks(world)[0])
    await world.discord.wait_until(lambda: len(lyrics_replies(world, result)) == 1)
    [reply] = lyrics_replies(world, result)
    lrc = reply.attachments[0].data.decode()
    assert "<00:12.40>Lights <00:12.90>on" in lrc  # enhanced, as configured


async def test_results_of_uploads_have_no_lyrics_button(world: World) -> None:
    await world.start()
    await world.separate(link="https://cdn.example.org/songs/demo.mp3")
    job = await world.job_for_task_wait()
    await world.vidgo.finish(job.vidgo_task_id or "")
    await world.wait_job(job.id, JobState.DELIVERED)
    [message] = world.outcome_messages(job.id)
    assert lyrics_button(message) is None
    assert message.link_urls


async def test_the_lyrics_command_by_song_link(world: World) -> None:
    await world.start()
    audio_url = str(world.vidgo.generations[GENERATION_TASK_ID][1]["audio_url"])
    link = "https://storage.vidgo.ai" + audio_url
    interaction = await world.discord.invoke_slash(
        guild_id=world.guild.id,
        channel_id=world.guild.channel_id,
        user_id=world.member.id,
        name="lyrics",
        options=[{"name": "link", "value": link}],
    )
    assert f"Where: <#{world.guild.channel_id}>." in await answered(world, interaction)
    await world.discord.wait_until(lambda: len(lyrics_tasks(world)) == 1)
    [task_id] = lyrics_tasks(world)
    assert world.vidgo.tasks[task_id].input["audio_id"] == GENERATION_AUDIO_IDS[1]
    await world.vidgo.finish(task_id)
    assert world.app is not None
    store = world.app.store

    async def delivered() -> JobRecord:
        while True:
            for job in await store.list_jobs(limit=5):
                if job.kind == "lyrics" and job.state is JobState.DELIVERED:
                    return job
            await asyncio.sleep(0.02)

    job = await asyncio.wait_for(delivered(), 10)
    [message] = world.outcome_messages(job.id)
    assert message.reference_id is None
    assert message.attachments[0].filename == "Harbour-Lights-Reprise.lrc"
    assert message.embeds[0]["title"] == "Lyrics — Harbour Lights \\(Reprise\\)"


async def test_the_lyrics_command_refuses_plain_links_privately(world: World) -> None:
    await world.start()
    interaction = await world.discord.invoke_slash(
        guild_id=world.guild.id,
        channel_id=world.guild.channel_id,
        user_id=world.member.id,
        name="lyrics",
        options=[{"name": "link", "value": "https://cdn.example.org/songs/demo.mp3"}],
    )
    await world.discord.wait_until(lambda: bool(interaction.responses))
    assert interaction.ephemeral
    assert "not a Vidgo song link" in str(interaction.responses[0])
    assert world.vidgo.tasks == {}
