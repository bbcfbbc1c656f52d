"""The fake Discord's messages: channel and DM routes, and how a message is made and changed.

:class:`ChannelMessages` serves ``/channels/{id}`` (get), its ``messages`` (history, create,
get, edit, delete) and ``typing``, and ``POST /users/@me/channels`` (open a DM). It is also
where every message the bot sends is built, edited, deleted and stored, whichever route it
came through (interaction responses and webhooks use it too): a create or edit body is
checked against Discord's limits (:func:`~tests.fakes.discord_rules.check_message`, 400
50035), an empty message is 400 50006, a file over the guild's upload limit 413 40005, and
who would be pinged is worked out from ``allowed_mentions``. Stored, edited and deleted
messages are dispatched (MESSAGE_CREATE / UPDATE / DELETE) to the shard of their guild.

World refusals without a violation: a removed channel is 404 10003, a denied channel 403
50013 (send, typing), closed DMs 403 50007, an unknown message 404 10008, editing someone
else's message 403 50005. ``enforce_nonce`` repeats within Discord's 5-minute window return
the first message; history never shows nonces, as on Discord.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp import web

from tests.fakes.discord_gateway import (
    INTENT_DIRECT_MESSAGES,
    INTENT_GUILD_MESSAGES,
    DiscordGateway,
)
from tests.fakes.discord_models import (
    CHANNEL_DM,
    DEFAULT_UPLOAD_LIMIT,
    FLAG_COMPONENTS_V2,
    FLAG_EPHEMERAL,
    FLAG_LOADING,
    FLAG_SUPPRESS_EMBEDS,
    FLAG_SUPPRESS_NOTIFICATIONS,
    MANAGE_MESSAGES,
    FakeAttachment,
    FakeChannel,
    FakeMessage,
)
from tests.fakes.discord_rest import Rejected, RestCall, Route, invalid_form, json_response
from tests.fakes.discord_rules import FormError, check_message, pinged_by
from tests.fakes.discord_state import NONCE_WINDOW_SECONDS, DiscordState

# The flags a bot may set on a new message, and those an edit may change.
_CREATE_FLAGS = (
    FLAG_EPHEMERAL
    | FLAG_LOADING
    | FLAG_SUPPRESS_EMBEDS
    | FLAG_SUPPRESS_NOTIFICATIONS
    | FLAG_COMPONENTS_V2
)
_EDITABLE_FLAGS = FLAG_SUPPRESS_EMBEDS | FLAG_COMPONENTS_V2
_HISTORY_MAX = 100


class ChannelMessages:
    """Channel and DM routes, and the one place messages are built, edited and stored."""

    def __init__(self, state: DiscordState, gateway: DiscordGateway) -> None:
        self.state = state
        self.gateway = gateway
        # The first message of each (channel, nonce) sent with enforce_nonce.
        self._nonces: dict[tuple[int, str], FakeMessage] = {}

    def routes(self) -> list[Route]:
        """What this module serves."""
        return [
            Route("POST", "/users/@me/channels", self._create_dm),
            Route("GET", "/channels/{channel_id}", self._get_channel),
            Route("GET", "/channels/{channel_id}/messages", self._get_history),
            Route("POST", "/channels/{channel_id}/messages", self._post_message),
            Route("GET", "/channels/{channel_id}/messages/{message_id}", self._get_message),
            Route("PATCH", "/channels/{channel_id}/messages/{message_id}", self._edit_message),
            Route("DELETE", "/channels/{channel_id}/messages/{message_id}", self._delete_message),
            Route("POST", "/channels/{channel_id}/typing", self._typing),
        ]

    # -- building, editing, storing --------------------------------------------------------

    def build(
        self, channel_id: int, body: dict[str, Any], files: list[FakeAttachment]
    ) -> FakeMessage:
        """A bot message from a create body (not stored yet)."""
        state = self.state
        channel = state.channels[channel_id]
        content = body.get("content") or ""
        mentions = body.get("allowed_mentions")
        message = FakeMessage(
            id=state.new_id(),
            channel_id=channel_id,
            guild_id=channel.guild_id,
            author_id=state.bot_user_id,
            content=content,
            embeds=list(body.get("embeds") or []),
            components=list(body.get("components") or []),
            attachments=self._attachments_from(channel_id, body, files, keep=[]),
            nonce=body.get("nonce"),
            flags=int(body.get("flags") or 0) & _CREATE_FLAGS,
            created_at=state.now(),
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
        state = self.state
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
                id=state.new_id(),
                filename=str(entry.get("filename") or upload.filename),
                data=upload.data,
                content_type=upload.content_type,
                description=entry.get("description"),
            )
            attachment.url = state.cdn_url(channel_id, attachment)
            state.cdn[attachment.id] = attachment
            result.append(attachment)
        return result

    @staticmethod
    def require_content(message: FakeMessage, where: str, body: dict[str, Any]) -> None:
        """400 50006 unless the message has something to show."""
        has_body = bool(body.get("sticker_ids") or body.get("poll"))
        if not (
            message.content
            or message.embeds
            or message.components
            or message.attachments
            or has_body
        ):
            raise Rejected(400, 50006, "Cannot send an empty message", f"{where}: empty message")

    def check_upload_limit(
        self, channel: FakeChannel, files: list[FakeAttachment], where: str
    ) -> None:
        """413 40005 for a file over the guild's upload limit (10 MiB outside guilds)."""
        guild = self.state.guilds.get(channel.guild_id or 0)
        limit = guild.upload_limit if guild is not None else DEFAULT_UPLOAD_LIMIT
        for upload in files:
            if upload.size > limit:
                raise Rejected(
                    413,
                    40005,
                    "Request entity too large",
                    f"{where}: {upload.filename} is {upload.size} bytes (limit {limit})",
                )

    def edit(
        self, message: FakeMessage, body: dict[str, Any], files: list[FakeAttachment], where: str
    ) -> None:
        """Apply an edit body; the previous version goes to ``message.edits``."""
        state = self.state
        draft = message.snapshot()
        if "content" in body:
            draft.content = body["content"] or ""
        if "embeds" in body:
            draft.embeds = list(body["embeds"] or [])
        if "components" in body:
            draft.components = list(body["components"] or [])
        if "flags" in body and body["flags"] is not None:
            keep = message.flags & FLAG_EPHEMERAL
            draft.flags = keep | (int(body["flags"]) & _EDITABLE_FLAGS)
        if "allowed_mentions" in body and isinstance(body["allowed_mentions"], dict):
            draft.allowed_mentions = body["allowed_mentions"]
        if "attachments" in body or files:
            draft.attachments = self._attachments_from(
                message.channel_id, body, files, keep=list(message.attachments)
            )
        draft.flags &= ~FLAG_LOADING
        self.require_content(draft, where, body)
        message.edits.append(message.snapshot())
        if not message.loading:
            message.edited_at = state.now()
        for name in ("content", "embeds", "components", "flags", "allowed_mentions", "attachments"):
            setattr(message, name, getattr(draft, name))
        replied = state.messages_by_id.get(message.reference_id or 0)
        message.pinged = pinged_by(
            message.content,
            message.allowed_mentions,
            replied_user_id=None if replied is None else replied.author_id,
        )
        self.gateway.dispatch_message("MESSAGE_UPDATE", message)
        state.notify()

    def delete(self, message: FakeMessage) -> None:
        """Mark it deleted; MESSAGE_DELETE unless only its author could see it."""
        message.deleted = True
        channel = self.state.channels[message.channel_id]
        if not message.ephemeral:
            payload: dict[str, Any] = {"id": str(message.id), "channel_id": str(channel.id)}
            if channel.guild_id is not None:
                payload["guild_id"] = str(channel.guild_id)
            intent = INTENT_GUILD_MESSAGES if channel.guild_id else INTENT_DIRECT_MESSAGES
            self.gateway.dispatch(
                "MESSAGE_DELETE", payload, guild_id=channel.guild_id, intent=intent
            )
        self.state.notify()

    def store(self, message: FakeMessage) -> None:
        """Keep a new message in its channel and dispatch MESSAGE_CREATE."""
        state = self.state
        state.messages.setdefault(message.channel_id, []).append(message)
        state.messages_by_id[message.id] = message
        for observe in state.message_observers:
            observe(message)
        self.gateway.dispatch_message("MESSAGE_CREATE", message)
        state.notify()

    # -- channels and messages -------------------------------------------------------------

    def _live_channel(self, call: RestCall) -> FakeChannel:
        channel = self.state.channels.get(int(call.params["channel_id"]))
        if channel is None or channel.removed:
            raise Rejected(404, 10003, "Unknown Channel")
        return channel

    def _channel_message(self, call: RestCall, channel: FakeChannel) -> FakeMessage:
        message = self.state.messages_by_id.get(int(call.params["message_id"]))
        if (
            message is None
            or message.channel_id != channel.id
            or message.deleted
            or message.ephemeral
        ):
            raise Rejected(404, 10008, "Unknown Message")
        return message

    async def _get_channel(self, call: RestCall) -> web.Response:
        return json_response(200, self.state.channel_json(self._live_channel(call)))

    async def _get_history(self, call: RestCall) -> web.Response:
        state = self.state
        channel = self._live_channel(call)
        limit = max(1, min(_HISTORY_MAX, int(call.query.get("limit", "50"))))
        visible = [
            m for m in state.messages.get(channel.id, []) if not m.deleted and not m.ephemeral
        ]
        # Discord echoes a nonce only to the request that created the message, never in
        # history: a client must recognise its own posts by their content.
        listed = [state.message_json(m) for m in reversed(visible[-limit:])]
        for body in listed:
            body.pop("nonce", None)
        return json_response(200, listed)

    async def _post_message(self, call: RestCall) -> web.Response:
        state = self.state
        channel = self._live_channel(call)
        where = f"POST /channels/{channel.id}/messages"
        if channel.type == CHANNEL_DM:
            recipient = state.users.get(channel.recipient_id or 0)
            if recipient is not None and recipient.dms_blocked:
                raise Rejected(403, 50007, "Cannot send messages to this user")
        elif channel.denied:
            raise Rejected(403, 50013, "Missing Permissions")
        body = call.json_object
        errors = check_message(body, allow_ephemeral=False)
        if errors:
            raise invalid_form(where, errors)
        self.check_upload_limit(channel, call.files, where)
        message = self.build(channel.id, body, call.files)
        self.require_content(message, where, body)
        reference = body.get("message_reference")
        if isinstance(reference, dict) and reference.get("message_id") is not None:
            target = state.messages_by_id.get(int(reference["message_id"]))
            if target is None or target.deleted or target.channel_id != channel.id:
                if reference.get("fail_if_not_exists", True):
                    error = FormError(
                        ("message_reference",), "REPLIES_UNKNOWN_MESSAGE", "Unknown message"
                    )
                    raise invalid_form(where, [error])
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
            if first is not None and state.now() - first.created_at <= window:
                state.nonce_replays += 1
                return json_response(200, state.message_json(first))
            self._nonces[key] = message
        self.store(message)
        return json_response(200, state.message_json(message))

    async def _get_message(self, call: RestCall) -> web.Response:
        channel = self._live_channel(call)
        return json_response(200, self.state.message_json(self._channel_message(call, channel)))

    async def _edit_message(self, call: RestCall) -> web.Response:
        channel = self._live_channel(call)
        message = self._channel_message(call, channel)
        where = f"PATCH /channels/{channel.id}/messages/{message.id}"
        if message.author_id != self.state.bot_user_id:
            raise Rejected(403, 50005, "Cannot edit a message authored by another user")
        body = call.json_object
        errors = check_message(body, allow_ephemeral=False)
        if errors:
            raise invalid_form(where, errors)
        self.check_upload_limit(channel, call.files, where)
        self.edit(message, body, call.files, where)
        return json_response(200, self.state.message_json(message))

    async def _delete_message(self, call: RestCall) -> web.Response:
        channel = self._live_channel(call)
        message = self._channel_message(call, channel)
        if message.author_id != self.state.bot_user_id and not (
            self.state.bot_permissions(channel) & MANAGE_MESSAGES
        ):
            raise Rejected(403, 50013, "Missing Permissions")
        self.delete(message)
        return web.Response(status=204)

    async def _typing(self, call: RestCall) -> web.Response:
        channel = self._live_channel(call)
        if channel.denied:
            raise Rejected(403, 50013, "Missing Permissions")
        return web.Response(status=204)

    async def _create_dm(self, call: RestCall) -> web.Response:
        state = self.state
        body = call.json_object
        try:
            user = state.users[int(body.get("recipient_id", 0))]
        except (KeyError, TypeError, ValueError):
            user = None
        if user is None or user.bot:
            raise Rejected(400, 50033, "Invalid Recipient(s)")
        if user.dm_channel_id is None:
            channel = FakeChannel(id=state.new_id(), type=CHANNEL_DM, recipient_id=user.id)
            state.channels[channel.id] = channel
            user.dm_channel_id = channel.id
        return json_response(200, state.channel_json(state.channels[user.dm_channel_id]))
