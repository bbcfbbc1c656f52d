"""/separate end to end: the real app and discord.py client against fake Discord and Vidgo."""

from __future__ import annotations

import asyncio

from storage.jobstate import JobState
from tests.e2e.conftest import World
from tests.fakes.vidgo import GENERATION_AUDIO_IDS, GENERATION_TITLES


def link_urls(message: object) -> list[str]:
    return [
        c["url"]
        for row in getattr(message, "components", [])
        for c in row.get("components", [])
        if c.get("url")
    ]


async def test_happy_path_by_callback(world: World) -> None:
    await world.start()
    await world.separate_song(0)
    job = await world.job_for_task_wait()
    # The deferred answer became the public status message.
    status = await world.discord.wait_for_message(
        world.guild.channel_id, lambda m: bool(m.embeds) and f"Job {job.id}" in str(m.embeds)
    )
    assert status.interaction_id is not None
    await world.vidgo.finish(job.vidgo_task_id or "")
    done = await world.wait_job(job.id, JobState.DELIVERED)
    [result] = world.outcome_messages(job.id)
    assert result.channel_id == world.guild.channel_id
    assert f"<@{world.member.id}>" in result.content
    assert GENERATION_TITLES[0] in str(result.embeds)
    urls = link_urls(result)
    # Both stems are kept: the buttons are signed links to the bot's own listener.
    public = f"{world.settings().PUBLIC_URL}/media/{job.vidgo_task_id}/"
    assert len(urls) == 2 and all(u.startswith(public) for u in urls)
    assert done.result_message_id == result.id
    # Only the requester is pinged.
    assert result.pinged.get("users") == [world.member.id]
    assert not result.pinged.get("everyone") and not result.pinged.get("roles")
    # The status message was edited to done.
    await world.discord.wait_until(lambda: "Done" in str(status.embeds))
    assert world.discord.rule_violations == []


async def test_happy_path_by_polling_only(world: World) -> None:
    world.callbacks = False
    await world.start()
    await world.separate_song(0)
    job = await world.job_for_task_wait()
    assert world.vidgo.tasks[job.vidgo_task_id or ""].callback_url is None
    await world.vidgo.finish(job.vidgo_task_id or "")
    await world.wait_job(job.id, JobState.DELIVERED)
    assert len(world.outcome_messages(job.id)) == 1
    assert world.discord.rule_violations == []


async def test_stems_all_gives_every_stem(world: World) -> None:
    await world.start()
    await world.separate_song(1, stems="all")
    job = await world.job_for_task_wait()
    assert world.vidgo.tasks[job.vidgo_task_id or ""].model == "stem-split"
    await world.vidgo.finish(job.vidgo_task_id or "")
    await world.wait_job(job.id, JobState.DELIVERED)
    [result] = world.outcome_messages(job.id)
    labels = [
        c["label"] for row in result.components for c in row.get("components", []) if c.get("url")
    ]
    # Every stem, then the backing track mixed from them.
    assert len(labels) == 14 and labels[-1] == "Backing track"
    assert world.discord.rule_violations == []


async def test_vidgo_song_link_and_upload_link(world: World) -> None:
    await world.start()
    song = world.vidgo.generations
    gen_id, tracks = next(iter(song.items()))
    audio_url = str(tracks[0]["audio_url"])
    song_link = "https://storage.vidgo.ai" + audio_url.removeprefix(world.vidgo.base_url)
    await world.separate(link=song_link)
    job = await world.job_for_task_wait()
    assert job.source_kind.value == "ids" and job.source_task_id == gen_id
    await world.separate(link="https://cdn.example.org/songs/demo.mp3")
    await world.discord.wait_until(lambda: len(world.vidgo.tasks) == 2)
    upload = await world.job_for_task_wait()
    assert upload.id != job.id
    assert world.vidgo.tasks[upload.vidgo_task_id or ""].model == "upload-and-separate-vocals"


async def test_attachment_input(world: World) -> None:
    await world.start()
    await world.separate(
        attachments=[{"filename": "my song.mp3", "content_type": "audio/mpeg", "data": b"ID3..."}]
    )
    job = await world.job_for_task_wait()
    task = world.vidgo.tasks[job.vidgo_task_id or ""]
    assert task.model == "upload-and-separate-vocals"
    assert task.input["audio_url"].startswith(world.discord.base_url)
    await world.vidgo.finish(task.task_id)
    await world.wait_job(job.id, JobState.DELIVERED)
    assert len(world.outcome_messages(job.id)) == 1


async def test_bad_input_gets_an_ephemeral_explanation(world: World) -> None:
    await world.start()
    await world.separate(link="ftp://example.org/a.mp3")
    await world.separate(task_id="8FDN1I7M7Q68DDG8")
    await world.separate()
    await world.discord.wait_until(
        lambda: sum(1 for i in world.discord.interactions.values() if i.responses) == 3
    )
    texts = []
    for interaction in world.discord.interactions.values():
        [response] = interaction.responses
        assert interaction.ephemeral
        texts.append(str(response))
    assert any("http" in t for t in texts)
    assert any("audio_id" in t for t in texts)
    assert any("task_id" in t and "link" in t for t in texts)
    assert world.vidgo.tasks == {}


async def test_duplicate_callbacks_post_once(world: World) -> None:
    world.vidgo.duplicate_callbacks = 3
    await world.start()
    await world.separate_song(0)
    job = await world.job_for_task_wait()
    await world.vidgo.finish(job.vidgo_task_id or "")
    await world.wait_job(job.id, JobState.DELIVERED)
    await asyncio.sleep(0.5)
    assert len(world.outcome_messages(job.id)) == 1


async def test_restart_with_a_pending_job_delivers_once(world: World) -> None:
    world.overrides["POLL_INTERVAL_SECONDS"] = 1.0
    await world.start()
    await world.separate_song(0)
    job = await world.job_for_task_wait()
    await world.stop()
    await world.vidgo.finish(job.vidgo_task_id or "")  # the callback finds nobody
    await asyncio.sleep(0.5)
    await world.start()
    await world.wait_job(job.id, JobState.DELIVERED, timeout=15)
    await asyncio.sleep(0.3)
    assert len(world.outcome_messages(job.id)) == 1


async def test_discord_429_then_success(world: World) -> None:
    await world.start()
    await world.separate_song(0)
    job = await world.job_for_task_wait()
    world.discord.fail_next(2, 429, method="POST", path_contains="/messages", retry_after=0.05)
    await world.vidgo.finish(job.vidgo_task_id or "")
    await world.wait_job(job.id, JobState.DELIVERED)
    assert len(world.outcome_messages(job.id)) == 1


async def test_discord_5xx_is_retried_by_the_engine(world: World) -> None:
    await world.start()
    await world.separate_song(0)
    job = await world.job_for_task_wait()
    # discord.py does not retry a 503 itself: the engine's own backoff must.
    world.discord.fail_next(2, 503, method="POST", path_contains="/messages")
    await world.vidgo.finish(job.vidgo_task_id or "")
    done = await world.wait_job(job.id, JobState.DELIVERED, timeout=20)
    assert done.delivery_attempts >= 2
    assert len(world.outcome_messages(job.id)) == 1


async def test_channel_gone_sends_a_dm(world: World) -> None:
    await world.start()
    await world.separate_song(0)
    job = await world.job_for_task_wait()
    world.discord.remove_channel(world.guild.channel_id)
    await world.vidgo.finish(job.vidgo_task_id or "")
    await world.wait_job(job.id, JobState.DELIVERED)
    dms = [m for m in world.discord.dm_messages(world.member.id) if m.nonce == f"stemcord-{job.id}"]
    assert len(dms) == 1


async def test_channel_gone_and_dms_blocked_is_undeliverable(world: World) -> None:
    await world.start()
    await world.separate_song(0)
    job = await world.job_for_task_wait()
    world.discord.deny_channel(world.guild.channel_id)
    world.discord.block_dms(world.member.id)
    await world.vidgo.finish(job.vidgo_task_id or "")
    done = await world.wait_job(job.id, JobState.UNDELIVERABLE)
    assert done.last_error is not None and "DM" in done.last_error


async def test_repeated_delivery_is_deduplicated_by_the_nonce(world: World) -> None:
    app = await world.start()
    await world.separate_song(0)
    job = await world.job_for_task_wait()
    await world.vidgo.finish(job.vidgo_task_id or "")
    done = await world.wait_job(job.id, JobState.DELIVERED)
    # A crash after Discord took the message but before it was recorded means a retry.
    again = await app.delivery.deliver(done)
    assert again == done.result_message_id
    assert len(world.outcome_messages(job.id)) == 1
    assert world.discord.nonce_replays >= 1


async def test_vidgo_failure_and_hostile_text_are_shown_safely(world: World) -> None:
    await world.start()
    await world.separate_song(0)
    job = await world.job_for_task_wait()
    hostile = "@everyone <@&123> **bold** \u200bhi " + "x" * 5000
    await world.vidgo.fail(job.vidgo_task_id or "", hostile)
    await world.wait_job(job.id, JobState.DELIVERED)
    [message] = world.outcome_messages(job.id)
    assert "could not separate" in str(message.embeds)
    assert not message.pinged.get("everyone") and not message.pinged.get("roles")
    assert world.discord.rule_violations == []


async def test_cached_result_is_delivered_at_once(world: World) -> None:
    await world.start()
    await world.separate_song(0)
    first = await world.job_for_task_wait()
    await world.vidgo.finish(first.vidgo_task_id or "")
    await world.wait_job(first.id, JobState.DELIVERED)
    tasks_before = len(world.vidgo.tasks)
    await world.separate_song(0)
    assert world.app is not None
    store = world.app.store

    async def second() -> str:
        while True:
            jobs = await store.list_jobs(limit=1)
            if jobs and jobs[0].id != first.id:
                return jobs[0].id
            await asyncio.sleep(0.02)

    job_id = await asyncio.wait_for(second(), 10)
    await world.wait_job(job_id, JobState.DELIVERED)
    assert len(world.vidgo.tasks) == tasks_before
    assert len(world.outcome_messages(job_id)) == 1
    assert GENERATION_AUDIO_IDS[0]


async def test_explicit_global_sync(world: World) -> None:
    from bot.app import sync_commands

    settings = world.settings()
    count = await sync_commands(settings, None)
    commands = {c["name"]: c for c in world.discord.synced_commands[None]}
    assert count == len(commands)
    assert {"separate", "lyrics", "Separate vocals"} <= set(commands)
    # The message menu is a message command (type 3) without options.
    assert commands["Separate vocals"]["type"] == 3
    names = {o["name"] for o in commands["separate"]["options"]}
    assert names == {"task_id", "audio_id", "link", "file", "stems", "key", "quality"}


async def test_status_is_edited_through_the_channel_after_the_token_window(
    world: World, monkeypatch: object
) -> None:
    import cogs.delivery

    monkeypatch.setattr(cogs.delivery, "INTERACTION_WINDOW", 0.0)  # type: ignore[attr-defined]
    await world.start()
    await world.separate_song(0)
    job = await world.job_for_task_wait()
    await world.vidgo.finish(job.vidgo_task_id or "")
    done = await world.wait_job(job.id, JobState.DELIVERED)
    assert done.status_message_id is not None
    await world.discord.wait_until(
        lambda: any(
            r.method == "PATCH" and r.path.endswith(f"/messages/{done.status_message_id}")
            for r in world.discord.requests
        )
    )


async def test_missing_permission_in_the_channel_sends_a_dm(world: World) -> None:
    await world.start()
    await world.separate_song(0)
    job = await world.job_for_task_wait()
    world.discord.deny_channel(world.guild.channel_id)
    await world.vidgo.finish(job.vidgo_task_id or "")
    await world.wait_job(job.id, JobState.DELIVERED)
    assert world.outcome_messages(job.id, world.guild.channel_id) == []
    dms = [m for m in world.discord.dm_messages(world.member.id) if m.nonce == f"stemcord-{job.id}"]
    assert len(dms) == 1


async def test_every_message_allows_pinging_only_the_requester(world: World) -> None:
    # What was actually sent, not what was rendered: escaping hides a widened setting, so the
    # allowed_mentions of every message-creating and editing request is checked.
    await world.start()
    await world.separate_song(0)
    job = await world.job_for_task_wait()
    await world.vidgo.fail(job.vidgo_task_id or "", "@everyone <@&123> listen <@999>")
    await world.wait_job(job.id, JobState.DELIVERED)
    writes = [
        r
        for r in world.discord.requests
        if r.method in ("POST", "PATCH")
        and ("/messages" in r.path or "/callback" in r.path or "/webhooks/" in r.path)
        and isinstance(r.json, dict)
    ]
    assert writes
    for request in writes:
        body = request.json.get("data", request.json)  # interaction callbacks wrap it
        mentions = body.get("allowed_mentions")
        if mentions is None:
            continue  # no content to ping with (an edit of embeds or components)
        assert mentions.get("parse", []) == [], request.path
        assert mentions.get("roles", []) == [], request.path
        assert set(mentions.get("users", [])) <= {str(world.member.id), world.member.id}
        assert not mentions.get("replied_user", False)
    [result] = world.outcome_messages(job.id)
    [post] = [
        r for r in writes if r.method == "POST" and r.json.get("nonce") == f"stemcord-{job.id}"
    ]
    assert post.json["allowed_mentions"]["users"] in ([str(world.member.id)], [world.member.id])
    assert result.pinged == {"users": [world.member.id], "roles": [], "everyone": False}
