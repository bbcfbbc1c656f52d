"""The composition root loads the catalogs once and hands them to the client and its tree."""

from __future__ import annotations

import aiohttp

from bot.app import build
from bot.settings import load_settings
from cogs.i18n import CATALOG_FOR_LOCALE, CommandTranslator, Translations
from storage.base import JobStore
from tests.helpers import autospec


def settings() -> object:
    return load_settings(_env_file=None, DISCORD_TOKEN="fake-token", VIDGO_API_KEY="fake-key")


async def test_the_built_client_speaks_through_the_shipped_catalogs() -> None:
    async with aiohttp.ClientSession() as session:
        app = build(settings(), autospec(JobStore), session, run_engine=False)  # type: ignore[arg-type]
        assert app.bot.translations is app.translations
        assert set(app.translations.languages) == set(CATALOG_FOR_LOCALE.values())
        assert app.bot.tree.translator is None  # set when discord.py runs the setup
        await app.bot._setup(app.bot)
        translator = app.bot.tree.translator
        assert isinstance(translator, CommandTranslator)
        assert translator.translations is app.translations


async def test_translations_given_to_build_are_the_ones_used() -> None:
    english = Translations.source_only()
    async with aiohttp.ClientSession() as session:
        app = build(  # type: ignore[arg-type]
            settings(), autospec(JobStore), session, run_engine=False, translations=english
        )
        await app.bot._setup(app.bot)
        assert app.bot.translations is english
        translator = app.bot.tree.translator
        assert isinstance(translator, CommandTranslator) and translator.translations is english
