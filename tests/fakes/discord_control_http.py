"""The fake Discord's control surface over HTTP, for a bot running as another process.

Each ``/_control/...`` route calls the in-process method of
:class:`~tests.fakes.discord_control.DiscordControl` with the same name and answers JSON;
bad arguments are 400 ``{"error": ...}``. The routes need no token: the fake listens on
127.0.0.1 only and exists for tests.

- ``POST /_control/guilds`` ``{"guild_id"?, "name"?, "channels"?, "owner_id"?, "user_id"?,
  "user_name"?}``: a guild (and a member) -> their ids;
- ``POST /_control/slash``, ``/_control/component``: a user acts -> the interaction's id and
  token;
- ``POST /_control/faults`` (``fail_next``), ``/_control/drop_gateway`` ``{"resumable"?,
  "shard"?}``, ``/_control/clock`` ``{"seconds"}``, ``/_control/channels/{id}/remove|deny``,
  ``/_control/users/{id}/block_dms``;
- ``GET /_control/messages?channel_id=``: messages as JSON; ``GET /_control/state``: whether
  every shard is ready, each shard's session, counters, interactions, rule violations,
  unknown routes, synced commands and guilds.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.fakes.discord_control import MEMBER_PERMISSIONS_STR, DiscordControl
from tests.fakes.discord_models import iso
from tests.fakes.discord_rest import json_response


class ControlRoutes:
    """The ``/_control`` routes of one fake."""

    def __init__(self, fake: DiscordControl) -> None:
        self.fake = fake

    def register(self, router: web.UrlDispatcher) -> None:
        """Add every control route to ``router``."""
        router.add_post("/_control/guilds", self._guilds)
        router.add_post("/_control/slash", self._slash)
        router.add_post("/_control/component", self._component)
        router.add_get("/_control/messages", self._messages)
        router.add_get("/_control/state", self._state)
        router.add_post("/_control/faults", self._faults)
        router.add_post("/_control/drop_gateway", self._drop_gateway)
        router.add_post("/_control/clock", self._clock)
        router.add_post("/_control/channels/{channel_id}/{action}", self._channel)
        router.add_post("/_control/users/{user_id}/block_dms", self._block_dms)

    async def _guilds(self, request: web.Request) -> web.Response:
        fake = self.fake
        body = await _json_body(request)
        try:
            guild = fake.add_guild(
                _opt_int(body.get("guild_id")),
                name=str(body.get("name", "Karaoke Club")),
                channels=[int(c) for c in body.get("channels") or []] or None,
                owner_id=_opt_int(body.get("owner_id")),
            )
        except ValueError as exc:
            return json_response(400, {"error": str(exc)})
        user = fake.add_user(_opt_int(body.get("user_id")), str(body.get("user_name", "singer")))
        return json_response(
            200,
            {
                "guild_id": str(guild.id),
                "channel_id": str(guild.channel_id),
                "channel_ids": [str(c) for c in guild.channels],
                "user_id": str(user.id),
            },
        )

    async def _slash(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        try:
            interaction = await self.fake.invoke_slash(
                guild_id=int(body["guild_id"]),
                channel_id=int(body["channel_id"]),
                user_id=int(body["user_id"]),
                name=str(body["name"]),
                options=body.get("options"),
                attachments=body.get("attachments"),
                permissions=str(body.get("permissions", MEMBER_PERMISSIONS_STR)),
            )
        except (KeyError, ValueError, RuntimeError) as exc:
            return json_response(400, {"error": str(exc)})
        return json_response(
            200, {"interaction_id": str(interaction.id), "token": interaction.token}
        )

    async def _component(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        try:
            interaction = await self.fake.invoke_component(
                guild_id=int(body["guild_id"]),
                channel_id=int(body["channel_id"]),
                user_id=int(body["user_id"]),
                message_id=int(body["message_id"]),
                custom_id=str(body["custom_id"]),
                component_type=int(body.get("component_type", 2)),
            )
        except (KeyError, ValueError, RuntimeError) as exc:
            return json_response(400, {"error": str(exc)})
        return json_response(
            200, {"interaction_id": str(interaction.id), "token": interaction.token}
        )

    async def _messages(self, request: web.Request) -> web.Response:
        fake = self.fake
        wanted = request.query.get("channel_id")
        if wanted is not None:
            found = fake.channel_messages(int(wanted))
        else:
            found = [m for ms in fake.messages.values() for m in ms]
        return json_response(200, [m.as_json() for m in found])

    async def _state(self, request: web.Request) -> web.Response:
        fake = self.fake
        return json_response(
            200,
            {
                "ready": fake.gateway.is_ready(),
                "shard_count": fake.shard_count,
                "shards": fake.gateway.shards_json(),
                "identify_count": fake.identify_count,
                "resume_count": fake.resume_count,
                "interactions": [i.as_json() for i in fake.interactions.values()],
                "rule_violations": fake.rule_violations,
                "unknown_routes": fake.unknown_routes,
                "synced_commands": {
                    ("global" if scope is None else str(scope)): commands
                    for scope, commands in fake.synced_commands.items()
                },
                "guilds": [
                    {
                        "id": str(g.id),
                        "name": g.name,
                        "channel_ids": [str(c) for c in g.channels],
                        "shard": fake.shard_of(g.id),
                    }
                    for g in fake.guilds.values()
                ],
                "request_count": len(fake.requests),
                "nonce_replays": fake.nonce_replays,
            },
        )

    async def _faults(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        try:
            self.fake.fail_next(
                int(body["n"]),
                int(body["status"]),
                method=body.get("method"),
                path_contains=body.get("path_contains"),
                retry_after=float(body.get("retry_after", 0.05)),
                code=_opt_int(body.get("code")),
            )
        except (KeyError, ValueError) as exc:
            return json_response(400, {"error": str(exc)})
        return json_response(200, {"ok": True})

    async def _drop_gateway(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        try:
            await self.fake.drop_gateway(
                resumable=bool(body.get("resumable", True)), shard=int(body.get("shard", 0))
            )
        except ValueError as exc:
            return json_response(400, {"error": str(exc)})
        except RuntimeError as exc:
            return json_response(409, {"error": str(exc)})
        return json_response(200, {"ok": True})

    async def _clock(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        self.fake.advance_clock(float(body.get("seconds", 0)))
        return json_response(200, {"now": iso(self.fake.now())})

    async def _channel(self, request: web.Request) -> web.Response:
        fake = self.fake
        channel_id = int(request.match_info["channel_id"])
        action = request.match_info["action"]
        if channel_id not in fake.channels:
            return json_response(404, {"error": f"no channel {channel_id}"})
        if action == "remove":
            fake.remove_channel(channel_id)
        elif action == "deny":
            fake.deny_channel(channel_id)
        else:
            return json_response(404, {"error": f"unknown action {action!r}"})
        return json_response(200, {"ok": True})

    async def _block_dms(self, request: web.Request) -> web.Response:
        self.fake.block_dms(int(request.match_info["user_id"]))
        return json_response(200, {"ok": True})


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
