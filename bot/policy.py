"""Per-server policy: where Stemcord may be used, by whom, and how much.

Every server's settings are registered here with their defaults, in one place, and stored as
one JSON object per guild (``JobStore.get_guild_settings``). Unknown keys in the stored object
are ignored and missing ones take the default, so a setting added later needs no migration.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from typing import Any

from storage.base import JobStore
from storage.records import AdmissionLimits, LimitReached

DEFAULT_MAX_UNFINISHED = 2
DEFAULT_DAILY_QUOTA = 10


@dataclass(frozen=True, slots=True)
class GuildPolicy:
    """One server's rules. Defaults are what a server that never ran ``/karaoke`` gets."""

    # Channels where /separate may run; empty = everywhere.
    allowed_channel_ids: tuple[int, ...] = ()
    # Post results here instead of in the channel where the command ran.
    result_channel_id: int | None = None
    # Members need this role to use /separate (None = everyone).
    required_role_id: int | None = None
    # Members with this role are moderators (besides Manage Messages).
    moderator_role_id: int | None = None
    # Unfinished jobs one member may have at once (0 = unlimited).
    max_unfinished: int = DEFAULT_MAX_UNFINISHED
    # Jobs one member may start per UTC day (0 = unlimited).
    daily_quota: int = DEFAULT_DAILY_QUOTA
    # Seconds a member waits between two requests (0 = none).
    cooldown_seconds: int = 0
    # Jobs the whole server may start per UTC day (0 = unlimited); counted like daily_quota.
    server_daily_cap: int = 0
    # Also send the result to the requester by DM.
    dm_on_completion: bool = False
    # A backing track mixed from a stem split keeps the backing vocals (harmonies).
    keep_backing_vocals: bool = True

    @classmethod
    def from_stored(cls, stored: dict[str, Any]) -> GuildPolicy:
        """Build from a stored settings object, ignoring unknown or mistyped values."""
        values: dict[str, Any] = {}
        for name, raw in stored.items():
            if name == "allowed_channel_ids":
                if isinstance(raw, list) and all(_is_int(v) for v in raw):
                    values[name] = tuple(raw)
            elif name in ("dm_on_completion", "keep_backing_vocals"):
                if isinstance(raw, bool):
                    values[name] = raw
            elif name in _ID_FIELDS:
                if raw is None or _is_int(raw):
                    values[name] = raw
            elif name in _COUNT_FIELDS and _is_int(raw) and raw >= 0:
                values[name] = raw
        return cls(**values)

    def to_stored(self) -> dict[str, Any]:
        """The JSON object kept in the store."""
        stored = asdict(self)
        stored["allowed_channel_ids"] = list(self.allowed_channel_ids)
        return stored

    def with_changes(self, **changes: Any) -> GuildPolicy:
        """A copy with some settings changed."""
        return replace(self, **changes)

    def admission_limits(self) -> AdmissionLimits:
        """The per-member limits and the server's cap the store checks as it admits."""
        return AdmissionLimits(
            max_unfinished=self.max_unfinished,
            daily_quota=self.daily_quota,
            cooldown_seconds=self.cooldown_seconds,
            server_daily_cap=self.server_daily_cap,
        )


_ID_FIELDS = frozenset({"result_channel_id", "required_role_id", "moderator_role_id"})
_COUNT_FIELDS = frozenset({"max_unfinished", "daily_quota", "cooldown_seconds", "server_daily_cap"})


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


async def load_policy(store: JobStore, guild_id: int | None) -> GuildPolicy:
    """A guild's policy (the defaults for DMs or a guild that never changed anything)."""
    if guild_id is None:
        return GuildPolicy()
    return GuildPolicy.from_stored(await store.get_guild_settings(guild_id))


async def save_policy(store: JobStore, guild_id: int, policy: GuildPolicy, now: float) -> None:
    """Store a guild's policy; effective for the next request."""
    await store.put_guild_settings(guild_id, policy.to_stored(), now)


@dataclass(frozen=True, slots=True)
class ServerAllowList:
    """The servers the operator lets the bot stay in (``ALLOWED_GUILD_IDS``; empty = any).

    Every server spends the operator's one Vidgo balance, so a bot invited elsewhere leaves.
    """

    ids: frozenset[int] = frozenset()

    @property
    def restricted(self) -> bool:
        """A list is set: servers not on it are left."""
        return bool(self.ids)

    def allows(self, guild_id: int | None) -> bool:
        """The bot may work in this server (``None``, a DM, is not a server: allowed)."""
        return not self.ids or guild_id is None or guild_id in self.ids

    def outside(self, guild_ids: Iterable[int]) -> list[int]:
        """The servers among ``guild_ids`` that are not allowed, in the order given."""
        return [guild_id for guild_id in guild_ids if not self.allows(guild_id)]


class Policies:
    """Every server's policy, read and changed through the store (one per process).

    Changes are read-modify-write, one at a time in this process, so two managers editing
    settings at once never lose one of the changes.
    """

    def __init__(self, store: JobStore, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock
        self._write_lock = asyncio.Lock()

    async def get(self, guild_id: int | None) -> GuildPolicy:
        """A guild's policy (the defaults for DMs or a guild that never changed anything)."""
        return await load_policy(self._store, guild_id)

    async def update(
        self, guild_id: int, edit: Callable[[GuildPolicy], GuildPolicy]
    ) -> GuildPolicy:
        """Apply ``edit`` to the stored policy and store the result; return it."""
        async with self._write_lock:
            policy = edit(await self.get(guild_id))
            await save_policy(self._store, guild_id, policy, self._clock())
        return policy

    async def early_refusal(
        self, guild_id: int, member_id: int, policy: GuildPolicy
    ) -> LimitReached | None:
        """The limit a request would break now, the member's or the server's (a read-only
        early answer).

        Only a hint for a quick private refusal: the store checks again as it admits.
        """
        return await self._store.limit_reached(
            guild_id, member_id, policy.admission_limits(), self._clock()
        )
