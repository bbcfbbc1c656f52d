"""Stemcord in the members' languages: the message catalogs, the command tree's translator,
and the one API replies are written with.

English is the source language: every message id is the English text itself. The catalogs are
gettext ``.po`` files under ``locales/<language>/LC_MESSAGES/stemcord.po``, shipped as package
data and compiled in memory with Babel when :meth:`Translations.load` runs (once, in the
composition root), so no compiled ``.mo`` file can ever be stale. See ``docs/localisation.md``.

- :class:`Translations` answers ``text(locale, msgid, **placeholders)`` and
  ``plural(locale, singular, plural, count, **placeholders)``; the locale is Discord's
  (``interaction.locale`` for a private answer, the server's for a public post), and anything
  without a catalog, or a message without a translation, falls back to English.
- :class:`CommandTranslator` is the ``discord.app_commands.Translator`` of the command tree:
  names, descriptions and choices of every command reach Discord as ``name_localizations`` and
  ``description_localizations`` when the tree is synced.
- :func:`tree_strings` lists the translatable strings of a command tree (for extraction), and
  :func:`localization_problems` checks a synced payload against Discord's rules.

Babel finds the marked strings: calls of ``text`` (second argument), ``plural`` (second and
third) and ``N_`` (a message defined away from where it is said); see ``babel.cfg``.
"""

from __future__ import annotations

import gettext
import io
import logging
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import discord
from babel.core import Locale as BabelLocale
from babel.core import UnknownLocaleError
from babel.dates import format_timedelta
from babel.messages.catalog import Catalog, Message
from babel.messages.mofile import write_mo
from babel.messages.pofile import PoFileError, read_po
from babel.numbers import format_decimal
from discord import app_commands
from discord.app_commands import TranslationContextLocation as Where

log = logging.getLogger(__name__)

DOMAIN = "stemcord"
SOURCE_LANGUAGE = "en"
# Discord's locale codes -> the catalog written for them. English (en-US, en-GB) is the source
# text; every other locale of Discord falls back to English too.
CATALOG_FOR_LOCALE: Mapping[str, str] = {
    "es-ES": "es_ES",
    "pt-BR": "pt_BR",
    "ja": "ja",
    "ko": "ko",
}

# Discord's limits on localized command strings (the same as on the default ones).
NAME_MAX = 32
DESCRIPTION_MAX = 100
CHOICE_NAME_MAX = 100


def N_(message: str) -> str:
    """Mark ``message`` for extraction where it is defined; translate it where it is said."""
    return message


LocaleLike = discord.Locale | str | None


def locale_code(locale: object) -> str | None:
    """Discord's code for ``locale`` (``"ja"``, ``"es-ES"``), or None if it is not one."""
    if isinstance(locale, discord.Locale):
        return locale.value
    if isinstance(locale, str):
        return locale
    return None


def catalog_language(locale: object) -> str | None:
    """The catalog language for a Discord locale, or None when English answers it."""
    code = locale_code(locale)
    return CATALOG_FOR_LOCALE.get(code) if code is not None else None


def member_locale(interaction: discord.Interaction[Any]) -> discord.Locale:
    """The language of a private (ephemeral) answer or a DM: the member's own client."""
    return interaction.locale


def server_locale(interaction: discord.Interaction[Any]) -> discord.Locale:
    """The language of a public post in a server: the server's preferred locale.

    Outside a server (a DM) the member's own locale is the only one there is.
    """
    return interaction.guild_locale or interaction.locale


def guild_locale(guild: discord.Guild | None) -> discord.Locale:
    """The language of a post made without an interaction (a delivered result)."""
    return guild.preferred_locale if guild is not None else discord.Locale.american_english


# --- placeholders ----------------------------------------------------------------------------

# Only plain named fields: no positions, attributes, indexes or format specs, so a catalog can
# never reach into the values it is given.
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ANY_FIELD = re.compile(r"\{[^{}]*\}")
COUNT = "count"


def placeholders(text: str) -> frozenset[str]:
    """The ``{name}`` placeholders of a message."""
    return frozenset(_PLACEHOLDER.findall(text))


def odd_fields(text: str) -> list[str]:
    """Brace fields that are not a plain ``{name}`` (``{0}``, ``{a.b}``, ``{n:>3}``)."""
    return [field for field in _ANY_FIELD.findall(text) if not _PLACEHOLDER.fullmatch(field)]


def fill(template: str, values: Mapping[str, object]) -> str:
    """``template`` with each ``{name}`` replaced by ``str(values[name])``.

    The values are inserted as they are and never read as templates themselves, so text from
    members (a song title, a file name) cannot inject a placeholder. A missing value is a
    KeyError: the caller named a placeholder it did not give.
    """
    return _PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), template)


def placeholder_problem(message: Message) -> str | None:
    """Why a translated catalog entry's placeholders do not fit its message id, or None.

    A plain message's translation has exactly the msgid's placeholders. A plural's forms have
    the plural msgid's placeholders, except that a form may spell the count out in words
    (``{count}`` may be left out) but may never add one.
    """
    strings = message.string if isinstance(message.string, tuple | list) else (message.string,)
    ids = message.id if isinstance(message.id, tuple | list) else (message.id,)
    wanted = placeholders(ids[-1])
    for form in strings:
        if not form:
            continue
        if odd := odd_fields(form):
            return f"unsupported field {odd[0]} (only {{name}} placeholders)"
        got = placeholders(form)
        if message.pluralizable:
            if got - wanted:
                return f"unknown placeholder {{{sorted(got - wanted)[0]}}}"
            if (wanted - {COUNT}) - got:
                return f"missing placeholder {{{sorted((wanted - {COUNT}) - got)[0]}}}"
        elif got != wanted:
            extra, missing = sorted(got - wanted), sorted(wanted - got)
            if extra:
                return f"unknown placeholder {{{extra[0]}}}"
            return f"missing placeholder {{{missing[0]}}}"
    return None


# --- catalogs --------------------------------------------------------------------------------


class CatalogError(Exception):
    """A catalog file could not be read (a syntax error, a bad header)."""

    def __init__(self, language: str, reason: str) -> None:
        super().__init__(f"catalog {language}: {reason}")
        self.language = language
        self.reason = reason


def default_catalog_dir() -> Traversable:
    """Where the installed catalogs are (the ``locales`` package data)."""
    return resources.files("locales")


def catalog_path(directory: Traversable | Path, language: str) -> Traversable:
    """``<directory>/<language>/LC_MESSAGES/stemcord.po``."""
    return directory.joinpath(language, "LC_MESSAGES", f"{DOMAIN}.po")


def catalog_languages(directory: Traversable | Path) -> list[str]:
    """The languages that have a catalog in ``directory``, sorted."""
    return sorted(
        entry.name
        for entry in directory.iterdir()
        if entry.is_dir() and catalog_path(directory, entry.name).is_file()
    )


def read_catalog(directory: Traversable | Path, language: str) -> Catalog:
    """Parse one ``.po`` file; a file gettext would refuse raises :class:`CatalogError`."""
    source = catalog_path(directory, language)
    try:
        data = source.read_bytes()
        return read_po(io.BytesIO(data), locale=language, domain=DOMAIN, abort_invalid=True)
    except (OSError, PoFileError, UnknownLocaleError, ValueError) as exc:
        raise CatalogError(language, str(exc) or type(exc).__name__) from exc


def is_translated(message: Message) -> bool:
    """Every form of the entry has a translation and none is marked fuzzy."""
    forms = message.string if isinstance(message.string, tuple | list) else (message.string,)
    return bool(forms) and all(forms) and not message.fuzzy


def compile_catalog(catalog: Catalog) -> gettext.GNUTranslations:
    """Compile a Babel catalog in memory into gettext's translations (the catalog is consumed).

    Fuzzy and untranslated entries (a plural with one empty form too) are left out, so they
    answer in English, and so is any entry whose placeholders do not match its message id: a
    wrong ``{name}`` must not turn a reply into a KeyError.
    """
    for message in list(catalog):
        if not message.id:
            continue  # the header
        problem = placeholder_problem(message) if is_translated(message) else "untranslated"
        if problem is None:
            continue
        if problem != "untranslated":
            log.warning("catalog %s: %r left in English: %s", catalog.locale, message.id, problem)
        catalog.delete(message.id, message.context)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


class TreeContext(StrEnum):
    """The ``msgctxt`` of each kind of command-tree string.

    A command's name is not the same entry as the same English word in a sentence: it obeys
    Discord's name rules (and a translator must know that).
    """

    COMMAND_NAME = "command name"
    MENU_NAME = "menu name"
    OPTION_NAME = "option name"
    DESCRIPTION = "command description"
    CHOICE = "choice"


class Translations:
    """Every catalog, compiled once; the one way Stemcord says something to a member.

    Built in the composition root with :meth:`load` and handed to whoever speaks. ``locale`` is
    a :class:`discord.Locale` (or its code); one without a catalog, or a message the catalog
    does not translate, gets the English source text.
    """

    def __init__(self, catalogs: Mapping[str, gettext.GNUTranslations]) -> None:
        self._catalogs = dict(catalogs)
        self._english = gettext.NullTranslations()

    @classmethod
    def source_only(cls) -> Translations:
        """English only (no catalog)."""
        return cls({})

    @classmethod
    def load(cls, directory: Traversable | Path | None = None) -> Translations:
        """Read and compile every catalog in ``directory`` (the installed ones by default).

        A catalog that cannot be read is logged and left out: its members read English
        rather than the bot not starting.
        """
        where = directory if directory is not None else default_catalog_dir()
        catalogs: dict[str, gettext.GNUTranslations] = {}
        for language in catalog_languages(where):
            try:
                catalogs[language] = compile_catalog(read_catalog(where, language))
            except CatalogError as exc:
                log.error("%s; its members get English", exc)
        return cls(catalogs)

    @property
    def languages(self) -> tuple[str, ...]:
        """The catalog languages loaded (English, the source, is not one of them)."""
        return tuple(sorted(self._catalogs))

    def _for(self, locale: object) -> gettext.NullTranslations:
        language = catalog_language(locale)
        if language is None:
            return self._english
        return self._catalogs.get(language, self._english)

    def language(self, locale: object) -> str:
        """The language ``locale`` is answered in: a catalog's, or ``"en"``."""
        language = catalog_language(locale)
        return language if language in self._catalogs else SOURCE_LANGUAGE

    def text(self, locale: LocaleLike, msgid: str, /, **values: object) -> str:
        """``msgid`` in the language of ``locale``, its ``{name}`` placeholders filled."""
        return fill(self._for(locale).gettext(msgid), values)

    def plural(
        self, locale: LocaleLike, singular: str, plural: str, count: int, /, **values: object
    ) -> str:
        """The form for ``count`` in the language of ``locale``; ``{count}`` is filled with the
        count as that language writes numbers."""
        template = self._for(locale).ngettext(singular, plural, count)
        return fill(template, {COUNT: self.number(locale, count), **values})

    def tree_text(self, locale: LocaleLike, context: TreeContext, msgid: str) -> str | None:
        """The translation of a command-tree string, or None when there is none."""
        if catalog_language(locale) not in self._catalogs:
            return None
        translated = self._for(locale).pgettext(context.value, msgid)
        # gettext answers a missing entry with the msgid itself.
        return translated if translated != msgid else None

    def number(self, locale: LocaleLike, value: float) -> str:
        """``value`` as the language of ``locale`` writes numbers (``1,234.5``, ``1.234,5``)."""
        return format_decimal(value, locale=self._babel_locale(locale))

    def duration(self, locale: LocaleLike, seconds: float) -> str:
        """A rounded duration in words (``3 minutes``, ``3 分``, ``3분``)."""
        return format_timedelta(
            timedelta(seconds=seconds), threshold=1.5, locale=self._babel_locale(locale)
        )

    def _babel_locale(self, locale: LocaleLike) -> BabelLocale:
        language = catalog_language(locale)
        if language is not None and language in self._catalogs:
            return BabelLocale.parse(language)
        return BabelLocale.parse("en_GB" if locale_code(locale) == "en-GB" else "en_US")


# --- the command tree ------------------------------------------------------------------------

_NAME_CONTEXTS: Mapping[Where, TreeContext] = {
    Where.command_name: TreeContext.COMMAND_NAME,
    Where.group_name: TreeContext.COMMAND_NAME,
    Where.parameter_name: TreeContext.OPTION_NAME,
}
_TEXT_CONTEXTS: Mapping[Where, TreeContext] = {
    Where.command_description: TreeContext.DESCRIPTION,
    Where.group_description: TreeContext.DESCRIPTION,
    Where.parameter_description: TreeContext.DESCRIPTION,
    Where.choice_name: TreeContext.CHOICE,
}
# Discord's own rule for chat-input names is ^[-_\p{L}\p{N}\p{sc=Deva}\p{sc=Thai}]{1,32}$:
# Devanagari and Thai are allowed whole because their vowel signs are marks, not letters.
# Python knows no script property, so the marks of those two blocks stand in for it (a few
# punctuation signs of those scripts that Discord would also take are refused here: a name
# needs none of them).
_DEVANAGARI = ((0x0900, 0x097F), (0xA8E0, 0xA8FF))
_THAI = ((0x0E00, 0x0E7F),)


def _name_char(char: str) -> bool:
    category = unicodedata.category(char)
    if char in "-_" or category[0] in "LN":
        return True
    blocks = (*_DEVANAGARI, *_THAI)
    return category[0] == "M" and any(low <= ord(char) <= high for low, high in blocks)


def is_valid_command_name(name: str) -> bool:
    """A chat-input command, group or option name Discord accepts in any locale: 1-32 letters,
    numbers, ``-`` or ``_``, lowercase wherever the script has case."""
    if not 1 <= len(name) <= NAME_MAX or name != name.lower():
        return False
    return all(_name_char(char) for char in name)


def is_valid_menu_name(name: str) -> bool:
    """A context-menu name: 1-32 characters, spaces and capitals allowed, not blank."""
    return 1 <= len(name) <= NAME_MAX and name.strip() == name and bool(name)


def _fits(context: TreeContext, text: str) -> bool:
    if context is TreeContext.COMMAND_NAME or context is TreeContext.OPTION_NAME:
        return is_valid_command_name(text)
    if context is TreeContext.MENU_NAME:
        return is_valid_menu_name(text)
    limit = DESCRIPTION_MAX if context is TreeContext.DESCRIPTION else CHOICE_NAME_MAX
    return 1 <= len(text) <= limit and text.strip() == text


class CommandTranslator(app_commands.Translator):
    """Names, descriptions and choices of every command in the catalogs' languages.

    discord.py asks once per string and Discord locale when the tree is synced; the answer
    becomes ``name_localizations``/``description_localizations``. None (Discord shows the
    English default) for English and every locale without a catalog, for an untranslated
    string, and for a translation Discord would refuse (logged), so one bad entry cannot make
    the whole sync fail.
    """

    def __init__(self, translations: Translations) -> None:
        self.translations = translations

    async def translate(
        self,
        string: app_commands.locale_str,
        locale: discord.Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        """The catalog's text for ``string`` at its place in the tree, or None."""
        where = context.location
        tree_context = _NAME_CONTEXTS.get(where) or _TEXT_CONTEXTS.get(where)
        if tree_context is None:
            return None
        if where is Where.command_name and isinstance(context.data, app_commands.ContextMenu):
            tree_context = TreeContext.MENU_NAME
        translated = self.translations.tree_text(locale, tree_context, string.message)
        if translated is None:
            return None
        if not _fits(tree_context, translated):
            log.warning(
                "the %s translation of %s %r breaks Discord's rules and is left out: %r",
                locale.value,
                tree_context.value,
                string.message,
                translated,
            )
            return None
        return translated


@dataclass(frozen=True, slots=True)
class TreeString:
    """One translatable string of the command tree and where it is defined."""

    context: TreeContext
    message: str
    # "/karaoke settings cooldown" (a command), "/separate stems" (an option), for comments.
    path: str
    # The source file and line of the command (or menu) it belongs to.
    filename: str
    lineno: int


def _source_of(callback: object) -> tuple[str, int]:
    code = getattr(getattr(callback, "__func__", callback), "__code__", None)
    if code is None:
        return "", 0
    return str(code.co_filename), int(code.co_firstlineno)


def _params_strings(
    command: app_commands.Command[Any, ..., Any], path: str, where: tuple[str, int]
) -> Iterator[TreeString]:
    for param in command.parameters:
        here = f"{path} {param.display_name}"
        yield TreeString(TreeContext.OPTION_NAME, param.display_name, here, *where)
        yield TreeString(TreeContext.DESCRIPTION, str(param.description), here, *where)
        for choice in param.choices:
            yield TreeString(TreeContext.CHOICE, choice.name, here, *where)


def _command_strings(
    command: app_commands.Command[Any, ..., Any] | app_commands.Group, parent: str
) -> Iterator[TreeString]:
    path = f"{parent} {command.name}".strip()
    if isinstance(command, app_commands.Group):
        children = [list(_command_strings(child, path)) for child in command.commands]
        first = next((strings[0] for strings in children if strings), None)
        where = (first.filename, first.lineno) if first is not None else ("", 0)
        yield TreeString(TreeContext.COMMAND_NAME, command.name, f"/{path}", *where)
        yield TreeString(TreeContext.DESCRIPTION, command.description, f"/{path}", *where)
        for strings in children:
            yield from strings
        return
    where = _source_of(command.callback)
    yield TreeString(TreeContext.COMMAND_NAME, command.name, f"/{path}", *where)
    yield TreeString(TreeContext.DESCRIPTION, command.description, f"/{path}", *where)
    yield from _params_strings(command, f"/{path}", where)


def tree_strings(tree: app_commands.CommandTree[Any]) -> list[TreeString]:
    """Every string of the global command tree that reaches Discord, in tree order."""
    found: list[TreeString] = []
    for command in tree.get_commands():
        if isinstance(command, app_commands.ContextMenu):
            where = _source_of(command.callback)
            found.append(TreeString(TreeContext.MENU_NAME, command.name, command.name, *where))
        else:
            found.extend(_command_strings(command, ""))
    return found


# --- checking what a sync sends --------------------------------------------------------------


def _localized(item: Mapping[str, Any], field: str) -> Mapping[str, str]:
    value = item.get(field)
    return value if isinstance(value, Mapping) else {}


def _check_siblings(
    items: Sequence[Mapping[str, Any]], where: str, locales: Iterable[str]
) -> Iterator[str]:
    """Names that two siblings would share in some locale (Discord refuses the sync)."""
    for locale in locales:
        seen: dict[tuple[int, str], str] = {}
        for item in items:
            default = str(item.get("name", ""))
            shown = _localized(item, "name_localizations").get(locale, default)
            key = (int(item.get("type") or 1) if where == "" else 0, shown)
            if key in seen:
                yield f"{where or '/'}: {locale} names {seen[key]!r} and {default!r} both {shown!r}"
            seen[key] = default


def _check_item(
    item: Mapping[str, Any], where: str, *, name_rule: TreeContext, has_description: bool
) -> Iterator[str]:
    for locale, name in _localized(item, "name_localizations").items():
        if locale not in {member.value for member in discord.Locale}:
            yield f"{where}: {locale!r} is not a Discord locale"
        elif not _fits(name_rule, name):
            yield f"{where}: the {locale} name {name!r} is not a valid {name_rule.value}"
    if not has_description:
        return
    for locale, text in _localized(item, "description_localizations").items():
        if not _fits(TreeContext.DESCRIPTION, text):
            yield f"{where}: the {locale} description is not 1-{DESCRIPTION_MAX} characters"


def _check_options(
    options: Sequence[Mapping[str, Any]], where: str, locales: Sequence[str]
) -> Iterator[str]:
    yield from _check_siblings(options, where, locales)
    for option in options:
        here = f"{where} {option.get('name')}"
        yield from _check_item(
            option, here, name_rule=TreeContext.OPTION_NAME, has_description=True
        )
        for choice in option.get("choices") or ():
            for locale, name in _localized(choice, "name_localizations").items():
                if not _fits(TreeContext.CHOICE, name):
                    yield f"{here}: the {locale} choice {name!r} is not 1-{CHOICE_NAME_MAX} long"
        yield from _check_options(option.get("options") or (), here, locales)


def localization_problems(payloads: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every way the payloads of a sync break Discord's rules for localized strings.

    Names valid per locale (chat input: lowercase letters, numbers, ``-`` and ``_``; menus:
    1-32 characters), unique among their siblings in every locale, descriptions and choices
    within their limits. Empty when Discord would accept them.
    """
    locales = sorted(
        {locale for payload in payloads for locale in _localized(payload, "name_localizations")}
        | {locale.value for locale in discord.Locale}
    )
    problems = list(_check_siblings(payloads, "", locales))
    for payload in payloads:
        chat_input = int(payload.get("type") or 1) == 1
        where = f"/{payload.get('name')}" if chat_input else repr(payload.get("name"))
        rule = TreeContext.COMMAND_NAME if chat_input else TreeContext.MENU_NAME
        problems.extend(_check_item(payload, where, name_rule=rule, has_description=chat_input))
        problems.extend(_check_options(payload.get("options") or (), where, locales))
    return problems
