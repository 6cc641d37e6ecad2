"""Every failure of redis-py as a `StoreError` that names its cause, and store URLs shown
without their password.

What can clear by itself is retryable: a lost or refused connection, a timeout, a server
that is loading its data (`LOADING`), running a slow script (`BUSY`), read-only (`READONLY`,
a replica), moving slots (`TRYAGAIN`, `CLUSTERDOWN`, `MASTERDOWN`), without the script it
was asked to run (`NOSCRIPT`: its scripts flushed again and again), or out of memory
(`OOM`: `StoreFull`). A lost consumer group is `NoGroup`. Anything else (a key of the wrong
type, a wrong password) is a plain, final `StoreError`.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from redis import exceptions as rx

from .store import NoGroup, StoreError, StoreFull, StoreUnavailable

_TRANSIENT_REPLIES = ("LOADING", "BUSY", "TRYAGAIN", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "NOREPLICAS",
                      "NOSCRIPT",  # (a script flushed again between its load and its call)
                      "UNBLOCKED")  # (a blocking read ended by a slot's move or a failover)
_NOGROUP = re.compile(r"No such key '([^']*)' or consumer group '([^']*)'")
_TAGGED = re.compile(r"^[^{]*\{([^}]*)\}")  # a key's hash tag: the store's stream names


_SECRET_PARAM = re.compile(r"pass|secret|token|key", re.IGNORECASE)
_PLAIN_NETLOC = re.compile(r"^[^/?#@]*$")  # a user part urlsplit reads whole (no '/', '?', '#', '@' in it)


def redact(url: str) -> str:
    """The URL with its password replaced by `***`: in its user part, and in any query
    parameter that can hold one (`?password=`, which redis-py reads too)."""
    scheme, found, rest = url.partition("://")
    last = rest.rfind("@")
    if found and last >= 0 and not _PLAIN_NETLOC.match(rest[:last]):
        # A user part that urlsplit would misread (a password with '/', '?', '#' or '@' in
        # it): everything before the last '@' is hidden but the user name.
        user = rest[:last].split(":", 1)[0] if ":" in rest[:last] else ""
        return redact(f"{scheme}://{user}:***@{rest[last + 1:]}")
    parts = urlsplit(url)
    query = parts.query
    if query:
        query = "&".join(f"{name}=***" if _SECRET_PARAM.search(name) else f"{name}={value}" if sep else name
                         for name, sep, value in (item.partition("=") for item in query.split("&")))
    netloc = parts.netloc
    userinfo, at, hosts = netloc.rpartition("@")  # (hosts: one, or a cluster's list)
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:***@{hosts}"
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def password_of(url: str) -> str | None:
    """The password in the URL's user part, else in a `password` query parameter."""
    parts = urlsplit(url)
    if parts.password is not None:
        return parts.password
    for name, value in parse_qsl(parts.query):
        if name == "password" and value:
            return value
    return None


class Describer:
    """Turns redis-py's exceptions into StoreErrors for one store URL, scrubbing the password
    from every text (a server's message may quote what it was sent)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.shown = redact(url)
        self.secret = password_of(url)
        self.tls = url.startswith("rediss")  # (rediss:// and rediss+cluster://)

    def _scrub(self, text: str) -> str:
        return text.replace(self.secret, "***") if self.secret else text

    def __call__(self, exc: BaseException, *, group: str = "?", stream_of_key: dict[str, str] | None = None
                 ) -> StoreError:
        """The StoreError for `exc`; a NOGROUP names the stream (found in `stream_of_key`, by
        the key the server quotes) and `group`. Anything that is not Redis's (a value redis-py
        cannot encode, say) is a final StoreError too: a caller is never left waiting."""
        if isinstance(exc, StoreError):
            return exc
        text = self._scrub(str(exc) or type(exc).__name__)
        if isinstance(exc, (rx.AuthenticationError, rx.AuthorizationError, rx.AuthenticationWrongNumberOfArgsError,
                            rx.NoPermissionError)):
            return StoreError(f"Redis at {self.shown} refused the credentials: {text}")
        if isinstance(exc, rx.OutOfMemoryError) or (isinstance(exc, rx.ResponseError) and text.startswith("OOM")):
            return StoreFull(f"Redis at {self.shown} refused the write: out of memory ({text}); "
                             "raise maxmemory or free memory, and keep maxmemory-policy noeviction")
        if isinstance(exc, rx.BusyLoadingError) or (
                isinstance(exc, rx.ResponseError) and text.split(" ", 1)[0] in _TRANSIENT_REPLIES):
            return StoreUnavailable(f"Redis at {self.shown} cannot serve now: {text}")
        if isinstance(exc, rx.ResponseError) and text.startswith("NOGROUP"):
            found = _NOGROUP.search(text)
            key, named = (found.group(1), found.group(2)) if found else ("", group)
            tagged = _TAGGED.match(key)
            stream = (stream_of_key or {}).get(key) or (tagged.group(1) if tagged else key)
            return NoGroup(stream, named)
        if isinstance(exc, (rx.ConnectionError, rx.TimeoutError, OSError, ConnectionError, TimeoutError)):
            hint = ""
            if self.tls and isinstance(exc, (rx.TimeoutError, TimeoutError, OSError, rx.ConnectionError)):
                hint = " (a rediss:// URL: does the server speak TLS on that port?)"
            return StoreUnavailable(f"cannot reach Redis at {self.shown}: {text}{hint}")
        if isinstance(exc, rx.ResponseError) and text.startswith(("MOVED ", "ASK ")):
            return StoreError(f"Redis at {self.shown} answered {text}: it is a node of a Redis Cluster; use "
                              "redis+cluster://HOST:PORT[,HOST:PORT...]")
        if isinstance(exc, rx.RedisError):
            return StoreError(f"Redis at {self.shown} answered with an error: {text}")
        return StoreError(f"cannot send to Redis at {self.shown}: {type(exc).__name__}: {text}")
