"""What a member asks to separate, validated before any Vidgo call.

Three kinds of source (see ``docs/decisions.md``):

* a Vidgo generation, by ``task_id`` + ``audio_id`` or by a pasted ``storage.vidgo.ai`` song
  link that carries both -> ``separate-vocals`` (stems=vocals) or ``stem-split`` (stems=all);
* any other http(s) audio link, or a Discord attachment -> ``upload-and-separate-vocals``,
  with the member's ``quality`` (:class:`Quality`) as the upload model's ``model_name``.

A link to a page of a streaming or video service (YouTube, Spotify, SoundCloud, …; matched by
host, subdomains included: :func:`streaming_service`) is not audio: Vidgo cannot separate a
web page and Stemcord fetches nothing itself, so it is refused at once
(:class:`StreamingPage`) with what to do instead.

Every rejection is a :class:`SourceError` naming the problem with a stable code
(:class:`SourceProblem`) and its values; the Discord layer words it in the member's language
and says how to fix the input (``cogs/separate.py``). Its ``str()`` is an English line for logs.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath
from urllib.parse import quote, unquote, urlsplit

from bot.vidgo.results import Model
from storage.records import SourceKind

MAX_URL_LENGTH = 2048
MAX_ID_LENGTH = 100
_ID_CHARS = re.compile(r"^[A-Za-z0-9._-]+$")
_CONTROL = re.compile(r"[\x00-\x20\x7f-\x9f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060\ufeff]")
_VIDGO_HOSTS = frozenset({"storage.vidgo.ai"})
_SONG_FILE = re.compile(
    r"_audio_(?P<audio_id>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
    r"\.[A-Za-z0-9]+$"
)
AUDIO_EXTENSIONS = frozenset(
    {".mp3", ".wav", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".wma", ".aiff", ".aif"}
)


class SourceProblem(StrEnum):
    """Why an input cannot be used (the cogs word each one; see :class:`SourceError`)."""

    NO_SOURCE = "no_source"  # nothing to separate was given
    MANY_SOURCES = "many_sources"  # more than one source was given
    ID_MISSING = "id_missing"  # one of task_id/audio_id without the other (values: name)
    ID_EMPTY = "id_empty"  # values: name
    ID_TOO_LONG = "id_too_long"  # values: name, length, limit
    ID_CHARACTERS = "id_characters"  # values: name
    LINK_EMPTY = "link_empty"
    LINK_TOO_LONG = "link_too_long"  # values: length, limit
    LINK_INVISIBLE = "link_invisible"  # spaces or invisible characters
    NOT_HTTP = "not_http"
    STREAMING_PAGE = "streaming_page"  # values: service
    NOT_AUDIO = "not_audio"  # values: filename
    FILE_TOO_LARGE = "file_too_large"  # values: filename, size, limit (bytes)
    NO_AUDIO_IN_MESSAGE = "no_audio_in_message"  # the message menu found nothing
    NOT_A_VIDGO_SONG = "not_a_vidgo_song"  # a link where only a Vidgo song will do


class SourceError(ValueError):
    """The input cannot be used: ``problem`` says why, ``values`` carry the details.

    ``values`` hold what a sentence needs (an option's name, a length, a service's name, a
    file name); the member-typed ones are shown escaped by the cog.
    """

    def __init__(self, problem: SourceProblem, **values: str | int) -> None:
        detail = ", ".join(f"{k}={v!r}" for k, v in values.items())
        super().__init__(f"{problem.value}" + (f" ({detail})" if detail else ""))
        self.problem = problem
        self.values: dict[str, str | int] = dict(values)


# Pages of streaming and video services, by registrable host: the host itself and every
# subdomain of it (www., m., music., open., on., …) match. Names are what members call them.
STREAMING_HOSTS: dict[str, str] = {
    "youtube.com": "YouTube",
    "youtu.be": "YouTube",
    "youtube-nocookie.com": "YouTube",
    "spotify.com": "Spotify",
    "spotify.link": "Spotify",
    "soundcloud.com": "SoundCloud",
    "soundcloud.app.goo.gl": "SoundCloud",
    "snd.sc": "SoundCloud",
    "music.apple.com": "Apple Music",
    "itunes.apple.com": "Apple Music",
    "deezer.com": "Deezer",
    "deezer.page.link": "Deezer",
    "dzr.page.link": "Deezer",
    "tidal.com": "Tidal",
    "bandcamp.com": "Bandcamp",
    "tiktok.com": "TikTok",
    "instagram.com": "Instagram",
    "instagr.am": "Instagram",
    "vimeo.com": "Vimeo",
    "twitch.tv": "Twitch",
    "dailymotion.com": "Dailymotion",
    "dai.ly": "Dailymotion",
    "facebook.com": "Facebook",
    "fb.watch": "Facebook",
    "x.com": "X",
    "twitter.com": "X",
    "mixcloud.com": "Mixcloud",
    "audiomack.com": "Audiomack",
    "pandora.com": "Pandora",
    "qobuz.com": "Qobuz",
    "napster.com": "Napster",
    "anghami.com": "Anghami",
    "boomplay.com": "Boomplay",
    "jiosaavn.com": "JioSaavn",
    "bilibili.com": "Bilibili",
    "b23.tv": "Bilibili",
    "nicovideo.jp": "Niconico",
    "nico.ms": "Niconico",
    "reddit.com": "Reddit",
    "music.youtube.com": "YouTube Music",
}
# Services with one site per country: music.amazon.de, music.amazon.co.jp, music.yandex.ru …
_COUNTRY_SITES = (
    (re.compile(r"(?:^|\.)music\.amazon\.(?:com?\.)?[a-z]{2,3}$"), "Amazon Music"),
    (re.compile(r"(?:^|\.)music\.yandex\.[a-z]{2,3}$"), "Yandex Music"),
)


def streaming_service(url: str) -> str | None:
    """The streaming or video service whose page ``url`` is (by host), or ``None``."""
    try:
        host = (urlsplit(url.strip()).hostname or "").rstrip(".")
    except ValueError:
        return None
    labels = host.split(".")
    # The most specific match first: music.youtube.com before youtube.com.
    for start in range(len(labels) - 1):
        name = STREAMING_HOSTS.get(".".join(labels[start:]))
        if name is not None:
            return name
    for pattern, name in _COUNTRY_SITES:
        if pattern.search(host):
            return name
    return None


class StreamingPage(SourceError):
    """The link is a page of a streaming or video service (see :func:`streaming_service`)."""

    def __init__(self, service: str) -> None:
        super().__init__(SourceProblem.STREAMING_PAGE, service=service)
        self.service = service


class Quality(StrEnum):
    """The ``quality`` option of ``/separate``, for files and links (the upload model)."""

    STANDARD = "standard"
    ENHANCED = "enhanced"

    @property
    def model_name(self) -> str:
        """The upload model's ``input.model_name`` (docs/vidgo-api.md §3.3)."""
        return "enhanced" if self is Quality.ENHANCED else "base"


class StemChoice(StrEnum):
    """The ``stems`` option of ``/separate``."""

    VOCALS = "vocals"  # vocals + instrumental
    ALL = "all"  # every stem Vidgo produces


@dataclass(frozen=True, slots=True)
class Source:
    """A validated source of audio."""

    kind: SourceKind
    task_id: str | None = None
    audio_id: str | None = None
    url: str | None = None
    filename: str | None = None

    @property
    def label(self) -> str:
        """A short description for status messages (escape before rendering)."""
        if self.kind is SourceKind.IDS:
            return f"Vidgo track {self.audio_id}"
        if self.filename:
            return self.filename
        return self.url or "audio"


@dataclass(frozen=True, slots=True)
class Plan:
    """Which Vidgo model a source goes to, with its options and coalescing key."""

    model: Model
    options: dict[str, str]
    source_key: str


def clean_id(value: str, *, name: str) -> str:
    """Trim and check a Vidgo id (task or audio)."""
    cleaned = value.strip()
    if not cleaned:
        raise SourceError(SourceProblem.ID_EMPTY, name=name)
    if len(cleaned) > MAX_ID_LENGTH:
        raise SourceError(
            SourceProblem.ID_TOO_LONG, name=name, length=len(cleaned), limit=MAX_ID_LENGTH
        )
    if not _ID_CHARS.match(cleaned):
        raise SourceError(SourceProblem.ID_CHARACTERS, name=name)
    return cleaned


def check_url(value: str) -> str:
    """Trim and check an http(s) link."""
    url = value.strip().strip("<>")
    if not url:
        raise SourceError(SourceProblem.LINK_EMPTY)
    if len(url) > MAX_URL_LENGTH:
        raise SourceError(SourceProblem.LINK_TOO_LONG, length=len(url), limit=MAX_URL_LENGTH)
    if _CONTROL.search(url):
        raise SourceError(SourceProblem.LINK_INVISIBLE)
    parts = urlsplit(url)
    if parts.scheme.lower() not in {"http", "https"} or not parts.hostname:
        raise SourceError(SourceProblem.NOT_HTTP)
    return url


def parse_vidgo_song_link(url: str) -> tuple[str, str] | None:
    """``(task_id, audio_id)`` from a ``storage.vidgo.ai/audio/<task_id>/…_audio_<id>.mp3`` link."""
    parts = urlsplit(url)
    if (parts.hostname or "").lower() not in _VIDGO_HOSTS:
        return None
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if len(segments) < 3 or segments[0] != "audio":
        return None
    match = _SONG_FILE.search(segments[-1])
    if match is None or not _ID_CHARS.match(segments[1]):
        return None
    return segments[1], match["audio_id"].lower()


def source_from_ids(task_id: str, audio_id: str) -> Source:
    """A Vidgo generation named by its ids."""
    return Source(
        SourceKind.IDS,
        task_id=clean_id(task_id, name="task_id"),
        audio_id=clean_id(audio_id, name="audio_id"),
    )


def source_from_link(link: str) -> Source:
    """A pasted link: a Vidgo song link counts as ids, a streaming or video page is refused
    (:class:`StreamingPage`), anything else is uploaded by URL."""
    url = check_url(link)
    ids = parse_vidgo_song_link(url)
    if ids is not None:
        return Source(SourceKind.IDS, task_id=ids[0], audio_id=ids[1], url=url)
    service = streaming_service(url)
    if service is not None:
        raise StreamingPage(service)
    name = PurePosixPath(unquote(urlsplit(url).path)).name or None
    return Source(SourceKind.URL, url=url, filename=name)


def source_from_attachment(
    url: str, filename: str, content_type: str | None, size: int, max_bytes: int
) -> Source:
    """A Discord attachment, which must look like audio and fit the size limit."""
    suffix = PurePosixPath(filename).suffix.lower()
    looks_audio = (content_type or "").lower().startswith("audio/") or suffix in AUDIO_EXTENSIONS
    if not looks_audio:
        raise SourceError(SourceProblem.NOT_AUDIO, filename=filename)
    if size > max_bytes:
        raise SourceError(
            SourceProblem.FILE_TOO_LARGE, filename=filename, size=size, limit=max_bytes
        )
    # Discord builds the CDN URL from the file name; make sure spaces and the like are encoded.
    encoded = quote(url.strip(), safe=":/?&=%#~+@!$'()*,;[]")
    return Source(SourceKind.ATTACHMENT, url=check_url(encoded), filename=filename)


def plan_for(source: Source, stems: StemChoice, quality: Quality | None = None) -> Plan:
    """Choose the Vidgo model and the key that identical requests share.

    Uploaded audio always comes back as all six stems: Vidgo's upload model has no
    two-stem mode, so ``stems`` only matters for Vidgo songs. ``quality`` only matters for
    uploads (``None`` = standard): it is sent as ``model_name`` and is part of the key, so a
    standard and an enhanced separation of one file are never joined or served from each
    other's cache. A standard key is the key of old jobs that sent no ``model_name`` (Vidgo's
    default is ``base``), so their cached results still count. A Vidgo song has no such
    choice; a quality asked for one is only remembered (``options["quality"]``) so the status
    message can say it was not used.
    """
    if source.kind is SourceKind.IDS:
        model = Model.SEPARATE_VOCALS if stems is StemChoice.VOCALS else Model.STEM_SPLIT
        noted = {"quality": quality.value} if quality is not None else {}
        return Plan(model, noted, f"{model.value}:{source.task_id}:{source.audio_id}")
    assert source.url is not None  # noqa: S101 - url and attachment sources carry a URL
    chosen = quality or Quality.STANDARD
    options = {"output_type": "general", "model_name": chosen.model_name}
    if source.filename:
        options["title"] = source.filename[:200]
    # Attachment CDN URLs are signed and change, so the key ignores the query string for them.
    keyed = source.url.split("?", 1)[0] if source.kind is SourceKind.ATTACHMENT else source.url
    digest = hashlib.sha256(keyed.encode()).hexdigest()[:32]
    model = Model.UPLOAD_AND_SEPARATE
    variant = "" if chosen is Quality.STANDARD else f"{chosen.model_name}:"
    return Plan(model, options, f"{model.value}:general:{variant}{digest}")
