"""Rendering: escaping untrusted text, staying inside Discord's limits, each kind's words."""

from __future__ import annotations

from dataclasses import replace

import discord
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.jobs import ErrorKind
from bot.separation import SEPARATION
from cogs.i18n import LocaleLike, Translations
from cogs.lyrics import LyricsView
from cogs.midi import MidiView
from cogs.render import (
    BUTTONS_MAX,
    EMBED_TOTAL_MAX,
    Outcome,
    escape_untrusted,
    status_embed,
)
from cogs.separate import SeparationView
from cogs.views import KindView, KindViews
from storage.jobstate import JobState
from storage.records import Admission, JobRecord
from tests.helpers import MASS, job

T = Translations.load()

VIEWS = KindViews(
    [
        SeparationView(translations=T),
        LyricsView(translations=T, enhanced_lrc=False),
        MidiView(translations=T, enabled=True),
    ],
    fallback=SEPARATION,
)


def render_outcome(record: JobRecord) -> Outcome:
    return VIEWS.of(record).render(record, "en-US")


def status(record: JobRecord, admission: Admission | None = None) -> discord.Embed:
    view = VIEWS.of(record)
    return status_embed(
        record,
        view.words,
        admission,
        details=view.status_details(record, "en-US"),
        t=T,
        locale="en-US",
    )


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
    assert words in VIEWS.of(failed).failure_sentence(failed, "en-US")
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
    assert "Separating" in str(status(running).to_dict())
    cached = status(job(), Admission.CACHED)
    assert "Already separated" in str(cached.to_dict())
    joined = status(job(state=JobState.SUBMITTED, outcome=None, leader_id="x"))
    assert "Joined" in str(joined.to_dict())


def test_a_kind_renders_through_its_own_view_and_unknown_kinds_as_separations() -> None:
    class EchoView(KindView):
        kind = "echo"
        words = SeparationView.words

        def render(self, record: JobRecord, locale: LocaleLike) -> Outcome:
            return Outcome(
                "echo", discord.Embed(title=record.id), [], files=[("a.txt", b"x")], reply_to=5
            )

        def failure_sentence(self, record: JobRecord, locale: LocaleLike) -> str:
            return "no echo"

    views = KindViews(
        [SeparationView(translations=T), EchoView(translations=T)], fallback=SEPARATION
    )
    outcome = views.of(replace(job(), kind="echo")).render(replace(job(), kind="echo"), "en-US")
    assert outcome.content == "echo"
    assert outcome.reply_to == 5
    # Each send gets new file objects, so a retried delivery can upload again.
    first, second = outcome.discord_files(), outcome.discord_files()
    assert first[0] is not second[0]
    assert first[0].filename == "a.txt"
    # A kind nobody shows any more (a feature removed) is shown as a separation.
    gone = replace(job(), kind="karaoke-video")
    assert isinstance(views.of(gone), SeparationView)
    assert views.of(job()).render(job(), "en-US").content != "echo"


def test_two_views_of_one_kind_or_a_missing_fallback_are_refused() -> None:
    with pytest.raises(ValueError, match="fallback"):
        KindViews([LyricsView(translations=T, enhanced_lrc=False)], fallback=SEPARATION)
    with pytest.raises(ValueError, match="same kind"):
        KindViews(
            [
                SeparationView(translations=T),
                SeparationView(translations=T),
            ],
            fallback=SEPARATION,
        )


def test_link_buttons_leave_room_for_interactive_items() -> None:
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
    embed = status(lyrics)
    assert embed.title == "Timed lyrics"
    assert "Stems" not in [f.name for f in embed.fields]
    assert "Timing the lyrics" in str(embed.to_dict())
    done = replace(job(), kind="midi", state=JobState.DELIVERED, outcome=JobState.SUCCEEDED)
    assert "the MIDI file is in the message below" in str(status(done).to_dict())
    assert status(job()).title == "Stem separation"
