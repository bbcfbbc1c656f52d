"""Vidgo music API: the client, its errors and the parsing of its replies."""

from bot.vidgo.client import VidgoClient
from bot.vidgo.errors import (
    VidgoAuthError,
    VidgoDuplicateError,
    VidgoError,
    VidgoInvalidRequest,
    VidgoMalformedResponse,
    VidgoNotFound,
    VidgoRateLimited,
    VidgoTransientError,
)
from bot.vidgo.results import (
    Model,
    SubmitReceipt,
    TaskDetail,
    TaskStatus,
    TrackInfo,
    normalize_stems,
    parse_balance,
    parse_detail,
    parse_submit,
)

__all__ = [
    "Model",
    "SubmitReceipt",
    "TaskDetail",
    "TaskStatus",
    "TrackInfo",
    "VidgoAuthError",
    "VidgoClient",
    "VidgoDuplicateError",
    "VidgoError",
    "VidgoInvalidRequest",
    "VidgoMalformedResponse",
    "VidgoNotFound",
    "VidgoRateLimited",
    "VidgoTransientError",
    "normalize_stems",
    "parse_balance",
    "parse_detail",
    "parse_submit",
]
