"""StemFetcher over real sockets, against a scripted origin that misbehaves on demand."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from bot.media.atomic import FileTarget, PartFile
from bot.media.errors import (
    FetchConnectionError,
    FetchError,
    FetchTimeout,
    HostNotAllowed,
    HttpStatusError,
    InsecureUrl,
    InsufficientSpace,
    InvalidUrl,
    NotAudio,
    RedirectNotAllowed,
    TooLarge,
    TooManyRedirects,
    Truncated,
)
from bot.media.fetcher import StemFetcher
from bot.media.store import MediaStore
from tests.bot.media.conftest import CAP, MakeFetcher
from tests.bot.media.origin import (
    Gate,
    Origin,
    announce_then_cut,
    audio_bytes,
    endless,
    never_answer,
    redirect,
    serve,
    stall_after,
    trickle,
)

BODY = audio_bytes(40_000, seed=1)


def files_in(directory: Path) -> list[str]:
    """Every file under ``directory`` (temporary ones included), relative, sorted."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


class Recorder:
    """Records aiohttp's trace events: proof of whether a connection was even attempted."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.config = aiohttp.TraceConfig()
        for name in ("request_start", "dns_resolvehost_start", "connection_create_start"):
            getattr(self.config, f"on_{name}").append(self._record(name))

    def _record(self, name: str) -> Any:
        async def record(session: Any, context: SimpleNamespace, params: Any) -> None:
            self.events.append(name)

        return record


@pytest.fixture
async def traced() -> Any:
    recorder = Recorder()
    async with aiohttp.ClientSession(trace_configs=[recorder.config]) as s:
        yield SimpleNamespace(session=s, recorder=recorder)


# -- good downloads -------------------------------------------------------------------------


async def test_good_download_lands_whole_with_its_hash(
    fetcher: StemFetcher, origin: Origin, tmp_path: Path
) -> None:
    origin.route("/files/vocals.mp3", serve(BODY))
    dest = tmp_path / "out" / "vocals.mp3"

    result = await fetcher.fetch_to_path(origin.url("/files/vocals.mp3"), dest)

    assert dest.read_bytes() == BODY
    assert result.path == dest
    assert result.size == len(BODY)
    assert result.sha256 == hashlib.sha256(BODY).hexdigest()
    assert result.audio_format == "mp3"
    assert result.content_type == "audio/mpeg"
    assert files_in(tmp_path) == ["out/vocals.mp3"]


async def test_download_without_content_length_lands_whole(
    fetcher: StemFetcher, origin: Origin, tmp_path: Path
) -> None:
    origin.route("/chunked.mp3", serve(BODY, length=False))
    result = await fetcher.fetch_to_path(origin.url("/chunked.mp3"), tmp_path / "a.mp3")
    assert (tmp_path / "a.mp3").read_bytes() == BODY
    assert result.size == len(BODY)


async def test_download_exactly_at_the_cap_is_accepted(
    fetcher: StemFetcher, origin: Origin, tmp_path: Path
) -> None:
    body = audio_bytes(CAP, seed=2)
    origin.route("/cap.mp3", serve(body, length=False))
    await fetcher.fetch_to_path(origin.url("/cap.mp3"), tmp_path / "cap.mp3")
    assert (tmp_path / "cap.mp3").read_bytes() == body


async def test_download_into_the_store_lands_under_its_key(
    fetcher: StemFetcher, origin: Origin, tmp_path: Path
) -> None:
    origin.route("/v.mp3", serve(BODY))
    with MediaStore.open_sync(tmp_path / "media") as store:
        result = await fetcher.fetch(origin.url("/v.mp3"), store.target("job1", "vocals.mp3"))
        assert result.path == store.path_of("job1", "vocals.mp3")
        assert store.path_of("job1", "vocals.mp3").read_bytes() == BODY
        assert [f.name for f in await store.list_files("job1")] == ["vocals.mp3"]


class WatchedPart(PartFile):
    """A part file that tells the test, from the writer thread, when bytes reached the disk."""

    written = threading.Event()

    def write(self, data: bytes) -> None:
        super().write(data)
        self.written.set()


class WatchedTarget(FileTarget):
    def open_part(self, expected_bytes: int | None) -> PartFile:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return WatchedPart(self.path.parent / ".watched.part", self._publish)


async def test_file_is_absent_under_its_final_name_until_the_last_byte(
    make_fetcher: MakeFetcher, origin: Origin, tmp_path: Path
) -> None:
    # Big enough that the first half fills several write batches before the gate opens.
    fetcher = make_fetcher(max_bytes=4 * 1024 * 1024, read_timeout=10.0, total_timeout=30.0)
    body = audio_bytes(2 * 1024 * 1024, seed=3)
    gate = Gate(body)
    origin.route("/gate.mp3", gate)
    dest = tmp_path / "stem.mp3"
    WatchedPart.written.clear()

    task = asyncio.create_task(fetcher.fetch(origin.url("/gate.mp3"), WatchedTarget(dest)))
    await gate.half_sent.wait()
    # Half the body is on disk in the part file, and nothing is under the final name.
    await asyncio.to_thread(WatchedPart.written.wait, 5)
    assert WatchedPart.written.is_set()
    assert (tmp_path / ".watched.part").stat().st_size > 0
    assert not dest.exists()

    gate.open()
    await task
    assert dest.read_bytes() == body
    assert files_in(tmp_path) == ["stem.mp3"]


async def test_failed_download_keeps_the_file_already_there(
    fetcher: StemFetcher, origin: Origin, tmp_path: Path
) -> None:
    dest = tmp_path / "stem.mp3"
    dest.write_bytes(b"the old, complete file")
    origin.route("/cut.mp3", announce_then_cut(BODY, 10_000))
    with pytest.raises(Truncated):
        await fetcher.fetch_to_path(origin.url("/cut.mp3"), dest)
    assert dest.read_bytes() == b"the old, complete file"
    assert files_in(tmp_path) == ["stem.mp3"]


# -- where it may go ------------------------------------------------------------------------


async def test_host_off_the_list_is_refused_before_any_connection(
    make_fetcher: MakeFetcher, origin: Origin, traced: Any, tmp_path: Path
) -> None:
    origin.route("/v.mp3", serve(BODY))
    fetcher = make_fetcher(session=traced.session)
    # localhost reaches the very same server, but it is not the listed name.
    with pytest.raises(HostNotAllowed) as caught:
        await fetcher.fetch_to_path(origin.url("/v.mp3", host="localhost"), tmp_path / "v.mp3")
    assert caught.value.host == "localhost"
    assert str(caught.value) == "host not allowed: localhost"
    assert traced.recorder.events == []
    assert origin.connections == 0
    assert files_in(tmp_path) == []


@pytest.mark.parametrize(
    "host",
    [
        "evil.storage.vidgo.ai",  # a subdomain is another host
        "storage.vidgo.ai.evil.example",  # so is a suffix
        "127.1",  # another spelling of the same address is not the listed name
        "2130706433",
    ],
)
async def test_only_exact_listed_hosts_are_allowed(
    make_fetcher: MakeFetcher, traced: Any, tmp_path: Path, host: str
) -> None:
    fetcher = make_fetcher(session=traced.session, allowed_hosts={"127.0.0.1", "storage.vidgo.ai"})
    with pytest.raises(HostNotAllowed):
        await fetcher.fetch_to_path(f"https://{host}/v.mp3", tmp_path / "v.mp3")
    assert traced.recorder.events == []


async def test_url_aiohttp_itself_refuses_is_still_a_typed_error(
    fetcher: StemFetcher, origin: Origin, tmp_path: Path
) -> None:
    # The listed host with a trailing dot passes the list, but is no address to connect to.
    origin.route("/v.mp3", serve(BODY))
    with pytest.raises(InvalidUrl):
        await fetcher.fetch_to_path(origin.url("/v.mp3", host="127.0.0.1."), tmp_path / "v.mp3")
    assert origin.connections == 0
    assert files_in(tmp_path) == []


async def test_plain_http_to_a_host_that_is_not_loopback_is_refused(
    make_fetcher: MakeFetcher, traced: Any, tmp_path: Path
) -> None:
    fetcher = make_fetcher(session=traced.session, allowed_hosts={"storage.vidgo.ai"})
    with pytest.raises(InsecureUrl):
        await fetcher.fetch_to_path("http://storage.vidgo.ai/files/v.mp3", tmp_path / "v.mp3")
    assert traced.recorder.events == []


@pytest.mark.parametrize(
    "url",
    [
        "",
        "/files/v.mp3",
        "ftp://127.0.0.1/v.mp3",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "data:audio/mpeg;base64,AAAA",
        "http://user:secret@127.0.0.1/v.mp3",
        "http://127.0.0.1/v.mp3 extra",
        "http://127.0.0.1/v\x00.mp3",
        "http://127.0.0.1/" + "a" * 5000,
    ],
)
async def test_malformed_or_odd_urls_are_refused_before_any_connection(
    make_fetcher: MakeFetcher, traced: Any, tmp_path: Path, url: str
) -> None:
    fetcher = make_fetcher(session=traced.session)
    with pytest.raises(InvalidUrl):
        await fetcher.fetch_to_path(url, tmp_path / "v.mp3")
    assert traced.recorder.events == []


async def test_redirect_to_a_host_off_the_list_is_refused(
    fetcher: StemFetcher, origin: Origin, other_origin: Origin, tmp_path: Path
) -> None:
    other_origin.route("/v.mp3", serve(BODY))
    origin.route("/go", redirect(other_origin.url("/v.mp3", host="localhost")))
    with pytest.raises(RedirectNotAllowed) as caught:
        await fetcher.fetch_to_path(origin.url("/go"), tmp_path / "v.mp3")
    assert "host not allowed: localhost" in str(caught.value)
    assert other_origin.connections == 0
    assert files_in(tmp_path) == []


async def test_redirect_downgrading_to_plain_http_off_loopback_is_refused(
    make_fetcher: MakeFetcher, origin: Origin, tmp_path: Path
) -> None:
    fetcher = make_fetcher(allowed_hosts={"127.0.0.1", "storage.vidgo.ai"})
    origin.route("/go", redirect("http://storage.vidgo.ai/v.mp3"))
    with pytest.raises(RedirectNotAllowed) as caught:
        await fetcher.fetch_to_path(origin.url("/go"), tmp_path / "v.mp3")
    assert "https required" in str(caught.value)


async def test_redirects_within_the_list_are_followed(
    fetcher: StemFetcher, origin: Origin, other_origin: Origin, tmp_path: Path
) -> None:
    other_origin.route("/final/v.mp3", serve(BODY))
    other_origin.route("/hop", redirect("/final/v.mp3", status=307))  # relative Location
    origin.route("/start", redirect(other_origin.url("/hop"), status=301))

    result = await fetcher.fetch_to_path(origin.url("/start"), tmp_path / "v.mp3")

    assert (tmp_path / "v.mp3").read_bytes() == BODY
    assert result.final_url == other_origin.url("/final/v.mp3")
    assert origin.hits["/start"] == 1
    assert other_origin.hits["/hop"] == 1
    assert other_origin.hits["/final/v.mp3"] == 1


async def test_redirect_chain_longer_than_the_limit_stops(
    make_fetcher: MakeFetcher, origin: Origin, tmp_path: Path
) -> None:
    fetcher = make_fetcher(max_redirects=2)
    for hop in range(5):
        origin.route(f"/r{hop}", redirect(f"/r{hop + 1}"))
    origin.route("/r5", serve(BODY))
    with pytest.raises(TooManyRedirects):
        await fetcher.fetch_to_path(origin.url("/r0"), tmp_path / "v.mp3")
    # The first request and two followed hops; the third redirect is not followed.
    assert [origin.hits[f"/r{hop}"] for hop in range(4)] == [1, 1, 1, 0]
    assert files_in(tmp_path) == []


async def test_redirect_without_location_is_refused(
    fetcher: StemFetcher, origin: Origin, tmp_path: Path
) -> None:
    origin.route("/go", redirect(""))
    with pytest.raises(RedirectNotAllowed, match="no Location"):
        await fetcher.fetch_to_path(origin.url("/go"), tmp_path / "v.mp3")


# -- size -----------------------------------------------------------------------------------


async def test_content_length_over_the_cap_is_refused_before_the_body(
    make_fetcher: MakeFetcher, origin: Origin, tmp_path: Path
) -> None:
    fetcher = make_fetcher()
    body = audio_bytes(CAP + 1, seed=4)
    origin.route("/big.mp3", serve(body))
    with pytest.raises(TooLarge) as caught:
        await fetcher.fetch_to_path(origin.url("/big.mp3"), tmp_path / "big.mp3")
    assert caught.value.announced == CAP + 1
    assert caught.value.limit == CAP
    assert files_in(tmp_path) == []


async def test_stream_past_the_cap_without_content_length_is_cut_off_and_deleted(
    fetcher: StemFetcher, origin: Origin, tmp_path: Path
) -> None:
    origin.route("/endless.mp3", endless(audio_bytes(8192, seed=5)))
    with pytest.raises(TooLarge) as caught:
        await fetcher.fetch_to_path(origin.url("/endless.mp3"), tmp_path / "e.mp3")
    assert caught.value.announced is None
    assert files_in(tmp_path) == []


async def test_stream_past_the_cap_into_the_store_leaves_no_temp_file(
    fetcher: StemFetcher, origin: Origin, tmp_path: Path
) -> None:
    origin.route("/endless.mp3", endless(audio_bytes(8192, seed=5)))
    with MediaStore.open_sync(tmp_path / "media") as store:
        with pytest.raises(TooLarge):
            await fetcher.fetch(origin.url("/endless.mp3"), store.target("job1", "v.mp3"))
        assert not store.exists("job1", "v.mp3")
    assert files_in(tmp_path / "media") == []


# -- broken bodies and servers ----------------------------------------------------------------


async def test_body_shorter_than_its_content_length_is_truncated_and_leaves_no_file(
    fetcher: StemFetcher, origin: Origin, tmp_path: Path
) -> None:
    origin.route("/short.mp3", announce_then_cut(BODY, 30_000))
    with pytest.raises(Truncated) as caught:
        await fetcher.fetch_to_path(origin.url("/short.mp3"), tmp_path / "s.mp3")
    assert caught.value.expected == len(BODY)
    assert caught.value.received <= 30_000
    assert caught.value.retryable
    assert files_in(tmp_path) == []


async def test_chunked_body_cut_mid_stream_is_truncated(
    fetcher: StemFetcher, origin: Origin, tmp_path: Path
) -> None:
    origin.route("/cut.mp3", announce_then_cut(BODY, 20_000, length=False))
    with pytest.raises(Truncated):
        await fetcher.fetch_to_path(origin.url("/cut.mp3"), tmp_path / "c.mp3")
    assert files_in(tmp_path) == []


async def test_server_that_never_answers_times_out(
    fetcher: StemFetcher, origin: Origin, tmp_path: Path
) -> None:
    origin.route("/silent.mp3", never_answer())
    with pytest.raises(FetchTimeout) as caught:
        await fetcher.fetch_to_path(origin.url("/silent.mp3"), tmp_path / "s.mp3")
    assert caught.value.phase == "read"
    assert caught.value.retryable
    assert files_in(tmp_path) == []


async def test_body_that_stalls_times_out_between_reads_and_leaves_no_file(
    fetcher: StemFetcher, origin: Origin, tmp_path: Path
) -> None:
    origin.route("/stall.mp3", stall_after(BODY, 20_000))
    with pytest.raises(FetchTimeout) as caught:
        await fetcher.fetch_to_path(origin.url("/stall.mp3"), tmp_path / "s.mp3")
    assert caught.value.phase == "read"
    assert files_in(tmp_path) == []


async def test_slow_trickle_hits_the_total_deadline(
    make_fetcher: MakeFetcher, origin: Origin, tmp_path: Path
) -> None:
    # Every byte arrives well inside the read timeout; only the overall deadline can end it.
    fetcher = make_fetcher(read_timeout=2.0, total_timeout=0.5)
    origin.route("/slow.mp3", trickle(BODY, 0.02))
    with pytest.raises(FetchTimeout) as caught:
        await fetcher.fetch_to_path(origin.url("/slow.mp3"), tmp_path / "s.mp3")
    assert caught.value.phase == "total"
    assert "after 0.5 s" in str(caught.value)
    assert files_in(tmp_path) == []


@pytest.mark.parametrize(
    ("status", "retryable"), [(404, False), (403, False), (429, True), (500, True), (204, False)]
)
async def test_status_other_than_200_is_a_typed_error(
    fetcher: StemFetcher, origin: Origin, tmp_path: Path, status: int, retryable: bool
) -> None:
    origin.route("/x.mp3", serve(b"" if status == 204 else b"nope", status=status))
    with pytest.raises(HttpStatusError) as caught:
        await fetcher.fetch_to_path(origin.url("/x.mp3"), tmp_path / "x.mp3")
    assert caught.value.status == status
    assert str(caught.value) == f"HTTP status {status} from 127.0.0.1"
    assert caught.value.retryable is retryable
    assert files_in(tmp_path) == []


async def test_closed_port_is_a_connection_error(fetcher: StemFetcher, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(FetchConnectionError) as caught:
        await fetcher.fetch_to_path(f"http://127.0.0.1:{port}/v.mp3", tmp_path / "v.mp3")
    assert caught.value.retryable
    assert files_in(tmp_path) == []


async def test_server_that_hangs_up_without_a_reply_is_a_connection_error(
    fetcher: StemFetcher, origin: Origin, tmp_path: Path
) -> None:
    async def hang_up(origin: Origin, path: str, writer: asyncio.StreamWriter) -> None:
        writer.close()

    origin.route("/v.mp3", hang_up)
    with pytest.raises(FetchConnectionError) as caught:
        await fetcher.fetch_to_path(origin.url("/v.mp3"), tmp_path / "v.mp3")
    assert str(caught.value) == (
        "could not download from 127.0.0.1: connection closed before a reply"
    )
    assert files_in(tmp_path) == []


async def test_host_that_accepts_no_connection_times_out_connecting(
    make_fetcher: MakeFetcher, tmp_path: Path
) -> None:
    # A listener that never accepts, its queue already full: the next connect gets no answer.
    fetcher = make_fetcher(connect_timeout=0.3)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(3)]
        try:
            for filler in fillers:
                filler.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    filler.connect(("127.0.0.1", port))
            with pytest.raises(FetchTimeout) as caught:
                await fetcher.fetch_to_path(f"http://127.0.0.1:{port}/v.mp3", tmp_path / "v.mp3")
        finally:
            for filler in fillers:
                filler.close()
    assert caught.value.phase == "connect"
    assert str(caught.value) == "timed out connecting to 127.0.0.1 after 0.3 s"
    assert files_in(tmp_path) == []


async def test_error_messages_never_carry_the_url_query(
    fetcher: StemFetcher, origin: Origin, tmp_path: Path
) -> None:
    origin.route("/x.mp3?X-Signature=topsecret", serve(b"nope", status=404))
    with pytest.raises(FetchError) as caught:
        await fetcher.fetch_to_path(origin.url("/x.mp3?X-Signature=topsecret"), tmp_path / "x.mp3")
    assert "topsecret" not in str(caught.value)


# -- is it audio? ---------------------------------------------------------------------------


async def test_html_page_served_with_200_is_not_audio(
    fetcher: StemFetcher, origin: Origin, tmp_path: Path
) -> None:
    page = b"<!doctype html><html><body>Access denied</body></html>" * 10
    origin.route("/v.mp3", serve(page, content_type="audio/mpeg"))
    with pytest.raises(NotAudio):
        await fetcher.fetch_to_path(origin.url("/v.mp3"), tmp_path / "v.mp3")
    assert files_in(tmp_path) == []


async def test_body_too_short_to_be_audio_is_refused(
    fetcher: StemFetcher, origin: Origin, tmp_path: Path
) -> None:
    origin.route("/v.mp3", serve(b"ID3"))
    with pytest.raises(NotAudio):
        await fetcher.fetch_to_path(origin.url("/v.mp3"), tmp_path / "v.mp3")
    assert files_in(tmp_path) == []


async def test_audio_check_can_be_turned_off(
    make_fetcher: MakeFetcher, origin: Origin, tmp_path: Path
) -> None:
    fetcher = make_fetcher(require_audio=False)
    origin.route("/notes.json", serve(b'{"notes": []}', content_type="application/json"))
    result = await fetcher.fetch_to_path(origin.url("/notes.json"), tmp_path / "n.json")
    assert result.audio_format is None
    assert (tmp_path / "n.json").read_bytes() == b'{"notes": []}'


# -- the disk guard, through a download -------------------------------------------------------


async def test_download_announcing_more_than_the_free_space_is_refused_before_the_body(
    fetcher: StemFetcher, origin: Origin, tmp_path: Path
) -> None:
    origin.route("/v.mp3", serve(BODY))
    free = 10_000 + len(BODY) - 1  # one byte short of keeping 10 000 free
    with MediaStore.open_sync(
        tmp_path / "media", min_free_bytes=10_000, free_bytes=lambda _: free
    ) as store:
        with pytest.raises(InsufficientSpace) as caught:
            await fetcher.fetch(origin.url("/v.mp3"), store.target("job1", "v.mp3"))
        assert caught.value.needed == len(BODY)
        assert not store.exists("job1", "v.mp3")
    assert files_in(tmp_path / "media") == []


async def test_download_that_fits_the_free_space_exactly_is_kept(
    fetcher: StemFetcher, origin: Origin, tmp_path: Path
) -> None:
    origin.route("/v.mp3", serve(BODY, length=False))
    free = 10_000 + len(BODY)
    with MediaStore.open_sync(
        tmp_path / "media", min_free_bytes=10_000, free_bytes=lambda _: free
    ) as store:
        await fetcher.fetch(origin.url("/v.mp3"), store.target("job1", "v.mp3"))
        assert store.path_of("job1", "v.mp3").read_bytes() == BODY


# -- construction ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"allowed_hosts": set()},
        {"max_bytes": 0},
        {"read_timeout": 0},
        {"total_timeout": -1},
        {"max_redirects": -1},
    ],
)
def test_nonsense_limits_are_refused(make_fetcher: MakeFetcher, options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        make_fetcher(**options)


def test_every_fetch_error_is_a_media_error() -> None:
    from bot.media.errors import MediaError

    assert issubclass(FetchError, MediaError)
    assert not FetchError("x").retryable
