"""Stemcord's audio engine: karaoke backing tracks from Vidgo's stems, key and tempo changes,
fitting a file under an upload limit, and a process pool to run all of it off the event loop.

Discord-free and engine-free: functions take paths and return small reports, and every one is
a top-level, picklable function so it can run in :class:`AudioPool`. See ``docs/audio.md``.
"""

from bot.audio.errors import (
    AudioError,
    AudioInputError,
    InputTooLong,
    InvalidSetting,
    JobFailed,
    JobTimedOut,
    NothingToMix,
    PoolBusy,
    PoolClosed,
    PoolError,
    UnpicklableJob,
    UnreadableAudio,
    UnsupportedLayout,
    WorkerCrashed,
)
from bot.audio.fit import FitResult, fit_to_limit
from bot.audio.key import RenderReport, render_key
from bot.audio.mix import MixReport, mix_backing_track
from bot.audio.pool import AudioPool
from bot.audio.stems import select_backing_stems
from bot.audio.stream import AudioInfo, probe

__all__ = [
    "AudioError",
    "AudioInfo",
    "AudioInputError",
    "AudioPool",
    "FitResult",
    "InputTooLong",
    "InvalidSetting",
    "JobFailed",
    "JobTimedOut",
    "MixReport",
    "NothingToMix",
    "PoolBusy",
    "PoolClosed",
    "PoolError",
    "RenderReport",
    "UnpicklableJob",
    "UnreadableAudio",
    "UnsupportedLayout",
    "WorkerCrashed",
    "fit_to_limit",
    "mix_backing_track",
    "probe",
    "render_key",
    "select_backing_stems",
]
