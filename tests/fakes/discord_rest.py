"""The fake Discord's REST API: routing, auth, injected faults, and the small resources.

Every request under ``/api/v{version}/`` goes through :meth:`DiscordRest.handle`: it is
recorded in ``requests`` (path relative to ``/api/v10``, JSON body or ``payload_json``, files,
the status answered), matched against the route table (404 ``{"code": 0}`` for an unknown
route, 405 for a known path with the wrong verb, both written to ``unknown_routes``), its body
read (400 50109 for invalid JSON), its ``Authorization: Bot <token>`` checked where Discord
checks it (not on interaction callbacks and webhooks: their token is in the URL), and then an
injected fault (:meth:`DiscordRest.fail_next`) answers instead of the handler, or a delay
(:meth:`DiscordRest.delay_next`) lets the handler act and answers late. A request whose files
exceed 25 MiB is 413 40005.

Handlers raise :class:`Rejected` for Discord's refusals; this module turns each into
Discord's JSON error and, when the bot broke a rule, writes it to ``rule_violations`` as
``"<what> -> <status> <code>"``. Injected 429s look like Discord's own (JSON
``retry_after``, ``Via``, ``X-RateLimit-*``) so discord.py waits and retries them.

Resources here: the bot user and others, the application, ``/gateway`` and ``/gateway/bot``
(which reports the application's shard count), application commands (bulk overwrite, with
Discord's 200 creations a day per scope, and their localizations stored and checked by
:mod:`tests.fakes.discord_locales`), and guilds, channels and members of guilds.
Messages and DMs are in :mod:`tests.fakes.discord_rest_messages`, interaction callbacks and
webhooks in :mod:`tests.fakes.discord_rest_interactions`; they add their routes here.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web

from tests.fakes.discord_locales import check_localizations
from tests.fakes.discord_models import FakeAttachment, FakeGuild, FakeRequest, member_json
from tests.fakes.discord_rules import FormError, check_commands, invalid_form_body
from tests.fakes.discord_state import (
    API_VERSION,
    DAILY_COMMAND_CREATES,
    MAX_REQUEST_BYTES,
    DiscordState,
)

# Query values Discord reads as true (``?wait=true``, ``?with_response=1``).
TRUE_VALUES = ("1", "true", "True")


class Rejected(Exception):
    """Discord refuses the request: HTTP ``status`` with JSON ``code`` and ``message``.

    ``violation`` says which rule the bot broke (written to ``rule_violations``); refusals
    that are part of the world (a removed channel, blocked DMs) carry none. ``body`` replaces
    the default ``{"message", "code"}`` body.
    """

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        violation: str | None = None,
        *,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.violation = violation
        self.body = body if body is not None else {"message": message, "code": code}
        self.headers = headers


def invalid_form(where: str, errors: list[FormError]) -> Rejected:
    """400 50035 "Invalid Form Body" with Discord's nested ``errors`` for ``errors``."""
    text = "; ".join(e.describe() for e in errors)
    return Rejected(
        400, 50035, "Invalid Form Body", f"{where}: {text}", body=invalid_form_body(errors)
    )


def json_response(status: int, body: Any, *, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response whose Content-Type is exactly ``application/json`` (discord.py's test)."""
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )


@dataclass
class RestCall:
    """What a REST handler gets: the request, its record, the route's params, body and files."""

    request: web.Request
    record: FakeRequest
    params: dict[str, str]
    body: Any
    files: list[FakeAttachment]

    @property
    def query(self) -> dict[str, str]:
        """The query string."""
        return self.record.query

    @property
    def json_object(self) -> dict[str, Any]:
        """The body if it is a JSON object, else ``{}``."""
        return self.body if isinstance(self.body, dict) else {}


Handler = Callable[[RestCall], Awaitable[web.Response]]


@dataclass(frozen=True)
class Route:
    """``method template`` served by ``handler``; ``auth`` says whether it needs the bot token.

    In ``template``, ``{token}`` matches any segment, ``{message_id}`` an id or ``@original``,
    every other placeholder an id.
    """

    method: str
    template: str
    handler: Handler
    auth: bool = True


@dataclass
class InjectedFault:
    """A fault a test queued for the next ``remaining`` matching requests."""

    remaining: int
    status: int
    method: str | None
    path_contains: str | None
    retry_after: float
    code: int | None
    # A delay fault carries out the request and answers this many seconds late.
    delay: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        """Whether it applies to ``method path`` (and has uses left)."""
        return (
            self.remaining > 0
            and (self.method is None or self.method.upper() == method)
            and (self.path_contains is None or self.path_contains in path)
        )


class DiscordRest:
    """The ``/api/v{version}/...`` endpoint: one route table, shared plumbing."""

    def __init__(self, state: DiscordState) -> None:
        self.state = state
        self.faults: list[InjectedFault] = []
        self.delays: list[InjectedFault] = []
        # Creation times of new commands per scope (None = global), for the daily limit.
        self._command_creates: dict[int | None, list[datetime]] = {}
        self.routes: list[Route] = []
        self.add_routes(self._own_routes())

    def add_routes(self, routes: list[Route]) -> None:
        """Serve ``routes`` too (literal routes such as ``/users/@me`` before patterns)."""
        self.routes.extend(routes)

    def _own_routes(self) -> list[Route]:
        app = "{app}"
        return [
            Route("GET", "/users/@me", self._get_me),
            Route("GET", "/users/@me/guilds", self._get_my_guilds),
            Route("GET", "/users/{user_id}", self._get_user),
            Route("GET", "/oauth2/applications/@me", self._get_application),
            Route("GET", "/applications/@me", self._get_application),
            Route("GET", "/gateway", self._get_gateway, auth=False),
            Route("GET", "/gateway/bot", self._get_gateway_bot),
            Route("GET", f"/applications/{app}/commands", self._get_commands),
            Route("PUT", f"/applications/{app}/commands", self._put_commands),
            Route("GET", f"/applications/{app}/guilds/{{guild_id}}/commands", self._get_commands),
            Route("PUT", f"/applications/{app}/guilds/{{guild_id}}/commands", self._put_commands),
            Route("GET", "/guilds/{guild_id}", self._get_guild),
            Route("GET", "/guilds/{guild_id}/channels", self._get_guild_channels),
            Route("GET", "/guilds/{guild_id}/members/{user_id}", self._get_member),
        ]

    # -- faults ----------------------------------------------------------------------------

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
        """Answer the next ``n`` matching requests with ``status`` (see FakeDiscord.fail_next)."""
        self.faults.append(InjectedFault(n, status, method, path_contains, retry_after, code))

    def delay_next(
        self, n: int, seconds: float, *, method: str | None = None, path_contains: str | None = None
    ) -> None:
        """Act on the next ``n`` matching requests, then answer ``seconds`` late."""
        self.delays.append(InjectedFault(n, 200, method, path_contains, 0.0, None, delay=seconds))

    # -- plumbing --------------------------------------------------------------------------

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | str | None:
        """The route for ``method path``, or the allowed verb (a string) if only that is wrong."""
        parts = path.strip("/").split("/")
        wrong_method: str | None = None
        for route in self.routes:
            tparts = route.template.strip("/").split("/")
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
                if route.method == method:
                    return route, params
                wrong_method = route.method
        return wrong_method

    async def handle(self, request: web.Request) -> web.Response:
        """The aiohttp handler for ``/api/v{version}/{tail}``."""
        state = self.state
        path = "/" + request.match_info["tail"]
        record = FakeRequest(
            method=request.method,
            path=path,
            query=dict(request.query),
            json=None,
            headers=dict(request.headers),
            at=state.now(),
        )
        state.requests.append(record)
        try:
            response = await self._handle(request, record, path)
        except Rejected as rejected:
            if rejected.violation is not None:
                state.violation(f"{rejected.violation} -> {rejected.status} {rejected.code}")
            response = json_response(rejected.status, rejected.body, headers=rejected.headers)
        record.status = response.status
        state.notify()
        return response

    async def _handle(self, request: web.Request, record: FakeRequest, path: str) -> web.Response:
        if request.match_info["version"] != str(API_VERSION):
            return self._unknown_route(request.method, path)
        matched = self.match(request.method, path)
        if matched is None:
            return self._unknown_route(request.method, path)
        if isinstance(matched, str):
            self.state.unknown_routes.append(f"{request.method} {path}")
            return json_response(405, {"message": "405: Method Not Allowed", "code": 0})
        route, params = matched
        body, files = await self._read_body(request)
        record.json, record.files = body, files
        if route.auth and request.headers.get("Authorization") != f"Bot {self.state.token}":
            raise Rejected(
                401, 0, "401: Unauthorized", f"{request.method} {path}: no valid bot token"
            )
        fault = next((f for f in self.faults if f.matches(request.method, path)), None)
        if fault is not None:
            fault.remaining -= 1
            return fault_response(fault, path)
        delay = next((f for f in self.delays if f.matches(request.method, path)), None)
        if delay is not None:
            delay.remaining -= 1
        total = sum(f.size for f in files)
        if total > MAX_REQUEST_BYTES:
            raise Rejected(
                413,
                40005,
                "Request entity too large",
                f"{request.method} {path}: {total} bytes of files is over the 25 MiB request cap",
            )
        response = await route.handler(RestCall(request, record, params, body, files))
        if delay is not None:
            self.state.notify()  # the effect is visible before the late answer
            await asyncio.sleep(delay.delay)
        return response

    def _unknown_route(self, method: str, path: str) -> web.Response:
        self.state.unknown_routes.append(f"{method} {path}")
        return json_response(404, {"message": "404: Not Found", "code": 0})

    async def _read_body(self, request: web.Request) -> tuple[Any, list[FakeAttachment]]:
        if not request.can_read_body:
            return None, []
        try:
            if request.content_type == "multipart/form-data":
                return await self._read_multipart(request)
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise Rejected(
                413, 40005, "Request entity too large", "request body too large"
            ) from None
        if not raw:
            return None, []
        try:
            return json.loads(raw), []
        except ValueError:
            raise Rejected(
                400,
                50109,
                "The request body contains invalid JSON.",
                f"{request.method} {request.path}: body is not JSON",
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
                    raise Rejected(
                        400, 50109, "The request body contains invalid JSON.", "bad payload_json"
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

    # -- the fake CDN (outside /api) -------------------------------------------------------

    async def cdn_file(self, request: web.Request) -> web.Response:
        """``GET /attachments/{channel_id}/{attachment_id}/{filename}``: the file's bytes."""
        attachment = self.state.cdn.get(int(request.match_info["attachment_id"]))
        if attachment is None or attachment.filename != request.match_info["filename"]:
            return web.Response(status=404, text="Not Found")
        return web.Response(
            body=attachment.data, content_type=attachment.content_type or "application/octet-stream"
        )

    # -- users, application, gateway -------------------------------------------------------

    async def _get_me(self, call: RestCall) -> web.Response:
        return json_response(200, self.state.me_json())

    async def _get_my_guilds(self, call: RestCall) -> web.Response:
        """The servers the bot is in, as partial guilds, by id after ``after`` (``limit``)."""
        after = int(call.query.get("after") or 0)
        limit = min(max(int(call.query.get("limit") or 200), 1), 200)
        ids = sorted(gid for gid in self.state.guilds if gid > after)[:limit]
        return json_response(
            200,
            [
                {
                    "id": str(gid),
                    "name": self.state.guilds[gid].name,
                    "icon": None,
                    "owner": False,
                    "permissions": "0",
                    "features": [],
                }
                for gid in ids
            ],
        )

    async def _get_user(self, call: RestCall) -> web.Response:
        user = self.state.users.get(int(call.params["user_id"]))
        if user is None:
            raise Rejected(404, 10013, "Unknown User")
        return json_response(200, user.as_json())

    async def _get_application(self, call: RestCall) -> web.Response:
        state = self.state
        bot = state.users[state.bot_user_id]
        return json_response(
            200,
            {
                "id": str(state.application_id),
                "name": bot.name,
                "icon": None,
                "description": "",
                "summary": "",
                "rpc_origins": [],
                "bot_public": False,
                "bot_require_code_grant": False,
                "bot": bot.as_json(),
                "owner": state.users[state.owner_id].as_json(),
                "team": None,
                "verify_key": "0" * 64,
                "flags": 0,
                "tags": [],
                "redirect_uris": [],
                "interactions_endpoint_url": None,
                "approximate_guild_count": len(state.guilds),
                "integration_types_config": {"0": {}},
            },
        )

    async def _get_gateway(self, call: RestCall) -> web.Response:
        return json_response(200, {"url": self.state.gateway_url})

    async def _get_gateway_bot(self, call: RestCall) -> web.Response:
        limit = {"total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1}
        body = {
            "url": self.state.gateway_url,
            "shards": self.state.shard_count,
            "session_start_limit": limit,
        }
        return json_response(200, body)

    # -- application commands --------------------------------------------------------------

    def _command_scope(self, call: RestCall) -> int | None:
        if int(call.params["app"]) != self.state.application_id:
            raise Rejected(403, 50001, "Missing Access")
        if "guild_id" not in call.params:
            return None
        guild_id = int(call.params["guild_id"])
        if guild_id not in self.state.guilds:
            raise Rejected(404, 10004, "Unknown Guild")
        return guild_id

    async def _get_commands(self, call: RestCall) -> web.Response:
        return json_response(200, self.state.synced_commands.get(self._command_scope(call), []))

    async def _put_commands(self, call: RestCall) -> web.Response:
        state = self.state
        scope = self._command_scope(call)
        where = f"PUT commands ({'global' if scope is None else f'guild {scope}'})"
        errors = check_commands(call.body) + check_localizations(call.body)
        if errors:
            raise invalid_form(where, errors)
        old = {(c["name"], c.get("type", 1)): c for c in state.synced_commands.get(scope, [])}
        new_keys = [
            (c["name"], c.get("type", 1))
            for c in call.body
            if (c["name"], c.get("type", 1)) not in old
        ]
        now = state.now()
        recent = [t for t in self._command_creates.get(scope, []) if now - t < timedelta(days=1)]
        if len(recent) + len(new_keys) > DAILY_COMMAND_CREATES:
            message = (
                "Max number of daily application command creates has been reached "
                f"({DAILY_COMMAND_CREATES})"
            )
            raise Rejected(
                429,
                30034,
                message,
                f"{where}: over {DAILY_COMMAND_CREATES} command creations in a day",
                body={"message": message, "code": 30034, "retry_after": 86400.0, "global": False},
                headers={"Via": "1.1 google", "Retry-After": "86400"},
            )
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
                "id": previous["id"] if previous else str(state.new_id()),
                "application_id": str(state.application_id),
                "version": str(state.new_id()),
                "type": kind,
            }
            if scope is not None:
                command["guild_id"] = str(scope)
            synced.append(command)
        state.synced_commands[scope] = synced
        return json_response(200, synced)

    # -- guilds ----------------------------------------------------------------------------

    def _known_guild(self, call: RestCall) -> FakeGuild:
        guild = self.state.guilds.get(int(call.params["guild_id"]))
        if guild is None:
            raise Rejected(404, 10004, "Unknown Guild")
        return guild

    async def _get_guild(self, call: RestCall) -> web.Response:
        guild = self._known_guild(call)
        body = self.state.guild_json(guild)
        if call.query.get("with_counts") in TRUE_VALUES:
            body["approximate_member_count"] = len(self.state.users)
            body["approximate_presence_count"] = 0
        return json_response(200, body)

    async def _get_guild_channels(self, call: RestCall) -> web.Response:
        state = self.state
        guild = self._known_guild(call)
        live = [state.channels[c] for c in guild.channels if not state.channels[c].removed]
        return json_response(200, [state.channel_json(c) for c in live])

    async def _get_member(self, call: RestCall) -> web.Response:
        state = self.state
        guild = self._known_guild(call)
        user = state.users.get(int(call.params["user_id"]))
        if user is None:
            raise Rejected(404, 10007, "Unknown Member")
        roles = [guild.bot_role_id] if user.id == state.bot_user_id else []
        return json_response(200, member_json(user, roles=roles, joined_at=guild.joined_at))


def fault_response(fault: InjectedFault, path: str) -> web.Response:
    """The answer to a request an injected fault matched (a 429 shaped like Discord's)."""
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
        return json_response(
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
    return json_response(
        fault.status, {"message": message, "code": fault.code if fault.code is not None else code}
    )
