"""The job flow in every catalog language: what each surface says, checked against the
catalogs (``Translations.text``), and that every rendered string fits Discord's limits in
every locale with long, realistic values."""

from __future__ import annotations

from typing import Any
from unittest import mock

import discord
import pytest

from bot.jobs import ErrorKind, Submitted
from bot.keys import NO_SPACE, NOT_KEPT, TOO_LONG, UNREADABLE
from bot.lyrics import NO_LYRICS, NO_TIMING, NO_VOCALS
from bot.media.errors import (
    FetchConnectionError,
    FetchTimeout,
    HostNotAllowed,
    HttpStatusError,
    InsecureUrl,
    InsufficientSpace,
    MediaError,
    NotAudio,
    RedirectNotAllowed,
    TooLarge,
    Truncated,
)
from bot.media.keeper import KEEP_FAILED, MIX_FAILED, fetch_failure
from bot.midi import NO_NOTES
from bot.progress import Progress
from bot.separation import GAVE_UP, NO_STEMS
from bot.sources import SourceError, SourceProblem, StreamingPage
from cogs.buttons import ButtonRouter, RefreshButton, status_items
from cogs.delivery import files_note
from cogs.i18n import Translations
from cogs.keys import KeyPicker, key_failure_sentence, key_options
from cogs.lyrics import LyricsView, lyrics_problem_sentence
from cogs.midi import MidiView
from cogs.render import escape_untrusted, left_out_sentence, status_embed
from cogs.separate import (
    STAGE_SENTENCES,
    LinksButton,
    SeparationView,
    source_problem_sentence,
    stage_error_text,
)
from cogs.views import KindViews, where_sentence
from storage.jobstate import JobState
from storage.records import Admission, JobRecord, SourceKind
from tests.cogs.test_lyrics import lyrics_job
from tests.cogs.test_midi import midi_job
from tests.helpers import interaction, job, private_answer

T = Translations.load()
LOCALES = ("en-US", "es-ES", "pt-BR", "ja", "ko")
TRANSLATED = ("es-ES", "pt-BR", "ja", "ko")
VIEWS = KindViews(
    [
        SeparationView(translations=T),
        LyricsView(translations=T, enhanced_lrc=True),
        MidiView(translations=T, enabled=True),
    ],
    fallback="separation",
)
RUNNING = {"state": JobState.RUNNING, "outcome": None, "created_at": 1_700_000_000.0}
# Long, realistic values: a title with markdown and a mention, a long Vidgo error message.
LONG_TITLE = "Harbour Lights (Extended Karaoke Mix) **feat.** <@&1> " * 8
LONG_ERROR = "Vidgo could not process the audio because the upstream decoder failed: " * 20


# -- the status message --------------------------------------------------------------------


@pytest.mark.parametrize("locale", ["ja", "es-ES"])
def test_the_status_message_is_in_the_servers_language(locale: str) -> None:
    running = job(**RUNNING)
    view = VIEWS.of(running)
    embed = status_embed(
        running,
        view.words,
        None,
        Progress(2, 5, 600, 0),
        details=view.status_details(running, locale),
        t=T,
        locale=locale,
    )
    assert embed.title == T.text(locale, "Stem separation") != "Stem separation"
    fields = {f.name: f.value for f in embed.fields}
    assert fields[T.text(locale, "Stems")] == T.text(locale, "vocals + instrumental")
    started = f"<t:{int(running.created_at)}:R>"
    assert fields[T.text(locale, "State")] == T.text(
        locale, "Separating… (started {started})", started=started
    )
    queue = fields[T.text(locale, "Queue")]
    assert queue == T.plural(
        locale,
        "No. {position} of {count} unfinished job in this server",
        "No. {position} of {count} unfinished jobs in this server",
        5,
        position="2",
    )
    assert "unfinished" not in str(queue)
    assert embed.footer.text == T.text(locale, "Job {id}", id=running.id)
    labels = [item.item.label for item in status_items(running, T, locale)]  # type: ignore[attr-defined]
    assert labels == [T.text(locale, "Refresh"), T.text(locale, "Cancel")]
    assert "Refresh" not in labels


def test_a_locale_without_a_catalog_reads_english() -> None:
    running = job(**RUNNING)
    view = VIEWS.of(running)
    embed = status_embed(running, view.words, t=T, locale="fr")
    assert embed.title == "Stem separation"
    assert [f.name for f in embed.fields] == ["Source", "State"]


# -- the result and its failures -------------------------------------------------------------


@pytest.mark.parametrize("locale", ["ja", "pt-BR"])
def test_the_separation_result_is_in_the_servers_language(locale: str) -> None:
    kept = job(
        result={
            "stems": {"vocals": "https://s/v.mp3", "instrumental": "https://s/i.mp3"},
            "media": {"key": "k", "files": {"vocals": "vocals.mp3"}, "backing": None},
        }
    )
    outcome = SeparationView(translations=T).render(kept, locale)
    assert outcome.content == T.text(locale, "{member} your stems are ready.", member="<@42>")
    assert [label for label, _ in outcome.buttons] == [
        T.text(locale, "Vocals"),
        T.text(locale, "Instrumental"),
    ]
    assert T.text(locale, "Vocals") != "Vocals"
    description = outcome.embed.description or ""
    assert description.startswith(
        T.plural(locale, "{count} stem ready.", "{count} stems ready.", 2)
    )
    assert T.text(locale, "Duration") in [f.name for f in outcome.embed.fields]
    items = [item for item in outcome.items if isinstance(item, LinksButton)]
    if items:
        assert items[0].item.label == T.text(locale, "Get links")
    assert outcome.embed.footer.text == T.text(locale, "Job {id}", id=kept.id)


FAILURES = [
    ("separation", ErrorKind.DUPLICATE),
    ("separation", ErrorKind.INVALID),
    ("separation", ErrorKind.VIDGO_FAILED),
    ("separation", ErrorKind.EXPIRED),
    ("separation", NO_STEMS),
    ("lyrics", NO_VOCALS),
    ("lyrics", NO_TIMING),
    ("lyrics", NO_LYRICS),
    ("lyrics", ErrorKind.DUPLICATE),
    ("midi", NO_NOTES),
    ("midi", ErrorKind.NOT_FOUND),
] + [
    ("separation", kind)
    for kind in (
        ErrorKind.AUTH,
        ErrorKind.NOT_FOUND,
        ErrorKind.SUBMIT_GAVE_UP,
        ErrorKind.UNCONFIRMED,
        ErrorKind.MALFORMED,
        ErrorKind.INTERNAL,
        ErrorKind.NOT_ENABLED,
    )
]


@pytest.mark.parametrize(("kind", "error"), FAILURES)
@pytest.mark.parametrize("locale", ["ja", "ko"])
def test_every_failure_is_worded_in_the_readers_language(
    kind: str, error: str, locale: str
) -> None:
    failed = job(
        kind=kind,
        state=JobState.FAILED,
        outcome=JobState.FAILED,
        error_kind=error,
        last_error="decoder failed",
    )
    view = VIEWS.named(kind)
    english = view.failure_sentence(failed, "en-US")
    said = view.failure_sentence(failed, locale)
    assert said != english
    if error in (ErrorKind.INVALID, ErrorKind.VIDGO_FAILED):
        assert "decoder failed" in said  # Vidgo's own words, as a value
    assert said in str(view.render(failed, locale).embed.description)


@pytest.mark.parametrize("error", [NOT_KEPT, UNREADABLE, NO_SPACE, TOO_LONG, ErrorKind.EXPIRED])
def test_key_failures_are_worded_in_japanese(error: str) -> None:
    failed = job(kind="key", outcome=JobState.FAILED, error_kind=error)
    assert key_failure_sentence(failed, T, "ja") != key_failure_sentence(failed, T, "en-US")


@pytest.mark.parametrize("locale", ["ja", "es-ES"])
def test_the_lyrics_and_midi_results_are_in_the_servers_language(locale: str) -> None:
    lyrics = VIEWS.named("lyrics").render(lyrics_job(), locale)
    assert lyrics.content.endswith(
        T.text(
            locale,
            "{member} the lyrics are ready — load the .lrc file in your karaoke player.",
            member="<@42>",
        )
    )
    names = [f.name for f in lyrics.embed.fields]
    assert names[:2] == [T.text(locale, "Lines"), T.text(locale, "Words")]
    midi = VIEWS.named("midi").render(midi_job(), locale)
    assert midi.content == T.text(locale, "{member} here is the MIDI.", member="<@42>")
    assert T.text(locale, "Tracks") in [f.name for f in midi.embed.fields]
    offered = VIEWS.offers(job(), locale)
    assert [item.item.label for item in offered] == [T.text(locale, "Lyrics")]  # type: ignore[attr-defined]


@pytest.mark.parametrize("locale", ["ja", "es-ES"])
def test_the_files_note_is_in_the_readers_language(locale: str) -> None:
    note = files_note(["the backing track"], ["the vocals"], 10 * 1_048_576, T, locale)
    assert note is not None
    backing = T.text(locale, "the backing track")
    assert backing[1:] in note and backing != "the backing track"
    assert left_out_sentence(["the vocals"], 10 * 1_048_576, T, locale) in note
    assert "could not be attached" not in note


# -- private answers -------------------------------------------------------------------------


@pytest.mark.parametrize("problem", list(SourceProblem))
@pytest.mark.parametrize("locale", ["ja", "pt-BR"])
def test_every_input_problem_is_worded_in_the_members_language(
    problem: SourceProblem, locale: str
) -> None:
    values: dict[str, Any] = {
        "name": "task_id",
        "length": 3000,
        "limit": 2048,
        "service": "YouTube",
        "filename": "my song.png",
        "size": 30_000_000,
    }
    error = (
        StreamingPage("YouTube")
        if problem is SourceProblem.STREAMING_PAGE
        else SourceError(problem, **values)
    )
    said = source_problem_sentence(error, T, locale)
    assert said != source_problem_sentence(error, T, "en-US")
    if problem in (SourceProblem.NOT_AUDIO, SourceProblem.FILE_TOO_LARGE):
        assert "my song.png" in said
    if problem is SourceProblem.STREAMING_PAGE:
        assert "YouTube" in said
    lyrics = lyrics_problem_sentence(error, T, locale)
    assert lyrics != lyrics_problem_sentence(error, T, "en-US")


@pytest.mark.parametrize("admission", list(Admission))
@pytest.mark.parametrize("kind", ["lyrics", "midi", "separation"])
def test_the_private_answers_to_a_request_are_in_the_members_language(
    admission: Admission, kind: str
) -> None:
    submitted = Submitted(job(kind=kind, state=JobState.SUBMITTED, outcome=None), admission)
    said = VIEWS.admitted(kind, submitted, None, "ja")
    assert said != VIEWS.admitted(kind, submitted, None, "en-US")
    if kind != "midi" and admission is not Admission.JOINED:
        assert said.endswith(where_sentence(T, "ja", None))
    channel = VIEWS.admitted(kind, submitted, 77, "ko")
    if kind != "midi" and admission is not Admission.JOINED:
        assert channel.endswith(T.text("ko", "Where: {channel}.", channel="<#77>"))


def test_the_key_menu_is_in_the_members_language() -> None:
    options = key_options(T, "ja")
    assert [o.value for o in options][:2] == ["-6", "-5"]
    assert options[0].label == T.plural(
        "ja", "{sign}{count} semitone", "{sign}{count} semitones", 6, sign="-"
    )
    assert options[-1].description == T.plural(
        "ja", "{count} semitone higher", "{count} semitones higher", 6
    )
    picker = KeyPicker("sep0000001", translations=T, locale="ko")
    assert picker.item.placeholder == T.text("ko", "Pick a key") != "Pick a key"


async def test_the_button_router_answers_in_the_members_language() -> None:
    router = ButtonRouter(translations=T)
    inter = interaction()
    inter.locale = discord.Locale.japanese
    await router.press("gone", inter, "abcdefghjk")
    assert private_answer(inter) == T.text("ja", "This button no longer does anything.")
    failing = mock.AsyncMock(side_effect=RuntimeError("boom"))
    router.route("boom", failing)
    broken = interaction()
    broken.locale = discord.Locale.korean
    await router.press("boom", broken, "abcdefghjk")
    assert private_answer(broken) == T.text(
        "ko", "Something went wrong on Stemcord's side; please try again in a minute."
    )
    assert RefreshButton.labelled("abcdefghjk", T, "ja").item.label == T.text("ja", "Refresh")


# -- Discord's limits, in every locale --------------------------------------------------------


def check_embed(embed: discord.Embed) -> None:
    assert len(embed.title or "") <= 256
    assert len(embed.description or "") <= 4096
    assert len(embed.fields) <= 25
    for field in embed.fields:
        assert 0 < len(field.name or "") <= 256
        assert 0 < len(field.value or "") <= 1024
    assert len(embed.footer.text or "") <= 2048
    assert len(embed) <= 6000


def check_outcome(outcome: Any) -> None:
    assert len(outcome.content) <= 2000
    check_embed(outcome.embed)
    for label, _ in outcome.buttons:
        assert 0 < len(label) <= 80
    for item in outcome.items:
        assert 0 < len(item.item.label) <= 80


def long_jobs() -> list[JobRecord]:
    stems = {f"stem_{i}": f"https://storage.example/{i}/" + "x" * 300 for i in range(30)}
    failed = {
        "state": JobState.FAILED,
        "outcome": JobState.FAILED,
        "last_error": LONG_ERROR,
    }
    found = [
        job(result={"stems": stems}, track={"title": LONG_TITLE}),
        job(
            source_kind=SourceKind.URL,
            options={"title": LONG_TITLE, "model_name": "enhanced"},
            track=None,
            result={"stems": stems, "media": {"key": "k", "files": {"vocals": "v.mp3"}}},
        ),
        job(**RUNNING, track={"title": LONG_TITLE}),
        lyrics_job(track={"title": LONG_TITLE, "duration": 184.32}),
        midi_job(track={"title": LONG_TITLE, "duration": 3}),
    ]
    for kind in ("separation", "lyrics", "midi"):
        for error in (ErrorKind.INVALID, ErrorKind.VIDGO_FAILED, ErrorKind.UNCONFIRMED):
            found.append(job(kind=kind, error_kind=error, track={"title": LONG_TITLE}, **failed))
    return found


@pytest.mark.parametrize("locale", LOCALES)
def test_every_rendered_string_fits_discords_limits_in_every_locale(locale: str) -> None:
    for record in long_jobs():
        view = VIEWS.of(record)
        if record.outcome is not None:
            check_outcome(view.render(record, locale))
        for item in VIEWS.offers(record, locale):
            assert 0 < len(item.item.label) <= 80  # type: ignore[attr-defined]
        check_embed(
            status_embed(
                record,
                view.words,
                Admission.CACHED,
                Progress(99_999, 100_000, 999_999, 999_999),
                details=view.status_details(record, locale),
                t=T,
                locale=locale,
            )
        )
    for option in key_options(T, locale):
        assert 0 < len(option.label) <= 100 and 0 < len(option.description or "") <= 100
    for item in status_items(job(**RUNNING), T, locale):
        assert 0 < len(item.item.label) <= 80  # type: ignore[attr-defined]
    note = files_note(
        ["the backing track", "the vocals"], ["the backing track", "the vocals"], 10**9, T, locale
    )
    assert note is not None and len(note) <= 1024
    for problem in SourceProblem:
        error = SourceError(
            problem,
            name="audio_id",
            length=99_999,
            limit=2048,
            service="YouTube Music",
            filename="x" * 300,
            size=10**12,
        )
        assert len(source_problem_sentence(error, T, locale)) <= 2000
        assert len(lyrics_problem_sentence(error, T, locale)) <= 2000
    for admission in Admission:
        for kind in ("separation", "lyrics", "midi"):
            submitted = Submitted(job(kind=kind, id="z" * 32), admission)
            assert len(VIEWS.admitted(kind, submitted, 2**63, locale)) <= 2000


@pytest.mark.parametrize("locale", TRANSLATED)
def test_translated_labels_are_not_the_english(locale: str) -> None:
    for english in ("Get links", "Refresh", "Cancel", "Change key", "Lyrics", "Backing track"):
        assert T.text(locale, english) != english


TIMED_OUT = FetchTimeout("total", "storage.vidgo.ai", 30.0)


def test_the_media_stages_sentences_are_in_the_readers_language() -> None:
    # The very sentences bot/ writes into a result (kept verbatim for English readers).
    written = [
        GAVE_UP,
        f"{KEEP_FAILED}: Vidgo's links have expired.",
        f"{KEEP_FAILED}: {fetch_failure(TIMED_OUT)}.",
        f"{MIX_FAILED}: the stems could not be mixed.",
    ]
    for sentence in written:
        assert sentence in STAGE_SENTENCES
        assert stage_error_text(sentence, T, "en-US") == sentence
        assert stage_error_text(sentence, T, "ja") == T.text("ja", sentence) != sentence
    kept = job(
        result={
            "stems": {"vocals": "https://s/v.mp3"},
            "media": {"key": "k", "files": {"vocals": "v.mp3"}, "error": GAVE_UP},
        }
    )
    description = SeparationView(translations=T).render(kept, "ko").embed.description or ""
    assert T.text("ko", GAVE_UP) in description
    # A sentence the catalogs do not know is shown as written, escaped.
    odd = f"{KEEP_FAILED}: something new happened (*x.org*)."
    assert stage_error_text(odd, T, "ja") == escape_untrusted(odd, 500)


@pytest.mark.parametrize(
    ("failure", "value"),
    [
        (HostNotAllowed("files.example.org"), "files.example.org"),
        (TooLarge(200 * 1_048_576), "200"),
        (HttpStatusError(502, "storage.vidgo.ai"), "502"),
        (RedirectNotAllowed("to another host"), None),
        (InsecureUrl("example.org"), None),
        (Truncated(10, 20), None),
        (TIMED_OUT, None),
        (HttpStatusError(404, "storage.vidgo.ai"), None),
        (FetchConnectionError("storage.vidgo.ai", "refused"), None),
        (NotAudio(), None),
        (InsufficientSpace(free=1, needed=2, minimum=3), None),
        (MediaError("anything else"), None),
    ],
)
@pytest.mark.parametrize("locale", TRANSLATED)
def test_every_reason_a_stem_is_not_kept_reads_in_the_readers_language(
    failure: MediaError, value: str | None, locale: str
) -> None:
    # Exactly what the keeper writes into the result when the first stem is not kept.
    written = f"{KEEP_FAILED}: {fetch_failure(failure)}."
    assert stage_error_text(written, T, "en-US") == written
    said = stage_error_text(written, T, locale)
    assert "could not keep" not in said  # not the English sentence
    if value is not None:
        assert value in said  # the host, the size or the status, inside the translation


def test_a_value_in_a_stage_sentence_is_escaped_inside_the_translation() -> None:
    written = f"{KEEP_FAILED}: {fetch_failure(HostNotAllowed('evil_host*'))}."
    said = stage_error_text(written, T, "ja")
    assert escape_untrusted("evil_host*", 100) in said and "evil_host*" not in said
