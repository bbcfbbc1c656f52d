"""How a ``DATABASE_URL`` is shown to the operator: never with its password."""

from __future__ import annotations

import pytest

from storage.factory import database_password, display_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("sqlite:///data/x.sqlite3", "data/x.sqlite3"),
        (
            "postgresql://bot:pa%40ss@db.internal:5432/stemcord?schema=karaoke",
            "postgresql://bot@db.internal:5432/stemcord?schema=karaoke",
        ),
        # Other query parameters may carry secrets (libpq accepts password=): never shown.
        (
            "postgres://bot@db/stemcord?password=hunter2&sslmode=require",
            "postgres://bot@db/stemcord",
        ),
        ("postgresql://[::1]:5433/test", "postgresql://[::1]:5433/test"),
    ],
)
def test_a_url_is_shown_without_secrets(url: str, shown: str) -> None:
    assert display_url(url) == shown
    assert "hunter2" not in display_url(url) and "pa%40ss" not in display_url(url)


def test_the_password_is_known_for_redaction_decoded() -> None:
    assert database_password("postgresql://bot:pa%40ss@db/stemcord") == "pa@ss"
    assert database_password("postgresql://bot@db/stemcord") is None
    assert database_password("sqlite:///data/x.sqlite3") is None
