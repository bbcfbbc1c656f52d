"""The bot's owner: the one person who sees the operator's Vidgo balance and its warnings.

The owner is the Discord application's owner as the developer portal says
(``application_info().owner``), or, for an application that belongs to a team, the team's
owner (not every team member: the balance is the operator's business). It is looked up once
and remembered; a failed lookup is not remembered, so the next question tries again.

The warnings :meth:`BotOwner.tell` sends (credits running low) are operator-facing output,
like the log lines they repeat, and stay English: there is no interaction to read the owner's
language from, and the owner runs the bot, not a server. A member who asks for the balance
without owning the bot is answered in their own language (:data:`ONLY_THE_OWNER`, worded by
``/jobs balance``).
"""

from __future__ import annotations

import asyncio
import logging

import discord

from cogs.i18n import N_

log = logging.getLogger(__name__)

ONLY_THE_OWNER = N_("Only the bot's owner can see its Vidgo balance.")


class BotOwner:
    """Who owns the application, and a private line to them."""

    def __init__(self, client: discord.Client) -> None:
        self._client = client
        self._owner_id: int | None = None
        self._lock = asyncio.Lock()

    async def owner_id(self) -> int | None:
        """The owner's user id (``None`` when Discord could not say just now)."""
        if self._owner_id is not None:
            return self._owner_id
        async with self._lock:
            if self._owner_id is None:
                try:
                    info = await self._client.application_info()
                except (discord.HTTPException, OSError) as exc:
                    log.warning("could not look up the bot's owner: %s", exc)
                    return None
                owner = info.team.owner if info.team is not None else info.owner
                self._owner_id = owner.id if owner is not None else None
        return self._owner_id

    async def is_owner(self, user: discord.abc.User) -> bool:
        """``user`` owns the bot (anyone else, or an unknown owner: no)."""
        owner_id = await self.owner_id()
        return owner_id is not None and user.id == owner_id

    async def tell(self, text: str) -> bool:
        """Send ``text`` to the owner by DM once the bot is logged in; ``True`` if it went.

        A closed DM or a lookup that fails is logged, never raised: whoever calls this has
        already logged what it wanted to say.
        """
        await self._client.wait_until_ready()
        owner_id = await self.owner_id()
        if owner_id is None:
            return False
        try:
            user = self._client.get_user(owner_id) or await self._client.fetch_user(owner_id)
            await user.send(text)
        except (discord.HTTPException, OSError) as exc:
            log.warning("could not send the bot's owner a DM: %s", exc)
            return False
        return True
