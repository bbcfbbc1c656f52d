"""What the fake Discord stores: users, guilds, channels, messages, interactions, requests.

Each record knows how Discord would render it as JSON (``*_json`` functions below), so the
REST handlers, the gateway and the control endpoints all show the same objects.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

DISCORD_EPOCH_MS = 1_420_070_400_000

# Permission bits (https://discord.com/developers/docs/topics/permissions).
CREATE_INSTANT_INVITE = 1 << 0
ADMINISTRATOR = 1 << 3
MANAGE_GUILD = 1 << 5
ADD_REACTIONS = 1 << 6
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
MANAGE_MESSAGES = 1 << 13
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
MENTION_EVERYONE = 1 << 17
USE_EXTERNAL_EMOJIS = 1 << 18
CONNECT = 1 << 20
SPEAK = 1 << 21
CHANGE_NICKNAME = 1 << 26
USE_APPLICATION_COMMANDS = 1 << 31
SEND_MESSAGES_IN_THREADS = 1 << 38

TEXT_PERMISSIONS = (
    VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | ADD_REACTIONS
    | USE_EXTERNAL_EMOJIS
    | SEND_MESSAGES_IN_THREADS
)
# What an ordinary member may do in a channel (the default ``permissions`` of invoke_slash).
MEMBER_PERMISSIONS = (
    TEXT_PERMISSIONS
    | CREATE_INSTANT_INVITE
    | CHANGE_NICKNAME
    | CONNECT
    | SPEAK
    | USE_APPLICATION_COMMANDS
)
# The bot's managed role; a denied channel takes the sending bits away with an overwrite.
BOT_PERMISSIONS = TEXT_PERMISSIONS
DENIED_BITS = SEND_MESSAGES | EMBED_LINKS | ATTACH_FILES | SEND_MESSAGES_IN_THREADS

# Message flags.
FLAG_SUPPRESS_EMBEDS = 1 << 2
FLAG_EPHEMERAL = 1 << 6
FLAG_LOADING = 1 << 7
FLAG_SUPPRESS_NOTIFICATIONS = 1 << 12
FLAG_COMPONENTS_V2 = 1 << 15

CHANNEL_GUILD_TEXT = 0
CHANNEL_DM = 1

# Interaction types.
INTERACTION_APPLICATION_COMMAND = 2
INTERACTION_COMPONENT = 3
INTERACTION_AUTOCOMPLETE = 4

DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024


class Snowflakes:
    """Discord-shaped ids: milliseconds since 2015 in the top bits, always increasing."""

    def __init__(self) -> None:
        self._last = 0

    def next(self, moment: datetime) -> int:
        """A new id whose timestamp is ``moment`` (or just after the previous id)."""
        ms = int(moment.timestamp() * 1000) - DISCORD_EPOCH_MS
        candidate = ms << 22
        self._last = max(self._last + 1, candidate)
        return self._last


def shard_for(guild_id: int, shard_count: int) -> int:
    """The gateway shard that carries a guild's events: ``(guild_id >> 22) % shard_count``."""
    return (guild_id >> 22) % shard_count


def snowflake_time(snowflake: int) -> datetime:
    """The creation time encoded in a snowflake."""
    return datetime.fromtimestamp(((snowflake >> 22) + DISCORD_EPOCH_MS) / 1000, UTC)


def iso(moment: datetime | None) -> str | None:
    """Discord's timestamp form (ISO-8601 with offset)."""
    return None if moment is None else moment.astimezone(UTC).isoformat()


@dataclass
class FakeUser:
    """A Discord user the fake knows; every user is a member of every fake guild."""

    id: int
    name: str
    bot: bool = False
    dms_blocked: bool = False
    dm_channel_id: int | None = None

    def as_json(self) -> dict[str, Any]:
        """The user object."""
        return {
            "id": str(self.id),
            "username": self.name,
            "global_name": None if self.bot else self.name.title(),
            "discriminator": "0",
            "avatar": None,
            "bot": self.bot,
            "system": False,
            "public_flags": 0,
            "flags": 0,
            "banner": None,
            "accent_color": None,
            "avatar_decoration_data": None,
            "primary_guild": None,
            "collectibles": None,
        }


@dataclass
class FakeChannel:
    """A guild text channel or a DM channel."""

    id: int
    type: int
    name: str = ""
    guild_id: int | None = None
    position: int = 0
    recipient_id: int | None = None
    removed: bool = False
    denied: bool = False


@dataclass
class FakeGuild:
    """A guild with text channels. ``channels`` lists their ids in creation order."""

    id: int
    name: str
    owner_id: int
    channels: list[int]
    bot_role_id: int
    joined_at: datetime
    upload_limit: int = DEFAULT_UPLOAD_LIMIT
    unavailable: bool = False
    # The server's language (Community settings); Discord reports en-US for the others.
    preferred_locale: str = "en-US"
    # Roles besides @everyone and the bot's: id -> (name, permission bits).
    roles: dict[int, tuple[str, int]] = field(default_factory=dict)
    # Roles each member holds (user id -> role ids); everyone else holds none.
    member_roles: dict[int, list[int]] = field(default_factory=dict)

    @property
    def channel_id(self) -> int:
        """The first (default) channel."""
        return self.channels[0]


@dataclass
class FakeAttachment:
    """A file attached to a message (or offered to a slash command)."""

    id: int
    filename: str
    data: bytes = b""
    content_type: str | None = None
    description: str | None = None
    url: str = ""
    declared_size: int | None = None

    @property
    def size(self) -> int:
        """Bytes, as Discord reports them."""
        return self.declared_size if self.declared_size is not None else len(self.data)

    def as_json(self) -> dict[str, Any]:
        """The attachment object."""
        body: dict[str, Any] = {
            "id": str(self.id),
            "filename": self.filename,
            "size": self.size,
            "url": self.url,
            "proxy_url": self.url,
        }
        if self.content_type is not None:
            body["content_type"] = self.content_type
        if self.description is not None:
            body["description"] = self.description
        return body


@dataclass
class FakeMessage:
    """A message as the fake stores it. ``edits`` holds earlier versions, oldest first."""

    id: int
    channel_id: int
    author_id: int
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[FakeAttachment] = field(default_factory=list)
    nonce: str | int | None = None
    flags: int = 0
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    edited_at: datetime | None = None
    edits: list[FakeMessage] = field(default_factory=list)
    guild_id: int | None = None
    interaction_id: int | None = None
    webhook_id: int | None = None
    message_type: int = 0
    tts: bool = False
    reference_id: int | None = None
    allowed_mentions: dict[str, Any] | None = None
    # What would notify: {"users": [ids], "roles": [ids], "everyone": bool} (@here counts).
    pinged: dict[str, Any] = field(
        default_factory=lambda: {"users": [], "roles": [], "everyone": False}
    )
    deleted: bool = False

    @property
    def ephemeral(self) -> bool:
        """Only the invoking user sees it."""
        return bool(self.flags & FLAG_EPHEMERAL)

    @property
    def loading(self) -> bool:
        """A deferred response still showing "thinking"."""
        return bool(self.flags & FLAG_LOADING)

    @property
    def link_urls(self) -> list[str]:
        """The URLs of every link button, in order."""
        return [c["url"] for c in iter_components(self.components) if c.get("style") == 5]

    def snapshot(self) -> FakeMessage:
        """A copy of this version, without the edit history."""
        return replace(
            self,
            embeds=list(self.embeds),
            components=list(self.components),
            attachments=list(self.attachments),
            edits=[],
            pinged=dict(self.pinged),
        )

    def as_json(self) -> dict[str, Any]:
        """A JSON-able view for the control endpoints (attachments without their bytes)."""
        return {
            "id": str(self.id),
            "channel_id": str(self.channel_id),
            "guild_id": None if self.guild_id is None else str(self.guild_id),
            "author_id": str(self.author_id),
            "content": self.content,
            "embeds": self.embeds,
            "components": self.components,
            "attachments": [a.as_json() for a in self.attachments],
            "nonce": self.nonce,
            "flags": self.flags,
            "created_at": iso(self.created_at),
            "edited_at": iso(self.edited_at),
            "edit_count": len(self.edits),
            "interaction_id": None if self.interaction_id is None else str(self.interaction_id),
            "pinged": self.pinged,
            "deleted": self.deleted,
        }


@dataclass
class FakeInteractionResponse:
    """One initial response the bot sent (``type`` 4, 5, 6, 7 or 9), accepted or not."""

    type: int
    data: dict[str, Any] | None
    at: datetime
    accepted: bool = True


@dataclass
class FakeInteraction:
    """An interaction the fake dispatched, and what the bot did with it."""

    id: int
    token: str
    type: int
    guild_id: int | None
    channel_id: int
    user_id: int
    payload: dict[str, Any]
    created_at: datetime
    name: str | None = None
    custom_id: str | None = None
    message_id: int | None = None
    responses: list[FakeInteractionResponse] = field(default_factory=list)
    acked_at: datetime | None = None
    original_message: FakeMessage | None = None
    followups: list[FakeMessage] = field(default_factory=list)
    ephemeral: bool = False
    expired: bool = False
    # The choices of an accepted autocomplete answer (type 8).
    choices: list[dict[str, Any]] | None = None
    # The gateway shard of the interaction's guild, and whether a session of that shard took
    # the INTERACTION_CREATE (live, or kept for its RESUME); one that was not is never answered.
    shard: int = 0
    dispatched: bool = True

    @property
    def label(self) -> str:
        """``/name`` for a command, ``component 'custom_id'`` for a press (for messages)."""
        if self.name:
            return f"/{self.name}"
        return f"component {self.custom_id!r}"

    @property
    def acked(self) -> bool:
        """An initial response was accepted."""
        return self.acked_at is not None

    @property
    def response_type(self) -> int | None:
        """The accepted initial response's type."""
        accepted = [r for r in self.responses if r.accepted]
        return accepted[0].type if accepted else None

    @property
    def ack_latency(self) -> float | None:
        """Seconds from dispatch to the accepted initial response."""
        if self.acked_at is None:
            return None
        return (self.acked_at - self.created_at).total_seconds()

    def as_json(self) -> dict[str, Any]:
        """A JSON-able view for the control endpoints."""
        return {
            "id": str(self.id),
            "type": self.type,
            "name": self.name,
            "custom_id": self.custom_id,
            "guild_id": None if self.guild_id is None else str(self.guild_id),
            "channel_id": str(self.channel_id),
            "user_id": str(self.user_id),
            "created_at": iso(self.created_at),
            "acked_at": iso(self.acked_at),
            "ack_latency": self.ack_latency,
            "responses": [
                {"type": r.type, "data": r.data, "at": iso(r.at), "accepted": r.accepted}
                for r in self.responses
            ],
            "original_message_id": (
                None if self.original_message is None else str(self.original_message.id)
            ),
            "followup_ids": [str(m.id) for m in self.followups],
            "ephemeral": self.ephemeral,
            "expired": self.expired,
            "shard": self.shard,
            "dispatched": self.dispatched,
        }


@dataclass
class FakeRequest:
    """One REST request as received, and the status the fake answered."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    headers: dict[str, str]
    at: datetime
    files: list[FakeAttachment] = field(default_factory=list)
    status: int = 0


def new_interaction_token() -> str:
    """An opaque interaction token shaped like Discord's."""
    return "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(60)


def iter_components(components: list[Any]) -> list[dict[str, Any]]:
    """Every component at any depth (rows, sections and containers are walked)."""
    found: list[dict[str, Any]] = []
    for comp in components:
        if not isinstance(comp, dict):
            continue
        found.append(comp)
        children = comp.get("components")
        if isinstance(children, list):
            found.extend(iter_components(children))
        accessory = comp.get("accessory")
        if isinstance(accessory, dict):
            found.extend(iter_components([accessory]))
    return found


def role_json(
    role_id: int, name: str, permissions: int, *, bot_id: int | None = None
) -> dict[str, Any]:
    """A role object; ``bot_id`` makes it the bot's managed role."""
    body: dict[str, Any] = {
        "id": str(role_id),
        "name": name,
        "color": 0,
        "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
        "hoist": False,
        "icon": None,
        "unicode_emoji": None,
        "position": 0 if bot_id is None else 1,
        "permissions": str(permissions),
        "managed": bot_id is not None,
        "mentionable": False,
        "flags": 0,
    }
    if bot_id is not None:
        body["tags"] = {"bot_id": str(bot_id)}
    return body


def member_json(
    user: FakeUser,
    *,
    roles: list[int],
    joined_at: datetime,
    permissions: str | None = None,
) -> dict[str, Any]:
    """A guild member object (``permissions`` only inside interactions)."""
    body: dict[str, Any] = {
        "user": user.as_json(),
        "roles": [str(r) for r in roles],
        "joined_at": iso(joined_at),
        "nick": None,
        "avatar": None,
        "banner": None,
        "premium_since": None,
        "deaf": False,
        "mute": False,
        "pending": False,
        "flags": 0,
        "communication_disabled_until": None,
    }
    if permissions is not None:
        body["permissions"] = permissions
    return body


def channel_json(
    channel: FakeChannel,
    *,
    bot_user_id: int,
    recipient: FakeUser | None = None,
    permissions: int | None = None,
) -> dict[str, Any]:
    """A channel object. A denied channel carries an overwrite that removes the bot's sending."""
    if channel.type == CHANNEL_DM:
        return {
            "id": str(channel.id),
            "type": CHANNEL_DM,
            "last_message_id": None,
            "flags": 0,
            "recipients": [] if recipient is None else [recipient.as_json()],
        }
    overwrites: list[dict[str, Any]] = []
    if channel.denied:
        overwrites.append(
            {"id": str(bot_user_id), "type": 1, "allow": "0", "deny": str(DENIED_BITS)}
        )
    body: dict[str, Any] = {
        "id": str(channel.id),
        "type": channel.type,
        "guild_id": str(channel.guild_id),
        "name": channel.name,
        "position": channel.position,
        "permission_overwrites": overwrites,
        "nsfw": False,
        "topic": None,
        "parent_id": None,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "flags": 0,
    }
    if permissions is not None:
        body["permissions"] = str(permissions)
    return body
