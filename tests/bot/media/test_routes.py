"""MediaRoutes served by a real listener on 127.0.0.1: signatures, expiry, ranges, headers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from bot.listener import Listener
from bot.media.routes import MediaRoutes
from bot.media.signing import MediaSigner
from bot.media.store import MediaStore
from tests.bot.media.origin import audio_bytes

SECRET = b"k" * 32
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
VOCALS = audio_bytes(10_000, seed=7)
DRUMS = audio_bytes(5_000, seed=8)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Served:
    store: MediaStore
    signer: MediaSigner
    clock: Clock
    base: str
    session: aiohttp.ClientSession

    def link(self, key: str = "job1", name: str = "vocals.mp3", hours: float = 24) -> str:
        return self.signer.url_for(
            self.base, key, name, expires_at=self.clock.now + timedelta(hours=hours)
        )


@pytest.fixture
async def served(tmp_path: Path, session: aiohttp.ClientSession) -> AsyncIterator[Served]:
    with MediaStore.open_sync(tmp_path / "media") as store:
        await store.put_bytes("job1", "vocals.mp3", VOCALS)
        await store.put_bytes("job1", "drums.mp3", DRUMS)
        await store.put_bytes("job2", "vocals.mp3", b"ID3 another song entirely")
        await store.put_bytes("job1", "lyrics.lrc", b"[00:01.00]la la\n")
        signer = MediaSigner(SECRET)
        clock = Clock()
        app = web.Application()
        MediaRoutes(store, signer, clock=clock).install(app)
        listener = Listener(app, host="127.0.0.1", port=0, name="media test listener")
        await listener.start()
        try:
            yield Served(store, signer, clock, listener.base_url, session)
        finally:
            await listener.stop()


async def get(served: Served, url: str, **headers: str) -> tuple[int, CIMultiDict[str], bytes]:
    async with served.session.get(URL(url, encoded=True), headers=headers) as response:
        return response.status, response.headers.copy(), await response.read()


def with_query(url: str, query: str) -> str:
    return url.split("?", 1)[0] + "?" + query


def replace_param(url: str, name: str, value: str) -> str:
    base, query = url.split("?", 1)
    pairs = [p.split("=", 1) for p in query.split("&")]
    return base + "?" + "&".join(f"{k}={value if k == name else v}" for k, v in pairs)


# -- a good link --------------------------------------------------------------------------


async def test_good_link_serves_the_whole_file_with_audio_headers(served: Served) -> None:
    status, headers, body = await get(served, served.link(hours=2))
    assert status == 200
    assert body == VOCALS
    assert headers["Content-Type"] == "audio/mpeg"
    assert headers["Content-Length"] == str(len(VOCALS))
    assert headers["Accept-Ranges"] == "bytes"
    assert headers["Content-Disposition"] == 'inline; filename="vocals.mp3"'
    assert headers["Cache-Control"] == "private, max-age=7200"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"


async def test_each_link_serves_its_own_file(served: Served) -> None:
    assert (await get(served, served.link(name="drums.mp3")))[2] == DRUMS
    assert (await get(served, served.link(key="job2")))[2] == b"ID3 another song entirely"


async def test_files_that_are_not_audio_are_attachments(served: Served) -> None:
    status, headers, body = await get(served, served.link(name="lyrics.lrc"))
    assert status == 200
    assert body == b"[00:01.00]la la\n"
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert headers["Content-Disposition"] == 'attachment; filename="lyrics.lrc"'


async def test_head_gives_the_headers_and_no_body(served: Served) -> None:
    async with served.session.head(served.link()) as response:
        assert response.status == 200
        assert response.headers["Content-Length"] == str(len(VOCALS))
        assert response.headers["Content-Type"] == "audio/mpeg"
        assert response.headers["Accept-Ranges"] == "bytes"
        assert await response.read() == b""


async def test_head_with_a_bad_signature_is_403(served: Served) -> None:
    async with served.session.head(replace_param(served.link(), "sig", "A" * 43)) as response:
        assert response.status == 403


# -- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize("part", ["sig", "key", "name", "expires"])
async def test_tampered_link_is_403(served: Served, part: str) -> None:
    url = served.link()
    if part == "sig":
        sig = url.rsplit("sig=", 1)[1]
        url = replace_param(url, "sig", ("A" if sig[0] != "A" else "B") + sig[1:])
    elif part == "key":
        url = url.replace("/job1/", "/job2/")  # a file that exists, under another key
    elif part == "name":
        url = url.replace("/vocals.mp3", "/drums.mp3")
    else:
        expires = int(url.split("expires=", 1)[1].split("&", 1)[0])
        url = replace_param(url, "expires", str(expires + 86400))
    status, headers, body = await get(served, url)
    assert status == 403
    assert body == b"invalid or missing signature\n"
    assert headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "query",
    ["", "expires=99999999999", "sig=" + "A" * 43, "expires=1&sig=&x=1"],
)
async def test_missing_signature_is_403(served: Served, query: str) -> None:
    status, _, body = await get(served, with_query(served.link(), query))
    assert status == 403
    assert VOCALS not in body


async def test_repeated_signature_parameters_are_403(served: Served) -> None:
    good = served.link()
    sig = good.rsplit("sig=", 1)[1]
    status, _, _ = await get(served, f"{good}&sig={sig}")
    assert status == 403


async def test_expired_link_is_410_and_says_so(served: Served) -> None:
    url = served.link(hours=1)
    served.clock.now = NOW + timedelta(hours=1)
    status, headers, body = await get(served, url)
    assert status == 410
    assert body == b"link expired\n"
    assert headers["Cache-Control"] == "no-store"
    served.clock.now = NOW + timedelta(minutes=59, seconds=59)
    assert (await get(served, url))[0] == 200


async def test_unknown_file_with_a_valid_signature_is_404(served: Served) -> None:
    status, _, body = await get(served, served.link(name="bass.mp3"))
    assert status == 404
    assert body == b"no such file\n"
    status, _, _ = await get(served, served.link(key="job9"))
    assert status == 404


async def test_pruned_file_is_404(served: Served) -> None:
    url = served.link()
    await served.store.delete("job1")
    assert (await get(served, url))[0] == 404


async def test_symlink_inside_the_store_is_never_followed(served: Served, tmp_path: Path) -> None:
    secret = tmp_path / "secret.mp3"
    secret.write_bytes(b"ID3 the operator's private file")
    (served.store.root / "job1" / "leak.mp3").symlink_to(secret)
    status, _, body = await get(served, served.link(name="leak.mp3"))
    assert status == 404
    assert b"private" not in body


async def raw_get(served: Served, target: str) -> tuple[int, bytes]:
    """Send a request line exactly as written (no client-side path clean-up)."""
    parts = urlsplit(served.base)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    reply = await reader.read()
    writer.close()
    await writer.wait_closed()
    status = int(reply.split(b" ", 2)[1])
    return status, reply


@pytest.mark.parametrize(
    "target",
    [
        "/media/job1/..%2F..%2Fsecret.mp3",
        "/media/..%2F..%2F/secret.mp3",
        "/media/job1/%2e%2e",
        "/media/job1/..",
        "/media/../secret.mp3",
        "/media/job1/vocals.mp3%00.mp3",
        "/media/job1/vocals.mp3/..%2F..%2Fsecret.mp3",
    ],
)
async def test_paths_outside_the_store_are_never_served(
    served: Served, tmp_path: Path, target: str
) -> None:
    (tmp_path / "secret.mp3").write_bytes(b"ID3 outside the store root")
    status, reply = await raw_get(served, target + "?expires=99999999999&sig=" + "A" * 43)
    assert status in (403, 404)
    assert b"outside the store root" not in reply


# -- ranges ---------------------------------------------------------------------------------


async def test_byte_range_returns_206_with_exactly_those_bytes(served: Served) -> None:
    status, headers, body = await get(served, served.link(), Range="bytes=100-1099")
    assert status == 206
    assert body == VOCALS[100:1100]
    assert headers["Content-Range"] == f"bytes 100-1099/{len(VOCALS)}"
    assert headers["Content-Length"] == "1000"
    assert headers["Content-Type"] == "audio/mpeg"


async def test_open_ended_range_runs_to_the_end(served: Served) -> None:
    status, headers, body = await get(served, served.link(), Range="bytes=9000-")
    assert status == 206
    assert body == VOCALS[9000:]
    assert headers["Content-Range"] == f"bytes 9000-{len(VOCALS) - 1}/{len(VOCALS)}"


async def test_suffix_range_returns_the_last_bytes(served: Served) -> None:
    status, headers, body = await get(served, served.link(), Range="bytes=-500")
    assert status == 206
    assert body == VOCALS[-500:]
    assert headers["Content-Range"] == f"bytes {len(VOCALS) - 500}-{len(VOCALS) - 1}/{len(VOCALS)}"


async def test_range_past_the_end_is_clipped(served: Served) -> None:
    status, _, body = await get(served, served.link(), Range="bytes=9990-20000")
    assert status == 206
    assert body == VOCALS[9990:]


@pytest.mark.parametrize(
    "rng",
    ["bytes=10000-", "bytes=20000-20010", "bytes=-0", "bytes=5-2", "bytes=0-1,5-6", "items=0-5"],
)
async def test_unsatisfiable_range_is_416(served: Served, rng: str) -> None:
    status, headers, body = await get(served, served.link(), Range=rng)
    assert status == 416
    assert headers["Content-Range"] == f"bytes */{len(VOCALS)}"
    assert VOCALS[:100] not in body


async def test_range_on_a_bad_link_is_still_403(served: Served) -> None:
    url = replace_param(served.link(), "sig", "A" * 43)
    status, _, body = await get(served, url, Range="bytes=0-99")
    assert status == 403
    assert VOCALS[:100] not in body


async def test_range_with_a_stale_if_range_sends_the_whole_file(served: Served) -> None:
    stale = "Wed, 21 Oct 2015 07:28:00 GMT"
    status, _, body = await get(served, served.link(), Range="bytes=0-9", **{"If-Range": stale})
    assert status == 200
    assert body == VOCALS


async def test_unchanged_file_is_304_for_its_etag(served: Served) -> None:
    url = served.link()
    _, headers, _ = await get(served, url)
    status, _, body = await get(served, url, **{"If-None-Match": headers["ETag"]})
    assert status == 304
    assert body == b""
