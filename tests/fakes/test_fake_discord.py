"""The fake Discord behaves like Discord for the real discord.py client.

Each test runs a real ``commands.Bot`` over real sockets against a fresh fake, or talks to the
fake over plain HTTP where the rule itself is the subject.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import discord
import pytest
from discord.ext import commands
from discord.gateway import DiscordWebSocket
from discord.http import Route
from discord.webhook.async_ import async_context, interaction_response_params

from tests.fakes.discord import FakeDiscord, FakeGuild, FakeUser

TOKEN = "test-discord-token"
ROOT = Path(__file__).resolve().parents[2]
BOT_AUTH = {"Authorization": f"Bot {TOKEN}"}


@dataclass
class Probe:
    """What the bot under test saw, and a gate the test opens."""

    errors: list[discord.HTTPException] = field(default_factory=list)
    uploads: list[tuple[str, int, bytes]] = field(default_factory=list)
    presses: list[str] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    slow_for: float = 0.0


class JobButtons(discord.ui.View):
    """A persistent view like Stemcord's: a fixed custom_id that survives restarts."""

    def __init__(self, probe: Probe) -> None:
        super().__init__(timeout=None)
        self.probe = probe

    @discord.ui.button(
        label="Cancel", custom_id="stemcord:cancel", style=discord.ButtonStyle.danger
    )
    async def cancel(
        self, interaction: discord.Interaction, button: discord.ui.Button[Any]
    ) -> None:
        self.probe.presses.append(button.custom_id or "")
        await interaction.response.edit_message(content="Cancelled", view=None)


class ProbeBot(commands.Bot):
    """``commands.Bot`` with the persistent view registered, and no pause before re-IDENTIFY."""

    def __init__(self, probe: Probe) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.default(),
            guild_ready_timeout=0.05,
            allowed_mentions=discord.AllowedMentions.none(),
            help_command=None,
        )
        self.probe = probe

    async def setup_hook(self) -> None:
        self.add_view(JobButtons(self.probe))

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        # discord.py waits 5 s before every re-IDENTIFY to respect Discord's identify rate
        # limit; the fake has none, and the tests should stay fast.
        return None


def build_bot(probe: Probe) -> commands.Bot:
    """A small bot with one command per behaviour the tests need."""
    bot = ProbeBot(probe)

    @bot.tree.command(name="separate", description="Split a song into stems")
    async def separate(interaction: discord.Interaction, song: str) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.edit_original_response(content=f"Separating {song}")

    @bot.tree.command(name="slow", description="Answers after a pause")
    async def slow(interaction: discord.Interaction) -> None:
        await asyncio.sleep(probe.slow_for)
        try:
            await interaction.response.send_message("here I am")
        except discord.HTTPException as exc:
            probe.errors.append(exc)

    @bot.tree.command(name="twice", description="Acknowledges twice")
    async def twice(interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        # discord.py refuses a second response itself; go under it, as a second process would.
        adapter = async_context.get()
        try:
            await adapter.create_interaction_response(
                interaction.id,
                interaction.token,
                session=interaction._session,
                params=interaction_response_params(5),
            )
        except discord.HTTPException as exc:
            probe.errors.append(exc)

    @bot.tree.command(name="later", description="Defers, then edits when released")
    async def later(interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True)
        await probe.release.wait()
        try:
            await interaction.edit_original_response(content="done")
        except discord.HTTPException as exc:
            probe.errors.append(exc)

    @bot.tree.command(name="upload", description="Separate an uploaded file")
    async def upload(interaction: discord.Interaction, file: discord.Attachment) -> None:
        probe.uploads.append((file.filename, file.size, await file.read()))
        await interaction.response.send_message(f"got {file.filename}", ephemeral=True)
        await interaction.followup.send("queued", ephemeral=True)

    @bot.tree.command(name="job", description="Posts a job message with a cancel button")
    async def job(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("Job 1 running", view=JobButtons(probe))

    @bot.tree.context_menu(name="Separate this")
    async def separate_message(interaction: discord.Interaction, message: discord.Message) -> None:
        await interaction.response.send_message(f"target {message.id}", ephemeral=True)

    return bot


@dataclass
class World:
    fake: FakeDiscord
    bot: commands.Bot
    probe: Probe
    guild: FakeGuild
    user: FakeUser

    @property
    def channel_id(self) -> int:
        return self.guild.channel_id

    def channel(self) -> discord.TextChannel:
        channel = self.bot.get_channel(self.channel_id)
        assert isinstance(channel, discord.TextChannel)
        return channel

    async def slash(self, name: str, **kwargs: Any) -> Any:
        return await self.fake.invoke_slash(
            guild_id=self.guild.id,
            channel_id=self.channel_id,
            user_id=self.user.id,
            name=name,
            **kwargs,
        )


@contextlib.asynccontextmanager
async def running_bot(fake: FakeDiscord, probe: Probe | None = None) -> AsyncIterator[commands.Bot]:
    """The real client logged in to ``fake``; discord.py's URLs are restored afterwards."""
    with fake.redirect_discord_py():
        bot = build_bot(probe or Probe())
        task = asyncio.create_task(bot.start(TOKEN))
        try:
            ready = asyncio.create_task(fake.wait_until_ready(timeout=5))
            done, _ = await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                ready.cancel()
                await task  # raises the login/connect error
            await ready
            # The fake has sent READY and GUILD_CREATE; wait until the client has read them.
            await asyncio.wait_for(bot.wait_until_ready(), 5)
            yield bot
        finally:
            await bot.close()
            with contextlib.suppress(Exception):
                await task


@contextlib.asynccontextmanager
async def world(**fake_options: Any) -> AsyncIterator[World]:
    async with FakeDiscord(**fake_options) as fake:
        guild = fake.add_guild()
        user = fake.add_user(name="singer")
        probe = Probe()
        async with running_bot(fake, probe) as bot:
            yield World(fake, bot, probe, guild, user)


@pytest.fixture
async def w() -> AsyncIterator[World]:
    async with world(ack_deadline=1.0) as built:
        yield built


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


# -- login and gateway ---------------------------------------------------------------------


async def test_login_ready_caches_guild_and_restores_discord_py_urls() -> None:
    original_base, original_gateway = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    async with world() as w:
        assert w.fake.api_base == Route.BASE
        assert w.bot.user is not None and w.bot.user.id == w.fake.bot_user_id
        assert w.bot.application_id == w.fake.application_id
        guild = w.bot.get_guild(w.guild.id)
        assert guild is not None and guild.name == "Karaoke Club"
        assert guild.me is not None
        assert w.channel().permissions_for(guild.me).send_messages
        assert w.fake.identify_count == 1
        paths = [(r.method, r.path) for r in w.fake.requests]
        assert ("GET", "/users/@me") in paths
        assert ("GET", "/oauth2/applications/@me") in paths
    assert (original_base, original_gateway) == (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)
    assert w.fake.rule_violations == []


async def test_guild_and_channel_added_while_connected_reach_the_cache(w: World) -> None:
    joined = w.fake.add_guild(name="Second Stage")
    extra = w.fake.add_channel(w.guild.id, name="stems")
    await w.fake.wait_until(lambda: w.bot.get_guild(joined.id) is not None, timeout=5)
    await w.fake.wait_until(lambda: w.bot.get_channel(extra) is not None, timeout=5)
    guild = w.bot.get_guild(joined.id)
    assert guild is not None and guild.name == "Second Stage"
    assert [c.id for c in guild.text_channels] == [joined.channel_id]
    sent = await w.bot.get_partial_messageable(extra).send("hello")
    assert w.fake.channel_messages(extra)[0].id == sent.id


async def test_wrong_token_fails_login() -> None:
    async with FakeDiscord(token="the-real-token") as fake:
        with pytest.raises(discord.LoginFailure):
            async with running_bot(fake):
                pass
        assert [r.status for r in fake.requests] == [401]
        assert "no valid bot token" in fake.rule_violations[0]


async def test_privileged_intents_are_refused_with_4014() -> None:
    async with FakeDiscord() as fake:
        fake.add_guild()
        with fake.redirect_discord_py():
            bot = commands.Bot(command_prefix="!", intents=discord.Intents.all())
            try:
                with pytest.raises(discord.PrivilegedIntentsRequired):
                    await asyncio.wait_for(bot.start(TOKEN), 5)
            finally:
                await bot.close()
        assert "4014" in fake.rule_violations[0]


async def test_dropped_gateway_resumes_and_replays_the_missed_interaction(w: World) -> None:
    await w.fake.drop_gateway()
    # Dispatched while the bot is away: it must arrive through the RESUME replay.
    interaction = await w.slash("separate", options=[{"name": "song", "value": "Harbour Lights"}])
    message = await w.fake.wait_for_message(w.channel_id, lambda m: "Harbour" in m.content)
    assert message.interaction_id == interaction.id
    assert (w.fake.identify_count, w.fake.resume_count) == (1, 1)
    assert "INTERACTION_CREATE" in w.fake.replayed_events
    assert w.fake.rule_violations == []


async def test_unresumable_drop_makes_the_client_identify_again(w: World) -> None:
    await w.fake.drop_gateway(resumable=False)
    await w.fake.wait_until(lambda: w.fake.identify_count == 2, timeout=5)
    await w.fake.wait_until_ready()
    await w.slash("separate", options=[{"name": "song", "value": "Reprise"}])
    await w.fake.wait_for_message(w.channel_id, lambda m: m.content == "Separating Reprise")
    assert w.fake.resume_count == 0


# -- commands and interactions -------------------------------------------------------------


async def test_guild_sync_is_recorded_and_a_slash_command_defers_then_edits(w: World) -> None:
    target = discord.Object(w.guild.id)
    w.bot.tree.copy_global_to(guild=target)
    synced = await w.bot.tree.sync(guild=target)
    names = {c["name"] for c in w.fake.synced_commands[w.guild.id]}
    assert {"separate", "upload", "Separate this"} <= names
    assert {c.name for c in synced} == names
    separate_id = next(c.id for c in synced if c.name == "separate")

    interaction = await w.slash("separate", options=[{"name": "song", "value": "Harbour Lights"}])
    message = await w.fake.wait_for_message(
        w.channel_id, lambda m: m.content == "Separating Harbour Lights"
    )
    assert interaction.payload["data"]["id"] == str(separate_id)
    assert interaction.payload["data"]["guild_id"] == str(w.guild.id)
    assert interaction.response_type == 5
    assert interaction.original_message is message
    assert message.interaction_id == interaction.id
    assert message.edits[0].loading and not message.loading
    assert interaction.ack_latency is not None and interaction.ack_latency < 1.0
    assert w.fake.rule_violations == []


async def test_unsynced_command_name_is_refused_once_commands_are_synced(w: World) -> None:
    await w.bot.tree.sync()
    assert [c["name"] for c in w.fake.synced_commands[None]][:1] == ["separate"]
    with pytest.raises(ValueError, match="not synced"):
        await w.slash("nonexistent")


async def test_late_acknowledgement_is_rejected_with_10062() -> None:
    async with world(ack_deadline=0.3) as w:
        w.probe.slow_for = 0.5
        interaction = await w.slash("slow")
        await w.fake.wait_until(lambda: bool(w.probe.errors), timeout=5)
        error = w.probe.errors[0]
        assert isinstance(error, discord.NotFound) and error.code == 10062
        assert not interaction.acked and interaction.expired
        assert any("not acknowledged within 0.3 s" in v for v in w.fake.rule_violations)
        assert any("10062" in v for v in w.fake.rule_violations)
        assert w.fake.channel_messages(w.channel_id) == []


async def test_unanswered_interaction_is_recorded_and_its_webhook_is_unknown(
    http: aiohttp.ClientSession,
) -> None:
    async with world(ack_deadline=0.2) as w:
        # Nothing is synced, so the fake delivers it; the bot has no such command.
        interaction = await w.slash("forgotten")
        await w.fake.wait_until(lambda: interaction.expired, timeout=2)
        url = f"{w.fake.api_base}/webhooks/{w.fake.application_id}/{interaction.token}"
        async with http.post(url, params={"wait": "true"}, json={"content": "late"}) as resp:
            assert (resp.status, (await resp.json())["code"]) == (404, 10015)
        assert w.fake.rule_violations[0].endswith("was not acknowledged within 0.2 s")
        assert "interaction not acknowledged -> 404 10015" in w.fake.rule_violations[1]


async def test_second_acknowledgement_gets_40060(w: World) -> None:
    interaction = await w.slash("twice")
    await w.fake.wait_until(lambda: bool(w.probe.errors), timeout=5)
    assert w.probe.errors[0].status == 400 and w.probe.errors[0].code == 40060
    assert [r.accepted for r in interaction.responses] == [True, False]
    assert "second initial response" in w.fake.rule_violations[0]


async def test_edit_after_token_lifetime_gets_50027(w: World) -> None:
    interaction = await w.slash("later")
    await w.fake.wait_until(lambda: interaction.acked)
    assert interaction.ephemeral
    w.fake.advance_clock(901)
    w.probe.release.set()
    await w.fake.wait_until(lambda: bool(w.probe.errors), timeout=5)
    assert w.probe.errors[0].status == 401 and w.probe.errors[0].code == 50027
    assert any("lifetime 900 s" in v for v in w.fake.rule_violations)


async def test_attachment_option_is_resolved_and_downloadable(w: World) -> None:
    await w.bot.tree.sync()  # the synced schema binds the upload to the `file` option
    interaction = await w.slash(
        "upload",
        attachments=[{"filename": "song.mp3", "data": b"ID3 fake audio", "size": 14}],
    )
    followup = await w.fake.wait_for_message(w.channel_id, lambda m: m.content == "queued")
    assert w.probe.uploads == [("song.mp3", 14, b"ID3 fake audio")]
    assert interaction.original_message is not None
    assert interaction.original_message.content == "got song.mp3"
    assert interaction.original_message.ephemeral and followup.ephemeral
    assert interaction.followups == [followup]
    assert w.fake.rule_violations == []


async def test_button_press_reaches_a_persistent_view_and_updates_the_message(w: World) -> None:
    await w.slash("job")
    job = await w.fake.wait_for_message(w.channel_id, lambda m: m.content == "Job 1 running")
    press = await w.fake.invoke_component(
        guild_id=w.guild.id,
        channel_id=w.channel_id,
        user_id=w.user.id,
        message_id=job.id,
        custom_id="stemcord:cancel",
    )
    await w.fake.wait_for_message(w.channel_id, lambda m: m.content == "Cancelled")
    assert w.probe.presses == ["stemcord:cancel"]
    assert press.response_type == 7 and press.original_message is job
    assert job.components == [] and job.edits[0].components
    assert w.fake.rule_violations == []


async def test_message_context_menu_gets_the_target_message(w: World) -> None:
    posted = w.fake.add_message(w.channel_id, author_id=w.user.id, content="listen to this")
    await w.fake.invoke_message_context(
        guild_id=w.guild.id,
        channel_id=w.channel_id,
        user_id=w.user.id,
        name="Separate this",
        message_id=posted.id,
    )
    reply = await w.fake.wait_for_message(w.channel_id, lambda m: m.content.startswith("target"))
    assert reply.content == f"target {posted.id}" and reply.ephemeral


# -- channel messages ----------------------------------------------------------------------


async def test_channel_send_with_embed_link_button_and_nonce_posts_once(w: World) -> None:
    embed = discord.Embed(title="Harbour Lights — stems", description="Ready")
    view = discord.ui.View()
    view.add_item(discord.ui.Button(label="Vocals", url="https://cdn.example/vocals.mp3"))
    channel = w.channel()
    first = await channel.send(embed=embed, view=view, nonce="stemcord-42")
    again = await channel.send(embed=embed, view=view, nonce="stemcord-42")
    assert again.id == first.id
    [stored] = w.fake.channel_messages(w.channel_id)
    assert stored.nonce == "stemcord-42"
    assert stored.embeds[0]["title"] == "Harbour Lights — stems"
    assert stored.link_urls == ["https://cdn.example/vocals.mp3"]
    assert w.fake.nonce_replays == 1
    assert w.fake.rule_violations == []


async def test_rate_limited_send_is_retried_and_lands_once(w: World) -> None:
    w.fake.fail_next(1, 429, method="POST", path_contains="/messages", retry_after=0.05)
    sent = await w.channel().send("hello")
    assert [m.id for m in w.fake.channel_messages(w.channel_id)] == [sent.id]
    posts = [r.status for r in w.fake.requests if r.method == "POST" and "/messages" in r.path]
    assert posts == [429, 200]


async def test_server_error_without_retry_surfaces_and_posts_nothing(w: World) -> None:
    w.fake.fail_next(1, 503, method="POST", path_contains="/messages")
    with pytest.raises(discord.DiscordServerError):
        await w.channel().send("hello")
    assert w.fake.channel_messages(w.channel_id) == []


async def test_embed_over_limits_is_a_400_naming_the_field(w: World) -> None:
    embed = discord.Embed(title="t" * 257).add_field(name="stems", value="v" * 1025)
    with pytest.raises(discord.HTTPException) as caught:
        await w.channel().send(embed=embed)
    assert caught.value.status == 400 and caught.value.code == 50035
    assert "embeds.0.title" in caught.value.text
    assert "embeds.0.fields.0.value" in caught.value.text
    assert w.fake.channel_messages(w.channel_id) == []
    assert "Must be 256 or fewer in length." in w.fake.rule_violations[0]


async def test_dm_channel_is_created_and_blocked_dms_get_50007(w: World) -> None:
    user = await w.bot.fetch_user(w.user.id)
    await user.send("Your stems are ready")
    [dm] = w.fake.dm_messages(w.user.id)
    assert dm.content == "Your stems are ready" and dm.guild_id is None
    w.fake.block_dms(w.user.id)
    with pytest.raises(discord.Forbidden) as caught:
        await user.send("again")
    assert caught.value.code == 50007


async def test_removed_channel_gives_unknown_channel(w: World) -> None:
    channel = w.channel()
    w.fake.remove_channel(w.channel_id)
    await w.fake.wait_until(lambda: w.bot.get_channel(w.channel_id) is None, timeout=5)
    with pytest.raises(discord.NotFound) as caught:
        await channel.send("hello")
    assert caught.value.code == 10003


async def test_denied_channel_gives_missing_permissions_and_updates_the_cache(w: World) -> None:
    channel = w.channel()
    me = channel.guild.me
    w.fake.deny_channel(w.channel_id)
    await w.fake.wait_until(lambda: not w.channel().permissions_for(me).send_messages, timeout=5)
    with pytest.raises(discord.Forbidden) as caught:
        await channel.send("hello")
    assert caught.value.code == 50013


async def test_allowed_mentions_decide_who_is_pinged(w: World) -> None:
    text = f"@everyone <@{w.user.id}> your stems"
    await w.channel().send(text)  # the bot's default: AllowedMentions.none()
    await w.channel().send(text, allowed_mentions=discord.AllowedMentions(users=True))
    await w.channel().send(text, allowed_mentions=discord.AllowedMentions.all())
    pings = [m.pinged for m in w.fake.channel_messages(w.channel_id)]
    assert pings == [
        {"users": [], "roles": [], "everyone": False},
        {"users": [w.user.id], "roles": [], "everyone": False},
        {"users": [w.user.id], "roles": [], "everyone": True},
    ]


async def test_edit_and_file_upload_through_the_bot(w: World) -> None:
    vocals = b"ID3" + bytes(range(256)) * 4
    sent = await w.channel().send("stems", file=discord.File(io.BytesIO(vocals), "vocals.mp3"))
    await sent.edit(content="stems (edited)")
    [stored] = w.fake.channel_messages(w.channel_id)
    assert stored.content == "stems (edited)" and stored.edits[0].content == "stems"
    assert stored.attachments[0].filename == "vocals.mp3"
    assert stored.attachments[0].data == vocals


async def test_file_over_the_guild_upload_limit_is_413(w: World) -> None:
    w.guild.upload_limit = 1024
    interaction = await w.slash("later")
    assert interaction.payload["attachment_size_limit"] == 1024
    with pytest.raises(discord.HTTPException) as caught:
        await w.channel().send(file=discord.File(io.BytesIO(b"x" * 1025), "stems.zip"))
    assert (caught.value.status, caught.value.code) == (413, 40005)
    assert "stems.zip is 1025 bytes (limit 1024)" in w.fake.rule_violations[0]
    w.probe.release.set()
    await w.fake.wait_for_message(w.channel_id, lambda m: m.content == "done")


async def test_invalid_command_sync_is_refused(http: aiohttp.ClientSession) -> None:
    async with FakeDiscord() as fake:
        url = f"{fake.api_base}/applications/{fake.application_id}/commands"
        bad = [{"name": "Separate Song", "description": "", "type": 1}]
        async with http.put(url, json=bad, headers=BOT_AUTH) as resp:
            error = await resp.json()
        assert resp.status == 400 and error["code"] == 50035
        assert set(error["errors"]["0"]) == {"name", "description"}
        assert fake.synced_commands == {}


async def test_unknown_route_is_a_404_and_logged(w: World) -> None:
    with pytest.raises(discord.NotFound):
        await w.bot.http.request(Route("GET", "/channels/{channel_id}/pins", channel_id=1))
    assert w.fake.unknown_routes == ["GET /channels/1/pins"]


# -- the rules, over plain HTTP ------------------------------------------------------------


def _button(**fields: Any) -> dict[str, Any]:
    return {"type": 2, "style": 1, "label": "Go", "custom_id": "go", **fields}


def _rows(*buttons: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"type": 1, "components": list(buttons)}]


LIMIT_CASES = [
    ({"content": "x" * 2001}, "content", "Must be 2000 or fewer"),
    ({"embeds": [{"title": "t"}] * 11}, "embeds", "Must be 10 or fewer"),
    ({"embeds": [{"description": "d" * 4097}]}, "embeds.0.description", "4096 or fewer"),
    (
        {"embeds": [{"fields": [{"name": "n", "value": "v"}] * 26}]},
        "embeds.0.fields",
        "25 or fewer",
    ),
    ({"embeds": [{"fields": [{"name": "n" * 257, "value": "v"}]}]}, "fields.0.name", "256"),
    ({"embeds": [{"footer": {"text": "f" * 2049}}]}, "footer.text", "2048 or fewer"),
    ({"embeds": [{"author": {"name": "a" * 257}}]}, "author.name", "256 or fewer"),
    ({"embeds": [{"description": "d" * 4000}, {"description": "d" * 2001}]}, "embeds", "6000"),
    ({"embeds": [{"title": "t", "url": "javascript:alert(1)"}]}, "embeds.0.url", "javascript"),
    ({"components": _rows(_button()) * 6}, "components", "5 or fewer"),
    (
        {"components": _rows(*[_button(custom_id=f"b{i}") for i in range(6)])},
        "components.0.components",
        "5 or fewer",
    ),
    ({"components": _rows(_button(label="l" * 81))}, "label", "80 or fewer"),
    ({"components": _rows(_button(custom_id=None))}, "custom_id", "required"),
    ({"components": _rows(_button(custom_id="c" * 101))}, "custom_id", "100 or fewer"),
    (
        {"components": _rows(_button(custom_id="a"), _button(custom_id="a"))},
        "custom_id",
        "duplicated",
    ),
    (
        {"components": _rows(_button(style=5, url="https://x.example", custom_id="x"))},
        "custom_id",
        "link button",
    ),
    ({"components": _rows(_button(style=5, custom_id=None, url="ftp://x"))}, "url", "ftp"),
    (
        {"components": _rows(_button(style=5, custom_id=None, url="https://x/" + "a" * 510))},
        "url",
        "512 or fewer",
    ),
    ({"content": "hi", "nonce": "n" * 26}, "nonce", "25 or fewer"),
    (
        {"content": "hi", "allowed_mentions": {"parse": ["users"], "users": ["1"]}},
        "allowed_mentions",
        "mutually exclusive",
    ),
]


@pytest.mark.parametrize(("body", "where", "text"), LIMIT_CASES)
async def test_message_limits_are_400_invalid_form_body(
    http: aiohttp.ClientSession, body: dict[str, Any], where: str, text: str
) -> None:
    async with FakeDiscord() as fake:
        guild = fake.add_guild()
        url = f"{fake.api_base}/channels/{guild.channel_id}/messages"
        async with http.post(url, json=body, headers=BOT_AUTH) as resp:
            assert resp.status == 400
            assert resp.headers["Content-Type"] == "application/json"
            error = await resp.json()
        assert error["code"] == 50035 and error["message"] == "Invalid Form Body"
        [violation] = fake.rule_violations
        assert where in violation and text in violation
        assert fake.channel_messages(guild.channel_id) == []


async def test_empty_message_is_50006_and_a_valid_one_is_created(
    http: aiohttp.ClientSession,
) -> None:
    async with FakeDiscord() as fake:
        guild = fake.add_guild()
        url = f"{fake.api_base}/channels/{guild.channel_id}/messages"
        async with http.post(url, json={"content": ""}, headers=BOT_AUTH) as resp:
            assert (resp.status, (await resp.json())["code"]) == (400, 50006)
        ok = {"components": _rows(_button(style=5, custom_id=None, url="https://x.example"))}
        async with http.post(url, json=ok, headers=BOT_AUTH) as resp:
            assert resp.status == 200
        assert len(fake.channel_messages(guild.channel_id)) == 1


async def test_webhook_routes_need_an_acknowledged_live_interaction(
    http: aiohttp.ClientSession, w: World
) -> None:
    interaction = await w.slash("later")
    await w.fake.wait_until(lambda: interaction.acked)
    base = f"{w.fake.api_base}/webhooks/{w.fake.application_id}"
    async with http.patch(f"{base}/not-a-token/messages/@original", json={"content": "x"}) as resp:
        assert (resp.status, (await resp.json())["code"]) == (401, 50027)
    callback = f"{w.fake.api_base}/interactions/{interaction.id}/{interaction.token}/callback"
    async with http.post(callback, json={"type": 4, "data": {"content": "again"}}) as resp:
        assert (resp.status, (await resp.json())["code"]) == (400, 40060)
    w.probe.release.set()
    original = interaction.original_message
    assert original is not None
    await w.fake.wait_until(lambda: original.content == "done")


# -- standalone mode -----------------------------------------------------------------------


async def test_control_endpoints_drive_a_connected_bot(http: aiohttp.ClientSession) -> None:
    async with FakeDiscord() as fake:
        async with http.post(f"{fake.base_url}/_control/guilds", json={"name": "Soak"}) as resp:
            ids = await resp.json()
        async with running_bot(fake):
            body = {
                "guild_id": ids["guild_id"],
                "channel_id": ids["channel_id"],
                "user_id": ids["user_id"],
                "name": "separate",
                "options": [{"name": "song", "value": "Tide"}],
            }
            async with http.post(f"{fake.base_url}/_control/slash", json=body) as resp:
                interaction_id = (await resp.json())["interaction_id"]
            await fake.wait_for_message(
                int(ids["channel_id"]), lambda m: m.content == "Separating Tide"
            )
            query = {"channel_id": ids["channel_id"]}
            async with http.get(f"{fake.base_url}/_control/messages", params=query) as resp:
                [message] = await resp.json()
            async with http.get(f"{fake.base_url}/_control/state") as resp:
                state = await resp.json()
        assert message["content"] == "Separating Tide"
        assert message["interaction_id"] == interaction_id
        assert state["ready"] is True and state["rule_violations"] == []
        assert state["interactions"][0]["responses"][0]["type"] == 5


async def test_runs_as_a_process_and_stops_on_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.discord",
        "--port",
        "0",
        "--seed",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        lines: dict[str, str] = {}
        async with asyncio.timeout(10):
            while len(lines) < 5:
                key, _, value = (await proc.stdout.readline()).decode().strip().partition("=")
                lines[key] = value
        api = lines["FAKE_DISCORD_API"]
        assert lines["FAKE_DISCORD_GATEWAY"].startswith("ws://127.0.0.1:")
        base = api.removesuffix("/api/v10")
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/_control/state") as resp:
                state = await resp.json()
            async with session.get(f"{api}/users/@me", headers=BOT_AUTH) as resp:
                me = json.loads(await resp.text())
        assert state["guilds"][0]["id"] == lines["FAKE_DISCORD_GUILD_ID"]
        assert me["bot"] is True
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
