"""The fake Discord's control surface for tests in the same process.

:class:`DiscordControl` is the world of :class:`~tests.fakes.discord_state.DiscordState`
plus the parts that serve it (a :class:`~tests.fakes.discord_gateway.DiscordGateway`, a
:class:`~tests.fakes.discord_rest.DiscordRest` with its message and interaction routes) and
the methods a test drives it with:

- the world: :meth:`~DiscordControl.add_guild`, ``add_channel``, ``add_role``,
  ``give_role``, ``remove_channel``, ``deny_channel``, ``block_dms``, ``add_message``;
  each change is dispatched to a connected bot, on its guild's shard, as Discord would;
- users acting: :meth:`~DiscordControl.invoke_slash`, ``invoke_autocomplete``,
  ``invoke_message_context``, ``invoke_component`` build the interaction Discord would send
  (synced command ids, typed and nested options, resolved channels, roles and attachments),
  dispatch it on the shard of its guild, and report it unacknowledged if no initial
  response comes within ``ack_deadline``;
- faults: ``fail_next``, ``delay_next``, ``drop_gateway``, ``advance_clock``;
- waiting: ``wait_until``, ``wait_until_ready``, ``wait_for_message``.

An interaction whose guild's shard has no session is not delivered (``dispatched`` is False)
and so is reported unacknowledged; if no shard has a session at all, ``invoke_*`` raise
``RuntimeError`` instead, since the test forgot to connect a bot. A process outside drives
the same methods through :mod:`tests.fakes.discord_control_http`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from tests.fakes.discord_gateway import INTENT_GUILDS, DiscordGateway
from tests.fakes.discord_models import (
    CHANNEL_GUILD_TEXT,
    DEFAULT_UPLOAD_LIMIT,
    INTERACTION_APPLICATION_COMMAND,
    INTERACTION_AUTOCOMPLETE,
    INTERACTION_COMPONENT,
    MEMBER_PERMISSIONS,
    FakeAttachment,
    FakeChannel,
    FakeGuild,
    FakeInteraction,
    FakeMessage,
    FakeUser,
    iter_components,
    member_json,
    new_interaction_token,
    role_json,
)
from tests.fakes.discord_rest import DiscordRest
from tests.fakes.discord_rest_interactions import InteractionResponses
from tests.fakes.discord_rest_messages import ChannelMessages
from tests.fakes.discord_state import (
    ACK_DEADLINE_SECONDS,
    DEFAULT_APPLICATION_ID,
    DEFAULT_TOKEN,
    HEARTBEAT_INTERVAL_SECONDS,
    TOKEN_LIFETIME_SECONDS,
    DiscordState,
)

MEMBER_PERMISSIONS_STR = str(MEMBER_PERMISSIONS)

# The Python type of an option value -> Discord's option type (string, integer, bool, number).
_OPTION_TYPES: dict[type, int] = {str: 3, int: 4, bool: 5, float: 10}
_OPTION_ATTACHMENT = 11
_OPTION_CHANNEL = 7
_OPTION_ROLE = 8
_SUBCOMMAND_TYPES = (1, 2)


class DiscordControl(DiscordState):
    """The fake's world, its servers' parts, and the in-process API tests use.

    ``heartbeat_interval`` is the HELLO interval in seconds. ``privileged_intents`` says
    whether the application may ask for members, presences and message content (Discord
    closes the gateway with 4014 otherwise). See :class:`DiscordState` for the rest.
    """

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        application_id: int = DEFAULT_APPLICATION_ID,
        bot_user_id: int | None = None,
        ack_deadline: float = ACK_DEADLINE_SECONDS,
        token_lifetime: float = TOKEN_LIFETIME_SECONDS,
        heartbeat_interval: float = HEARTBEAT_INTERVAL_SECONDS,
        privileged_intents: bool = False,
        bot_name: str = "Stemcord",
        shard_count: int = 1,
    ) -> None:
        super().__init__(
            token=token,
            application_id=application_id,
            bot_user_id=bot_user_id,
            ack_deadline=ack_deadline,
            token_lifetime=token_lifetime,
            bot_name=bot_name,
            shard_count=shard_count,
        )
        self.gateway = DiscordGateway(
            self, heartbeat_interval=heartbeat_interval, privileged_intents=privileged_intents
        )
        self.rest = DiscordRest(self)
        self.rest_messages = ChannelMessages(self, self.gateway)
        self.rest.add_routes(self.rest_messages.routes())
        self.rest.add_routes(InteractionResponses(self, self.rest_messages).routes())
        self._ack_timers: set[asyncio.TimerHandle] = set()

    @property
    def heartbeat_interval(self) -> float:
        """The HELLO interval in seconds."""
        return self.gateway.heartbeat_interval

    @property
    def privileged_intents(self) -> bool:
        """Whether IDENTIFY may ask for privileged intents."""
        return self.gateway.privileged_intents

    def cancel_ack_timers(self) -> None:
        """Stop checking acknowledgement deadlines (the fake is closing)."""
        for timer in self._ack_timers:
            timer.cancel()
        self._ack_timers.clear()

    # -- clock -----------------------------------------------------------------------------

    def advance_clock(self, seconds: float) -> None:
        """Move the fake clock forward (token expiry, ack deadline, nonce window)."""
        self._clock_offset += seconds
        for interaction in self.interactions.values():
            self._check_ack(interaction)
        self.notify()

    # -- the world -------------------------------------------------------------------------

    def add_user(self, user_id: int | None = None, name: str = "singer") -> FakeUser:
        """A user (a member of every fake guild)."""
        uid = user_id if user_id is not None else self.new_id()
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
        preferred_locale: str = "en-US",
    ) -> FakeGuild:
        """A guild the bot is in, with text ``channels`` (ids; default one new channel) and
        ``preferred_locale`` as its language.

        If a bot is connected on the guild's shard, it gets GUILD_CREATE as if just added.
        """
        gid = guild_id if guild_id is not None else self.new_id()
        if gid in self.guilds:
            raise ValueError(f"guild {gid} exists")
        ids = list(channels) if channels else [self.new_id()]
        owner = owner_id if owner_id is not None else self.owner_id
        if owner not in self.users:
            self.add_user(owner, "owner")
        guild = FakeGuild(
            id=gid,
            name=name,
            owner_id=owner,
            channels=[],
            bot_role_id=self.new_id(),
            joined_at=self.now(),
            preferred_locale=preferred_locale,
        )
        self.guilds[gid] = guild
        for index, cid in enumerate(ids):
            self._new_channel(guild, cid, "karaoke" if index == 0 else f"karaoke-{index + 1}")
        self.gateway.announce_guild(guild)
        return guild

    def add_channel(self, guild_id: int, channel_id: int | None = None, name: str = "") -> int:
        """Another text channel in a guild (CHANNEL_CREATE to a connected bot)."""
        guild = self.guilds[guild_id]
        cid = channel_id if channel_id is not None else self.new_id()
        channel = self._new_channel(guild, cid, name or f"karaoke-{len(guild.channels) + 1}")
        self._dispatch_channel("CHANNEL_CREATE", channel)
        return cid

    def remove_channel(self, channel_id: int) -> None:
        """Delete a channel: later requests to it get 404 Unknown Channel (10003)."""
        channel = self.channels[channel_id]
        channel.removed = True
        if channel.guild_id is not None:
            self._dispatch_channel("CHANNEL_DELETE", channel)

    def deny_channel(self, channel_id: int) -> None:
        """Take the bot's Send Messages away there: sending gets 403 Missing Permissions (50013).

        A connected bot gets CHANNEL_UPDATE with the overwrite, so ``permissions_for`` knows.
        Interaction responses still work there, as on Discord.
        """
        channel = self.channels[channel_id]
        channel.denied = True
        self._dispatch_channel("CHANNEL_UPDATE", channel)

    def add_role(self, guild_id: int, name: str = "karaoke", permissions: int = 0) -> int:
        """A role in a guild (GUILD_ROLE_CREATE to a connected bot); returns its id."""
        guild = self.guilds[guild_id]
        role_id = self.new_id()
        guild.roles[role_id] = (name, permissions)
        self.gateway.dispatch(
            "GUILD_ROLE_CREATE",
            {"guild_id": str(guild_id), "role": role_json(role_id, name, permissions)},
            guild_id=guild_id,
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
            id=self.new_id(),
            channel_id=channel_id,
            guild_id=channel.guild_id,
            author_id=author_id,
            content=content,
            created_at=self.now(),
            attachments=[self._offered_attachment(channel_id, a) for a in attachments or []],
        )
        self.rest_messages.store(message)
        return message

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

    def _dispatch_channel(self, event: str, channel: FakeChannel) -> None:
        self.gateway.dispatch(
            event, self.channel_json(channel), guild_id=channel.guild_id, intent=INTENT_GUILDS
        )

    def _offered_attachment(self, channel_id: int, spec: dict[str, Any]) -> FakeAttachment:
        """A file a user offers (to a command, or on a seeded message), served by the CDN."""
        aid = int(spec["id"]) if "id" in spec else self.new_id()
        raw = spec.get("data", b"")
        size = spec.get("size")
        attachment = FakeAttachment(
            id=aid,
            filename=str(spec.get("filename", "song.mp3")),
            data=raw if isinstance(raw, bytes) else str(raw).encode(),
            content_type=str(spec.get("content_type", "audio/mpeg")),
            declared_size=int(size) if isinstance(size, int | str) else None,
        )
        attachment.url = str(spec.get("url") or self.cdn_url(channel_id, attachment))
        self.cdn[aid] = attachment
        return attachment

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
        guild_locale: str = "en-US",
    ) -> FakeInteraction:
        """A user runs ``/name``: dispatch a complete APPLICATION_COMMAND interaction.

        ``options`` are ``{"name", "value"}`` (``type`` is taken from the synced command, or
        from the value's Python type). ``attachments`` are ``{"filename", "size"?,
        "content_type"?, "data"?: bytes, "url"?}``; each gets an id, a URL on this fake
        (serving ``data``) and a place in ``data.resolved.attachments``, and an attachment
        option of the command without a value is bound to them in order.

        A subcommand is named by its path: ``name="karaoke settings show"``; ``options``
        are then the subcommand's own, and are nested as Discord nests them.

        ``locale`` is the member's client language and ``guild_locale`` the server's. The
        member may type the names shown in their language (``name="カラオケ 設定 表示"`` with
        ``locale="ja"``, localized option names too): like Discord, the interaction then
        carries the commands' default names.
        """
        guild, channel = self._guild_channel(guild_id, channel_id)
        user = self.add_user(user_id)
        top, *shown_path = name.split()
        command, scope = self._find_command(guild_id, top, kind=1, locale=locale)
        path = _canonical_path(command, shown_path, locale)
        holder, nesting = _subcommand_path(command, path)
        offered = [self._offered_attachment(channel_id, dict(a)) for a in attachments or []]
        given = _canonical_options(holder, [dict(o) for o in options or []], locale)
        opts = _typed_options(holder, given, offered)
        resolved = self._resolved_options(guild, opts)
        data = self._command_data(command, scope, _default_name(command, top), _nest(opts, nesting))
        if offered:
            resolved["attachments"] = {str(a.id): a.as_json() for a in offered}
        if resolved:
            data["resolved"] = resolved
        return self._interact(
            INTERACTION_APPLICATION_COMMAND,
            guild,
            channel,
            user,
            data,
            permissions,
            locale,
            guild_locale=guild_locale,
        )

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
        locale: str = "en-US",
        guild_locale: str = "en-US",
    ) -> FakeInteraction:
        """A user types ``typed`` into option ``focused`` of ``/name``: an autocomplete request.

        The bot answers with type 8 and up to 25 choices (in ``interaction.choices``).
        """
        guild, channel = self._guild_channel(guild_id, channel_id)
        user = self.add_user(user_id)
        top, *path = name.split()
        command, scope = self._find_command(guild_id, top, kind=1)
        holder, nesting = _subcommand_path(command, path)
        given = [dict(o) for o in options or []]
        given.append({"name": focused, "value": typed, "type": 3, "focused": True})
        opts = _typed_options(holder, given, [])
        data = self._command_data(command, scope, top, _nest(opts, nesting))
        return self._interact(
            INTERACTION_AUTOCOMPLETE,
            guild,
            channel,
            user,
            data,
            permissions,
            locale,
            guild_locale=guild_locale,
        )

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
        guild_locale: str = "en-US",
    ) -> FakeInteraction:
        """A user picks the message context-menu command ``name`` on ``message_id`` (by its
        default name, or the one shown in ``locale``)."""
        guild, channel = self._guild_channel(guild_id, channel_id)
        user = self.add_user(user_id)
        target = self.messages_by_id.get(message_id)
        if target is None or target.channel_id != channel_id or target.deleted:
            raise ValueError(f"no message {message_id} in channel {channel_id}")
        command, scope = self._find_command(guild_id, name, kind=3, locale=locale)
        data: dict[str, Any] = {
            "id": str(command["id"]) if command else str(self.new_id()),
            "name": _default_name(command, name),
            "type": 3,
            "target_id": str(message_id),
            "resolved": {"messages": {str(message_id): self.message_json(target)}},
        }
        if scope is not None:
            data["guild_id"] = str(scope)
        return self._interact(
            INTERACTION_APPLICATION_COMMAND,
            guild,
            channel,
            user,
            data,
            permissions,
            locale,
            guild_locale=guild_locale,
        )

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
        locale: str = "en-US",
        guild_locale: str = "en-US",
    ) -> FakeInteraction:
        """A user presses a button (or picks from a select) on one of the bot's messages."""
        guild, channel = self._guild_channel(guild_id, channel_id)
        user = self.add_user(user_id)
        message = self.messages_by_id.get(message_id)
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
            INTERACTION_COMPONENT,
            guild,
            channel,
            user,
            data,
            permissions,
            locale,
            guild_locale=guild_locale,
            message=message,
        )

    async def invoke_dm_component(
        self, *, user_id: int, message_id: int, custom_id: str
    ) -> FakeInteraction:
        """A user presses a button on one of the bot's messages in their DMs.

        As on Discord, the interaction carries ``user`` (no member, no guild) and goes to
        shard 0, which receives every DM event.
        """
        user = self.users.get(user_id)
        message = self.messages_by_id.get(message_id)
        if (
            user is None
            or message is None
            or message.deleted
            or message.channel_id != user.dm_channel_id
        ):
            raise ValueError(f"no message {message_id} in the DMs of user {user_id}")
        if not any(c.get("custom_id") == custom_id for c in iter_components(message.components)):
            raise ValueError(f"message {message_id} has no component {custom_id!r}")
        if not self.gateway.has_any_session():
            raise RuntimeError("no gateway session to deliver the interaction to")
        channel = self.channels[message.channel_id]
        iid = self.new_id()
        token = new_interaction_token()
        data = {"custom_id": custom_id, "component_type": 2}
        payload: dict[str, Any] = {
            "id": str(iid),
            "application_id": str(self.application_id),
            "type": INTERACTION_COMPONENT,
            "data": data,
            "channel_id": str(channel.id),
            "channel": self.channel_json(channel, permissions=int(MEMBER_PERMISSIONS_STR)),
            "user": user.as_json(),
            "token": token,
            "version": 1,
            "app_permissions": str(self.bot_permissions(channel)),
            "locale": "en-US",
            "entitlements": [],
            "entitlement_sku_ids": [],
            "authorizing_integration_owners": {"0": "0"},
            "context": 1,  # the bot's DM
            "attachment_size_limit": DEFAULT_UPLOAD_LIMIT,
            "message": self.message_json(message, gateway=True),
        }
        interaction = FakeInteraction(
            id=iid,
            token=token,
            type=INTERACTION_COMPONENT,
            guild_id=None,
            channel_id=channel.id,
            user_id=user.id,
            payload=payload,
            created_at=self.now(),
            custom_id=custom_id,
            message_id=message.id,
            shard=self.shard_of(None),
        )
        self.interactions[iid] = interaction
        self.interactions_by_token[token] = interaction
        interaction.dispatched = self.gateway.dispatch("INTERACTION_CREATE", payload, guild_id=None)
        timer = asyncio.get_running_loop().call_later(
            self.ack_deadline + 0.01, self._check_ack, interaction
        )
        self._ack_timers.add(timer)
        self.notify()
        return interaction

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
        guild_locale: str = "en-US",
        message: FakeMessage | None = None,
    ) -> FakeInteraction:
        if not self.gateway.has_any_session():
            raise RuntimeError("no gateway session to deliver the interaction to")
        iid = self.new_id()
        token = new_interaction_token()
        payload: dict[str, Any] = {
            "id": str(iid),
            "application_id": str(self.application_id),
            "type": kind,
            "data": data,
            "guild_id": str(guild.id),
            "guild": {"id": str(guild.id), "locale": guild_locale, "features": []},
            "channel_id": str(channel.id),
            "channel": self.channel_json(channel, permissions=int(permissions)),
            "member": member_json(
                user,
                roles=guild.member_roles.get(user.id, []),
                joined_at=guild.joined_at,
                permissions=permissions,
            ),
            "token": token,
            "version": 1,
            "app_permissions": str(self.bot_permissions(channel)),
            "locale": locale,
            "guild_locale": guild_locale,
            "entitlements": [],
            "entitlement_sku_ids": [],
            "authorizing_integration_owners": {"0": str(guild.id)},
            "context": 0,
            "attachment_size_limit": guild.upload_limit,
        }
        if message is not None:
            payload["message"] = self.message_json(message, gateway=True)
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
            shard=self.shard_of(guild.id),
        )
        self.interactions[iid] = interaction
        self.interactions_by_token[token] = interaction
        interaction.dispatched = self.gateway.dispatch(
            "INTERACTION_CREATE", payload, guild_id=guild.id
        )
        timer = asyncio.get_running_loop().call_later(
            self.ack_deadline + 0.01, self._check_ack, interaction
        )
        self._ack_timers.add(timer)
        self.notify()
        return interaction

    def _check_ack(self, interaction: FakeInteraction) -> None:
        if interaction.acked or interaction.expired:
            return
        age = (self.now() - interaction.created_at).total_seconds()
        if age >= self.ack_deadline:
            interaction.expired = True
            self.violation(
                f"interaction {interaction.id} ({interaction.label}) was not "
                f"acknowledged within {self.ack_deadline:g} s"
            )

    def _guild_channel(self, guild_id: int, channel_id: int) -> tuple[FakeGuild, FakeChannel]:
        guild = self.guilds.get(guild_id)
        if guild is None:
            raise ValueError(f"no guild {guild_id}")
        channel = self.channels.get(channel_id)
        if channel is None or channel.guild_id != guild_id or channel.removed:
            raise ValueError(f"no channel {channel_id} in guild {guild_id}")
        return guild, channel

    def _find_command(
        self, guild_id: int, name: str, *, kind: int, locale: str | None = None
    ) -> tuple[dict[str, Any] | None, int | None]:
        """The synced command (guild first, then global) and its scope; refused if unsynced.

        ``name`` is the default name or, with ``locale``, the name shown in that locale.
        """
        for scope in (guild_id, None):
            for command in self.synced_commands.get(scope, []):
                if _named(command, name, locale) and command.get("type", 1) == kind:
                    return command, scope
        if any(self.synced_commands.values()):
            synced = sorted(c["name"] for cs in self.synced_commands.values() for c in cs)
            raise ValueError(
                f"command {name!r} (type {kind}) is not synced for guild {guild_id}; "
                f"synced: {synced}"
            )
        return None, None

    def _command_data(
        self,
        command: dict[str, Any] | None,
        scope: int | None,
        name: str,
        options: list[dict[str, Any]],
    ) -> dict[str, Any]:
        """The ``data`` of a chat-input interaction."""
        data: dict[str, Any] = {
            "id": str(command["id"]) if command else str(self.new_id()),
            "name": name,
            "type": 1,
            "options": options,
        }
        if scope is not None:
            data["guild_id"] = str(scope)
        return data

    def _resolved_options(
        self, guild: FakeGuild, options: list[dict[str, Any]]
    ) -> dict[str, dict[str, Any]]:
        """``data.resolved`` for channel (7) and role (8) options, as Discord sends it."""
        resolved: dict[str, dict[str, Any]] = {}
        for option in options:
            kind, value = option.get("type"), option.get("value")
            if kind == _OPTION_CHANNEL:
                channel = self.channels.get(int(str(value)))
                if channel is None or channel.guild_id != guild.id:
                    raise ValueError(f"no channel {value} in guild {guild.id}")
                option["value"] = str(value)
                body = self.channel_json(channel, permissions=MEMBER_PERMISSIONS)
                resolved.setdefault("channels", {})[str(value)] = body
            elif kind == _OPTION_ROLE:
                role = guild.roles.get(int(str(value)))
                if role is None:
                    raise ValueError(f"no role {value} in guild {guild.id}")
                option["value"] = str(value)
                body = role_json(int(str(value)), role[0], role[1])
                resolved.setdefault("roles", {})[str(value)] = body
        return resolved

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

    async def wait_until_ready(self, timeout: float = 10.0, *, shard: int | None = None) -> None:
        """Wait until a client has a live session that was sent READY and its GUILD_CREATEs.

        With several shards this waits for every shard, or only ``shard``. Frames on one
        socket arrive in order, so an interaction invoked after this reaches the client
        after its guilds; to inspect the client's cache, also wait for its own
        ``wait_until_ready()``.
        """
        try:
            await self.wait_until(lambda: self.gateway.is_ready(shard), timeout)
        except TimeoutError:
            which = "every shard" if shard is None else f"shard {shard}"
            raise TimeoutError(f"no client became ready on {which} within {timeout:g} s") from None

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
        self.rest.fail_next(
            n,
            status,
            method=method,
            path_contains=path_contains,
            retry_after=retry_after,
            code=code,
        )

    def delay_next(
        self, n: int, seconds: float, *, method: str | None = None, path_contains: str | None = None
    ) -> None:
        """Carry out the next ``n`` matching REST requests, then answer ``seconds`` late.

        The request's effect (a posted message, say) is visible at once; only the answer is
        late — the window in which a client that dies has acted without knowing it.
        """
        self.rest.delay_next(n, seconds, method=method, path_contains=path_contains)

    async def drop_gateway(self, *, resumable: bool = True, shard: int = 0) -> None:
        """Close the websocket of ``shard``'s session with 4000.

        The client RESUMEs and gets every dispatch it missed replayed (an interaction invoked
        meanwhile included; see :attr:`replayed_events`). With ``resumable=False`` its RESUME
        is answered "invalid session" and it IDENTIFYs again; until that new session is
        ready, dispatches for the shard are dropped, as Discord drops them, and ``invoke_*``
        raise ``RuntimeError`` if no other shard has a session.
        """
        await self.gateway.drop(shard, resumable=resumable)


def _named(item: dict[str, Any], name: str, locale: str | None) -> bool:
    """``name`` is the item's default name, or the one members of ``locale`` see."""
    if item.get("name") == name:
        return True
    localized = item.get("name_localizations")
    return locale is not None and isinstance(localized, dict) and localized.get(locale) == name


def _default_name(command: dict[str, Any] | None, typed: str) -> str:
    return str(command["name"]) if command is not None else typed


def _canonical_path(command: dict[str, Any] | None, path: list[str], locale: str) -> list[str]:
    """The default names of a subcommand path typed in ``locale`` (unknown parts unchanged)."""
    holder, canonical = command, []
    for part in path:
        found = next(
            (
                o
                for o in (holder or {}).get("options", [])
                if o.get("type") in _SUBCOMMAND_TYPES and _named(o, part, locale)
            ),
            None,
        )
        canonical.append(str(found["name"]) if found else part)
        holder = found
    return canonical


def _canonical_options(
    command: dict[str, Any] | None, options: list[dict[str, Any]], locale: str
) -> list[dict[str, Any]]:
    """Options named as members of ``locale`` see them, renamed to their default names."""
    schema = (command or {}).get("options", [])
    for option in options:
        typed = str(option.get("name"))
        found = next((o for o in schema if _named(o, typed, locale)), None)
        if found is not None:
            option["name"] = found["name"]
    return options


def _typed_options(
    command: dict[str, Any] | None,
    options: list[dict[str, Any]],
    offered: list[FakeAttachment],
) -> list[dict[str, Any]]:
    """Give each option its type (from the command's schema) and bind attachment options."""
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
        if option.get("type") == _OPTION_ATTACHMENT:
            if "value" not in option:
                if not unbound:
                    raise ValueError(f"no attachment left for option {option['name']!r}")
                option["value"] = unbound.pop(0)
            option["value"] = str(option["value"])
            with contextlib.suppress(ValueError):
                unbound.remove(int(option["value"]))
    named = {o.get("name") for o in options}
    for spec in schema.values():
        if spec.get("type") == _OPTION_ATTACHMENT and spec["name"] not in named and unbound:
            options.append(
                {"name": spec["name"], "type": _OPTION_ATTACHMENT, "value": str(unbound.pop(0))}
            )
    return options


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
                if o.get("name") == part and o.get("type") in _SUBCOMMAND_TYPES
            ),
            None,
        )
        if command is not None and found is None:
            raise ValueError(f"/{command['name']} has no subcommand {' '.join(path)!r}")
        kind = found["type"] if found else (1 if index == len(path) - 1 else 2)
        nesting.append((part, kind))
        holder = found
    return holder, nesting


def _nest(options: list[dict[str, Any]], nesting: list[tuple[str, int]]) -> list[dict[str, Any]]:
    """Wrap a subcommand's options in its groups, as Discord nests them."""
    for part, kind in reversed(nesting):
        options = [{"name": part, "type": kind, "options": options}]
    return options
