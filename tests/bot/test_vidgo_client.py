"""VidgoClient over real HTTP: against the fake Vidgo, and a scripted server for odd replies."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.vidgo.client import VidgoClient, parse_retry_after
from bot.vidgo.errors import (
    VidgoAuthError,
    VidgoDuplicateError,
    VidgoError,
    VidgoInvalidRequest,
    VidgoMalformedResponse,
    VidgoNotFound,
    VidgoRateLimited,
    VidgoTransientError,
)
from bot.vidgo.results import Model, TaskStatus
from tests.fakes.audio import stem_mp3
from tests.fakes.vidgo import (
    GENERATION_AUDIO_IDS,
    GENERATION_TASK_ID,
    GENERATION_TITLES,
    FakeVidgo,
)

KEY = "test-vidgo-key"
SUBMIT = "/api/generate/submit"
DETAIL = "/api/generate/detail/music"
AUDIO_ID = GENERATION_AUDIO_IDS[0]


@pytest.fixture
async def vidgo() -> AsyncIterator[FakeVidgo]:
    async with FakeVidgo(KEY, callback_retry_delays=(0.01, 0.02)) as fake:
        yield fake


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


MakeClient = Callable[..., VidgoClient]


@pytest.fixture
def make_client(session: aiohttp.ClientSession, vidgo: FakeVidgo) -> MakeClient:
    def make(base_url: str | None = None, **options: Any) -> VidgoClient:
        settings: dict[str, Any] = {
            "timeout": 2.0,
            "max_retries": 3,
            "rate_per_second": 1000.0,
            "max_concurrency": 16,
            "backoff_base": 0.001,
            "backoff_max": 0.01,
        }
        settings.update(options)
        api_key = settings.pop("api_key", KEY)
        return VidgoClient(session, base_url or vidgo.base_url, api_key, **settings)

    return make


@pytest.fixture
def client(make_client: MakeClient) -> VidgoClient:
    return make_client()


def record_waits(client: VidgoClient) -> list[float]:
    """Swap the retry sleep for one that records the wait and does not wait."""
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    client._sleep = sleep
    return waits


def requests_to(vidgo: FakeVidgo, path: str) -> int:
    return sum(1 for _, p in vidgo.requests if p == path)


async def submit_vocals(client: VidgoClient, audio_id: str = AUDIO_ID) -> Any:
    return await client.submit_separation(
        Model.SEPARATE_VOCALS,
        task_id=GENERATION_TASK_ID,
        audio_id=audio_id,
        callback_url="https://hooks.example.org/vidgo/cb?t=secret",
    )


# -- the happy paths ---------------------------------------------------------------------------


async def test_submit_separation_sends_the_documented_body(
    client: VidgoClient, vidgo: FakeVidgo
) -> None:
    receipt = await submit_vocals(client)
    assert receipt.status is TaskStatus.NOT_STARTED
    assert receipt.created_time is not None and receipt.created_time.tzinfo is not None
    task = vidgo.tasks[receipt.task_id]
    assert task.model == "separate-vocals"
    assert task.input == {"task_id": GENERATION_TASK_ID, "audio_id": AUDIO_ID}
    assert task.callback_url == "https://hooks.example.org/vidgo/cb?t=secret"
    assert client.calls == {("submit", "ok"): 1}


async def test_no_callback_url_is_sent_when_none(client: VidgoClient, vidgo: FakeVidgo) -> None:
    receipt = await client.submit_separation(
        Model.STEM_SPLIT, task_id=GENERATION_TASK_ID, audio_id=AUDIO_ID, callback_url=None
    )
    assert vidgo.tasks[receipt.task_id].callback_url is None
    assert vidgo.tasks[receipt.task_id].model == "stem-split"


async def test_submit_upload_sends_only_the_given_options(
    client: VidgoClient, vidgo: FakeVidgo
) -> None:
    plain = await client.submit_upload_separation(audio_url="https://cdn.example.org/a.mp3")
    full = await client.submit_upload_separation(
        audio_url="https://cdn.example.org/b.mp3",
        title="Demo",
        model_name="enhanced",
        output_type="vocals",
        callback_url="https://hooks.example.org/cb",
    )
    assert vidgo.tasks[plain.task_id].input == {"audio_url": "https://cdn.example.org/a.mp3"}
    assert vidgo.tasks[plain.task_id].callback_url is None
    assert vidgo.tasks[full.task_id].model == "upload-and-separate-vocals"
    assert vidgo.tasks[full.task_id].input == {
        "audio_url": "https://cdn.example.org/b.mp3",
        "title": "Demo",
        "model_name": "enhanced",
        "output_type": "vocals",
    }


async def test_upload_model_is_refused_by_submit_separation(client: VidgoClient) -> None:
    with pytest.raises(ValueError, match="does not separate"):
        await client.submit_separation(
            Model.UPLOAD_AND_SEPARATE, task_id="t", audio_id="a", callback_url=None
        )


async def test_get_task_follows_the_task_to_its_stems(
    client: VidgoClient, vidgo: FakeVidgo, session: aiohttp.ClientSession
) -> None:
    receipt = await submit_vocals(client)
    assert (await client.get_task(receipt.task_id)).status is TaskStatus.NOT_STARTED
    vidgo.set_running(receipt.task_id)
    running = await client.get_task(receipt.task_id)
    assert running.status is TaskStatus.RUNNING and running.stems == {}
    await vidgo.finish(receipt.task_id, callback=False)
    done = await client.get_task(receipt.task_id)
    assert done.status is TaskStatus.FINISHED
    assert list(done.stems) == ["vocals", "instrumental"]
    async with session.get(done.stems["vocals"]) as resp:
        assert resp.status == 200
        assert resp.content_type == "audio/mpeg"
        assert await resp.read() == stem_mp3("vocals")  # the fake's real MP3 of the stem
    assert vidgo.tasks[receipt.task_id].detail_calls == 3


async def test_failed_task_carries_the_reason(client: VidgoClient, vidgo: FakeVidgo) -> None:
    receipt = await submit_vocals(client)
    await vidgo.fail(receipt.task_id, "The audio violates our content policy.", callback=False)
    detail = await client.get_task(receipt.task_id)
    assert detail.status is TaskStatus.FAILED
    assert detail.error_message == "The audio violates our content policy."
    assert detail.stems == {}


@pytest.mark.parametrize("switch", ["flat_bodies", "vocal_removal_variant", "spaced_keys"])
async def test_every_reply_variant_of_the_fake_parses_to_the_same_stems(
    client: VidgoClient, vidgo: FakeVidgo, switch: str
) -> None:
    receipt = await client.submit_separation(
        Model.STEM_SPLIT, task_id=GENERATION_TASK_ID, audio_id=AUDIO_ID, callback_url=None
    )
    await vidgo.finish(receipt.task_id, callback=False)
    expected = (await client.get_task(receipt.task_id)).stems
    setattr(vidgo, switch, True)
    assert (await client.get_task(receipt.task_id)).stems == expected
    assert len(expected) == 13


async def test_get_track_finds_the_track_by_audio_id(client: VidgoClient) -> None:
    track = await client.get_track(GENERATION_TASK_ID, GENERATION_AUDIO_IDS[1])
    assert track is not None
    assert track.audio_id == GENERATION_AUDIO_IDS[1]
    assert track.title == GENERATION_TITLES[1]
    assert track.duration is not None and track.duration > 0
    assert track.cover_url is not None and track.cover_url.endswith(".jpeg")
    assert track.audio_url is not None
    assert track.audio_url.endswith(f"_audio_{GENERATION_AUDIO_IDS[1]}.mp3")


async def test_get_track_of_an_unknown_audio_id_is_none(client: VidgoClient) -> None:
    assert (
        await client.get_track(GENERATION_TASK_ID, "00000000-0000-0000-0000-000000000000") is None
    )


async def test_get_track_of_an_unknown_task_is_not_found(client: VidgoClient) -> None:
    with pytest.raises(VidgoNotFound):
        await client.get_track("NO-SUCH-TASK", AUDIO_ID)


async def test_balance_reads_the_credits(client: VidgoClient, vidgo: FakeVidgo) -> None:
    vidgo.credits = 4321
    assert await client.balance() == 4321
    assert client.calls == {("balance", "ok"): 1}


# -- error mapping -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, VidgoInvalidRequest),
        (401, VidgoAuthError),
        (402, VidgoInvalidRequest),
        (403, VidgoAuthError),
        (404, VidgoNotFound),
        (408, VidgoTransientError),
        (409, VidgoDuplicateError),
        (422, VidgoInvalidRequest),
        (429, VidgoRateLimited),
        (455, VidgoTransientError),
        (500, VidgoTransientError),
        (502, VidgoTransientError),
        (503, VidgoTransientError),
    ],
)
async def test_http_status_maps_to_an_error_type(
    make_client: MakeClient, vidgo: FakeVidgo, status: int, error: type[VidgoError]
) -> None:
    client = make_client(max_retries=0)
    vidgo.fail_next(1, status, path_prefix=DETAIL)
    with pytest.raises(error) as caught:
        await client.get_task("anything")
    assert type(caught.value) is error
    assert caught.value.status == status
    assert caught.value.message == f"Vidgo answered HTTP {status}: injected failure"


async def test_wrong_key_is_an_auth_error_without_the_key(
    make_client: MakeClient, vidgo: FakeVidgo
) -> None:
    client = make_client(api_key="sk-wrong-secret-key")
    with pytest.raises(VidgoAuthError) as caught:
        await client.balance()
    assert caught.value.status == 401
    assert "sk-wrong-secret-key" not in str(caught.value)
    assert requests_to(vidgo, "/api/user/balance") == 1  # not retried
    assert client.calls == {("balance", "auth"): 1}


async def test_second_separation_of_a_track_is_a_duplicate(
    client: VidgoClient, vidgo: FakeVidgo
) -> None:
    await submit_vocals(client)
    with pytest.raises(VidgoDuplicateError) as caught:
        await submit_vocals(client)
    assert caught.value.status == 409
    assert "separation already exists" in caught.value.message
    assert vidgo.submit_count == 2
    assert len(vidgo.tasks) == 1


async def test_unknown_source_track_is_not_found(client: VidgoClient) -> None:
    with pytest.raises(VidgoNotFound):
        await submit_vocals(client, audio_id="11111111-2222-3333-4444-555555555555")


async def test_invalid_input_is_an_invalid_request(client: VidgoClient, vidgo: FakeVidgo) -> None:
    with pytest.raises(VidgoInvalidRequest):
        await client.submit_upload_separation(audio_url="ftp://x.example/a.mp3")
    assert vidgo.submit_count == 1


# -- retries ---------------------------------------------------------------------------------------


async def test_retry_after_is_honoured(make_client: MakeClient, vidgo: FakeVidgo) -> None:
    client = make_client(backoff_base=0.001, backoff_max=5.0)
    waits = record_waits(client)
    vidgo.fail_next(1, 429, retry_after=1.5, path_prefix="/api/user/balance")
    assert await client.balance() == vidgo.credits
    # Jitter alone would be at most backoff_base (1 ms); the wait is Vidgo's 1.5 s.
    assert waits == [1.5]
    assert client.calls == {("balance", "rate_limited"): 1, ("balance", "ok"): 1}


async def test_retry_after_longer_than_backoff_max_is_raised_at_once(
    make_client: MakeClient, vidgo: FakeVidgo
) -> None:
    client = make_client(backoff_max=1.0)
    waits = record_waits(client)
    vidgo.fail_next(5, 429, retry_after=60, path_prefix=DETAIL)
    with pytest.raises(VidgoRateLimited) as caught:
        await client.get_task("t")
    assert caught.value.retry_after == 60
    assert waits == []
    assert vidgo.detail_count == 1


async def test_rate_limit_without_retry_after_uses_jittered_backoff(
    make_client: MakeClient, vidgo: FakeVidgo
) -> None:
    client = make_client(backoff_base=0.1, backoff_max=0.3, max_retries=3)
    waits = record_waits(client)
    vidgo.fail_next(3, 429, path_prefix=DETAIL)
    await client.get_track(GENERATION_TASK_ID, AUDIO_ID)
    assert len(waits) == 3
    # Full jitter: uniform in [0, min(max, base * 2 ** n)].
    for n, wait in enumerate(waits):
        assert 0 <= wait <= min(0.3, 0.1 * 2**n)


async def test_retries_are_bounded(make_client: MakeClient, vidgo: FakeVidgo) -> None:
    client = make_client(max_retries=2)
    waits = record_waits(client)
    vidgo.fail_next(10, 500, path_prefix=DETAIL)
    with pytest.raises(VidgoTransientError) as caught:
        await client.get_task(GENERATION_TASK_ID)
    assert caught.value.status == 500
    assert vidgo.detail_count == 3
    assert len(waits) == 2
    assert client.calls == {("detail", "transient"): 3}


async def test_transient_errors_then_success(make_client: MakeClient, vidgo: FakeVidgo) -> None:
    client = make_client(max_retries=3)
    vidgo.fail_next(2, 503, path_prefix=DETAIL)
    detail = await client.get_task(GENERATION_TASK_ID)
    assert detail.status is TaskStatus.FINISHED
    assert vidgo.detail_count == 3
    assert client.calls == {("detail", "transient"): 2, ("detail", "ok"): 1}


async def test_client_errors_are_not_retried(make_client: MakeClient, vidgo: FakeVidgo) -> None:
    client = make_client(max_retries=3)
    vidgo.fail_next(5, 400, path_prefix=DETAIL)
    with pytest.raises(VidgoInvalidRequest):
        await client.get_task("x")
    assert vidgo.detail_count == 1


async def test_a_slow_reply_times_out_and_the_read_is_retried(
    make_client: MakeClient, vidgo: FakeVidgo
) -> None:
    client = make_client(timeout=0.2, max_retries=1)
    vidgo.slow_next(1, 2.0, path_prefix=DETAIL)
    started = time.monotonic()
    detail = await client.get_task(GENERATION_TASK_ID)
    assert detail.status is TaskStatus.FINISHED
    assert time.monotonic() - started < 1.5
    assert client.calls == {("detail", "timeout"): 1, ("detail", "ok"): 1}


async def test_a_timeout_is_a_transient_error(make_client: MakeClient, vidgo: FakeVidgo) -> None:
    client = make_client(timeout=0.2, max_retries=0)
    vidgo.slow_next(1, 2.0, path_prefix=DETAIL)
    with pytest.raises(VidgoTransientError) as caught:
        await client.get_task(GENERATION_TASK_ID)
    assert type(caught.value) is VidgoTransientError
    assert caught.value.status is None
    assert "did not answer within 0.2 s" in caught.value.message


async def test_connection_reset_on_a_read_is_retried(
    make_client: MakeClient, vidgo: FakeVidgo
) -> None:
    client = make_client(max_retries=3)
    vidgo.reset_next(2, path_prefix=DETAIL)
    assert (await client.get_task(GENERATION_TASK_ID)).status is TaskStatus.FINISHED
    assert vidgo.detail_count == 3
    # aiohttp itself resends an idempotent GET once when a pooled connection drops, so one
    # client attempt may cover two of the fake's resets.
    assert client.calls[("detail", "connection_error")] in (1, 2)
    assert client.calls[("detail", "ok")] == 1


async def test_invalid_json_is_malformed_and_retried(
    make_client: MakeClient, vidgo: FakeVidgo
) -> None:
    client = make_client(max_retries=1)
    vidgo.malformed_next(1, path_prefix=DETAIL)
    assert (await client.get_task(GENERATION_TASK_ID)).status is TaskStatus.FINISHED
    vidgo.malformed_next(2, path_prefix=DETAIL)
    with pytest.raises(VidgoMalformedResponse):
        await client.get_task(GENERATION_TASK_ID)
    assert vidgo.detail_count == 4
    assert client.calls == {("detail", "malformed"): 3, ("detail", "ok"): 1}


# -- submits are never sent twice when the first may have worked -----------------------------------


async def test_submit_is_not_retried_after_a_read_timeout(
    make_client: MakeClient, vidgo: FakeVidgo
) -> None:
    client = make_client(timeout=0.2, max_retries=3)
    vidgo.slow_next(1, 2.0, path_prefix=SUBMIT)
    with pytest.raises(VidgoTransientError) as caught:
        await submit_vocals(client)
    assert caught.value.maybe_processed
    assert vidgo.submit_count == 1
    # The fake acted on it: a task exists whose id we never learnt, hence no blind retry.
    assert len(vidgo.tasks) == 1


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_submit_is_not_retried_after_an_ambiguous_server_error(
    make_client: MakeClient, vidgo: FakeVidgo, status: int
) -> None:
    client = make_client(max_retries=3)
    vidgo.fail_next(1, status, path_prefix=SUBMIT)
    with pytest.raises(VidgoTransientError) as caught:
        await submit_vocals(client)
    assert caught.value.maybe_processed
    assert vidgo.submit_count == 1


async def test_submit_is_not_retried_after_a_connection_reset(
    make_client: MakeClient, vidgo: FakeVidgo
) -> None:
    client = make_client(max_retries=3)
    vidgo.reset_next(1, path_prefix=SUBMIT)
    with pytest.raises(VidgoTransientError) as caught:
        await submit_vocals(client)
    assert caught.value.maybe_processed
    assert vidgo.submit_count == 1
    assert client.calls == {("submit", "connection_error"): 1}


async def test_submit_is_not_retried_after_a_malformed_reply(
    make_client: MakeClient, vidgo: FakeVidgo
) -> None:
    client = make_client(max_retries=3)
    vidgo.malformed_next(1, path_prefix=SUBMIT)
    with pytest.raises(VidgoMalformedResponse):
        await submit_vocals(client)
    assert vidgo.submit_count == 1


@pytest.mark.parametrize("status", [408, 429, 503])
async def test_submit_is_retried_when_vidgo_certainly_did_nothing(
    make_client: MakeClient, vidgo: FakeVidgo, status: int
) -> None:
    client = make_client(max_retries=3)
    vidgo.fail_next(2, status, path_prefix=SUBMIT)
    receipt = await submit_vocals(client)
    assert vidgo.submit_count == 3
    assert list(vidgo.tasks) == [receipt.task_id]


async def test_submit_is_retried_when_the_connection_is_refused(
    make_client: MakeClient,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port now.
    client = make_client(f"http://127.0.0.1:{port}", max_retries=2)
    with pytest.raises(VidgoTransientError) as caught:
        await submit_vocals(client)
    assert not caught.value.maybe_processed
    assert client.calls == {("submit", "connection_error"): 3}


# -- limits ----------------------------------------------------------------------------------------


async def test_concurrency_cap_holds_at_the_server(
    make_client: MakeClient, vidgo: FakeVidgo
) -> None:
    client = make_client(max_concurrency=3)
    vidgo.slow_next(20, 0.1, path_prefix=DETAIL)
    await asyncio.gather(*(client.get_task(GENERATION_TASK_ID) for _ in range(12)))
    assert vidgo.max_in_flight == 3


async def test_rate_limiter_spaces_out_requests(make_client: MakeClient, vidgo: FakeVidgo) -> None:
    client = make_client(rate_per_second=20.0)
    started = time.monotonic()
    await asyncio.gather(*(client.balance() for _ in range(30)))
    elapsed = time.monotonic() - started
    # A bucket of 20 then 20/s: the last 10 requests need at least 0.5 s.
    assert elapsed >= 0.45
    assert client.calls == {("balance", "ok"): 30}


async def test_rate_below_one_per_second_is_allowed(make_client: MakeClient) -> None:
    client = make_client(rate_per_second=0.5)
    assert await client.balance() > 0


@pytest.mark.parametrize(
    "options",
    [
        {"timeout": 0},
        {"max_retries": -1},
        {"rate_per_second": 0},
        {"max_concurrency": 0},
        {"api_key": ""},
    ],
)
def test_bad_settings_are_refused(make_client: MakeClient, options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        make_client(**options)


# -- odd replies from a scripted server ------------------------------------------------------------


class Scripted:
    """A server that answers each request with the next scripted reply."""

    def __init__(self) -> None:
        self.replies: list[tuple[int, str, dict[str, str]]] = []
        self.seen: list[web.Request] = []
        self.authorization: list[str | None] = []
        self.url = ""

    def reply(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        text = body if isinstance(body, str) else json.dumps(body)
        self.replies.append((status, text, headers or {}))

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(request)
        self.authorization.append(request.headers.get("Authorization"))
        status, text, headers = self.replies.pop(0)
        content_type = "application/json" if text[:1] in "{[" else "text/html"
        return web.Response(status=status, text=text, content_type=content_type, headers=headers)


@pytest.fixture
async def scripted() -> AsyncIterator[Scripted]:
    server = Scripted()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield server
    await runner.cleanup()


async def test_bearer_header_and_query_parameter(
    make_client: MakeClient, scripted: Scripted
) -> None:
    client = make_client(scripted.url)
    scripted.reply(200, {"code": 200, "data": {"task_id": "a b&c", "status": "running"}})
    await client.get_task("a b&c")
    assert scripted.authorization == [f"Bearer {KEY}"]
    assert scripted.seen[0].path == DETAIL
    assert scripted.seen[0].query["task_id"] == "a b&c"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"code": 401, "msg": "bad key", "data": None}, VidgoAuthError),
        ({"code": 409, "msg": "exists"}, VidgoDuplicateError),
        ({"code": 430, "msg": "call frequency too high"}, VidgoRateLimited),
        ({"code": 405, "msg": "rate limited"}, VidgoRateLimited),
        ({"code": "422", "msg": "bad"}, VidgoInvalidRequest),
        ({"code": 455, "msg": "maintenance"}, VidgoTransientError),
        ({"code": 500, "msg": "boom", "data": None}, VidgoTransientError),
        ({"code": 1, "msg": "what is this"}, VidgoMalformedResponse),
    ],
)
async def test_an_error_code_in_an_http_200_body_is_an_error(
    make_client: MakeClient, scripted: Scripted, body: dict[str, Any], error: type[VidgoError]
) -> None:
    client = make_client(scripted.url, max_retries=0)
    scripted.reply(200, body)
    with pytest.raises(error) as caught:
        await client.get_task("t")
    assert type(caught.value) is error
    assert caught.value.status == int(body["code"])
    assert f"code {int(body['code'])}" in caught.value.message


async def test_code_zero_is_success(make_client: MakeClient, scripted: Scripted) -> None:
    client = make_client(scripted.url)
    scripted.reply(200, {"code": 0, "data": {"task_id": "t1", "status": "not_started"}})
    receipt = await client.submit_upload_separation(audio_url="https://cdn.example.org/a.mp3")
    assert receipt.task_id == "t1"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"code": 400, "error": {"message": "from error"}, "message": "m", "msg": "x"},
            "from error",
        ),
        ({"code": 400, "message": "from message", "msg": "x"}, "from message"),
        ({"code": 400, "msg": "from msg", "data": {"error_message": "y"}}, "from msg"),
        ({"code": 400, "data": {"error_message": "from data"}}, "from data"),
        ({"code": 400, "error": "a plain error string"}, "a plain error string"),
    ],
)
async def test_error_message_is_read_in_the_agreed_order(
    make_client: MakeClient, scripted: Scripted, body: dict[str, Any], message: str
) -> None:
    client = make_client(scripted.url, max_retries=0)
    scripted.reply(400, body)
    with pytest.raises(VidgoInvalidRequest) as caught:
        await client.get_task("t")
    assert caught.value.message == f"Vidgo answered HTTP 400: {message}"


async def test_error_message_is_truncated_and_never_holds_the_key(
    make_client: MakeClient, scripted: Scripted
) -> None:
    client = make_client(scripted.url, max_retries=0)
    scripted.reply(400, {"msg": f"bad key {KEY}\n\x1b[31m" + "z" * 2000})
    with pytest.raises(VidgoInvalidRequest) as caught:
        await client.get_task("t")
    assert KEY not in caught.value.message
    assert "[redacted]" in caught.value.message
    assert "\n" not in caught.value.message and "\x1b" not in caught.value.message
    assert len(caught.value.message) == 500


async def test_html_error_page_is_still_mapped_by_status(
    make_client: MakeClient, scripted: Scripted
) -> None:
    client = make_client(scripted.url, max_retries=0)
    scripted.reply(502, "<html><body>Bad Gateway</body></html>")
    with pytest.raises(VidgoTransientError) as caught:
        await client.get_task("t")
    assert caught.value.status == 502
    assert caught.value.message == "Vidgo answered HTTP 502"


@pytest.mark.parametrize(
    "body",
    [
        "<html>ok</html>",
        {"code": 200, "data": {"foo": 1}},
        {"code": 200, "data": None},
        [1, 2, 3],
    ],
)
async def test_success_with_the_wrong_shape_is_malformed(
    make_client: MakeClient, scripted: Scripted, body: object
) -> None:
    client = make_client(scripted.url, max_retries=0)
    scripted.reply(200, body)
    with pytest.raises(VidgoMalformedResponse):
        await client.get_task("t")
    assert client.calls == {("detail", "malformed"): 1}


async def test_redirects_are_not_followed(make_client: MakeClient, scripted: Scripted) -> None:
    client = make_client(scripted.url, max_retries=2)
    scripted.reply(302, "", {"Location": "http://elsewhere.example/steal"})
    with pytest.raises(VidgoInvalidRequest):
        await client.balance()
    assert len(scripted.seen) == 1


async def test_retry_after_as_an_http_date(make_client: MakeClient, scripted: Scripted) -> None:
    client = make_client(scripted.url, backoff_base=0.001, backoff_max=30.0)
    waits = record_waits(client)
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=10), usegmt=True)
    scripted.reply(429, {"code": 429, "msg": "slow down"}, {"Retry-After": when})
    scripted.reply(200, {"code": 200, "data": {"credits_amount": 9}})
    assert await client.balance() == 9
    assert len(waits) == 1
    assert 8.0 <= waits[0] <= 10.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("3", 3.0),
        ("0.25", 0.25),
        ("-4", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0),
        ("soon", None),
        ("nan", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    now = datetime(2015, 10, 21, 7, 28, tzinfo=UTC)
    assert parse_retry_after(header, now=now) == seconds


# -- generate-midi ---------------------------------------------------------------------------------


async def test_submit_midi_sends_the_separation_task_id(
    client: VidgoClient, vidgo: FakeVidgo
) -> None:
    separation = await submit_vocals(client)
    await vidgo.finish(separation.task_id)
    receipt = await client.submit_midi(separation.task_id, callback_url="https://hooks.example/m")
    task = vidgo.tasks[receipt.task_id]
    assert task.model == "generate-midi"
    assert task.input == {"task_id": separation.task_id}
    assert task.callback_url == "https://hooks.example/m"
    plain = await client.submit_midi(separation.task_id, callback_url=None)
    assert vidgo.tasks[plain.task_id].callback_url is None
    with pytest.raises(ValueError, match="task_id"):
        await client.submit_midi("", callback_url=None)


async def test_submit_midi_is_retried_like_every_submit(
    client: VidgoClient, vidgo: FakeVidgo
) -> None:
    separation = await submit_vocals(client)
    await vidgo.finish(separation.task_id)
    waits = record_waits(client)
    vidgo.fail_next(1, 429, retry_after=0.01, path_prefix=SUBMIT)
    receipt = await client.submit_midi(separation.task_id, callback_url=None)
    assert vidgo.tasks[receipt.task_id].model == "generate-midi"
    assert len(waits) == 1
    assert client.calls[("submit", "rate_limited")] == 1
    # Vidgo knows no finished separation with this id.
    with pytest.raises(VidgoNotFound):
        await client.submit_midi("task-unknown", callback_url=None)


# -- lyrics ------------------------------------------------------------------------------------


async def test_submit_lyrics_sends_the_documented_body(
    client: VidgoClient, vidgo: FakeVidgo
) -> None:
    receipt = await client.submit_lyrics(
        task_id=GENERATION_TASK_ID, audio_id=AUDIO_ID, callback_url="https://hooks.example.org/x"
    )
    task = vidgo.tasks[receipt.task_id]
    assert task.model == "get-timestamped-lyrics"
    assert task.input == {"task_id": GENERATION_TASK_ID, "audio_id": AUDIO_ID}
    assert task.callback_url == "https://hooks.example.org/x"
    assert receipt.status is TaskStatus.NOT_STARTED


async def test_submit_lyrics_keeps_a_result_in_the_reply(
    client: VidgoClient, vidgo: FakeVidgo
) -> None:
    vidgo.lyrics_shape = "submit"
    receipt = await client.submit_lyrics(
        task_id=GENERATION_TASK_ID, audio_id=AUDIO_ID, callback_url=None
    )
    assert receipt.status is TaskStatus.FINISHED
    assert receipt.data["aligned_words"]


async def test_submit_lyrics_is_retried_like_other_submits(
    client: VidgoClient, vidgo: FakeVidgo
) -> None:
    record_waits(client)
    vidgo.fail_next(2, 503, path_prefix="/api/generate/submit")
    receipt = await client.submit_lyrics(
        task_id=GENERATION_TASK_ID, audio_id=AUDIO_ID, callback_url=None
    )
    assert receipt.task_id in vidgo.tasks
    assert client.calls[("submit", "transient")] == 2
    vidgo.fail_next(1, 500, path_prefix="/api/generate/submit")
    with pytest.raises(VidgoTransientError):
        await client.submit_lyrics(task_id=GENERATION_TASK_ID, audio_id=AUDIO_ID, callback_url=None)
    with pytest.raises(ValueError, match="must not be empty"):
        await client.submit_lyrics(task_id="", audio_id=AUDIO_ID, callback_url=None)
