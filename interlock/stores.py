"""Event stores by URL: `open_store("memory://")`, `open_store("redis://HOST:PORT/DB")` or
`open_store("redis+cluster://HOST:PORT,HOST:PORT")`, with the store's own options in the
query: `?max_event_bytes=N` on any store, `min_replicas` and `replica_timeout` on Redis.

The one place that turns a store URL into an `EventStore`: `interlock.load(store=...)`,
`interlock serve --store` and any other command that takes a store use it. A URL is never
shown with its password: messages and `repr`s replace it with `***`.
"""

from __future__ import annotations

import re

from interlock.runtime.memory_store import MemoryStore
from interlock.runtime.redis_errors import redact
from interlock.runtime.store import EventStore, max_event_bytes_option

MEMORY = "memory://"
REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")


class StoreURLError(ValueError):
    """A store URL that names no store interlock knows, or a Redis URL that cannot be read."""


def open_store(url: str) -> EventStore:
    """The store a URL names: `memory://` (in this process), `redis://HOST:PORT/DB`,
    `rediss://...` (TLS), `unix:///path/to/redis.sock`, or a Redis Cluster by some of its
    nodes, `redis+cluster://HOST:PORT[,HOST:PORT...]` (`rediss+cluster://` for TLS).
    Nothing is connected yet: a Redis store connects when it is first used."""
    if url == MEMORY or url.startswith(MEMORY + "?"):
        return MemoryStore(max_event_bytes=_memory_option(url))
    if url.startswith(REDIS_SCHEMES):
        from redis.asyncio.connection import parse_url

        from interlock.runtime.redis_nodes import parse_cluster_url
        from interlock.runtime.redis_store import RedisStore

        try:
            store = RedisStore(url)  # (its own options, `?min_replicas=N&replica_timeout=S`, read)
            cluster = parse_cluster_url(store.url)
            parse_url(store.url if cluster is None else cluster.node_url(*cluster.seeds[0]))
        except ValueError as exc:
            raise StoreURLError(f"cannot read the Redis URL {_shown(url)!r}: {_scrubbed(str(exc), url)}") from None
        return store
    raise StoreURLError(f"unknown store {_shown(url)!r}: use memory:// (one process), redis://HOST:PORT/DB "
                        "(rediss:// for TLS) or redis+cluster://HOST:PORT,HOST:PORT (a Redis Cluster)")


def _memory_option(url: str) -> int:
    """`max_event_bytes` of `memory://?max_event_bytes=N`, the one option of the memory store."""
    query = url.partition("?")[2]
    value = None
    for item in query.split("&") if query else []:
        name, sep, text = item.partition("=")
        if name != "max_event_bytes" or not sep or value is not None:
            raise StoreURLError(f"memory:// takes one option, max_event_bytes=N (bytes), not {item[:40]!r}")
        value = text
    try:
        return max_event_bytes_option(value)
    except ValueError as exc:
        raise StoreURLError(f"{url[:80]!r}: {exc}") from None


def _shown(url: str) -> str:
    """The URL as it may be shown: its password replaced (all but the scheme, when the URL
    is too broken to find the password in)."""
    try:
        return redact(url)
    except ValueError:
        return url.split("://", 1)[0] + "://..."


def _scrubbed(detail: str, url: str) -> str:
    """What a URL parser said of the URL, unless it quotes a piece of the URL's user part
    (a password with '/', '?' or '#' in it, which the parser read as something else)."""
    userinfo = url.partition("://")[2].rpartition("@")[0]
    if any(len(piece) >= 3 and piece in detail for piece in re.split(r"[:#/?@]", userinfo)):
        return "a password with '/', '?', '#' or '@' in it must be percent-encoded"
    return detail
