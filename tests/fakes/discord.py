"""A fake Discord: a real aiohttp server on 127.0.0.1 that the real discord.py client runs against.

It serves the gateway and the REST routes discord.py 2.7 uses for a slash-command bot: login,
command sync, INTERACTION_CREATE, interaction callbacks and webhooks (edit the original
response, followups), channel messages with embeds, buttons, files and nonces, DMs. It
enforces Discord's documented limits the way Discord does (status, JSON error code, nested
"Invalid Form Body" errors) and writes each breach to :attr:`FakeDiscord.rule_violations`,
so a test can assert the bot broke none. docs/testing-fake-discord.md lists every rule it
enforces, with its number, and what it does not enforce.

:class:`FakeDiscord` is the one object tests use; it is put together from one module per
responsibility, all sharing one world:

- :mod:`tests.fakes.discord_state`: the world (users, guilds, channels, messages,
  interactions, the fake clock) and what tests observe of it;
- :mod:`tests.fakes.discord_gateway`: websocket sessions, heartbeats, RESUME, and dispatch
  routed to the shard of each event's guild (``FakeDiscord(shard_count=...)``);
- :mod:`tests.fakes.discord_rest`: REST routing, auth, injected faults and the small
  resources; :mod:`tests.fakes.discord_rest_messages` channels, messages and DMs;
  :mod:`tests.fakes.discord_rest_interactions` interaction callbacks and webhooks;
- :mod:`tests.fakes.discord_control`: the in-process test API (users act, the world changes,
  faults); :mod:`tests.fakes.discord_control_http` the same over ``/_control/...``;
- :mod:`tests.fakes.discord_models` (records) and :mod:`tests.fakes.discord_rules` (limits).

Point discord.py at it with :meth:`FakeDiscord.redirect_discord_py` (it sets
``discord.http.Route.BASE`` and ``DiscordWebSocket.DEFAULT_GATEWAY`` and restores them), or
in another process through the bot's own settings and the printed URLs.

Run it alone with ``python -m tests.fakes.discord --port 8901 --seed [--shards N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator
from types import TracebackType
from typing import Self

from aiohttp import web

from tests.fakes.discord_control import DiscordControl
from tests.fakes.discord_control_http import ControlRoutes
from tests.fakes.discord_models import (
    FakeAttachment,
    FakeChannel,
    FakeGuild,
    FakeInteraction,
    FakeInteractionResponse,
    FakeMessage,
    FakeRequest,
    FakeUser,
)
from tests.fakes.discord_state import (
    ACK_DEADLINE_SECONDS,
    DEFAULT_APPLICATION_ID,
    DEFAULT_TOKEN,
    HEARTBEAT_INTERVAL_SECONDS,
    MAX_REQUEST_BYTES,
    TOKEN_LIFETIME_SECONDS,
)

__all__ = [
    "FakeAttachment",
    "FakeChannel",
    "FakeDiscord",
    "FakeGuild",
    "FakeInteraction",
    "FakeInteractionResponse",
    "FakeMessage",
    "FakeRequest",
    "FakeUser",
]

log = logging.getLogger(__name__)


class FakeDiscord(DiscordControl):
    """Discord on a real socket. Use ``async with FakeDiscord() as fake:``.

    ``ack_deadline`` is Discord's 3 s to answer an interaction, ``token_lifetime`` the 15
    minutes an interaction token lasts; both are measured on the fake clock
    (:meth:`advance_clock`). ``heartbeat_interval`` is the HELLO interval in seconds.
    ``privileged_intents`` says whether the application may ask for members, presences and
    message content (Discord closes the gateway with 4014 otherwise). ``shard_count`` is how
    many gateway shards the application has (``/gateway/bot`` reports it); each session then
    IDENTIFYs with ``shard: [id, shard_count]`` and gets only its shard's guilds and events.
    """

    _runner: web.AppRunner | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on ``host:port`` (port 0 picks a free one)."""
        if self._runner is not None:
            raise RuntimeError("FakeDiscord is already started")
        app = web.Application(client_max_size=2 * MAX_REQUEST_BYTES)
        app.router.add_get("/gateway", self.gateway.handle)
        app.router.add_route("*", "/api/v{version:\\d+}/{tail:.*}", self.rest.handle)
        app.router.add_get(
            "/attachments/{channel_id}/{attachment_id}/{filename}", self.rest.cdn_file
        )
        ControlRoutes(self).register(app.router)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        self.port = int(self._runner.addresses[0][1])
        log.info("fake Discord listening on %s", self.base_url)

    async def close(self) -> None:
        """Close every gateway connection and the server; safe to call twice."""
        self.cancel_ack_timers()
        await self.gateway.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @contextlib.contextmanager
    def redirect_discord_py(self) -> Iterator[None]:
        """Point discord.py's REST and gateway at this fake; restore the originals on exit."""
        import yarl
        from discord.gateway import DiscordWebSocket
        from discord.http import Route

        old_base, old_gateway = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
        Route.BASE = self.api_base
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)
        try:
            yield
        finally:
            Route.BASE = old_base
            DiscordWebSocket.DEFAULT_GATEWAY = old_gateway


async def _serve(args: argparse.Namespace) -> None:
    fake = FakeDiscord(
        token=args.token,
        application_id=args.application_id,
        ack_deadline=args.ack_deadline,
        token_lifetime=args.token_lifetime,
        heartbeat_interval=args.heartbeat_interval,
        shard_count=args.shards,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await fake.start(args.host, args.port)
    # Parseable lines on stdout let a parent process find the URLs (and a port from --port 0).
    print(f"FAKE_DISCORD_API={fake.api_base}", flush=True)
    print(f"FAKE_DISCORD_GATEWAY={fake.gateway_url}", flush=True)
    if args.seed:
        guild = fake.add_guild()
        user = fake.add_user()
        print(f"FAKE_DISCORD_GUILD_ID={guild.id}", flush=True)
        print(f"FAKE_DISCORD_CHANNEL_ID={guild.channel_id}", flush=True)
        print(f"FAKE_DISCORD_USER_ID={user.id}", flush=True)
    try:
        await stop.wait()
    finally:
        await fake.close()


def main(argv: list[str] | None = None) -> None:
    """Run the fake until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.discord", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--application-id", type=int, default=DEFAULT_APPLICATION_ID)
    parser.add_argument(
        "--ack-deadline", type=float, default=ACK_DEADLINE_SECONDS, metavar="SECONDS"
    )
    parser.add_argument(
        "--token-lifetime", type=float, default=TOKEN_LIFETIME_SECONDS, metavar="SECONDS"
    )
    parser.add_argument(
        "--heartbeat-interval", type=float, default=HEARTBEAT_INTERVAL_SECONDS, metavar="SECONDS"
    )
    parser.add_argument(
        "--shards", type=int, default=1, metavar="N", help="gateway shards of the application"
    )
    parser.add_argument(
        "--seed", action="store_true", help="create one guild, channel and user; print their ids"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
