"""Metrics: what each Prometheus series reports, from the store, the client and the hooks."""

from __future__ import annotations

import collections

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.metrics import UNFINISHED_STATES, StemcordMetrics
from bot.webhook import CallbackServer
from storage.base import JobStore
from storage.jobstate import FINAL_STATES, JobState
from tests.bot.conftest import MakeHarness
from tests.bot.engine_harness import DONE, KNOWN, RecordingSink
from tests.fakes.vidgo import FakeVidgo
from tests.helpers import NOW, new_job


def samples(metrics: StemcordMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, parsed back with prometheus-client's own parser."""
    found = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_unfinished_means_not_final() -> None:
    assert set(JobState) == UNFINISHED_STATES | FINAL_STATES
    assert not UNFINISHED_STATES & FINAL_STATES


async def test_job_gauges_come_from_the_store(store: JobStore) -> None:
    metrics = StemcordMetrics(clock=lambda: NOW + 100)
    await store.admit(new_job("a", key="k1"), NOW - 50, submit_lease_until=NOW)
    await store.admit(new_job("b", key="k2"), NOW + 10, submit_lease_until=NOW)
    await store.admit(new_job("c", key="k3"), NOW - 500, submit_lease_until=NOW)
    await store.record_outcome("c", JobState.FAILED, NOW, last_error="x")
    await store.transition("c", JobState.DELIVERED, NOW, due_at=None)
    await metrics.refresh(store)
    got = samples(metrics)
    assert got[("stemcord_jobs", (("state", "accepted"),))] == 2
    assert got[("stemcord_jobs", (("state", "delivered"),))] == 1
    assert got[("stemcord_jobs", (("state", "running"),))] == 0  # every state is exported
    assert got[("stemcord_unfinished_jobs", ())] == 2
    # The delivered job is older, but only unfinished jobs count.
    assert got[("stemcord_oldest_unfinished_job_age_seconds", ())] == 150


async def test_oldest_age_is_zero_without_unfinished_jobs(store: JobStore) -> None:
    metrics = StemcordMetrics()
    await metrics.refresh(store)
    assert samples(metrics)[("stemcord_oldest_unfinished_job_age_seconds", ())] == 0


def test_vidgo_calls_are_read_live_from_the_client_counter() -> None:
    calls: collections.Counter[tuple[str, str]] = collections.Counter()
    metrics = StemcordMetrics(vidgo_calls=lambda: calls)
    assert not [k for k in samples(metrics) if k[0] == "stemcord_vidgo_calls_total"]
    calls[("submit", "ok")] += 2
    calls[("detail", "transient")] += 1
    got = samples(metrics)
    assert got[("stemcord_vidgo_calls_total", (("endpoint", "submit"), ("outcome", "ok")))] == 2
    key = ("stemcord_vidgo_calls_total", (("endpoint", "detail"), ("outcome", "transient")))
    assert got[key] == 1


def test_delivery_latency_histogram_and_retention_counter() -> None:
    metrics = StemcordMetrics()
    metrics.delivered("succeeded", 0.3)
    metrics.delivered("succeeded", 12.0)
    metrics.delivered("failed", -1.0)  # a clock step backwards counts as 0
    metrics.retention_pruned("jobs", 5)
    metrics.retention_pruned("cache", 0)
    got = samples(metrics)
    ok = (("outcome", "succeeded"),)
    assert got[("stemcord_delivery_latency_seconds_count", ok)] == 2
    assert got[("stemcord_delivery_latency_seconds_sum", ok)] == pytest.approx(12.3)
    assert got[("stemcord_delivery_latency_seconds_bucket", (("le", "0.5"), *ok))] == 1
    assert (
        got[("stemcord_delivery_latency_seconds_bucket", (("le", "0.05"), ("outcome", "failed")))]
        == 1
    )
    assert got[("stemcord_retention_pruned_total", (("what", "jobs"),))] == 5
    assert ("stemcord_retention_pruned_total", (("what", "cache"),)) not in got


async def test_callbacks_are_counted_by_outcome_over_http() -> None:
    metrics = StemcordMetrics()
    srv = CallbackServer(RecordingSink(), host="127.0.0.1", port=0, max_body=1024, observer=metrics)
    await srv.start()
    base = f"http://127.0.0.1:{srv.port}/vidgo/callback/"
    try:
        async with aiohttp.ClientSession() as session:
            for token, kwargs in (
                (KNOWN, {"json": {}}),
                (KNOWN, {"json": {}}),
                (DONE, {"json": {}}),
                ("u" * 22, {"json": {}}),
                ("bad!", {"json": {}}),
                (KNOWN, {"data": b"{}", "headers": {"Content-Type": "text/plain"}}),
                (KNOWN, {"data": b"{not json", "headers": {"Content-Type": "application/json"}}),
                (KNOWN, {"json": {"x": "y" * 2000}}),
            ):
                async with session.post(base + token, **kwargs) as resp:  # type: ignore[arg-type]
                    await resp.read()
    finally:
        await srv.stop()
    got = {
        labels[0][1]: value
        for (name, labels), value in samples(metrics).items()
        if name == "stemcord_callbacks_total"
    }
    assert got == {
        "accepted": 2,
        "ignored": 1,
        "unknown": 2,
        "wrong_type": 1,
        "bad_json": 1,
        "too_large": 1,
    }


async def test_engine_reports_delivery_latency(make_harness: MakeHarness, vidgo: FakeVidgo) -> None:
    h = await make_harness()
    metrics = StemcordMetrics()
    assert h.engine is not None
    h.engine.observer = metrics
    job = (await h.separate_ids()).job
    job = await h.wait_state(job.id, JobState.SUBMITTED, JobState.RUNNING)
    await vidgo.finish(job.vidgo_task_id or "")
    await h.wait_state(job.id, JobState.DELIVERED, timeout=10)
    got = samples(metrics)
    assert got[("stemcord_delivery_latency_seconds_count", (("outcome", "succeeded"),))] == 1
    assert got[("stemcord_delivery_latency_seconds_sum", (("outcome", "succeeded"),))] >= 0


def test_version_and_process_series_are_exported() -> None:
    got = samples(StemcordMetrics())
    [(_, labels)] = [key for key in got if key[0] == "stemcord_info"]
    assert dict(labels)["version"] not in ("", "unknown")
    assert got[("process_resident_memory_bytes", ())] > 0
