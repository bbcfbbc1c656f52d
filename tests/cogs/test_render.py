"""Rendering: escaping untrusted text and staying inside Discord's limits."""

from __future__ import annotations

import re
from dataclasses import replace

import discord
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.engine import ErrorKind
from cogs.render import (
    BUTTONS_MAX,
    EMBED_TOTAL_MAX,
    escape_untrusted,
    failure_sentence,
    render_outcome,
    status_embed,
)
from storage.jobstate import JobState
from storage.records import Admission, JobRecord, SourceKind

MASS = re.compile(r"@(everyone|here)|<@&?!?\d+>|<#\d+>")


def job(**changes: object) -> JobRecord:
    base = JobRecord(
        id="abcdefghjk",
        kind="separation",
        source_kind=SourceKind.IDS,
        source_key="k",
        model="separate-vocals",
        requester_id=42,
        channel_id=7,
        guild_id=9,
        source_task_id="T",
        source_audio_id="A",
        source_url=None,
        options={},
        status_message_id=None,
        reply_to_message_id=None,
        vidgo_task_id="task",
        leader_id=None,
        state=JobState.SUCCEEDED,
        outcome=JobState.SUCCEEDED,
        attempts=1,
        polls=1,
        delivery_attempts=0,
        due_at=None,
        deadline_at=0.0,
        last_error=None,
        error_kind=None,
        callback_token_hash=None,
        callbacks=0,
        result={"stems": {"vocals": "https://s/v.mp3", "instrumental": "https://s/i.mp3"}},
        track={"title": "Song", "cover_url": "https://s/c.jpg", "duration": 184.3},
        result_message_id=None,
        created_at=1_800_000_000.0,
        updated_at=1_800_000_000.0,
        finished_at=None,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@given(st.text(max_size=3000), st.integers(min_value=1, max_value=2000))
def test_escaped_text_never_pings_and_fits(text: str, limit: int) -> None:
    out = escape_untrusted(text, limit)
    assert len(out) <= limit
    assert not MASS.search(out)
    assert "@" not in out
    assert "\u200b" not in out and "\u202e" not in out


def test_escaping_examples() -> None:
    assert escape_untrusted("@everyone hi", 100) == "\uff20everyone hi"
    assert "<@&" not in escape_untrusted("<@&123>", 100)
    assert escape_untrusted("**bold**", 100) == "\\*\\*bold\\*\\*"
    assert escape_untrusted("a\u200bb\u202ec", 100) == "abc"
    assert escape_untrusted("x" * 10, 5) == "xxxx…"
    assert escape_untrusted(None, 5) == ""


def embed_size(embed: object) -> int:
    import discord

    assert isinstance(embed, discord.Embed)
    return len(embed)


@pytest.mark.parametrize("count", [1, 2, 13, 30])
def test_result_message_stays_within_limits(count: int) -> None:
    stems = {f"stem_{i}": f"https://storage.example/{i}/" + "x" * 300 for i in range(count)}
    rendered = render_outcome(job(result={"stems": stems}, track={"title": "t" * 500}))
    assert len(rendered.buttons) == min(count, BUTTONS_MAX)
    assert embed_size(rendered.embed) <= EMBED_TOTAL_MAX
    assert len(rendered.embed.title or "") <= 256
    assert len(rendered.embed.fields) <= 25
    assert all(len(f.value or "") <= 1024 for f in rendered.embed.fields)
    view = rendered.view()
    assert view is not None
    rows: dict[int, int] = {}
    for item in view.children:
        rows[item.row or 0] = rows.get(item.row or 0, 0) + 1  # type: ignore[attr-defined]
    assert all(n <= 5 for n in rows.values()) and len(rows) <= 5
    # Stems beyond 25 buttons are still shown, as links in fields.
    if count > BUTTONS_MAX:
        assert "More stems" in [f.name for f in rendered.embed.fields]


def test_result_mentions_only_the_requester_and_skips_unsafe_covers() -> None:
    rendered = render_outcome(job(track={"title": "@everyone", "cover_url": "javascript:x"}))
    assert rendered.content.startswith("<@42>")
    assert rendered.embed.thumbnail.url is None
    assert "@everyone" not in (rendered.embed.title or "")


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        (ErrorKind.AUTH, "tell the server owner"),
        (ErrorKind.DUPLICATE, "already separated"),
        (ErrorKind.EXPIRED, "did not finish in time"),
        (ErrorKind.NOT_FOUND, "task_id"),
    ],
)
def test_failures_say_what_to_do(kind: ErrorKind, words: str) -> None:
    failed = job(outcome=JobState.FAILED, error_kind=kind.value, result=None)
    assert words in failure_sentence(failed)
    assert words in (render_outcome(failed).embed.description or "")


def test_vidgo_error_message_is_escaped_and_truncated() -> None:
    failed = job(
        outcome=JobState.FAILED,
        error_kind=ErrorKind.VIDGO_FAILED.value,
        last_error="@here " + "y" * 5000,
        result=None,
    )
    rendered = render_outcome(failed)
    assert "@here" not in (rendered.embed.description or "")
    assert embed_size(rendered.embed) <= EMBED_TOTAL_MAX


def test_status_embed_reflects_state() -> None:
    running = job(state=JobState.RUNNING, outcome=None)
    assert "Separating" in str(status_embed(running).to_dict())
    cached = status_embed(job(), Admission.CACHED)
    assert "Already separated" in str(cached.to_dict())
    joined = status_embed(job(state=JobState.SUBMITTED, outcome=None, leader_id="x"))
    assert "Joined" in str(joined.to_dict())


def test_other_kinds_render_through_their_registered_renderer() -> None:
    from cogs.render import OUTCOME_RENDERERS, Outcome

    def render_echo(j: JobRecord) -> Outcome:
        return Outcome("echo", discord.Embed(title=j.id), [], files=[("a.txt", b"x")], reply_to=5)

    OUTCOME_RENDERERS["echo"] = render_echo
    try:
        outcome = render_outcome(replace(job(), kind="echo"))
        assert outcome.content == "echo"
        assert outcome.reply_to == 5
        # Each send gets new file objects, so a retried delivery can upload again.
        first, second = outcome.discord_files(), outcome.discord_files()
        assert first[0] is not second[0]
        assert first[0].filename == "a.txt"
        assert render_outcome(job()).content != "echo"
    finally:
        del OUTCOME_RENDERERS["echo"]


def test_link_buttons_leave_room_for_interactive_items() -> None:
    from cogs.render import Outcome

    item: discord.ui.Button[discord.ui.View] = discord.ui.Button(label="MIDI", custom_id="x")
    links = [(f"S{i}", f"https://example.org/{i}") for i in range(30)]
    view = Outcome("c", discord.Embed(), links, items=[item]).view()
    assert view is not None
    assert len(view.children) == BUTTONS_MAX
    assert view.children[-1] is item


def test_overflow_stems_are_whole_links_with_escaped_names() -> None:
    from cogs.render import pack_lines

    stems = {f"stem_{i}": f"https://storage.example/{i}/" + "x" * 300 for i in range(28)}
    stems["**bold** [x](https://evil.example)"] = "https://storage.example/evil.mp3"
    rendered = render_outcome(job(result={"stems": stems}))
    more = [f.value or "" for f in rendered.embed.fields if f.name == "More stems"]
    text = "\n".join(more)
    # Every overflow stem appears once, its link unbroken.
    for i in range(25, 28):
        assert text.count(f"(<https://storage.example/{i}/{'x' * 300}>)") == 1
    assert "**bold**" not in text and "[x](https://evil.example)" not in text
    assert all(len(v) <= 1024 for v in more)
    assert pack_lines(["a" * 5, "b" * 5, "c" * 20, "d"], 11) == ["aaaaa\nbbbbb", "d"]


def test_status_of_lyrics_and_midi_jobs_speaks_of_their_own_result() -> None:
    lyrics = replace(job(), kind="lyrics", state=JobState.RUNNING)
    embed = status_embed(lyrics)
    assert embed.title == "Timed lyrics"
    assert "Stems" not in [f.name for f in embed.fields]
    assert "Timing the lyrics" in str(embed.to_dict())
    done = replace(job(), kind="midi", state=JobState.DELIVERED, outcome=JobState.SUCCEEDED)
    assert "the MIDI file is in the message below" in str(status_embed(done).to_dict())
    assert status_embed(job()).title == "Stem separation"
