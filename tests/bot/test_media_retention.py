"""Kept media goes with the retention task: old results' files are deleted, recent ones stay."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.media import MediaStore
from bot.retention import DAY, RetentionPolicy, RetentionTask, prune_once
from storage.base import JobStore
from tests.helpers import NOW


@pytest.fixture
def media(tmp_path: Path) -> Iterator[MediaStore]:
    with MediaStore.open_sync(tmp_path / "media") as store:
        yield store


async def result(media: MediaStore, key: str, age_days: float, size: int = 1000) -> None:
    await media.put_bytes(key, "vocals.mp3", b"v" * size)
    when = NOW - age_days * DAY
    for path in (media.path_of(key, "vocals.mp3"), media.root / key):
        os.utime(path, (when, when))


async def test_results_older_than_the_media_retention_are_deleted(
    store: JobStore, media: MediaStore
) -> None:
    await result(media, "old-task", 8, size=3000)
    await result(media, "new-task", 6)
    report = await prune_once(store, RetentionPolicy(media_days=7), NOW, media=media)
    assert (report.media, report.media_bytes) == (1, 3000)
    assert not media.exists("old-task", "vocals.mp3")
    assert media.exists("new-task", "vocals.mp3")


async def test_zero_media_days_keeps_every_file(store: JobStore, media: MediaStore) -> None:
    await result(media, "old-task", 400)
    report = await prune_once(store, RetentionPolicy(media_days=0), NOW, media=media)
    assert report.media == 0 and media.exists("old-task", "vocals.mp3")


class Recorder:
    def __init__(self) -> None:
        self.pruned: list[tuple[str, int]] = []
        self.ran = asyncio.Event()

    def retention_pruned(self, what: str, count: int) -> None:
        self.pruned.append((what, count))
        if what == "media":
            self.ran.set()


async def test_the_retention_task_prunes_media_and_reports_it(
    store: JobStore, media: MediaStore
) -> None:
    await result(media, "old-task", 30)
    recorder = Recorder()
    task = RetentionTask(
        store, RetentionPolicy(media_days=7), observer=recorder, clock=lambda: NOW, media=media
    )
    task.start()
    try:
        await asyncio.wait_for(recorder.ran.wait(), 10)
    finally:
        await task.stop()
    assert recorder.pruned == [("jobs", 0), ("cache", 0), ("media", 1)]
    assert task.last_report is not None and task.last_report.media == 1
