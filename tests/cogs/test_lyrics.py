"""The lyrics kind's view, its button and /lyrics, called directly over autospec mocks."""

from __future__ import annotations

import io
import json
import re
from dataclasses import replace
from typing import Any
from unittest import mock

import discord
import pytest
from lrcparser import LrcParser
from PIL import Image

from bot.jobs import JobRequest, Submitted
from bot.lyrics import LYRICS, NO_VOCALS, LyricsKind
from bot.policy import GuildPolicy
from bot.progress import ProgressTracker
from bot.sources import SourceError
from bot.vidgo.results import TaskDetail, TaskStatus
from bot.waveform import HEIGHT, WIDTH
from cogs.delivery import DiscordDelivery
from cogs.desk import JobDesk
from cogs.i18n import Translations
from cogs.lyrics import (
    LyricsButton,
    LyricsCog,
    LyricsView,
    lrc_file_name,
    lyrics_problem_sentence,
    lyrics_source,
    press_problem,
    render_lyrics,
)
from cogs.midi import MidiView
from cogs.views import KindViews
from storage.base import JobStore
from storage.jobstate import JobState
from storage.records import Admission, JobRecord, SourceKind
from tests.cogs.conftest import Press
from tests.fakes.discord_rules import check_components, check_embeds
from tests.fakes.vidgo import GENERATION_AUDIO_IDS, GENERATION_TASK_ID, fake_lyrics
from tests.helpers import MASS, interaction, job, private_answer

T = Translations.load()
EN_LOCALES = {"requester_locale": "en-US", "server_locale": "en-US"}

SONG_LINK = f"https://storage.vidgo.ai/audio/{GENERATION_TASK_ID}/1764_x_tmp_audio_{GENERATION_AUDIO_IDS[0]}.mp3"


def lyrics_result(payload: dict[str, Any] | None = None) -> dict[str, Any]:
    detail = TaskDetail(
        "task-l",
        TaskStatus.FINISHED,
        {},
        (),
        None,
        None,
        files=({"timestampe_lyrics": json.dumps(payload or fake_lyrics())},),
    )
    return LyricsKind(vidgo=object()).result_of(job(), detail)  # type: ignore[arg-type]


def lyrics_job(**changes: object) -> JobRecord:
    base = job(
        kind=LYRICS,
        model="get-timestamped-lyrics",
        source_key=f"get-timestamped-lyrics:{GENERATION_TASK_ID}:{GENERATION_AUDIO_IDS[0]}",
        result=lyrics_result(),
        track={"title": "Harbour Lights", "duration": 184.32},
        reply_to_message_id=9100,
        options={"enhanced_lrc": False},
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def as_payload(outcome: Any) -> dict[str, Any]:
    view = outcome.view()
    return {
        "embeds": [outcome.embed.to_dict()],
        "components": view.to_components() if view is not None else [],
    }


# --- the lyrics message ---------------------------------------------------------------------


def test_a_lyrics_message_has_the_lrc_the_picture_and_a_preview() -> None:
    outcome = LyricsView(translations=T, enhanced_lrc=False).render(lyrics_job(), "en-US")
    assert outcome.reply_to == 9100
    assert "<@42>" in outcome.content
    names = [name for name, _ in outcome.files]
    assert names == ["Harbour-Lights.lrc", "waveform.png"]
    lrc = outcome.files[0][1].decode("utf-8")
    parsed = LrcParser.parse(lrc)
    assert parsed["attributes"]["ti"] == "Harbour Lights"
    assert parsed["attributes"]["length"] == "03:04"
    assert "<" not in lrc  # line-synced only unless asked
    image = Image.open(io.BytesIO(outcome.files[1][1]))
    assert image.format == "PNG" and image.size == (WIDTH, HEIGHT)
    embed = outcome.embed.to_dict()
    assert embed["image"]["url"] == "attachment://waveform.png"
    assert "Lights on the water" in embed["description"]
    assert "\\(Verse\\)" in embed["description"]
    timing = next(f["value"] for f in embed["fields"] if f["name"] == "Timing")
    assert "2 could not be aligned" in timing and "11 of 13" in timing
    assert check_embeds(as_payload(outcome)["embeds"]) == []


def test_the_enhanced_setting_of_the_job_adds_word_stamps() -> None:
    outcome = render_lyrics(lyrics_job(options={"enhanced_lrc": True}), T, "en-US")
    lrc = outcome.files[0][1].decode()
    assert "[00:12.40]<00:12.40>Lights <00:12.90>on" in lrc
    assert "enhanced" in str(outcome.embed.to_dict()["footer"])


def test_hostile_titles_and_lyrics_are_escaped_and_fit() -> None:
    hostile = "@everyone <@&1> **x** " + "y" * 400
    payload = fake_lyrics()
    payload["aligned_words"][0]["word"] = "[Verse]\n@here <@123> `code` " + "z" * 300 + " "
    outcome = render_lyrics(
        lyrics_job(result=lyrics_result(payload), track={"title": hostile}), T, "en-US"
    )
    embed = outcome.embed.to_dict()
    assert not MASS.search(json.dumps(embed))
    assert check_embeds([embed]) == []
    assert len(embed["title"]) <= 256
    name = outcome.files[0][0]
    assert re.fullmatch(r"[A-Za-z0-9-]{1,60}\.lrc", name)


def test_many_lines_are_cut_with_a_count() -> None:
    words = [
        {"word": f"line{i} word\n", "start_s": i * 2.0, "end_s": i * 2.0 + 1, "success": True}
        for i in range(40)
    ]
    outcome = render_lyrics(lyrics_job(result=lyrics_result({"aligned_words": words})), T, "en-US")
    description = outcome.embed.to_dict()["description"]
    assert "32 more lines in the file" in description


def test_an_instrumental_gets_a_clear_message_and_no_file() -> None:
    failed = lyrics_job(
        outcome=JobState.FAILED,
        state=JobState.FAILED,
        result=None,
        error_kind=NO_VOCALS,
        last_error="This track has no vocals, so there are no lyrics to time",
    )
    outcome = LyricsView(translations=T, enhanced_lrc=False).render(failed, "en-US")
    assert outcome.files == []
    assert "no vocals" in str(outcome.embed.to_dict())
    assert outcome.reply_to == 9100


@pytest.mark.parametrize(
    ("error_kind", "text"),
    [
        ("no_timing", "line up"),
        ("no_lyrics", "sent no lyrics"),
        ("vidgo_failed", "could not time"),
        ("not_found", "does not know"),
        ("auth", "misconfigured"),
        ("submit_gave_up", "could not be reached"),
        ("invalid", "refused"),
        (None, "boom"),
    ],
)
def test_each_failure_has_its_sentence(error_kind: str | None, text: str) -> None:
    failed = lyrics_job(
        outcome=JobState.FAILED, result=None, error_kind=error_kind, last_error="boom"
    )
    assert text in str(render_lyrics(failed, T, "en-US").embed.to_dict())


def test_file_names() -> None:
    assert lrc_file_name("Harbour Lights (Reprise)") == "Harbour-Lights-Reprise.lrc"
    assert lrc_file_name("日本語") == "lyrics.lrc"
    assert lrc_file_name("../../etc/passwd") == "etc-passwd.lrc"


# --- the button -------------------------------------------------------------------------------


def delivery_of(views: KindViews) -> DiscordDelivery:
    return DiscordDelivery(
        mock.Mock(spec_set=discord.Client),
        views,
        ProgressTracker(mock.Mock(spec_set=JobStore)),
        translations=T,
    )


def test_the_button_is_on_results_of_vidgo_songs_only(views: KindViews) -> None:
    view = LyricsView(translations=T, enhanced_lrc=False)
    button = view.offer(job(), "en-US")
    assert isinstance(button, LyricsButton)
    assert button.custom_id == "stemcord:lyrics:abcdefghjk"
    assert view.offer(job(source_kind=SourceKind.URL, source_task_id=None), "en-US") is None
    assert view.offer(job(outcome=JobState.FAILED), "en-US") is None
    assert view.offer(lyrics_job(), "en-US") is None
    # The separation's message carries it next to the stem links, within the rules.
    delivery = delivery_of(views)
    outcome = delivery.render(job(), "en-US")
    ids = [
        c.get("custom_id") for row in as_payload(outcome)["components"] for c in row["components"]
    ]
    assert "stemcord:lyrics:abcdefghjk" in ids
    assert check_components(as_payload(outcome)["components"]) == []
    upload = delivery.render(job(source_kind=SourceKind.URL, source_task_id=None), "en-US")
    assert all(
        "custom_id" not in c for row in as_payload(upload)["components"] for c in row["components"]
    )


async def test_the_button_is_rebuilt_from_its_custom_id() -> None:
    match = re.fullmatch(LyricsButton.__discord_ui_compiled_template__, "stemcord:lyrics:k2m9x")
    assert match is not None
    rebuilt = await LyricsButton.from_custom_id(mock.Mock(), mock.Mock(), match)
    assert rebuilt.job_id == "k2m9x"
    assert re.fullmatch(LyricsButton.__discord_ui_compiled_template__, "stemcord:midi:k2") is None


def test_press_problems() -> None:
    assert press_problem(job(), 9, 1, T, "en-US") is None
    assert press_problem(None, 9, 1, T, "en-US") is not None
    assert "no longer knows" in (press_problem(job(guild_id=8), 9, 1, T, "en-US") or "")
    assert press_problem(job(), None, 42, T, "en-US") is None  # the requester, in DMs
    assert press_problem(job(), None, 1, T, "en-US") is not None
    assert "only for songs generated" in (
        press_problem(job(source_kind=SourceKind.URL), 9, 1, T, "en-US") or ""
    )
    assert "did not succeed" in (
        press_problem(job(outcome=JobState.FAILED), 9, 1, T, "en-US") or ""
    )


def lyrics_press(press: Press, separation: JobRecord | None) -> mock.Mock:
    inter = press(separation, user_id=77)
    inter.message = mock.Mock(spec_set=discord.Message, id=9100)
    return inter


async def test_a_press_submits_the_lyrics_of_the_source_track(press: Press, engine: Any) -> None:
    separation = job(result_message_id=9100)
    engine.submit.return_value = Submitted(
        lyrics_job(state=JobState.SUBMITTED, outcome=None), Admission.NEW
    )
    inter = lyrics_press(press, separation)
    await LyricsButton(separation.id).callback(inter)
    inter.response.defer.assert_awaited_once_with(ephemeral=True, thinking=True)
    engine.get_job.assert_awaited_once_with(separation.id)
    request: JobRequest = engine.submit.await_args.args[0]
    assert request.kind == LYRICS and request.model == "get-timestamped-lyrics"
    assert (request.source_task_id, request.source_audio_id) == ("T", "A")
    assert request.source_key == "get-timestamped-lyrics:T:A"
    assert request.reply_to_message_id == 9100
    assert (request.requester_id, request.channel_id, request.guild_id) == (77, 7, 9)
    assert request.track == separation.track
    assert request.options == {"enhanced_lrc": False, **EN_LOCALES}
    assert "Working on the lyrics" in private_answer(inter)


async def test_a_press_on_an_unknown_result_submits_nothing(press: Press, engine: Any) -> None:
    inter = lyrics_press(press, None)
    await LyricsButton("gone").callback(inter)
    engine.submit.assert_not_awaited()
    assert "no longer knows" in private_answer(inter)


def test_answers_by_admission() -> None:
    view = LyricsView(translations=T, enhanced_lrc=False)
    assert "read before" in view.admitted(Submitted(lyrics_job(), Admission.CACHED), 8, "en-US")
    failed = lyrics_job(outcome=JobState.FAILED, state=JobState.FAILED)
    assert "did not work" in view.admitted(Submitted(failed, Admission.NEW), 8, "en-US")
    at_once = lyrics_job(outcome=JobState.SUCCEEDED, state=JobState.SUCCEEDED)
    assert "Done" in view.admitted(Submitted(at_once, Admission.NEW), 8, "en-US")
    # A second press for the same message records nothing (the store drops it).
    assert "already on their way" in view.admitted(
        Submitted(lyrics_job(), Admission.DROPPED), None, "en-US"
    )
    # Joined from somewhere else (another message): that requester gets their own message.
    assert "to you too" in view.admitted(Submitted(lyrics_job(), Admission.JOINED), 8, "en-US")


async def test_a_failing_store_is_answered_privately(press: Press, engine: Any) -> None:
    separation = job(result_message_id=9100)
    engine.submit.side_effect = RuntimeError("disk full")
    inter = lyrics_press(press, separation)
    await LyricsButton(separation.id).callback(inter)
    assert "Something went wrong" in private_answer(inter)


async def test_lyrics_already_posted_are_pointed_to_privately(press: Press, engine: Any) -> None:
    posted = lyrics_job(state=JobState.DELIVERED, result_message_id=4242)
    engine.posted_result.return_value = posted
    inter = lyrics_press(press, job(result_message_id=9100))
    await LyricsButton("abcdefghjk").callback(inter)
    engine.submit.assert_not_awaited()
    text = private_answer(inter)
    assert "These lyrics were already posted" in text and text.endswith("/9/7/4242")


async def test_a_press_by_a_member_without_the_required_role_is_refused(
    press: Press, engine: Any, policies: Any
) -> None:
    policies.get.return_value = GuildPolicy(required_role_id=50)
    inter = lyrics_press(press, job(result_message_id=9100))
    await LyricsButton("abcdefghjk").callback(inter)
    assert "<@&50>" in private_answer(inter)
    engine.submit.assert_not_awaited()


# --- /lyrics ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "Tell me which Vidgo song"),
        ({"task_id": "T", "audio_id": "A", "link": SONG_LINK}, "only one source"),
        ({"task_id": "T"}, "`audio_id` is missing"),
        ({"audio_id": "A"}, "`task_id` is missing"),
        ({"link": "ftp://x"}, "not an http"),
        ({"link": "https://cdn.example.org/song.mp3"}, "not a Vidgo song link"),
        ({"link": "https://youtu.be/abc"}, "YouTube page, not a Vidgo song"),
    ],
)
def test_lyrics_sources_explain_the_fix(options: dict[str, str], message: str) -> None:
    with pytest.raises(SourceError) as refused:
        lyrics_source(
            task_id=options.get("task_id"),
            audio_id=options.get("audio_id"),
            link=options.get("link"),
        )
    assert message in lyrics_problem_sentence(refused.value, T, "en-US")


def test_lyrics_sources() -> None:
    by_ids = lyrics_source(task_id=" T ", audio_id="A", link=None)
    assert (by_ids.task_id, by_ids.audio_id) == ("T", "A")
    by_link = lyrics_source(task_id=None, audio_id=None, link=SONG_LINK)
    assert (by_link.task_id, by_link.audio_id) == (GENERATION_TASK_ID, GENERATION_AUDIO_IDS[0])


async def test_the_command_rejects_plain_links_privately(
    desk: JobDesk, policies: Any, engine: Any
) -> None:
    cog = LyricsCog(desk, policies, translations=T, enhanced_lrc=True)
    inter = interaction()
    await cog.lyrics.callback(cog, inter, link="https://cdn.example.org/song.mp3")  # type: ignore[arg-type]
    assert "Vidgo song link" in private_answer(inter)
    engine.submit.assert_not_awaited()


async def test_the_command_submits_a_lyrics_job_for_the_channel(
    desk: JobDesk, policies: Any, engine: Any
) -> None:
    engine.submit.return_value = Submitted(
        lyrics_job(state=JobState.SUBMITTED, outcome=None), Admission.NEW
    )
    cog = LyricsCog(desk, policies, translations=T, enhanced_lrc=True)
    inter = interaction()
    await cog.lyrics.callback(cog, inter, link=SONG_LINK)  # type: ignore[arg-type]
    inter.response.defer.assert_awaited_once_with(ephemeral=True, thinking=True)
    request: JobRequest = engine.submit.await_args.args[0]
    assert request.source_audio_id == GENERATION_AUDIO_IDS[0]
    assert request.reply_to_message_id is None and request.channel_id == 7
    assert request.options == {"enhanced_lrc": True, **EN_LOCALES}
    assert "Where: <#7>." in private_answer(inter)


@pytest.mark.parametrize("count", [2, 5, 13, 30])
def test_the_button_fits_next_to_any_number_of_stem_links(count: int, views: KindViews) -> None:
    stems = {f"stem_{i}": f"https://storage.example/{i}.mp3" for i in range(count)}
    with_midi = delivery_of(views)
    separated = job(result={"stems": stems, "vidgo_task_id": "task-sep-1"})
    both = as_payload(with_midi.render(separated, "en-US"))["components"]
    assert check_components(both) == []
    both_ids = [c.get("custom_id") for row in both for c in row["components"]]
    assert {"stemcord:lyrics:abcdefghjk", "stemcord:midi:abcdefghjk"} <= set(both_ids)
    without_midi = KindViews(
        [views.named("separation"), MidiView(translations=T, enabled=False), views.named("lyrics")],
        fallback="separation",
    )
    outcome = delivery_of(without_midi).render(job(result={"stems": stems}), "en-US")
    components = as_payload(outcome)["components"]
    assert check_components(components) == []
    ids = [c.get("custom_id") for row in components for c in row["components"]]
    assert ids.count("stemcord:lyrics:abcdefghjk") == 1
    if count <= 20:
        # Below the links, on a row of its own.
        assert components[-1]["components"][0].get("custom_id") == "stemcord:lyrics:abcdefghjk"
