"""One aiohttp listener's life cycle: bind (port 0 picks a free one), serve, stop.

The callback listener and the admin listener are both one of these with their own routes.
"""

from __future__ import annotations

import logging

from aiohttp import web

log = logging.getLogger(__name__)


class Listener:
    """Serves ``app`` on ``host:port`` between :meth:`start` and :meth:`stop`."""

    def __init__(self, app: web.Application, *, host: str, port: int, name: str) -> None:
        self.app = app
        self._host = host
        self._port = port
        self._name = name
        self._runner: web.AppRunner | None = None
        self._bound_port: int | None = None

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        if self._bound_port is None:
            raise RuntimeError("server not started")
        return self._bound_port

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running listener (for local probes and tests)."""
        host = "127.0.0.1" if self._host in ("0.0.0.0", "", "::") else self._host  # noqa: S104
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Bind and serve."""
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()  # e.g. the port is taken: leave nothing half-open
            raise
        self._runner = runner
        self._bound_port = int(runner.addresses[0][1])
        log.info("%s on %s:%s", self._name, self._host, self._bound_port)

    async def stop(self) -> None:
        """Stop accepting and close."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
