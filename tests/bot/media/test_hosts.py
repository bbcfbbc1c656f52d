"""The allowed-host rules and the audio sniffing, without a network."""

from __future__ import annotations

import pytest

from bot.media.errors import HostNotAllowed, InsecureUrl, InvalidUrl
from bot.media.hosts import (
    check_url,
    default_allowed_hosts,
    is_loopback,
    normalize_host,
    parse_allowed_hosts,
)
from bot.media.sniff import sniff_audio
from tests.fakes.vidgo import fake_audio


def test_default_allowed_hosts_are_vidgo_storage_and_the_api_host() -> None:
    assert default_allowed_hosts("https://api.vidgo.ai") == {"storage.vidgo.ai", "api.vidgo.ai"}
    assert default_allowed_hosts("http://127.0.0.1:43210/") == {"storage.vidgo.ai", "127.0.0.1"}


def test_default_allowed_hosts_refuses_a_base_url_without_a_host() -> None:
    with pytest.raises(InvalidUrl):
        default_allowed_hosts("not a url")


def test_unset_allowed_hosts_setting_means_the_default() -> None:
    base = "https://api.vidgo.ai"
    assert parse_allowed_hosts(None, base) == default_allowed_hosts(base)
    assert parse_allowed_hosts(" , ", base) == default_allowed_hosts(base)


def test_allowed_hosts_setting_replaces_the_default_and_is_normalized() -> None:
    hosts = parse_allowed_hosts("CDN.Example.org., storage.vidgo.ai", "https://api.vidgo.ai")
    assert hosts == {"cdn.example.org", "storage.vidgo.ai"}


@pytest.mark.parametrize(
    "value",
    [
        "*.vidgo.ai",
        "https://storage.vidgo.ai",
        "storage.vidgo.ai:443",
        "storage.vidgo.ai/x",
        "a..b",
    ],
)
def test_allowed_hosts_setting_refuses_anything_but_exact_names(value: str) -> None:
    with pytest.raises(ValueError, match="exact host names"):
        parse_allowed_hosts(value, "https://api.vidgo.ai")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("10.0.0.1", False),
        ("storage.vidgo.ai", False),
        ("localhost.evil.example", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_host_case_and_trailing_dot_do_not_matter() -> None:
    allowed = frozenset({"storage.vidgo.ai"})
    assert normalize_host("Storage.Vidgo.AI.") == "storage.vidgo.ai"
    assert check_url("https://STORAGE.vidgo.ai./a.mp3", allowed).path == "/a.mp3"


def test_https_to_a_listed_host_passes_and_http_does_not() -> None:
    allowed = frozenset({"storage.vidgo.ai", "127.0.0.1"})
    assert check_url("https://storage.vidgo.ai/a.mp3", allowed).host == "storage.vidgo.ai"
    assert check_url("http://127.0.0.1:9/a.mp3", allowed).port == 9
    with pytest.raises(InsecureUrl):
        check_url("http://storage.vidgo.ai/a.mp3", allowed)


def test_the_host_check_comes_before_the_scheme_check() -> None:
    with pytest.raises(HostNotAllowed):
        check_url("http://evil.example/a.mp3", frozenset({"storage.vidgo.ai"}))


def test_host_in_error_message_is_cleaned_and_short() -> None:
    with pytest.raises(HostNotAllowed) as caught:
        check_url("https://" + "a" * 200 + ".example/x", frozenset({"storage.vidgo.ai"}))
    assert len(str(caught.value)) < 130


# -- sniffing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"ID3\x04\x00" + bytes(20), "mp3"),
        (b"\xff\xfb\x90\x64" + bytes(20), "mp3"),
        (b"\xff\xf1\x50\x80" + bytes(20), "aac"),
        (b"RIFF\x24\x08\x00\x00WAVEfmt ", "wav"),
        (b"fLaC\x00\x00\x00\x22" + bytes(8), "flac"),
        (b"OggS\x00\x02" + bytes(10), "ogg"),
        (b"\x00\x00\x00\x20ftypM4A " + bytes(4), "m4a"),
        (b"\x1a\x45\xdf\xa3" + bytes(12), "webm"),
        (b"FORM\x00\x00\x00\x00AIFF", "aiff"),
    ],
)
def test_audio_containers_are_recognized(head: bytes, expected: str) -> None:
    assert sniff_audio(head) == expected


@pytest.mark.parametrize(
    "head",
    [
        b"<!doctype html><html>",
        b'{"error": "expired"}',
        b"RIFF\x24\x08\x00\x00AVI LIST",  # RIFF, but a video
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0d",
        b"ID3",  # too short to decide
        b"",
    ],
)
def test_anything_else_is_not_audio(head: bytes) -> None:
    assert sniff_audio(head) is None


def test_the_fake_vidgo_stems_look_like_mp3() -> None:
    assert sniff_audio(fake_audio("vocals")[:12]) == "mp3"
