"""The operator's Vidgo credits, watched without polling Vidgo.

Vidgo asks callers not to poll the balance (docs/vidgo-api.md §3.7, §7), so
:class:`CreditsWatch` reads it rarely:

* on a schedule, every ``CREDITS_CHECK_MINUTES`` (at least a minute, the balance cache's own
  lifetime in :mod:`bot.balance`, so two reads in a row are never two requests to Vidgo);
* once more after a job succeeded (credits are charged only on success), but such reads are
  limited to one per interval, however many jobs finish.

Every read goes through the shared :class:`bot.balance.BalanceCache`, so ``/jobs balance``
and the watch never both ask Vidgo within a minute. Each read is reported to ``report``
(the ``stemcord_vidgo_credits`` gauge).

When the credits fall below ``CREDITS_WARN_BELOW`` the bot's owner is warned **once**: one log
line and one call of ``warn`` (a DM). The fact that the warning went out is stored
(:meth:`storage.base.JobStore.set_flag`), so a restart does not repeat it and of several
processes on one database only one warns; once the credits are back at or above the
threshold the flag is cleared and the next fall warns again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from bot.balance import Balance, BalanceCache
from bot.vidgo.errors import VidgoError
from storage.base import JobStore

log = logging.getLogger(__name__)

# The operator flag that remembers the low-credit warning was sent (storage V9).
WARNED_FLAG = "vidgo_credits_low_warned"
# The outcome of a job Vidgo charged for (bot.observe.DeliveryObserver outcomes).
CHARGED_OUTCOME = "succeeded"


def low_credits_message(credits: int, threshold: int) -> str:
    """The warning the owner gets, in a log line and a DM."""
    return (
        f"Stemcord: Vidgo credits are low: {credits:,} left, below the warning level of "
        f"{threshold:,} (CREDITS_WARN_BELOW). Top up in Vidgo's console before separations "
        "start failing. This warning is sent once, and again only after the credits have "
        "been back above that level."
    )


class CreditsWatch:
    """Reads the balance rarely, reports it, and warns the owner once when it runs low."""

    def __init__(
        self,
        balance: BalanceCache,
        store: JobStore,
        *,
        interval: float,
        warn_below: int,
        warn: Callable[[str], Awaitable[object]],
        report: Callable[[Balance], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._balance = balance
        self._store = store
        self.interval = interval
        self.warn_below = warn_below
        self._warn = warn
        self._report = report
        self._clock = clock
        self._wake = asyncio.Event()
        self._last_nudge: float | None = None
        self._task: asyncio.Task[None] | None = None

    async def check(self) -> Balance | None:
        """Read the balance (through the cache), report it, warn or re-arm; ``None`` if
        Vidgo did not answer (logged; the next interval tries again)."""
        try:
            balance = await self._balance.get()
        except VidgoError as exc:
            log.warning("could not read the Vidgo credit balance: %s", exc)
            return None
        self._report(balance)
        if not self.warn_below:
            return balance
        now = self._clock()
        if balance.credits < self.warn_below:
            if await self._store.set_flag(WARNED_FLAG, True, now):
                message = low_credits_message(balance.credits, self.warn_below)
                log.warning("%s", message)
                await self._warn(message)
        elif await self._store.set_flag(WARNED_FLAG, False, now):
            log.info(
                "Vidgo credits are back at %d, not below %d: the low-credit warning is armed again",
                balance.credits,
                self.warn_below,
            )
        return balance

    def delivered(self, outcome: str, latency: float) -> None:
        """A job's message was posted (:class:`bot.observe.DeliveryObserver`).

        A success was charged: read the balance soon, unless a job already caused a read
        within the last interval.
        """
        del latency
        if outcome != CHARGED_OUTCOME:
            return
        now = self._clock()
        if self._last_nudge is not None and now - self._last_nudge < self.interval:
            return
        self._last_nudge = now
        self._wake.set()

    async def run(self) -> None:
        """Check now, then every interval or after a charged job, until cancelled."""
        while True:
            try:
                await self.check()
            except Exception:  # a database hiccup must not end the watch
                log.exception("the Vidgo credit check failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval)
            self._wake.clear()

    def start(self) -> None:
        """Run :meth:`run` in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="stemcord-credits")

    async def stop(self) -> None:
        """Stop the background task (harmless when not started)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
