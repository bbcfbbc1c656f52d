"""The shipped catalogs against the code: complete, placeholders intact, extraction in step,
command names Discord accepts in every language, and the maintainers' tool that checks it all
(``python -m tools.i18n``, docs/localisation.md).
"""

from __future__ import annotations

import asyncio
import fnmatch
import shutil
import sys
import tomllib
from pathlib import Path

import discord
import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po

from cogs.i18n import (
    CATALOG_FOR_LOCALE,
    CommandTranslator,
    Translations,
    TreeContext,
    catalog_languages,
    is_translated,
    placeholder_problem,
    placeholders,
    read_catalog,
)
from tools import i18n as tool

ROOT = Path(__file__).resolve().parents[1]
LOCALES = ROOT / "locales"
CATALOG_LOCALES = {language: locale for locale, language in CATALOG_FOR_LOCALE.items()}


def shipped() -> list[tuple[str, Catalog]]:
    return [(lang, read_catalog(LOCALES, lang)) for lang in catalog_languages(LOCALES)]


def entries(catalog: Catalog) -> list[tuple[str | None, str, object]]:
    return [
        (m.context, m.id if isinstance(m.id, str) else m.id[0], m.string) for m in catalog if m.id
    ]


# --- the catalogs ----------------------------------------------------------------------------


def test_there_is_a_catalog_for_every_language_discord_locales_map_to() -> None:
    assert set(catalog_languages(LOCALES)) == {"es_ES", "pt_BR", "ja", "ko"}
    assert tool.locale_map_problems(catalog_languages(LOCALES)) == []


def test_every_catalog_translates_every_template_string_without_fuzzy_entries() -> None:
    template = tool.read_template()
    for language, catalog in shipped():
        assert tool.keys(catalog) == tool.keys(template), language
        for message in catalog:
            if message.id:
                assert not message.fuzzy, (language, message.id)
                assert is_translated(message), (language, message.id)


def test_placeholders_match_in_every_translation() -> None:
    for language, catalog in shipped():
        for message in catalog:
            if not message.id:
                continue
            assert placeholder_problem(message) is None, (language, message.id)
            if not message.pluralizable:
                assert placeholders(message.string) == placeholders(message.id), message.id


def test_every_translation_is_loaded_at_start() -> None:
    # What the catalogs say is what members read: nothing is dropped on the way.
    translations = Translations.load()
    for language, catalog in shipped():
        locale = CATALOG_LOCALES[language]
        for context, msgid, string in entries(catalog):
            if context is None and isinstance(string, str):
                # Each placeholder filled with itself gives back the template as written.
                same = {name: f"{{{name}}}" for name in placeholders(msgid)}
                assert translations.text(locale, msgid, **same) == string, (language, msgid)
            elif context is not None and string != msgid:
                assert translations.tree_text(locale, TreeContext(context), msgid) == string


def test_no_compiled_catalog_is_committed() -> None:
    # The .po files are compiled in memory at start, so a stale .mo cannot exist.
    assert list(LOCALES.rglob("*.mo")) == []


def test_the_catalogs_ship_as_package_data() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = project["tool"]["setuptools"]["package-data"]["locales"]
    files = [p.relative_to(LOCALES).as_posix() for p in LOCALES.rglob("*.po*")]
    assert len(files) == 5
    for name in files:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in globs), name
    assert "locales*" in project["tool"]["setuptools"]["packages"]["find"]["include"]


# --- extraction ------------------------------------------------------------------------------


def test_every_marked_string_and_command_string_is_in_the_template() -> None:
    extracted = tool.extract_template()
    missing = tool.keys(extracted) - tool.keys(tool.read_template())
    assert missing == set(), "run `python -m tools.i18n extract` and `update`, then translate"


def test_the_template_holds_no_string_the_code_no_longer_has() -> None:
    extracted = tool.extract_template()
    assert tool.keys(tool.read_template()) - tool.keys(extracted) == set()


def test_the_template_has_every_command_name_with_its_context() -> None:
    template = tool.keys(tool.read_template())
    for entry in tool.offline_tree_strings():
        assert (entry.context.value, entry.message) in template, entry.path
    assert ("command name", "separate") in template
    assert ("menu name", "Separate vocals") in template


def test_a_new_marked_string_fails_the_template_check(tmp_path: Path) -> None:
    cog = tmp_path / "cogs" / "encore.py"
    cog.parent.mkdir()
    cog.write_text(
        "def answer(t, locale):\n"
        '    return t.text(locale, "Encore! Your second song is ready.")\n'
        'LATER = N_("Said somewhere else.")\n'
        'COUNTED = t.plural(locale, "{count} encore", "{count} encores", 2)\n',
        encoding="utf-8",
    )
    with tool.MAPPING.open(encoding="utf-8") as mapping:
        method_map, options_map = tool._parse_mapping(mapping, str(tool.MAPPING))
    extracted = Catalog()
    for _, _, message, _, context in extract_from_dir(
        str(tmp_path), method_map, options_map, keywords=DEFAULT_KEYWORDS
    ):
        extracted.add(message, context=context)
    problems = [str(p) for p in tool.template_problems(tool.read_template(), extracted)]
    new = sorted(p for p in problems if "not extracted yet" in p)
    assert new == [
        "locales/stemcord.pot: not extracted yet: 'Encore! Your second song is ready.'",
        "locales/stemcord.pot: not extracted yet: 'Said somewhere else.'",
        "locales/stemcord.pot: not extracted yet: '{count} encore'",
    ]


async def run(*args: str) -> tuple[int, str]:
    """``python ARGS`` in the project folder: its exit status and everything it wrote."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_babels_own_extract_command_reads_babel_cfg(tmp_path: Path) -> None:
    out = tmp_path / "stemcord.pot"
    status, said = await run(
        "-m", "babel.messages.frontend", "extract", "-F", "babel.cfg", "-o", str(out), "."
    )
    assert status == 0, said
    with out.open("rb") as produced:
        assert tool.keys(read_po(produced)) == tool.keys(tool.read_template())


# --- the command tree in every language ------------------------------------------------------


async def test_the_localized_command_tree_obeys_discords_rules() -> None:
    assert await tool.tree_problems() == []


async def test_every_command_option_and_choice_is_localized_for_each_catalog_locale() -> None:
    tree = await tool.offline_tree()
    await tree.set_translator(CommandTranslator(Translations.load()))
    payloads = await tool.translated_payloads(tree)
    catalogs = dict(shipped())

    def walk(item: dict[str, object], context: TreeContext) -> None:
        name = str(item["name"])
        for language, catalog in catalogs.items():
            locale = CATALOG_LOCALES[language]
            wanted = catalog.get(name, context=context.value)
            assert wanted is not None, (language, name)
            shown = (item.get("name_localizations") or {}).get(locale)  # type: ignore[attr-defined]
            # A name kept as it is in English (Vidgo's task_id) needs no localization.
            assert shown == (wanted.string if wanted.string != name else None), (locale, name)
            description = item.get("description")
            if description:
                localized = (item.get("description_localizations") or {}).get(locale)  # type: ignore[attr-defined]
                entry = catalog.get(str(description), context=TreeContext.DESCRIPTION.value)
                assert entry is not None and localized == entry.string, (locale, description)
        for option in item.get("options") or ():  # type: ignore[attr-defined]
            walk(
                option, TreeContext.OPTION_NAME if option["type"] > 2 else TreeContext.COMMAND_NAME
            )
            for choice in option.get("choices") or ():
                walk(choice, TreeContext.CHOICE)

    for payload in payloads:
        menu = payload["type"] != discord.AppCommandType.chat_input.value
        walk(payload, TreeContext.MENU_NAME if menu else TreeContext.COMMAND_NAME)
    japanese = {p["name"]: p["name_localizations"].get("ja") for p in payloads}
    assert japanese["separate"] == Translations.load().tree_text(
        "ja", TreeContext.COMMAND_NAME, "separate"
    )


# --- the maintainers' tool -------------------------------------------------------------------


async def test_the_check_command_passes_on_the_shipped_catalogs() -> None:
    status, said = await run("-m", "tools.i18n", "check")
    assert status == 0, said
    assert said.strip() == "catalogs complete"


def test_the_check_names_each_gap_in_a_catalog() -> None:
    template = Catalog()
    template.add("Your song is ready.")
    template.add("Hello {name}.")
    template.add("Maybe.")
    template.add("Missing here.")
    template.add("separate", context="command name")
    catalog = Catalog(locale="ja")
    catalog.add("Your song is ready.", "")
    catalog.add("Hello {name}.", "{nom}さん")
    catalog.add("Maybe.", "たぶん", flags=["fuzzy"])
    catalog.add("separate", "音源分離", context="command name")
    catalog.add("Gone from the code.", "消えた")
    problems = [p.what for p in tool.catalog_problems("ja", catalog, template)]
    assert problems == [
        "missing (run update): 'Missing here.'",
        "not in the template (run update): 'Gone from the code.'",
        "untranslated: 'Your song is ready.'",
        "unknown placeholder {nom}: 'Hello {name}.'",
        "fuzzy (check it, then remove the flag): 'Maybe.'",
    ]


def test_the_check_refuses_a_brace_field_that_is_not_a_plain_name() -> None:
    template = Catalog()
    template.add("Position {0} of {queue.size}.")
    problems = [p.what for p in tool.catalog_problems("ja", Catalog(locale="ja"), template)]
    assert "unsupported field {0} in 'Position {0} of {queue.size}.'" in problems


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the catalogs the tool's commands may change."""
    locales = tmp_path / "locales"
    shutil.copytree(LOCALES, locales)
    monkeypatch.setattr(tool, "ROOT", tmp_path)
    monkeypatch.setattr(tool, "LOCALES", locales)
    monkeypatch.setattr(tool, "TEMPLATE", locales / "stemcord.pot")
    return locales


def test_update_adds_new_strings_untranslated_and_keeps_the_translations(
    workspace: Path,
) -> None:
    template = tool.read_template()
    template.add("A sentence added to the code.")
    tool.write_catalog(template, workspace / "stemcord.pot")
    assert tool.main(["update"]) == 0
    catalog = read_catalog(workspace, "ja")
    added = catalog.get("A sentence added to the code.")
    assert added is not None and not added.string
    kept = catalog.get("separate", context="command name")
    original = read_catalog(LOCALES, "ja").get("separate", context="command name")
    assert kept is not None and original is not None and kept.string == original.string


def test_init_starts_a_new_language_with_every_string_to_translate(workspace: Path) -> None:
    assert tool.main(["init", "fr"]) == 0
    catalog = read_catalog(workspace, "fr")
    assert tool.keys(catalog) == tool.keys(tool.read_template())
    assert not any(is_translated(m) for m in catalog if m.id)
    assert tool.main(["init", "fr"]) == 1  # never overwrites a catalog


def test_show_prints_the_tree_as_a_locale_sees_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert tool.main(["show", "ko"]) == 0
    shown = capsys.readouterr().out.splitlines()
    korean = Translations.load().tree_text("ko", TreeContext.COMMAND_NAME, "separate")
    assert any(line.startswith(f"{korean} — ") for line in shown)


def test_the_offline_tree_is_the_one_sync_registers() -> None:
    tree = asyncio.run(tool.offline_tree())
    names = {command.name for command in tree.get_commands()}
    assert {"separate", "lyrics", "jobs", "karaoke", "Separate vocals"} <= names
    assert isinstance(tree.translator, CommandTranslator)
