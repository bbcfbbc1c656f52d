"""A fake Vidgo music API: a real aiohttp server on 127.0.0.1 that behaves as Vidgo does.

It implements what Stemcord uses, as ``docs/vidgo-api.md`` describes it ("§N" refers to that
document: §3, §4, §5, §12, §16): submit for the three separation models, ``generate-midi``
(§3.4, as a draft of Vidgo's documentation describes it) and
``get-timestamped-lyrics``, Query Music Detail, the balance, the stem files themselves, and
callbacks with Vidgo's retry schedule. Tests drive task progress (:meth:`FakeVidgo.finish`,
:meth:`FakeVidgo.fail`) and faults (the switches below and ``*_next`` methods) in process, or
over HTTP through ``/_control/...`` when the bot runs as another process.

Choices where Vidgo's documentation is silent (listed in §12):

* error bodies are ``{"code": <HTTP status>, "msg": "...", "data": null}``;
* a separate-vocals/stem-split input naming an unknown generation or audio id is a 404;
* the once-per-track rule applies per ``(model, audio_id)`` to tasks that did not fail, and
  not to ``upload-and-separate-vocals``;
* credits are charged when a task finishes (:data:`CREDIT_COST`, invented prices);
* ``generate-midi`` needs ``input.task_id`` of a finished separation task (404 otherwise); its
  result is ``files[0].midi_data``, a JSON string of :data:`MIDI_INSTRUMENTS` (or of no
  instruments with the ``empty_midi`` switch).
* ``get-timestamped-lyrics`` answers with the result where :attr:`FakeVidgo.lyrics_shape` says
  (:data:`LYRICS_SHAPES`); a track's words come from :attr:`FakeVidgo.lyrics` (an instrumental
  finishes with no words), and it has no once-per-track rule.

The stems a finished separation links to are real MP3 files (:func:`tests.fakes.audio.stem_mp3`:
a distinct tone or rhythm per stem, ``instrumental`` the sum of the accompaniment's sounds, a
few seconds long, made once per process) served from the fake's own host. Downloads of them can
be made to fail (:meth:`FakeVidgo.media_fault_next`): a redirect to a host off the bot's list,
a file over any sensible size cap, a body cut off mid-way, or a download held until the test
releases it; ``stem_host`` makes the result's links name another host altogether.

Run it alone with ``python -m tests.fakes.vidgo --port 8900 --api-key KEY --auto-finish 3``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import logging
import math
import secrets
import signal
import string
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from tests.fakes.audio import FAKE_STEM_SECONDS, stem_mp3

log = logging.getLogger(__name__)

SEPARATE_VOCALS = "separate-vocals"
STEM_SPLIT = "stem-split"
UPLOAD_AND_SEPARATE = "upload-and-separate-vocals"
GENERATE_MIDI = "generate-midi"
TIMESTAMPED_LYRICS = "get-timestamped-lyrics"
SEPARATION_MODELS = (SEPARATE_VOCALS, STEM_SPLIT, UPLOAD_AND_SEPARATE)
MODELS = (*SEPARATION_MODELS, GENERATE_MIDI, TIMESTAMPED_LYRICS)
# Where a lyrics result is put (§16): a JSON string under Vidgo's field name or the corrected
# one, an object, or the fields directly in the submit reply (the task is then finished at once).
LYRICS_SHAPES = ("detail_string", "detail_string_alt", "detail_object", "submit")

# The fixture generation every fake starts with (ids from the published examples, §3.1).
GENERATION_TASK_ID = "8FDN1I7M7Q68DDG8"
GENERATION_AUDIO_IDS = (
    "62e4542a-73be-44e1-b397-7716ee7505c6",
    "8e755734-a840-4c13-beac-b9f1044979ca",
)
GENERATION_TITLES = ("Harbour Lights", "Harbour Lights (Reprise)")
GENERATION_DURATIONS = (184.32, 201.6)
# File names follow the storage.vidgo.ai shape of §15, so link parsing can be tested on them.
GENERATION_FILE_STEM = "1764061200_k3v9qz1a_tmp7f2c"
# A second generation whose only track is an instrumental (no words to time).
INSTRUMENTAL_TASK_ID = "INSTR7M7Q68DDG80"
INSTRUMENTAL_AUDIO_ID = "0b7f0c1e-5d2a-4f8e-9a61-3c2d8e4f5a10"
INSTRUMENTAL_TITLE = "Harbour Lights (Instrumental)"

# The keys inside each model's JSON-string result (§4), in Vidgo's order.
SEPARATE_VOCALS_KEYS = ("vocal_url", "instrumental_url")
STEM_SPLIT_KEYS = (
    "vocal_url",
    "backing_vocals_url",
    "bass_url",
    "brass_url",
    "drums_url",
    "fx_url",
    "guitar_url",
    "keyboard_url",
    "percussion_url",
    "strings_url",
    "synth_url",
    "woodwinds_url",
    "piano_url",
)
UPLOAD_KEYS = ("bass", "drums", "piano", "guitar", "vocals", "other")
RESULT_FIELD = {
    SEPARATE_VOCALS: "separate_vocals",
    STEM_SPLIT: "stem_split",
    UPLOAD_AND_SEPARATE: "vocal_removal",
}
# What a finished generate-midi task returns: a few instruments in the note shape of §3.4.
MIDI_INSTRUMENTS: tuple[dict[str, Any], ...] = (
    {
        "name": "Vocals",
        "notes": [
            {"pitch": 64, "start": 0.5, "end": 1.0, "velocity": 0.8},
            {"pitch": 67, "start": 1.0, "end": 1.75, "velocity": 0.9},
            {"pitch": 69, "start": 1.75, "end": 2.5, "velocity": 1},
        ],
    },
    {
        "name": "Drums",
        "notes": [
            {"pitch": 36, "start": 0.0, "end": 0.1, "velocity": 1},
            {"pitch": 38, "start": 0.5, "end": 0.6, "velocity": 0.7},
            {"pitch": 42, "start": 0.036, "end": 0.182, "velocity": 0.5},
        ],
    },
    {
        "name": "Bass",
        "notes": [
            {"pitch": 40, "start": 0.0, "end": 1.0, "velocity": 0.6},
            {"pitch": 43, "start": 1.0, "end": 2.0, "velocity": 0.6},
        ],
    },
)
UPLOAD_MODEL_NAMES = frozenset({"base", "enhanced", "instrumental"})
UPLOAD_OUTPUT_TYPES = frozenset({"general", *UPLOAD_KEYS})
CREDIT_COST = {
    SEPARATE_VOCALS: 10,
    STEM_SPLIT: 50,
    UPLOAD_AND_SEPARATE: 10,
    GENERATE_MIDI: 5,
    TIMESTAMPED_LYRICS: 2,
}
DEFAULT_CREDITS = 17276
MAX_CALLBACK_URL_CHARS = 2048
UNREACHABLE_MESSAGE = "could not download source audio"
# Switches settable as attributes or through POST /_control/faults.
SWITCHES: dict[str, type] = {
    "duplicate_callbacks": int,
    "flat_bodies": bool,
    "vocal_removal_variant": bool,
    "spaced_keys": bool,
    "send_callbacks": bool,
    "tamper_callbacks": bool,
    "empty_midi": bool,
    "lyrics_shape": str,
    "echo_input": bool,
    "stem_host": str,
    "stem_seconds": float,
}
# How a download of a stem file can be made to fail (media_fault_next).
MEDIA_FAULTS = ("redirect_off_list", "oversized", "truncated", "stall")
# The host a redirect off the list points at: the fake itself, under a name no bot allows.
OFF_LIST_HOST = "localhost"
OVERSIZED_BYTES = 64 * 1024 * 1024
# Stands for FakeTask.raw_files given as JSON text, until the reply is written.
RAW_MARK = "__raw_files__"
# How :meth:`FakeVidgo.lose_answer_next` loses the answer to a request it acted on.
LOSS_MODES = ("timeout", "500", "502", "504", "reset", "garbage")
TAMPERED_STEMS = {
    "vocal_url": "javascript:alert(1)",
    "instrumental_url": "https://evil.example/instrumental.mp3",
    "drums_url": "data:audio/mpeg;base64,AAAA",
}

_ID_ALPHABET = string.ascii_lowercase + string.digits


def fake_audio(label: str) -> bytes:
    """A few bytes of audio/mpeg (an empty ID3 tag and four MPEG frames) tagged with ``label``.

    The label sits in the first frame's data, so a test can tell which file it received.
    """
    id3 = b"ID3\x03\x00\x00\x00\x00\x00\x00"
    # MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, no padding: 417-byte frames.
    header = b"\xff\xfb\x90\x64"
    tag = label.encode()[:400]
    first = header + tag + bytes(413 - len(tag))
    return id3 + first + (header + bytes(413)) * 3


def fake_cover(label: str) -> bytes:
    """A few bytes that start and end like a JPEG, tagged with ``label``."""
    return b"\xff\xd8\xff\xe0" + label.encode()[:200] + b"\xff\xd9"


# The sung words of the fixture song: (text as Vidgo sends it, start, end, aligned).
# Section markers and newlines ride inside words as in Vidgo's examples; two are unaligned.
LYRICS_WORDS: tuple[tuple[str, float, float, bool], ...] = (
    ("[Verse]\nLights ", 12.4, 12.9, True),
    ("on ", 12.9, 13.1, True),
    ("the ", 0.0, 0.0, False),
    ("water\n", 13.6, 14.5, True),
    ("Shine ", 15.0, 15.5, True),
    ("on ", 15.5, 15.8, True),
    ("me\n", 15.8, 16.9, True),
    ("[Chorus]\nHarbour ", 24.0, 24.6, True),
    ("lights, ", 24.6, 25.3, True),
    ("(ooh) ", 0.0, 0.0, False),
    ("guide ", 26.2, 26.6, True),
    ("me ", 26.6, 26.9, True),
    ("home\n", 26.9, 28.2, True),
)


def fake_waveform(points: int = 1200) -> list[float]:
    """A deterministic waveform: a swelling sine, louder in the chorus."""
    return [
        round(math.sin(i / 7.0) * (0.3 + 0.7 * (i / points)) * (1.5 if i > points // 2 else 1), 4)
        for i in range(points)
    ]


def fake_lyrics(words: tuple[tuple[str, float, float, bool], ...] = LYRICS_WORDS) -> dict[str, Any]:
    """A get-timestamped-lyrics result object (§16) with these words."""
    return {
        "aligned_words": [
            {
                "word": text,
                "start_s": start,
                "end_s": end,
                "success": aligned,
                "palign": 0.93 if aligned else 0.0,
            }
            for text, start, end, aligned in words
        ],
        "waveform_data": fake_waveform(),
        "hoot_cer": 0.087,
        "is_streamed": False,
    }


def stem_file_name(key: str) -> str:
    """The stem name a result key's file is stored under (``vocal_url`` -> ``vocals``)."""
    name = key.strip().removesuffix("_url")
    return "vocals" if name == "vocal" else name


@dataclass
class FakeTask:
    """A task submitted to the fake."""

    task_id: str
    model: str
    input: dict[str, Any]
    callback_url: str | None
    status: str = "not_started"
    error_message: str | None = None
    created_time: datetime = field(default_factory=lambda: datetime.now(UTC))
    detail_calls: int = 0
    # Result key (as Vidgo names it, e.g. "vocal_url") -> URL, set when the task finishes.
    result: dict[str, str] = field(default_factory=dict)
    # A finished generate-midi task's notes (sent as the JSON string ``midi_data``).
    midi: dict[str, Any] | None = None
    # A get-timestamped-lyrics result object, set when the task finishes.
    lyrics: dict[str, Any] | None = None
    # Tests may replace a finished task's ``files`` with anything at all (odd data); a string
    # is sent as raw JSON text.
    raw_files: Any = None

    @property
    def is_terminal(self) -> bool:
        """Finished or failed."""
        return self.status in ("finished", "failed")

    def as_json(self) -> dict[str, Any]:
        """A JSON-able view for /_control/tasks."""
        return {
            "task_id": self.task_id,
            "model": self.model,
            "input": self.input,
            "callback_url": self.callback_url,
            "status": self.status,
            "error_message": self.error_message,
            "created_time": _vidgo_time(self.created_time),
            "detail_calls": self.detail_calls,
            "result": self.result,
            "lyrics": self.lyrics,
        }


@dataclass
class _Fault:
    remaining: int
    path_prefix: str | None
    status: int = 500
    retry_after: float | None = None
    delay: float = 0.0
    mode: str = ""

    def matches(self, path: str) -> bool:
        return self.remaining > 0 and (
            self.path_prefix is None or path.startswith(self.path_prefix)
        )


class FakeVidgo:
    """An in-process Vidgo on a real socket. Use ``async with FakeVidgo() as vidgo:``.

    ``auto_finish_after`` (seconds) makes every new task run at once and finish (with its
    callback) after that delay, for standalone use. ``callback_retry_delays`` are the pauses
    before callback retries (Vidgo: 1, 2, 4 s). ``allow_http_callbacks`` also accepts plain
    http and private/loopback callback URLs, which tests need; Vidgo itself refuses them.
    """

    def __init__(
        self,
        api_key: str = "test-vidgo-key",
        *,
        auto_finish_after: float | None = None,
        callback_retry_delays: tuple[float, ...] = (1.0, 2.0, 4.0),
        allow_http_callbacks: bool = True,
    ) -> None:
        self.api_key = api_key
        self.auto_finish_after = auto_finish_after
        self.callback_retry_delays = callback_retry_delays
        self.allow_http_callbacks = allow_http_callbacks
        self.callback_timeout = 10.0
        self.credits = DEFAULT_CREDITS
        self.tasks: dict[str, FakeTask] = {}
        self.generations: dict[str, list[dict[str, Any]]] = {}
        self.callbacks_sent: list[tuple[str, int | None]] = []
        self.requests: list[tuple[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        # Fault switches (see SWITCHES).
        self.duplicate_callbacks = 0
        self.flat_bodies = False
        self.vocal_removal_variant = False
        self.spaced_keys = False
        self.send_callbacks = True
        self.tamper_callbacks = False
        self.empty_midi = False
        self.lyrics_shape = "detail_string"
        # Vidgo's detail replies are not documented to echo the task's model and input.
        self.echo_input = False
        # Answers lost after acting (lose_answer_next).
        self.lost_answers = 0
        # The host the links of finished separations name ("" = this fake's own address),
        # and how long their stems are.
        self.stem_host = ""
        self.stem_seconds = FAKE_STEM_SECONDS
        # Faults of stem downloads: mode -> [remaining, stem name or None for any].
        self._media_faults: dict[str, list[Any]] = {}
        self._stems_released = asyncio.Event()
        self.stalled: list[str] = []
        # audio_id -> the lyrics result of that track (tests may replace or add entries).
        self.lyrics: dict[str, dict[str, Any]] = {
            audio_id: fake_lyrics() for audio_id in GENERATION_AUDIO_IDS
        }
        self.lyrics[INSTRUMENTAL_AUDIO_ID] = {
            "aligned_words": [],
            "waveform_data": fake_waveform(),
            "hoot_cer": 0.0,
            "is_streamed": False,
        }
        self._faults: dict[str, _Fault] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._task_added = asyncio.Event()
        self._callback_recorded = asyncio.Event()
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self._port: int | None = None
        self._host = "127.0.0.1"
        self.add_generation(GENERATION_TASK_ID, _default_tracks())
        self.add_generation(INSTRUMENTAL_TASK_ID, _instrumental_tracks())

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on ``host:port`` (port 0 picks a free one)."""
        if self._runner is not None:
            raise RuntimeError("FakeVidgo is already started")
        self._closing.clear()
        self._http = aiohttp.ClientSession()
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post("/api/generate/submit", self._submit)
        app.router.add_get("/api/generate/detail/music", self._detail)
        app.router.add_get("/api/user/balance", self._balance)
        app.router.add_get("/files/{task_id}/{name}", self._stem_file)
        app.router.add_get("/audio/{task_id}/{name}", self._generation_file)
        app.router.add_post("/_control/finish/{task_id}", self._control_finish)
        app.router.add_post("/_control/fail/{task_id}", self._control_fail)
        app.router.add_post("/_control/running/{task_id}", self._control_running)
        app.router.add_post("/_control/faults", self._control_faults)
        app.router.add_get("/_control/tasks", self._control_tasks)
        app.router.add_get("/_control/callbacks", self._control_callbacks)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
        self._host = host
        log.info("fake Vidgo listening on %s", self.base_url)

    async def close(self) -> None:
        """Stop background work and the server; safe to call twice."""
        self._closing.set()
        self._stems_released.set()  # nothing stays stalled past the fake's life
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``, once started."""
        if self._port is None:
            raise RuntimeError("FakeVidgo is not started")
        host = self._host if self._host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        return f"http://{host}:{self._port}"

    # -- test API ----------------------------------------------------------------------------

    def add_generation(self, task_id: str, tracks: list[dict[str, object]]) -> None:
        """Seed a finished generation task; ``tracks`` are its ``files`` entries.

        URLs starting with ``/`` are served as URLs on this fake.
        """
        self.generations[task_id] = [dict(track) for track in tracks]

    @property
    def submit_count(self) -> int:
        """Submit requests received (accepted or not)."""
        return sum(1 for m, p in self.requests if m == "POST" and p == "/api/generate/submit")

    @property
    def paid_tasks(self) -> int:
        """Tasks Vidgo charged for: those that finished (credits are charged on success)."""
        return sum(1 for task in self.tasks.values() if task.status == "finished")

    @property
    def upload_model_names(self) -> list[str | None]:
        """The ``input.model_name`` each upload task was submitted with, in order (``None``:
        not sent, so Vidgo's default ``base`` applies)."""
        return [
            task.input.get("model_name")
            for task in self.tasks.values()
            if task.model == UPLOAD_AND_SEPARATE
        ]

    @property
    def detail_count(self) -> int:
        """Detail requests received."""
        return sum(1 for m, p in self.requests if p == "/api/generate/detail/music")

    def set_running(self, task_id: str) -> None:
        """Move a task to ``running`` (no callback: Vidgo sends none for it)."""
        task = self.tasks[task_id]
        if not task.is_terminal:
            task.status = "running"

    async def finish(self, task_id: str, *, callback: bool = True) -> None:
        """Complete a task's processing: ``finished`` with its stems, then the callback.

        An upload whose ``audio_url`` contains ``unreachable`` fails instead, as Vidgo would
        when it cannot fetch the audio. A task already finished or failed is left alone.
        """
        task = self.tasks[task_id]
        if task.is_terminal:
            return
        if task.model == UPLOAD_AND_SEPARATE and "unreachable" in str(task.input.get("audio_url")):
            await self.fail(task_id, UNREACHABLE_MESSAGE, callback=callback)
            return
        task.status = "finished"
        if task.model == GENERATE_MIDI:
            instruments = [] if self.empty_midi else [dict(i) for i in MIDI_INSTRUMENTS]
            task.midi = {"state": "complete", "instruments": instruments}
        elif task.model == TIMESTAMPED_LYRICS:
            task.lyrics = json.loads(json.dumps(self.lyrics.get(task.input["audio_id"], {})))
        else:
            task.result = {key: self._stem_url(task_id, key) for key in _result_keys(task)}
        self.credits -= CREDIT_COST.get(task.model, 0)
        if callback:
            self._schedule_callback(task)

    async def fail(
        self, task_id: str, message: str = "separation failed", *, callback: bool = True
    ) -> None:
        """Fail a task with ``message`` (no charge), then send the callback."""
        task = self.tasks[task_id]
        if task.is_terminal:
            return
        task.status = "failed"
        task.error_message = message
        if callback:
            self._schedule_callback(task)

    def send_callback(self, task_id: str, body: dict[str, Any] | None = None) -> None:
        """Send a callback for ``task_id`` now (default: its current detail body)."""
        task = self.tasks[task_id]
        if task.callback_url is None:
            raise ValueError(f"task {task_id} has no callback_url")
        payload = body if body is not None else self._wrap(self._detail_data(task))
        self._spawn(self._deliver(task_id, task.callback_url, payload))

    def fail_next(
        self,
        n: int,
        status: int = 500,
        *,
        retry_after: float | None = None,
        path_prefix: str | None = None,
    ) -> None:
        """Answer the next ``n`` matching requests with ``status`` (replaces an earlier call)."""
        self._faults["fail"] = _Fault(n, path_prefix, status=status, retry_after=retry_after)

    def slow_next(self, n: int, delay: float, path_prefix: str | None = None) -> None:
        """Answer the next ``n`` matching requests ``delay`` seconds late (after acting on them)."""
        self._faults["slow"] = _Fault(n, path_prefix, delay=delay)

    def lose_answer_next(
        self, n: int, mode: str = "timeout", *, delay: float = 2.0, path_prefix: str | None = None
    ) -> None:
        """Act on the next ``n`` matching requests, then lose the answer (:data:`LOSS_MODES`).

        ``timeout`` answers ``delay`` seconds late, ``500``/``502``/``504`` answer with that
        status, ``reset`` drops the connection, ``garbage`` answers HTTP 200 with invalid JSON
        — each *after* the request was carried out (a submit created its task).
        """
        if mode not in LOSS_MODES:
            raise ValueError(f"mode must be one of {LOSS_MODES}")
        self._faults["lose"] = _Fault(n, path_prefix, delay=delay, mode=mode)

    def media_fault_next(self, n: int, mode: str, stem: str | None = None) -> None:
        """Make the next ``n`` downloads of stem files (of ``stem`` only, if given) fail.

        ``redirect_off_list``: a 302 to the same file on a host no bot allows;
        ``oversized``: the file padded to :data:`OVERSIZED_BYTES`, announced in
        ``Content-Length``; ``truncated``: half the file, then the connection is cut;
        ``stall``: no answer until :meth:`release_stems` (the bot can be killed meanwhile).
        """
        if mode not in MEDIA_FAULTS:
            raise ValueError(f"mode must be one of {MEDIA_FAULTS}")
        self._media_faults[mode] = [n, stem]
        if mode == "stall":
            self._stems_released.clear()

    def release_stems(self) -> None:
        """Let stalled stem downloads (and later ones) be answered."""
        self._stems_released.set()

    def stem_downloads(self, task_id: str, stem: str | None = None) -> int:
        """How many times the files of ``task_id`` (or one stem of it) were asked for."""
        prefix = f"/files/{task_id}/" + (f"{stem}.mp3" if stem else "")
        return sum(1 for m, p in self.requests if m == "GET" and p.startswith(prefix))

    def _media_fault(self, stem: str) -> str | None:
        for mode, fault in self._media_faults.items():
            remaining, only = fault
            if remaining > 0 and (only is None or only == stem):
                fault[0] -= 1
                return mode
        return None

    def malformed_next(self, n: int, path_prefix: str | None = None) -> None:
        """Answer the next ``n`` matching requests HTTP 200 with invalid JSON."""
        self._faults["malformed"] = _Fault(n, path_prefix)

    def reset_next(self, n: int, path_prefix: str | None = None) -> None:
        """Drop the connection of the next ``n`` matching requests without answering."""
        self._faults["reset"] = _Fault(n, path_prefix)

    async def wait_for_task(self, n: int = 1, timeout: float = 5.0) -> list[FakeTask]:
        """Wait until ``n`` tasks were submitted; return the first ``n`` in submit order."""
        async with asyncio.timeout(timeout):
            while len(self.tasks) < n:
                self._task_added.clear()
                await self._task_added.wait()
        return list(self.tasks.values())[:n]

    async def wait_for_callbacks(
        self,
        n: int = 1,
        timeout: float = 5.0,
    ) -> list[tuple[str, int | None]]:
        """Wait until ``n`` callback attempts were made; return them all."""
        async with asyncio.timeout(timeout):
            while len(self.callbacks_sent) < n:
                self._callback_recorded.clear()
                await self._callback_recorded.wait()
        return list(self.callbacks_sent)

    # -- HTTP: the API ---------------------------------------------------------------------

    @web.middleware
    async def _middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        path = request.path
        if path.startswith("/_control/"):
            return await handler(request)
        self.requests.append((request.method, path))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self._take("reset", path):
                _drop_connection(request)
                return web.Response(status=500)
            if self._take("malformed", path):
                return web.Response(
                    status=200,
                    body=b'{"code": 200, "data": {"task_',
                    content_type="application/json",
                )
            fault = self._take("fail", path)
            if fault is not None:
                headers = {}
                if fault.retry_after is not None:
                    headers["Retry-After"] = f"{fault.retry_after:g}"
                return _error(fault.status, "injected failure", headers=headers)
            slow = self._take("slow", path)
            lose = self._take("lose", path)
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                response = _error(exc.status, exc.reason)
            if lose is not None:
                return await self._lost_answer(request, lose)
            if slow is not None:
                # Act first, answer late: the realistic "did my submit happen?" case.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), slow.delay)
            return response
        finally:
            self.in_flight -= 1

    async def _lost_answer(self, request: web.Request, fault: _Fault) -> web.Response:
        self.lost_answers += 1
        if fault.mode == "timeout":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), fault.delay)
            return _error(504, "answered too late")
        if fault.mode == "reset":
            _drop_connection(request)
            return web.Response(status=500)
        if fault.mode == "garbage":
            return web.Response(status=200, body=b"\x00<html>", content_type="application/json")
        return _error(int(fault.mode), "the answer was lost on its way")

    def _take(self, kind: str, path: str) -> _Fault | None:
        fault = self._faults.get(kind)
        if fault is None or not fault.matches(path):
            return None
        fault.remaining -= 1
        return fault

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.api_key}"

    async def _submit(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(401, "invalid or missing API key")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "request body is not JSON")
        if not isinstance(body, dict):
            return _error(400, "request body must be an object")
        model = body.get("model")
        if model not in MODELS:
            return _error(400, f"unknown or missing model: {str(model)[:60]}")
        inp = body.get("input")
        if not isinstance(inp, dict):
            return _error(400, "input is required")
        callback_url = body.get("callback_url")
        if callback_url is not None:
            problem = self._callback_problem(callback_url)
            if problem:
                return _error(400, problem)
        if model == TIMESTAMPED_LYRICS and self.lyrics_shape not in LYRICS_SHAPES:
            return _error(500, f"fake misconfigured: lyrics_shape {self.lyrics_shape!r}")
        if model in (SEPARATE_VOCALS, STEM_SPLIT, TIMESTAMPED_LYRICS):
            refusal = self._check_existing_track(model, inp)
        elif model == GENERATE_MIDI:
            refusal = self._check_separation_task(inp)
        else:
            refusal = _check_upload(inp)
        if refusal is not None:
            return refusal
        task = FakeTask(
            task_id=f"task-unified-{int(time.time())}-{_random_id(8)}",
            model=model,
            input=dict(inp),
            callback_url=callback_url,
        )
        self.tasks[task.task_id] = task
        self._task_added.set()
        if model == TIMESTAMPED_LYRICS and self.lyrics_shape == "submit":
            # The result in the submit reply itself (§16's example): no task to wait for.
            await self.finish(task.task_id, callback=False)
            assert task.lyrics is not None
            return _ok(
                {
                    "task_id": task.task_id,
                    "status": "finished",
                    "created_time": _vidgo_time(task.created_time),
                    **task.lyrics,
                }
            )
        if self.auto_finish_after is not None:
            task.status = "running"
            self._spawn(self._auto_finish(task.task_id, self.auto_finish_after))
        return _ok(
            {
                "task_id": task.task_id,
                "status": "not_started",
                "created_time": _vidgo_time(task.created_time),
            }
        )

    def _check_existing_track(self, model: str, inp: dict[str, Any]) -> web.Response | None:
        task_id, audio_id = inp.get("task_id"), inp.get("audio_id")
        if not isinstance(task_id, str) or not task_id or not isinstance(audio_id, str):
            return _error(400, "input.task_id and input.audio_id are required")
        if not audio_id:
            return _error(400, "input.task_id and input.audio_id are required")
        tracks = self.generations.get(task_id)
        if tracks is None or all(t.get("audio_id") != audio_id for t in tracks):
            return _error(404, "no finished generation has this task_id and audio_id")
        if model == TIMESTAMPED_LYRICS:
            return None  # reading lyrics is not a once-per-track operation
        for other in self.tasks.values():
            if (
                other.model == model
                and other.input.get("audio_id") == audio_id
                and other.status != "failed"
            ):
                return _error(409, "separation already exists for this audio")
        return None

    def _check_separation_task(self, inp: dict[str, Any]) -> web.Response | None:
        task_id = inp.get("task_id")
        if not isinstance(task_id, str) or not task_id:
            return _error(400, "input.task_id is required")
        source = self.tasks.get(task_id)
        if source is None or source.model not in SEPARATION_MODELS or source.status != "finished":
            return _error(404, "no finished separation has this task_id")
        return None

    def _callback_problem(self, url: object) -> str | None:
        if not isinstance(url, str) or not url:
            return "callback_url must be a non-empty string"
        if len(url) > MAX_CALLBACK_URL_CHARS:
            return "callback_url is longer than 2048 characters"
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError:
            return "callback_url is not a valid URL"
        allowed = {"http", "https"} if self.allow_http_callbacks else {"https"}
        if parts.scheme not in allowed or not host:
            return "callback_url must be an https URL"
        if not self.allow_http_callbacks and _is_private(host):
            return "callback_url must be publicly reachable"
        return None

    async def _detail(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(401, "invalid or missing API key")
        task_id = request.query.get("task_id", "")
        if not task_id:
            return _error(400, "task_id is required")
        if task_id in self.generations:
            return _ok(self._generation_data(task_id), flat=self.flat_bodies)
        task = self.tasks.get(task_id)
        if task is None:
            return _error(404, "task not found")
        task.detail_calls += 1
        if task.status == "finished" and isinstance(task.raw_files, str):
            # Raw JSON text for ``files``, however deep (json.dumps could not even write it).
            data = {**self._detail_data(task), "files": RAW_MARK}
            text = json.dumps(data if self.flat_bodies else {"code": 200, "data": data})
            return web.Response(
                text=text.replace(json.dumps(RAW_MARK), task.raw_files),
                content_type="application/json",
            )
        return _ok(self._detail_data(task), flat=self.flat_bodies)

    async def _balance(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(401, "invalid or missing API key")
        return _ok({"email": "stemcord@fake.vidgo.test", "credits_amount": self.credits})

    async def _stem_file(self, request: web.Request) -> web.StreamResponse:
        task = self.tasks.get(request.match_info["task_id"])
        name = request.match_info["name"]
        if task is None or task.status != "finished":
            return _error(404, "file not found")
        stems = {stem_file_name(key) for key in task.result}
        stem = name.removesuffix(".mp3")
        if not name.endswith(".mp3") or stem not in stems:
            return _error(404, "file not found")
        body = stem_mp3(stem, self.stem_seconds)
        fault = self._media_fault(stem)
        if fault == "stall":
            self.stalled.append(stem)
            await self._stems_released.wait()
        elif fault == "redirect_off_list":
            location = f"http://{OFF_LIST_HOST}:{self._port}{request.path}"
            return web.Response(status=302, headers={"Location": location})
        elif fault == "oversized":
            body = body + bytes(max(0, OVERSIZED_BYTES - len(body)))
        elif fault == "truncated":
            response = web.StreamResponse(headers={"Content-Type": "audio/mpeg"})
            response.content_length = len(body)
            await response.prepare(request)
            await response.write(body[: len(body) // 2])
            _drop_connection(request)
            return response
        return web.Response(body=body, content_type="audio/mpeg")

    async def _generation_file(self, request: web.Request) -> web.Response:
        task_id, name = request.match_info["task_id"], request.match_info["name"]
        for track in self.generations.get(task_id, []):
            for key in ("audio_url", "image_url"):
                value = track.get(key)
                if isinstance(value, str) and value == f"/audio/{task_id}/{name}":
                    if key == "image_url":
                        return web.Response(body=fake_cover(name), content_type="image/jpeg")
                    return web.Response(body=fake_audio(name), content_type="audio/mpeg")
        return _error(404, "file not found")

    # -- HTTP: control, for tests that run the bot as another process ----------------------

    async def _control_finish(self, request: web.Request) -> web.Response:
        task_id = request.match_info["task_id"]
        if task_id not in self.tasks:
            return _error(404, "task not found")
        options = await _json_or_empty(request)
        await self.finish(task_id, callback=bool(options.get("callback", True)))
        return web.json_response(self.tasks[task_id].as_json())

    async def _control_fail(self, request: web.Request) -> web.Response:
        task_id = request.match_info["task_id"]
        if task_id not in self.tasks:
            return _error(404, "task not found")
        options = await _json_or_empty(request)
        message = options.get("message", "separation failed")
        await self.fail(task_id, str(message), callback=bool(options.get("callback", True)))
        return web.json_response(self.tasks[task_id].as_json())

    async def _control_running(self, request: web.Request) -> web.Response:
        task_id = request.match_info["task_id"]
        if task_id not in self.tasks:
            return _error(404, "task not found")
        self.set_running(task_id)
        return web.json_response(self.tasks[task_id].as_json())

    async def _control_faults(self, request: web.Request) -> web.Response:
        options = await _json_or_empty(request)
        setters: dict[str, Callable[..., None]] = {
            "fail_next": self.fail_next,
            "slow_next": self.slow_next,
            "lose_answer_next": self.lose_answer_next,
            "malformed_next": self.malformed_next,
            "reset_next": self.reset_next,
            "media_fault_next": self.media_fault_next,
        }
        for name, value in options.items():
            if name in SWITCHES:
                kind = SWITCHES[name]
                if type(value) is not kind:
                    return _error(400, f"{name} must be {kind.__name__}")
                setattr(self, name, value)
            elif name in setters and isinstance(value, dict):
                try:
                    setters[name](**value)
                except TypeError as exc:
                    return _error(400, f"{name}: {exc}")
            elif name == "credits" and type(value) is int:
                self.credits = value
            elif name == "release_stems" and value is True:
                self.release_stems()
            else:
                return _error(400, f"unknown fault switch {name!r}")
        return web.json_response({name: getattr(self, name) for name in SWITCHES})

    async def _control_tasks(self, request: web.Request) -> web.Response:
        return web.json_response([task.as_json() for task in self.tasks.values()])

    async def _control_callbacks(self, request: web.Request) -> web.Response:
        return web.json_response([list(item) for item in self.callbacks_sent])

    # -- bodies --------------------------------------------------------------------------------

    def _detail_data(self, task: FakeTask) -> dict[str, Any]:
        files: Any = []
        if task.status == "finished" and task.raw_files is not None:
            files = task.raw_files
        elif task.status == "finished" and task.model == GENERATE_MIDI:
            files = [{"midi_data": json.dumps(task.midi)}]
        elif task.status == "finished" and task.model == TIMESTAMPED_LYRICS:
            files = [self._lyrics_entry(task.lyrics or {})]
        elif task.status == "finished":
            field_name = RESULT_FIELD[task.model]
            if self.vocal_removal_variant:
                field_name = "vocal_removal"
            result = task.result
            if self.spaced_keys:
                # Stray spaces as in the draft result shapes (§4): one or two after alternate keys.
                result = {
                    key + " " * (1 + i % 2): url for i, (key, url) in enumerate(result.items())
                }
            files = [{field_name: json.dumps(result)}]
        data: dict[str, Any] = {
            "task_id": task.task_id,
            "status": task.status,
            "files": files,
            "created_time": _vidgo_time(task.created_time),
            "error_message": task.error_message,
        }
        if self.echo_input:
            data["model"] = task.model
            data["input"] = dict(task.input)
        return data

    def _lyrics_entry(self, lyrics: dict[str, Any]) -> dict[str, Any]:
        if self.lyrics_shape == "detail_object":
            return {"timestampe_lyrics": lyrics}
        if self.lyrics_shape == "detail_string_alt":
            return {"timestamped_lyrics": json.dumps(lyrics)}
        # Vidgo's documented field (sic), as a JSON string; also what a "submit" task polls as.
        return {"timestampe_lyrics": json.dumps(lyrics)}

    def _generation_data(self, task_id: str) -> dict[str, Any]:
        files = [
            {
                key: (
                    self.base_url + value if isinstance(value, str) and value[:1] == "/" else value
                )
                for key, value in track.items()
            }
            for track in self.generations[task_id]
        ]
        return {
            "task_id": task_id,
            "status": "finished",
            "files": files,
            "created_time": "2025-11-25T08:50:13",
            "error_message": None,
        }

    def _wrap(self, data: dict[str, Any]) -> dict[str, Any]:
        return data if self.flat_bodies else {"code": 200, "data": data}

    def _stem_url(self, task_id: str, key: str) -> str:
        base = f"http://{self.stem_host}:{self._port}" if self.stem_host else self.base_url
        return f"{base}/files/{task_id}/{stem_file_name(key)}.mp3"

    # -- callbacks and background work --------------------------------------------------------

    def _schedule_callback(self, task: FakeTask) -> None:
        if not self.send_callbacks or task.callback_url is None:
            return
        if self.tamper_callbacks:
            forged_field = RESULT_FIELD.get(task.model, "vocal_removal")
            forged = {
                "task_id": task.task_id,
                "status": "finished",
                "files": [{forged_field: json.dumps(TAMPERED_STEMS)}],
                "created_time": _vidgo_time(task.created_time),
                "error_message": None,
            }
            body = self._wrap(forged)
        else:
            body = self._wrap(self._detail_data(task))
        for _ in range(1 + max(self.duplicate_callbacks, 0)):
            self._spawn(self._deliver(task.task_id, task.callback_url, body))

    async def _deliver(self, task_id: str, url: str, body: dict[str, Any]) -> None:
        """One callback delivery: the first POST, then retries after callback_retry_delays."""
        for delay in (0.0, *self.callback_retry_delays):
            if delay:
                await asyncio.sleep(delay)
            status = await self._post_callback(url, body)
            self.callbacks_sent.append((task_id, status))
            self._callback_recorded.set()
            if status is not None and 200 <= status < 300:
                return
        log.info(
            "callback for %s gave up after %d attempts",
            task_id,
            1 + len(self.callback_retry_delays),
        )

    async def _post_callback(self, url: str, body: dict[str, Any]) -> int | None:
        assert self._http is not None
        try:
            async with self._http.post(
                url,
                data=json.dumps(body),
                headers={"Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=self.callback_timeout),
                allow_redirects=False,
            ) as response:
                await response.read()
                return response.status
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def _auto_finish(self, task_id: str, delay: float) -> None:
        await asyncio.sleep(delay)
        await self.finish(task_id)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("fake Vidgo background task failed", exc_info=task.exception())


def _default_tracks() -> list[dict[str, object]]:
    tracks: list[dict[str, object]] = []
    for audio_id, title, duration in zip(
        GENERATION_AUDIO_IDS, GENERATION_TITLES, GENERATION_DURATIONS, strict=True
    ):
        base = f"/audio/{GENERATION_TASK_ID}/{GENERATION_FILE_STEM}"
        tracks.append(
            {
                "audio_id": audio_id,
                "title": title,
                "tags": "synthwave, female vocals",
                "duration": duration,
                "prompt": "[Verse]\nLights on the water",
                "audio_url": f"{base}_audio_{audio_id}.mp3",
                "image_url": f"{base}_cover_{audio_id}.jpeg",
            }
        )
    return tracks


def _instrumental_tracks() -> list[dict[str, object]]:
    base = f"/audio/{INSTRUMENTAL_TASK_ID}/{GENERATION_FILE_STEM}"
    return [
        {
            "audio_id": INSTRUMENTAL_AUDIO_ID,
            "title": INSTRUMENTAL_TITLE,
            "tags": "synthwave, instrumental",
            "duration": 176.0,
            "prompt": "",
            "audio_url": f"{base}_audio_{INSTRUMENTAL_AUDIO_ID}.mp3",
            "image_url": f"{base}_cover_{INSTRUMENTAL_AUDIO_ID}.jpeg",
        }
    ]


def _result_keys(task: FakeTask) -> tuple[str, ...]:
    if task.model == SEPARATE_VOCALS:
        return SEPARATE_VOCALS_KEYS
    if task.model == STEM_SPLIT:
        return STEM_SPLIT_KEYS
    output_type = task.input.get("output_type") or "general"
    return UPLOAD_KEYS if output_type == "general" else (str(output_type),)


def _check_upload(inp: dict[str, Any]) -> web.Response | None:
    audio_url = inp.get("audio_url")
    if not isinstance(audio_url, str) or not audio_url:
        return _error(400, "input.audio_url is required")
    try:
        parts = urlsplit(audio_url)
    except ValueError:
        return _error(400, "input.audio_url is not a valid URL")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return _error(400, "input.audio_url must be an http(s) URL")
    title = inp.get("title")
    if title is not None and not isinstance(title, str):
        return _error(400, "input.title must be a string")
    model_name = inp.get("model_name")
    if model_name is not None and model_name not in UPLOAD_MODEL_NAMES:
        return _error(400, "input.model_name must be base, enhanced or instrumental")
    output_type = inp.get("output_type")
    if output_type is not None and output_type not in UPLOAD_OUTPUT_TYPES:
        return _error(400, "input.output_type is not a known stem")
    return None


def _is_private(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return not address.is_global


def _drop_connection(request: web.Request) -> None:
    """Close the socket under the request so the client sees a reset, not a reply."""
    transport = request.transport
    if transport is not None:
        transport.abort()


def _ok(data: dict[str, Any], *, flat: bool = False) -> web.Response:
    return web.json_response(data if flat else {"code": 200, "data": data})


def _error(status: int, message: str, *, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(
        {"code": status, "msg": message, "data": None}, status=status, headers=headers
    )


async def _json_or_empty(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _vidgo_time(moment: datetime) -> str:
    """Vidgo's timestamp form: ISO-8601, UTC, seconds, no zone (§1)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _random_id(length: int) -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


async def _serve(args: argparse.Namespace) -> None:
    delays = tuple(float(x) for x in args.callback_retry_delays.split(",") if x.strip())
    fake = FakeVidgo(
        args.api_key,
        auto_finish_after=args.auto_finish,
        callback_retry_delays=delays,
        allow_http_callbacks=not args.https_callbacks_only,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await fake.start(args.host, args.port)
    # One parseable line on stdout lets a parent process find a port picked with --port 0.
    print(f"FAKE_VIDGO_URL={fake.base_url}", flush=True)
    try:
        await stop.wait()
    finally:
        await fake.close()


def main(argv: list[str] | None = None) -> None:
    """Run the fake until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.vidgo", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default="test-vidgo-key")
    parser.add_argument(
        "--auto-finish", type=float, default=None, metavar="SECONDS", help="finish every task"
    )
    parser.add_argument("--callback-retry-delays", default="1,2,4", metavar="S,S,S")
    parser.add_argument(
        "--https-callbacks-only", action="store_true", help="refuse http/private callbacks"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
