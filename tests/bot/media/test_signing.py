"""MediaSigner: what a link says, and which altered links fail."""

from __future__ import annotations

import base64
import hashlib
import hmac
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from bot.media.errors import InvalidMediaName
from bot.media.signing import LinkVerdict, MediaSigner, load_or_create_secret

SECRET = bytes(range(32))
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EXPIRES_AT = NOW + timedelta(hours=24)
EXPIRES = int(EXPIRES_AT.timestamp())


@pytest.fixture
def signer() -> MediaSigner:
    return MediaSigner(SECRET)


def link_parts(url: str) -> tuple[str, str, str, str]:
    parts = urlsplit(url)
    _, prefix, key, name = parts.path.rsplit("/", 3)
    assert prefix == "media"
    query = parse_qs(parts.query, strict_parsing=True)
    return key, name, query["expires"][0], query["sig"][0]


def test_url_for_builds_a_media_link_under_the_public_base(signer: MediaSigner) -> None:
    url = signer.url_for(
        "https://bot.example.org/stemcord/", "job1", "vocals.mp3", expires_at=EXPIRES_AT
    )
    assert url.startswith("https://bot.example.org/stemcord/media/job1/vocals.mp3?expires=")
    key, name, expires, sig = link_parts(url)
    assert (key, name, expires) == ("job1", "vocals.mp3", str(EXPIRES))
    assert len(sig) == 43


def test_a_fresh_link_verifies_until_it_expires(signer: MediaSigner) -> None:
    key, name, expires, sig = link_parts(
        signer.url_for("https://b.example", "job1", "vocals.mp3", expires_at=EXPIRES_AT)
    )
    assert signer.check(key, name, expires, sig, NOW) is LinkVerdict.VALID
    assert signer.verify(key, name, expires, sig, EXPIRES_AT - timedelta(seconds=1))
    assert signer.check(key, name, expires, sig, EXPIRES_AT) is LinkVerdict.EXPIRED
    assert not signer.verify(key, name, expires, sig, EXPIRES_AT + timedelta(days=1))


def test_signature_is_hmac_sha256_over_the_domain_separated_canonical_string(
    signer: MediaSigner,
) -> None:
    sig = signer.sign("job1", "vocals.mp3", EXPIRES)
    expected = hmac.new(
        SECRET, f"media:v1\njob1\nvocals.mp3\n{EXPIRES}".encode(), hashlib.sha256
    ).digest()
    assert base64.urlsafe_b64decode(sig + "=") == expected
    # The same fields without the domain prefix are a different signature.
    bare = hmac.new(SECRET, f"job1\nvocals.mp3\n{EXPIRES}".encode(), hashlib.sha256).digest()
    bare_sig = base64.urlsafe_b64encode(bare).rstrip(b"=").decode()
    assert signer.check("job1", "vocals.mp3", EXPIRES, bare_sig, NOW) is LinkVerdict.BAD_SIGNATURE


@pytest.mark.parametrize("part", ["key", "name", "expires", "sig"])
def test_any_altered_part_is_a_bad_signature(signer: MediaSigner, part: str) -> None:
    fields = {"key": "job1", "name": "vocals.mp3", "expires": str(EXPIRES)}
    fields["sig"] = signer.sign("job1", "vocals.mp3", EXPIRES)
    tampered = {
        "key": "job2",
        "name": "drums.mp3",
        "expires": str(EXPIRES + 3600),  # pushed later: still refused, never "expired"
        "sig": ("B" if fields["sig"][0] != "B" else "C") + fields["sig"][1:],
    }
    fields[part] = tampered[part]
    verdict = signer.check(fields["key"], fields["name"], fields["expires"], fields["sig"], NOW)
    assert verdict is LinkVerdict.BAD_SIGNATURE


def test_an_expired_link_with_an_altered_signature_is_bad_not_expired(
    signer: MediaSigner,
) -> None:
    sig = signer.sign("job1", "vocals.mp3", EXPIRES)
    wrong = sig[:-1] + ("A" if sig[-1] != "A" else "Q")
    late = EXPIRES_AT + timedelta(days=1)
    assert signer.check("job1", "vocals.mp3", EXPIRES, wrong, late) is LinkVerdict.BAD_SIGNATURE


def test_another_secret_does_not_verify(signer: MediaSigner) -> None:
    other = MediaSigner(bytes(reversed(SECRET)))
    sig = other.sign("job1", "vocals.mp3", EXPIRES)
    assert signer.check("job1", "vocals.mp3", EXPIRES, sig, NOW) is LinkVerdict.BAD_SIGNATURE


@pytest.mark.parametrize(
    ("key", "name", "expires", "sig"),
    [
        ("../job1", "vocals.mp3", str(EXPIRES), "A" * 43),
        ("job1", "../vocals.mp3", str(EXPIRES), "A" * 43),
        ("job1", "vocals.mp3", "-1", "A" * 43),
        ("job1", "vocals.mp3", "1e12", "A" * 43),
        ("job1", "vocals.mp3", "9" * 13, "A" * 43),
        ("job1", "vocals.mp3", " 123", "A" * 43),
        ("job1", "vocals.mp3", str(EXPIRES), "A" * 42),
        ("job1", "vocals.mp3", str(EXPIRES), "A" * 42 + "="),
        ("job1", "vocals.mp3", str(EXPIRES), ""),
    ],
)
def test_malformed_parts_are_a_bad_signature_without_error(
    signer: MediaSigner, key: str, name: str, expires: str, sig: str
) -> None:
    assert signer.check(key, name, expires, sig, NOW) is LinkVerdict.BAD_SIGNATURE


def test_signing_refuses_invalid_names_and_naive_times(signer: MediaSigner) -> None:
    with pytest.raises(InvalidMediaName):
        signer.url_for("https://b.example", "..", "vocals.mp3", expires_at=EXPIRES_AT)
    with pytest.raises(ValueError):
        signer.url_for("https://b.example", "job1", "vocals.mp3", expires_at=datetime(2026, 3, 2))  # noqa: DTZ001 - the naive time is the point
    with pytest.raises(ValueError):
        signer.check("job1", "vocals.mp3", EXPIRES, "A" * 43, datetime(2026, 3, 2))  # noqa: DTZ001 - the naive time is the point
    with pytest.raises(ValueError):
        signer.url_for("ftp://b.example", "job1", "vocals.mp3", expires_at=EXPIRES_AT)


def test_short_secrets_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        MediaSigner(b"x" * 31)


def test_secret_file_is_created_private_once_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "data" / "media-link.key"
    first = load_or_create_secret(path)
    assert len(first) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret(path) == first
    assert [p.name for p in path.parent.iterdir()] == ["media-link.key"]


def test_secret_file_that_is_not_a_secret_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "media-link.key"
    path.write_text("not hex\n")
    with pytest.raises(ValueError, match="hex"):
        load_or_create_secret(path)
    path.write_text("abcd\n")
    with pytest.raises(ValueError, match="shorter"):
        load_or_create_secret(path)
