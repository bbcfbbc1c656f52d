"""Operator flags (migration V8): shared by every process, and each change seen once."""

from __future__ import annotations

import asyncio

from storage.base import JobStore
from tests.conftest import StoreBackend

NOW = 1_800_000_000.0


async def test_an_absent_flag_is_off(store: JobStore) -> None:
    assert await store.get_flag("credits_low_warned") is False
    # Turning off what is already off changes nothing.
    assert await store.set_flag("credits_low_warned", False, NOW) is False
    assert await store.get_flag("credits_low_warned") is False


async def test_set_flag_reports_only_real_changes(store: JobStore) -> None:
    assert await store.set_flag("credits_low_warned", True, NOW) is True
    assert await store.get_flag("credits_low_warned") is True
    assert await store.set_flag("credits_low_warned", True, NOW + 1) is False
    assert await store.set_flag("credits_low_warned", False, NOW + 2) is True
    assert await store.get_flag("credits_low_warned") is False
    assert await store.set_flag("credits_low_warned", False, NOW + 3) is False


async def test_flags_are_independent(store: JobStore) -> None:
    await store.set_flag("one", True, NOW)
    assert await store.get_flag("two") is False


async def test_a_flag_outlives_the_store_that_set_it(backend: StoreBackend) -> None:
    first = await backend.open_store()
    assert await first.set_flag("credits_low_warned", True, NOW) is True
    await first.close()
    again = await backend.open_store()
    assert await again.get_flag("credits_low_warned") is True
    assert await again.set_flag("credits_low_warned", True, NOW + 1) is False


async def test_of_two_stores_setting_a_flag_at_once_one_sees_the_change(
    backend: StoreBackend,
) -> None:
    first, second = await backend.open_store(), await backend.open_store()
    for round_no in range(5):
        name = f"flag-{round_no}"
        changed = await asyncio.gather(
            first.set_flag(name, True, NOW), second.set_flag(name, True, NOW)
        )
        assert sorted(changed) == [False, True]
