"""Where the stem fetcher may download from.

The rule is an **exact host match** against a small set: no suffix or wildcard matching, no
resolving first. The default set is Vidgo's storage host plus the host of ``VIDGO_BASE_URL``
(:func:`default_allowed_hosts`), so a test pointing ``VIDGO_BASE_URL`` at a fake on 127.0.0.1
can download the fake's files with no other setting. ``https`` is required except for loopback
hosts (``localhost``, ``127.0.0.0/8``, ``::1``), which never leave the machine.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from yarl import URL

from bot.media.errors import HostNotAllowed, InsecureUrl, InvalidUrl

VIDGO_STORAGE_HOST = "storage.vidgo.ai"
MAX_URL_CHARS = 4096

# A DNS name or an IP literal as yarl spells hosts (lowercase, IPv6 without brackets).
_HOST = re.compile(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?|[0-9a-f:.]{2,45}")
_BAD_URL_CHAR = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")


def normalize_host(host: str) -> str:
    """Lowercase, without a trailing dot (``Storage.Vidgo.AI.`` is ``storage.vidgo.ai``)."""
    return host.strip().lower().rstrip(".")


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback IP literal; plain http is allowed only to these."""
    host = normalize_host(host)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_of(url: str) -> str:
    """The normalized host of an http(s) URL, or :class:`InvalidUrl`."""
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        raise InvalidUrl("not a valid URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidUrl("not an http(s) URL with a host")
    return normalize_host(parsed.host)


def default_allowed_hosts(vidgo_base_url: str) -> frozenset[str]:
    """``storage.vidgo.ai`` and the host of ``VIDGO_BASE_URL``: where Vidgo's results live."""
    return frozenset({VIDGO_STORAGE_HOST, host_of(vidgo_base_url)})


def parse_allowed_hosts(value: str | Iterable[str] | None, vidgo_base_url: str) -> frozenset[str]:
    """The allowed set from ``MEDIA_ALLOWED_HOSTS``: comma-separated exact host names.

    Empty or unset means :func:`default_allowed_hosts`. A set value *replaces* the default
    (list ``storage.vidgo.ai`` too if it is still wanted). Wildcards, schemes, ports and paths
    are refused with :class:`ValueError`, so a typo never silently allows more than meant.
    """
    items = value.split(",") if isinstance(value, str) else list(value or ())
    hosts = {normalize_host(item) for item in items if item.strip()}
    if not hosts:
        return default_allowed_hosts(vidgo_base_url)
    for host in hosts:
        if _HOST.fullmatch(host) is None or ".." in host:
            raise ValueError(
                "MEDIA_ALLOWED_HOSTS takes exact host names separated by commas "
                "(no scheme, port, path or wildcard)"
            )
    return frozenset(hosts)


def check_url(raw: str, allowed: frozenset[str]) -> URL:
    """Parse ``raw`` and refuse it unless the fetcher may connect to it.

    Raises :class:`InvalidUrl` (not absolute http(s), credentials, odd characters, too long),
    :class:`HostNotAllowed` or :class:`InsecureUrl`. Nothing here touches the network.
    """
    if len(raw) > MAX_URL_CHARS or _BAD_URL_CHAR.search(raw):
        raise InvalidUrl("not a valid URL (too long, or spaces or control characters)")
    try:
        url = URL(raw)
    except (ValueError, TypeError):
        raise InvalidUrl("not a valid URL") from None
    return check_parsed(url, allowed)


def check_parsed(url: URL, allowed: frozenset[str]) -> URL:
    """:func:`check_url` for an already parsed URL (a redirect target)."""
    if not url.is_absolute() or url.scheme not in ("http", "https") or not url.host:
        raise InvalidUrl("not an absolute http(s) URL")
    if url.user is not None or url.password is not None:
        raise InvalidUrl("credentials in the URL are not allowed")
    host = normalize_host(url.host)
    if host not in allowed:
        raise HostNotAllowed(_printable(host))
    if url.scheme != "https" and not is_loopback(host):
        raise InsecureUrl(host)
    return url


def _printable(host: str) -> str:
    """A host fit for a one-line message: no control characters, at most 100 characters."""
    cleaned = _BAD_URL_CHAR.sub("?", host)
    return cleaned if len(cleaned) <= 100 else cleaned[:99] + "…"
