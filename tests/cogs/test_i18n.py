"""The localisation machinery: catalogs, fallbacks, placeholders, plurals, the command tree's
translator and Discord's rules for localized names (cogs/i18n.py).

Behaviours are pinned on small catalogs written here; the shipped catalogs are checked in
tests/test_locales.py.
"""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path
from typing import Any
from unittest import mock

import discord
import pytest
from discord import app_commands
from discord.app_commands import TranslationContext
from discord.app_commands import TranslationContextLocation as Where

from cogs.buttons import ButtonRouter
from cogs.client import StemcordBot, answer_command_error, error_sentence
from cogs.i18n import (
    CATALOG_FOR_LOCALE,
    CommandTranslator,
    Translations,
    TreeContext,
    fill,
    guild_locale,
    is_valid_command_name,
    is_valid_menu_name,
    localization_problems,
    member_locale,
    server_locale,
    tree_strings,
)
from tests.helpers import interaction, private_answer

T = Translations.load()

HEADERS = {
    "ja": "nplurals=1; plural=0;",
    "es_ES": "nplurals=2; plural=(n != 1);",
    "pt_BR": "nplurals=2; plural=(n > 1);",
    "ko": "nplurals=1; plural=0;",
}


def write_catalog(root: Path, language: str, entries: str) -> None:
    """A ``.po`` file for ``language`` under ``root`` with these entries."""
    head = f"""\
        msgid ""
        msgstr ""
        "Language: {language}\\n"
        "Plural-Forms: {HEADERS[language]}\\n"
        "Content-Type: text/plain; charset=utf-8\\n"

        """
    path = root / language / "LC_MESSAGES" / "stemcord.po"
    path.parent.mkdir(parents=True)
    path.write_text(textwrap.dedent(head) + textwrap.dedent(entries), encoding="utf-8")


@pytest.fixture
def catalogs(tmp_path: Path) -> Path:
    write_catalog(
        tmp_path,
        "ja",
        """\
        msgid "Your song is ready."
        msgstr "曲ができました。"

        msgid "Hello {name}."
        msgstr "{name}さん、こんにちは。"

        msgid "{count} job waiting."
        msgid_plural "{count} jobs waiting."
        msgstr[0] "{count}件のジョブが待機中です。"

        #, fuzzy
        msgid "A fuzzy guess."
        msgstr "あいまいな訳。"

        msgid "Wrong placeholder {title}."
        msgstr "間違った {titel}。"

        msgctxt "command name"
        msgid "separate"
        msgstr "音源分離"

        msgctxt "option name"
        msgid "stems"
        msgstr "ステム"

        msgctxt "command description"
        msgid "Split a song into karaoke stems"
        msgstr "曲をカラオケ用のステムに分ける"

        msgctxt "choice"
        msgid "every stem"
        msgstr "すべてのステム"

        msgctxt "menu name"
        msgid "Separate vocals"
        msgstr "ボーカルを分離"

        msgctxt "command name"
        msgid "settings"
        msgstr "Settings With Capitals"
        """,
    )
    write_catalog(
        tmp_path,
        "es_ES",
        """\
        msgid "{count} job waiting."
        msgid_plural "{count} jobs waiting."
        msgstr[0] "{count} tarea en espera."
        msgstr[1] "{count} tareas en espera."

        msgid "Half a plural {count}."
        msgid_plural "Half plurals {count}."
        msgstr[0] "Medio plural {count}."
        msgstr[1] ""

        msgid "separate"
        msgstr "separar (sin contexto)"
        """,
    )
    return tmp_path


# --- locales and fallbacks -------------------------------------------------------------------


def test_each_discord_locale_is_answered_by_its_catalog_or_in_english() -> None:
    loaded = Translations({language: mock.Mock() for language in CATALOG_FOR_LOCALE.values()})
    wanted = {"es-ES": "es_ES", "pt-BR": "pt_BR", "ja": "ja", "ko": "ko"}
    for locale in discord.Locale:
        assert loaded.language(locale) == wanted.get(locale.value, "en"), locale


def test_a_member_with_a_catalog_reads_its_text(catalogs: Path) -> None:
    translations = Translations.load(catalogs)
    assert translations.text(discord.Locale.japanese, "Your song is ready.") == "曲ができました。"
    assert translations.text("ja", "Your song is ready.") == "曲ができました。"


@pytest.mark.parametrize("locale", [None, "fr", discord.Locale.american_english, "es-419"])
def test_a_locale_without_a_catalog_reads_english(catalogs: Path, locale: object) -> None:
    translations = Translations.load(catalogs)
    assert translations.text(locale, "Your song is ready.") == "Your song is ready."  # type: ignore[arg-type]


def test_a_locale_that_is_not_a_string_reads_english(catalogs: Path) -> None:
    # An interaction built by a test double has no real locale: English, not a crash.
    assert Translations.load(catalogs).text(mock.Mock(), "Your song is ready.") == (  # type: ignore[arg-type]
        "Your song is ready."
    )


def test_a_mapped_language_without_its_catalog_reads_english(catalogs: Path) -> None:
    translations = Translations.load(catalogs)
    assert translations.languages == ("es_ES", "ja")
    assert translations.text("ko", "Your song is ready.") == "Your song is ready."
    assert translations.language("ko") == "en"


def test_a_message_missing_from_the_catalog_reads_english(catalogs: Path) -> None:
    assert Translations.load(catalogs).text("ja", "Not translated.") == "Not translated."


def test_a_fuzzy_entry_is_not_used(catalogs: Path) -> None:
    assert Translations.load(catalogs).text("ja", "A fuzzy guess.") == "A fuzzy guess."


def test_a_translation_with_a_wrong_placeholder_reads_english_and_is_logged(
    catalogs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="cogs.i18n"):
        translations = Translations.load(catalogs)
    said = translations.text("ja", "Wrong placeholder {title}.", title="Tide")
    assert said == "Wrong placeholder Tide."
    assert "'Wrong placeholder {title}.' left in English: unknown placeholder {titel}" in (
        caplog.text
    )


def test_a_catalog_that_cannot_be_read_is_left_out_and_logged(
    catalogs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = catalogs / "ko" / "LC_MESSAGES" / "stemcord.po"
    broken.parent.mkdir(parents=True)
    broken.write_text('msgid "Your song is ready."\nmsgstr "x"\nnot po at all\n', encoding="utf-8")
    with caplog.at_level(logging.ERROR, logger="cogs.i18n"):
        translations = Translations.load(catalogs)
    assert translations.languages == ("es_ES", "ja")
    assert "catalog ko:" in caplog.text and "members get English" in caplog.text


def test_the_shipped_catalogs_load_by_default() -> None:
    assert set(Translations.load().languages) == set(CATALOG_FOR_LOCALE.values())


# --- placeholders and plurals ----------------------------------------------------------------


def test_placeholders_are_filled_in_the_translation(catalogs: Path) -> None:
    said = Translations.load(catalogs).text("ja", "Hello {name}.", name="Mika")
    assert said == "Mikaさん、こんにちは。"


def test_a_value_is_inserted_as_it_is_never_read_as_a_template() -> None:
    # A song title typed by a member may contain braces.
    assert fill("Now playing {title}.", {"title": "{count} {0.__class__}"}) == (
        "Now playing {count} {0.__class__}."
    )


def test_a_missing_value_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        Translations.source_only().text(None, "Hello {name}.")


def test_the_plural_form_follows_the_count_in_each_language(catalogs: Path) -> None:
    t = Translations.load(catalogs)
    one, many = "{count} job waiting.", "{count} jobs waiting."
    assert t.plural("es-ES", one, many, 1) == "1 tarea en espera."
    assert t.plural("es-ES", one, many, 3) == "3 tareas en espera."
    assert t.plural("ja", one, many, 1) == "1件のジョブが待機中です。"
    assert t.plural("ja", one, many, 7) == "7件のジョブが待機中です。"
    assert t.plural(None, one, many, 1) == "1 job waiting."
    assert t.plural(None, one, many, 2) == "2 jobs waiting."


def test_the_count_is_written_as_the_language_writes_numbers(catalogs: Path) -> None:
    t = Translations.load(catalogs)
    one, many = "{count} job waiting.", "{count} jobs waiting."
    assert t.plural(None, one, many, 12345) == "12,345 jobs waiting."
    assert t.plural("es-ES", one, many, 12345) == "12.345 tareas en espera."


def test_a_plural_with_an_empty_form_reads_english(catalogs: Path) -> None:
    t = Translations.load(catalogs)
    assert t.plural("es-ES", "Half a plural {count}.", "Half plurals {count}.", 1) == (
        "Half a plural 1."
    )


def test_numbers_and_durations_follow_the_locale() -> None:
    t = Translations.load()
    assert t.number("pt-BR", 1234.5) == "1.234,5"
    assert t.number("en-US", 1234.5) == "1,234.5"
    assert t.duration("ja", 180) == "3 分"
    assert t.duration("ko", 180) == "3분"
    assert t.duration("fr", 180) == "3 minutes"


# --- whose locale --------------------------------------------------------------------------


def test_a_private_answer_follows_the_member_and_a_public_post_the_server() -> None:
    inter = interaction()
    inter.locale = discord.Locale.japanese
    inter.guild_locale = discord.Locale.brazil_portuguese
    assert member_locale(inter) is discord.Locale.japanese
    assert server_locale(inter) is discord.Locale.brazil_portuguese


def test_outside_a_server_the_public_locale_is_the_members() -> None:
    inter = interaction(guild_id=None)
    inter.locale = discord.Locale.korean
    inter.guild_locale = None
    assert server_locale(inter) is discord.Locale.korean


def test_a_delivered_post_follows_the_servers_preferred_locale() -> None:
    guild = mock.Mock(spec_set=discord.Guild, preferred_locale=discord.Locale.spain_spanish)
    assert guild_locale(guild) is discord.Locale.spain_spanish
    assert guild_locale(None) is discord.Locale.american_english


# --- the command tree's translator -----------------------------------------------------------


def _context(where: Where, data: Any = None) -> Any:
    return TranslationContext(location=where, data=data)  # type: ignore[call-overload]


async def test_the_translator_answers_each_place_in_the_tree_from_its_context(
    catalogs: Path,
) -> None:
    translator = CommandTranslator(Translations.load(catalogs))
    ja = discord.Locale.japanese

    async def said(message: str, where: Where, data: Any = None) -> str | None:
        return await translator.translate(
            app_commands.locale_str(message), ja, _context(where, data)
        )

    assert await said("separate", Where.command_name) == "音源分離"
    assert await said("separate", Where.group_name) == "音源分離"
    assert await said("stems", Where.parameter_name) == "ステム"
    description = "Split a song into karaoke stems"
    assert await said(description, Where.command_description) == "曲をカラオケ用のステムに分ける"
    assert await said(description, Where.group_description) == "曲をカラオケ用のステムに分ける"
    assert await said(description, Where.parameter_description) == "曲をカラオケ用のステムに分ける"
    assert await said("every stem", Where.choice_name) == "すべてのステム"
    menu = mock.Mock(spec=app_commands.ContextMenu)
    assert await said("Separate vocals", Where.command_name, menu) == "ボーカルを分離"
    # A name is not looked up as a description, nor a description as a name.
    assert await said("stems", Where.parameter_description) is None
    assert await said("separate", Where.other) is None


@pytest.mark.parametrize(
    "locale", [discord.Locale.french, discord.Locale.american_english, discord.Locale.korean]
)
async def test_the_translator_answers_none_where_there_is_no_catalog(
    catalogs: Path, locale: discord.Locale
) -> None:
    translator = CommandTranslator(Translations.load(catalogs))
    said = await translator.translate(
        app_commands.locale_str("separate"), locale, _context(Where.command_name)
    )
    assert said is None


async def test_the_translator_answers_none_for_an_untranslated_string(catalogs: Path) -> None:
    translator = CommandTranslator(Translations.load(catalogs))
    said = await translator.translate(
        app_commands.locale_str("lyrics"), discord.Locale.japanese, _context(Where.command_name)
    )
    assert said is None


async def test_a_name_discord_would_refuse_is_left_out_and_logged(
    catalogs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    translator = CommandTranslator(Translations.load(catalogs))
    with caplog.at_level(logging.WARNING, logger="cogs.i18n"):
        said = await translator.translate(
            app_commands.locale_str("settings"), discord.Locale.japanese, _context(Where.group_name)
        )
    assert said is None
    assert "'Settings With Capitals'" in caplog.text


async def test_a_synced_tree_carries_the_localizations(catalogs: Path) -> None:
    tree = app_commands.CommandTree(discord.Client(intents=discord.Intents.none()))
    await tree.set_translator(CommandTranslator(Translations.load(catalogs)))

    @tree.command(name="separate", description="Split a song into karaoke stems")
    @app_commands.choices(stems=[app_commands.Choice(name="every stem", value="all")])
    async def separate(inter: discord.Interaction, stems: app_commands.Choice[str]) -> None:
        """A command like Stemcord's."""

    translator = tree.translator
    assert translator is not None
    payload = await separate.get_translated_payload(tree, translator)
    assert payload["name_localizations"] == {"ja": "音源分離"}
    assert payload["description_localizations"] == {"ja": "曲をカラオケ用のステムに分ける"}
    [option] = payload["options"]
    assert option["name_localizations"] == {"ja": "ステム"}
    assert option["choices"][0]["name_localizations"] == {"ja": "すべてのステム"}


def test_the_tree_strings_name_their_context_and_command() -> None:
    tree = app_commands.CommandTree(discord.Client(intents=discord.Intents.none()))
    group = app_commands.Group(name="karaoke", description="Settings")

    @group.command(name="cooldown", description="Seconds between two requests")
    @app_commands.describe(seconds="Seconds; 0 = none")
    async def cooldown(inter: discord.Interaction, seconds: int) -> None:
        """A subcommand with one option."""

    tree.add_command(group)
    found = [(s.context, s.message, s.path) for s in tree_strings(tree)]
    assert found == [
        (TreeContext.COMMAND_NAME, "karaoke", "/karaoke"),
        (TreeContext.DESCRIPTION, "Settings", "/karaoke"),
        (TreeContext.COMMAND_NAME, "cooldown", "/karaoke cooldown"),
        (TreeContext.DESCRIPTION, "Seconds between two requests", "/karaoke cooldown"),
        (TreeContext.OPTION_NAME, "seconds", "/karaoke cooldown seconds"),
        (TreeContext.DESCRIPTION, "Seconds; 0 = none", "/karaoke cooldown seconds"),
    ]
    assert all(s.filename == __file__ for s in tree_strings(tree))


# --- Discord's rules for localized names -----------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["音源分離", "máx_pendientes", "cargo_necessário", "노래방", "हिन्दी", "ภาษาไทย", "1日の上限"],
)
def test_names_in_every_script_discord_allows_are_valid(name: str) -> None:
    assert is_valid_command_name(name)


@pytest.mark.parametrize(
    "name", ["Separar", "two words", "x" * 33, "", "・", "\uff21", "🎤", "it's", "dm:on"]
)
def test_names_discord_refuses_are_invalid(name: str) -> None:
    assert not is_valid_command_name(name)


def test_a_menu_name_may_have_spaces_and_capitals_but_not_33_characters() -> None:
    assert is_valid_menu_name("Separar la voz")
    assert not is_valid_menu_name("x" * 33)
    assert not is_valid_menu_name(" ")


def _command(**fields: Any) -> dict[str, Any]:
    return {"name": "separate", "description": "Split", "type": 1, **fields}


def test_a_valid_localized_payload_has_no_problem() -> None:
    payload = _command(
        name_localizations={"ja": "音源分離"},
        description_localizations={"ja": "曲を分ける"},
        options=[{"name": "stems", "type": 3, "name_localizations": {"ja": "ステム"}}],
    )
    assert localization_problems([payload]) == []


def test_two_siblings_with_one_name_in_a_locale_are_a_problem() -> None:
    lyrics = _command(name="lyrics", name_localizations={"es-ES": "separar"})
    separate = _command(name_localizations={"es-ES": "separar"})
    assert localization_problems([lyrics, separate]) == [
        "/: es-ES names 'lyrics' and 'separate' both 'separar'"
    ]


def test_a_localized_option_that_takes_a_siblings_default_name_is_a_problem() -> None:
    payload = _command(
        options=[
            {"name": "file", "type": 11},
            {"name": "link", "type": 3, "name_localizations": {"pt-BR": "file"}},
        ]
    )
    assert localization_problems([payload]) == [
        "/separate: pt-BR names 'file' and 'link' both 'file'"
    ]


def test_invalid_names_long_texts_and_unknown_locales_are_problems() -> None:
    payload = _command(
        name_localizations={"ja": "音源 分離", "xx": "separate"},
        description_localizations={"ko": "가" * 101},
        options=[
            {
                "name": "stems",
                "type": 3,
                "choices": [{"name": "all", "value": "a", "name_localizations": {"ja": "x" * 101}}],
            }
        ],
    )
    assert localization_problems([payload]) == [
        "/separate: the ja name '音源 分離' is not a valid command name",
        "/separate: 'xx' is not a Discord locale",
        "/separate: the ko description is not 1-100 characters",
        f"/separate stems: the ja choice {'x' * 101!r} is not 1-100 long",
    ]


def test_a_menu_and_a_command_may_share_a_localized_name() -> None:
    # Discord keeps one namespace per command type.
    menu = {"name": "Separate vocals", "type": 3, "name_localizations": {"ja": "音源分離"}}
    assert localization_problems([menu, _command(name_localizations={"ja": "音源分離"})]) == []


# --- the tree's error sentence -----------------------------------------------------------


def test_the_cooldown_sentence_rounds_up_and_counts_seconds() -> None:
    cooldown = app_commands.Cooldown(1, 10)
    assert error_sentence(app_commands.CommandOnCooldown(cooldown, 1.2)) == (
        "Slow down a little — try again in 2 seconds."
    )
    assert error_sentence(app_commands.CommandOnCooldown(cooldown, 0.3)) == (
        "Slow down a little — try again in 1 second."
    )


async def test_the_error_sentence_is_in_the_members_language() -> None:
    translations = Translations.load()

    async def setup(_: StemcordBot) -> None:
        return None

    inter = interaction()
    inter.command = None
    inter.locale = discord.Locale.japanese
    inter.client = StemcordBot(
        setup=setup, router=ButtonRouter(translations=T), translations=translations
    )
    await answer_command_error(inter, app_commands.CheckFailure())
    wanted = translations.text("ja", "You may not use this command here.")
    assert wanted != "You may not use this command here."
    assert private_answer(inter) == wanted


async def test_a_member_without_a_catalog_gets_the_english_error_sentence() -> None:
    async def setup(_: StemcordBot) -> None:
        return None

    inter = interaction()
    inter.command = None
    inter.locale = discord.Locale.french
    inter.client = StemcordBot(
        setup=setup, router=ButtonRouter(translations=T), translations=Translations.load()
    )
    await answer_command_error(inter, app_commands.CheckFailure())
    assert private_answer(inter) == "You may not use this command here."
