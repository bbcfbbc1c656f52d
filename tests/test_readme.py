"""The README and the operations guide say what the code does (commands, permissions, exits)."""

from __future__ import annotations

import re
from pathlib import Path

import discord

from bot.cli import EXIT_STATUSES

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
OPERATIONS = (ROOT / "docs" / "operations.md").read_text()


def test_the_invite_asks_for_what_a_result_in_a_thread_needs() -> None:
    # A result is an embed with link buttons, the lyrics a file in a reply; in a thread
    # Discord checks Send Messages in Threads instead of Send Messages.
    needed = discord.Permissions(
        view_channel=True,
        send_messages=True,
        send_messages_in_threads=True,
        embed_links=True,
        attach_files=True,
        read_message_history=True,
    ).value
    invites = re.findall(r"oauth2/authorize\?[^\s`]*permissions=(\d+)", README)
    assert invites and {int(p) for p in invites} == {needed}
    assert f"(permission integer\n   `{needed}`)" in README
    for name in (
        "View Channels",
        "Send Messages",
        "Send Messages in Threads",
        "Embed Links",
        "Attach Files",
        "Read Message History",
    ):
        assert f"**{name}**" in README


def test_every_bot_command_in_the_guides_runs_the_venvs_python() -> None:
    # Quick start never activates the virtual environment: a bare `python -m bot` would not
    # find discord.py. Inside the container the image's python is the right one.
    # In the guides under docs/ prose may name `python -m bot run`; the commands to type are
    # in code blocks.
    blocks = [
        "\n".join(re.findall(r"```[^\n]*\n(.*?)```", path.read_text(), flags=re.DOTALL))
        for path in sorted((ROOT / "docs").glob("*.md"))
    ]
    guides = [README, *blocks]
    for line in (line for text in guides for line in text.splitlines()):
        for match in re.finditer(r"(\S*)python3? -m bot\b", line):
            prefix = match.group(1)
            assert (
                prefix.endswith(".venv/bin/")
                or "docker compose exec stemcord" in line
                or (line.startswith("ExecStart="))
            ), line


def test_the_api_link_is_vidgos_documentation() -> None:
    assert "[Vidgo's music API](https://docs.vidgo.ai)" in README


def test_the_operations_guide_lists_every_exit_status() -> None:
    for code, _ in EXIT_STATUSES:
        assert re.search(rf"^\| {code} \| ", OPERATIONS, re.MULTILINE), code


def test_the_docs_give_the_real_job_timeout() -> None:
    from bot.settings import Settings

    default = Settings.model_fields["JOB_TIMEOUT_SECONDS"].default
    assert "JOB_TIMEOUT_SECONDS (1800 s by default)" in OPERATIONS and default == 1800


def test_the_settings_guide_lists_every_setting() -> None:
    from bot.settings import Settings

    guide = (ROOT / "docs" / "settings.md").read_text()
    example = (ROOT / ".env.example").read_text()
    for name in Settings.model_fields:
        assert f"`{name}`" in guide, name
        assert re.search(rf"^#? ?{name}=", example, re.MULTILINE), name


def test_every_link_between_the_guides_points_at_a_file_that_exists() -> None:
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        prose = re.sub(r"```.*?```|`[^`]*`", "", path.read_text(), flags=re.DOTALL)
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", prose):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            assert (path.parent / target).exists(), f"{path.name} -> {target}"
