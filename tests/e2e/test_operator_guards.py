"""The operator's credits guarded, end to end: allowed servers, the server's daily cap, the
owner-only balance and the one low-credit warning. The real app and discord.py client run
against the fake Discord and the fake Vidgo."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from cogs.owner import ONLY_THE_OWNER
from cogs.servers import LEAVING_NOTICE, NOT_AVAILABLE_HERE
from tests.e2e.commands import MANAGER, answer, slash, text
from tests.e2e.conftest import World
from tests.fakes.discord_rest import RestCall, Route, json_response


class Leaves:
    """``DELETE /users/@me/guilds/{id}`` (leave a server) for the fake Discord, which does not
    serve it: records each leave and tells the bot's session, as Discord does."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.left: list[int] = []
        self.refuse: set[int] = set()
        world.discord.rest.add_routes([Route("DELETE", "/users/@me/guilds/{guild_id}", self.leave)])

    async def leave(self, call: RestCall) -> web.Response:
        guild_id = int(call.params["guild_id"])
        if guild_id in self.refuse:
            return json_response(403, {"message": "Missing Access", "code": 50001})
        self.left.append(guild_id)
        self.world.discord.gateway.dispatch(
            "GUILD_DELETE", {"id": str(guild_id)}, guild_id=guild_id
        )
        return web.Response(status=204)


async def test_the_bot_leaves_servers_not_on_the_list_at_start_and_on_joining(
    world: World,
) -> None:
    leaves = Leaves(world)
    outsider = world.discord.add_guild(name="Somewhere Else")
    world.overrides["ALLOWED_GUILD_IDS"] = str(world.guild.id)
    await world.start()
    await world.discord.wait_until(lambda: outsider.id in leaves.left)
    # A short notice in its system channel first (the bot may post there).
    notices = world.discord.channel_messages(outsider.channels[0])
    assert [m.content for m in notices] == [LEAVING_NOTICE]
    # Added to another server while running: left at once too.
    newcomer = world.discord.add_guild(name="Uninvited")
    await world.discord.wait_until(lambda: newcomer.id in leaves.left)
    assert world.guild.id not in leaves.left
    # The allowed server works as before.
    await world.separate_song(0)
    await world.job_for_task_wait()
    assert world.discord.rule_violations == []


async def test_an_interaction_from_a_server_not_on_the_list_is_refused_and_starts_nothing(
    world: World,
) -> None:
    leaves = Leaves(world)
    stuck = world.discord.add_guild(name="Cannot Leave")
    leaves.refuse.add(stuck.id)  # so the race before leaving can be played out
    world.overrides["ALLOWED_GUILD_IDS"] = str(world.guild.id)
    await world.start()
    # As after `bot sync`: the commands are global, so members elsewhere see them too.
    world.discord.synced_commands[None] = world.discord.synced_commands[world.guild.id]
    reply = await answer(
        world,
        await slash(
            world,
            "separate",
            guild_id=stuck.id,
            channel_id=stuck.channels[0],
            link="https://cdn.example.org/songs/a.mp3",
        ),
    )
    assert reply.ephemeral and reply.content == NOT_AVAILABLE_HERE
    settings = await answer(
        world,
        await slash(
            world,
            "karaoke settings show",
            guild_id=stuck.id,
            channel_id=stuck.channels[0],
            permissions=MANAGER,
        ),
    )
    assert settings.ephemeral and settings.content == NOT_AVAILABLE_HERE
    assert world.vidgo.submit_count == 0
    assert world.app is not None and await world.app.store.list_jobs() == []
    assert world.discord.rule_violations == []


async def test_the_server_daily_cap_refuses_whoever_comes_after_it(world: World) -> None:
    await world.start()
    done = await answer(
        world,
        await slash(world, "karaoke settings server_daily_cap", permissions=MANAGER, count=2),
    )
    assert done.ephemeral and "2 jobs" in done.content
    singers = [world.discord.add_user(name=f"singer{n}").id for n in range(3)]
    for index, singer in enumerate(singers[:2]):
        link = f"https://cdn.example.org/songs/{index}.mp3"
        await answer(world, await slash(world, "separate", link=link, user_id=singer))
    refused = await answer(
        world,
        await slash(
            world, "separate", link="https://cdn.example.org/songs/x.mp3", user_id=singers[2]
        ),
    )
    assert refused.ephemeral
    assert "daily cap of 2 jobs for everyone together" in refused.content
    assert "resets <t:" in refused.content and "00:00 UTC" in refused.content
    assert world.app is not None and len(await world.app.store.list_jobs()) == 2
    assert world.vidgo.submit_count == 2
    shown = await answer(world, await slash(world, "karaoke settings show", permissions=MANAGER))
    assert "Daily cap for the server" in text(shown)


async def test_only_the_owner_sees_the_balance(world: World) -> None:
    await world.start()
    manager = await answer(world, await slash(world, "jobs balance", permissions=MANAGER))
    assert manager.ephemeral and manager.content == ONLY_THE_OWNER
    owner = await answer(world, await slash(world, "jobs balance", user_id=world.discord.owner_id))
    assert owner.ephemeral and f"{world.vidgo.credits:,}" in owner.content


async def test_low_credits_warn_the_owner_once_across_restarts_and_show_on_metrics(
    world: World,
) -> None:
    world.vidgo.credits = 120
    world.overrides["CREDITS_WARN_BELOW"] = 500
    app = await world.start()
    owner = world.discord.owner_id
    await world.discord.wait_until(lambda: len(world.discord.dm_messages(owner)) == 1)
    [warning] = world.discord.dm_messages(owner)
    assert "120 left" in warning.content and "CREDITS_WARN_BELOW" in warning.content
    assert app.admin is not None
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{app.admin.base_url}/metrics") as response,
    ):
        scraped = await response.text()
    assert "stemcord_vidgo_credits 120.0" in scraped
    await world.stop()
    again = await world.start()
    assert again.credits is not None
    # The new process read the balance (its own first read) and remembered the warning.
    await again.credits.check()
    assert len(world.discord.dm_messages(owner)) == 1
    assert world.vidgo.requests.count(("GET", "/api/user/balance")) >= 2
