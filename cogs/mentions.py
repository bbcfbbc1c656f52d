"""Discord's markup for mentions and timestamps, as values of a localised sentence.

A mention or a timestamp fills a placeholder (``{role}``, ``{when}``) and every client shows it
in its own language: the role's or channel's name, "in 3 hours" / "3 時間後". Built here rather
than inline so the sentence around it stays one literal message id.
"""

from __future__ import annotations


def user_mention(user_id: int) -> str:
    """``<@42>``."""
    return f"<@{user_id}>"


def role_mention(role_id: int) -> str:
    """``<@&42>``."""
    return f"<@&{role_id}>"


def channel_mention(channel_id: int) -> str:
    """``<#42>``."""
    return f"<#{channel_id}>"


def relative_time(epoch: float) -> str:
    """``<t:1800000000:R>``: "in 2 hours", "3 minutes ago", in the reader's language."""
    return f"<t:{int(epoch)}:R>"
