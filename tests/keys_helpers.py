"""What the key tests share: a kept backing track in a real media store, a separation that
names it, and an audio pool that counts the work it is given.

The backing track is a 440 Hz tone (the fake stems' ``vocals`` sound), so a key change is
checked by the frequency that comes out: +2 semitones puts it at 493.88 Hz.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.audio import AudioPool
from bot.media import MediaStore
from bot.vidgo.results import TaskDetail, TrackInfo
from storage.jobstate import JobState
from storage.records import JobRecord
from tests.fakes.audio import decode, dominant_frequency, write_stem
from tests.helpers import job

TONE_HZ = 440.0
MEDIA_KEY = "sep0000001"
BACKING = "instrumental.mp3"
SECONDS = 3.0


def shifted(frequency: float, semitones: int) -> float:
    """``frequency`` moved by ``semitones`` in equal temperament."""
    return frequency * 2 ** (semitones / 12)


def write_tone(path: Path, *, seconds: float = SECONDS, bitrate_kbps: int = 192) -> Path:
    """A stereo 440 Hz MP3."""
    return write_stem(path, "vocals", seconds=seconds, bitrate_kbps=bitrate_kbps)


async def keep_backing(
    store: MediaStore,
    scratch: Path,
    *,
    media_key: str = MEDIA_KEY,
    name: str = BACKING,
    seconds: float = SECONDS,
    bitrate_kbps: int = 192,
) -> Path:
    """Put a 440 Hz backing track into ``store`` as ``media_key/name``; its stored path."""
    source = write_tone(scratch / f"{media_key}-{name}", seconds=seconds, bitrate_kbps=bitrate_kbps)
    stored = await store.put_file(media_key, name, source)
    return stored.path


def media_entry(media_key: str = MEDIA_KEY, backing: str | None = BACKING) -> dict[str, Any]:
    """A separation result's ``media`` entry, as the media stage writes it."""
    files = {"instrumental": backing} if backing else {}
    return {"key": media_key, "files": files, "backing": backing, "error": None}


def kept_separation(**changes: Any) -> JobRecord:
    """A succeeded, posted separation whose result names the kept backing track."""
    result = {
        "stems": {"vocals": "https://s/v.mp3", "instrumental": "https://s/i.mp3"},
        "vidgo_task_id": "task",
        "media": media_entry(),
    }
    fields: dict[str, Any] = {
        "id": "sep0000001",
        "result": result,
        "result_message_id": 5555,
        "state": JobState.DELIVERED,
        "outcome": JobState.SUCCEEDED,
    }
    fields.update(changes)
    return job(**fields)


class CountingPool(AudioPool):
    """A real pool that remembers the name of every function it was given."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls: list[str] = []

    async def run_with_timeout(
        self, run_seconds: float | None, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> Any:
        self.calls.append(fn.__name__)
        return await super().run_with_timeout(run_seconds, fn, *args, **kwargs)

    def count(self, name: str) -> int:
        """How many jobs of ``name`` (``render_key``, ``fit_to_limit``) it took."""
        return self.calls.count(name)


def frequency_of(data: bytes) -> float:
    """The dominant frequency of an MP3 given as bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "heard.mp3"
        path.write_bytes(io.BytesIO(data).getvalue())
        samples, rate = decode(path)
    return dominant_frequency(samples, rate)


class NoVidgo:
    """The engine's Vidgo reads, for engines that run only local kinds (never called)."""

    async def get_task(self, task_id: str) -> TaskDetail:
        raise AssertionError("a local job was polled")

    async def get_track(self, task_id: str, audio_id: str) -> TrackInfo | None:
        raise AssertionError("a local job asked for a track")
