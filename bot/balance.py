"""Vidgo's credit balance, read on demand and cached (Vidgo asks callers not to poll it).

There is no timer: the balance is fetched only when someone asks and the cached answer is
older than ``ttl``. Callers who ask while a fetch is in flight share that fetch. A failed
fetch is not cached, so the next question tries again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

DEFAULT_TTL = 60.0


@dataclass(frozen=True, slots=True)
class Balance:
    """Credits left, and when Vidgo said so (epoch seconds)."""

    credits: int
    fetched_at: float


class BalanceCache:
    """The latest balance, refreshed at most every ``ttl`` seconds."""

    def __init__(
        self,
        fetch: Callable[[], Awaitable[int]],
        *,
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._fetch = fetch
        self._ttl = ttl
        self._clock = clock
        self._cached: Balance | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> Balance:
        """The cached balance if fresh, else one fetch (raises what the fetch raises)."""
        cached = self._cached
        if cached is not None and self._clock() - cached.fetched_at < self._ttl:
            return cached
        async with self._lock:
            cached = self._cached  # someone may have fetched while we waited
            if cached is not None and self._clock() - cached.fetched_at < self._ttl:
                return cached
            credits = await self._fetch()
            self._cached = Balance(credits, self._clock())
            return self._cached
