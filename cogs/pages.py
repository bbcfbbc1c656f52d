"""Previous/next buttons for a private (ephemeral) list that spans several pages.

An ephemeral list belongs to one member and lives only as long as that member looks at it,
so an ordinary view with a timeout is enough here (the buttons need not survive restarts).
When the view times out the buttons are removed, so they never fail silently. The buttons
speak the language of the member the list belongs to.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

import discord

from cogs.i18n import LocaleLike, Translations

PAGE_TIMEOUT = 300.0


def page_count(items: int, per_page: int) -> int:
    """Pages needed for ``items`` (at least one, for the "nothing here" page)."""
    return max(1, math.ceil(items / per_page))


class Pages(discord.ui.View):
    """Shows page ``render(n)``; the buttons move between the pages."""

    def __init__(
        self,
        render: Callable[[int], discord.Embed],
        pages: int,
        *,
        owner_id: int,
        t: Translations,
        locale: LocaleLike,
        timeout: float = PAGE_TIMEOUT,
    ) -> None:
        super().__init__(timeout=timeout)
        # TRANSLATORS: buttons under a list of jobs that spans several pages.
        self.previous.label = t.text(locale, "Previous")
        self.next.label = t.text(locale, "Next")
        self.render = render
        self.pages = pages
        self.page = 0
        self.owner_id = owner_id
        self.interaction: discord.Interaction | None = None
        self._sync_buttons()

    def _sync_buttons(self) -> None:
        self.previous.disabled = self.page <= 0
        self.next.disabled = self.page >= self.pages - 1

    async def send(self, interaction: discord.Interaction) -> None:
        """Answer the command with the first page (buttons only if there is more than one)."""
        self.interaction = interaction
        if self.pages <= 1:
            self.stop()
            await interaction.response.send_message(embed=self.render(0), ephemeral=True)
            return
        await interaction.response.send_message(embed=self.render(0), view=self, ephemeral=True)

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """Only the member who asked may turn the pages."""
        return interaction.user.id == self.owner_id

    async def _show(self, interaction: discord.Interaction, page: int) -> None:
        self.page = min(max(page, 0), self.pages - 1)
        self._sync_buttons()
        await interaction.response.edit_message(embed=self.render(self.page), view=self)

    @discord.ui.button(label="Previous", style=discord.ButtonStyle.secondary)
    async def previous(self, interaction: discord.Interaction, _: discord.ui.Button[Any]) -> None:
        """One page back."""
        await self._show(interaction, self.page - 1)

    @discord.ui.button(label="Next", style=discord.ButtonStyle.secondary)
    async def next(self, interaction: discord.Interaction, _: discord.ui.Button[Any]) -> None:
        """One page on."""
        await self._show(interaction, self.page + 1)

    async def on_timeout(self) -> None:
        """Take the buttons away once they would no longer answer."""
        if self.interaction is not None:
            with contextlib.suppress(discord.HTTPException):
                await self.interaction.edit_original_response(view=None)
