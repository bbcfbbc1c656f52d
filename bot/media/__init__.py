"""Keeping Vidgo's result files and serving them back: download, store, sign, serve.

Vidgo's result links expire (about a day; an upload's files after about three), so Stemcord
keeps the audio itself. Four pieces, none of which knows about Discord or the job engine:

* :class:`StemFetcher` downloads one result URL, safely (allowed hosts only, hand-checked
  redirects, size cap, timeouts, whole-or-nothing);
* :class:`MediaStore` keeps files per result under ``MEDIA_DIR`` with a disk-space guard and
  retention;
* :class:`MediaSigner` makes and checks signed, expiring links;
* :class:`MediaRoutes` serves them on an aiohttp application (ranges included).

See docs/media.md for how they fit together and the settings they expect.
"""

from bot.media.atomic import DownloadTarget, FileTarget, PartFile, WrittenFile
from bot.media.errors import (
    FetchConnectionError,
    FetchError,
    FetchTimeout,
    HostNotAllowed,
    HttpStatusError,
    InsecureUrl,
    InsufficientSpace,
    InvalidMediaName,
    InvalidUrl,
    MediaError,
    NotAudio,
    RedirectNotAllowed,
    StoreError,
    TooLarge,
    TooManyRedirects,
    Truncated,
)
from bot.media.fetcher import FetchResult, StemFetcher
from bot.media.hosts import default_allowed_hosts, parse_allowed_hosts
from bot.media.routes import MediaRoutes
from bot.media.signing import LinkVerdict, MediaSigner, load_or_create_secret
from bot.media.store import MediaStore, PruneReport, ResultInfo, StoredFile

__all__ = [
    "DownloadTarget",
    "FetchConnectionError",
    "FetchError",
    "FetchResult",
    "FetchTimeout",
    "FileTarget",
    "HostNotAllowed",
    "HttpStatusError",
    "InsecureUrl",
    "InsufficientSpace",
    "InvalidMediaName",
    "InvalidUrl",
    "LinkVerdict",
    "MediaError",
    "MediaRoutes",
    "MediaSigner",
    "MediaStore",
    "NotAudio",
    "PartFile",
    "PruneReport",
    "RedirectNotAllowed",
    "ResultInfo",
    "StemFetcher",
    "StoreError",
    "StoredFile",
    "TooLarge",
    "TooManyRedirects",
    "Truncated",
    "WrittenFile",
    "default_allowed_hosts",
    "load_or_create_secret",
    "parse_allowed_hosts",
]
