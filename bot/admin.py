"""The admin listener: ``GET /healthz``, ``GET /readyz``, ``GET /metrics``.

It binds its own address (``ADMIN_HOST:ADMIN_PORT``, default ``127.0.0.1:8081``) so that
metrics and health never face the internet the way the callback listener must; the same routes
can be added to the callback listener when ``METRICS_ON_WEBHOOK`` says so
(:meth:`AdminRoutes.install`).

* ``/healthz`` — liveness: the process and its event loop answer. Always 200 while running.
* ``/readyz`` — readiness: every named check passes (the app passes "database",
  "dispatcher" and "discord"); 200 or 503 with each check's result as JSON. A check that
  raises or takes longer than ``check_timeout`` counts as failed; a raised error is reported
  by its class and its first line (``fail: OperationalError (attempt to write a readonly
  database)``). ``details`` add facts beside the checks (the app adds ``shards``: which of
  this process's Discord shards are connected).
* ``/metrics`` — the Prometheus text exposition from a callable the app passes in.

This module knows neither Discord nor prometheus-client: the app hands it callables.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from bot.listener import Listener, ListenerLimits

log = logging.getLogger(__name__)

ReadyCheck = Callable[[], Awaitable[bool]]
# A fact readiness reports beside its checks: any JSON value, read at each request.
ReadyDetail = Callable[[], object]
MetricsSource = Callable[[], Awaitable[bytes]]

HEALTHZ_PATH = "/healthz"
READYZ_PATH = "/readyz"
METRICS_PATH = "/metrics"
_JSON_HEADERS = {"Content-Type": "application/json"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
_REASON_LIMIT = 120


def failure_text(exc: BaseException) -> str:
    """``fail: <class>`` plus the error's first line, short and printable, when it has one."""
    first = _CONTROL.sub(" ", str(exc).splitlines()[0] if str(exc) else "").strip()
    if len(first) > _REASON_LIMIT:
        first = first[: _REASON_LIMIT - 1] + "…"
    return f"fail: {type(exc).__name__}" + (f" ({first})" if first else "")


def _json(status: int, body: Mapping[str, object]) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), headers=_JSON_HEADERS)


class AdminRoutes:
    """The three handlers, installable on any aiohttp application."""

    def __init__(
        self,
        *,
        checks: Mapping[str, ReadyCheck],
        metrics: MetricsSource | None = None,
        metrics_content_type: str = "text/plain; version=0.0.4; charset=utf-8",
        check_timeout: float = 2.0,
        details: Mapping[str, ReadyDetail] | None = None,
    ) -> None:
        reserved = {"ok", "checks"} & set(details or {})
        if reserved:
            raise ValueError(f"readiness details may not be named {sorted(reserved)}")
        self._checks = dict(checks)
        self._details = dict(details or {})
        self._metrics = metrics
        self._metrics_content_type = metrics_content_type
        self._check_timeout = check_timeout

    def install(self, app: web.Application) -> None:
        """Add ``/healthz``, ``/readyz`` and (with a source) ``/metrics`` to ``app``."""
        app.router.add_get(HEALTHZ_PATH, self.healthz)
        app.router.add_get(READYZ_PATH, self.readyz)
        if self._metrics is not None:
            app.router.add_get(METRICS_PATH, self.metrics)

    async def healthz(self, request: web.Request) -> web.Response:
        """Liveness."""
        return _json(200, {"ok": True})

    async def readyz(self, request: web.Request) -> web.Response:
        """Readiness: every check, run concurrently."""
        names = list(self._checks)
        results = await asyncio.gather(*(self._run_check(name) for name in names))
        checks = dict(zip(names, results, strict=True))
        ready = all(result == "ok" for result in results)
        body: dict[str, object] = {"ok": ready, "checks": checks}
        for name, detail in self._details.items():
            try:
                body[name] = detail()
            except Exception as exc:  # a fact that cannot be read must not hide the checks
                log.warning("readiness detail %s failed", name, exc_info=True)
                body[name] = failure_text(exc)
        return _json(200 if ready else 503, body)

    async def _run_check(self, name: str) -> str:
        try:
            async with asyncio.timeout(self._check_timeout):
                passed = await self._checks[name]()
        except TimeoutError:
            return f"fail: no answer within {self._check_timeout:g} s"
        except Exception as exc:
            log.warning("readiness check %s failed", name, exc_info=True)
            return failure_text(exc)
        return "ok" if passed else "fail"

    async def metrics(self, request: web.Request) -> web.Response:
        """The Prometheus exposition."""
        assert self._metrics is not None  # noqa: S101 - the route exists only with a source
        try:
            body = await self._metrics()
        except Exception:
            log.exception("could not collect metrics")
            return web.Response(status=500, text="could not collect metrics\n")
        return web.Response(body=body, headers={"Content-Type": self._metrics_content_type})


class AdminServer(Listener):
    """An aiohttp server with only the admin routes."""

    def __init__(
        self,
        routes: AdminRoutes,
        *,
        host: str,
        port: int,
        limits: ListenerLimits | None = None,
    ) -> None:
        super().__init__(
            web.Application(),
            host=host,
            port=port,
            name="admin listener (health, metrics)",
            limits=limits,
        )
        routes.install(self.app)
