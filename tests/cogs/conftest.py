"""Fixtures for the Discord layer's fast tests: its collaborators as autospec mocks.

Stemcord's own classes are mocked with ``create_autospec`` (``tests.helpers.autospec``), so a
test calling a method the class does not have, or with arguments it does not take, fails.
Discord's objects are ``spec_set`` mocks (``tests.helpers.member``/``interaction``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from unittest import mock

import discord
import pytest

from bot.engine import JobEngine
from bot.policy import GuildPolicy, Policies
from bot.separation import SEPARATION
from cogs.buttons import ButtonRouter, JobControls, RefreshLimiter, StatusControls
from cogs.delivery import DiscordDelivery
from cogs.desk import JobDesk
from cogs.i18n import Translations
from cogs.lyrics import LyricsView
from cogs.midi import MidiView
from cogs.separate import SeparationView
from cogs.views import KindViews, PressServices
from storage.records import JobRecord
from tests.helpers import autospec, interaction, member

T = Translations.load()


@pytest.fixture
def engine() -> Any:
    """The engine, answering like one with no earlier posts and no surprises."""
    fake = autospec(JobEngine)
    fake.posted_result.return_value = None
    return fake


@pytest.fixture
def policies() -> Any:
    """Every server on the default policy, nobody over a limit."""
    fake = autospec(Policies)
    fake.get.return_value = GuildPolicy()
    fake.early_refusal.return_value = None
    return fake


@pytest.fixture
def views() -> KindViews:
    """The real views of the three kinds (MIDI switched on)."""
    return KindViews(
        [
            SeparationView(translations=T),
            LyricsView(translations=T, enhanced_lrc=False),
            MidiView(translations=T, enabled=True),
        ],
        fallback=SEPARATION,
    )


@pytest.fixture
def delivery() -> Any:
    fake = autospec(DiscordDelivery)
    fake.status_message.return_value = (discord.Embed(), None)
    return fake


@pytest.fixture
def desk(engine: Any, delivery: Any, views: KindViews) -> JobDesk:
    """The real desk over the mocked engine and delivery."""
    return JobDesk(engine, delivery, views, translations=T)


@pytest.fixture
def services(engine: Any, policies: Any, desk: JobDesk) -> PressServices:
    """What the kinds' buttons use when pressed."""
    return PressServices(
        engine=engine,
        policies=policies,
        desk=desk,
        controls=JobControls(engine, policies, translations=T),
    )


@pytest.fixture
def router(delivery: Any, views: KindViews, services: PressServices) -> ButtonRouter:
    """A router with every button routed, as the composition root routes them."""
    status = StatusControls(services.controls, delivery.status_message, RefreshLimiter())
    routed = ButtonRouter(translations=T)
    for action, handler in {**status.routes(), **views.routes(services)}.items():
        routed.route(action, handler)
    return routed


Press = Callable[..., mock.Mock]


@pytest.fixture
def press(router: ButtonRouter, engine: Any) -> Press:
    """An interaction pressing a button on ``stored`` (what ``engine.get_job`` returns)."""

    def make(
        stored: JobRecord | None,
        *,
        user_id: int = 42,
        perms: discord.Permissions | None = None,
        roles: tuple[int, ...] = (),
    ) -> mock.Mock:
        engine.get_job.return_value = stored
        inter = interaction(user=member(perms=perms, roles=roles, user_id=user_id))
        client = mock.Mock(spec_set=["router", "get_guild"])
        client.router = router
        inter.client = client
        inter.message = mock.Mock(spec_set=discord.Message, id=555)
        return inter

    return make
