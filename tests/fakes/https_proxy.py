"""A tiny HTTPS reverse proxy on 127.0.0.1, like the Caddy/nginx in front of a real bot.

It terminates TLS with a certificate from a private test CA (trustme) and forwards every
request to ``http://127.0.0.1:<target_port>``; :attr:`HttpsProxy.client_ssl` trusts that CA.
When nothing listens on the target it answers 502, as a real proxy does.
"""

from __future__ import annotations

import ssl
from types import TracebackType
from typing import Self

import aiohttp
import trustme
from aiohttp import web


class HttpsProxy:
    """``https://127.0.0.1:<port>`` -> ``http://127.0.0.1:<target_port>``."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._ca = trustme.CA()
        self._cert = self._ca.issue_cert("127.0.0.1")
        self.client_ssl = ssl.create_default_context()
        self._ca.configure_trust(self.client_ssl)
        self.forwarded: list[tuple[str, str, int]] = []
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._port: int | None = None

    @property
    def url(self) -> str:
        """The proxy's https base URL."""
        if self._port is None:
            raise RuntimeError("proxy not started")
        return f"https://127.0.0.1:{self._port}"

    async def start(self) -> None:
        """Listen on a free port."""
        server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._cert.configure_cert(server_ssl)
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=server_ssl)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

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

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() in {"content-type"}}
        target = f"http://127.0.0.1:{self.target_port}{request.rel_url}"
        try:
            async with self._session.request(
                request.method, target, data=body, headers=headers
            ) as upstream:
                data = await upstream.read()
                status = upstream.status
                content_type = upstream.headers.get("Content-Type", "text/plain")
        except aiohttp.ClientError:
            self.forwarded.append((request.method, request.path, 502))
            return web.Response(status=502, text="502 Bad Gateway")
        self.forwarded.append((request.method, request.path, status))
        return web.Response(status=status, body=data, headers={"Content-Type": content_type})
