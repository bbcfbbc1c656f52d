"""The fake Discord's gateway: websocket sessions the way discord.py 2.7 speaks to them.

Each websocket on ``/gateway`` gets HELLO (op 10) with the heartbeat interval; heartbeats
(op 1) are answered with op 11. IDENTIFY (op 2) opens a session: the token and intents are
checked (4004 wrong token, 4013 bad intents, 4014 privileged intents the application may not
use), then the session's shard. The application has ``shard_count`` shards and a session
belongs to one of them, ``shard: [id, count]`` from IDENTIFY (no ``shard`` means ``[0, 1]``,
refused with 4011 "Sharding required" when the application has more than one; a count other
than the application's is 4010 "Invalid shard"). The session is sent READY listing the guilds
of its shard, then GUILD_CREATE for each of them.

Dispatches are routed as Discord routes them: an event about a guild goes to the current
session of the shard ``(guild_id >> 22) % shard_count``, an event without a guild (a DM) to
shard 0's. Every dispatch gets the session's next sequence number and is kept, so a client
whose socket dropped can RESUME (op 6) and have what it missed replayed; a newer IDENTIFY for
the same shard, or a clean close (1000/1001), ends the old session and its RESUME is
answered "invalid session" (op 9). A shard with no usable session drops what is sent to it.
Several sessions, one per shard, may be connected at once, from one process or several.

Frames are plain JSON text (no compression, no ETF); one writer task per socket keeps them in
order. Close codes: 4001 unknown opcode, 4002 decode error, 4003 not authenticated,
4005 already authenticated, 4012 invalid API version, and those above.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from tests.fakes.discord_models import FakeGuild, FakeMessage, iso, member_json
from tests.fakes.discord_state import API_VERSION, EVENT_LOG_LIMIT, DiscordState

# Gateway intents (https://discord.com/developers/docs/events/gateway#gateway-intents).
INTENT_GUILDS = 1 << 0
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_PRESENCES = 1 << 8
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = INTENT_GUILD_MEMBERS | INTENT_GUILD_PRESENCES | INTENT_MESSAGE_CONTENT

# Opcodes a client may send after IDENTIFY besides heartbeats: presence, voice state, members.
_ACCEPTED_OPS = (3, 4, 8)


@dataclass(eq=False)
class GatewayConnection:
    """One websocket; frames go out in order through ``outbox`` and one writer task."""

    ws: web.WebSocketResponse
    outbox: asyncio.Queue[dict[str, Any] | None] = field(default_factory=asyncio.Queue)
    session: GatewaySession | None = None
    writer: asyncio.Task[None] | None = None


@dataclass(eq=False)
class GatewaySession:
    """A gateway session of one shard; it outlives its connection so a RESUME can replay."""

    id: str
    intents: int
    # (shard id, shard count); ``shard_sent`` says whether IDENTIFY named it (READY echoes it).
    shard: tuple[int, int]
    shard_sent: bool = False
    seq: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    conn: GatewayConnection | None = None
    resumable: bool = True
    ready: bool = False

    @property
    def shard_id(self) -> int:
        """Which shard this session carries."""
        return self.shard[0]

    @property
    def live(self) -> bool:
        """READY was sent and the socket is still open."""
        return self.ready and self.conn is not None


class DiscordGateway:
    """The ``/gateway`` websocket endpoint and the sessions behind it.

    ``heartbeat_interval`` is the HELLO interval in seconds. ``privileged_intents`` says
    whether the application may ask for members, presences and message content.
    """

    def __init__(
        self, state: DiscordState, *, heartbeat_interval: float, privileged_intents: bool
    ) -> None:
        self.state = state
        self.heartbeat_interval = heartbeat_interval
        self.privileged_intents = privileged_intents
        # Every session by id (a RESUME names one), and the newest session of each shard.
        self.sessions: dict[str, GatewaySession] = {}
        self.current: dict[int, GatewaySession] = {}
        self.connections: set[GatewayConnection] = set()

    # -- what tests and the other modules ask ----------------------------------------------

    def session_for(self, guild_id: int | None) -> GatewaySession | None:
        """The session that carries events of ``guild_id`` (None: a DM, shard 0), if any."""
        return self.current.get(self.state.shard_of(guild_id))

    def takes_events(self, guild_id: int | None) -> bool:
        """Whether a dispatch about ``guild_id`` would be sent or kept for a RESUME now."""
        session = self.session_for(guild_id)
        return session is not None and session.resumable and session.ready

    def has_any_session(self) -> bool:
        """Whether any shard has a session that could still take a dispatch."""
        return any(s.resumable and s.ready for s in self.current.values())

    def is_ready(self, shard: int | None = None) -> bool:
        """Shard ``shard`` (default: every shard) has a live session that was sent READY."""
        shards = range(self.state.shard_count) if shard is None else [shard]
        return all(s in self.current and self.current[s].live for s in shards)

    def shards_json(self) -> list[dict[str, Any]]:
        """Each shard's current session, for ``/_control/state``."""
        listed: list[dict[str, Any]] = []
        for shard in range(self.state.shard_count):
            session = self.current.get(shard)
            listed.append(
                {
                    "shard": [shard, self.state.shard_count],
                    "session_id": None if session is None else session.id,
                    "ready": session is not None and session.live,
                    "resumable": session is not None and session.resumable,
                    "seq": 0 if session is None else session.seq,
                }
            )
        return listed

    # -- dispatching -----------------------------------------------------------------------

    def dispatch(
        self, event: str, data: dict[str, Any], *, guild_id: int | None, intent: int | None = None
    ) -> bool:
        """Send to the session of ``guild_id``'s shard, or keep it for that session's RESUME.

        Dropped (False) when the shard has no ready, resumable session, or the session did not
        ask for ``intent``.
        """
        session = self.session_for(guild_id)
        if session is None or not session.resumable or not session.ready:
            return False
        if intent is not None and not session.intents & intent:
            return False
        self._send(session, event, data)
        return True

    def dispatch_message(self, event: str, message: FakeMessage) -> None:
        """MESSAGE_CREATE / MESSAGE_UPDATE of a non-ephemeral message to its shard."""
        if message.ephemeral:
            return
        state = self.state
        channel = state.channels[message.channel_id]
        intent = INTENT_GUILD_MESSAGES if channel.guild_id else INTENT_DIRECT_MESSAGES
        payload = state.message_json(message, gateway=True)
        session = self.session_for(channel.guild_id)
        hidden = (
            session is not None
            and not session.intents & INTENT_MESSAGE_CONTENT
            and message.author_id != state.bot_user_id
            and channel.guild_id is not None
            and state.bot_user_id not in message.pinged["users"]
        )
        if hidden:
            # Without the Message Content intent Discord blanks other users' messages.
            payload.update(content="", embeds=[], attachments=[], components=[])
        self.dispatch(event, payload, guild_id=channel.guild_id, intent=intent)

    def announce_guild(self, guild: FakeGuild) -> None:
        """GUILD_CREATE for a guild the bot just joined, to its shard's session."""
        self.dispatch(
            "GUILD_CREATE", self._guild_create(guild), guild_id=guild.id, intent=INTENT_GUILDS
        )

    def _send(self, session: GatewaySession, event: str, data: dict[str, Any]) -> None:
        session.seq += 1
        frame = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.events.append(frame)
        if len(session.events) > EVENT_LOG_LIMIT:
            del session.events[: len(session.events) - EVENT_LOG_LIMIT]
        if session.conn is not None:
            session.conn.outbox.put_nowait(frame)

    # -- faults and shutdown ---------------------------------------------------------------

    async def drop(self, shard: int = 0, *, resumable: bool = True) -> None:
        """Close ``shard``'s websocket with 4000 (see ``FakeDiscord.drop_gateway``)."""
        session = self.current.get(shard)
        conn = session.conn if session is not None else None
        if session is None or conn is None:
            raise RuntimeError(f"no connected gateway session for shard {shard}")
        session.resumable = resumable
        session.conn = None
        conn.session = None
        await conn.ws.close(code=4000, message=b"fake drop")

    async def close(self) -> None:
        """Close every websocket (1001) and stop their writers."""
        for conn in list(self.connections):
            if conn.session is not None:
                conn.session.conn = None
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1001, message=b"fake Discord is closing")
            if conn.writer is not None:
                conn.writer.cancel()
                await asyncio.gather(conn.writer, return_exceptions=True)
        self.connections.clear()

    # -- the websocket ---------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """The ``GET /gateway`` route: one websocket, from HELLO until it closes."""
        ws = web.WebSocketResponse(max_msg_size=0, autoping=True)
        await ws.prepare(request)
        conn = GatewayConnection(ws)
        self.connections.add(conn)
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
            self.connections.discard(conn)
            self.state.notify()
        return ws

    async def _write_frames(self, conn: GatewayConnection) -> None:
        while True:
            frame = await conn.outbox.get()
            if frame is None or conn.ws.closed:
                return
            try:
                await conn.ws.send_str(json.dumps(frame))
            except (ConnectionError, RuntimeError):
                return

    async def _on_frame(self, conn: GatewayConnection, text: str) -> None:
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
        elif conn.session is None and op in _ACCEPTED_OPS:
            await conn.ws.close(code=4003, message=b"Not authenticated.")
        elif op not in _ACCEPTED_OPS:
            await conn.ws.close(code=4001, message=b"Unknown opcode.")

    def _token_ok(self, token: object) -> bool:
        return token in (self.state.token, f"Bot {self.state.token}")

    async def _refuse(self, conn: GatewayConnection, code: int, reason: str, text: str) -> None:
        """Close with ``code`` and record the breach as a rule violation."""
        self.state.violation(f"{text}: closed {code}")
        await conn.ws.close(code=code, message=reason.encode())

    async def _identify(self, conn: GatewayConnection, data: dict[str, Any]) -> None:
        state = self.state
        if conn.session is not None:
            await conn.ws.close(code=4005, message=b"Already authenticated.")
            return
        if not self._token_ok(data.get("token")):
            await self._refuse(
                conn, 4004, "Authentication failed.", "gateway IDENTIFY with a wrong token"
            )
            return
        intents = data.get("intents")
        if not isinstance(intents, int) or intents < 0:
            await conn.ws.close(code=4013, message=b"Invalid intent(s).")
            return
        if intents & PRIVILEGED_INTENTS and not self.privileged_intents:
            await self._refuse(
                conn,
                4014,
                "Disallowed intent(s).",
                f"IDENTIFY asked for privileged intents ({intents})",
            )
            return
        shard = await self._shard_of_identify(conn, data.get("shard"))
        if shard is None:
            return
        old = self.current.get(shard[0])
        if old is not None:
            # A new session for the same shard replaces the old one (it can no longer resume).
            old.resumable = False
        session = GatewaySession(
            id=secrets.token_hex(16),
            intents=intents,
            shard=shard,
            shard_sent=data.get("shard") is not None,
            conn=conn,
        )
        conn.session = session
        self.sessions[session.id] = session
        self.current[shard[0]] = session
        state.identify_count += 1
        guilds = [g for g in state.guilds.values() if state.shard_of(g.id) == shard[0]]
        self._send(session, "READY", self._ready(session, guilds))
        if intents & INTENT_GUILDS:
            for guild in guilds:
                self._send(session, "GUILD_CREATE", self._guild_create(guild))
        session.ready = True
        state.notify()

    async def _shard_of_identify(
        self, conn: GatewayConnection, raw: object
    ) -> tuple[int, int] | None:
        """The (id, count) an IDENTIFY asks for, or None once the socket is closed for it."""
        count = self.state.shard_count
        if raw is None:
            if count == 1:
                return (0, 1)
            await self._refuse(
                conn,
                4011,
                "Sharding required.",
                f"IDENTIFY without a shard while the application has {count} shards",
            )
            return None
        shard: tuple[int, int] | None = None
        if isinstance(raw, list) and len(raw) == 2 and all(isinstance(n, int) for n in raw):
            shard = (raw[0], raw[1])
        if shard is None or not 0 <= shard[0] < shard[1] or shard[1] != count:
            await self._refuse(
                conn,
                4010,
                "Invalid shard.",
                f"IDENTIFY with shard {raw!r} while the application has {count} shard(s)",
            )
            return None
        return shard

    async def _resume(self, conn: GatewayConnection, data: dict[str, Any]) -> None:
        state = self.state
        if not self._token_ok(data.get("token")):
            await self._refuse(
                conn, 4004, "Authentication failed.", "gateway RESUME with a wrong token"
            )
            return
        session = self.sessions.get(str(data.get("session_id")))
        seq = data.get("seq")
        oldest = session.events[0]["s"] if session and session.events else 1
        # A session stops being resumable when a newer IDENTIFY of its shard replaces it.
        if session is None or not session.resumable or not isinstance(seq, int) or seq < oldest - 1:
            conn.outbox.put_nowait({"op": 9, "d": False})
            return
        if session.conn is not None and session.conn is not conn:
            session.conn.session = None
        session.conn = conn
        conn.session = session
        for frame in session.events:
            if frame["s"] > seq:
                state.replayed_events.append(frame["t"])
                conn.outbox.put_nowait(frame)
        state.resume_count += 1
        self._send(session, "RESUMED", {"_trace": ["fake-discord"]})
        state.notify()

    # -- payloads --------------------------------------------------------------------------

    def _ready(self, session: GatewaySession, guilds: list[FakeGuild]) -> dict[str, Any]:
        state = self.state
        body: dict[str, Any] = {
            "v": API_VERSION,
            "user": state.me_json(),
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": state.gateway_url,
            "application": {"id": str(state.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "user_settings": {},
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["local"],
            "_trace": ["fake-discord"],
        }
        if session.shard_sent:
            body["shard"] = list(session.shard)
        return body

    def _guild_create(self, guild: FakeGuild) -> dict[str, Any]:
        state = self.state
        body = state.guild_json(guild)
        bot = state.users[state.bot_user_id]
        body.update(
            {
                "joined_at": iso(guild.joined_at),
                "large": False,
                "unavailable": False,
                "member_count": len(state.users),
                "voice_states": [],
                "members": [member_json(bot, roles=[guild.bot_role_id], joined_at=guild.joined_at)],
                "channels": [
                    state.channel_json(state.channels[c])
                    for c in guild.channels
                    if not state.channels[c].removed
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
