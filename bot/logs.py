"""Logging: one line per event, the job it concerns as fields, secrets never written.

* :func:`setup_logging` installs one handler on the root logger: human-readable lines by
  default, or one JSON object per line (``LOG_FORMAT=json``) for log collectors.
* The job being worked on lives in two context variables (:func:`job_context`,
  :func:`set_vidgo_task_id`). The scheduler sets them around each job it dispatches and the
  engine around a submit or a callback, so every log call made while working on a job carries
  ``job_id`` and ``vidgo_task_id`` without repeating them. asyncio copies the context into
  tasks spawned from there, so background work for a job is labelled too.
* :class:`VoiceWarningFilter` drops exactly discord.py's two start-up warnings that voice
  support is missing (PyNaCl, davey): Stemcord never joins a voice channel, so they are
  noise that looks like a fault to a new operator. Every other warning passes.
* :class:`ReconnectLineFilter` turns discord.py's "Attempting a reconnect in N s" (and the
  sharded client's "Attempting a reconnect for shard ID N in N s"), logged with a whole
  traceback at each try while the gateway cannot be reached, into one line that ends with
  the error: the traceback says nothing more, and a retry every few seconds would bury
  everything else.
* :class:`RedactionFilter` replaces every configured secret (the Vidgo key, the Discord token)
  in the message, its arguments, the exception text and the stack before any formatter sees the
  record; the formatters redact their output once more, so a secret that reaches a log line by
  an unforeseen path is still replaced.

JSON field names (documented in docs/operations.md): ``time`` (ISO-8601 UTC), ``level``,
``logger``, ``message``, ``job_id``, ``vidgo_task_id`` (``null`` outside a job), and
``exception`` (the formatted traceback) when there is one.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Literal, TextIO
from urllib.parse import quote

REDACTED = "[redacted]"
# Shorter "secrets" would replace ordinary words; real keys and tokens are far longer.
MIN_SECRET_LENGTH = 6

job_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "stemcord_job_id", default=None
)
vidgo_task_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "stemcord_vidgo_task_id", default=None
)

LogFormat = Literal["human", "json"]
# Libraries whose DEBUG output is a line per gateway event or per database call.
CHATTY_LOGGERS = ("discord", "aiosqlite")


@contextmanager
def job_context(job_id: str | None, vidgo_task_id: str | None = None) -> Iterator[None]:
    """Label every log line inside the block with this job (restored on exit)."""
    job_token = job_id_var.set(job_id)
    task_token = vidgo_task_id_var.set(vidgo_task_id)
    try:
        yield
    finally:
        vidgo_task_id_var.reset(task_token)
        job_id_var.reset(job_token)


def set_job_context(job_id: str | None, vidgo_task_id: str | None = None) -> None:
    """Label the rest of the current task's log lines with this job (a task per job)."""
    job_id_var.set(job_id)
    vidgo_task_id_var.set(vidgo_task_id)


def set_vidgo_task_id(vidgo_task_id: str | None) -> None:
    """The job in the current context just got its Vidgo task id."""
    vidgo_task_id_var.set(vidgo_task_id)


class JobContextFilter(logging.Filter):
    """Copies the current job id and Vidgo task id onto each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Always keeps the record; only adds ``job_id`` and ``vidgo_task_id``."""
        if not hasattr(record, "job_id"):
            record.job_id = job_id_var.get()
        if not hasattr(record, "vidgo_task_id"):
            record.vidgo_task_id = vidgo_task_id_var.get()
        return True


class VoiceWarningFilter(logging.Filter):
    """Drops discord.py's "PyNaCl/davey is not installed, voice will NOT be supported"."""

    LOGGER = "discord.client"
    MESSAGES = frozenset(
        {
            "PyNaCl is not installed, voice will NOT be supported",
            "davey is not installed, voice will NOT be supported",
        }
    )

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep every record but those two (matched on logger, level and exact text)."""
        return not (
            record.name == self.LOGGER
            and record.levelno == logging.WARNING
            and not record.args
            and record.msg in self.MESSAGES
        )


class ReconnectLineFilter(logging.Filter):
    """discord.py's gateway reconnect attempts as one line each, the error at its end."""

    LOGGER = "discord.client"
    PREFIX = "Attempting a reconnect in"
    # The sharded client logs each shard's attempts from its own module.
    SHARD_LOGGER = "discord.shard"
    SHARD_PREFIX = "Attempting a reconnect for shard ID"

    def filter(self, record: logging.LogRecord) -> bool:
        """Always keeps the record; folds the exception of a reconnect attempt into it."""
        prefix = {self.LOGGER: self.PREFIX, self.SHARD_LOGGER: self.SHARD_PREFIX}.get(record.name)
        if (
            prefix is not None
            and isinstance(record.msg, str)
            and record.msg.startswith(prefix)
            and record.exc_info
            and record.exc_info[1] is not None
        ):
            error = record.exc_info[1]
            detail = str(error).splitlines()[0] if str(error) else ""
            record.msg = f"{record.getMessage()} (gateway: {type(error).__name__}" + (
                f": {detail})" if detail else ")"
            )
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


class Redactor:
    """Replaces secrets (and their URL-encoded forms) in text."""

    def __init__(self, secrets: Iterable[str]) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if len(secret) < MIN_SECRET_LENGTH:
                continue
            forms.add(secret)
            forms.add(quote(secret, safe=""))
            # A secret inside a JSON string or a repr() may appear with escaped characters.
            forms.add(json.dumps(secret)[1:-1])
            forms.add(repr(secret)[1:-1])
        # Longest first, so a secret that contains another is replaced whole.
        self._forms = sorted(forms, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        """``text`` with every secret replaced by ``[redacted]``."""
        for form in self._forms:
            if form in text:
                text = text.replace(form, REDACTED)
        return text


class RedactionFilter(logging.Filter):
    """Removes secrets from a record's message, exception text and stack, in place.

    The message is rendered (``msg % args``) and stored back without its arguments, and the
    traceback is formatted here and stored as ``exc_text`` (formatters reuse it), so neither a
    secret passed as an argument nor one inside an exception's message survives.
    """

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact
        self._formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        """Always keeps the record, after redacting it."""
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not hide the event
            message = f"{record.msg!r} % {record.args!r}"
        record.msg = self._redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redact(record.stack_info)
        return True


def _utc_time(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class HumanFormatter(logging.Formatter):
    """``2026-12-01T19:03:23.123Z INFO bot.engine [job=7kq2m9xhtp task=ABC]: message``."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        """One line (plus the traceback, if any)."""
        fields = []
        job_id = getattr(record, "job_id", None)
        task_id = getattr(record, "vidgo_task_id", None)
        if job_id:
            fields.append(f"job={job_id}")
        if task_id:
            fields.append(f"task={task_id}")
        where = f" [{' '.join(fields)}]" if fields else ""
        line = f"{_utc_time(record)} {record.levelname} {record.name}{where}: {record.getMessage()}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return self._redact(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line with the field names in the module docstring."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        """The record as a single-line JSON object."""
        data: dict[str, object] = {
            "time": _utc_time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": self._redact(record.getMessage()),
            "job_id": getattr(record, "job_id", None),
            "vidgo_task_id": getattr(record, "vidgo_task_id", None),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            data["exception"] = self._redact(record.exc_text)
        if record.stack_info:
            data["stack"] = self._redact(self.formatStack(record.stack_info))
        return self._redact(json.dumps(data, ensure_ascii=False, default=str))


def make_handler(
    fmt: LogFormat, secrets: Iterable[str], *, stream: TextIO | None = None
) -> logging.Handler:
    """A stream handler with the voice-warning, job-context and redaction filters and the
    chosen format."""
    redact = Redactor(secrets)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(VoiceWarningFilter())
    handler.addFilter(ReconnectLineFilter())  # before redaction, which renders the message
    handler.addFilter(JobContextFilter())
    handler.addFilter(RedactionFilter(redact))
    handler.setFormatter(JsonFormatter(redact) if fmt == "json" else HumanFormatter(redact))
    handler.set_name("stemcord")
    return handler


def setup_logging(
    level: str, fmt: LogFormat, secrets: Iterable[str], *, stream: TextIO | None = None
) -> logging.Handler:
    """Send every log record through one Stemcord handler on the root logger.

    Handlers installed earlier (by a previous call or ``basicConfig``) are removed, so each
    event is written once. The libraries in :data:`CHATTY_LOGGERS` never log below INFO (at
    DEBUG they write a line per gateway event or per database call). Returns the handler.
    """
    handler = make_handler(fmt, secrets, stream=stream)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    quiet = max(logging.INFO, logging.getLevelName(level))
    for chatty in CHATTY_LOGGERS:
        logging.getLogger(chatty).setLevel(quiet)
    logging.captureWarnings(True)
    return handler
