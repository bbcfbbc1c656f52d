"""The small hooks the engine and the callback listener report through.

They keep :mod:`bot.engine` and :mod:`bot.webhook` free of any metrics library:
:class:`bot.metrics.StemcordMetrics` implements both protocols with prometheus-client, tests
can pass a recorder, and without an observer nothing is reported.
"""

from __future__ import annotations

from typing import Protocol


class DeliveryObserver(Protocol):
    """Told when a job's message was posted."""

    def delivered(self, outcome: str, latency: float) -> None:
        """``outcome`` is the job's outcome (succeeded, failed, expired); ``latency`` is the
        seconds from the outcome being known to the message being posted."""


class CallbackObserver(Protocol):
    """Told how each request to the callback listener was answered."""

    def callback(self, outcome: str) -> None:
        """``outcome``: accepted, ignored, unknown, bad_json, too_large, wrong_type."""
