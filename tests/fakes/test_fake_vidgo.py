"""The fake Vidgo follows docs/vidgo-api.md, so tests built on it test the real thing."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.vidgo.results import parse_detail
from tests.fakes.audio import stem_mp3
from tests.fakes.vidgo import (
    DEFAULT_CREDITS,
    GENERATION_AUDIO_IDS,
    GENERATION_TASK_ID,
    INSTRUMENTAL_AUDIO_ID,
    INSTRUMENTAL_TASK_ID,
    MIDI_INSTRUMENTS,
    STEM_SPLIT_KEYS,
    TAMPERED_STEMS,
    UNREACHABLE_MESSAGE,
    FakeVidgo,
    fake_lyrics,
)

KEY = "test-vidgo-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
ROOT = Path(__file__).resolve().parents[2]


class Receiver:
    """A callback receiver on 127.0.0.1 that answers with scripted statuses (then 200)."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.bodies: list[dict[str, Any]] = []
        self.content_types: list[str] = []
        self.arrived = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.content_types.append(request.content_type)
        self.bodies.append(await request.json())
        self.arrived.set()
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)

    async def wait_for(self, count: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.bodies) < count:
                self.arrived.clear()
                await self.arrived.wait()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/cb", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    rec.url = f"http://127.0.0.1:{runner.addresses[0][1]}/cb"
    yield rec
    await runner.cleanup()


@pytest.fixture
async def vidgo() -> AsyncIterator[FakeVidgo]:
    async with FakeVidgo(KEY, callback_retry_delays=(0.02, 0.04, 0.08)) as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def submit(
    http: aiohttp.ClientSession, vidgo: FakeVidgo, body: dict[str, Any], key: str = KEY
) -> tuple[int, Any]:
    async with http.post(
        f"{vidgo.base_url}/api/generate/submit",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
    ) as resp:
        return resp.status, await resp.json()


async def detail(http: aiohttp.ClientSession, vidgo: FakeVidgo, task_id: str) -> tuple[int, Any]:
    async with http.get(
        f"{vidgo.base_url}/api/generate/detail/music", params={"task_id": task_id}, headers=AUTH
    ) as resp:
        return resp.status, await resp.json()


def separation(
    model: str = "separate-vocals",
    audio_id: str = GENERATION_AUDIO_IDS[0],
    callback_url: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "input": {"task_id": GENERATION_TASK_ID, "audio_id": audio_id},
    }
    if callback_url is not None:
        body["callback_url"] = callback_url
    return body


def upload(audio_url: str = "https://cdn.example.org/a.mp3", **extra: Any) -> dict[str, Any]:
    return {"model": "upload-and-separate-vocals", "input": {"audio_url": audio_url, **extra}}


def result_of(body: dict[str, Any], field: str) -> dict[str, str]:
    [entry] = body["data"]["files"]
    value: dict[str, str] = json.loads(entry[field])
    return value


# -- submit ----------------------------------------------------------------------------------------


async def test_submit_answers_the_documented_receipt(
    http: aiohttp.ClientSession, vidgo: FakeVidgo
) -> None:
    status, body = await submit(http, vidgo, separation())
    assert status == 200
    assert set(body) == {"code", "data"} and body["code"] == 200
    assert set(body["data"]) == {"task_id", "status", "created_time"}
    assert re.fullmatch(r"task-unified-\d{10}-[a-z0-9]{8}", body["data"]["task_id"])
    assert body["data"]["status"] == "not_started"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", body["data"]["created_time"])
    assert list(vidgo.tasks) == [body["data"]["task_id"]]


@pytest.mark.parametrize("key", ["wrong", ""])
async def test_bad_key_is_401(http: aiohttp.ClientSession, vidgo: FakeVidgo, key: str) -> None:
    status, body = await submit(http, vidgo, separation(), key=key)
    assert status == 401
    assert body["code"] == 401 and body["data"] is None and body["msg"]
    assert vidgo.tasks == {}
    async with http.get(f"{vidgo.base_url}/api/user/balance") as resp:
        assert resp.status == 401


@pytest.mark.parametrize(
    "body",
    [
        {"input": {"task_id": GENERATION_TASK_ID, "audio_id": GENERATION_AUDIO_IDS[0]}},
        {"model": "make-karaoke", "input": {"task_id": "x"}},
        {"model": "separate-vocals"},
        {"model": "separate-vocals", "input": {"task_id": GENERATION_TASK_ID}},
        {"model": "stem-split", "input": {"audio_id": GENERATION_AUDIO_IDS[0]}},
        {"model": "upload-and-separate-vocals", "input": {}},
        upload("not a url"),
        upload(model_name="ultra"),
        upload(output_type="kazoo"),
        upload(title=5),
        [1, 2],
    ],
)
async def test_bad_submits_are_400(
    http: aiohttp.ClientSession, vidgo: FakeVidgo, body: Any
) -> None:
    status, reply = await submit(http, vidgo, body)
    assert status == 400
    assert reply["code"] == 400 and reply["data"] is None
    assert vidgo.tasks == {}


async def test_unknown_source_track_is_404(http: aiohttp.ClientSession, vidgo: FakeVidgo) -> None:
    status, body = await submit(http, vidgo, separation(audio_id="nope"))
    assert (status, body["code"]) == (404, 404)
    body = separation()
    body["input"]["task_id"] = "UNKNOWN"
    assert (await submit(http, vidgo, body))[0] == 404


async def test_once_per_track_per_model(http: aiohttp.ClientSession, vidgo: FakeVidgo) -> None:
    assert (await submit(http, vidgo, separation()))[0] == 200
    status, body = await submit(http, vidgo, separation())
    assert status == 409
    assert body == {"code": 409, "msg": "separation already exists for this audio", "data": None}
    # The rule is per (model, audio_id): the other model and the other track are fine.
    assert (await submit(http, vidgo, separation("stem-split")))[0] == 200
    assert (await submit(http, vidgo, separation(audio_id=GENERATION_AUDIO_IDS[1])))[0] == 200
    assert len(vidgo.tasks) == 3


async def test_a_failed_separation_does_not_use_up_the_track(
    http: aiohttp.ClientSession, vidgo: FakeVidgo
) -> None:
    _, body = await submit(http, vidgo, separation())
    await vidgo.fail(body["data"]["task_id"])
    assert (await submit(http, vidgo, separation()))[0] == 200


async def test_uploads_are_not_limited_to_once(
    http: aiohttp.ClientSession, vidgo: FakeVidgo
) -> None:
    assert (await submit(http, vidgo, upload()))[0] == 200
    assert (await submit(http, vidgo, upload()))[0] == 200


async def test_added_generation_can_be_separated(
    http: aiohttp.ClientSession, vidgo: FakeVidgo
) -> None:
    vidgo.add_generation("GEN2", [{"audio_id": "a-1", "title": "Two", "duration": 60.0}])
    body = separation(audio_id="a-1")
    body["input"]["task_id"] = "GEN2"
    assert (await submit(http, vidgo, body))[0] == 200
    status, reply = await detail(http, vidgo, "GEN2")
    assert status == 200 and reply["data"]["files"][0]["title"] == "Two"


@pytest.mark.parametrize(
    ("url", "allow_http", "ok"),
    [
        ("https://hooks.example.org/cb", False, True),
        ("http://hooks.example.org/cb", False, False),
        ("https://127.0.0.1/cb", False, False),
        ("https://10.1.2.3/cb", False, False),
        ("https://192.168.0.9/cb", False, False),
        ("https://localhost/cb", False, False),
        ("https://hooks.example.org/" + "a" * 2048, False, False),
        ("ftp://hooks.example.org/cb", True, False),
        ("http://127.0.0.1:9/cb", True, True),
        ("https://hooks.example.org/" + "a" * 2048, True, False),
    ],
)
async def test_callback_url_is_validated(
    http: aiohttp.ClientSession, url: str, allow_http: bool, ok: bool
) -> None:
    async with FakeVidgo(KEY, allow_http_callbacks=allow_http) as fake:
        status, _ = await submit(http, fake, separation(callback_url=url))
    assert (status == 200) is ok
    if not ok:
        assert status == 400


# -- detail ----------------------------------------------------------------------------------------


async def test_detail_of_an_unknown_task_is_404(
    http: aiohttp.ClientSession, vidgo: FakeVidgo
) -> None:
    status, body = await detail(http, vidgo, "task-unified-0-nothing")
    assert status == 404
    assert body == {"code": 404, "msg": "task not found", "data": None}


async def test_task_goes_not_started_running_finished(
    http: aiohttp.ClientSession, vidgo: FakeVidgo
) -> None:
    _, body = await submit(http, vidgo, separation())
    task_id = body["data"]["task_id"]
    seen = []
    for step in ("submitted", "running", "finished"):
        if step == "running":
            vidgo.set_running(task_id)
        elif step == "finished":
            await vidgo.finish(task_id)
        _, reply = await detail(http, vidgo, task_id)
        seen.append((reply["data"]["status"], len(reply["data"]["files"])))
    assert seen == [("not_started", 0), ("running", 0), ("finished", 1)]
    assert vidgo.tasks[task_id].detail_calls == 3
    assert reply["data"]["error_message"] is None
    assert reply["data"]["task_id"] == task_id


@pytest.mark.parametrize(
    ("body", "field", "keys"),
    [
        (separation(), "separate_vocals", ["vocal_url", "instrumental_url"]),
        (separation("stem-split"), "stem_split", list(STEM_SPLIT_KEYS)),
        (upload(), "vocal_removal", ["bass", "drums", "piano", "guitar", "vocals", "other"]),
        (upload(output_type="drums"), "vocal_removal", ["drums"]),
    ],
)
async def test_finished_result_is_a_json_string_under_the_published_field(
    http: aiohttp.ClientSession,
    vidgo: FakeVidgo,
    body: dict[str, Any],
    field: str,
    keys: list[str],
) -> None:
    _, reply = await submit(http, vidgo, body)
    task_id = reply["data"]["task_id"]
    await vidgo.finish(task_id)
    _, reply = await detail(http, vidgo, task_id)
    [entry] = reply["data"]["files"]
    assert list(entry) == [field]
    assert isinstance(entry[field], str)
    result = json.loads(entry[field])
    assert list(result) == keys
    for url in result.values():
        assert url.startswith(f"{vidgo.base_url}/files/{task_id}/")
        async with http.get(url) as resp:
            assert resp.status == 200
            assert resp.content_type == "audio/mpeg"
            # A real MP3 of that stem (each stem its own sound; see tests.fakes.audio).
            stem = url.rsplit("/", 1)[1].removesuffix(".mp3")
            assert await resp.read() == stem_mp3(stem)


async def test_generate_midi_returns_notes_as_a_json_string(
    http: aiohttp.ClientSession, vidgo: FakeVidgo
) -> None:
    _, reply = await submit(http, vidgo, separation())
    separation_task = reply["data"]["task_id"]
    midi = {"model": "generate-midi", "input": {"task_id": separation_task}}
    # Only a finished separation has notes to read.
    status, _ = await submit(http, vidgo, midi)
    assert status == 404
    await vidgo.finish(separation_task)
    status, reply = await submit(http, vidgo, midi)
    assert status == 200 and reply["data"]["status"] == "not_started"
    midi_task = reply["data"]["task_id"]
    _, running = await detail(http, vidgo, midi_task)
    assert running["data"]["files"] == []
    credits = vidgo.credits
    await vidgo.finish(midi_task)
    assert vidgo.credits == credits - 5
    _, done = await detail(http, vidgo, midi_task)
    [entry] = done["data"]["files"]
    assert list(entry) == ["midi_data"] and isinstance(entry["midi_data"], str)
    notes = json.loads(entry["midi_data"])
    assert notes["state"] == "complete"
    assert notes["instruments"] == [dict(i) for i in MIDI_INSTRUMENTS]
    assert parse_detail(done).files == (entry,)


async def test_generate_midi_refuses_bad_inputs_and_can_come_back_empty(
    http: aiohttp.ClientSession, vidgo: FakeVidgo
) -> None:
    for inp in ({}, {"task_id": ""}, {"task_id": 5}):
        status, _ = await submit(http, vidgo, {"model": "generate-midi", "input": inp})
        assert status == 400
    # A generation task is not a separation.
    status, _ = await submit(
        http, vidgo, {"model": "generate-midi", "input": {"task_id": GENERATION_TASK_ID}}
    )
    assert status == 404
    _, reply = await submit(http, vidgo, separation())
    await vidgo.finish(reply["data"]["task_id"])
    vidgo.empty_midi = True
    _, reply = await submit(
        http, vidgo, {"model": "generate-midi", "input": {"task_id": reply["data"]["task_id"]}}
    )
    await vidgo.finish(reply["data"]["task_id"])
    _, done = await detail(http, vidgo, reply["data"]["task_id"])
    [entry] = done["data"]["files"]
    assert json.loads(entry["midi_data"]) == {"state": "complete", "instruments": []}


async def test_stem_files_of_unfinished_tasks_are_404(
    http: aiohttp.ClientSession, vidgo: FakeVidgo
) -> None:
    _, reply = await submit(http, vidgo, separation())
    task_id = reply["data"]["task_id"]
    async with http.get(f"{vidgo.base_url}/files/{task_id}/vocals.mp3") as resp:
        assert resp.status == 404
    await vidgo.finish(task_id)
    async with http.get(f"{vidgo.base_url}/files/{task_id}/drums.mp3") as resp:
        assert resp.status == 404  # separate-vocals makes no drums


async def test_fault_switches_change_the_shape_of_the_detail(
    http: aiohttp.ClientSession, vidgo: FakeVidgo
) -> None:
    _, reply = await submit(http, vidgo, separation())
    task_id = reply["data"]["task_id"]
    await vidgo.finish(task_id)
    vidgo.vocal_removal_variant = True
    vidgo.spaced_keys = True
    _, reply = await detail(http, vidgo, task_id)
    result = result_of(reply, "vocal_removal")
    assert list(result) == ["vocal_url ", "instrumental_url  "]
    vidgo.flat_bodies = True
    _, flat = await detail(http, vidgo, task_id)
    assert "code" not in flat and flat["task_id"] == task_id
    assert parse_detail(flat).stems == parse_detail(reply).stems


async def test_generation_detail_and_files(http: aiohttp.ClientSession, vidgo: FakeVidgo) -> None:
    status, reply = await detail(http, vidgo, GENERATION_TASK_ID)
    assert status == 200 and reply["data"]["status"] == "finished"
    ids = [entry["audio_id"] for entry in reply["data"]["files"]]
    assert ids == list(GENERATION_AUDIO_IDS)
    first = reply["data"]["files"][0]
    # The same path shape as storage.vidgo.ai links (§15).
    assert re.search(
        rf"/audio/{GENERATION_TASK_ID}/[^/]+_audio_{GENERATION_AUDIO_IDS[0]}\.mp3$",
        first["audio_url"],
    )
    async with http.get(first["audio_url"]) as resp:
        assert resp.status == 200 and resp.content_type == "audio/mpeg"
    async with http.get(first["image_url"]) as resp:
        assert resp.status == 200 and resp.content_type == "image/jpeg"


async def test_balance_is_charged_only_for_finished_tasks(
    http: aiohttp.ClientSession, vidgo: FakeVidgo
) -> None:
    _, ok = await submit(http, vidgo, separation())
    _, bad = await submit(http, vidgo, upload())
    await vidgo.finish(ok["data"]["task_id"])
    await vidgo.fail(bad["data"]["task_id"])
    async with http.get(f"{vidgo.base_url}/api/user/balance", headers=AUTH) as resp:
        body = await resp.json()
    assert body["code"] == 200
    assert body["data"]["credits_amount"] == DEFAULT_CREDITS - 10


async def test_unreachable_audio_fails_the_upload(
    http: aiohttp.ClientSession, vidgo: FakeVidgo
) -> None:
    _, reply = await submit(http, vidgo, upload("https://unreachable.example/a.mp3"))
    task_id = reply["data"]["task_id"]
    await vidgo.finish(task_id)
    _, reply = await detail(http, vidgo, task_id)
    assert reply["data"]["status"] == "failed"
    assert reply["data"]["files"] == []
    assert reply["data"]["error_message"] == UNREACHABLE_MESSAGE


# -- callbacks -------------------------------------------------------------------------------------


async def test_callback_is_retried_after_a_failure(
    http: aiohttp.ClientSession, vidgo: FakeVidgo, receiver: Receiver
) -> None:
    receiver.statuses = [503]
    _, reply = await submit(http, vidgo, separation(callback_url=receiver.url))
    task_id = reply["data"]["task_id"]
    await vidgo.finish(task_id)
    await vidgo.wait_for_callbacks(2)
    assert vidgo.callbacks_sent == [(task_id, 503), (task_id, 200)]
    assert receiver.content_types == ["application/json", "application/json"]
    _, now = await detail(http, vidgo, task_id)
    assert receiver.bodies[1] == now


async def test_callback_gives_up_after_the_retry_schedule(
    http: aiohttp.ClientSession, vidgo: FakeVidgo, receiver: Receiver
) -> None:
    receiver.statuses = [500] * 10
    _, reply = await submit(http, vidgo, separation(callback_url=receiver.url))
    task_id = reply["data"]["task_id"]
    await vidgo.fail(task_id, "nope")
    await vidgo.wait_for_callbacks(4)
    await asyncio.sleep(0.2)
    assert vidgo.callbacks_sent == [(task_id, 500)] * 4  # first try + 3 retries
    assert receiver.bodies[0]["data"]["status"] == "failed"
    assert receiver.bodies[0]["data"]["error_message"] == "nope"


async def test_callback_to_a_dead_receiver_records_no_status(
    http: aiohttp.ClientSession,
) -> None:
    async with FakeVidgo(KEY, callback_retry_delays=(0.01,)) as fake:
        _, reply = await submit(http, fake, separation(callback_url="http://127.0.0.1:9/cb"))
        task_id = reply["data"]["task_id"]
        await fake.finish(task_id)
        await fake.wait_for_callbacks(2)
        assert fake.callbacks_sent == [(task_id, None), (task_id, None)]


async def test_duplicate_callbacks(
    http: aiohttp.ClientSession, vidgo: FakeVidgo, receiver: Receiver
) -> None:
    vidgo.duplicate_callbacks = 2
    _, reply = await submit(http, vidgo, separation(callback_url=receiver.url))
    await vidgo.finish(reply["data"]["task_id"])
    await receiver.wait_for(3)
    await asyncio.sleep(0.1)
    assert len(receiver.bodies) == 3
    assert receiver.bodies[0] == receiver.bodies[1] == receiver.bodies[2]


async def test_flat_callback_body(
    http: aiohttp.ClientSession, vidgo: FakeVidgo, receiver: Receiver
) -> None:
    vidgo.flat_bodies = True
    _, reply = await submit(http, vidgo, separation(callback_url=receiver.url))
    await vidgo.finish(reply["data"]["task_id"])
    await receiver.wait_for(1)
    assert "code" not in receiver.bodies[0]
    assert receiver.bodies[0]["status"] == "finished"
    assert list(parse_detail(receiver.bodies[0]).stems) == ["vocals", "instrumental"]


async def test_no_callback_when_switched_off(
    http: aiohttp.ClientSession, vidgo: FakeVidgo, receiver: Receiver
) -> None:
    vidgo.send_callbacks = False
    _, reply = await submit(http, vidgo, separation(callback_url=receiver.url))
    await vidgo.finish(reply["data"]["task_id"])
    await asyncio.sleep(0.2)
    assert receiver.bodies == [] and vidgo.callbacks_sent == []


async def test_tampered_callback_disagrees_with_the_detail(
    http: aiohttp.ClientSession, vidgo: FakeVidgo, receiver: Receiver
) -> None:
    vidgo.tamper_callbacks = True
    _, reply = await submit(http, vidgo, separation(callback_url=receiver.url))
    task_id = reply["data"]["task_id"]
    await vidgo.fail(task_id, "really failed")
    await receiver.wait_for(1)
    forged = receiver.bodies[0]
    assert forged["data"]["status"] == "finished"
    assert result_of(forged, "separate_vocals") == TAMPERED_STEMS
    _, truth = await detail(http, vidgo, task_id)
    assert truth["data"]["status"] == "failed"
    # The parser drops the script and data URLs but cannot know evil.example is evil:
    # only re-reading the detail protects the bot.
    assert parse_detail(forged).stems == {"instrumental": TAMPERED_STEMS["instrumental_url"]}


async def test_auto_finish(http: aiohttp.ClientSession, receiver: Receiver) -> None:
    async with FakeVidgo(KEY, auto_finish_after=0.1) as fake:
        _, reply = await submit(http, fake, separation(callback_url=receiver.url))
        task_id = reply["data"]["task_id"]
        assert reply["data"]["status"] == "not_started"
        assert fake.tasks[task_id].status == "running"
        await receiver.wait_for(1)
        assert fake.tasks[task_id].status == "finished"
        assert receiver.bodies[0]["data"]["status"] == "finished"


# -- faults, control and lifecycle -----------------------------------------------------------------


async def test_fail_next_then_clear(http: aiohttp.ClientSession, vidgo: FakeVidgo) -> None:
    vidgo.fail_next(2, 429, retry_after=3, path_prefix="/api/user/balance")
    async with http.get(f"{vidgo.base_url}/api/user/balance", headers=AUTH) as resp:
        assert resp.status == 429 and resp.headers["Retry-After"] == "3"
        assert (await resp.json())["code"] == 429
    # Other paths are untouched.
    assert (await detail(http, vidgo, GENERATION_TASK_ID))[0] == 200
    vidgo.fail_next(0)
    async with http.get(f"{vidgo.base_url}/api/user/balance", headers=AUTH) as resp:
        assert resp.status == 200


async def test_malformed_and_reset_faults(http: aiohttp.ClientSession, vidgo: FakeVidgo) -> None:
    vidgo.malformed_next(1)
    async with http.get(f"{vidgo.base_url}/api/user/balance", headers=AUTH) as resp:
        assert resp.status == 200
        with pytest.raises(ValueError):
            json.loads(await resp.text())
    vidgo.reset_next(1)
    # A POST: aiohttp would quietly resend a GET on a fresh connection.
    with pytest.raises(aiohttp.ClientConnectionError):
        await submit(http, vidgo, separation())
    assert vidgo.requests == [("GET", "/api/user/balance"), ("POST", "/api/generate/submit")]
    assert vidgo.tasks == {}


async def test_slow_next_answers_late_but_acts_at_once(
    http: aiohttp.ClientSession, vidgo: FakeVidgo
) -> None:
    vidgo.slow_next(1, 0.3, path_prefix="/api/generate/submit")
    started = time.monotonic()
    pending = asyncio.ensure_future(submit(http, vidgo, separation()))
    await vidgo.wait_for_task(1)
    assert not pending.done()
    status, _ = await pending
    assert status == 200 and time.monotonic() - started >= 0.3


async def test_wait_for_task_times_out(vidgo: FakeVidgo) -> None:
    with pytest.raises(TimeoutError):
        await vidgo.wait_for_task(1, timeout=0.05)


async def test_control_endpoints(
    http: aiohttp.ClientSession, vidgo: FakeVidgo, receiver: Receiver
) -> None:
    _, one = await submit(http, vidgo, separation(callback_url=receiver.url))
    _, two = await submit(http, vidgo, upload())
    first, second = one["data"]["task_id"], two["data"]["task_id"]
    base = vidgo.base_url
    async with http.post(f"{base}/_control/faults", json={"flat_bodies": True}) as resp:
        assert resp.status == 200 and (await resp.json())["flat_bodies"] is True
    async with http.post(f"{base}/_control/faults", json={"flat_bodies": "yes"}) as resp:
        assert resp.status == 400
    async with http.post(f"{base}/_control/faults", json={"nonsense": 1}) as resp:
        assert resp.status == 400
    async with http.post(
        f"{base}/_control/faults", json={"fail_next": {"n": 1, "status": 503}}
    ) as resp:
        assert resp.status == 200
    assert (await detail(http, vidgo, first))[0] == 503
    async with http.post(f"{base}/_control/finish/{first}") as resp:
        assert resp.status == 200 and (await resp.json())["status"] == "finished"
    async with http.post(f"{base}/_control/fail/{second}", json={"message": "bad audio"}) as resp:
        assert resp.status == 200
    async with http.post(f"{base}/_control/finish/unknown") as resp:
        assert resp.status == 404
    async with http.get(f"{base}/_control/tasks") as resp:
        tasks = await resp.json()
    assert [(t["task_id"], t["status"], t["error_message"]) for t in tasks] == [
        (first, "finished", None),
        (second, "failed", "bad audio"),
    ]
    await receiver.wait_for(1)
    assert "code" not in receiver.bodies[0]  # flat_bodies reached the callback too
    # Control requests are not part of the API traffic the tests count.
    assert all(not path.startswith("/_control") for _, path in vidgo.requests)


async def test_close_cancels_pending_callbacks(
    http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    fake = FakeVidgo(KEY, callback_retry_delays=(30.0,))
    await fake.start()
    receiver.statuses = [500]
    _, reply = await submit(http, fake, separation(callback_url=receiver.url))
    await fake.finish(reply["data"]["task_id"])
    await receiver.wait_for(1)
    started = time.monotonic()
    await fake.close()
    assert time.monotonic() - started < 2.0
    assert fake._background == set()
    await fake.close()  # twice is fine


async def test_runs_standalone_from_the_command_line(http: aiohttp.ClientSession) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.vidgo",
        "--port",
        "0",
        "--api-key",
        "cli-key",
        "--auto-finish",
        "0.1",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(20):
            line = (await proc.stdout.readline()).decode()
        base = line.strip().removeprefix("FAKE_VIDGO_URL=")
        assert base.startswith("http://127.0.0.1:")
        headers = {"Authorization": "Bearer cli-key"}
        async with http.post(f"{base}/api/generate/submit", json=upload(), headers=headers) as r:
            task_id = (await r.json())["data"]["task_id"]
        async with asyncio.timeout(5):
            while True:
                async with http.get(
                    f"{base}/api/generate/detail/music",
                    params={"task_id": task_id},
                    headers=headers,
                ) as r:
                    if (await r.json())["data"]["status"] == "finished":
                        break
                await asyncio.sleep(0.05)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            _, stderr = await proc.communicate()
    assert proc.returncode == 0, stderr.decode()
    assert "fake Vidgo listening on" in stderr.decode()


# -- get-timestamped-lyrics ------------------------------------------------------------------------


def lyrics_request(
    audio_id: str = GENERATION_AUDIO_IDS[0], task_id: str = GENERATION_TASK_ID
) -> dict[str, Any]:
    return {"model": "get-timestamped-lyrics", "input": {"task_id": task_id, "audio_id": audio_id}}


@pytest.mark.parametrize(
    ("shape", "field", "as_string"),
    [
        ("detail_string", "timestampe_lyrics", True),
        ("detail_string_alt", "timestamped_lyrics", True),
        ("detail_object", "timestampe_lyrics", False),
    ],
)
async def test_lyrics_arrive_in_the_configured_detail_shape(
    http: aiohttp.ClientSession, vidgo: FakeVidgo, shape: str, field: str, as_string: bool
) -> None:
    vidgo.lyrics_shape = shape
    status, body = await submit(http, vidgo, lyrics_request())
    assert status == 200 and body["data"]["status"] == "not_started"
    task_id = body["data"]["task_id"]
    _, before = await detail(http, vidgo, task_id)
    assert before["data"]["files"] == []
    await vidgo.finish(task_id)
    _, after = await detail(http, vidgo, task_id)
    [entry] = after["data"]["files"]
    value = entry[field]
    assert isinstance(value, str) is as_string
    lyrics = json.loads(value) if as_string else value
    assert lyrics == fake_lyrics()
    assert any(w["success"] is False for w in lyrics["aligned_words"])
    assert lyrics["waveform_data"]


async def test_lyrics_in_the_submit_reply(http: aiohttp.ClientSession, vidgo: FakeVidgo) -> None:
    vidgo.lyrics_shape = "submit"
    status, body = await submit(http, vidgo, lyrics_request())
    assert status == 200
    data = body["data"]
    assert data["status"] == "finished" and data["aligned_words"] == fake_lyrics()["aligned_words"]
    # Polling the task still works, with the result under the documented field.
    _, polled = await detail(http, vidgo, data["task_id"])
    assert json.loads(polled["data"]["files"][0]["timestampe_lyrics"]) == fake_lyrics()


async def test_an_instrumental_finishes_with_no_words(
    http: aiohttp.ClientSession, vidgo: FakeVidgo
) -> None:
    _, body = await submit(http, vidgo, lyrics_request(INSTRUMENTAL_AUDIO_ID, INSTRUMENTAL_TASK_ID))
    task_id = body["data"]["task_id"]
    await vidgo.finish(task_id)
    _, after = await detail(http, vidgo, task_id)
    lyrics = json.loads(after["data"]["files"][0]["timestampe_lyrics"])
    assert lyrics["aligned_words"] == [] and lyrics["waveform_data"]


async def test_lyrics_can_be_read_many_times_and_need_a_known_track(
    http: aiohttp.ClientSession, vidgo: FakeVidgo
) -> None:
    for _ in range(2):
        status, _ = await submit(http, vidgo, lyrics_request())
        assert status == 200
    status, _ = await submit(http, vidgo, lyrics_request("00000000-0000-0000-0000-000000000000"))
    assert status == 404
    vidgo.lyrics_shape = "nonsense"
    status, _ = await submit(http, vidgo, lyrics_request())
    assert status == 500


async def test_lyrics_shape_is_a_control_switch(
    http: aiohttp.ClientSession, vidgo: FakeVidgo
) -> None:
    async with http.post(f"{vidgo.base_url}/_control/faults", json={"lyrics_shape": "submit"}) as r:
        assert r.status == 200
    assert vidgo.lyrics_shape == "submit"
    async with http.post(f"{vidgo.base_url}/_control/faults", json={"lyrics_shape": 3}) as r:
        assert r.status == 400
