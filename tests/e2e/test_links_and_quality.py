"""Streaming pages and the quality option, end to end: the real app and discord.py client
against the fake Discord and the fake Vidgo (whose request log shows what was sent)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from storage.jobstate import JobState
from tests.e2e.commands import answer, slash, text
from tests.e2e.conftest import World
from tests.fakes.vidgo import GENERATION_AUDIO_IDS, GENERATION_TASK_ID

STREAMING_LINKS = (
    "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
    "https://youtu.be/dQw4w9WgXcQ",
    "https://music.youtube.com/watch?v=dQw4w9WgXcQ",
    "https://open.spotify.com/track/4uLU6hMCjMI75M1A2tKUQC",
    "https://soundcloud.com/artist/song",
    "https://artist.bandcamp.com/track/song",
)


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every host name this process resolves while the test runs (aiohttp resolves through
    ``socket.getaddrinfo``, in a thread): a fetch of a page would show up here."""
    seen: list[str] = []
    real = socket.getaddrinfo

    def recording(host: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(str(host))
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", recording)
    yield seen


def no_streaming_host(seen: list[str]) -> bool:
    return not [
        host
        for host in seen
        if any(
            name in host for name in ("youtube", "youtu.be", "spotify", "soundcloud", "bandcamp")
        )
    ]


async def test_a_streaming_page_is_answered_at_once_without_vidgo_or_any_fetch(
    world: World, lookups: list[str]
) -> None:
    await world.start()
    for link in STREAMING_LINKS:
        reply = await answer(world, await slash(world, "separate", link=link))
        assert reply.ephemeral, link
        assert "page, not an audio file" in reply.content, link
        assert "attach the audio file" in reply.content and "direct link" in reply.content
    assert world.vidgo.submit_count == 0
    assert [path for _, path in world.vidgo.requests if path != "/api/user/balance"] == []
    assert world.app is not None and await world.app.store.list_jobs() == []
    assert no_streaming_host(lookups), lookups
    assert world.discord.rule_violations == []


async def test_the_message_menu_refuses_a_message_whose_only_link_is_a_streaming_page(
    world: World, lookups: list[str]
) -> None:
    await world.start()
    posted = world.discord.add_message(
        world.guild.channel_id,
        author_id=world.member.id,
        content="listen to this https://youtu.be/dQw4w9WgXcQ !",
    )
    interaction = await world.discord.invoke_message_context(
        guild_id=world.guild.id,
        channel_id=world.guild.channel_id,
        user_id=world.member.id,
        name="Separate vocals",
        message_id=posted.id,
    )
    reply = await answer(world, interaction)
    assert reply.ephemeral and "YouTube page, not an audio file" in reply.content
    assert world.vidgo.submit_count == 0
    assert no_streaming_host(lookups), lookups


async def test_lyrics_answers_a_streaming_page_in_its_own_words(world: World) -> None:
    await world.start()
    reply = await answer(
        world, await slash(world, "lyrics", link="https://open.spotify.com/track/4uLU6hMC")
    )
    assert reply.ephemeral
    assert "Spotify page, not a Vidgo song" in reply.content
    assert world.vidgo.submit_count == 0


async def test_enhanced_quality_is_sent_as_model_name_and_shown(world: World) -> None:
    await world.start()
    await answer(
        world,
        await slash(
            world, "separate", link="https://cdn.example.org/songs/demo.mp3", quality="enhanced"
        ),
    )
    job = await world.job_for_task_wait()
    assert world.vidgo.upload_model_names == ["enhanced"]
    task = world.vidgo.tasks[job.vidgo_task_id or ""]
    assert task.input["model_name"] == "enhanced"
    status = await world.discord.wait_for_message(
        world.guild.channel_id, lambda m: f"Job {job.id}" in str(m.embeds)
    )
    assert "Quality" in text(status) and "enhanced" in text(status)
    await world.vidgo.finish(job.vidgo_task_id or "")
    await world.wait_job(job.id, JobState.DELIVERED)
    [result] = world.outcome_messages(job.id)
    assert "'name': 'Quality', 'value': 'enhanced'" in str(result.embeds)
    assert world.discord.rule_violations == []


async def test_standard_and_enhanced_of_one_file_are_never_joined_or_cached_for_each_other(
    world: World,
) -> None:
    await world.start()
    link = "https://cdn.example.org/songs/same.mp3"
    await answer(world, await slash(world, "separate", link=link))
    standard = await world.job_for_task_wait()
    await answer(world, await slash(world, "separate", link=link, quality="enhanced"))
    assert world.app is not None
    jobs = await world.app.store.list_jobs(limit=10)
    enhanced = next(j for j in jobs if j.id != standard.id)
    # A second paid task, not a follower of the first.
    assert enhanced.leader_id is None
    assert world.vidgo.upload_model_names == ["base", "enhanced"]
    await world.vidgo.finish(standard.vidgo_task_id or "")
    await world.wait_job(standard.id, JobState.DELIVERED)
    # The standard result is cached; an enhanced request is still not answered from it.
    # (Another member asks: the first has two unfinished jobs, the default limit.)
    other = world.discord.add_user(name="duet").id
    await answer(
        world, await slash(world, "separate", link=link, quality="enhanced", user_id=other)
    )
    newest = (await world.app.store.list_jobs(limit=1))[0]
    assert newest.id not in (standard.id, enhanced.id)
    assert newest.leader_id == enhanced.id  # joins the enhanced task in flight instead
    # … while a standard request is answered from the cache at no cost.
    submits = world.vidgo.submit_count
    await answer(
        world, await slash(world, "separate", link=link, quality="standard", user_id=other)
    )
    cached = (await world.app.store.list_jobs(limit=1))[0]
    assert cached.state in (JobState.SUCCEEDED, JobState.DELIVERED)
    assert cached.vidgo_task_id is None and world.vidgo.submit_count == submits


async def test_quality_on_a_vidgo_song_sends_nothing_new_and_says_it_was_not_used(
    world: World,
) -> None:
    await world.start()
    await answer(
        world,
        await slash(
            world,
            "separate",
            task_id=GENERATION_TASK_ID,
            audio_id=GENERATION_AUDIO_IDS[0],
            quality="enhanced",
        ),
    )
    job = await world.job_for_task_wait()
    task = world.vidgo.tasks[job.vidgo_task_id or ""]
    assert task.model == "separate-vocals" and "model_name" not in task.input
    status = await world.discord.wait_for_message(
        world.guild.channel_id, lambda m: f"Job {job.id}" in str(m.embeds)
    )
    assert "quality` is for files and links" in text(status)
