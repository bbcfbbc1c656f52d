"""Validation of /separate inputs before any Vidgo call."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.sources import (
    MAX_URL_LENGTH,
    Quality,
    SourceError,
    SourceProblem,
    StemChoice,
    StreamingPage,
    parse_vidgo_song_link,
    plan_for,
    source_from_attachment,
    source_from_ids,
    source_from_link,
    streaming_service,
)
from bot.vidgo.results import Model
from storage.records import SourceKind

SONG = (
    "https://storage.vidgo.ai/audio/8FDN1I7M7Q68DDG8/"
    "1764061200_ab12cd_tmpx_audio_62e4542a-73be-44e1-b397-7716ee7505c6.mp3"
)


def test_ids_are_trimmed() -> None:
    source = source_from_ids("  8FDN1I7M7Q68DDG8 ", "\t62e4542a-73be-44e1-b397-7716ee7505c6\n")
    assert source.kind is SourceKind.IDS
    assert source.task_id == "8FDN1I7M7Q68DDG8"
    assert source.audio_id == "62e4542a-73be-44e1-b397-7716ee7505c6"


@pytest.mark.parametrize(
    ("task_id", "problem"),
    [
        ("", SourceProblem.ID_EMPTY),
        ("a" * 101, SourceProblem.ID_TOO_LONG),
        ("abc def", SourceProblem.ID_CHARACTERS),
        ("abc\x00", SourceProblem.ID_CHARACTERS),
        ("<@&1>", SourceProblem.ID_CHARACTERS),
    ],
)
def test_bad_ids_name_the_problem(task_id: str, problem: SourceProblem) -> None:
    with pytest.raises(SourceError) as refused:
        source_from_ids(task_id, "62e4542a-73be-44e1-b397-7716ee7505c6")
    assert refused.value.problem is problem
    assert refused.value.values["name"] == "task_id"
    if problem is SourceProblem.ID_TOO_LONG:
        assert refused.value.values["length"] == 101
        assert refused.value.values["limit"] == 100


def test_vidgo_song_link_counts_as_ids() -> None:
    assert parse_vidgo_song_link(SONG) == (
        "8FDN1I7M7Q68DDG8",
        "62e4542a-73be-44e1-b397-7716ee7505c6",
    )
    source = source_from_link(SONG)
    assert source.kind is SourceKind.IDS
    assert plan_for(source, StemChoice.VOCALS).model is Model.SEPARATE_VOCALS
    assert plan_for(source, StemChoice.ALL).model is Model.STEM_SPLIT


@pytest.mark.parametrize(
    "link",
    [
        "https://storage.vidgo.ai/image/8FDN/x_audio_62e4542a-73be-44e1-b397-7716ee7505c6.mp3",
        "https://storage.vidgo.ai/audio/8FDN/cover_62e4542a.jpeg",
        "https://evil.example/audio/8FDN/x_audio_62e4542a-73be-44e1-b397-7716ee7505c6.mp3",
    ],
)
def test_other_links_are_not_vidgo_songs(link: str) -> None:
    assert parse_vidgo_song_link(link) is None
    assert source_from_link(link).kind is SourceKind.URL


def test_other_link_is_uploaded_by_url() -> None:
    source = source_from_link(" <https://cdn.example.org/a%20song.mp3> ")
    assert source.kind is SourceKind.URL
    assert source.url == "https://cdn.example.org/a%20song.mp3"
    assert source.filename == "a song.mp3"
    plan = plan_for(source, StemChoice.VOCALS)
    assert plan.model is Model.UPLOAD_AND_SEPARATE
    assert plan.options["output_type"] == "general"
    # Uploads give every stem whatever `stems` says, so both choices share one key.
    assert plan.source_key == plan_for(source, StemChoice.ALL).source_key


@pytest.mark.parametrize(
    ("link", "problem"),
    [
        ("ftp://x.org/a.mp3", SourceProblem.NOT_HTTP),
        ("javascript:alert(1)", SourceProblem.NOT_HTTP),
        ("https://x.org/a b.mp3", SourceProblem.LINK_INVISIBLE),
        ("https://x.org/\u200b.mp3", SourceProblem.LINK_INVISIBLE),
        ("https://x.org/" + "a" * MAX_URL_LENGTH, SourceProblem.LINK_TOO_LONG),
        ("", SourceProblem.LINK_EMPTY),
        ("https://", SourceProblem.NOT_HTTP),
    ],
)
def test_bad_links_name_the_problem(link: str, problem: SourceProblem) -> None:
    with pytest.raises(SourceError) as refused:
        source_from_link(link)
    assert refused.value.problem is problem


def test_attachment_must_look_like_audio_and_fit() -> None:
    ok = source_from_attachment(
        "https://cdn.discordapp.com/attachments/1/2/song.mp3?ex=1", "song.mp3", None, 1000, 10_000
    )
    assert ok.kind is SourceKind.ATTACHMENT
    assert (
        source_from_attachment(
            "https://cdn.discordapp.com/a/b/x.bin", "x.bin", "audio/ogg", 1, 10
        ).kind
        is SourceKind.ATTACHMENT
    )
    with pytest.raises(SourceError) as not_audio:
        source_from_attachment(
            "https://cdn.discordapp.com/a/b/x.png", "x.png", "image/png", 10, 10_000
        )
    assert not_audio.value.problem is SourceProblem.NOT_AUDIO
    assert not_audio.value.values == {"filename": "x.png"}
    with pytest.raises(SourceError) as too_large:
        source_from_attachment(
            "https://cdn.discordapp.com/a/b/x.mp3", "x.mp3", "audio/mpeg", 20_000_000, 10_000_000
        )
    assert too_large.value.problem is SourceProblem.FILE_TOO_LARGE
    assert too_large.value.values == {"filename": "x.mp3", "size": 20_000_000, "limit": 10_000_000}


def test_attachment_key_ignores_the_signature() -> None:
    a = source_from_attachment(
        "https://cdn.discordapp.com/a/1/s.mp3?ex=1&hm=2", "s.mp3", "audio/mpeg", 1, 10
    )
    b = source_from_attachment(
        "https://cdn.discordapp.com/a/1/s.mp3?ex=3&hm=4", "s.mp3", "audio/mpeg", 1, 10
    )
    assert plan_for(a, StemChoice.VOCALS).source_key == plan_for(b, StemChoice.VOCALS).source_key


@given(st.text(max_size=300))
def test_any_text_either_validates_or_raises_source_error(text: str) -> None:
    try:
        source = source_from_link(text)
    except SourceError:
        return
    assert source.url is not None
    assert source.url.lower().startswith(("http://", "https://"))
    assert len(source.url) <= MAX_URL_LENGTH


@given(st.text(max_size=200), st.text(max_size=200))
def test_any_ids_either_validate_or_raise_source_error(task_id: str, audio_id: str) -> None:
    try:
        source = source_from_ids(task_id, audio_id)
    except SourceError:
        return
    assert source.task_id and source.audio_id
    assert source.task_id.isascii() and source.audio_id.isascii()


def test_attachment_url_with_spaces_is_encoded() -> None:
    source = source_from_attachment(
        "https://cdn.discordapp.com/a/1/my song.mp3?ex=1", "my song.mp3", "audio/mpeg", 1, 10
    )
    assert source.url == "https://cdn.discordapp.com/a/1/my%20song.mp3?ex=1"


@pytest.mark.parametrize(
    ("link", "service"),
    [
        ("https://www.youtube.com/watch?v=dQw4w9WgXcQ", "YouTube"),
        ("https://m.youtube.com/watch?v=dQw4w9WgXcQ", "YouTube"),
        ("https://youtu.be/dQw4w9WgXcQ", "YouTube"),
        ("https://music.youtube.com/watch?v=dQw4w9WgXcQ", "YouTube Music"),
        ("https://open.spotify.com/track/4uLU6hMCjMI75M1A2tKUQC", "Spotify"),
        ("https://soundcloud.com/artist/song", "SoundCloud"),
        ("https://on.soundcloud.com/abc", "SoundCloud"),
        ("https://music.apple.com/us/album/x/1?i=2", "Apple Music"),
        ("https://www.deezer.com/track/1", "Deezer"),
        ("https://listen.tidal.com/track/1", "Tidal"),
        ("https://artist.bandcamp.com/track/song", "Bandcamp"),
        ("https://music.amazon.com/albums/B0", "Amazon Music"),
        ("https://music.amazon.co.uk/albums/B0", "Amazon Music"),
        ("https://www.tiktok.com/@someone/video/1", "TikTok"),
        ("https://vm.tiktok.com/ZM123/", "TikTok"),
        ("https://www.instagram.com/reel/abc/", "Instagram"),
        ("https://vimeo.com/123456", "Vimeo"),
        ("https://player.vimeo.com/video/123456", "Vimeo"),
        ("https://www.twitch.tv/videos/1", "Twitch"),
        ("https://clips.twitch.tv/SomeClip", "Twitch"),
        ("HTTPS://WWW.YOUTUBE.COM./watch?v=x", "YouTube"),
        # A file name that looks like audio does not make a page a file.
        ("https://www.youtube.com/song.mp3", "YouTube"),
    ],
)
def test_a_streaming_or_video_page_is_refused_with_what_to_do_instead(
    link: str, service: str
) -> None:
    assert streaming_service(link) == service
    with pytest.raises(StreamingPage) as refused:
        source_from_link(link)
    assert refused.value.service == service
    assert refused.value.problem is SourceProblem.STREAMING_PAGE
    assert refused.value.values == {"service": service}


@pytest.mark.parametrize(
    "link",
    [
        "https://cdn.example.org/songs/a.mp3",
        "https://notyoutube.com/a.mp3",  # a longer name that ends like one
        "https://youtube.com.example.org/a.mp3",  # the service's name as a subdomain
        "https://www.amazon.com/music/a.mp3",  # the shop, not its music service
        "https://apple.com/a.mp3",
        "https://storage.vidgo.ai/audio/T1/x_audio_62e4542a-73be-44e1-b397-7716ee7505c6.mp3",
    ],
)
def test_hosts_that_only_look_like_a_service_are_not_streaming_pages(link: str) -> None:
    assert streaming_service(link) is None
    assert source_from_link(link).kind in (SourceKind.URL, SourceKind.IDS)


def test_quality_is_sent_as_model_name_and_keeps_two_qualities_apart() -> None:
    source = source_from_link("https://cdn.example.org/a.mp3")
    standard = plan_for(source, StemChoice.VOCALS, Quality.STANDARD)
    enhanced = plan_for(source, StemChoice.VOCALS, Quality.ENHANCED)
    assert standard.options["model_name"] == "base"
    assert enhanced.options["model_name"] == "enhanced"
    assert standard.source_key != enhanced.source_key
    # Not asked = standard, under the key jobs had before the option (their cache still counts).
    assert plan_for(source, StemChoice.VOCALS).source_key == standard.source_key
    digest = standard.source_key.rsplit(":", 1)[1]
    assert standard.source_key == f"upload-and-separate-vocals:general:{digest}"


def test_quality_changes_nothing_sent_for_a_vidgo_song_and_is_only_remembered() -> None:
    source = source_from_ids("T1", "A1")
    plain = plan_for(source, StemChoice.VOCALS)
    asked = plan_for(source, StemChoice.VOCALS, Quality.ENHANCED)
    assert asked.model is plain.model is Model.SEPARATE_VOCALS
    assert asked.source_key == plain.source_key
    assert "model_name" not in asked.options and asked.options == {"quality": "enhanced"}
    assert plain.options == {}
