"""A fake Discord: a real aiohttp server on 127.0.0.1 that the real discord.py client runs against.

It serves the REST routes and the gateway discord.py 2.7 uses for a slash-command bot: login,
command sync, INTERACTION_CREATE, interaction callbacks and webhooks (edit the original
response, followups), channel messages with embeds, buttons, files and nonces, DMs. It
enforces the platform rules of /work/shared/discord-notes.md the way Discord does (status,
JSON error code, nested "Invalid Form Body" errors) and writes each breach to
:attr:`FakeDiscord.rule_violations`, so a test can assert the bot broke none.

Point discord.py at it with :meth:`FakeDiscord.redirect_discord_py` (it sets
``discord.http.Route.BASE`` and ``DiscordWebSocket.DEFAULT_GATEWAY`` and restores them), or
in another process through the bot's own settings and the printed URLs. Tests drive users
(:meth:`~FakeDiscord.invoke_slash`, :meth:`~FakeDiscord.invoke_component`), the world
(:meth:`~FakeDiscord.remove_channel`, :meth:`~FakeDiscord.block_dms`, ...) and faults
(:meth:`~FakeDiscord.fail_next`, :meth:`~FakeDiscord.drop_gateway`,
:meth:`~FakeDiscord.advance_clock`); a process outside uses ``/_control/...``.

Run it alone with ``python -m tests.fakes.discord --port 8901 --seed``. What it does and does
not enforce is listed in docs/testing-fake-discord.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import math
import secrets
import signal
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self

import aiohttp
from aiohttp import web

from tests.fakes.discord_models import (
    BOT_PERMISSIONS,
    CHANNEL_DM,
    CHANNEL_GUILD_TEXT,
    DEFAULT_UPLOAD_LIMIT,
    DENIED_BITS,
    FLAG_COMPONENTS_V2,
    FLAG_EPHEMERAL,
    FLAG_LOADING,
    FLAG_SUPPRESS_EMBEDS,
    FLAG_SUPPRESS_NOTIFICATIONS,
    MANAGE_MESSAGES,
    MEMBER_PERMISSIONS,
    FakeAttachment,
    FakeChannel,
    FakeGuild,
    FakeInteraction,
    FakeInteractionResponse,
    FakeMessage,
    FakeRequest,
    FakeUser,
    Snowflakes,
    channel_json,
    iso,
    iter_components,
    member_json,
    new_interaction_token,
    role_json,
)
from tests.fakes.discord_rules import (
    FormError,
    check_commands,
    check_message,
    check_modal,
    invalid_form_body,
    pinged_by,
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

DEFAULT_TOKEN = "test-discord-token"
DEFAULT_APPLICATION_ID = 1_300_000_000_000_000_001
DEFAULT_OWNER_ID = 1_300_000_000_000_000_101
MEMBER_PERMISSIONS_STR = str(MEMBER_PERMISSIONS)
API_VERSION = 10
MAX_REQUEST_BYTES = 25 * 1024 * 1024
NONCE_WINDOW_SECONDS = 300.0
DAILY_COMMAND_CREATES = 200
EVENT_LOG_LIMIT = 10_000

# Gateway intents (https://discord.com/developers/docs/events/gateway#gateway-intents).
INTENT_GUILDS = 1 << 0
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_PRESENCES = 1 << 8
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = INTENT_GUILD_MEMBERS | INTENT_GUILD_PRESENCES | INTENT_MESSAGE_CONTENT

_APP_COMMAND = 2
_COMPONENT = 3
_AUTOCOMPLETE = 4
_CHOICES_MAX = 25
_CHOICE_NAME_MAX = 100
_OPTION_TYPES: dict[type, int] = {str: 3, int: 4, bool: 5, float: 10}
_TRUE = ("1", "true", "True")

Handler = Callable[["_Call"], Awaitable[web.Response]]


class _Rejected(Exception):
    """Raised inside a handler to answer with an error (and maybe record a violation)."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


@dataclass
class _Fault:
    remaining: int
    status: int
    method: str | None
    path_contains: str | None
    retry_after: float
    code: int | None
    # A delay fault carries out the request and answers this many seconds late.
    delay: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        return (
            self.remaining > 0
            and (self.method is None or self.method.upper() == method)
            and (self.path_contains is None or self.path_contains in path)
        )


@dataclass(eq=False)
class _Connection:
    """One websocket; frames go out in order through ``outbox`` and one writer task."""

    ws: web.WebSocketResponse
    outbox: asyncio.Queue[dict[str, Any] | None] = field(default_factory=asyncio.Queue)
    session: _Session | None = None
    writer: asyncio.Task[None] | None = None


@dataclass(eq=False)
class _Session:
    """A gateway session: it outlives its connection so a RESUME can replay what was missed."""

    id: str
    intents: int
    shard: tuple[int, int] | None
    seq: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    conn: _Connection | None = None
    resumable: bool = True
    ready: bool = False


@dataclass
class _Call:
    """What a REST handler gets."""

    request: web.Request
    record: FakeRequest
    params: dict[str, str]
    body: Any
    files: list[FakeAttachment]

    @property
    def query(self) -> dict[str, str]:
        return self.record.query


class FakeDiscord:
    """Discord on a real socket. Use ``async with FakeDiscord() as fake:``.

    ``ack_deadline`` is Discord's 3 s to answer an interaction, ``token_lifetime`` the 15
    minutes an interaction token lasts; both are measured on the fake clock
    (:meth:`advance_clock`). ``heartbeat_interval`` is the HELLO interval in seconds.
    ``privileged_intents`` says whether the application may ask for members, presences and
    message content (Discord closes the gateway with 4014 otherwise).
    """

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        application_id: int = DEFAULT_APPLICATION_ID,
        bot_user_id: int | None = None,
        ack_deadline: float = 3.0,
        token_lifetime: float = 900.0,
        heartbeat_interval: float = 41.25,
        privileged_intents: bool = False,
        bot_name: str = "Stemcord",
    ) -> None:
        self.token = token
        self.application_id = application_id
        # Modern applications share one id between the application and its bot user.
        self.bot_user_id = application_id if bot_user_id is None else bot_user_id
        self.ack_deadline = ack_deadline
        self.token_lifetime = token_lifetime
        self.heartbeat_interval = heartbeat_interval
        self.privileged_intents = privileged_intents
        self.owner_id = DEFAULT_OWNER_ID

        self.users: dict[int, FakeUser] = {}
        self.guilds: dict[int, FakeGuild] = {}
        self.channels: dict[int, FakeChannel] = {}
        self.messages: dict[int, list[FakeMessage]] = {}
        self.interactions: dict[int, FakeInteraction] = {}
        self.requests: list[FakeRequest] = []
        self.synced_commands: dict[int | None, list[dict[str, Any]]] = {}
        self.rule_violations: list[str] = []
        self.unknown_routes: list[str] = []
        self.nonce_replays = 0
        self.identify_count = 0
        self.resume_count = 0
        # Names of the dispatches sent again after a RESUME, in order.
        self.replayed_events: list[str] = []

        self._ids = Snowflakes()
        self._clock_offset = 0.0
        self._messages_by_id: dict[int, FakeMessage] = {}
        self._tokens: dict[str, FakeInteraction] = {}
        self._nonces: dict[tuple[int, str], FakeMessage] = {}
        self._cdn: dict[int, FakeAttachment] = {}
        self._command_creates: dict[int | None, list[datetime]] = {}
        self._faults: list[_Fault] = []
        self._delays: list[_Fault] = []
        self._sessions: dict[str, _Session] = {}
        self._session: _Session | None = None
        self._connections: set[_Connection] = set()
        self._ack_timers: set[asyncio.TimerHandle] = set()
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._routes = self._build_routes()

        self.users[self.bot_user_id] = FakeUser(self.bot_user_id, bot_name, bot=True)
        self.users[self.owner_id] = FakeUser(self.owner_id, "owner")

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on ``host:port`` (port 0 picks a free one)."""
        if self._runner is not None:
            raise RuntimeError("FakeDiscord is already started")
        app = web.Application(client_max_size=2 * MAX_REQUEST_BYTES)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/api/v{version:\\d+}/{tail:.*}", self._api)
        app.router.add_get("/attachments/{channel_id}/{attachment_id}/{filename}", self._cdn_file)
        app.router.add_post("/_control/guilds", self._control_guilds)
        app.router.add_post("/_control/slash", self._control_slash)
        app.router.add_post("/_control/component", self._control_component)
        app.router.add_get("/_control/messages", self._control_messages)
        app.router.add_get("/_control/state", self._control_state)
        app.router.add_post("/_control/faults", self._control_faults)
        app.router.add_post("/_control/drop_gateway", self._control_drop_gateway)
        app.router.add_post("/_control/clock", self._control_clock)
        app.router.add_post("/_control/channels/{channel_id}/{action}", self._control_channel)
        app.router.add_post("/_control/users/{user_id}/block_dms", self._control_block_dms)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        self._port = int(self._runner.addresses[0][1])
        log.info("fake Discord listening on %s", self.base_url)

    async def close(self) -> None:
        """Close every gateway connection and the server; safe to call twice."""
        for timer in self._ack_timers:
            timer.cancel()
        self._ack_timers.clear()
        for conn in list(self._connections):
            if conn.session is not None:
                conn.session.conn = None
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1001, message=b"fake Discord is closing")
            if conn.writer is not None:
                conn.writer.cancel()
                await asyncio.gather(conn.writer, return_exceptions=True)
        self._connections.clear()
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

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``, once started."""
        if self._port is None:
            raise RuntimeError("FakeDiscord is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_base(self) -> str:
        """The value for ``discord.http.Route.BASE``."""
        return f"{self.base_url}/api/v{API_VERSION}"

    @property
    def gateway_url(self) -> str:
        """The value for ``DiscordWebSocket.DEFAULT_GATEWAY`` (wrap it in ``yarl.URL``)."""
        return f"ws://127.0.0.1:{self._port}/gateway"

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

    # -- clock -----------------------------------------------------------------------------

    def now(self) -> datetime:
        """The fake clock: real UTC time plus every :meth:`advance_clock`."""
        return datetime.now(UTC) + timedelta(seconds=self._clock_offset)

    def advance_clock(self, seconds: float) -> None:
        """Move the fake clock forward (token expiry, ack deadline, nonce window)."""
        self._clock_offset += seconds
        for interaction in self.interactions.values():
            self._check_ack(interaction)
        self._notify()

    # -- the world ---------------------------------------------------------------------------

    def add_user(self, user_id: int | None = None, name: str = "singer") -> FakeUser:
        """A user (a member of every fake guild)."""
        uid = user_id if user_id is not None else self._ids.next(self.now())
        user = self.users.get(uid)
        if user is None:
            user = self.users[uid] = FakeUser(uid, name)
        return user

    def add_guild(
        self,
        guild_id: int | None = None,
        *,
        name: str = "Karaoke Club",
        channels: list[int] | None = None,
        owner_id: int | None = None,
    ) -> FakeGuild:
        """A guild the bot is in, with text ``channels`` (ids; default one new channel).

        If a bot is connected, it gets GUILD_CREATE as if it had just been added.
        """
        gid = guild_id if guild_id is not None else self._ids.next(self.now())
        if gid in self.guilds:
            raise ValueError(f"guild {gid} exists")
        ids = list(channels) if channels else [self._ids.next(self.now())]
        owner = owner_id if owner_id is not None else self.owner_id
        if owner not in self.users:
            self.add_user(owner, "owner")
        guild = FakeGuild(
            id=gid,
            name=name,
            owner_id=owner,
            channels=[],
            bot_role_id=self._ids.next(self.now()),
            joined_at=self.now(),
        )
        self.guilds[gid] = guild
        for index, cid in enumerate(ids):
            self._new_channel(guild, cid, "karaoke" if index == 0 else f"karaoke-{index + 1}")
        if self._session is not None and self._session.ready:
            self._dispatch("GUILD_CREATE", self._guild_create(guild), intent=INTENT_GUILDS)
        return guild

    def add_channel(self, guild_id: int, channel_id: int | None = None, name: str = "") -> int:
        """Another text channel in a guild (CHANNEL_CREATE to a connected bot)."""
        guild = self.guilds[guild_id]
        cid = channel_id if channel_id is not None else self._ids.next(self.now())
        channel = self._new_channel(guild, cid, name or f"karaoke-{len(guild.channels) + 1}")
        self._dispatch("CHANNEL_CREATE", self._channel_json(channel), intent=INTENT_GUILDS)
        return cid

    def remove_channel(self, channel_id: int) -> None:
        """Delete a channel: later requests to it get 404 Unknown Channel (10003)."""
        channel = self.channels[channel_id]
        channel.removed = True
        if channel.guild_id is not None:
            self._dispatch("CHANNEL_DELETE", self._channel_json(channel), intent=INTENT_GUILDS)

    def deny_channel(self, channel_id: int) -> None:
        """Take the bot's Send Messages away there: sending gets 403 Missing Permissions (50013).

        A connected bot gets CHANNEL_UPDATE with the overwrite, so ``permissions_for`` knows.
        Interaction responses still work there, as on Discord.
        """
        channel = self.channels[channel_id]
        channel.denied = True
        self._dispatch("CHANNEL_UPDATE", self._channel_json(channel), intent=INTENT_GUILDS)

    def add_role(self, guild_id: int, name: str = "karaoke", permissions: int = 0) -> int:
        """A role in a guild (GUILD_ROLE_CREATE to a connected bot); returns its id."""
        guild = self.guilds[guild_id]
        role_id = self._ids.next(self.now())
        guild.roles[role_id] = (name, permissions)
        self._dispatch(
            "GUILD_ROLE_CREATE",
            {"guild_id": str(guild_id), "role": role_json(role_id, name, permissions)},
            intent=INTENT_GUILDS,
        )
        return role_id

    def give_role(self, guild_id: int, user_id: int, role_id: int) -> None:
        """The member now holds the role (seen in their next interactions)."""
        guild = self.guilds[guild_id]
        if role_id not in guild.roles:
            raise ValueError(f"guild {guild_id} has no role {role_id}")
        self.add_user(user_id)
        held = guild.member_roles.setdefault(user_id, [])
        if role_id not in held:
            held.append(role_id)

    def take_role(self, guild_id: int, user_id: int, role_id: int) -> None:
        """The member no longer holds the role (seen in their next interactions)."""
        held = self.guilds[guild_id].member_roles.get(user_id, [])
        if role_id in held:
            held.remove(role_id)

    def block_dms(self, user_id: int) -> None:
        """The user closed DMs: sending to their DM channel gets 403 (50007)."""
        self.add_user(user_id).dms_blocked = True

    def add_message(
        self,
        channel_id: int,
        *,
        author_id: int,
        content: str = "",
        attachments: list[dict[str, Any]] | None = None,
    ) -> FakeMessage:
        """A message a user posted (e.g. the target of a message context-menu command)."""
        channel = self.channels[channel_id]
        self.add_user(author_id)
        message = FakeMessage(
            id=self._ids.next(self.now()),
            channel_id=channel_id,
            guild_id=channel.guild_id,
            author_id=author_id,
            content=content,
            created_at=self.now(),
            attachments=[self._offered_attachment(channel_id, a) for a in attachments or []],
        )
        self._store_message(message)
        return message

    # -- users act -------------------------------------------------------------------------

    async def invoke_slash(
        self,
        *,
        guild_id: int,
        channel_id: int,
        user_id: int,
        name: str,
        options: list[dict[str, object]] | None = None,
        attachments: list[dict[str, object]] | None = None,
        permissions: str = MEMBER_PERMISSIONS_STR,
        locale: str = "en-US",
    ) -> FakeInteraction:
        """A user runs ``/name``: dispatch a complete APPLICATION_COMMAND interaction.

        ``options`` are ``{"name", "value"}`` (``type`` is taken from the synced command, or
        from the value's Python type). ``attachments`` are ``{"filename", "size"?,
        "content_type"?, "data"?: bytes, "url"?}``; each gets an id, a URL on this fake
        (serving ``data``) and a place in ``data.resolved.attachments``, and an attachment
        option of the command without a value is bound to them in order.

        A subcommand is named by its path: ``name="karaoke settings show"``; ``options``
        are then the subcommand's own, and are nested as Discord nests them.
        """
        guild, channel = self._guild_channel(guild_id, channel_id)
        user = self.add_user(user_id)
        top, *path = name.split()
        command, scope = self._find_command(guild_id, top, kind=1)
        holder, nesting = self._subcommand_path(command, path)
        offered = [self._offered_attachment(channel_id, dict(a)) for a in attachments or []]
        opts = self._typed_options(holder, [dict(o) for o in options or []], offered)
        resolved = self._resolved_options(guild, opts)
        for part, kind in reversed(nesting):
            opts = [{"name": part, "type": kind, "options": opts}]
        data: dict[str, Any] = {
            "id": str(command["id"]) if command else str(self._ids.next(self.now())),
            "name": top,
            "type": 1,
            "options": opts,
        }
        if scope is not None:
            data["guild_id"] = str(scope)
        if offered:
            resolved["attachments"] = {str(a.id): a.as_json() for a in offered}
        if resolved:
            data["resolved"] = resolved
        return self._interact(_APP_COMMAND, guild, channel, user, data, permissions, locale)

    async def invoke_autocomplete(
        self,
        *,
        guild_id: int,
        channel_id: int,
        user_id: int,
        name: str,
        focused: str,
        typed: str = "",
        options: list[dict[str, object]] | None = None,
        permissions: str = MEMBER_PERMISSIONS_STR,
    ) -> FakeInteraction:
        """A user types ``typed`` into option ``focused`` of ``/name``: an autocomplete request.

        The bot answers with type 8 and up to 25 choices (in ``interaction.choices``).
        """
        guild, channel = self._guild_channel(guild_id, channel_id)
        user = self.add_user(user_id)
        top, *path = name.split()
        command, scope = self._find_command(guild_id, top, kind=1)
        holder, nesting = self._subcommand_path(command, path)
        given = [dict(o) for o in options or []]
        given.append({"name": focused, "value": typed, "type": 3, "focused": True})
        opts = self._typed_options(holder, given, [])
        for part, kind in reversed(nesting):
            opts = [{"name": part, "type": kind, "options": opts}]
        data: dict[str, Any] = {
            "id": str(command["id"]) if command else str(self._ids.next(self.now())),
            "name": top,
            "type": 1,
            "options": opts,
        }
        if scope is not None:
            data["guild_id"] = str(scope)
        return self._interact(_AUTOCOMPLETE, guild, channel, user, data, permissions, "en-US")

    async def invoke_message_context(
        self,
        *,
        guild_id: int,
        channel_id: int,
        user_id: int,
        name: str,
        message_id: int,
        permissions: str = MEMBER_PERMISSIONS_STR,
        locale: str = "en-US",
    ) -> FakeInteraction:
        """A user picks the message context-menu command ``name`` on ``message_id``."""
        guild, channel = self._guild_channel(guild_id, channel_id)
        user = self.add_user(user_id)
        target = self._messages_by_id.get(message_id)
        if target is None or target.channel_id != channel_id or target.deleted:
            raise ValueError(f"no message {message_id} in channel {channel_id}")
        command, scope = self._find_command(guild_id, name, kind=3)
        data: dict[str, Any] = {
            "id": str(command["id"]) if command else str(self._ids.next(self.now())),
            "name": name,
            "type": 3,
            "target_id": str(message_id),
            "resolved": {"messages": {str(message_id): self._message_json(target)}},
        }
        if scope is not None:
            data["guild_id"] = str(scope)
        return self._interact(_APP_COMMAND, guild, channel, user, data, permissions, locale)

    async def invoke_component(
        self,
        *,
        guild_id: int,
        channel_id: int,
        user_id: int,
        message_id: int,
        custom_id: str,
        component_type: int = 2,
        values: list[str] | None = None,
        permissions: str = MEMBER_PERMISSIONS_STR,
    ) -> FakeInteraction:
        """A user presses a button (or picks from a select) on one of the bot's messages."""
        guild, channel = self._guild_channel(guild_id, channel_id)
        user = self.add_user(user_id)
        message = self._messages_by_id.get(message_id)
        if message is None or message.channel_id != channel_id or message.deleted:
            raise ValueError(f"no message {message_id} in channel {channel_id}")
        found = [c for c in iter_components(message.components) if c.get("custom_id") == custom_id]
        if not found:
            raise ValueError(f"message {message_id} has no component {custom_id!r}")
        if found[0].get("disabled"):
            raise ValueError(f"component {custom_id!r} is disabled")
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": component_type}
        if values is not None:
            data["values"] = values
        return self._interact(
            _COMPONENT, guild, channel, user, data, permissions, "en-US", message=message
        )

    # -- observation -----------------------------------------------------------------------

    def channel_messages(self, channel_id: int) -> list[FakeMessage]:
        """Messages in a channel in creation order (deleted ones included, flagged)."""
        return list(self.messages.get(channel_id, []))

    def dm_messages(self, user_id: int) -> list[FakeMessage]:
        """Messages in the bot's DM channel with ``user_id``."""
        user = self.users.get(user_id)
        if user is None or user.dm_channel_id is None:
            return []
        return self.channel_messages(user.dm_channel_id)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until ``predicate()`` is true.

        It is re-checked after every change to the fake, and every 20 ms for predicates that
        look at something else (the bot's own state).
        """
        async with asyncio.timeout(timeout):
            while not predicate():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), 0.02)

    async def wait_until_ready(self, timeout: float = 10.0) -> None:
        """Wait until a client has a live session that was sent READY and its GUILD_CREATEs.

        Frames on one socket arrive in order, so an interaction invoked after this reaches
        the client after its guilds; to inspect the client's cache, also wait for its own
        ``wait_until_ready()``.
        """

        def ready() -> bool:
            session = self._session
            return session is not None and session.ready and session.conn is not None

        try:
            await self.wait_until(ready, timeout)
        except TimeoutError:
            raise TimeoutError(f"no client became ready within {timeout:g} s") from None

    async def wait_for_message(
        self,
        channel_id: int,
        predicate: Callable[[FakeMessage], bool] = lambda m: True,
        timeout: float = 10.0,
    ) -> FakeMessage:
        """The first live message in the channel matching ``predicate`` (edits re-check it)."""
        found: list[FakeMessage] = []

        def match() -> bool:
            for message in self.messages.get(channel_id, []):
                if not message.deleted and predicate(message):
                    found.append(message)
                    return True
            return False

        try:
            await self.wait_until(match, timeout)
        except TimeoutError:
            seen = [(m.id, m.content[:60]) for m in self.messages.get(channel_id, [])]
            raise TimeoutError(
                f"no matching message in channel {channel_id} within {timeout:g} s; saw {seen}"
            ) from None
        return found[0]

    # -- fault injection -------------------------------------------------------------------

    def fail_next(
        self,
        n: int,
        status: int,
        *,
        method: str | None = None,
        path_contains: str | None = None,
        retry_after: float = 0.05,
        code: int | None = None,
    ) -> None:
        """Answer the next ``n`` matching REST requests with ``status``, doing nothing else.

        A 429 looks like Discord's own (JSON body with ``retry_after``, a ``Via`` header and
        ``X-RateLimit-*`` headers), so discord.py waits and retries instead of treating it
        as a Cloudflare ban. ``path_contains`` matches the path after ``/api/v10``.
        """
        self._faults.append(_Fault(n, status, method, path_contains, retry_after, code))

    def delay_next(
        self, n: int, seconds: float, *, method: str | None = None, path_contains: str | None = None
    ) -> None:
        """Carry out the next ``n`` matching REST requests, then answer ``seconds`` late.

        The request's effect (a posted message, say) is visible at once; only the answer is
        late — the window in which a client that dies has acted without knowing it.
        """
        self._delays.append(_Fault(n, 200, method, path_contains, 0.0, None, delay=seconds))

    async def drop_gateway(self, *, resumable: bool = True) -> None:
        """Close the bot's websocket with 4000.

        The client RESUMEs and gets every dispatch it missed replayed (an interaction invoked
        meanwhile included; see :attr:`replayed_events`). With ``resumable=False`` its RESUME
        is answered "invalid session" and it IDENTIFYs again; until that new session is
        ready, ``invoke_*`` raise ``RuntimeError`` and other dispatches are dropped, as
        Discord drops them.
        """
        session = self._session
        conn = session.conn if session is not None else None
        if session is None or conn is None:
            raise RuntimeError("no connected gateway session")
        session.resumable = resumable
        session.conn = None
        conn.session = None
        await conn.ws.close(code=4000, message=b"fake drop")

    # -- interactions ----------------------------------------------------------------------

    def _interact(
        self,
        kind: int,
        guild: FakeGuild,
        channel: FakeChannel,
        user: FakeUser,
        data: dict[str, Any],
        permissions: str,
        locale: str,
        *,
        message: FakeMessage | None = None,
    ) -> FakeInteraction:
        session = self._session
        if session is None or not session.resumable:
            raise RuntimeError("no gateway session to deliver the interaction to")
        iid = self._ids.next(self.now())
        token = new_interaction_token()
        payload: dict[str, Any] = {
            "id": str(iid),
            "application_id": str(self.application_id),
            "type": kind,
            "data": data,
            "guild_id": str(guild.id),
            "guild": {"id": str(guild.id), "locale": "en-US", "features": []},
            "channel_id": str(channel.id),
            "channel": self._channel_json(channel, permissions=int(permissions)),
            "member": member_json(
                user,
                roles=guild.member_roles.get(user.id, []),
                joined_at=guild.joined_at,
                permissions=permissions,
            ),
            "token": token,
            "version": 1,
            "app_permissions": str(self._bot_permissions(channel)),
            "locale": locale,
            "guild_locale": "en-US",
            "entitlements": [],
            "entitlement_sku_ids": [],
            "authorizing_integration_owners": {"0": str(guild.id)},
            "context": 0,
            "attachment_size_limit": guild.upload_limit,
        }
        if message is not None:
            payload["message"] = self._message_json(message, gateway=True)
        interaction = FakeInteraction(
            id=iid,
            token=token,
            type=kind,
            guild_id=guild.id,
            channel_id=channel.id,
            user_id=user.id,
            payload=payload,
            created_at=self.now(),
            name=data.get("name"),
            custom_id=data.get("custom_id"),
            message_id=None if message is None else message.id,
        )
        self.interactions[iid] = interaction
        self._tokens[token] = interaction
        self._dispatch("INTERACTION_CREATE", payload)
        timer = asyncio.get_running_loop().call_later(
            self.ack_deadline + 0.01, self._check_ack, interaction
        )
        self._ack_timers.add(timer)
        self._notify()
        return interaction

    def _check_ack(self, interaction: FakeInteraction) -> None:
        if interaction.acked or interaction.expired:
            return
        age = (self.now() - interaction.created_at).total_seconds()
        if age >= self.ack_deadline:
            interaction.expired = True
            self._violation(
                f"interaction {interaction.id} ({self._label(interaction)}) was not "
                f"acknowledged within {self.ack_deadline:g} s"
            )

    @staticmethod
    def _label(interaction: FakeInteraction) -> str:
        if interaction.name:
            return f"/{interaction.name}"
        return f"component {interaction.custom_id!r}"

    def _find_command(
        self, guild_id: int, name: str, *, kind: int
    ) -> tuple[dict[str, Any] | None, int | None]:
        for scope in (guild_id, None):
            for command in self.synced_commands.get(scope, []):
                if command["name"] == name and command.get("type", 1) == kind:
                    return command, scope
        if any(self.synced_commands.values()):
            synced = sorted(c["name"] for cs in self.synced_commands.values() for c in cs)
            raise ValueError(
                f"command {name!r} (type {kind}) is not synced for guild {guild_id}; "
                f"synced: {synced}"
            )
        return None, None

    def _typed_options(
        self,
        command: dict[str, Any] | None,
        options: list[dict[str, Any]],
        offered: list[FakeAttachment],
    ) -> list[dict[str, Any]]:
        schema = {o["name"]: o for o in (command or {}).get("options", []) if "name" in o}
        unbound = [a.id for a in offered]
        for option in options:
            spec = schema.get(str(option.get("name")))
            if command is not None and spec is None:
                raise ValueError(f"/{command['name']} has no option {option.get('name')!r}")
            if "type" not in option:
                if spec is not None:
                    option["type"] = spec["type"]
                elif "value" in option:
                    option["type"] = _OPTION_TYPES.get(type(option["value"]), 3)
            if option.get("type") == 11:
                if "value" not in option:
                    if not unbound:
                        raise ValueError(f"no attachment left for option {option['name']!r}")
                    option["value"] = unbound.pop(0)
                option["value"] = str(option["value"])
                with contextlib.suppress(ValueError):
                    unbound.remove(int(option["value"]))
        named = {o.get("name") for o in options}
        for spec in schema.values():
            if spec.get("type") == 11 and spec["name"] not in named and unbound:
                options.append({"name": spec["name"], "type": 11, "value": str(unbound.pop(0))})
        return options

    @staticmethod
    def _subcommand_path(
        command: dict[str, Any] | None, path: list[str]
    ) -> tuple[dict[str, Any] | None, list[tuple[str, int]]]:
        """The subcommand's schema and the (name, type) of each group on the way to it."""
        holder = command
        nesting: list[tuple[str, int]] = []
        for index, part in enumerate(path):
            found = next(
                (
                    o
                    for o in (holder or {}).get("options", [])
                    if o.get("name") == part and o.get("type") in (1, 2)
                ),
                None,
            )
            if command is not None and found is None:
                raise ValueError(f"/{command['name']} has no subcommand {' '.join(path)!r}")
            kind = found["type"] if found else (1 if index == len(path) - 1 else 2)
            nesting.append((part, kind))
            holder = found
        return holder, nesting

    def _resolved_options(
        self, guild: FakeGuild, options: list[dict[str, Any]]
    ) -> dict[str, dict[str, Any]]:
        """``data.resolved`` for channel (7) and role (8) options, as Discord sends it."""
        resolved: dict[str, dict[str, Any]] = {}
        for option in options:
            kind, value = option.get("type"), option.get("value")
            if kind == 7:
                channel = self.channels.get(int(str(value)))
                if channel is None or channel.guild_id != guild.id:
                    raise ValueError(f"no channel {value} in guild {guild.id}")
                option["value"] = str(value)
                body = self._channel_json(channel, permissions=MEMBER_PERMISSIONS)
                resolved.setdefault("channels", {})[str(value)] = body
            elif kind == 8:
                role = guild.roles.get(int(str(value)))
                if role is None:
                    raise ValueError(f"no role {value} in guild {guild.id}")
                option["value"] = str(value)
                body = role_json(int(str(value)), role[0], role[1])
                resolved.setdefault("roles", {})[str(value)] = body
        return resolved

    def _offered_attachment(self, channel_id: int, spec: dict[str, Any]) -> FakeAttachment:
        aid = int(spec["id"]) if "id" in spec else self._ids.next(self.now())
        filename = str(spec.get("filename", "song.mp3"))
        raw = spec.get("data", b"")
        data = raw if isinstance(raw, bytes) else str(raw).encode()
        size = spec.get("size")
        attachment = FakeAttachment(
            id=aid,
            filename=filename,
            data=data,
            content_type=str(spec.get("content_type", "audio/mpeg")),
            declared_size=int(size) if isinstance(size, int | str) else None,
        )
        attachment.url = str(spec.get("url") or self._cdn_url(channel_id, attachment))
        self._cdn[aid] = attachment
        return attachment

    def _cdn_url(self, channel_id: int, attachment: FakeAttachment) -> str:
        # Signed like Discord's CDN (ex = expiry, is = issued, hm = signature), one day.
        issued = int(self.now().timestamp())
        signature = hashlib.sha256(f"{attachment.id}:{issued}".encode()).hexdigest()
        return (
            f"{self.base_url}/attachments/{channel_id}/{attachment.id}/{attachment.filename}"
            f"?ex={issued + 86400:x}&is={issued:x}&hm={signature}&"
        )

    # -- gateway -----------------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0, autoping=True)
        await ws.prepare(request)
        conn = _Connection(ws)
        self._connections.add(conn)
        conn.writer = asyncio.create_task(self._write_frames(conn))
        try:
            if request.query.get("v", str(API_VERSION)) not in ("9", "10"):
                await ws.close(code=4012, message=b"Invalid API version.")
                return ws
            if request.query.get("encoding", "json") != "json":
                await ws.close(code=4002, message=b"Error while decoding payload.")
                return ws
            interval = int(self.heartbeat_interval * 1000)
            conn.outbox.put_nowait({"op": 10, "d": {"heartbeat_interval": interval}})
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    await self._on_frame(conn, msg.data)
                else:
                    await ws.close(code=4002, message=b"Error while decoding payload.")
        finally:
            session = conn.session
            if session is not None and session.conn is conn:
                session.conn = None
                if ws.close_code in (1000, 1001):
                    # A client that closes cleanly ends its session (Discord's rule).
                    session.resumable = False
            conn.outbox.put_nowait(None)
            self._connections.discard(conn)
            self._notify()
        return ws

    async def _write_frames(self, conn: _Connection) -> None:
        while True:
            frame = await conn.outbox.get()
            if frame is None or conn.ws.closed:
                return
            try:
                await conn.ws.send_str(json.dumps(frame))
            except (ConnectionError, RuntimeError):
                return

    async def _on_frame(self, conn: _Connection, text: str) -> None:
        try:
            frame = json.loads(text)
            op = frame["op"]
            data = frame.get("d")
        except (ValueError, KeyError, TypeError):
            await conn.ws.close(code=4002, message=b"Error while decoding payload.")
            return
        if op == 1:
            conn.outbox.put_nowait({"op": 11})
        elif op == 2:
            await self._identify(conn, data if isinstance(data, dict) else {})
        elif op == 6:
            await self._resume(conn, data if isinstance(data, dict) else {})
        elif conn.session is None and op in (3, 4, 8):
            await conn.ws.close(code=4003, message=b"Not authenticated.")
        elif op not in (3, 4, 8):
            await conn.ws.close(code=4001, message=b"Unknown opcode.")

    def _token_ok(self, token: object) -> bool:
        return token in (self.token, f"Bot {self.token}")

    async def _identify(self, conn: _Connection, data: dict[str, Any]) -> None:
        if conn.session is not None:
            await conn.ws.close(code=4005, message=b"Already authenticated.")
            return
        if not self._token_ok(data.get("token")):
            self._violation("gateway IDENTIFY with a wrong token: closed 4004")
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return
        intents = data.get("intents")
        if not isinstance(intents, int) or intents < 0:
            await conn.ws.close(code=4013, message=b"Invalid intent(s).")
            return
        if intents & PRIVILEGED_INTENTS and not self.privileged_intents:
            self._violation(f"IDENTIFY asked for privileged intents ({intents}): closed 4014")
            await conn.ws.close(code=4014, message=b"Disallowed intent(s).")
            return
        raw_shard = data.get("shard")
        shard: tuple[int, int] | None = None
        if raw_shard is not None:
            shard = (int(raw_shard[0]), int(raw_shard[1]))
            if not 0 <= shard[0] < shard[1]:
                await conn.ws.close(code=4010, message=b"Invalid shard.")
                return
        if self._session is not None:
            # A new session for the same shard replaces the old one (it can no longer resume).
            self._session.resumable = False
        session = _Session(id=secrets.token_hex(16), intents=intents, shard=shard, conn=conn)
        conn.session = session
        self._sessions[session.id] = session
        self._session = session
        self.identify_count += 1
        guilds = [g for g in self.guilds.values() if self._in_shard(g.id, shard)]
        self._send_dispatch(session, "READY", self._ready(session, guilds))
        if intents & INTENT_GUILDS:
            for guild in guilds:
                self._send_dispatch(session, "GUILD_CREATE", self._guild_create(guild))
        session.ready = True
        self._notify()

    async def _resume(self, conn: _Connection, data: dict[str, Any]) -> None:
        if not self._token_ok(data.get("token")):
            self._violation("gateway RESUME with a wrong token: closed 4004")
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return
        session = self._sessions.get(str(data.get("session_id")))
        seq = data.get("seq")
        oldest = session.events[0]["s"] if session and session.events else 1
        if (
            session is None
            or not session.resumable
            or session is not self._session
            or not isinstance(seq, int)
            or seq < oldest - 1
        ):
            conn.outbox.put_nowait({"op": 9, "d": False})
            return
        if session.conn is not None and session.conn is not conn:
            session.conn.session = None
        session.conn = conn
        conn.session = session
        for frame in session.events:
            if frame["s"] > seq:
                self.replayed_events.append(frame["t"])
                conn.outbox.put_nowait(frame)
        self.resume_count += 1
        self._send_dispatch(session, "RESUMED", {"_trace": ["fake-discord"]})
        self._notify()

    @staticmethod
    def _in_shard(guild_id: int, shard: tuple[int, int] | None) -> bool:
        return shard is None or (guild_id >> 22) % shard[1] == shard[0]

    def _send_dispatch(self, session: _Session, event: str, data: dict[str, Any]) -> None:
        session.seq += 1
        frame = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.events.append(frame)
        if len(session.events) > EVENT_LOG_LIMIT:
            del session.events[: len(session.events) - EVENT_LOG_LIMIT]
        if session.conn is not None:
            session.conn.outbox.put_nowait(frame)

    def _dispatch(self, event: str, data: dict[str, Any], *, intent: int | None = None) -> None:
        """Send to the current session, or keep it for a RESUME if it is disconnected."""
        session = self._session
        if session is None or not session.resumable or not session.ready:
            return
        if intent is not None and not session.intents & intent:
            return
        guild_id = data.get("guild_id")
        if guild_id is not None and not self._in_shard(int(guild_id), session.shard):
            return
        self._send_dispatch(session, event, data)

    def _ready(self, session: _Session, guilds: list[FakeGuild]) -> dict[str, Any]:
        bot = self.users[self.bot_user_id].as_json()
        bot.update({"verified": True, "mfa_enabled": False, "email": None, "locale": "en-US"})
        body: dict[str, Any] = {
            "v": API_VERSION,
            "user": bot,
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(self.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "user_settings": {},
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["local"],
            "_trace": ["fake-discord"],
        }
        if session.shard is not None:
            body["shard"] = list(session.shard)
        return body

    def _guild_create(self, guild: FakeGuild) -> dict[str, Any]:
        body = self._guild_json(guild)
        bot = self.users[self.bot_user_id]
        body.update(
            {
                "joined_at": iso(guild.joined_at),
                "large": False,
                "unavailable": False,
                "member_count": len(self.users),
                "voice_states": [],
                "members": [member_json(bot, roles=[guild.bot_role_id], joined_at=guild.joined_at)],
                "channels": [
                    self._channel_json(self.channels[c])
                    for c in guild.channels
                    if not self.channels[c].removed
                ],
                "threads": [],
                "presences": [],
                "stage_instances": [],
                "guild_scheduled_events": [],
                "soundboard_sounds": [],
                "embedded_activities": [],
                "application_command_counts": {},
                "lazy": True,
            }
        )
        return body

    # -- REST: plumbing ----------------------------------------------------------------------

    def _build_routes(self) -> list[tuple[str, str, Handler, bool]]:
        """(method, path template, handler, needs the bot token)."""
        app = "{app}"
        return [
            ("GET", "/users/@me", self._get_me, True),
            ("GET", "/users/{user_id}", self._get_user, True),
            ("POST", "/users/@me/channels", self._create_dm, True),
            ("GET", "/oauth2/applications/@me", self._get_application, True),
            ("GET", "/applications/@me", self._get_application, True),
            ("GET", "/gateway", self._get_gateway, False),
            ("GET", "/gateway/bot", self._get_gateway_bot, True),
            ("GET", f"/applications/{app}/commands", self._get_commands, True),
            ("PUT", f"/applications/{app}/commands", self._put_commands, True),
            ("GET", f"/applications/{app}/guilds/{{guild_id}}/commands", self._get_commands, True),
            ("PUT", f"/applications/{app}/guilds/{{guild_id}}/commands", self._put_commands, True),
            ("POST", "/interactions/{interaction_id}/{token}/callback", self._callback, False),
            ("POST", "/webhooks/{app}/{token}", self._followup, False),
            ("GET", "/webhooks/{app}/{token}/messages/{message_id}", self._get_webhook_msg, False),
            (
                "PATCH",
                "/webhooks/{app}/{token}/messages/{message_id}",
                self._edit_webhook_msg,
                False,
            ),
            (
                "DELETE",
                "/webhooks/{app}/{token}/messages/{message_id}",
                self._del_webhook_msg,
                False,
            ),
            ("GET", "/channels/{channel_id}", self._get_channel, True),
            ("GET", "/channels/{channel_id}/messages", self._get_history, True),
            ("POST", "/channels/{channel_id}/messages", self._post_message, True),
            ("GET", "/channels/{channel_id}/messages/{message_id}", self._get_message, True),
            ("PATCH", "/channels/{channel_id}/messages/{message_id}", self._edit_message, True),
            ("DELETE", "/channels/{channel_id}/messages/{message_id}", self._delete_message, True),
            ("POST", "/channels/{channel_id}/typing", self._typing, True),
            ("GET", "/guilds/{guild_id}", self._get_guild, True),
            ("GET", "/guilds/{guild_id}/channels", self._get_guild_channels, True),
            ("GET", "/guilds/{guild_id}/members/{user_id}", self._get_member, True),
        ]

    def _match(self, method: str, path: str) -> tuple[Handler, bool, dict[str, str]] | str | None:
        """The route for ``method path``; the allowed method (a string) if only the verb is wrong.

        ``{token}`` matches any segment, ``{message_id}`` an id or ``@original``, every other
        placeholder an id; literal routes (``/users/@me``) are listed before their patterns.
        """
        parts = path.strip("/").split("/")
        wrong_method: str | None = None
        for verb, template, handler, auth in self._routes:
            tparts = template.strip("/").split("/")
            if len(tparts) != len(parts):
                continue
            params: dict[str, str] = {}
            for t, p in zip(tparts, parts, strict=True):
                if not (t.startswith("{") and t.endswith("}")):
                    if t != p:
                        break
                    continue
                name = t[1:-1]
                if name == "token" or p.isdigit() or (name == "message_id" and p == "@original"):
                    params[name] = p
                else:
                    break
            else:
                if verb == method:
                    return handler, auth, params
                wrong_method = verb
        return wrong_method

    async def _api(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        record = FakeRequest(
            method=request.method,
            path=path,
            query=dict(request.query),
            json=None,
            headers=dict(request.headers),
            at=self.now(),
        )
        self.requests.append(record)
        try:
            response = await self._handle(request, record, path)
        except _Rejected as rejected:
            response = rejected.response
        record.status = response.status
        self._notify()
        return response

    async def _handle(self, request: web.Request, record: FakeRequest, path: str) -> web.Response:
        if request.match_info["version"] != str(API_VERSION):
            return self._unknown_route(request.method, path)
        route = self._match(request.method, path)
        if route is None:
            return self._unknown_route(request.method, path)
        if isinstance(route, str):
            self.unknown_routes.append(f"{request.method} {path}")
            return _json(405, {"message": "405: Method Not Allowed", "code": 0})
        handler, needs_auth, params = route
        body, files = await self._read_body(request)
        record.json, record.files = body, files
        if needs_auth and request.headers.get("Authorization") != f"Bot {self.token}":
            return self._reject(
                401, 0, "401: Unauthorized", f"{request.method} {path}: no valid bot token"
            )
        fault = next((f for f in self._faults if f.matches(request.method, path)), None)
        if fault is not None:
            fault.remaining -= 1
            return _fault_response(fault, path)
        delay = next((f for f in self._delays if f.matches(request.method, path)), None)
        if delay is not None:
            delay.remaining -= 1
        total = sum(f.size for f in files)
        if total > MAX_REQUEST_BYTES:
            return self._reject(
                413,
                40005,
                "Request entity too large",
                f"{request.method} {path}: {total} bytes of files is over the 25 MiB request cap",
            )
        response = await handler(_Call(request, record, params, body, files))
        if delay is not None:
            self._notify()  # the effect is visible before the late answer
            await asyncio.sleep(delay.delay)
        return response

    def _unknown_route(self, method: str, path: str) -> web.Response:
        self.unknown_routes.append(f"{method} {path}")
        return _json(404, {"message": "404: Not Found", "code": 0})

    async def _read_body(self, request: web.Request) -> tuple[Any, list[FakeAttachment]]:
        if not request.can_read_body:
            return None, []
        try:
            if request.content_type == "multipart/form-data":
                return await self._read_multipart(request)
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise _Rejected(
                self._reject(413, 40005, "Request entity too large", "request body too large")
            ) from None
        if not raw:
            return None, []
        try:
            return json.loads(raw), []
        except ValueError:
            raise _Rejected(
                self._reject(
                    400,
                    50109,
                    "The request body contains invalid JSON.",
                    f"{request.method} {request.path}: body is not JSON",
                )
            ) from None

    async def _read_multipart(self, request: web.Request) -> tuple[Any, list[FakeAttachment]]:
        body: Any = None
        files: list[FakeAttachment] = []
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, aiohttp.BodyPartReader):
                continue
            data = await part.read(decode=False)
            if part.name == "payload_json":
                try:
                    body = json.loads(data)
                except ValueError:
                    raise _Rejected(
                        self._reject(
                            400,
                            50109,
                            "The request body contains invalid JSON.",
                            "bad payload_json",
                        )
                    ) from None
            elif part.name and part.name.startswith("files[") and part.name.endswith("]"):
                index = int(part.name[6:-1])
                files.append(
                    FakeAttachment(
                        id=index,
                        filename=part.filename or f"file{index}",
                        data=bytes(data),
                        content_type=part.headers.get("Content-Type"),
                    )
                )
        return body, files

    def _violation(self, text: str) -> None:
        log.info("rule violation: %s", text)
        self.rule_violations.append(text)
        self._notify()

    def _reject(
        self, status: int, code: int, message: str, violation: str | None = None
    ) -> web.Response:
        if violation is not None:
            self._violation(f"{violation} -> {status} {code}")
        return _json(status, {"message": message, "code": code})

    def _form_errors(self, where: str, errors: list[FormError]) -> web.Response:
        text = "; ".join(e.describe() for e in errors)
        self._violation(f"{where}: {text} -> 400 50035")
        return _json(400, invalid_form_body(errors))

    def _notify(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    # -- REST: users, application, gateway ---------------------------------------------------

    async def _get_me(self, call: _Call) -> web.Response:
        body = self.users[self.bot_user_id].as_json()
        body.update({"verified": True, "mfa_enabled": False, "email": None, "locale": "en-US"})
        return _json(200, body)

    async def _get_user(self, call: _Call) -> web.Response:
        user = self.users.get(int(call.params["user_id"]))
        if user is None:
            return self._reject(404, 10013, "Unknown User")
        return _json(200, user.as_json())

    async def _get_application(self, call: _Call) -> web.Response:
        bot = self.users[self.bot_user_id]
        return _json(
            200,
            {
                "id": str(self.application_id),
                "name": bot.name,
                "icon": None,
                "description": "",
                "summary": "",
                "rpc_origins": [],
                "bot_public": False,
                "bot_require_code_grant": False,
                "bot": bot.as_json(),
                "owner": self.users[self.owner_id].as_json(),
                "team": None,
                "verify_key": "0" * 64,
                "flags": 0,
                "tags": [],
                "redirect_uris": [],
                "interactions_endpoint_url": None,
                "approximate_guild_count": len(self.guilds),
                "integration_types_config": {"0": {}},
            },
        )

    async def _get_gateway(self, call: _Call) -> web.Response:
        return _json(200, {"url": self.gateway_url})

    async def _get_gateway_bot(self, call: _Call) -> web.Response:
        limit = {"total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1}
        return _json(200, {"url": self.gateway_url, "shards": 1, "session_start_limit": limit})

    # -- REST: application commands ---------------------------------------------------------

    def _command_scope(self, call: _Call) -> int | None:
        if int(call.params["app"]) != self.application_id:
            raise _Rejected(self._reject(403, 50001, "Missing Access"))
        if "guild_id" not in call.params:
            return None
        guild_id = int(call.params["guild_id"])
        if guild_id not in self.guilds:
            raise _Rejected(self._reject(404, 10004, "Unknown Guild"))
        return guild_id

    async def _get_commands(self, call: _Call) -> web.Response:
        return _json(200, self.synced_commands.get(self._command_scope(call), []))

    async def _put_commands(self, call: _Call) -> web.Response:
        scope = self._command_scope(call)
        where = f"PUT commands ({'global' if scope is None else f'guild {scope}'})"
        errors = check_commands(call.body)
        if errors:
            return self._form_errors(where, errors)
        old = {(c["name"], c.get("type", 1)): c for c in self.synced_commands.get(scope, [])}
        new_keys = [
            (c["name"], c.get("type", 1))
            for c in call.body
            if (c["name"], c.get("type", 1)) not in old
        ]
        now = self.now()
        recent = [t for t in self._command_creates.get(scope, []) if now - t < timedelta(days=1)]
        if len(recent) + len(new_keys) > DAILY_COMMAND_CREATES:
            self._violation(
                f"{where}: over {DAILY_COMMAND_CREATES} command creations in a day -> 429 30034"
            )
            body = {
                "message": "Max number of daily application command creates has been reached (200)",
                "code": 30034,
                "retry_after": 86400.0,
                "global": False,
            }
            return _json(429, body, headers={"Via": "1.1 google", "Retry-After": "86400"})
        self._command_creates[scope] = recent + [now] * len(new_keys)
        synced: list[dict[str, Any]] = []
        for submitted in call.body:
            kind = submitted.get("type", 1)
            previous = old.get((submitted["name"], kind))
            command: dict[str, Any] = {
                "description": "",
                "options": [],
                "default_member_permissions": None,
                "dm_permission": True,
                "contexts": None,
                "integration_types": [0],
                "nsfw": False,
                "name_localizations": None,
                "description_localizations": None,
                **submitted,
                "id": previous["id"] if previous else str(self._ids.next(now)),
                "application_id": str(self.application_id),
                "version": str(self._ids.next(now)),
                "type": kind,
            }
            if scope is not None:
                command["guild_id"] = str(scope)
            synced.append(command)
        self.synced_commands[scope] = synced
        return _json(200, synced)

    # -- REST: interactions -----------------------------------------------------------------

    async def _callback(self, call: _Call) -> web.Response:
        where = f"interaction {call.params['interaction_id']} callback"
        interaction = self.interactions.get(int(call.params["interaction_id"]))
        if interaction is None or interaction.token != call.params["token"]:
            return self._reject(404, 10062, "Unknown interaction", f"{where}: unknown interaction")
        body = call.body if isinstance(call.body, dict) else {}
        rtype = body.get("type")
        data = body.get("data") if isinstance(body.get("data"), dict) else None
        now = self.now()
        response = FakeInteractionResponse(
            type=rtype if isinstance(rtype, int) else -1, data=data, at=now, accepted=False
        )
        interaction.responses.append(response)
        label = f"{where} ({self._label(interaction)}, type {rtype})"
        if interaction.acked:
            return self._reject(
                400,
                40060,
                "Interaction has already been acknowledged.",
                f"{label}: second initial response",
            )
        age = (now - interaction.created_at).total_seconds()
        if interaction.expired or age > self.ack_deadline:
            interaction.expired = True
            return self._reject(
                404,
                10062,
                "Unknown interaction",
                f"{label}: answered after {age:.2f} s (deadline {self.ack_deadline:g} s)",
            )
        is_component = interaction.type == _COMPONENT
        message: FakeMessage | None = None
        if rtype == 4:
            errors = check_message(data or {}, allow_ephemeral=True)
            if errors:
                return self._form_errors(label, [_under_data(e) for e in errors])
            self._check_upload_limit(self.channels[interaction.channel_id], call.files, label)
            message = self._build_message(interaction.channel_id, data or {}, call.files)
            self._require_content(message, label, data or {}, call.files)
            message.message_type = self._response_message_type(interaction)
        elif rtype == 5:
            flags = int((data or {}).get("flags") or 0)
            message = self._build_message(
                interaction.channel_id, {"flags": flags | FLAG_LOADING}, []
            )
            message.message_type = self._response_message_type(interaction)
        elif rtype in (6, 7) and is_component:
            target = self._messages_by_id.get(interaction.message_id or 0)
            if target is None or target.deleted:
                return self._reject(404, 10008, "Unknown Message", f"{label}: message is gone")
            if rtype == 7:
                errors = check_message(data or {}, allow_ephemeral=False)
                if errors:
                    return self._form_errors(label, [_under_data(e) for e in errors])
                self._check_upload_limit(self.channels[interaction.channel_id], call.files, label)
                self._edit(target, data or {}, call.files, label)
            interaction.original_message = target
        elif rtype == 8 and interaction.type == _AUTOCOMPLETE:
            errors = _check_choices(data)
            if errors:
                return self._form_errors(label, errors)
            interaction.choices = list((data or {}).get("choices") or [])
        elif rtype == 9:
            errors = check_modal(data)
            if errors:
                return self._form_errors(label, errors)
        else:
            errors = [
                FormError(
                    ("type",),
                    "INTERACTION_RESPONSE_TYPE_INVALID",
                    f"Response type {rtype} is not valid for this interaction",
                )
            ]
            return self._form_errors(label, errors)
        response.accepted = True
        interaction.acked_at = now
        if message is not None:
            message.interaction_id = interaction.id
            message.webhook_id = self.application_id
            interaction.ephemeral = message.ephemeral
            interaction.original_message = message
            self._store_message(message)
        self._notify()
        if call.query.get("with_response") not in _TRUE:
            return web.Response(status=204)
        result: dict[str, Any] = {
            "interaction": {
                "id": str(interaction.id),
                "type": interaction.type,
                "response_message_loading": rtype == 5,
                "response_message_ephemeral": interaction.ephemeral,
            }
        }
        shown = (
            message
            if message is not None
            else (interaction.original_message if rtype == 7 else None)
        )
        if shown is not None:
            result["interaction"]["response_message_id"] = str(shown.id)
            result["resource"] = {"type": rtype, "message": self._message_json(shown)}
        elif rtype is not None:
            result["resource"] = {"type": rtype}
        return _json(200, result)

    def _response_message_type(self, interaction: FakeInteraction) -> int:
        if interaction.type == _COMPONENT:
            return 0
        return 23 if interaction.payload["data"].get("type", 1) != 1 else 20

    def _webhook_interaction(self, call: _Call, what: str) -> FakeInteraction:
        """The interaction behind ``/webhooks/{app}/{token}``, if its token still works."""
        if int(call.params["app"]) != self.application_id:
            raise _Rejected(self._reject(404, 10015, "Unknown Webhook", f"{what}: not our app"))
        interaction = self._tokens.get(call.params["token"])
        if interaction is None:
            raise _Rejected(
                self._reject(401, 50027, "Invalid Webhook Token", f"{what}: unknown token")
            )
        where = f"{what} for interaction {interaction.id} ({self._label(interaction)})"
        age = (self.now() - interaction.created_at).total_seconds()
        if age > self.token_lifetime:
            raise _Rejected(
                self._reject(
                    401,
                    50027,
                    "Invalid Webhook Token",
                    f"{where}: token is {age:.0f} s old (lifetime {self.token_lifetime:g} s)",
                )
            )
        if not interaction.acked:
            raise _Rejected(
                self._reject(
                    404, 10015, "Unknown Webhook", f"{where}: interaction not acknowledged"
                )
            )
        return interaction

    def _webhook_message(self, interaction: FakeInteraction, message_id: str) -> FakeMessage:
        if message_id == "@original":
            message = interaction.original_message
        else:
            candidates = [*interaction.followups]
            if interaction.original_message is not None:
                candidates.append(interaction.original_message)
            message = next((m for m in candidates if m.id == int(message_id)), None)
        if message is None or message.deleted:
            raise _Rejected(self._reject(404, 10008, "Unknown Message"))
        return message

    async def _followup(self, call: _Call) -> web.Response:
        interaction = self._webhook_interaction(call, "followup")
        where = f"followup for interaction {interaction.id}"
        body = call.body if isinstance(call.body, dict) else {}
        errors = check_message(body, allow_ephemeral=True)
        if errors:
            return self._form_errors(where, errors)
        self._check_upload_limit(self.channels[interaction.channel_id], call.files, where)
        message = self._build_message(interaction.channel_id, body, call.files)
        self._require_content(message, where, body, call.files)
        message.interaction_id = interaction.id
        message.webhook_id = self.application_id
        interaction.followups.append(message)
        self._store_message(message)
        if call.query.get("wait") not in _TRUE:
            return web.Response(status=204)
        return _json(200, self._message_json(message))

    async def _get_webhook_msg(self, call: _Call) -> web.Response:
        interaction = self._webhook_interaction(call, "get webhook message")
        return _json(
            200, self._message_json(self._webhook_message(interaction, call.params["message_id"]))
        )

    async def _edit_webhook_msg(self, call: _Call) -> web.Response:
        interaction = self._webhook_interaction(call, "edit webhook message")
        message = self._webhook_message(interaction, call.params["message_id"])
        where = f"edit {call.params['message_id']} of interaction {interaction.id}"
        body = call.body if isinstance(call.body, dict) else {}
        errors = check_message(body, allow_ephemeral=True)
        if errors:
            return self._form_errors(where, errors)
        self._check_upload_limit(self.channels[interaction.channel_id], call.files, where)
        self._edit(message, body, call.files, where)
        return _json(200, self._message_json(message))

    async def _del_webhook_msg(self, call: _Call) -> web.Response:
        interaction = self._webhook_interaction(call, "delete webhook message")
        self._delete(self._webhook_message(interaction, call.params["message_id"]))
        return web.Response(status=204)

    # -- REST: channels and messages -------------------------------------------------------

    def _live_channel(self, call: _Call) -> FakeChannel:
        channel = self.channels.get(int(call.params["channel_id"]))
        if channel is None or channel.removed:
            raise _Rejected(self._reject(404, 10003, "Unknown Channel"))
        return channel

    def _channel_message(self, call: _Call, channel: FakeChannel) -> FakeMessage:
        message = self._messages_by_id.get(int(call.params["message_id"]))
        if (
            message is None
            or message.channel_id != channel.id
            or message.deleted
            or message.ephemeral
        ):
            raise _Rejected(self._reject(404, 10008, "Unknown Message"))
        return message

    async def _get_channel(self, call: _Call) -> web.Response:
        return _json(200, self._channel_json(self._live_channel(call)))

    async def _get_history(self, call: _Call) -> web.Response:
        channel = self._live_channel(call)
        limit = max(1, min(100, int(call.query.get("limit", "50"))))
        visible = [
            m for m in self.messages.get(channel.id, []) if not m.deleted and not m.ephemeral
        ]
        # Discord echoes a nonce only to the request that created the message, never in
        # history: a client must recognise its own posts by their content.
        listed = [self._message_json(m) for m in reversed(visible[-limit:])]
        for body in listed:
            body.pop("nonce", None)
        return _json(200, listed)

    async def _post_message(self, call: _Call) -> web.Response:
        channel = self._live_channel(call)
        where = f"POST /channels/{channel.id}/messages"
        if channel.type == CHANNEL_DM:
            recipient = self.users.get(channel.recipient_id or 0)
            if recipient is not None and recipient.dms_blocked:
                return self._reject(403, 50007, "Cannot send messages to this user")
        elif channel.denied:
            return self._reject(403, 50013, "Missing Permissions")
        body = call.body if isinstance(call.body, dict) else {}
        errors = check_message(body, allow_ephemeral=False)
        if errors:
            return self._form_errors(where, errors)
        self._check_upload_limit(channel, call.files, where)
        message = self._build_message(channel.id, body, call.files)
        self._require_content(message, where, body, call.files)
        reference = body.get("message_reference")
        if isinstance(reference, dict) and reference.get("message_id") is not None:
            target = self._messages_by_id.get(int(reference["message_id"]))
            if target is None or target.deleted or target.channel_id != channel.id:
                if reference.get("fail_if_not_exists", True):
                    error = FormError(
                        ("message_reference",), "REPLIES_UNKNOWN_MESSAGE", "Unknown message"
                    )
                    return self._form_errors(where, [error])
            else:
                message.reference_id = target.id
                message.message_type = 19
                message.pinged = pinged_by(
                    message.content, message.allowed_mentions, replied_user_id=target.author_id
                )
        nonce = message.nonce
        if nonce is not None and body.get("enforce_nonce"):
            key = (channel.id, str(nonce))
            first = self._nonces.get(key)
            window = timedelta(seconds=NONCE_WINDOW_SECONDS)
            if first is not None and self.now() - first.created_at <= window:
                self.nonce_replays += 1
                return _json(200, self._message_json(first))
            self._nonces[key] = message
        self._store_message(message)
        return _json(200, self._message_json(message))

    async def _get_message(self, call: _Call) -> web.Response:
        channel = self._live_channel(call)
        return _json(200, self._message_json(self._channel_message(call, channel)))

    async def _edit_message(self, call: _Call) -> web.Response:
        channel = self._live_channel(call)
        message = self._channel_message(call, channel)
        where = f"PATCH /channels/{channel.id}/messages/{message.id}"
        if message.author_id != self.bot_user_id:
            return self._reject(403, 50005, "Cannot edit a message authored by another user")
        body = call.body if isinstance(call.body, dict) else {}
        errors = check_message(body, allow_ephemeral=False)
        if errors:
            return self._form_errors(where, errors)
        self._check_upload_limit(channel, call.files, where)
        self._edit(message, body, call.files, where)
        return _json(200, self._message_json(message))

    async def _delete_message(self, call: _Call) -> web.Response:
        channel = self._live_channel(call)
        message = self._channel_message(call, channel)
        if message.author_id != self.bot_user_id and not (
            self._bot_permissions(channel) & MANAGE_MESSAGES
        ):
            return self._reject(403, 50013, "Missing Permissions")
        self._delete(message)
        return web.Response(status=204)

    async def _typing(self, call: _Call) -> web.Response:
        channel = self._live_channel(call)
        if channel.denied:
            return self._reject(403, 50013, "Missing Permissions")
        return web.Response(status=204)

    async def _create_dm(self, call: _Call) -> web.Response:
        body = call.body if isinstance(call.body, dict) else {}
        try:
            user = self.users[int(body.get("recipient_id", 0))]
        except (KeyError, TypeError, ValueError):
            user = None
        if user is None or user.bot:
            return self._reject(400, 50033, "Invalid Recipient(s)")
        if user.dm_channel_id is None:
            channel = FakeChannel(
                id=self._ids.next(self.now()), type=CHANNEL_DM, recipient_id=user.id
            )
            self.channels[channel.id] = channel
            user.dm_channel_id = channel.id
        return _json(200, self._channel_json(self.channels[user.dm_channel_id]))

    # -- REST: guilds ----------------------------------------------------------------------

    def _known_guild(self, call: _Call) -> FakeGuild:
        guild = self.guilds.get(int(call.params["guild_id"]))
        if guild is None:
            raise _Rejected(self._reject(404, 10004, "Unknown Guild"))
        return guild

    async def _get_guild(self, call: _Call) -> web.Response:
        guild = self._known_guild(call)
        body = self._guild_json(guild)
        if call.query.get("with_counts") in _TRUE:
            body["approximate_member_count"] = len(self.users)
            body["approximate_presence_count"] = 0
        return _json(200, body)

    async def _get_guild_channels(self, call: _Call) -> web.Response:
        guild = self._known_guild(call)
        live = [self.channels[c] for c in guild.channels if not self.channels[c].removed]
        return _json(200, [self._channel_json(c) for c in live])

    async def _get_member(self, call: _Call) -> web.Response:
        guild = self._known_guild(call)
        user = self.users.get(int(call.params["user_id"]))
        if user is None:
            return self._reject(404, 10007, "Unknown Member")
        roles = [guild.bot_role_id] if user.id == self.bot_user_id else []
        return _json(200, member_json(user, roles=roles, joined_at=guild.joined_at))

    # -- messages: building, editing, rendering --------------------------------------------

    def _build_message(
        self, channel_id: int, body: dict[str, Any], files: list[FakeAttachment]
    ) -> FakeMessage:
        """A message from a create body (not stored yet)."""
        channel = self.channels[channel_id]
        flags = int(body.get("flags") or 0) & (
            FLAG_EPHEMERAL
            | FLAG_LOADING
            | FLAG_SUPPRESS_EMBEDS
            | FLAG_SUPPRESS_NOTIFICATIONS
            | FLAG_COMPONENTS_V2
        )
        content = body.get("content") or ""
        mentions = body.get("allowed_mentions")
        message = FakeMessage(
            id=self._ids.next(self.now()),
            channel_id=channel_id,
            guild_id=channel.guild_id,
            author_id=self.bot_user_id,
            content=content,
            embeds=list(body.get("embeds") or []),
            components=list(body.get("components") or []),
            attachments=self._attachments_from(channel_id, body, files, keep=[]),
            nonce=body.get("nonce"),
            flags=flags,
            created_at=self.now(),
            tts=bool(body.get("tts")),
            allowed_mentions=mentions if isinstance(mentions, dict) else None,
        )
        message.pinged = pinged_by(content, message.allowed_mentions)
        return message

    def _attachments_from(
        self,
        channel_id: int,
        body: dict[str, Any],
        files: list[FakeAttachment],
        *,
        keep: list[FakeAttachment],
    ) -> list[FakeAttachment]:
        """Existing attachments listed in ``body["attachments"]`` plus the uploaded files."""
        listed = body.get("attachments")
        described: dict[int, dict[str, Any]] = {}
        kept: list[FakeAttachment] = list(keep)
        if isinstance(listed, list):
            ids = {str(a.get("id")) for a in listed if isinstance(a, dict)}
            kept = [a for a in keep if str(a.id) in ids]
            for entry in listed:
                if isinstance(entry, dict) and str(entry.get("id", "")).isdigit():
                    described[int(entry["id"])] = entry
        result = kept
        for upload in files:
            entry = described.get(upload.id, {})
            attachment = FakeAttachment(
                id=self._ids.next(self.now()),
                filename=str(entry.get("filename") or upload.filename),
                data=upload.data,
                content_type=upload.content_type,
                description=entry.get("description"),
            )
            attachment.url = self._cdn_url(channel_id, attachment)
            self._cdn[attachment.id] = attachment
            result.append(attachment)
        return result

    def _require_content(
        self,
        message: FakeMessage,
        where: str,
        body: dict[str, Any],
        files: list[FakeAttachment],
    ) -> None:
        has_body = bool(body.get("sticker_ids") or body.get("poll"))
        if not (
            message.content
            or message.embeds
            or message.components
            or message.attachments
            or has_body
        ):
            raise _Rejected(
                self._reject(400, 50006, "Cannot send an empty message", f"{where}: empty message")
            )

    def _check_upload_limit(
        self, channel: FakeChannel, files: list[FakeAttachment], where: str
    ) -> None:
        guild = self.guilds.get(channel.guild_id or 0)
        limit = guild.upload_limit if guild is not None else DEFAULT_UPLOAD_LIMIT
        for upload in files:
            if upload.size > limit:
                raise _Rejected(
                    self._reject(
                        413,
                        40005,
                        "Request entity too large",
                        f"{where}: {upload.filename} is {upload.size} bytes (limit {limit})",
                    )
                )

    def _edit(
        self, message: FakeMessage, body: dict[str, Any], files: list[FakeAttachment], where: str
    ) -> None:
        """Apply an edit body; the previous version goes to ``message.edits``."""
        draft = message.snapshot()
        if "content" in body:
            draft.content = body["content"] or ""
        if "embeds" in body:
            draft.embeds = list(body["embeds"] or [])
        if "components" in body:
            draft.components = list(body["components"] or [])
        if "flags" in body and body["flags"] is not None:
            keep = message.flags & FLAG_EPHEMERAL
            changeable = FLAG_SUPPRESS_EMBEDS | FLAG_COMPONENTS_V2
            draft.flags = keep | (int(body["flags"]) & changeable)
        if "allowed_mentions" in body and isinstance(body["allowed_mentions"], dict):
            draft.allowed_mentions = body["allowed_mentions"]
        if "attachments" in body or files:
            draft.attachments = self._attachments_from(
                message.channel_id, body, files, keep=list(message.attachments)
            )
        draft.flags &= ~FLAG_LOADING
        self._require_content(draft, where, body, files)
        message.edits.append(message.snapshot())
        if not message.loading:
            message.edited_at = self.now()
        for name in ("content", "embeds", "components", "flags", "allowed_mentions", "attachments"):
            setattr(message, name, getattr(draft, name))
        replied = self._messages_by_id.get(message.reference_id or 0)
        message.pinged = pinged_by(
            message.content,
            message.allowed_mentions,
            replied_user_id=None if replied is None else replied.author_id,
        )
        self._dispatch_message("MESSAGE_UPDATE", message)
        self._notify()

    def _delete(self, message: FakeMessage) -> None:
        message.deleted = True
        channel = self.channels[message.channel_id]
        if not message.ephemeral:
            payload: dict[str, Any] = {"id": str(message.id), "channel_id": str(channel.id)}
            if channel.guild_id is not None:
                payload["guild_id"] = str(channel.guild_id)
            intent = INTENT_GUILD_MESSAGES if channel.guild_id else INTENT_DIRECT_MESSAGES
            self._dispatch("MESSAGE_DELETE", payload, intent=intent)
        self._notify()

    def _store_message(self, message: FakeMessage) -> None:
        self.messages.setdefault(message.channel_id, []).append(message)
        self._messages_by_id[message.id] = message
        self._dispatch_message("MESSAGE_CREATE", message)
        self._notify()

    def _dispatch_message(self, event: str, message: FakeMessage) -> None:
        if message.ephemeral:
            return
        channel = self.channels[message.channel_id]
        intent = INTENT_GUILD_MESSAGES if channel.guild_id else INTENT_DIRECT_MESSAGES
        payload = self._message_json(message, gateway=True)
        session = self._session
        hidden = (
            session is not None
            and not session.intents & INTENT_MESSAGE_CONTENT
            and message.author_id != self.bot_user_id
            and channel.guild_id is not None
            and self.bot_user_id not in message.pinged["users"]
        )
        if hidden:
            # Without the Message Content intent Discord blanks other users' messages.
            payload.update(content="", embeds=[], attachments=[], components=[])
        self._dispatch(event, payload, intent=intent)

    def _message_json(self, message: FakeMessage, *, gateway: bool = False) -> dict[str, Any]:
        author = self.users.get(message.author_id) or FakeUser(message.author_id, "unknown")
        known = [self.users[u] for u in message.pinged["users"] if u in self.users]
        body: dict[str, Any] = {
            "id": str(message.id),
            "channel_id": str(message.channel_id),
            "type": message.message_type,
            "content": message.content,
            "author": author.as_json(),
            "attachments": [a.as_json() for a in message.attachments],
            "embeds": [{"type": "rich", **e} for e in message.embeds],
            "components": message.components,
            "mentions": [u.as_json() for u in known],
            "mention_roles": [str(r) for r in message.pinged["roles"]],
            "mention_everyone": message.pinged["everyone"],
            "pinned": False,
            "tts": message.tts,
            "timestamp": iso(message.created_at),
            "edited_timestamp": iso(message.edited_at),
            "flags": message.flags,
        }
        if message.nonce is not None:
            body["nonce"] = message.nonce
        if message.webhook_id is not None:
            body["webhook_id"] = str(message.webhook_id)
            body["application_id"] = str(self.application_id)
        if message.reference_id is not None:
            body["message_reference"] = {
                "type": 0,
                "message_id": str(message.reference_id),
                "channel_id": str(message.channel_id),
            }
            if message.guild_id is not None:
                body["message_reference"]["guild_id"] = str(message.guild_id)
        interaction = self.interactions.get(message.interaction_id or 0)
        if interaction is not None:
            body["interaction_metadata"] = self._interaction_metadata(interaction, message)
        if gateway and message.guild_id is not None:
            guild = self.guilds[message.guild_id]
            body["guild_id"] = str(guild.id)
            roles = [guild.bot_role_id] if author.id == self.bot_user_id else []
            member = member_json(author, roles=roles, joined_at=guild.joined_at)
            member.pop("user")
            body["member"] = member
        return body

    def _interaction_metadata(
        self, interaction: FakeInteraction, message: FakeMessage
    ) -> dict[str, Any]:
        user = self.users[interaction.user_id]
        metadata: dict[str, Any] = {
            "id": str(interaction.id),
            "type": interaction.type,
            "user": user.as_json(),
            "authorizing_integration_owners": {"0": str(interaction.guild_id)},
        }
        if interaction.type == _APP_COMMAND:
            metadata["name"] = interaction.name
            metadata["command_type"] = interaction.payload["data"].get("type", 1)
        else:
            metadata["interacted_message_id"] = str(interaction.message_id)
        original = interaction.original_message
        if message is not original and original is not None:
            metadata["original_response_message_id"] = str(original.id)
        return metadata

    # -- channels and guilds ----------------------------------------------------------------

    def _new_channel(self, guild: FakeGuild, channel_id: int, name: str) -> FakeChannel:
        if channel_id in self.channels:
            raise ValueError(f"channel {channel_id} exists")
        channel = FakeChannel(
            id=channel_id,
            type=CHANNEL_GUILD_TEXT,
            name=name,
            guild_id=guild.id,
            position=len(guild.channels),
        )
        self.channels[channel_id] = channel
        guild.channels.append(channel_id)
        return channel

    def _guild_channel(self, guild_id: int, channel_id: int) -> tuple[FakeGuild, FakeChannel]:
        guild = self.guilds.get(guild_id)
        if guild is None:
            raise ValueError(f"no guild {guild_id}")
        channel = self.channels.get(channel_id)
        if channel is None or channel.guild_id != guild_id or channel.removed:
            raise ValueError(f"no channel {channel_id} in guild {guild_id}")
        return guild, channel

    def _bot_permissions(self, channel: FakeChannel) -> int:
        granted = MEMBER_PERMISSIONS | BOT_PERMISSIONS
        return granted & ~DENIED_BITS if channel.denied else granted

    def _channel_json(
        self, channel: FakeChannel, *, permissions: int | None = None
    ) -> dict[str, Any]:
        recipient = self.users.get(channel.recipient_id or 0)
        return channel_json(
            channel, bot_user_id=self.bot_user_id, recipient=recipient, permissions=permissions
        )

    def _guild_json(self, guild: FakeGuild) -> dict[str, Any]:
        return {
            "id": str(guild.id),
            "name": guild.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(guild.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 1,
            "explicit_content_filter": 0,
            "roles": [
                role_json(guild.id, "@everyone", MEMBER_PERMISSIONS),
                role_json(
                    guild.bot_role_id,
                    self.users[self.bot_user_id].name,
                    BOT_PERMISSIONS,
                    bot_id=self.bot_user_id,
                ),
                *(role_json(rid, name, perms) for rid, (name, perms) in guild.roles.items()),
            ],
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": str(guild.channels[0]) if guild.channels else None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "max_members": 500_000,
            "max_video_channel_users": 25,
            "vanity_url_code": None,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "nsfw_level": 0,
            "nsfw": False,
            "premium_progress_bar_enabled": False,
            "incidents_data": None,
        }

    # -- the fake CDN ------------------------------------------------------------------------

    async def _cdn_file(self, request: web.Request) -> web.Response:
        attachment = self._cdn.get(int(request.match_info["attachment_id"]))
        if attachment is None or attachment.filename != request.match_info["filename"]:
            return web.Response(status=404, text="Not Found")
        return web.Response(
            body=attachment.data, content_type=attachment.content_type or "application/octet-stream"
        )

    # -- HTTP control (for a bot in another process) -----------------------------------------

    async def _control_guilds(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        try:
            guild = self.add_guild(
                _opt_int(body.get("guild_id")),
                name=str(body.get("name", "Karaoke Club")),
                channels=[int(c) for c in body.get("channels") or []] or None,
                owner_id=_opt_int(body.get("owner_id")),
            )
        except ValueError as exc:
            return _json(400, {"error": str(exc)})
        user = self.add_user(_opt_int(body.get("user_id")), str(body.get("user_name", "singer")))
        return _json(
            200,
            {
                "guild_id": str(guild.id),
                "channel_id": str(guild.channel_id),
                "channel_ids": [str(c) for c in guild.channels],
                "user_id": str(user.id),
            },
        )

    async def _control_slash(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        try:
            interaction = await self.invoke_slash(
                guild_id=int(body["guild_id"]),
                channel_id=int(body["channel_id"]),
                user_id=int(body["user_id"]),
                name=str(body["name"]),
                options=body.get("options"),
                attachments=body.get("attachments"),
                permissions=str(body.get("permissions", MEMBER_PERMISSIONS_STR)),
            )
        except (KeyError, ValueError, RuntimeError) as exc:
            return _json(400, {"error": str(exc)})
        return _json(200, {"interaction_id": str(interaction.id), "token": interaction.token})

    async def _control_component(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        try:
            interaction = await self.invoke_component(
                guild_id=int(body["guild_id"]),
                channel_id=int(body["channel_id"]),
                user_id=int(body["user_id"]),
                message_id=int(body["message_id"]),
                custom_id=str(body["custom_id"]),
                component_type=int(body.get("component_type", 2)),
            )
        except (KeyError, ValueError, RuntimeError) as exc:
            return _json(400, {"error": str(exc)})
        return _json(200, {"interaction_id": str(interaction.id), "token": interaction.token})

    async def _control_messages(self, request: web.Request) -> web.Response:
        wanted = request.query.get("channel_id")
        if wanted is not None:
            found = self.channel_messages(int(wanted))
        else:
            found = [m for ms in self.messages.values() for m in ms]
        return _json(200, [m.as_json() for m in found])

    async def _control_state(self, request: web.Request) -> web.Response:
        session = self._session
        return _json(
            200,
            {
                "ready": bool(session and session.ready and session.conn),
                "identify_count": self.identify_count,
                "resume_count": self.resume_count,
                "interactions": [i.as_json() for i in self.interactions.values()],
                "rule_violations": self.rule_violations,
                "unknown_routes": self.unknown_routes,
                "synced_commands": {
                    ("global" if scope is None else str(scope)): commands
                    for scope, commands in self.synced_commands.items()
                },
                "guilds": [
                    {"id": str(g.id), "name": g.name, "channel_ids": [str(c) for c in g.channels]}
                    for g in self.guilds.values()
                ],
                "request_count": len(self.requests),
                "nonce_replays": self.nonce_replays,
            },
        )

    async def _control_faults(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        try:
            self.fail_next(
                int(body["n"]),
                int(body["status"]),
                method=body.get("method"),
                path_contains=body.get("path_contains"),
                retry_after=float(body.get("retry_after", 0.05)),
                code=_opt_int(body.get("code")),
            )
        except (KeyError, ValueError) as exc:
            return _json(400, {"error": str(exc)})
        return _json(200, {"ok": True})

    async def _control_drop_gateway(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        try:
            await self.drop_gateway(resumable=bool(body.get("resumable", True)))
        except RuntimeError as exc:
            return _json(409, {"error": str(exc)})
        return _json(200, {"ok": True})

    async def _control_clock(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        self.advance_clock(float(body.get("seconds", 0)))
        return _json(200, {"now": iso(self.now())})

    async def _control_channel(self, request: web.Request) -> web.Response:
        channel_id = int(request.match_info["channel_id"])
        action = request.match_info["action"]
        if channel_id not in self.channels:
            return _json(404, {"error": f"no channel {channel_id}"})
        if action == "remove":
            self.remove_channel(channel_id)
        elif action == "deny":
            self.deny_channel(channel_id)
        else:
            return _json(404, {"error": f"unknown action {action!r}"})
        return _json(200, {"ok": True})

    async def _control_block_dms(self, request: web.Request) -> web.Response:
        self.block_dms(int(request.match_info["user_id"]))
        return _json(200, {"ok": True})


def _check_choices(data: dict[str, Any] | None) -> list[FormError]:
    """An autocomplete answer: at most 25 choices, names 1-100 characters, a value each."""
    choices = (data or {}).get("choices")
    if not isinstance(choices, list):
        return [FormError(("data", "choices"), "BASE_TYPE_REQUIRED", "This field is required")]
    errors: list[FormError] = []
    if len(choices) > _CHOICES_MAX:
        errors.append(
            FormError(("data", "choices"), "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        )
    for index, choice in enumerate(choices):
        name = choice.get("name") if isinstance(choice, dict) else None
        if not isinstance(name, str) or not 1 <= len(name) <= _CHOICE_NAME_MAX:
            errors.append(
                FormError(
                    ("data", "choices", index, "name"),
                    "BASE_TYPE_BAD_LENGTH",
                    "Must be between 1 and 100 in length.",
                )
            )
        if not isinstance(choice, dict) or "value" not in choice:
            errors.append(
                FormError(
                    ("data", "choices", index, "value"),
                    "BASE_TYPE_REQUIRED",
                    "This field is required",
                )
            )
    return errors


def _json(status: int, body: Any, *, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response whose Content-Type is exactly ``application/json`` (discord.py's test)."""
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def _fault_response(fault: _Fault, path: str) -> web.Response:
    if fault.status == 429:
        reset_after = max(fault.retry_after, 0.0)
        bucket = hashlib.sha1(path.encode(), usedforsecurity=False).hexdigest()[:32]
        body: dict[str, Any] = {
            "message": "You are being rate limited.",
            "retry_after": reset_after,
            "global": False,
        }
        if fault.code is not None:
            body["code"] = fault.code
        reset_at = datetime.now(UTC).timestamp() + reset_after
        return _json(
            429,
            body,
            headers={
                "Via": "1.1 google",
                "Retry-After": str(math.ceil(reset_after)),
                "X-RateLimit-Limit": "5",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": f"{reset_at:.3f}",
                "X-RateLimit-Reset-After": f"{reset_after:.3f}",
                "X-RateLimit-Bucket": bucket,
                "X-RateLimit-Scope": "user",
            },
        )
    defaults = {
        400: (50035, "Invalid Form Body"),
        401: (0, "401: Unauthorized"),
        403: (50013, "Missing Permissions"),
        404: (0, "404: Not Found"),
    }
    code, message = defaults.get(fault.status, (0, f"{fault.status}: injected failure"))
    return _json(
        fault.status, {"message": message, "code": fault.code if fault.code is not None else code}
    )


def _under_data(error: FormError) -> FormError:
    """An error inside an interaction response's ``data`` object."""
    return FormError(("data", *error.path), error.code, error.message)


def _opt_int(value: object) -> int | None:
    return None if value is None else int(str(value))


async def _json_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


async def _serve(args: argparse.Namespace) -> None:
    fake = FakeDiscord(
        token=args.token,
        application_id=args.application_id,
        ack_deadline=args.ack_deadline,
        token_lifetime=args.token_lifetime,
        heartbeat_interval=args.heartbeat_interval,
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
    parser.add_argument("--ack-deadline", type=float, default=3.0, metavar="SECONDS")
    parser.add_argument("--token-lifetime", type=float, default=900.0, metavar="SECONDS")
    parser.add_argument("--heartbeat-interval", type=float, default=41.25, metavar="SECONDS")
    parser.add_argument(
        "--seed", action="store_true", help="create one guild, channel and user; print their ids"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
