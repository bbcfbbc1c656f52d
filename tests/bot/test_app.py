"""The composition root: every kind listed once per side, and the same names on both."""

from __future__ import annotations

import aiohttp

from bot.app import audio_pool, build, job_kinds, kind_views
from bot.keys import KeyRenders
from bot.settings import load_settings
from cogs.buttons import JobButton
from cogs.i18n import Translations
from cogs.keys import KeyPicker
from storage.base import JobStore
from tests.helpers import autospec

T = Translations.load()


def settings(**values: object) -> object:
    base: dict[str, object] = {"DISCORD_TOKEN": "fake-token", "VIDGO_API_KEY": "fake-key"}
    base.update(values)
    return load_settings(_env_file=None, **base)


async def test_every_kind_the_engine_runs_has_a_view_and_no_view_is_orphaned() -> None:
    config = settings()
    async with aiohttp.ClientSession() as session:
        app = build(config, autospec(JobStore), session)  # type: ignore[arg-type]
        keys = KeyRenders(None, audio_pool(config))  # type: ignore[arg-type]
        engine_kinds = {kind.NAME for kind in job_kinds(app.vidgo, keys)}
        shown = {view.kind for view in kind_views(config, keys, translations=T)}  # type: ignore[arg-type]
        assert engine_kinds == shown == {"separation", "lyrics", "midi", "key"}
        assert set(app.engine.kinds) == engine_kinds


async def test_the_built_client_registers_every_button_of_every_kind() -> None:
    async with aiohttp.ClientSession() as session:
        app = build(  # type: ignore[arg-type]
            settings(ENABLE_MIDI=False), autospec(JobStore), session, run_engine=False
        )
        # Nothing runs yet: setup adds the cogs and buttons when discord.py calls it.
        assert app.bot.cogs == {}
        await app.bot._setup(app.bot)  # what setup_hook runs
        try:
            names = set(app.bot.cogs)
            assert names == {
                "ServerGuardCog",
                "SeparateCog",
                "SeparateMessageCog",
                "KaraokeCog",
                "JobsCog",
                "LyricsCog",
            }
            registered = set(app.bot._connection._view_store._dynamic_items.values())
            actions = {cls.ACTION for cls in registered if issubclass(cls, JobButton)}
            # MIDI off still registers its button, so old buttons answer that it is off.
            assert actions == {"refresh", "cancel", "lyrics", "midi", "links", "key"}
            # The key menu is a restart-proof select, registered like the buttons.
            assert KeyPicker in registered
        finally:
            await app.engine.stop(grace=0)
