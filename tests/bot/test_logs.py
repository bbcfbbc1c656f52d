"""Logs: one line per event, job ids as fields, human or JSON, secrets never written."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import discord
import pytest

from bot.app import sync_commands
from bot.logs import (
    REDACTED,
    Redactor,
    job_context,
    make_handler,
    set_vidgo_task_id,
    setup_logging,
)
from bot.settings import load_settings
from bot.vidgo.client import VidgoClient
from bot.vidgo.errors import VidgoAuthError, VidgoError
from storage.jobstate import JobState
from tests.bot.conftest import MakeHarness
from tests.fakes.discord import FakeDiscord
from tests.fakes.vidgo import FakeVidgo

VIDGO_KEY = "vk-3f9a7c1e2b8d4f60a1c3e5b7d9f1a2c4"
# Shaped like a bot token (id.timestamp.hmac) so redaction is tested on a realistic value; fake.
FAKE_BOT_TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GhIjKl.mNoPqRsTuVwXyZ0123456789abcdefghij"
log = logging.getLogger("tests.logs")


class Captured:
    """What a Stemcord handler on the root logger wrote."""

    def __init__(self, stream: io.StringIO, fmt: str) -> None:
        self.stream = stream
        self.fmt = fmt

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def records(self) -> list[dict[str, object]]:
        assert self.fmt == "json"
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]


@pytest.fixture
def capture(request: pytest.FixtureRequest) -> Iterator[Captured]:
    """Route every log record (DEBUG and up) through the product's handler."""
    fmt = getattr(request, "param", "json")
    stream = io.StringIO()
    handler = make_handler(fmt, [VIDGO_KEY, FAKE_BOT_TOKEN], stream=stream)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield Captured(stream, fmt)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def test_human_line_carries_job_fields_only_inside_a_job() -> None:
    stream = io.StringIO()
    handler = make_handler("human", [], stream=stream)
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        log.info("outside")
        with job_context("7kq2m9xhtp"):
            log.info("admitted")
            set_vidgo_task_id("TASK123")
            log.info("submitted")
        log.info("after")
    finally:
        log.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4
    assert lines[0].endswith("INFO tests.logs: outside")
    assert "tests.logs [job=7kq2m9xhtp]: admitted" in lines[1]
    assert "tests.logs [job=7kq2m9xhtp task=TASK123]: submitted" in lines[2]
    assert lines[3].endswith("INFO tests.logs: after")
    assert lines[0][:4].isdigit() and "Z INFO" in lines[0]  # ISO-8601 UTC time first


def test_json_lines_have_the_documented_fields() -> None:
    stream = io.StringIO()
    handler = make_handler("json", [], stream=stream)
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        with job_context("abcdefghjk", "T1"):
            log.warning("poll failed (%s)", "HTTP 500")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("unexpected")
    finally:
        log.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert set(first) == {"time", "level", "logger", "message", "job_id", "vidgo_task_id"}
    assert first["level"] == "WARNING" and first["logger"] == "tests.logs"
    assert first["message"] == "poll failed (HTTP 500)"
    assert (first["job_id"], first["vidgo_task_id"]) == ("abcdefghjk", "T1")
    assert str(first["time"]).endswith("Z")
    assert second["job_id"] is None and second["vidgo_task_id"] is None
    assert "ValueError: boom" in second["exception"]
    assert "Traceback" in second["exception"]


@pytest.mark.parametrize("capture", ["human", "json"], indirect=True)
def test_secrets_in_message_args_and_tracebacks_are_redacted(capture: Captured) -> None:
    log.info("key is %s", VIDGO_KEY)
    log.info(f"header Authorization: Bot {FAKE_BOT_TOKEN}")
    try:
        try:
            raise ConnectionError(f"refused for Bearer {VIDGO_KEY}")
        except ConnectionError as exc:
            raise RuntimeError(f"login with {FAKE_BOT_TOKEN!r} failed") from exc
    except RuntimeError:
        log.exception("call failed")
    log.info("stack of %s", VIDGO_KEY, stack_info=True)
    text = capture.text
    assert VIDGO_KEY not in text and FAKE_BOT_TOKEN not in text
    assert text.count(REDACTED) >= 4
    assert "ConnectionError" in text and "RuntimeError" in text


def test_redactor_covers_encoded_forms_and_ignores_tiny_values() -> None:
    secret = "abc/def+ghi=="
    redact = Redactor([secret, "", "x"])
    assert redact(f"url?key=abc%2Fdef%2Bghi%3D%3D and {secret}") == (
        f"url?key={REDACTED} and {REDACTED}"
    )
    assert redact("x marks the spot") == "x marks the spot"


def test_setup_logging_replaces_earlier_handlers() -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    libraries = {name: logging.getLogger(name).level for name in ("discord", "aiosqlite")}
    try:
        logging.basicConfig(force=True)
        first = setup_logging("INFO", "human", [])
        second = setup_logging("DEBUG", "json", [])
        assert root.handlers == [second] and first not in root.handlers
        assert root.level == logging.DEBUG
        assert logging.getLogger("discord").level == logging.INFO
        assert logging.getLogger("aiosqlite").level == logging.INFO
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name, level in libraries.items():
            logging.getLogger(name).setLevel(level)
        logging.captureWarnings(False)


# --- the real calls ---------------------------------------------------------------------------


@pytest.mark.parametrize("capture", ["human", "json"], indirect=True)
async def test_failing_vidgo_calls_never_write_the_key(capture: Captured) -> None:
    async with FakeVidgo(api_key="the-right-key") as vidgo, aiohttp.ClientSession() as session:
        client = VidgoClient(
            session, vidgo.base_url, VIDGO_KEY, max_retries=2, backoff_base=0, backoff_max=0
        )
        with pytest.raises(VidgoAuthError):
            await client.balance()
        vidgo.api_key = VIDGO_KEY
        vidgo.fail_next(5, 500)
        for failing in (client.balance(), client.get_task("nope")):
            try:
                await failing
            except VidgoError:
                log.exception("Vidgo call failed")
        port = int(vidgo.base_url.rsplit(":", 1)[1])
    # The fake is gone: a connection error, with aiohttp's exception chained in.
    async with aiohttp.ClientSession() as session:
        dead = VidgoClient(session, f"http://127.0.0.1:{port}", VIDGO_KEY, max_retries=1)
        try:
            await dead.balance()
        except VidgoError:
            log.exception("Vidgo unreachable")
    text = capture.text
    assert "Vidgo call failed" in text and "Vidgo unreachable" in text
    assert "Traceback" in text and "ClientConnectorError" in text
    assert "retrying" in text  # the client's own retry warnings went through the handler
    assert VIDGO_KEY not in text and FAKE_BOT_TOKEN not in text


@pytest.mark.parametrize("capture", ["human", "json"], indirect=True)
async def test_failing_discord_login_never_writes_the_token(
    capture: Captured, tmp_path: Path
) -> None:
    import discord

    async with FakeDiscord() as fake:
        settings = load_settings(
            _env_file=None,
            DISCORD_TOKEN=FAKE_BOT_TOKEN,
            VIDGO_API_KEY=VIDGO_KEY,
            DISCORD_API_BASE=fake.api_base,
            DISCORD_GATEWAY_URL=fake.gateway_url,
            DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        )
        with fake.redirect_discord_py():
            try:
                await sync_commands(settings, None)
            except discord.LoginFailure:
                log.exception("Discord login failed")
            else:
                raise AssertionError("the fake accepted a wrong token")
    text = capture.text
    assert "Discord login failed" in text and "LoginFailure" in text
    assert "401" in text  # discord.py's own debug lines about the request were captured
    assert FAKE_BOT_TOKEN not in text and VIDGO_KEY not in text


async def test_engine_log_lines_carry_the_job_and_task_ids(
    capture: Captured, make_harness: MakeHarness, vidgo: FakeVidgo
) -> None:
    h = await make_harness()
    job = (await h.separate_ids()).job
    job = await h.wait_state(job.id, JobState.SUBMITTED, JobState.RUNNING)
    await vidgo.finish(job.vidgo_task_id or "")
    await h.wait_state(job.id, JobState.DELIVERED, timeout=10)
    records = [r for r in capture.records() if str(r["logger"]).startswith("bot.")]
    submitted = next(r for r in records if "submitted to Vidgo" in str(r["message"]))
    assert (submitted["job_id"], submitted["vidgo_task_id"]) == (job.id, job.vidgo_task_id)
    admitted = next(r for r in records if "admitted" in str(r["message"]))
    assert admitted["job_id"] == job.id
    delivered = next(r for r in records if "delivered" in str(r["message"]))
    assert (delivered["job_id"], delivered["vidgo_task_id"]) == (job.id, job.vidgo_task_id)


def test_only_discords_two_voice_warnings_are_dropped(capture: Captured) -> None:
    client_log = logging.getLogger("discord.client")
    client_log.warning("PyNaCl is not installed, voice will NOT be supported")
    client_log.warning("davey is not installed, voice will NOT be supported")
    client_log.warning("Application has an interaction endpoint URL set, this means ...")
    client_log.error("PyNaCl is not installed, voice will NOT be supported")  # not a warning
    logging.getLogger("elsewhere").warning("davey is not installed, voice will NOT be supported")
    assert [(r["logger"], r["level"], r["message"]) for r in capture.records()] == [
        (
            "discord.client",
            "WARNING",
            "Application has an interaction endpoint URL set, this means ...",
        ),
        ("discord.client", "ERROR", "PyNaCl is not installed, voice will NOT be supported"),
        ("elsewhere", "WARNING", "davey is not installed, voice will NOT be supported"),
    ]


def test_a_new_discord_client_writes_no_voice_warning(
    capture: Captured, monkeypatch: pytest.MonkeyPatch
) -> None:
    # discord.py warns once per process, from the first client it builds; make it warn again,
    # so the test sees its own current wording go through the handler.
    from discord.voice_client import VoiceClient

    monkeypatch.setattr(VoiceClient, "warn_nacl", True)
    monkeypatch.setattr(VoiceClient, "warn_dave", True)
    discord.Client(intents=discord.Intents.none())
    assert not VoiceClient.warn_nacl and not VoiceClient.warn_dave  # it did warn
    assert "voice" not in capture.text


def test_a_gateway_reconnect_attempt_is_one_line_with_its_error(capture: Captured) -> None:
    client_log = logging.getLogger("discord.client")
    try:
        raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 9)")
    except ConnectionRefusedError:
        client_log.exception("Attempting a reconnect in %.2fs", 1.5)
    try:
        raise RuntimeError("not a reconnect")
    except RuntimeError:
        client_log.exception("Something else failed")
    first, second = capture.records()
    assert first["message"] == (
        "Attempting a reconnect in 1.50s (gateway: ConnectionRefusedError: "
        "[Errno 111] Connect call failed ('127.0.0.1', 9))"
    )
    assert "exception" not in first
    assert "Traceback" in str(second["exception"])  # other errors keep their traceback
