"""Prometheus metrics (prometheus-client), in a registry of their own.

What is measured, and where it comes from:

* ``stemcord_jobs{state}`` — jobs by state, read from the store at scrape time
  (:meth:`JobStore.count_by_state`); every state is exported, zeros included.
* ``stemcord_unfinished_jobs`` — jobs not in a final state (no message posted yet and not
  cancelled), and ``stemcord_oldest_unfinished_job_age_seconds`` — the age of the oldest of
  them (0 when there is none): a stuck job shows as a growing age.
* ``stemcord_vidgo_calls_total{endpoint,outcome}`` — HTTP attempts to Vidgo, read at scrape
  time from :attr:`VidgoClient.calls` (the client counts them; nothing is counted twice).
* ``stemcord_callbacks_total{outcome}`` — requests to the callback listener by how they were
  answered (accepted, ignored, unknown, bad_json, too_large, wrong_type).
* ``stemcord_delivery_latency_seconds{outcome}`` — from the job's outcome being recorded to
  its message being posted (histogram).
* ``stemcord_retention_pruned_total{what}`` — what retention retired: ``jobs`` deleted,
  ``cache`` entries deleted or reduced to a pointer (a once-only separation keeps its task
  id), ``media`` folders of kept files removed.
* ``stemcord_vidgo_credits`` — Vidgo credits left as last read by :mod:`bot.credits` (every
  ``CREDITS_CHECK_MINUTES``, never polled), and
  ``stemcord_vidgo_credits_read_timestamp_seconds`` — when Vidgo said so. Both are absent
  until the first read: a 0 would look like an empty balance.
* ``stemcord_info{version}`` and the standard ``process_*`` series (CPU, resident memory,
  open files, start time) of prometheus-client's process collector.

The engine and the listener report through the small protocols in :mod:`bot.observe`, so
they never import this module.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from importlib import metadata

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from storage.base import JobStore
from storage.jobstate import FINAL_STATES, JobState

CONTENT_TYPE = CONTENT_TYPE_LATEST
# From "answered within moments" to "Discord made us wait a long time" (429s, retries).
DELIVERY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
UNFINISHED_STATES = frozenset(JobState) - FINAL_STATES


def _version() -> str:
    try:
        return metadata.version("stemcord")
    except metadata.PackageNotFoundError:  # running from a source tree without installing
        return "unknown"


class VidgoCallsCollector(Collector):
    """Exports a live ``(endpoint, outcome) -> count`` mapping as a counter family."""

    def __init__(self, calls: Callable[[], Mapping[tuple[str, str], int]]) -> None:
        self._calls = calls

    def collect(self) -> Iterator[Metric]:
        """One sample per (endpoint, outcome) seen so far."""
        family = CounterMetricFamily(
            "stemcord_vidgo_calls",
            "HTTP attempts to Vidgo by endpoint and outcome",
            labels=["endpoint", "outcome"],
        )
        for (endpoint, outcome), count in sorted(self._calls().items()):
            family.add_metric([endpoint, outcome], count)
        yield family


class CreditsCollector(Collector):
    """The last credit balance read, exported only once there is one."""

    def __init__(self) -> None:
        self.credits: int | None = None
        self.read_at: float | None = None

    def collect(self) -> Iterator[Metric]:
        """Nothing before the first read; then the balance and when it was read."""
        if self.credits is None or self.read_at is None:
            return
        yield GaugeMetricFamily(
            "stemcord_vidgo_credits", "Vidgo credits left, as last read", value=self.credits
        )
        yield GaugeMetricFamily(
            "stemcord_vidgo_credits_read_timestamp_seconds",
            "When Vidgo last reported the credit balance (epoch seconds)",
            value=self.read_at,
        )


class StemcordMetrics:
    """Every Stemcord metric; implements the observers of :mod:`bot.observe`."""

    def __init__(
        self,
        *,
        vidgo_calls: Callable[[], Mapping[tuple[str, str], int]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self.registry = CollectorRegistry()
        self.jobs = Gauge("stemcord_jobs", "Jobs by state", ["state"], registry=self.registry)
        self.unfinished = Gauge(
            "stemcord_unfinished_jobs",
            "Jobs not yet delivered, undeliverable or cancelled",
            registry=self.registry,
        )
        self.oldest_unfinished_age = Gauge(
            "stemcord_oldest_unfinished_job_age_seconds",
            "Age of the oldest unfinished job (0 when there is none)",
            registry=self.registry,
        )
        self.callbacks = Counter(
            "stemcord_callbacks",
            "Requests to the callback listener by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.delivery_latency = Histogram(
            "stemcord_delivery_latency_seconds",
            "Seconds from a job's outcome being recorded to its message being posted",
            ["outcome"],
            buckets=DELIVERY_BUCKETS,
            registry=self.registry,
        )
        self.pruned = Counter(
            "stemcord_retention_pruned",
            "Rows removed by retention",
            ["what"],
            registry=self.registry,
        )
        Info("stemcord", "The running Stemcord", registry=self.registry).info(
            {"version": _version()}
        )
        ProcessCollector(registry=self.registry)
        if vidgo_calls is not None:
            self.registry.register(VidgoCallsCollector(vidgo_calls))
        self._credits = CreditsCollector()
        self.registry.register(self._credits)

    # --- observers (bot.observe) ------------------------------------------------------------

    def delivered(self, outcome: str, latency: float) -> None:
        """See :class:`bot.observe.DeliveryObserver`."""
        self.delivery_latency.labels(outcome=outcome).observe(max(latency, 0.0))

    def callback(self, outcome: str) -> None:
        """See :class:`bot.observe.CallbackObserver`."""
        self.callbacks.labels(outcome=outcome).inc()

    def retention_pruned(self, what: str, count: int) -> None:
        """Retention removed ``count`` rows of ``what`` (``jobs`` or ``cache``)."""
        if count:
            self.pruned.labels(what=what).inc(count)

    def vidgo_credits(self, credits: int, read_at: float) -> None:
        """Vidgo reported ``credits`` left at ``read_at`` (see :mod:`bot.credits`)."""
        self._credits.credits = credits
        self._credits.read_at = read_at

    # --- scrape -----------------------------------------------------------------------------

    async def refresh(self, store: JobStore) -> None:
        """Read the job gauges from the store (called before each scrape)."""
        counts = await store.count_by_state()
        for state in JobState:
            self.jobs.labels(state=state.value).set(counts.get(state, 0))
        self.unfinished.set(sum(counts.get(state, 0) for state in UNFINISHED_STATES))
        oldest = await store.oldest_unfinished_created_at()
        self.oldest_unfinished_age.set(0.0 if oldest is None else max(0.0, self._clock() - oldest))

    def render(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)

    async def scrape(self, store: JobStore) -> bytes:
        """Refresh from the store, then render."""
        await self.refresh(store)
        return self.render()
