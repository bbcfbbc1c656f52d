"""MediaStore on a real directory: names, atomic puts, the disk guard, retention, crash safety."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.media.errors import InsufficientSpace, InvalidMediaName, StoreError
from bot.media.store import TEMP_DIR, TREE_LOCK, MediaStore

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MediaStore]:
    with MediaStore.open_sync(tmp_path / "media") as opened:
        yield opened


def files_in(directory: Path) -> list[str]:
    """Every stored file (the store's own hidden locks and temporary folder left out)."""
    return sorted(
        str(p.relative_to(directory))
        for p in directory.rglob("*")
        if p.is_file() and not p.relative_to(directory).parts[0].startswith(".")
    )


def temp_files(root: Path) -> list[Path]:
    """Files under ``.tmp`` other than session locks (what a writer left behind)."""
    return [p for p in (root / TEMP_DIR).rglob("*") if p.is_file() and not p.name.endswith(".lock")]


def age(store: MediaStore, key: str, days: float) -> None:
    """Make every file of ``key`` (and its directory) look ``days`` old at NOW."""
    when = (NOW - timedelta(days=days)).timestamp()
    directory = store.root / key
    for path in directory.iterdir():
        os.utime(path, (when, when))
    os.utime(directory, (when, when))


# -- names ----------------------------------------------------------------------------------


BAD_KEYS = ["", ".", "..", "../x", "a/b", "a\\b", "a.b", "a b", "a\x00", "é", "k" * 129, " k"]
BAD_NAMES = [
    "",
    "..",
    ".mp3",
    "vocals",
    "../vocals.mp3",
    "a/vocals.mp3",
    "a\\vocals.mp3",
    "vocals.mp3.gz",
    "vocals..mp3",
    "vocals.MP3",
    "vocals.mp3\x00",
    "vocals .mp3",
    "vocals.mp3/",
    "v" * 101 + ".mp3",
    "vocals.abcdefghi",
    "vöcals.mp3",
]


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_traversal_and_odd_keys_are_refused(store: MediaStore, key: str) -> None:
    with pytest.raises(InvalidMediaName):
        store.path_of(key, "vocals.mp3")
    with pytest.raises(InvalidMediaName):
        await store.put_bytes(key, "vocals.mp3", b"x")
    with pytest.raises(InvalidMediaName):
        await store.list_files(key)
    with pytest.raises(InvalidMediaName):
        await store.delete(key)
    with pytest.raises(InvalidMediaName):
        store.target(key, "vocals.mp3")
    assert files_in(store.root) == []


@pytest.mark.parametrize("name", BAD_NAMES)
async def test_traversal_and_odd_names_are_refused(store: MediaStore, name: str) -> None:
    with pytest.raises(InvalidMediaName):
        store.path_of("job1", name)
    with pytest.raises(InvalidMediaName):
        await store.put_bytes("job1", name, b"x")
    with pytest.raises(InvalidMediaName):
        store.exists("job1", name)
    assert files_in(store.root) == []


def test_job_ids_and_vidgo_task_ids_are_valid_keys(store: MediaStore) -> None:
    for key in ("8FDN1I7M7Q68DDG8", "-Xy_9aB3cD4eF5gH6iJ7kL", "a"):
        assert store.path_of(key, "vocals.mp3") == store.root / key / "vocals.mp3"


def test_invalid_name_message_does_not_echo_the_input(store: MediaStore) -> None:
    with pytest.raises(InvalidMediaName) as caught:
        store.path_of("job1", "<script>.mp3")
    assert "<script>" not in str(caught.value)


# -- puts and look-ups ----------------------------------------------------------------------


async def test_put_bytes_lands_and_is_listed_with_its_size(store: MediaStore) -> None:
    stored = await store.put_bytes("job1", "vocals.mp3", b"v" * 300)
    await store.put_bytes("job1", "instrumental.mp3", b"i" * 500)
    await store.put_bytes("job2", "vocals.mp3", b"w" * 7)

    assert stored.size == 300
    assert stored.path == store.root / "job1" / "vocals.mp3"
    assert stored.modified.tzinfo is not None
    assert store.path_of("job1", "vocals.mp3").read_bytes() == b"v" * 300
    listed = await store.list_files("job1")
    assert [(f.name, f.size) for f in listed] == [("instrumental.mp3", 500), ("vocals.mp3", 300)]
    assert store.exists("job2", "vocals.mp3")
    assert not store.exists("job2", "instrumental.mp3")
    assert await store.list_files("nothing") == []


async def test_put_replaces_an_existing_file_of_the_same_name(store: MediaStore) -> None:
    await store.put_bytes("job1", "mix.mp3", b"first")
    await store.put_bytes("job1", "mix.mp3", b"second version")
    assert store.path_of("job1", "mix.mp3").read_bytes() == b"second version"
    assert files_in(store.root) == ["job1/mix.mp3"]


async def test_put_file_copies_and_leaves_the_source(store: MediaStore, tmp_path: Path) -> None:
    source = tmp_path / "mixed.mp3"
    source.write_bytes(b"m" * (3 * 1024 * 1024 + 5))  # more than one copy chunk
    stored = await store.put_file("job1", "mix.mp3", source)
    assert stored.size == source.stat().st_size
    assert store.path_of("job1", "mix.mp3").read_bytes() == source.read_bytes()
    assert source.exists()


async def test_stat_ignores_symlinks_and_directories(store: MediaStore, tmp_path: Path) -> None:
    outside = tmp_path / "secret.mp3"
    outside.write_bytes(b"not for members")
    (store.root / "job1").mkdir()
    (store.root / "job1" / "link.mp3").symlink_to(outside)
    (store.root / "job1" / "dir.mp3").mkdir()
    (store.root / "linked").symlink_to(store.root / "job1")
    await store.put_bytes("job1", "real.mp3", b"real")

    assert store.stat("job1", "link.mp3") is None
    assert store.stat("job1", "dir.mp3") is None
    assert store.stat("linked", "real.mp3") is None
    assert [f.name for f in await store.list_files("job1")] == ["real.mp3"]
    assert await store.list_files("linked") == []


async def test_list_results_is_oldest_first(store: MediaStore) -> None:
    for key, days in (("b", 1), ("a", 3), ("c", 2)):
        await store.put_bytes(key, "vocals.mp3", b"x" * 10)
        age(store, key, days)
    assert [r.key for r in await store.list_results()] == ["a", "c", "b"]


async def test_closed_store_refuses_puts(tmp_path: Path) -> None:
    store = MediaStore.open_sync(tmp_path / "media")
    store.close()
    with pytest.raises(StoreError, match="closed"):
        await store.put_bytes("job1", "vocals.mp3", b"x")


# -- the disk guard -------------------------------------------------------------------------


async def test_disk_guard_refuses_a_put_that_would_go_under_the_minimum(tmp_path: Path) -> None:
    with MediaStore.open_sync(
        tmp_path / "media", min_free_bytes=1000, free_bytes=lambda _: 1500
    ) as store:
        with pytest.raises(InsufficientSpace) as caught:
            await store.put_bytes("job1", "vocals.mp3", b"x" * 501)
        assert (caught.value.free, caught.value.needed, caught.value.minimum) == (1500, 501, 1000)
        assert not store.exists("job1", "vocals.mp3")
        # Exactly down to the minimum is still allowed.
        await store.put_bytes("job1", "vocals.mp3", b"x" * 500)
        assert store.exists("job1", "vocals.mp3")
        assert files_in(store.root) == ["job1/vocals.mp3"]


async def test_disk_guard_stops_a_stream_of_unknown_size_at_the_budget(tmp_path: Path) -> None:
    with MediaStore.open_sync(
        tmp_path / "media", min_free_bytes=1000, free_bytes=lambda _: 1300
    ) as store:
        part = store.open_part("job1", "vocals.mp3")
        part.write(b"x" * 200)
        with pytest.raises(InsufficientSpace):
            part.write(b"x" * 101)
        part.discard()
        assert files_in(store.root) == []


async def test_disk_guard_checks_again_just_before_the_file_appears(tmp_path: Path) -> None:
    # Plenty free when the write starts, then someone else fills the disk.
    readings = iter([10_000, 900])
    with MediaStore.open_sync(
        tmp_path / "media", min_free_bytes=1000, free_bytes=lambda _: next(readings)
    ) as store:
        with pytest.raises(InsufficientSpace):
            await store.put_bytes("job1", "vocals.mp3", b"x" * 10)
        assert files_in(store.root) == []


async def test_disk_guard_uses_the_real_free_space_by_default(tmp_path: Path) -> None:
    with (
        MediaStore.open_sync(tmp_path / "media", min_free_bytes=2**62) as store,
        pytest.raises(InsufficientSpace),
    ):
        await store.put_bytes("job1", "vocals.mp3", b"x")


# -- retention ------------------------------------------------------------------------------


async def test_retention_deletes_old_results_oldest_first_and_reports_what_it_freed(
    store: MediaStore,
) -> None:
    sizes = {"fresh": 10, "eightdays": 20, "thirtydays": 40, "ninedays": 80}
    ages = {"fresh": 1, "eightdays": 8, "thirtydays": 30, "ninedays": 9}
    for key, size in sizes.items():
        await store.put_bytes(key, "vocals.mp3", b"x" * size)
        await store.put_bytes(key, "instrumental.mp3", b"y" * size)
        age(store, key, ages[key])

    report = await store.prune(7, now=NOW)

    assert [r.key for r in report.removed] == ["thirtydays", "ninedays", "eightdays"]
    assert report.bytes_freed == 2 * (40 + 80 + 20)
    assert report.files_removed == 6
    assert [r.key for r in await store.list_results()] == ["fresh"]
    assert files_in(store.root) == ["fresh/instrumental.mp3", "fresh/vocals.mp3"]


async def test_retention_of_zero_days_keeps_everything(store: MediaStore) -> None:
    await store.put_bytes("ancient", "vocals.mp3", b"x")
    age(store, "ancient", 3650)
    report = await store.prune(0, now=NOW)
    assert report.removed == ()
    assert report.bytes_freed == 0
    assert store.exists("ancient", "vocals.mp3")


async def test_retention_measures_a_result_by_its_newest_file(store: MediaStore) -> None:
    await store.put_bytes("job1", "vocals.mp3", b"x")
    age(store, "job1", 20)
    await store.put_bytes("job1", "mix.mp3", b"mixed later")
    os.utime(store.path_of("job1", "mix.mp3"), (NOW.timestamp(), NOW.timestamp()))
    report = await store.prune(7, now=NOW)
    assert report.removed == ()
    assert store.exists("job1", "vocals.mp3")


async def test_retention_leaves_what_is_not_a_result_alone(store: MediaStore) -> None:
    (store.root / "notes.txt").write_text("operator's file")
    (store.root / "odd.dir").mkdir()
    for path in (store.root / "notes.txt", store.root / "odd.dir"):
        os.utime(path, (0, 0))
    report = await store.prune(1, now=NOW)
    assert report.removed == ()
    assert (store.root / "notes.txt").exists()
    assert (store.root / "odd.dir").exists()


async def test_retention_refuses_naive_time_and_negative_days(store: MediaStore) -> None:
    with pytest.raises(ValueError):
        await store.prune(7, now=NOW.replace(tzinfo=None))
    with pytest.raises(ValueError):
        await store.prune(-1, now=NOW)


async def test_delete_removes_a_whole_result_and_says_what_it_held(store: MediaStore) -> None:
    await store.put_bytes("job1", "vocals.mp3", b"x" * 3)
    await store.put_bytes("job1", "drums.mp3", b"y" * 4)
    gone = await store.delete("job1")
    assert gone is not None
    assert (gone.files, gone.size) == (2, 7)
    assert await store.delete("job1") is None
    assert files_in(store.root) == []


# -- crash safety and ownership -------------------------------------------------------------


async def test_leftover_temp_files_are_cleaned_at_open(tmp_path: Path) -> None:
    root = tmp_path / "media"
    (root / TEMP_DIR / "nested").mkdir(parents=True)
    (root / TEMP_DIR / ".vocals.mp3.0123456789abcdef.part").write_bytes(b"half")
    (root / TEMP_DIR / "nested" / "x").write_bytes(b"?")
    (root / "job1").mkdir()
    (root / "job1" / "vocals.mp3").write_bytes(b"kept")

    store = await MediaStore.open(root)
    try:
        assert store.cleaned_at_open == 2
        assert files_in(root) == ["job1/vocals.mp3"]
    finally:
        store.close()


def test_killed_writer_leaves_no_file_under_the_final_name(tmp_path: Path) -> None:
    root = tmp_path / "media"
    script = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from bot.media.store import MediaStore
        store = MediaStore.open_sync(Path({str(root)!r}))
        part = store.open_part("job1", "vocals.mp3")
        part.write(b"half of a stem" * 1000)
        os._exit(9)  # killed mid-write: no commit, no clean-up
        """
    )
    done = subprocess.run(  # noqa: S603 - runs this interpreter on a fixed script
        [sys.executable, "-c", script], cwd=REPO, check=False, capture_output=True
    )
    assert done.returncode == 9, done.stderr.decode()
    assert not (root / "job1" / "vocals.mp3").exists()
    assert len(temp_files(root)) == 1  # the half file, under its temp name

    with MediaStore.open_sync(root) as store:
        assert store.cleaned_at_open == 1  # the dead process's session folder
        assert files_in(root) == []
        assert temp_files(root) == []


async def test_a_second_process_shares_the_store_and_leaves_the_first_ones_writes_alone(
    tmp_path: Path,
) -> None:
    root = tmp_path / "media"
    first = MediaStore.open_sync(root)
    part = first.open_part("job1", "vocals.mp3")
    part.write(b"the first process is writing this")
    with MediaStore.open_sync(root) as second:
        # Opening did not clean the first store's file in flight...
        assert second.cleaned_at_open == 0
        assert part.temp_path.exists()
        # ...which still lands, and the second store sees it and writes its own.
        part.commit()
        assert second.exists("job1", "vocals.mp3")
        await second.put_bytes("job1", "drums.mp3", b"drums")
    assert first.exists("job1", "drums.mp3")
    first.close()
    assert temp_files(root) == []


def test_a_store_that_closed_leaves_no_session_behind(tmp_path: Path) -> None:
    root = tmp_path / "media"
    with MediaStore.open_sync(root):
        pass
    assert list((root / TEMP_DIR).iterdir()) == []


async def test_a_prune_does_not_lose_a_file_that_lands_in_the_result_meanwhile(
    store: MediaStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.put_bytes("old", "vocals.mp3", b"v")
    age(store, "old", 10)
    stale = store._list_results()  # what the prune saw before another process's put
    with MediaStore.open_sync(store.root) as other:
        await other.put_bytes("old", "instrumental.mp3", b"i")
    monkeypatch.setattr(store, "_list_results", lambda: stale)
    report = await store.prune(7, now=NOW)
    assert report.removed == ()
    assert files_in(store.root) == ["old/instrumental.mp3", "old/vocals.mp3"]


def test_removing_a_result_waits_for_a_put_in_progress_in_another_process(
    store: MediaStore,
) -> None:
    (store.root / "old").mkdir()
    (store.root / "old" / "vocals.mp3").write_bytes(b"v")
    age(store, "old", 10)
    # Another process is renaming a file into a result: it holds the tree lock shared.
    fd = os.open(store.root / TREE_LOCK, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_SH)
    finished = threading.Event()

    def remove() -> None:
        store._delete("old", None)
        finished.set()

    worker = threading.Thread(target=remove)
    worker.start()
    worker.join(0.3)
    still_there = (store.root / "old" / "vocals.mp3").exists()
    blocked = not finished.is_set()
    os.close(fd)  # the put is done
    worker.join()
    assert blocked and still_there
    assert not (store.root / "old").exists()


def test_open_refuses_a_negative_minimum(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        MediaStore.open_sync(tmp_path / "media", min_free_bytes=-1)


# -- scratch space and finished files -----------------------------------------------------


async def test_a_file_made_in_scratch_moves_in_by_rename_and_the_scratch_goes(
    store: MediaStore,
) -> None:
    async with store.scratch() as work:
        made = work / "instrumental.mp3"
        made.write_bytes(b"mix")
        inode = made.stat().st_ino
        stored = await store.move_in("job1", "instrumental.mp3", made)
        assert not made.exists()
    assert stored.size == 3 and stored.path.stat().st_ino == inode
    assert not work.exists()
    assert files_in(store.root) == ["job1/instrumental.mp3"]


async def test_a_finished_file_from_outside_the_scratch_moves_in_too(
    store: MediaStore, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.mp3"
    outside.write_bytes(b"x" * 10)
    stored = await store.move_in("job1", "vocals.mp3", outside)
    assert stored.size == 10 and store.exists("job1", "vocals.mp3")


async def test_move_in_obeys_the_disk_guard(tmp_path: Path) -> None:
    with MediaStore.open_sync(
        tmp_path / "media", min_free_bytes=100, free_bytes=lambda _: 50
    ) as store:
        async with store.scratch() as work:
            (work / "mix.mp3").write_bytes(b"m")
            with pytest.raises(InsufficientSpace):
                await store.move_in("job1", "mix.mp3", work / "mix.mp3")
        assert not store.exists("job1", "mix.mp3")


def test_check_space_refuses_work_that_would_go_under_the_minimum(tmp_path: Path) -> None:
    with MediaStore.open_sync(
        tmp_path / "media", min_free_bytes=100, free_bytes=lambda _: 150
    ) as store:
        store.check_space(50)  # exactly the minimum left: allowed
        with pytest.raises(InsufficientSpace):
            store.check_space(51)
