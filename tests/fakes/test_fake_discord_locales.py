"""The fake Discord stores and checks command localizations, and members act in a locale."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands

from cogs.i18n import is_valid_command_name
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_locales import check_localizations

TOKEN = "test-discord-token"
BOT_AUTH = {"Authorization": f"Bot {TOKEN}"}


def command(**fields: Any) -> dict[str, Any]:
    return {"name": "separate", "description": "Split a song", "type": 1, **fields}


def codes(body: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(".".join(map(str, e.path)), e.code) for e in check_localizations(body)]


# --- the rules -------------------------------------------------------------------------------


def test_localizations_discord_accepts_pass() -> None:
    body = [
        command(
            name_localizations={"ja": "音源分離", "es-ES": "separar", "hi": "अलग"},
            description_localizations={"ja": "曲を分ける"},
            options=[
                {
                    "name": "stems",
                    "description": "Which",
                    "type": 3,
                    "name_localizations": {"ko": "스템"},
                    "choices": [
                        {"name": "all", "value": "a", "name_localizations": {"ja": "全部"}}
                    ],
                }
            ],
        ),
        {"name": "Separate vocals", "type": 3, "name_localizations": {"es-ES": "Separar la voz"}},
        command(name="lyrics", name_localizations=None, description_localizations=None),
    ]
    assert check_localizations(body) == []


def test_an_uppercase_or_spaced_localized_name_is_refused() -> None:
    body = [command(name_localizations={"es-ES": "Separar", "ja": "音源 分離"})]
    assert codes(body) == [
        ("0.name_localizations.es-ES", "APPLICATION_COMMAND_INVALID_NAME"),
        ("0.name_localizations.ja", "APPLICATION_COMMAND_INVALID_NAME"),
    ]


def test_a_locale_discord_does_not_have_is_refused() -> None:
    body = [command(name_localizations={"es": "separar"}, description_localizations={"jp": "x"})]
    assert codes(body) == [
        ("0.name_localizations.es", "LOCALE_INVALID"),
        ("0.description_localizations.jp", "LOCALE_INVALID"),
    ]


def test_long_descriptions_choices_and_menu_names_are_refused() -> None:
    body = [
        command(
            description_localizations={"ko": "가" * 101},
            options=[
                {
                    "name": "stems",
                    "type": 3,
                    "choices": [
                        {"name": "a", "value": "a", "name_localizations": {"ja": "x" * 101}}
                    ],
                }
            ],
        ),
        {"name": "Separate vocals", "type": 3, "name_localizations": {"ja": "x" * 33}},
    ]
    assert codes(body) == [
        ("0.description_localizations.ko", "BASE_TYPE_BAD_LENGTH"),
        ("0.options.0.choices.0.name_localizations.ja", "BASE_TYPE_BAD_LENGTH"),
        ("1.name_localizations.ja", "BASE_TYPE_MAX_LENGTH"),
    ]


def test_two_commands_shown_with_one_name_in_a_locale_are_refused() -> None:
    body = [
        command(name="lyrics", name_localizations={"pt-BR": "letra"}),
        command(name_localizations={"pt-BR": "letra"}),
    ]
    assert codes(body) == [
        ("1.name_localizations.pt-BR", "APPLICATION_COMMAND_NAME_ALREADY_EXISTS")
    ]


def test_an_option_localized_to_a_siblings_default_name_is_refused() -> None:
    body = [
        command(
            options=[
                {"name": "file", "description": "f", "type": 11},
                {
                    "name": "link",
                    "description": "l",
                    "type": 3,
                    "name_localizations": {"ja": "file"},
                },
            ]
        )
    ]
    assert codes(body) == [
        ("0.options.1.name_localizations.ja", "APPLICATION_COMMAND_NAME_ALREADY_EXISTS")
    ]


@pytest.mark.parametrize(
    "name",
    [
        "音源分離",
        "máx_pendientes",
        "노래방",
        "हिन्दी",
        "ภาษาไทย",
        "Separar",
        "two words",
        "・",
        "\uff21",
        "🎤",
    ],
)
def test_the_fake_and_stemcord_agree_on_valid_names(name: str) -> None:
    # Written apart (Discord's regex here, Unicode categories in cogs.i18n): each checks the other.
    refused = bool(check_localizations([command(name_localizations={"ja": name})]))
    assert refused is not is_valid_command_name(name)


async def test_a_sync_with_an_invalid_localization_is_refused_over_http() -> None:
    async with FakeDiscord() as fake, aiohttp.ClientSession() as http:
        url = f"{fake.api_base}/applications/{fake.application_id}/commands"
        bad = [command(name_localizations={"ja": "音源 分離"})]
        async with http.put(url, json=bad, headers=BOT_AUTH) as resp:
            error = await resp.json()
        assert resp.status == 400 and error["code"] == 50035
        assert error["errors"]["0"]["name_localizations"]["ja"]["_errors"][0]["code"] == (
            "APPLICATION_COMMAND_INVALID_NAME"
        )
        assert fake.synced_commands == {}
        assert "name_localizations.ja" in fake.rule_violations[0]


# --- members in a locale ---------------------------------------------------------------------


class LocaleBot(commands.Bot):
    """Records the locales of each interaction it gets."""

    def __init__(self, seen: list[tuple[str, str, str | None, str | None]]) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.default(),
            guild_ready_timeout=0.05,
            help_command=None,
        )
        self.seen = seen

    async def setup_hook(self) -> None:
        group = app_commands.Group(name="karaoke", description="k")

        @group.command(name="show", description="s")
        @app_commands.rename(song="title")
        async def show(interaction: discord.Interaction, song: str) -> None:
            guild = interaction.guild_locale.value if interaction.guild_locale else None
            self.seen.append((song, interaction.locale.value, guild, interaction.command.name))  # type: ignore[union-attr]
            await interaction.response.send_message("ok", ephemeral=True)

        self.tree.add_command(group)


class Japanese(app_commands.Translator):
    """Japanese names for the test's command tree."""

    async def translate(
        self,
        string: app_commands.locale_str,
        locale: discord.Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        names = {"karaoke": "カラオケ", "show": "表示", "title": "曲名"}
        return names.get(string.message) if locale is discord.Locale.japanese else None


async def test_a_member_types_the_names_of_their_language_and_the_bot_gets_the_defaults() -> None:
    seen: list[tuple[str, str, str | None, str | None]] = []
    async with FakeDiscord() as fake:
        guild = fake.add_guild()
        user = fake.add_user()
        bot = LocaleBot(seen)
        with fake.redirect_discord_py():
            task = asyncio.create_task(bot.start(TOKEN))
            try:
                await fake.wait_until_ready(5)
                await asyncio.wait_for(bot.wait_until_ready(), 5)
                await bot.tree.set_translator(Japanese())
                await bot.tree.sync()
                [synced] = fake.synced_commands[None]
                assert synced["name_localizations"] == {"ja": "カラオケ"}
                inter = await fake.invoke_slash(
                    guild_id=guild.id,
                    channel_id=guild.channel_id,
                    user_id=user.id,
                    name="カラオケ 表示",
                    options=[{"name": "曲名", "value": "Tide"}],
                    locale="ja",
                    guild_locale="pt-BR",
                )
                await fake.wait_until(lambda: bool(seen))
                # A name of another language is not what this member sees.
                with pytest.raises(ValueError, match="not synced"):
                    await fake.invoke_slash(
                        guild_id=guild.id,
                        channel_id=guild.channel_id,
                        user_id=user.id,
                        name="カラオケ 表示",
                        locale="ko",
                    )
            finally:
                await bot.close()
                await task
        assert seen == [("Tide", "ja", "pt-BR", "show")]
        assert inter.payload["data"]["name"] == "karaoke"
        assert inter.payload["data"]["options"][0]["name"] == "show"
        assert inter.payload["guild"]["locale"] == "pt-BR"
        assert fake.rule_violations == []
