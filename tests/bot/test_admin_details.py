"""Facts readiness reports beside its checks (the app's ``shards``), over a real socket."""

from __future__ import annotations

import json

import aiohttp
import pytest

from bot.admin import AdminRoutes, AdminServer


async def ok() -> bool:
    return True


async def get_readyz(routes: AdminRoutes) -> tuple[int, dict[str, object]]:
    server = AdminServer(routes, host="127.0.0.1", port=0)
    await server.start()
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(server.base_url + "/readyz") as response,
        ):
            return response.status, json.loads(await response.text())
    finally:
        await server.stop()


async def test_details_are_reported_beside_the_checks_and_read_at_each_request() -> None:
    connected = [0]
    routes = AdminRoutes(
        checks={"discord": ok},
        details={"shards": lambda: {"count": 2, "connected": list(connected)}},
    )
    assert await get_readyz(routes) == (
        200,
        {"ok": True, "checks": {"discord": "ok"}, "shards": {"count": 2, "connected": [0]}},
    )
    connected.append(1)
    assert (await get_readyz(routes))[1]["shards"] == {"count": 2, "connected": [0, 1]}


async def test_a_detail_that_cannot_be_read_is_named_and_never_hides_the_checks() -> None:
    def broken() -> object:
        raise RuntimeError("no shards yet\nsecond line")

    status, body = await get_readyz(AdminRoutes(checks={"discord": ok}, details={"shards": broken}))
    # A fact is not a check: readiness still follows the checks alone.
    assert status == 200
    assert body == {
        "ok": True,
        "checks": {"discord": "ok"},
        "shards": "fail: RuntimeError (no shards yet)",
    }


@pytest.mark.parametrize("name", ["ok", "checks"])
def test_a_detail_may_not_take_the_name_of_the_verdict_or_the_checks(name: str) -> None:
    with pytest.raises(ValueError, match="may not be named"):
        AdminRoutes(checks={}, details={name: lambda: 1})
