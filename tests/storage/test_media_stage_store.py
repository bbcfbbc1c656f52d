"""What the post-success step needs from every store: its mark, and the cached result's edits."""

from __future__ import annotations

from storage.base import JobStore
from storage.jobstate import JobState
from storage.records import Admission, CachedResult
from tests.helpers import NOW, new_job

MEDIA = {"key": "task-1", "files": {"vocals": "vocals.mp3"}, "backing": None, "error": None}


async def test_the_prepared_mark_is_stored_and_read_back(store: JobStore) -> None:
    await store.admit(new_job("j1"), NOW, submit_lease_until=NOW + 60)
    [done] = await store.record_outcome("j1", JobState.SUCCEEDED, NOW, result={"stems": {}})
    assert done.prepared_at is None
    updated = await store.update("j1", NOW + 1, prepared_at=NOW + 1)
    assert updated.prepared_at == NOW + 1
    fetched = await store.get("j1")
    assert fetched is not None and fetched.prepared_at == NOW + 1


async def test_a_cache_hit_starts_without_the_mark(store: JobStore) -> None:
    await store.cache_put(CachedResult("k", "separate-vocals", "task-1", {"stems": {}}, None, NOW))
    admitted = await store.admit(new_job("j2", key="k"), NOW, submit_lease_until=NOW + 60)
    assert admitted.admission is Admission.CACHED
    assert admitted.job.prepared_at is None


async def test_the_cached_result_is_updated_only_while_it_holds_the_same_task(
    store: JobStore,
) -> None:
    await store.cache_put(CachedResult("k", "separate-vocals", "task-1", {"stems": {}}, None, NOW))
    assert await store.cache_update_result("k", "task-2", {"stems": {}, "media": MEDIA}) is False
    assert await store.cache_update_result("k", "task-1", {"stems": {}, "media": MEDIA}) is True
    cached = await store.cache_get("k")
    assert cached is not None
    assert cached.result == {"stems": {}, "media": MEDIA}
    assert cached.created_at == NOW  # retention still counts from when it was made
    assert await store.cache_update_result("missing", "task-1", {}) is False


async def test_a_cached_result_is_forgotten_only_while_it_holds_the_same_task(
    store: JobStore,
) -> None:
    model = "upload-and-separate-vocals"
    await store.cache_put(CachedResult("k", model, "task-1", {"stems": {}}, None, NOW))
    assert await store.cache_forget("k", "task-2") is False
    assert await store.cache_get("k") is not None
    assert await store.cache_forget("k", "task-1") is True
    assert await store.cache_get("k") is None
    assert await store.cache_forget("k", "task-1") is False


async def test_a_forgotten_once_only_separation_keeps_its_task_id(store: JobStore) -> None:
    await store.cache_put(CachedResult("k", "stem-split", "task-1", {"stems": {}}, None, NOW))
    assert await store.cache_forget("k", "task-2") is False
    assert await store.cache_forget("k", "task-1") is True
    pointer = await store.cache_get("k")
    assert pointer is not None and pointer.is_pointer
    assert (pointer.model, pointer.vidgo_task_id) == ("stem-split", "task-1")
    assert await store.cache_forget("k", "task-1") is False  # already a pointer
