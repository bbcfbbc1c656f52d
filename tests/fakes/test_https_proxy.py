"""The test HTTPS proxy: real TLS with a private CA, forwarding, 502 without a backend."""

from __future__ import annotations

import socket
import ssl

import aiohttp
import pytest
from aiohttp import web

from tests.fakes.https_proxy import HttpsProxy


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_forwards_over_tls_and_answers_502_without_a_backend() -> None:
    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"path": request.path, "body": await request.text()})

    app = web.Application()
    app.router.add_post("/{tail:.*}", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = int(runner.addresses[0][1])
    try:
        async with HttpsProxy(port) as proxy, aiohttp.ClientSession() as session:
            async with session.post(proxy.url + "/a/b", data="hi", ssl=proxy.client_ssl) as r:
                assert r.status == 200
                assert await r.json() == {"path": "/a/b", "body": "hi"}
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                async with session.post(proxy.url + "/a", ssl=ssl.create_default_context()):
                    pass
            proxy.target_port = closed_port()
            async with session.post(proxy.url + "/a", ssl=proxy.client_ssl) as r:
                assert r.status == 502
            assert [status for _, _, status in proxy.forwarded] == [200, 502]
    finally:
        await runner.cleanup()
