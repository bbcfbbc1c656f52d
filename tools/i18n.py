"""``python -m tools.i18n <command>``: keep Stemcord's catalogs in step with the code.

Run from the project folder (see ``docs/localisation.md``):

* ``extract`` — find every marked string and every slash-command string (``babel.cfg``) and
  write the template ``locales/stemcord.pot``;
* ``update`` — merge the template into every catalog (new strings appear untranslated,
  changed ones fuzzy, removed ones are dropped);
* ``init LANGUAGE`` — start a catalog for a new language from the template;
* ``check`` — exit 1, naming each problem, unless the template matches the code and every
  catalog translates every string, without fuzzy entries, with the same placeholders, and
  with command names Discord accepts (the test suite enforces the same);
* ``show LOCALE`` — print the command tree as members with that Discord locale see it.

The command tree is the one ``python -m bot sync`` registers: the composition root builds it
offline (no token is used, nothing is opened).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import io
import sys
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import IO, Any, cast

import aiohttp
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir, extract_python
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po, write_po
from discord import app_commands

from bot.app import build
from bot.settings import load_settings
from cogs.i18n import (
    CATALOG_FOR_LOCALE,
    DOMAIN,
    CatalogError,
    CommandTranslator,
    Translations,
    TreeContext,
    TreeString,
    catalog_languages,
    catalog_path,
    is_translated,
    localization_problems,
    odd_fields,
    placeholder_problem,
    read_catalog,
    tree_strings,
)
from storage.factory import store_for_url

ROOT = Path(__file__).resolve().parents[1]
LOCALES = ROOT / "locales"
TEMPLATE = LOCALES / f"{DOMAIN}.pot"
MAPPING = ROOT / "babel.cfg"
COMMENT_TAGS = ("TRANSLATORS:",)

# What a translator must know about each kind of command-tree string (the catalogs' comments).
RULES: Mapping[TreeContext, str] = {
    TreeContext.COMMAND_NAME: "Slash command name: 1-32 lowercase letters, digits, - or _; "
    "no spaces. Keep it short.",
    TreeContext.MENU_NAME: "Message menu entry: 1-32 characters, spaces and capitals allowed.",
    TreeContext.OPTION_NAME: "Command option name: 1-32 lowercase letters, digits, - or _; "
    "no spaces; unique within its command.",
    TreeContext.DESCRIPTION: "Command description: at most 100 characters.",
    TreeContext.CHOICE: "Choice shown in the option's list: at most 100 characters.",
}


# --- the command tree, offline ---------------------------------------------------------------


async def offline_tree() -> app_commands.CommandTree[Any]:
    """The command tree ``sync`` registers, with its translator, built without logging in."""
    settings = load_settings(
        _env_file=None,
        DISCORD_TOKEN="offline",  # noqa: S106 - a placeholder: the offline tree never logs in
        VIDGO_API_KEY="offline",
        DATABASE_URL="sqlite:///stemcord-offline.sqlite3",
    )
    async with aiohttp.ClientSession() as session:
        # The store is never opened: only the commands are wanted.
        app = build(settings, store_for_url(settings.DATABASE_URL), session, run_engine=False)
        await app.bot.setup_hook()
        return app.bot.tree


async def translated_payloads(tree: app_commands.CommandTree[Any]) -> list[dict[str, Any]]:
    """What a sync of ``tree`` sends Discord, localizations included."""
    translator = tree.translator
    if translator is None:
        raise RuntimeError("the command tree has no translator")
    return [
        await command.get_translated_payload(tree, translator) for command in tree.get_commands()
    ]


@functools.cache
def offline_tree_strings() -> tuple[TreeString, ...]:
    """Every string of the offline command tree (built once per process)."""

    async def collect() -> tuple[TreeString, ...]:
        return tuple(tree_strings(await offline_tree()))

    return asyncio.run(collect())


def tree_comments(entry: TreeString) -> list[str]:
    """The comments a translator sees above a command-tree string."""
    # The rule first: Babel merges the comments of a string used in several commands, so each
    # further command adds only its path.
    return [RULES[entry.context], entry.path]


# --- extraction ------------------------------------------------------------------------------


def extract_stemcord(
    fileobj: IO[bytes],
    keywords: Collection[str],
    comment_tags: Collection[str],
    options: Mapping[str, Any],
) -> Iterator[tuple[Any, ...]]:
    """Babel extractor (``babel.cfg``): the file's marked strings, then the command-tree
    strings whose command is defined in this file (as ``pgettext`` with their context).

    An extractor yields ``(lineno, funcname, messages, comments)``; Babel's annotations of its
    own Python extractor say otherwise, hence the untyped hand-over.
    """
    python: Callable[..., Iterator[tuple[Any, ...]]] = extract_python
    yield from python(fileobj, keywords, comment_tags, options)
    here = Path(str(getattr(fileobj, "name", ""))).resolve()
    for entry in offline_tree_strings():
        if entry.filename and Path(entry.filename).resolve() == here:
            message = (entry.context.value, entry.message)
            yield entry.lineno, "pgettext", message, tree_comments(entry)


# Babel's front end is not annotated; this is the signature it has.
_parse_mapping = cast(
    "Callable[[IO[str], str], tuple[list[tuple[str, str]], dict[str, dict[str, Any]]]]",
    parse_mapping_cfg,
)


def extract_template() -> Catalog:
    """Run Babel's extraction over the project with ``babel.cfg``: the template catalog."""
    with MAPPING.open(encoding="utf-8") as mapping:
        method_map, options_map = _parse_mapping(mapping, str(MAPPING))
    template = new_catalog(None)
    found = extract_from_dir(
        str(ROOT),
        method_map,
        options_map,
        keywords=DEFAULT_KEYWORDS,
        comment_tags=COMMENT_TAGS,
        strip_comment_tags=True,
    )
    for filename, lineno, message, comments, context in found:
        template.add(
            message,
            None,
            [(filename, lineno)],
            auto_comments=comments,
            context=context,
        )
    return template


def new_catalog(language: str | None) -> Catalog:
    """An empty catalog (or template, without a language) with Stemcord's header."""
    return Catalog(
        locale=language,
        domain=DOMAIN,
        project="Stemcord",
        version=version("stemcord"),
        copyright_holder="Stemcord's authors",
        charset="utf-8",
        fuzzy=False,
    )


def write_catalog(catalog: Catalog, path: Path) -> None:
    """Write a ``.po``/``.pot`` without line numbers, so moving code does not churn it."""
    buffer = io.BytesIO()
    write_po(buffer, catalog, width=100, include_lineno=False, ignore_obsolete=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())


def read_template() -> Catalog:
    """The committed template."""
    with TEMPLATE.open("rb") as source:
        return read_po(source, domain=DOMAIN)


def keys(catalog: Catalog) -> set[tuple[str | None, str]]:
    """``(context, msgid)`` of every entry (a plural by its singular)."""
    found = set()
    for message in catalog:
        if message.id:
            msgid = message.id[0] if isinstance(message.id, tuple | list) else message.id
            found.add((message.context, str(msgid)))
    return found


# --- checks ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason the catalogs are not ready to ship."""

    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


def _label(key: tuple[str | None, str]) -> str:
    context, msgid = key
    return f"[{context}] {msgid!r}" if context else repr(msgid)


def template_problems(template: Catalog, extracted: Catalog) -> list[Problem]:
    """Strings the code has that the template lacks, and the reverse."""
    mine, code = keys(template), keys(extracted)
    where = str(TEMPLATE.relative_to(ROOT))
    return [
        *(Problem(where, f"not extracted yet: {_label(k)}") for k in sorted(code - mine, key=str)),
        *(
            Problem(where, f"no longer in the code: {_label(k)}")
            for k in sorted(mine - code, key=str)
        ),
    ]


def catalog_problems(language: str, catalog: Catalog, template: Catalog) -> list[Problem]:
    """A catalog's gaps: missing, extra, untranslated or fuzzy entries and placeholders."""
    where = str(Path(str(catalog_path(LOCALES, language))).relative_to(ROOT))
    problems = [
        *(
            Problem(where, f"missing (run update): {_label(k)}")
            for k in sorted(keys(template) - keys(catalog), key=str)
        ),
        *(
            Problem(where, f"not in the template (run update): {_label(k)}")
            for k in sorted(keys(catalog) - keys(template), key=str)
        ),
    ]
    for message in catalog:
        if not message.id:
            continue
        label = _label(
            (message.context, str(message.id if isinstance(message.id, str) else message.id[0]))
        )
        if message.fuzzy:
            problems.append(Problem(where, f"fuzzy (check it, then remove the flag): {label}"))
        elif not is_translated(message):
            problems.append(Problem(where, f"untranslated: {label}"))
        elif (problem := placeholder_problem(message)) is not None:
            problems.append(Problem(where, f"{problem}: {label}"))
    for message in template:
        ids = message.id if isinstance(message.id, tuple | list) else (message.id,)
        for msgid in ids:
            if msgid and (odd := odd_fields(str(msgid))):
                problems.append(Problem("code", f"unsupported field {odd[0]} in {msgid!r}"))
    return problems


def locale_map_problems(languages: Sequence[str]) -> list[Problem]:
    """A catalog no Discord locale reaches, or a mapped language without a catalog."""
    mapped = set(CATALOG_FOR_LOCALE.values())
    where = "cogs/i18n.py CATALOG_FOR_LOCALE"
    return [
        *(
            Problem(where, f"no Discord locale uses the {lang} catalog")
            for lang in sorted(set(languages) - mapped)
        ),
        *(Problem(where, f"{lang} has no catalog") for lang in sorted(mapped - set(languages))),
    ]


async def tree_problems(locales: Path = LOCALES) -> list[Problem]:
    """What Discord would refuse in the localized command tree (names, lengths, siblings)."""
    tree = await offline_tree()
    await tree.set_translator(CommandTranslator(Translations.load(locales)))
    payloads = await translated_payloads(tree)
    return [Problem("command tree", problem) for problem in localization_problems(payloads)]


def all_problems() -> list[Problem]:
    """Everything ``check`` reports."""
    template = read_template()
    problems = template_problems(template, extract_template())
    languages = catalog_languages(LOCALES)
    problems.extend(locale_map_problems(languages))
    for language in languages:
        try:
            catalog = read_catalog(LOCALES, language)
        except CatalogError as exc:
            problems.append(Problem(str(catalog_path(LOCALES, language)), exc.reason))
            continue
        problems.extend(catalog_problems(language, catalog, template))
    problems.extend(asyncio.run(tree_problems()))
    return problems


# --- commands --------------------------------------------------------------------------------


def _extract() -> int:
    template = extract_template()
    write_catalog(template, TEMPLATE)
    print(f"{TEMPLATE.relative_to(ROOT)}: {len(keys(template))} strings")
    return 0


def _update() -> int:
    template = read_template()
    for language in catalog_languages(LOCALES):
        catalog = read_catalog(LOCALES, language)
        catalog.update(template, update_header_comment=False)
        write_catalog(catalog, Path(str(catalog_path(LOCALES, language))))
        waiting = sum(1 for m in catalog if m.id and (m.fuzzy or not is_translated(m)))
        print(f"{language}: {waiting} string(s) to translate or check")
    return 0


def _init(language: str) -> int:
    path = Path(str(catalog_path(LOCALES, language)))
    if path.exists():
        print(f"{path.relative_to(ROOT)} exists; use update", file=sys.stderr)
        return 1
    template = read_template()
    catalog = new_catalog(language)
    catalog.update(template)
    write_catalog(catalog, path)
    print(f"{path.relative_to(ROOT)}: {len(keys(catalog))} strings to translate")
    return 0


def _check() -> int:
    problems = all_problems()
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s)", file=sys.stderr)
        return 1
    print("catalogs complete")
    return 0


def _show(locale: str) -> int:
    async def payloads() -> list[dict[str, Any]]:
        return await translated_payloads(await offline_tree())

    def line(item: Mapping[str, Any], depth: int) -> None:
        name = (item.get("name_localizations") or {}).get(locale, item["name"])
        text = (item.get("description_localizations") or {}).get(locale, item.get("description"))
        print(f"{'  ' * depth}{name}" + (f" — {text}" if text else ""))
        for choice in item.get("choices") or ():
            shown = (choice.get("name_localizations") or {}).get(locale, choice["name"])
            print(f"{'  ' * (depth + 1)}· {shown}")
        for option in item.get("options") or ():
            line(option, depth + 1)

    for payload in asyncio.run(payloads()):
        line(payload, 0)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run one command."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.i18n", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("extract", help="write locales/stemcord.pot from the code")
    commands.add_parser("update", help="merge the template into every catalog")
    init = commands.add_parser("init", help="start a catalog for a new language")
    init.add_argument("language", help="catalog language, e.g. fr or es_419")
    commands.add_parser("check", help="exit 1 unless every catalog is complete and valid")
    show = commands.add_parser("show", help="print the command tree in one Discord locale")
    show.add_argument("locale", help="Discord locale code, e.g. ja or pt-BR")
    args = parser.parse_args(argv)
    if args.command == "extract":
        return _extract()
    if args.command == "update":
        return _update()
    if args.command == "init":
        return _init(args.language)
    if args.command == "show":
        return _show(args.locale)
    return _check()


if __name__ == "__main__":
    raise SystemExit(main())
