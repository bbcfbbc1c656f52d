"""The fake Discord's world, in one place: what exists, what happened, and what time it is.

:class:`DiscordState` holds the users, guilds, channels, messages and interactions, the
record of every REST request and rule violation, the gateway counters, and the fake clock.
The gateway (:mod:`tests.fakes.discord_gateway`), the REST API
(:mod:`tests.fakes.discord_rest` and its resource modules) and the control surface
(:mod:`tests.fakes.discord_control`) all read and change this one object, and all render its
records through the same ``*_json`` methods here, so a message looks the same whether it is
fetched, dispatched or listed by a test. :class:`~tests.fakes.discord.FakeDiscord` *is* a
``DiscordState``: tests read ``fake.guilds`` or ``fake.rule_violations`` directly.

Nothing here talks to a socket; every change is announced with :meth:`DiscordState.notify`
so that :meth:`DiscordState.wait_until` re-checks its predicate at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.fakes.discord_models import (
    BOT_PERMISSIONS,
    DENIED_BITS,
    INTERACTION_APPLICATION_COMMAND,
    MEMBER_PERMISSIONS,
    FakeAttachment,
    FakeChannel,
    FakeGuild,
    FakeInteraction,
    FakeMessage,
    FakeRequest,
    FakeUser,
    Snowflakes,
    channel_json,
    iso,
    member_json,
    role_json,
    shard_for,
)

log = logging.getLogger(__name__)

DEFAULT_TOKEN = "test-discord-token"
DEFAULT_APPLICATION_ID = 1_300_000_000_000_000_001
DEFAULT_OWNER_ID = 1_300_000_000_000_000_101
API_VERSION = 10

# Discord's documented limits and windows that are not about one message's shape (those are
# in discord_rules.py); docs/testing-fake-discord.md lists each with the answer the fake gives.
ACK_DEADLINE_SECONDS = 3.0  # to send the initial response to an interaction
TOKEN_LIFETIME_SECONDS = 900.0  # an interaction token works for 15 minutes
HEARTBEAT_INTERVAL_SECONDS = 41.25  # the interval HELLO announces
MAX_REQUEST_BYTES = 25 * 1024 * 1024  # a whole request's files
NONCE_WINDOW_SECONDS = 300.0  # enforce_nonce recognises a repeat for 5 minutes
DAILY_COMMAND_CREATES = 200  # new application commands per day, per scope
CDN_URL_LIFETIME_SECONDS = 86_400  # a signed attachment URL's ``ex`` is a day after ``is``

# How many dispatches a session keeps for a RESUME (the fake's own bound, not Discord's).
EVENT_LOG_LIMIT = 10_000


class DiscordState:
    """The shared world of one fake Discord, and the observations tests make of it.

    ``ack_deadline`` is Discord's 3 s to answer an interaction and ``token_lifetime`` the 15
    minutes an interaction token lasts, both on the fake clock (:meth:`now`). ``shard_count``
    is how many gateway shards the application has; each guild belongs to shard
    ``(guild_id >> 22) % shard_count`` (:meth:`shard_of`).
    """

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        application_id: int = DEFAULT_APPLICATION_ID,
        bot_user_id: int | None = None,
        ack_deadline: float = ACK_DEADLINE_SECONDS,
        token_lifetime: float = TOKEN_LIFETIME_SECONDS,
        bot_name: str = "Stemcord",
        shard_count: int = 1,
    ) -> None:
        if shard_count < 1:
            raise ValueError(f"shard_count must be at least 1, not {shard_count}")
        self.token = token
        self.application_id = application_id
        # Modern applications share one id between the application and its bot user.
        self.bot_user_id = application_id if bot_user_id is None else bot_user_id
        self.ack_deadline = ack_deadline
        self.token_lifetime = token_lifetime
        self.shard_count = shard_count
        self.owner_id = DEFAULT_OWNER_ID

        # The world.
        self.users: dict[int, FakeUser] = {}
        self.guilds: dict[int, FakeGuild] = {}
        self.channels: dict[int, FakeChannel] = {}
        self.messages: dict[int, list[FakeMessage]] = {}
        self.interactions: dict[int, FakeInteraction] = {}
        self.synced_commands: dict[int | None, list[dict[str, Any]]] = {}

        # What tests observe.
        self.requests: list[FakeRequest] = []
        self.rule_violations: list[str] = []
        self.unknown_routes: list[str] = []
        self.nonce_replays = 0
        self.identify_count = 0
        self.resume_count = 0
        # Names of the dispatches sent again after a RESUME, in order.
        self.replayed_events: list[str] = []
        # Called with each message as it is stored (a benchmark times arrivals with it).
        self.message_observers: list[Callable[[FakeMessage], None]] = []

        # Indexes the modules share (each list above stays the record of order).
        self.messages_by_id: dict[int, FakeMessage] = {}
        self.interactions_by_token: dict[str, FakeInteraction] = {}
        self.cdn: dict[int, FakeAttachment] = {}

        self.port: int | None = None
        self._ids = Snowflakes()
        self._clock_offset = 0.0
        self._changed = asyncio.Event()

        self.users[self.bot_user_id] = FakeUser(self.bot_user_id, bot_name, bot=True)
        self.users[self.owner_id] = FakeUser(self.owner_id, "owner")

    # -- addresses -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``, once started."""
        if self.port is None:
            raise RuntimeError("FakeDiscord is not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        """The value for ``discord.http.Route.BASE``."""
        return f"{self.base_url}/api/v{API_VERSION}"

    @property
    def gateway_url(self) -> str:
        """The value for ``DiscordWebSocket.DEFAULT_GATEWAY`` (wrap it in ``yarl.URL``)."""
        return f"ws://127.0.0.1:{self.port}/gateway"

    # -- clock, ids, change ----------------------------------------------------------------

    def now(self) -> datetime:
        """The fake clock: real UTC time plus every ``advance_clock`` (control API)."""
        return datetime.now(UTC) + timedelta(seconds=self._clock_offset)

    def new_id(self) -> int:
        """A fresh snowflake stamped with the fake clock."""
        return self._ids.next(self.now())

    def shard_of(self, guild_id: int | None) -> int:
        """The shard that carries a guild's events; events without a guild (DMs) go to 0."""
        return 0 if guild_id is None else shard_for(guild_id, self.shard_count)

    def notify(self) -> None:
        """Wake every :meth:`wait_until`: something changed."""
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until ``predicate()`` is true.

        It is re-checked after every change to the fake, and every 20 ms for predicates that
        look at something else (the bot's own state).
        """
        async with asyncio.timeout(timeout):
            while not predicate():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), 0.02)

    def violation(self, text: str) -> None:
        """Record that the bot broke one of Discord's rules."""
        log.info("rule violation: %s", text)
        self.rule_violations.append(text)
        self.notify()

    # -- the world -------------------------------------------------------------------------

    def bot_permissions(self, channel: FakeChannel) -> int:
        """What the bot may do in ``channel`` (a denied channel loses the sending bits)."""
        granted = MEMBER_PERMISSIONS | BOT_PERMISSIONS
        return granted & ~DENIED_BITS if channel.denied else granted

    def cdn_url(self, channel_id: int, attachment: FakeAttachment) -> str:
        """A URL on this fake's CDN, signed like Discord's (ex = expiry, is = issued, hm)."""
        issued = int(self.now().timestamp())
        signature = hashlib.sha256(f"{attachment.id}:{issued}".encode()).hexdigest()
        return (
            f"{self.base_url}/attachments/{channel_id}/{attachment.id}/{attachment.filename}"
            f"?ex={issued + CDN_URL_LIFETIME_SECONDS:x}&is={issued:x}&hm={signature}&"
        )

    # -- rendering -------------------------------------------------------------------------

    def me_json(self) -> dict[str, Any]:
        """The bot's own user object, as ``/users/@me`` and READY show it."""
        body = self.users[self.bot_user_id].as_json()
        body.update({"verified": True, "mfa_enabled": False, "email": None, "locale": "en-US"})
        return body

    def message_json(self, message: FakeMessage, *, gateway: bool = False) -> dict[str, Any]:
        """A message object; ``gateway`` adds ``guild_id`` and the author's ``member``."""
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
            body["interaction_metadata"] = self.interaction_metadata(interaction, message)
        if gateway and message.guild_id is not None:
            guild = self.guilds[message.guild_id]
            body["guild_id"] = str(guild.id)
            roles = [guild.bot_role_id] if author.id == self.bot_user_id else []
            member = member_json(author, roles=roles, joined_at=guild.joined_at)
            member.pop("user")
            body["member"] = member
        return body

    def interaction_metadata(
        self, interaction: FakeInteraction, message: FakeMessage
    ) -> dict[str, Any]:
        """``interaction_metadata`` of a message that answers ``interaction``."""
        user = self.users[interaction.user_id]
        metadata: dict[str, Any] = {
            "id": str(interaction.id),
            "type": interaction.type,
            "user": user.as_json(),
            # In a DM the guild installation's owner is "0", as Discord writes it.
            "authorizing_integration_owners": {"0": str(interaction.guild_id or 0)},
        }
        if interaction.type == INTERACTION_APPLICATION_COMMAND:
            metadata["name"] = interaction.name
            metadata["command_type"] = interaction.payload["data"].get("type", 1)
        else:
            metadata["interacted_message_id"] = str(interaction.message_id)
        original = interaction.original_message
        if message is not original and original is not None:
            metadata["original_response_message_id"] = str(original.id)
        return metadata

    def channel_json(
        self, channel: FakeChannel, *, permissions: int | None = None
    ) -> dict[str, Any]:
        """A channel object (``permissions`` only inside interactions)."""
        recipient = self.users.get(channel.recipient_id or 0)
        return channel_json(
            channel, bot_user_id=self.bot_user_id, recipient=recipient, permissions=permissions
        )

    def guild_json(self, guild: FakeGuild) -> dict[str, Any]:
        """A guild object as ``GET /guilds/{id}`` shows it (GUILD_CREATE adds to it)."""
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
            "preferred_locale": guild.preferred_locale,
            "nsfw_level": 0,
            "nsfw": False,
            "premium_progress_bar_enabled": False,
            "incidents_data": None,
        }
