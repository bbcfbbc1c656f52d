"""A separation's message with kept files: its links, attachments, sentences and Get links.

Real media store, signer and links (files on disk); Discord objects are spec'd mocks.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import discord
import pytest

from bot.audio import AudioPool
from bot.media import MediaSigner, MediaStore
from bot.media.links import MediaLinks, UploadFitter
from bot.media.work import AudioQueue
from bot.policy import GuildPolicy
from cogs.i18n import Translations
from cogs.render import KindWords, state_text
from cogs.separate import NOTHING_LEFT, LinksButton, SeparationView, render_separation
from cogs.views import PressServices
from storage.jobstate import JobState
from storage.records import Admission, JobRecord, SourceKind
from tests.fakes.audio import stem_mp3
from tests.helpers import interaction, job, member

T = Translations.load()

# The files written here carry the real time, and a link never outlives its file's
# retention: the tests' clock is the real one.
NOW = time.time()
PUBLIC = "https://bot.example.org"
KEY = "task-unified-1764061200-k3v9qz1a"
VIDGO = {"vocals": "https://s/v.mp3", "instrumental": "https://s/i.mp3"}
UPLOAD_VIDGO = {s: f"https://s/{s}.mp3" for s in ("vocals", "bass", "drums")}


@pytest.fixture
def media(tmp_path: Path) -> Iterator[MediaStore]:
    with MediaStore.open_sync(tmp_path / "media") as store:
        yield store


@pytest.fixture
def signer() -> MediaSigner:
    return MediaSigner(b"k" * 32)


def links_for(media: MediaStore, signer: MediaSigner, public: str | None = PUBLIC) -> MediaLinks:
    return MediaLinks(
        signer, media, public_url=public, ttl_hours=24, retention_days=7, clock=lambda: NOW
    )


async def keep(media: MediaStore, *names: str) -> None:
    for name in names:
        await media.put_bytes(KEY, name, stem_mp3(name.rsplit(".", 1)[0]))


def kept_job(files: dict[str, str], backing: str | None, **changes: Any) -> JobRecord:
    result: dict[str, Any] = {
        "stems": changes.pop("stems", VIDGO),
        "vidgo_task_id": KEY,
        "links_until": changes.pop("links_until", NOW + 3600),
        "media": {
            "key": KEY,
            "files": files,
            "backing": backing,
            "error": changes.pop("error", None),
        },
    }
    return job(result=result, **changes)


def signed(url: str, signer: MediaSigner) -> tuple[str, str]:
    """The key and name a signed URL names, checked against the signer."""
    parts = urlsplit(url)
    _, _, key, name = parts.path.split("/")
    query = parse_qs(parts.query)
    assert signer.sign(key, name, int(query["expires"][0])) == query["sig"][0]
    return key, name


# -- the message -----------------------------------------------------------------------------


async def test_kept_stems_link_to_signed_copies_and_offer_get_links(
    media: MediaStore, signer: MediaSigner
) -> None:
    await keep(media, "vocals.mp3", "instrumental.mp3")
    files = {"vocals": "vocals.mp3", "instrumental": "instrumental.mp3"}
    outcome = render_separation(
        kept_job(files, "instrumental.mp3"),
        "",
        t=T,
        locale="en-US",
        links=links_for(media, signer),
        now=NOW,
    )
    assert [label for label, _ in outcome.buttons] == ["Vocals", "Instrumental"]
    assert [signed(url, signer) for _, url in outcome.buttons] == [
        (KEY, "vocals.mp3"),
        (KEY, "instrumental.mp3"),
    ]
    assert [item.custom_id for item in outcome.items] == [  # type: ignore[attr-defined]
        "stemcord:links:abcdefghjk"
    ]
    assert [(u.name, u.filename, u.what) for u in outcome.uploads] == [
        ("instrumental.mp3", "Song - backing track.mp3", "the backing track"),
        ("vocals.mp3", "Song - vocals.mp3", "the vocals"),
    ]
    description = outcome.embed.description or ""
    assert "copies kept by this bot" in description and "24 hours" in description
    assert "kept for 7 days" in description


async def test_a_mixed_backing_track_gets_its_own_button_after_the_stems(
    media: MediaStore, signer: MediaSigner
) -> None:
    await keep(media, "vocals.mp3", "bass.mp3", "drums.mp3", "instrumental.mp3")
    files = {s: f"{s}.mp3" for s in UPLOAD_VIDGO} | {"instrumental": "instrumental.mp3"}
    record = kept_job(files, "instrumental.mp3", stems=UPLOAD_VIDGO, source_kind=SourceKind.URL)
    outcome = render_separation(
        record,
        "",
        t=T,
        locale="en-US",
        links=links_for(media, signer),
        now=NOW,
    )
    assert [label for label, _ in outcome.buttons] == ["Vocals", "Bass", "Drums", "Backing track"]
    assert signed(outcome.buttons[-1][1], signer) == (KEY, "instrumental.mp3")
    assert "every stem but the lead vocal" in (outcome.embed.description or "")


async def test_without_a_public_address_the_buttons_are_vidgos_while_they_live(
    media: MediaStore, signer: MediaSigner
) -> None:
    await keep(media, "vocals.mp3", "instrumental.mp3")
    files = {"vocals": "vocals.mp3", "instrumental": "instrumental.mp3"}
    record = kept_job(files, "instrumental.mp3")
    outcome = render_separation(
        record,
        "",
        t=T,
        locale="en-US",
        links=links_for(media, signer, None),
        now=NOW,
    )
    assert outcome.buttons == [("Vocals", VIDGO["vocals"]), ("Instrumental", VIDGO["instrumental"])]
    assert "Vidgo's links" in (outcome.embed.description or "")
    assert len(outcome.items) == 1 and len(outcome.uploads) == 2
    # A day later Vidgo's links are gone: no dead buttons, Get links still works.
    later = render_separation(
        record,
        "",
        t=T,
        locale="en-US",
        links=links_for(media, signer, None),
        now=NOW + 7200,
    )
    assert later.buttons == []
    assert "Get links" in (later.embed.description or "") and len(later.items) == 1


def test_nothing_kept_and_vidgos_links_gone_is_said_plainly() -> None:
    record = kept_job({}, None, error="Stemcord could not keep a copy of the stems: x.")
    outcome = render_separation(record, "", t=T, locale="en-US", now=NOW + 7200)
    assert outcome.embed.description == NOTHING_LEFT
    assert outcome.buttons == [] and outcome.items == [] and outcome.uploads == []
    assert "no longer available" in outcome.content


def test_a_stage_error_is_shown_escaped_with_vidgos_links(
    media: MediaStore, signer: MediaSigner
) -> None:
    error = "Stemcord could not keep a copy of the stems: on a host (*evil*_host @everyone)."
    outcome = render_separation(kept_job({}, None, error=error), "", t=T, locale="en-US", now=NOW)
    description = outcome.embed.description or ""
    assert "\\*evil\\*\\_host" in description and "@everyone" not in description
    assert outcome.buttons == [("Vocals", VIDGO["vocals"]), ("Instrumental", VIDGO["instrumental"])]
    assert outcome.items == []  # nothing kept: no Get links


def test_a_result_without_media_reads_as_before() -> None:
    outcome = render_separation(job(), "", t=T, locale="en-US", now=NOW)
    assert "may expire within 1 day" in (outcome.embed.description or "")
    assert outcome.buttons == [("Vocals", VIDGO["vocals"]), ("Instrumental", VIDGO["instrumental"])]
    assert outcome.items == [] and outcome.uploads == []


def test_an_uploads_files_are_named_after_the_uploaded_file() -> None:
    record = kept_job(
        {"vocals": "vocals.mp3"},
        "instrumental.mp3",
        track=None,
        source_kind=SourceKind.ATTACHMENT,
        options={"title": "My *Song*.mp3"},
    )
    outcome = render_separation(record, "", t=T, locale="en-US", now=NOW)
    assert [u.filename for u in outcome.uploads] == [
        "My Song - backing track.mp3",
        "My Song - vocals.mp3",
    ]


def test_the_status_says_the_files_are_being_kept_until_the_step_is_done() -> None:
    words = SeparationView.words
    working = job(state=JobState.SUCCEEDED, prepared_at=None)
    en = {"t": T, "locale": "en-US"}
    assert state_text(working, words, **en) == words.preparing
    assert state_text(working, words, Admission.CACHED, **en).startswith("Already separated")
    done = job(state=JobState.SUCCEEDED, prepared_at=NOW)
    assert state_text(done, words, **en) == "Done — the stems are in the message below"
    plain = KindWords(
        "Lyrics",
        "… {started}",
        "Done — the lyrics are in the message below",
        "Done — the lyrics are in {channel}",
        "Made before",
        "These lyrics were already posted: {link}",
    )
    assert state_text(working, plain, **en) == "Done — the lyrics are in the message below"
    japanese = state_text(working, words, t=T, locale="ja")
    assert japanese == T.text("ja", words.preparing) != words.preparing


# -- Get links ----------------------------------------------------------------------------------


@pytest.fixture
async def pool() -> AsyncIterator[AudioPool]:
    async with AudioPool(workers=1, queue_limit=1, timeout=60) as started:
        yield started


def answer_of(inter: mock.Mock) -> tuple[str, dict[str, Any]]:
    args, kwargs = inter.response.send_message.await_args
    assert kwargs.get("ephemeral") is True
    return str(args[0] if args else kwargs.get("content")), kwargs


async def test_get_links_gives_fresh_signed_links_privately(
    media: MediaStore, signer: MediaSigner, services: PressServices, engine: Any
) -> None:
    await keep(media, "vocals.mp3", "instrumental.mp3")
    files = {"vocals": "vocals.mp3", "instrumental": "instrumental.mp3"}
    engine.get_job.return_value = kept_job(files, "instrumental.mp3", links_until=NOW - 1)
    view = SeparationView(translations=T, links=links_for(media, signer), clock=lambda: NOW)
    inter = interaction(user=member(user_id=77))  # anyone who sees the result may ask
    await view.press_links(services, inter, "abcdefghjk")
    text, kwargs = answer_of(inter)
    assert "Fresh links to **Song**, working for 24 hours" in text
    buttons = [(b.label, b.url) for b in kwargs["view"].children]
    assert [label for label, _ in buttons] == ["Vocals", "Instrumental"]
    assert signed(str(buttons[0][1]), signer) == (KEY, "vocals.mp3")


async def test_get_links_obeys_the_servers_role_rule(
    media: MediaStore, signer: MediaSigner, services: PressServices, engine: Any, policies: Any
) -> None:
    engine.get_job.return_value = kept_job({"vocals": "vocals.mp3"}, None)
    policies.get.return_value = GuildPolicy(required_role_id=555)
    view = SeparationView(translations=T, links=links_for(media, signer), clock=lambda: NOW)
    inter = interaction()
    await view.press_links(services, inter, "abcdefghjk")
    text, _ = answer_of(inter)
    assert "<@&555>" in text


async def test_get_links_for_a_job_of_another_server_finds_nothing(
    services: PressServices, engine: Any
) -> None:
    engine.get_job.return_value = kept_job({"vocals": "vocals.mp3"}, None, guild_id=12345)
    inter = interaction()
    await SeparationView(translations=T, clock=lambda: NOW).press_links(
        services, inter, "abcdefghjk"
    )
    assert "can't find" in answer_of(inter)[0]


async def test_get_links_without_a_public_address_sends_the_files_within_the_limit(
    media: MediaStore,
    signer: MediaSigner,
    services: PressServices,
    engine: Any,
    pool: AudioPool,
) -> None:
    await keep(media, "vocals.mp3", "instrumental.mp3")
    files = {"vocals": "vocals.mp3", "instrumental": "instrumental.mp3"}
    engine.get_job.return_value = kept_job(files, "instrumental.mp3", links_until=NOW - 1)
    view = SeparationView(
        translations=T,
        links=links_for(media, signer, None),
        fitter=UploadFitter(media, AudioQueue(pool)),
        clock=lambda: NOW,
    )
    inter = interaction()
    # Room for the backing track, not for the vocals as well.
    inter.filesize_limit = len(stem_mp3("instrumental")) + 1000
    await view.press_links(services, inter, "abcdefghjk")
    inter.response.defer.assert_awaited_once_with(ephemeral=True, thinking=True)
    args, kwargs = inter.followup.send.await_args
    assert kwargs["ephemeral"] is True
    sent: list[discord.File] = kwargs["files"]
    assert [f.filename for f in sent] == ["Song - backing track.mp3"]
    assert "The vocals could not be attached" in args[0]


async def test_get_links_with_nothing_left_says_so(services: PressServices, engine: Any) -> None:
    engine.get_job.return_value = kept_job({}, None, links_until=NOW - 1)
    inter = interaction()
    await SeparationView(translations=T, clock=lambda: NOW).press_links(
        services, inter, "abcdefghjk"
    )
    assert answer_of(inter)[0] == NOTHING_LEFT


def test_the_get_links_button_survives_a_restart() -> None:
    button = LinksButton("abcdefghjk")
    assert button.item.custom_id == "stemcord:links:abcdefghjk"
    assert LinksButton.__discord_ui_compiled_template__.fullmatch(  # type: ignore[attr-defined]
        "stemcord:links:abcdefghjk"
    )


@pytest.mark.parametrize("locale", [discord.Locale.japanese, discord.Locale.brazil_portuguese])
async def test_get_links_answers_in_the_members_language(
    media: MediaStore,
    signer: MediaSigner,
    services: PressServices,
    engine: Any,
    locale: discord.Locale,
) -> None:
    await keep(media, "vocals.mp3", "instrumental.mp3")
    files = {"vocals": "vocals.mp3", "instrumental": "instrumental.mp3"}
    engine.get_job.return_value = kept_job(files, "instrumental.mp3", links_until=NOW - 1)
    view = SeparationView(translations=T, links=links_for(media, signer), clock=lambda: NOW)
    inter = interaction(user=member(user_id=77))
    inter.locale = locale
    await view.press_links(services, inter, "abcdefghjk")
    text, kwargs = answer_of(inter)
    hours = T.plural(locale, "{count} hour", "{count} hours", 24)
    assert text == T.text(
        locale, "Fresh links to **{title}**, working for {hours}:", title="Song", hours=hours
    )
    assert "Fresh links" not in text
    labels = [b.label for b in kwargs["view"].children]
    assert labels == [T.text(locale, "Vocals"), T.text(locale, "Instrumental")]
    # Nothing left to give: said in the member's language too.
    engine.get_job.return_value = kept_job({}, None, links_until=NOW - 1)
    gone = interaction()
    gone.locale = locale
    await SeparationView(translations=T, clock=lambda: NOW).press_links(
        services, gone, "abcdefghjk"
    )
    assert answer_of(gone)[0] == T.text(locale, NOTHING_LEFT) != NOTHING_LEFT
