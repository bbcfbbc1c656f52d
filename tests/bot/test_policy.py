"""Per-server policy: defaults, round trip through the store, and tolerance of bad data."""

from __future__ import annotations

from pathlib import Path

from bot.policy import GuildPolicy, load_policy, save_policy
from storage.sqlite import SqliteJobStore


def test_defaults_match_the_documented_limits() -> None:
    policy = GuildPolicy()
    assert policy.allowed_channel_ids == ()
    assert policy.max_unfinished == 2
    assert policy.daily_quota == 10
    assert policy.cooldown_seconds == 0
    assert policy.dm_on_completion is False
    assert policy.moderator_role_id is None
    assert policy.server_daily_cap == 0


def test_stored_round_trip_keeps_every_setting() -> None:
    policy = GuildPolicy(
        allowed_channel_ids=(1, 2),
        result_channel_id=3,
        required_role_id=4,
        moderator_role_id=5,
        max_unfinished=1,
        daily_quota=0,
        cooldown_seconds=30,
        dm_on_completion=True,
        server_daily_cap=40,
    )
    assert GuildPolicy.from_stored(policy.to_stored()) == policy


def test_unknown_and_mistyped_values_fall_back_to_defaults() -> None:
    stored = {
        "allowed_channel_ids": ["x"],
        "max_unfinished": -1,
        "daily_quota": True,
        "cooldown_seconds": "5",
        "dm_on_completion": 1,
        "moderator_role_id": "7",
        "server_daily_cap": -3,
        "something_new": 9,
    }
    assert GuildPolicy.from_stored(stored) == GuildPolicy()


async def test_policy_is_saved_per_guild(tmp_path: Path) -> None:
    store = SqliteJobStore(tmp_path / "db.sqlite3")
    await store.open()
    try:
        await save_policy(store, 1, GuildPolicy(daily_quota=3), 100.0)
        assert (await load_policy(store, 1)).daily_quota == 3
        assert await load_policy(store, 2) == GuildPolicy()
        assert await load_policy(store, None) == GuildPolicy()
    finally:
        await store.close()


def test_the_server_cap_reaches_the_store_with_the_member_limits() -> None:
    limits = GuildPolicy(server_daily_cap=25, daily_quota=3).admission_limits()
    assert (limits.server_daily_cap, limits.daily_quota) == (25, 3)
    assert GuildPolicy(max_unfinished=0, daily_quota=0, server_daily_cap=1).admission_limits().any
