"""The Key control and the key's reply: fast tests over a real media store (no audio work:
the renditions are written here), with the engine and desk mocked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from unittest import mock

import discord
import pytest

from bot.engine import JobEngine
from bot.jobs import ErrorKind, Submitted
from bot.keys import KEY, NO_SPACE, NOT_KEPT, TOO_LONG, UNREADABLE, KeyRenders, rendition_base
from bot.media import MediaStore
from bot.policy import GuildPolicy, Policies
from cogs.buttons import ButtonRouter, JobControls
from cogs.delivery import DiscordDelivery
from cogs.desk import JobDesk
from cogs.i18n import Translations
from cogs.keys import KeyButton, KeyPicker, KeyView, key_file_name, picked_semitones
from cogs.lyrics import LyricsView
from cogs.render import CONTENT_MAX
from cogs.separate import SeparationView
from cogs.views import KindViews, PressServices
from storage.jobstate import JobState
from storage.records import Admission, JobRecord, LimitReached, LimitRule
from tests.helpers import autospec, interaction, job, member, private_answer
from tests.keys_helpers import (
    BACKING,
    MEDIA_KEY,
    CountingPool,
    keep_backing,
    kept_separation,
    media_entry,
    write_tone,
)

T = Translations.load()

BASE = rendition_base(BACKING, 2)
LIMIT = 10 * 1024 * 1024


@pytest.fixture
async def media(tmp_path: Path) -> AsyncIterator[MediaStore]:
    store = await MediaStore.open(tmp_path / "media")
    await keep_backing(store, tmp_path)
    yield store
    store.close()


@pytest.fixture
def pool() -> CountingPool:
    # Never started: these tests give it no work (a start would be counted and fail them).
    return CountingPool(workers=1, queue_limit=0)


@pytest.fixture
def view(media: MediaStore, pool: CountingPool) -> KeyView:
    return KeyView(KeyRenders(media, pool), translations=T)


async def keep_rendition(media: MediaStore, tmp: Path, name: str, kbps: int) -> int:
    """A rendition file (a tone at ``kbps``) kept under ``name``; its size."""
    stored = await media.put_file(MEDIA_KEY, name, write_tone(tmp / name, bitrate_kbps=kbps))
    return stored.size


def key_job(**changes: Any) -> JobRecord:
    fields: dict[str, Any] = {
        "id": "keyjob0001",
        "kind": KEY,
        "model": "key-render",
        "options": {
            "separation_job": "sep0000001",
            "semitones": 2,
            "media_key": MEDIA_KEY,
            "backing": BACKING,
            "attachment_limit": LIMIT,
        },
        "result": {"media_key": MEDIA_KEY, "base": BASE, "file": f"{BASE}.mp3", "seconds": 3.0},
        "reply_to_message_id": 5555,
        "track": {"title": "Harbour Lights"},
    }
    fields.update(changes)
    return job(**fields)


def with_limit(limit: int) -> JobRecord:
    base = key_job()
    return replace(base, options={**base.options, "attachment_limit": limit})


# --- the control on results ----------------------------------------------------------------------


def test_the_key_control_is_offered_only_on_results_with_a_kept_backing_track(
    view: KeyView,
) -> None:
    offered = view.offer(kept_separation(), "en-US")
    assert isinstance(offered, KeyButton)
    assert offered.item.custom_id == "stemcord:key:sep0000001"
    assert offered.item.label == "Change key"
    assert view.offer(kept_separation(result={"stems": {}}), "en-US") is None
    no_backing = {"stems": {}, "media": media_entry(backing=None)}
    assert view.offer(kept_separation(result=no_backing), "en-US") is None
    assert (
        view.offer(kept_separation(outcome=JobState.FAILED, state=JobState.DELIVERED), "en-US")
        is None
    )
    assert view.offer(kept_separation(kind="lyrics"), "en-US") is None


async def test_a_pruned_backing_track_is_not_offered(view: KeyView, media: MediaStore) -> None:
    await media.delete(MEDIA_KEY)
    assert view.offer(kept_separation(), "en-US") is None


def test_a_keys_reply_offers_the_control_of_its_separation(view: KeyView) -> None:
    offered = view.offer(key_job(), "en-US")
    assert isinstance(offered, KeyButton)
    assert offered.job_id == "sep0000001"
    assert view.offer(key_job(outcome=JobState.FAILED), "en-US") is None


def test_the_result_message_carries_the_control_beside_the_others(view: KeyView) -> None:
    views = KindViews(
        [
            SeparationView(translations=T),
            LyricsView(translations=T, enhanced_lrc=False),
            view,
        ],
        fallback="separation",
    )
    offered = [item.item.custom_id for item in views.offers(kept_separation(), "en-US")]
    assert offered == ["stemcord:lyrics:sep0000001", "stemcord:key:sep0000001"]


# --- the reply ---------------------------------------------------------------------------------


async def test_the_reply_attaches_the_track_and_says_the_key(
    view: KeyView, media: MediaStore, tmp_path: Path
) -> None:
    size = await keep_rendition(media, tmp_path, f"{BASE}.mp3", 192)
    outcome = view.render(key_job(), "en-US")
    assert outcome.embed.title == "Backing track, +2 semitones"
    assert "+2 semitones" in outcome.content and "<@42>" in outcome.content
    [(name, data)] = outcome.files
    assert name == "Harbour Lights (key +2).mp3"
    assert len(data) == size == media.path_of(MEDIA_KEY, f"{BASE}.mp3").stat().st_size
    assert outcome.reply_to == 5555
    assert len(outcome.content) <= CONTENT_MAX


async def test_the_attachment_never_exceeds_the_limit_the_request_stated(
    view: KeyView, media: MediaStore, tmp_path: Path
) -> None:
    full = await keep_rendition(media, tmp_path, f"{BASE}.mp3", 192)
    fitted = await keep_rendition(media, tmp_path, f"{BASE}_96k.mp3", 96)
    assert fitted < full
    outcome = view.render(with_limit(full - 1), "en-US")
    [(_, data)] = outcome.files
    assert len(data) == fitted <= full - 1
    fields = {f.name: f.value for f in outcome.embed.fields}
    assert fields["Quality"].startswith("96 kbps")
    # Exactly at the limit, the render itself goes.
    [(_, exact)] = view.render(with_limit(full), "en-US").files
    assert len(exact) == full


async def test_a_track_too_large_for_the_place_is_not_attached_and_the_reply_says_so(
    view: KeyView, media: MediaStore, tmp_path: Path
) -> None:
    await keep_rendition(media, tmp_path, f"{BASE}.mp3", 192)
    outcome = view.render(with_limit(1000), "en-US")
    assert outcome.files == []
    assert "too large for the upload limit here (0 MB)" in str(outcome.embed.description)


async def test_a_reply_whose_render_is_gone_says_it_is_no_longer_kept(view: KeyView) -> None:
    outcome = view.render(key_job(), "en-US")
    assert outcome.files == []
    assert "no longer kept; run /separate again" in str(outcome.embed.description)


@pytest.mark.parametrize(
    ("error_kind", "outcome", "words"),
    [
        (NOT_KEPT, JobState.FAILED, "no longer kept; run /separate again"),
        (UNREADABLE, JobState.FAILED, "could not be read"),
        (NO_SPACE, JobState.FAILED, "disk is too full"),
        (TOO_LONG, JobState.FAILED, "too long to change its key"),
        (ErrorKind.EXPIRED, JobState.EXPIRED, "stayed busy for too long"),
        (ErrorKind.INTERNAL, JobState.FAILED, "kept running into an error"),
    ],
)
def test_failures_are_worded_for_a_key_change(
    view: KeyView, error_kind: str, outcome: JobState, words: str
) -> None:
    failed = key_job(outcome=outcome, result=None, error_kind=error_kind, last_error="x")
    rendered = view.render(failed, "en-US")
    assert words in str(rendered.embed.description)
    assert rendered.files == [] and rendered.reply_to == 5555


def test_the_file_name_keeps_only_safe_characters() -> None:
    evil = key_job(track={"title": "../../etc/passwd <@&1>"})
    assert key_file_name(evil, -3) == "etcpasswd 1 (key -3).mp3"
    assert key_file_name(key_job(track=None), 4) == "backing track (key +4).mp3"


# --- presses -------------------------------------------------------------------------------------


@pytest.fixture
def engine() -> Any:
    fake = autospec(JobEngine)
    fake.posted_result.return_value = None
    fake.get_job.return_value = kept_separation()
    return fake


@pytest.fixture
def services(engine: Any, view: KeyView) -> PressServices:
    policies = autospec(Policies)
    policies.get.return_value = GuildPolicy()
    views = KindViews([view], fallback=KEY)
    desk = JobDesk(engine, autospec(DiscordDelivery), views, translations=T)
    return PressServices(
        engine=engine,
        policies=policies,
        desk=desk,
        controls=JobControls(engine, policies, translations=T),
    )


def pressing(services: PressServices, view: KeyView, *, values: list[str] | None = None) -> Any:
    router = ButtonRouter(translations=T)
    for action, handler in view.routes(services).items():
        router.route(action, handler)
    inter = interaction(user=member(user_id=77))
    client = mock.Mock(spec_set=["router", "get_guild"])
    client.router = router
    inter.client = client
    inter.message = mock.Mock(spec_set=discord.Message, id=999)
    inter.filesize_limit = 8_000_000
    inter.data = {"custom_id": "x", "component_type": 3, "values": values or []}
    return inter


async def test_pressing_the_control_answers_privately_with_the_menu_of_keys(
    services: PressServices, view: KeyView
) -> None:
    inter = pressing(services, view)
    await KeyButton("sep0000001").callback(inter)
    inter.response.defer.assert_awaited_once_with(ephemeral=True, thinking=True)
    shown = inter.edit_original_response.await_args.kwargs
    [dynamic] = shown["view"].children
    assert isinstance(dynamic, KeyPicker)
    picker = dynamic.item
    assert picker.custom_id == "stemcord:keypick:sep0000001"
    values = [option.value for option in picker.options]
    assert values == ["-6", "-5", "-4", "-3", "-2", "-1", "1", "2", "3", "4", "5", "6"]
    assert "Pick a key" in shown["content"]


async def test_a_picked_key_is_asked_for_as_a_reply_to_the_result_within_the_stated_limit(
    services: PressServices, view: KeyView, engine: Any
) -> None:
    engine.submit.return_value = Submitted(key_job(), Admission.NEW)
    inter = pressing(services, view, values=["-3"])
    dynamic = KeyPicker("sep0000001")
    await dynamic.callback(inter)
    [call] = engine.submit.await_args_list
    request = call.args[0]
    assert request.kind == KEY
    assert request.options["semitones"] == -3
    assert request.options["attachment_limit"] == 8_000_000
    assert request.reply_to_message_id == 5555  # the separation's result message
    assert request.requester_id == 77  # the presser: their limits apply
    assert call.kwargs["policy"].result_channel_id is None
    assert "as a reply to this result" in private_answer(inter)


@pytest.mark.parametrize("values", [["9"], ["0"], ["two"], ["1", "2"], []])
async def test_a_pick_that_is_not_a_key_is_refused(
    services: PressServices, view: KeyView, engine: Any, values: list[str]
) -> None:
    inter = pressing(services, view, values=values)
    await KeyPicker("sep0000001").callback(inter)
    assert "Pick one of the keys" in private_answer(inter)
    engine.submit.assert_not_awaited()


async def test_a_pick_for_a_track_no_longer_kept_answers_plainly(
    services: PressServices, view: KeyView, engine: Any, media: MediaStore
) -> None:
    await media.delete(MEDIA_KEY)
    inter = pressing(services, view, values=["2"])
    await KeyPicker("sep0000001").callback(inter)
    assert private_answer(inter) == (
        "The backing track of this song is no longer kept; run /separate again."
    )
    engine.submit.assert_not_awaited()


async def test_a_pick_obeys_the_servers_channel_rules(
    services: PressServices, view: KeyView, engine: Any
) -> None:
    services.policies.get.return_value = GuildPolicy(allowed_channel_ids=(5,))
    inter = pressing(services, view, values=["2"])
    await KeyPicker("sep0000001").callback(inter)
    assert "not available in this channel" in private_answer(inter)
    engine.submit.assert_not_awaited()


async def test_a_press_on_another_servers_result_finds_nothing(
    services: PressServices, view: KeyView, engine: Any
) -> None:
    engine.get_job.return_value = kept_separation(guild_id=12345)
    inter = pressing(services, view)
    await KeyButton("sep0000001").callback(inter)
    assert "no longer knows this result" in private_answer(inter)


async def test_a_key_already_posted_in_the_server_is_pointed_to(
    services: PressServices, view: KeyView, engine: Any
) -> None:
    engine.posted_result.return_value = key_job(result_message_id=8888, guild_id=9)
    inter = pressing(services, view, values=["2"])
    await KeyPicker("sep0000001").callback(inter)
    assert "/8888" in private_answer(inter)
    engine.submit.assert_not_awaited()


async def test_a_pick_over_the_members_limit_gets_the_limit_sentence(
    services: PressServices, view: KeyView, engine: Any
) -> None:
    engine.submit.side_effect = LimitReached(LimitRule.DAILY_QUOTA, 3, 1_800_086_400.0)
    inter = pressing(services, view, values=["2"])
    await KeyPicker("sep0000001").callback(inter)
    assert "Daily quota of 3 reached" in private_answer(inter)
    assert engine.submit.await_args.args[0].requester_id == 77  # counted for the presser


def test_the_picked_value_is_read_from_the_interaction() -> None:
    inter = interaction()
    inter.data = {"values": ["+4"]}
    assert picked_semitones(inter) == 4
    inter.data = {"values": ["-6"]}
    assert picked_semitones(inter) == -6
    inter.data = None
    assert picked_semitones(inter) is None


@pytest.mark.parametrize(
    ("admission", "outcome", "words"),
    [
        (Admission.CACHED, JobState.SUCCEEDED, "made before"),
        (Admission.DROPPED, None, "already being made"),
        (Admission.NEW, JobState.SUCCEEDED, "on its way. Where: as a reply to this result"),
        (Admission.NEW, None, "audio workers are busy"),
        (Admission.NEW, JobState.FAILED, "did not work"),
    ],
)
def test_the_private_answer_says_what_happens(
    view: KeyView, admission: Admission, outcome: JobState | None, words: str
) -> None:
    submitted = Submitted(key_job(outcome=outcome), admission)
    assert words in view.admitted(submitted, None, "en-US")
