"""Discord's rules for localized command strings, checked the way Discord checks them.

A bulk overwrite of commands may carry ``name_localizations`` and
``description_localizations`` on each command and option, and ``name_localizations`` on each
choice. Discord refuses the whole request (400 50035, like :mod:`tests.fakes.discord_rules`)
when a key is not one of its locales, a localized chat-input name does not match its regex
``^[-_\\p{L}\\p{N}\\p{sc=Deva}\\p{sc=Thai}]{1,32}$`` or is not lowercase where the script has
case, a message menu's name is not 1-32 characters, a description is not 1-100 characters, a
choice name not 1-100, or two siblings (commands of one type, options of one command) would
show the same name in some locale.

This is the fake's own reading of Discord's documentation, written apart from Stemcord's
checks (:mod:`cogs.i18n`) so that each catches the other's mistakes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import regex

from tests.fakes.discord_rules import FormError

# Discord's locale codes (developer documentation, "Locales").
LOCALES = frozenset(
    {
        "id", "da", "de", "en-GB", "en-US", "es-ES", "es-419", "fr", "hr", "it", "lt", "hu",
        "nl", "no", "pl", "pt-BR", "ro", "fi", "sv-SE", "vi", "tr", "cs", "el", "bg", "ru",
        "uk", "hi", "th", "zh-CN", "ja", "zh-TW", "ko",
    }
)  # fmt: skip
CHAT_INPUT_NAME = regex.compile(r"^[-_\p{L}\p{N}\p{sc=Deva}\p{sc=Thai}]{1,32}$")
MAX_NAME = 32
MAX_DESCRIPTION = 100
MAX_CHOICE_NAME = 100

Path = tuple[str | int, ...]


def check_localizations(commands: object) -> list[FormError]:
    """Every localization problem of a bulk-overwrite body (empty when Discord accepts it)."""
    if not isinstance(commands, list):
        return []
    items = [c for c in commands if isinstance(c, dict)]
    errors = list(_duplicates(items, (), by_type=True))
    for i, command in enumerate(commands):
        if isinstance(command, dict):
            chat_input = command.get("type", 1) == 1
            errors.extend(_check(command, (i,), chat_input=chat_input))
    return errors


def _check(item: dict[str, Any], path: Path, *, chat_input: bool) -> Iterator[FormError]:
    for locale, name in _mapping(item, "name_localizations", path):
        where = (*path, "name_localizations", locale)
        if locale not in LOCALES:
            yield _bad_locale(where, locale)
        elif not isinstance(name, str) or not name:
            yield FormError(where, "BASE_TYPE_REQUIRED", "This field is required")
        elif chat_input and not _valid_chat_input_name(name):
            yield FormError(
                where, "APPLICATION_COMMAND_INVALID_NAME", f"Command name is invalid ({name!r})."
            )
        elif len(name) > MAX_NAME:
            yield FormError(
                where, "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_NAME} or fewer in length."
            )
    for locale, text in _mapping(item, "description_localizations", path):
        where = (*path, "description_localizations", locale)
        if locale not in LOCALES:
            yield _bad_locale(where, locale)
        elif not isinstance(text, str) or not 1 <= len(text) <= MAX_DESCRIPTION:
            yield FormError(
                where,
                "BASE_TYPE_BAD_LENGTH",
                f"Must be between 1 and {MAX_DESCRIPTION} in length.",
            )
    options = [o for o in item.get("options") or [] if isinstance(o, dict)]
    yield from _duplicates(options, (*path, "options"), by_type=False)
    for k, option in enumerate(item.get("options") or []):
        if not isinstance(option, dict):
            continue
        here = (*path, "options", k)
        yield from _check(option, here, chat_input=True)
        for c, choice in enumerate(option.get("choices") or []):
            if not isinstance(choice, dict):
                continue
            for locale, name in _mapping(choice, "name_localizations", (*here, "choices", c)):
                where = (*here, "choices", c, "name_localizations", locale)
                if locale not in LOCALES:
                    yield _bad_locale(where, locale)
                elif not isinstance(name, str) or not 1 <= len(name) <= MAX_CHOICE_NAME:
                    yield FormError(
                        where,
                        "BASE_TYPE_BAD_LENGTH",
                        f"Must be between 1 and {MAX_CHOICE_NAME} in length.",
                    )


def _valid_chat_input_name(name: str) -> bool:
    # Lowercase "where the script has case": a letter with a lowercase form must use it.
    return bool(CHAT_INPUT_NAME.fullmatch(name)) and name == name.lower()


def _mapping(item: dict[str, Any], field: str, path: Path) -> list[tuple[str, object]]:
    value = item.get(field)
    if not isinstance(value, dict):
        return []  # absent or null: no localizations
    return [(str(key), text) for key, text in value.items()]


def _bad_locale(where: Path, locale: str) -> FormError:
    return FormError(where, "LOCALE_INVALID", f"{locale!r} is not a valid locale.")


def _duplicates(items: list[dict[str, Any]], path: Path, *, by_type: bool) -> Iterator[FormError]:
    """Two siblings showing the same name to members of one locale."""
    for locale in sorted(LOCALES):
        seen: dict[tuple[object, str], int] = {}
        for index, item in enumerate(items):
            localized = item.get("name_localizations")
            default = str(item.get("name", ""))
            shown = localized.get(locale, default) if isinstance(localized, dict) else default
            key = (item.get("type", 1) if by_type else None, str(shown))
            if key in seen:
                yield FormError(
                    (*path, index, "name_localizations", locale),
                    "APPLICATION_COMMAND_NAME_ALREADY_EXISTS",
                    f"{shown!r} is already the {locale} name of another command or option.",
                )
            else:
                seen[key] = index
