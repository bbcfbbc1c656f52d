"""Stemcord's HTTP client for Vidgo's music API (submit, detail, balance).

One :class:`VidgoClient` is shared by the whole bot. It borrows the bot's
:class:`aiohttp.ClientSession` and never closes it. Every HTTP attempt goes through one
concurrency cap and one rate limiter, and is counted in :attr:`VidgoClient.calls`.

Failures are raised as the types in :mod:`bot.vidgo.errors`. Both the HTTP status and the
body ``code`` are checked, because a related Suno-based API reports errors in the body of an
HTTP 200 and Vidgo's own error table is unknown (§6).

Retries (tenacity, exponential backoff with full jitter, at most ``max_retries``):

* detail and balance are reads, so every :class:`VidgoTransientError` and
  :class:`VidgoRateLimited` is retried;
* a submit creates a task and Vidgo has no idempotency key, so it is retried only when Vidgo
  certainly did not act on it: the connection could not be opened, 408, 429/430, 503, 455.
  After a read timeout, a reset, any other 5xx (500, 502, 504: a gateway may answer after the
  service acted) or an unreadable 200 a task may exist without us knowing its id; the error is
  raised (``maybe_processed=True``) and the caller decides;
* a ``Retry-After`` longer than ``backoff_max`` is not slept through: the
  :class:`VidgoRateLimited` is raised at once so the caller can reschedule the work.

"§N" in this package refers to section N of ``docs/vidgo-api.md``, the project's account of
Vidgo's API.
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiohttp
from aiolimiter import AsyncLimiter
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_base, wait_random_exponential

from bot.vidgo.errors import (
    MAX_MESSAGE_CHARS,
    VidgoAuthError,
    VidgoDuplicateError,
    VidgoError,
    VidgoInvalidRequest,
    VidgoMalformedResponse,
    VidgoNotFound,
    VidgoRateLimited,
    VidgoTransientError,
)
from bot.vidgo.results import (
    Model,
    SubmitReceipt,
    TaskDetail,
    TrackInfo,
    parse_balance,
    parse_detail,
    parse_lyrics_submit,
    parse_submit,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

SUBMIT_PATH = "/api/generate/submit"
DETAIL_PATH = "/api/generate/detail/music"
BALANCE_PATH = "/api/user/balance"

# Replies are small JSON documents; a huge one is a fault, not something to buffer.
MAX_BODY_BYTES = 4 * 1024 * 1024
# Vidgo's success code is 200; a client of a twin service of Vidgo's platform also accepts 0
# (§1, §6).
SUCCESS_CODES = frozenset({200, 0})
# 429 is Vidgo's own rate-limit status; 430 (and body code 405) come from a related API (§6, §7).
RATE_LIMIT_CODES = frozenset({429, 430})
RATE_LIMIT_BODY_CODES = frozenset({405})
# 455 is the related API's "maintenance" (§6): the service refused the work, try later.
MAINTENANCE_CODE = 455
# Replies after which a submit certainly created no task, so resending it is safe
# (408: the server gave up before it had the whole request; 503 and 455: the service refused
# to take work). A 502 or 504 comes from a gateway that may have passed the request on.
NOT_PROCESSED_CODES = frozenset({408, 503, MAINTENANCE_CODE})

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
# str.isdigit() also accepts "²", which int() refuses.
_ASCII_DIGITS = re.compile(r"[0-9]{1,9}")
_NO_JSON = object()

# Outcome labels of :attr:`VidgoClient.calls`.
OUTCOME_OK = "ok"
OUTCOME_AUTH = "auth"
OUTCOME_DUPLICATE = "duplicate"
OUTCOME_RATE_LIMITED = "rate_limited"
OUTCOME_INVALID = "invalid_request"
OUTCOME_NOT_FOUND = "not_found"
OUTCOME_TRANSIENT = "transient"
OUTCOME_TIMEOUT = "timeout"
OUTCOME_CONNECTION = "connection_error"
OUTCOME_MALFORMED = "malformed"

_SEPARATION_MODELS = frozenset({Model.SEPARATE_VOCALS, Model.STEM_SPLIT})


class VidgoClient:
    """Calls Vidgo's music API with retries, a rate limit and a concurrency cap.

    ``session`` is borrowed, never created or closed here. ``timeout`` bounds each HTTP
    attempt; ``max_retries`` bounds the retries after the first attempt. ``rate_per_second``
    and ``max_concurrency`` apply to every attempt of every call made through this client.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        max_retries: int = 3,
        rate_per_second: float = 5.0,
        max_concurrency: int = 8,
        backoff_base: float = 0.5,
        backoff_max: float = 20.0,
    ) -> None:
        if timeout <= 0 or rate_per_second <= 0 or backoff_base < 0 or backoff_max < 0:
            raise ValueError("timeout and rate_per_second must be positive, backoff not negative")
        if max_retries < 0 or max_concurrency < 1:
            raise ValueError("max_retries must be >= 0 and max_concurrency >= 1")
        if not api_key:
            raise ValueError("api_key must not be empty")
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout_seconds = timeout
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_retries = max_retries
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        # AsyncLimiter needs a bucket of at least one token; below 1/s stretch the period.
        if rate_per_second >= 1:
            self._limiter = AsyncLimiter(rate_per_second, 1)
        else:
            self._limiter = AsyncLimiter(1, 1 / rate_per_second)
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._calls: collections.Counter[tuple[str, str]] = collections.Counter()
        # The sleep between retries; tests swap it to record the waits without waiting.
        self._sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    @property
    def calls(self) -> collections.Counter[tuple[str, str]]:
        """HTTP attempts so far, keyed by ``(endpoint, outcome)``; a live counter.

        Endpoints: ``submit``, ``detail``, ``balance``. Outcomes: ``ok``, ``auth``,
        ``duplicate``, ``rate_limited``, ``invalid_request``, ``not_found``, ``transient``
        (5xx, maintenance), ``timeout``, ``connection_error``, ``malformed``. One attempt is
        usually one request; aiohttp may resend an idempotent GET once by itself when a pooled
        connection turns out to be dead.
        """
        return self._calls

    async def submit_separation(
        self, model: Model, *, task_id: str, audio_id: str, callback_url: str | None
    ) -> SubmitReceipt:
        """Submit ``separate-vocals`` or ``stem-split`` for one track of a Vidgo generation.

        Raises :class:`VidgoDuplicateError` when the track was already separated with this
        model, :class:`VidgoNotFound` when Vidgo does not know the track.
        """
        if model not in _SEPARATION_MODELS:
            raise ValueError(f"{model} does not separate an existing track")
        if not task_id or not audio_id:
            raise ValueError("task_id and audio_id must not be empty")
        body: dict[str, Any] = {
            "model": model.value,
            "input": {"task_id": task_id, "audio_id": audio_id},
        }
        if callback_url is not None:
            body["callback_url"] = callback_url
        return await self._submit(body)

    async def submit_upload_separation(
        self,
        *,
        audio_url: str,
        title: str | None = None,
        model_name: str | None = None,
        output_type: str | None = None,
        callback_url: str | None = None,
    ) -> SubmitReceipt:
        """Submit ``upload-and-separate-vocals`` for audio Vidgo fetches from ``audio_url``.

        ``model_name`` (``base``/``enhanced``/``instrumental``) and ``output_type``
        (``general`` or one stem) are sent only when given, so Vidgo's defaults apply.
        """
        if not audio_url:
            raise ValueError("audio_url must not be empty")
        payload: dict[str, Any] = {"audio_url": audio_url}
        for name, value in (("title", title), ("model_name", model_name)):
            if value is not None:
                payload[name] = value
        if output_type is not None:
            payload["output_type"] = output_type
        body: dict[str, Any] = {"model": Model.UPLOAD_AND_SEPARATE.value, "input": payload}
        if callback_url is not None:
            body["callback_url"] = callback_url
        return await self._submit(body)

    async def submit_midi(self, task_id: str, *, callback_url: str | None) -> SubmitReceipt:
        """Submit ``generate-midi`` for a finished separation task (§3.4, unverified).

        ``task_id`` is the separation's own task id, not the generation's. Retried like every
        other submit.
        """
        if not task_id:
            raise ValueError("task_id must not be empty")
        body: dict[str, Any] = {"model": Model.GENERATE_MIDI.value, "input": {"task_id": task_id}}
        if callback_url is not None:
            body["callback_url"] = callback_url
        return await self._submit(body)

    async def submit_lyrics(
        self, *, task_id: str, audio_id: str, callback_url: str | None
    ) -> SubmitReceipt:
        """Submit ``get-timestamped-lyrics`` for one track of a Vidgo generation (§16).

        The reply may already carry the result (:attr:`SubmitReceipt.data`); retried like the
        other submits. :class:`VidgoNotFound` when Vidgo does not know the track.
        """
        if not task_id or not audio_id:
            raise ValueError("task_id and audio_id must not be empty")
        body: dict[str, Any] = {
            "model": Model.TIMESTAMPED_LYRICS.value,
            "input": {"task_id": task_id, "audio_id": audio_id},
        }
        if callback_url is not None:
            body["callback_url"] = callback_url
        return await self._call(
            "submit",
            "POST",
            SUBMIT_PATH,
            body=body,
            parse=parse_lyrics_submit,
            retryable=_retry_submit,
        )

    async def get_task(self, task_id: str) -> TaskDetail:
        """Read a task through Query Music Detail (``GET ...?task_id=``)."""
        if not task_id:
            raise ValueError("task_id must not be empty")
        return await self._call(
            "detail",
            "GET",
            DETAIL_PATH,
            params={"task_id": task_id},
            parse=parse_detail,
            retryable=_retry_read,
        )

    async def get_track(self, task_id: str, audio_id: str) -> TrackInfo | None:
        """The track ``audio_id`` of the generation task ``task_id``.

        ``None`` when the task exists but has no such track (or has not finished);
        :class:`VidgoNotFound` when Vidgo does not know the task.
        """
        detail = await self.get_task(task_id)
        wanted = audio_id.strip()
        return next((track for track in detail.tracks if track.audio_id == wanted), None)

    async def balance(self) -> int:
        """The account's remaining credits. Vidgo asks callers to cache this, not poll it."""
        return await self._call(
            "balance", "GET", BALANCE_PATH, parse=parse_balance, retryable=_retry_read
        )

    async def _submit(self, body: dict[str, Any]) -> SubmitReceipt:
        return await self._call(
            "submit", "POST", SUBMIT_PATH, body=body, parse=parse_submit, retryable=_retry_submit
        )

    async def _call(
        self,
        endpoint: str,
        method: str,
        path: str,
        *,
        parse: Callable[[object], T],
        retryable: Callable[[BaseException], bool],
        params: Mapping[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> T:
        retrying = AsyncRetrying(
            sleep=self._sleep,
            retry=retry_if_exception(retryable),
            stop=stop_after_attempt(self._max_retries + 1)
            | _StopOnLongRetryAfter(self._backoff_max),
            wait=_WaitRetryAfterOrJitter(self._backoff_base, self._backoff_max),
            before_sleep=_log_retry(endpoint),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._attempt(
                    endpoint, method=method, path=path, params=params, body=body, parse=parse
                )
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    async def _attempt(
        self,
        endpoint: str,
        *,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        body: dict[str, Any] | None,
        parse: Callable[[object], T],
    ) -> T:
        """One counted HTTP attempt, parsed."""
        try:
            payload = await self._exchange(method, path, params, body)
            try:
                result = parse(payload)
            except VidgoError:
                raise
            except Exception as exc:
                # Odd data (deep nesting, digits int() rejects, ...) is a malformed reply,
                # never an error that escapes the caller's handling of Vidgo's failures.
                raise VidgoMalformedResponse(
                    f"Vidgo reply could not be read ({type(exc).__name__})"
                ) from exc
        except VidgoError as exc:
            self._calls[(endpoint, _outcome(exc))] += 1
            raise
        self._calls[(endpoint, OUTCOME_OK)] += 1
        return result

    async def _exchange(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        body: dict[str, Any] | None,
    ) -> object:
        """One HTTP attempt: the decoded JSON of a successful reply, or a VidgoError."""
        headers = {"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"}
        async with self._semaphore, self._limiter:
            try:
                async with self._session.request(
                    method,
                    self._base_url + path,
                    params=params,
                    json=body,
                    headers=headers,
                    timeout=self._timeout,
                    # A redirect could carry the Authorization header to another host.
                    allow_redirects=False,
                ) as response:
                    status = response.status
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    raw = await _read_capped(response)
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
                raise VidgoTransientError(
                    self._clean(f"could not connect to Vidgo ({type(exc).__name__}: {exc})"),
                    maybe_processed=False,
                ) from exc
            except TimeoutError as exc:
                raise VidgoTransientError(
                    f"Vidgo did not answer within {self._timeout_seconds:g} s"
                ) from exc
            except aiohttp.ClientError as exc:
                raise VidgoTransientError(
                    self._clean(f"connection to Vidgo failed ({type(exc).__name__}: {exc})")
                ) from exc
        payload = _decode(raw)
        code = _body_code(payload)
        if 200 <= status < 300 and (code is None or code in SUCCESS_CODES):
            if payload is _NO_JSON:
                raise VidgoMalformedResponse(
                    f"Vidgo answered HTTP {status} without a JSON body", status=status
                )
            return payload
        raise self._error(status, code, payload, retry_after)

    def _error(
        self, http_status: int, code: int | None, payload: object, retry_after: float | None
    ) -> VidgoError:
        # An HTTP 200 carrying an error code is judged by the code (the related API does this, §6).
        status = code if 200 <= http_status < 300 and code is not None else http_status
        text = _message(payload)
        shown = f"code {code}" if status == code and status != http_status else f"HTTP {status}"
        message = self._clean(
            f"Vidgo answered {shown}: {text}" if text else f"Vidgo answered {shown}"
        )
        if status in (401, 403):
            return VidgoAuthError(message, status=status)
        if status == 404:
            return VidgoNotFound(message, status=status)
        if status == 409:
            return VidgoDuplicateError(message, status=status)
        if status in RATE_LIMIT_CODES or code in RATE_LIMIT_BODY_CODES:
            return VidgoRateLimited(message, status=status, retry_after=retry_after)
        if status in NOT_PROCESSED_CODES:
            return VidgoTransientError(message, status=status, maybe_processed=False)
        if 300 <= status < 500:
            # Redirects are not followed (see _exchange); a wrong base URL is not transient.
            return VidgoInvalidRequest(message, status=status)
        if 500 <= status < 600:
            return VidgoTransientError(message, status=status)
        return VidgoMalformedResponse(message, status=status)

    def _clean(self, text: str) -> str:
        """One line, no API key, at most MAX_MESSAGE_CHARS long."""
        text = text.replace(self._api_key, "[redacted]")
        text = _CONTROL_CHARS.sub(" ", text).strip()
        if len(text) > MAX_MESSAGE_CHARS:
            text = text[: MAX_MESSAGE_CHARS - 1] + "…"
        return text


def _outcome(exc: VidgoError) -> str:
    if isinstance(exc, VidgoMalformedResponse):
        return OUTCOME_MALFORMED
    if type(exc) is VidgoTransientError and exc.status is None:
        # No reply at all: the cause says whether time ran out or the connection failed.
        return OUTCOME_TIMEOUT if isinstance(exc.__cause__, TimeoutError) else OUTCOME_CONNECTION
    if isinstance(exc, VidgoAuthError):
        return OUTCOME_AUTH
    if isinstance(exc, VidgoDuplicateError):
        return OUTCOME_DUPLICATE
    if isinstance(exc, VidgoRateLimited):
        return OUTCOME_RATE_LIMITED
    if isinstance(exc, VidgoNotFound):
        return OUTCOME_NOT_FOUND
    if isinstance(exc, VidgoInvalidRequest):
        return OUTCOME_INVALID
    return OUTCOME_TRANSIENT


def _retry_read(exc: BaseException) -> bool:
    return isinstance(exc, VidgoTransientError | VidgoRateLimited)


def _retry_submit(exc: BaseException) -> bool:
    if isinstance(exc, VidgoRateLimited):
        return True
    return isinstance(exc, VidgoTransientError) and not exc.maybe_processed


class _WaitRetryAfterOrJitter(wait_base):
    """Full-jitter exponential backoff, but never sooner than Vidgo's ``Retry-After``."""

    def __init__(self, multiplier: float, maximum: float) -> None:
        self._jitter = wait_random_exponential(multiplier=multiplier, max=maximum)

    def __call__(self, retry_state: RetryCallState) -> float:
        jitter = self._jitter(retry_state)
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, VidgoRateLimited) and exc.retry_after is not None:
            return max(exc.retry_after, jitter)
        return jitter


class _StopOnLongRetryAfter(stop_base):
    """Stop when Vidgo asks for a longer pause than we are willing to sleep inside a call."""

    def __init__(self, longest: float) -> None:
        self._longest = longest

    def __call__(self, retry_state: RetryCallState) -> bool:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        return (
            isinstance(exc, VidgoRateLimited)
            and exc.retry_after is not None
            and exc.retry_after > self._longest
        )


def _log_retry(endpoint: str) -> Callable[[RetryCallState], None]:
    def log_it(retry_state: RetryCallState) -> None:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        wait = retry_state.next_action.sleep if retry_state.next_action else 0.0
        log.warning(
            "Vidgo %s attempt %d failed (%r); retrying in %.2f s",
            endpoint,
            retry_state.attempt_number,
            exc,
            wait,
        )

    return log_it


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), or None."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    if response.content_length is not None and response.content_length > MAX_BODY_BYTES:
        raise VidgoMalformedResponse(
            f"Vidgo reply is too large ({response.content_length} bytes)", status=response.status
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise VidgoMalformedResponse("Vidgo reply is too large", status=response.status)
        chunks.append(chunk)
    return b"".join(chunks)


def _decode(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return _NO_JSON


def _body_code(payload: object) -> int | None:
    if not isinstance(payload, dict):
        return None
    code = payload.get("code")
    if isinstance(code, bool):
        return None
    if isinstance(code, int):
        return code
    if isinstance(code, str) and _ASCII_DIGITS.fullmatch(code.strip()):
        return int(code.strip())
    return None


def _message(payload: object) -> str | None:
    """The error text: ``error.message`` -> ``message`` -> ``msg`` -> ``data.error_message``."""
    if not isinstance(payload, dict):
        return None
    error = payload.get("error")
    data = payload.get("data")
    candidates = (
        error.get("message") if isinstance(error, dict) else error,
        payload.get("message"),
        payload.get("msg"),
        data.get("error_message") if isinstance(data, dict) else None,
    )
    return next((c.strip() for c in candidates if isinstance(c, str) and c.strip()), None)
