"""The event-store contract on Redis Streams, on one server or a Redis Cluster.

Each operation is the Redis command the contract was written after: streams are Redis
streams, groups are consumer groups, pending entries and delivery counts are Redis's own
(XPENDING, XAUTOCLAIM), entries are JSON text in a field `e`. Each stream's delayed schedule
is a sorted set beside it, scored by due time; a Lua script moves due entries into the
stream, so an entry is never both scheduled and appended. The key layout and the scripts
are in runtime/redis_scripts.py; every key of a stream shares its hash tag, so that every
script and multi-key command keeps to one hash slot. Commands go over the store's own
pipelined connections (runtime/redis_nodes.py: which server holds a key, redirections,
failover). The clock is
this machine's (XADD ids use the server's: on one machine they agree; across machines,
keep clocks in sync).

Failures are StoreErrors (runtime/redis_errors.py), the URL shown without its password.
Connecting times out after `connect_timeout` seconds; commands after `command_timeout`.
"""

from __future__ import annotations

import asyncio
import os
import time
import weakref
from typing import Any

from redis.asyncio.cluster import ClusterNode, RedisCluster

from . import redis_scripts as lua
from .redis_batch import Batch, Script
from .redis_errors import Describer, redact
from .redis_nodes import Nodes, parse_cluster_url
from .store import (
    MIN_ID,
    Entry,
    EntryId,
    EventStore,
    Pending,
    Record,
    StoreError,
    StoreFull,
    StoreUnavailable,
    StreamStats,
    decode_entry,
    encode_entry,
    max_event_bytes_option,
)

PREFIX = "interlock:"


def _key(stream: str) -> str:
    return f"{PREFIX}{{{stream}}}"


def _retries(stream: str) -> str:
    return f"{PREFIX}{{{stream}}}:retries"


def _once(stream: str, window: int, bucket: int) -> str:
    """The idempotency record of a stream for one window of time (runtime/redis_scripts.py)."""
    return f"{PREFIX}{{{stream}}}:once:{window}:{bucket}"


def _stream_of(key: str) -> str:
    return key[len(PREFIX) + 1:key.index("}")] if key.startswith(PREFIX + "{") else key


UNBLOCK_GRACE = 1.0  # seconds a blocking read ended early may take to come back (see _first_of)
STORE_OPTIONS = ("min_replicas", "replica_timeout", "max_event_bytes")  # the store's own, in a URL's query


def _check_options(url: str) -> None:
    """A ValueError for what of a server's URL its connections cannot take (an unknown
    option), now rather than at the first command."""
    from redis.asyncio.connection import ConnectionPool

    pool = ConnectionPool.from_url(url)
    try:
        pool.connection_class(**pool.connection_kwargs)
    except TypeError as exc:
        raise ValueError(f"an option Redis connections do not take: {exc}") from None


def _store_options(url: str) -> tuple[str, dict[str, str]]:
    """The URL without the store's own options (`?min_replicas=1&max_event_bytes=262144`), and
    those options."""
    base, sep, query = url.partition("?")
    if not sep:
        return url, {}
    kept, options = [], {}
    for item in query.split("&"):
        name, _, value = item.partition("=")
        if name in STORE_OPTIONS:
            options[name] = value
        else:
            kept.append(item)
    return base + ("?" + "&".join(kept) if kept else ""), options


def _id(text: str) -> EntryId:
    return EntryId.parse(text)


class _Connection:
    """One event loop's connections to a store (runtime/redis_nodes.py): per server, a
    pipelined connection whose commands are sent again when it drops (they are idempotent),
    and per hash slot read, a connection for XREADGROUP whose commands are not (a resent read
    would take deliveries whose first reply was lost; delivery looks for those itself). On a
    cluster, redis-py's cluster client reads the slot map."""

    def __init__(self, store: RedisStore) -> None:
        cluster = store.cluster
        self.client: RedisCluster | None = None
        if cluster is not None:
            self.client = RedisCluster.from_url(
                cluster.node_url(*cluster.seeds[0]), startup_nodes=[ClusterNode(*seed) for seed in cluster.seeds[1:]],
                socket_timeout=store.command_timeout, socket_connect_timeout=store.connect_timeout,
                decode_responses=True)
        self.nodes = Nodes(store.url, store.shown_url, connect_timeout=store.connect_timeout,
                           command_timeout=store.command_timeout, cluster=cluster, client=self.client,
                           describe=store.describe)

    async def close(self) -> None:
        await self.nodes.close()
        if self.client is not None:
            await self.client.aclose()


class RedisStore(EventStore):
    """The contract of `runtime/store.py` on a Redis server, `RedisStore("redis://127.0.0.1:6379/0")`,
    or a Redis Cluster, `RedisStore("redis+cluster://127.0.0.1:7000,127.0.0.1:7001")`."""

    shared = True

    def __init__(self, url: str, *, max_unacked: int | None = None, poll: float = 0.01,
                 connect_timeout: float = 2.0, command_timeout: float = 10.0, min_replicas: int | None = None,
                 replica_timeout: float | None = None, max_event_bytes: int | None = None) -> None:
        url, options = _store_options(url)
        # The largest event a publish stores (runtime/store.py); a URL's option if not given here.
        self.max_event_bytes = max_event_bytes_option(
            options.get("max_event_bytes") if max_event_bytes is None else max_event_bytes)
        try:
            min_replicas = int(options.get("min_replicas", 0)) if min_replicas is None else min_replicas
            replica_timeout = float(options.get("replica_timeout", 1)) if replica_timeout is None else replica_timeout
        except ValueError:
            raise ValueError(f"min_replicas must be a whole number and replica_timeout a number of seconds, not "
                             f"{options}") from None
        if max_unacked is not None and max_unacked < 1:
            raise ValueError(f"max_unacked must be at least 1, not {max_unacked}")
        if min_replicas < 0 or replica_timeout <= 0:
            raise ValueError(f"min_replicas must be 0 or more and replica_timeout positive, not {min_replicas} "
                             f"and {replica_timeout}")
        # Each publish waits (WAIT) until that many replicas of each server it wrote to hold
        # it, else raises StoreUnavailable: a failover then cannot lose what it acknowledged.
        self.min_replicas = min_replicas
        self.replica_timeout = replica_timeout
        self.url = url
        self.cluster = parse_cluster_url(url)
        _check_options(url if self.cluster is None else self.cluster.node_url(*self.cluster.seeds[0]))
        self.atomic_publish = self.cluster is None
        self.shown_url = redact(url)
        self.describe = Describer(url)
        self.max_unacked = max_unacked
        self.poll = poll
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        # Clients are bound to the event loop they were made in: one set per loop (a router
        # used from `publish_sync` and from async code meets two).
        self._connections: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Connection] = (
            weakref.WeakKeyDictionary())
        self._append_script = Script(lua.APPEND, header=(max_unacked or 0,))
        self._scripts = {source: Script(source) for source in (lua.RELEASE, lua.LEASE, lua.LEASE_MANY, lua.QUIET,
                                                               lua.RELEASE_LEASE, lua.STATS, lua.LIVE)}
        self._ack_script = Script(lua.ACK)
        self._members_script = Script(lua.MEMBERS)

    def __repr__(self) -> str:
        return f"RedisStore({self.shown_url!r})"

    def _connection(self) -> _Connection:
        loop = asyncio.get_running_loop()
        connection = self._connections.get(loop)
        if connection is None:
            connection = self._connections[loop] = _Connection(self)
        return connection

    def _batch(self, key: str) -> Batch:
        """The group commit of the server holding `key` (the tests' and benchmarks' way in)."""
        nodes = self._connection().nodes
        return nodes.batch(nodes.slot(key))

    async def _nodes(self) -> Nodes:
        """This event loop's connections, the cluster's slot map read first (see Nodes.ready)."""
        nodes = self._connection().nodes
        if not nodes.mapped:
            await nodes.ready()
        return nodes

    async def _call(self, key: str, *command: Any) -> Any:
        """The reply of one command on `key` (a failure is a StoreError, a NOGROUP a NoGroup
        naming the stream), sent to the server holding the key."""
        nodes = await self._nodes()
        return await nodes.batch(nodes.slot(key)).call(*command)

    async def _script(self, source: str, keys: list[str], args: list[Any]) -> Any:
        """The reply of one script call on `keys` (of one hash slot)."""
        nodes = await self._nodes()
        return await nodes.batch(nodes.slot(keys[0])).run(self._scripts[source], keys, args)

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    async def close(self) -> None:
        connection = self._connections.pop(asyncio.get_running_loop(), None)
        if connection is not None:
            await connection.close()

    # ---- appending ---------------------------------------------------------------

    async def _groups(self, stream: str) -> list[dict[str, Any]]:
        try:
            rows = await self._call(_key(stream), "XINFO", "GROUPS", _key(stream))
        except StoreError as exc:
            if "no such key" in str(exc).lower():
                return []
            raise
        return [dict(zip(row[::2], row[1::2], strict=False)) for row in rows]

    async def append(self, stream: str, entry: Entry, *, timeout: float | None = None) -> EntryId:
        if self.max_unacked is None:
            key = _key(stream)
            return _id(await self._call(key, "XADD", key, "*", "e", encode_entry(entry)))
        ids = await self.append_all([(stream, entry)], timeout=timeout)  # the bound checked in the script
        assert ids is not None  # no idempotency key: never a duplicate
        return ids[0]

    async def append_all(self, entries: list[tuple[str, Entry]], *, once: str | None = None, ttl_ms: int = 0,
                         timeout: float | None = None) -> list[EntryId] | None:
        if not entries:
            return [] if once is None or await self.remember(once, ttl_ms) else None
        window = max(int(ttl_ms), 1)
        bucket = self.now_ms() // window
        nodes = await self._nodes()
        by_stream: dict[str, list[int]] = {}  # each stream's entries, by index
        for index, (stream, _) in enumerate(entries):
            by_stream.setdefault(stream, []).append(index)
        by_slot: dict[int, list[str]] = {}  # one call per hash slot (on a single server: one)
        for stream in by_stream:
            by_slot.setdefault(nodes.slot(_key(stream)), []).append(stream)
        encoded = [encode_entry(entry) for _, entry in entries]
        head = ["1" if once is not None else "0", once or "", os.urandom(8).hex(), (bucket + 2) * window]
        calls = []
        for slot, streams in by_slot.items():
            keys: list[str] = []
            args: list[Any] = [*head, len(streams)]
            for stream in streams:
                keys += [_key(stream), _once(stream, window, bucket), _once(stream, window, bucket - 1)]
                args += [len(by_stream[stream]), *(encoded[i] for i in by_stream[stream])]
            calls.append((keys, args, slot))
        ids: list[EntryId] = [MIN_ID] * len(entries)
        duplicate = once is not None
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            futures = [nodes.batch(slot).script(self._append_script, keys, args, slot) for keys, args, slot in calls]
            if self.min_replicas:
                await self._replicated(calls, futures)
            replies = [await futures[0]] if len(futures) == 1 else await asyncio.gather(*futures)
            full = []
            for call, reply in zip(calls, replies, strict=True):
                if reply[0] == "wrongtype":
                    what = "an idempotency record" if ":once:" in reply[1] else f"stream `{_stream_of(reply[1])}`"
                    raise StoreError(f"cannot publish: the key {reply[1]} of {what} holds a {reply[2]} (nothing "
                                     "was stored in its slot)")
                if reply[0] == "full":
                    full.append((call, reply[1]))
                    continue
                for stream, (mark, *texts) in zip(call[0][::3], reply, strict=True):
                    duplicate = duplicate and mark == "="
                    for n, index in enumerate(by_stream[_stream_of(stream)]):
                        ids[index] = _id(texts[min(n, len(texts) - 1)]) if texts else MIN_ID
            if not full:
                return None if duplicate else ids
            if deadline is not None and time.monotonic() >= deadline:
                raise StoreFull(f"stream `{_stream_of(full[0][1])}` holds {self.max_unacked} unacknowledged "
                                f"entries, its bound; it stayed full for {timeout} s")
            await asyncio.sleep(self.poll)
            calls = [call for call, _ in full]

    async def _replicated(self, calls: list[tuple[list[str], list[Any], int]], futures: list[Any]) -> None:
        """Wait for `min_replicas` replicas of every server written to by these calls."""
        nodes = self._connection().nodes
        timeout_ms = int(self.replica_timeout * 1000)
        sent = {nodes.address(slot) for _, _, slot in calls}
        waits = [nodes.batch_at(address).replicated(self.min_replicas, timeout_ms) for address in sent]
        await asyncio.gather(*futures, return_exceptions=True)  # (their own failures are raised below)
        counts = list(await asyncio.gather(*waits))
        # A call a cluster redirected ran on another server (MOVED: the slot's owner now; ASK:
        # the one importing it): wait there too, on the connection it went by.
        ran = {nodes.address(slot) for _, _, slot in calls} | {nodes.asked[slot] for _, _, slot in calls
                                                                 if slot in nodes.asked}
        if ran - sent:
            counts += await asyncio.gather(*(nodes.batch_at(address).replicated(self.min_replicas, timeout_ms)
                                             for address in ran - sent))
        fewest = min(int(count) for count in counts)
        if fewest < self.min_replicas:
            raise StoreUnavailable(
                f"a publish reached {fewest} replica(s) of Redis at {self.shown_url} "
                f"within {self.replica_timeout} s, not min_replicas={self.min_replicas}: it may be lost if its master "
                "fails; publish again with the same id (a duplicate if it was kept)")

    async def remembered(self, key: str) -> bool:
        once = f"{PREFIX}once:{{{key}}}"
        return bool(await self._call(once, "EXISTS", once))

    # ---- groups ------------------------------------------------------------------

    async def ensure_group(self, stream: str, group: str, *, start: EntryId = MIN_ID) -> bool:
        key = _key(stream)
        try:
            await self._call(key, "XGROUP", "CREATE", key, group, str(start), "MKSTREAM")
            return True
        except StoreError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
            return False

    @staticmethod
    def _records(rows: list[Any], deliveries: int) -> list[Record]:
        """Stream rows as Redis sends them, [id, [field, value, ...]], into records; an entry
        that is not JSON (another writer's) is a record whose entry is None."""
        out = []
        for entry_id, fields in rows:
            if not fields:  # an entry deleted while pending
                continue
            fields = dict(zip(fields[::2], fields[1::2], strict=False))
            try:
                entry = decode_entry(fields["e"])
            except (KeyError, ValueError):
                entry = None
            out.append(Record(_id(entry_id), entry, deliveries))
        return out

    async def read(self, stream: str, group: str, consumer: str, *, count: int = 1,
                   block: float | None = None) -> list[Record]:
        return (await self.read_many([stream], group, consumer, count=count, block=block)).get(stream, [])

    async def read_many(self, streams: list[str], group: str, consumer: str, *, count: int = 1,
                        block: float | None = None) -> dict[str, list[Record]]:
        if not streams:
            return {}
        wait = max(int(block * 1000), 1) if block is not None and block > 0 else None
        nodes = await self._nodes()
        by_slot: dict[int, list[str]] = {}  # one XREADGROUP per hash slot (on a single server: one)
        for stream in streams:
            by_slot.setdefault(nodes.slot(_key(stream)), []).append(stream)
        reads = {}
        for slot, names in by_slot.items():
            keys = [_key(s) for s in names]
            command = ("XREADGROUP", "GROUP", group, consumer, "COUNT", count,
                       *(("BLOCK", wait) if wait is not None else ()), "STREAMS", *keys, *(">" for _ in keys))
            reads[slot] = nodes.reader(slot).call(command, idempotent=False, extra=(wait or 0) / 1000)
        try:
            if wait is not None and len(reads) > 1:
                await self._first_of(reads)
            replies = await asyncio.gather(*reads.values(), return_exceptions=True)
        except asyncio.CancelledError:
            # The reads would go on waiting on the server, and what they then took would be
            # pending for a reader that is gone: their connections go with them.
            for slot, read in reads.items():
                read.cancel()  # (its failure, when the connection goes, is no one's to hear)
                nodes.reader(slot).abort()
            raise
        out = {}
        failed = None
        for reply in replies:
            if isinstance(reply, BaseException):
                failed = failed or reply
                continue
            for key, rows in reply or ():  # (RESP2: [[key, [[id, [field, value, ...]], ...]], ...]; nil: nothing)
                records = self._records(rows, 1)
                if records:
                    out[_stream_of(key)] = records
        if failed is not None:  # (what the others took is pending and not in hand: the reader takes it back)
            raise self.describe(failed, group=group, stream_of_key={_key(s): s for s in streams})
        return out

    async def _first_of(self, reads: dict[int, asyncio.Future[Any]]) -> None:
        """Blocking reads on several slots: once one brings entries (or fails), the others are
        ended (a read unblocked returns nothing and takes nothing), so that what it brought
        is handled now rather than after the others' wait. A read still not back a second
        later (its server silent) has its connection dropped: it fails, and the reader takes
        back what it may have taken."""
        waiting = set(reads.values())
        while waiting:
            done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if any(read.exception() is not None or read.result() for read in done):
                break
        if not waiting:
            return
        nodes = self._connection().nodes
        ending = [asyncio.ensure_future(self._unblock(slot, read)) for slot, read in reads.items() if not read.done()]
        try:
            await asyncio.wait(waiting, timeout=UNBLOCK_GRACE)
        finally:
            for task in ending:
                task.cancel()
        for slot, read in reads.items():
            if not read.done():
                nodes.reader(slot).abort()

    async def _unblock(self, slot: int, read: asyncio.Future[Any]) -> None:
        """End a blocking read early (CLIENT UNBLOCK, sent to its server on another connection)."""
        nodes = self._connection().nodes
        reader = nodes.reader(slot)
        for _ in range(50):
            if read.done() or reader.client_id is None:
                return
            try:
                if await nodes.batch(slot).call("CLIENT", "UNBLOCK", reader.client_id):
                    return
            except StoreError:
                return  # (it ends at its BLOCK time)
            await asyncio.sleep(0.002)  # not blocked yet: the read is still on its way

    async def ack(self, stream: str, group: str, ids: list[EntryId]) -> int:
        if not ids:
            return 0
        if len(ids) > 1000:  # more than a script's arguments can unpack at once
            return int(await self._call(_key(stream), "XACK", _key(stream), group, *map(str, ids)))
        key = _key(stream)
        nodes = await self._nodes()
        slot = nodes.slot(key)
        return int(await nodes.batch(slot).script(self._ack_script, [key], [group, len(ids), *map(str, ids)], slot))

    async def _pending(self, stream: str, group: str, start: str = "-", end: str = "+", count: int = 1_000_000,
                       consumer: str | None = None) -> list[Pending]:
        key = _key(stream)
        rows = await self._call(key, "XPENDING", key, group, start, end, count, *((consumer,) if consumer else ()))
        return [Pending(_id(entry_id), owner, int(times), int(idle)) for entry_id, owner, idle, times in rows]

    async def pending(self, stream: str, group: str, *, consumer: str | None = None) -> list[Pending]:
        return await self._pending(stream, group, consumer=consumer)

    async def backlog(self, stream: str, group: str) -> int:
        for info in await self._groups(stream):
            if info["name"] != group:
                continue
            lag = info.get("lag")
            if lag is None:  # Redis cannot tell after deletions: count what is after the group's cursor
                key = _key(stream)
                lag = len(await self._call(key, "XRANGE", key, f"({info['last-delivered-id']}", "+"))
            return int(info["pending"]) + int(lag)
        return 0

    async def quiet(self, streams: list[str], group: str) -> bool:
        # One script per stream (a stream and its schedule share a hash slot), at once.
        replies = await asyncio.gather(*(self._script(lua.QUIET, [_key(s), _retries(s)], [group]) for s in streams))
        return all(int(reply) == 1 for reply in replies)

    async def claim(self, stream: str, group: str, consumer: str, *, min_idle_ms: int,
                    count: int = 10, ids: list[EntryId] | None = None) -> list[Record]:
        key = _key(stream)
        taken: list[Any] = []
        cursor = "0-0"
        if ids is not None:
            for start in range(0, len(ids), 1000):
                rows = await self._call(key, "XCLAIM", key, group, consumer, 0, *map(str, ids[start:start + 1000]))
                taken.extend(row for row in rows if row and row[1])
            count = 0
        while len(taken) < count:
            reply = await self._call(key, "XAUTOCLAIM", key, group, consumer, min_idle_ms, cursor, "COUNT",
                                     count - len(taken))
            cursor, rows = reply[0], reply[1]
            taken.extend(row for row in rows if row and row[1])
            if cursor == "0-0":
                break
        if not taken:
            return []
        # The delivery counts, in one read of the claimed range of this consumer's pending.
        ordered = sorted(_id(entry_id) for entry_id, _ in taken)
        counts = {str(p.id): p.deliveries for p in await self._pending(
            stream, group, str(ordered[0]), str(ordered[-1]), len(ordered), consumer)}
        records = []
        for entry_id, fields in taken:
            records.extend(self._records([[entry_id, fields]], counts.get(entry_id, 1)))
        return records

    # ---- reading, retention --------------------------------------------------------

    async def range(self, stream: str, *, start: EntryId = MIN_ID, count: int | None = None) -> list[Record]:
        key = _key(stream)
        rows = await self._call(key, "XRANGE", key, str(start), "+", *(("COUNT", count) if count is not None else ()))
        return self._records(rows, 0)

    async def delete(self, stream: str, ids: list[EntryId]) -> int:
        if not ids:
            return 0
        key = _key(stream)
        gone = int(await self._call(key, "XDEL", key, *map(str, ids)))
        for group in await self._groups(stream):
            await self._call(key, "XACK", key, group["name"], *map(str, ids))
        return gone

    async def length(self, stream: str) -> int:
        return int(await self._call(_key(stream), "XLEN", _key(stream)))

    async def trim(self, stream: str, *, max_len: int | None = None, max_age_ms: int | None = None,
                   group: str | None = None) -> int:
        key = _key(stream)
        total = await self.length(stream)
        if total == 0 or (max_len is None and max_age_ms is None):
            return 0
        groups = await self._groups(stream)
        if group is not None and all(g["name"] != group for g in groups):
            return 0  # its group was lost: nothing here is known to be done with
        cuts = []
        if max_len is not None and total > max_len:
            drop = total - max_len
            first_kept = await self._call(key, "XRANGE", key, "-", "+", "COUNT", drop + 1)
            if len(first_kept) > drop:
                cuts.append(_id(first_kept[drop][0]))
            else:
                last = _id(first_kept[-1][0])
                cuts.append(EntryId(last.ms, last.seq + 1))
        if max_age_ms is not None:
            cuts.append(EntryId(self.now_ms() - max_age_ms, 0))
        if not cuts:
            return 0
        cut = max(cuts)
        for info in groups:
            last = _id(info["last-delivered-id"])
            cut = min(cut, EntryId(last.ms, last.seq + 1))
            oldest = await self._pending(stream, info["name"], count=1)
            if oldest:
                cut = min(cut, oldest[0].id)
        before = await self._call(key, "XRANGE", key, "-", f"({cut}", "COUNT", 1) if cut > MIN_ID else []
        if not before:
            return 0
        return int(await self._call(key, "XTRIM", key, "MINID", str(cut)))

    # ---- the delayed schedule --------------------------------------------------------

    async def schedule(self, stream: str, entry: Entry, due_ms: int) -> None:
        # A random token makes each call a member of its own (the same entry scheduled twice is
        # parked twice); a round trip the client sends again carries the same member.
        encoded = encode_entry(entry)
        member = os.urandom(16).hex().encode() + (encoded if isinstance(encoded, bytes) else encoded.encode())
        key = _retries(stream)
        await self._call(key, "ZADD", key, due_ms, member)

    async def _scheduled_streams(self) -> list[str]:
        """The streams with a schedule, from every server (SCAN on each)."""
        nodes = await self._nodes()
        found: list[str] = []
        for address in nodes.servers():
            wire = nodes.batch_at(address)
            cursor = "0"
            while True:
                cursor, keys = await wire.call("SCAN", cursor, "MATCH", f"{PREFIX}{{*}}:retries", "COUNT", 1000)
                found.extend(_stream_of(key) for key in keys)
                if cursor == "0":
                    break
        return sorted(set(found))

    async def release_due(self, *, now_ms: int | None = None, streams: list[str] | None = None) -> int:
        now = self.now_ms() if now_ms is None else now_ms
        if streams is None:
            streams = await self._scheduled_streams()
        released = 0
        left = list(streams)
        while left:
            replies = await asyncio.gather(*(self._script(lua.RELEASE, [_retries(s), _key(s)], [now]) for s in left))
            released += sum(int(moved) for moved, _ in replies)
            left = [s for s, (moved, _) in zip(left, replies, strict=True) if int(moved) >= 100]
        return released

    async def next_due(self, streams: list[str]) -> dict[str, int]:
        if not streams:
            return {}
        replies = await asyncio.gather(*(self._call(_retries(s), "ZRANGE", _retries(s), 0, 0, "WITHSCORES")
                                         for s in streams))
        return {stream: int(float(reply[1])) for stream, reply in zip(streams, replies, strict=True) if reply}

    async def scheduled(self, stream: str | None = None) -> list[tuple[int, str, Any]]:
        streams = [stream] if stream is not None else await self._scheduled_streams()
        out = []
        for name in streams:
            rows = await self._call(_retries(name), "ZRANGE", _retries(name), 0, -1, "WITHSCORES")
            for member, score in zip(rows[::2], rows[1::2], strict=True):
                out.append((int(float(score)), name, decode_entry(member[32:])))
        return sorted(out, key=lambda item: item[0])

    # ---- idempotency -------------------------------------------------------------------

    async def remember(self, key: str, ttl_ms: int) -> bool:
        once = f"{PREFIX}once:{{{key}}}"
        return await self._call(once, "SET", once, "1", "NX", "PX", max(int(ttl_ms), 1)) is not None

    # ---- leases ------------------------------------------------------------------------

    async def lease(self, name: str, owner: str, ttl_ms: int) -> bool:
        return bool(await self._script(lua.LEASE, [f"{PREFIX}{{{name}}}:lease"], [owner, max(int(ttl_ms), 1)]))

    async def lease_many(self, group: str, names: list[str], owner: str, ttl_ms: int) -> list[bool]:
        if not names:
            return []
        keys = [f"{PREFIX}{{{group}}}:lease:{name}" for name in names]
        return [bool(held) for held in await self._script(lua.LEASE_MANY, keys, [owner, max(int(ttl_ms), 1)])]

    async def release(self, name: str, owner: str, *, group: str | None = None) -> None:
        key = f"{PREFIX}{{{name}}}:lease" if group is None else f"{PREFIX}{{{group}}}:lease:{name}"
        await self._script(lua.RELEASE_LEASE, [key], [owner])

    async def members(self, name: str, owner: str, ttl_ms: int) -> list[str]:
        key = f"{PREFIX}{{{name}}}:members"
        nodes = await self._nodes()
        slot = nodes.slot(key)
        live = await nodes.batch(slot).script(self._members_script, [key], [int(ttl_ms), owner], slot)
        return sorted(live)

    # ---- reading what delivery is doing ------------------------------------------------

    async def stream_stats(self, streams: list[str], group: str) -> dict[str, StreamStats]:
        if not streams:
            return {}
        # One script per stream (a stream and its schedule share a hash slot), at once.
        replies = await asyncio.gather(*(self._script(lua.STATS, [_key(stream), _retries(stream)], [group])
                                         for stream in streams))
        out = {}
        for stream, reply in zip(streams, replies, strict=True):
            length, scheduled, found, unread, pending, oldest, consumers = reply
            out[stream] = StreamStats(
                int(length), int(scheduled), bool(int(found)), int(unread), int(pending),
                _id(oldest) if oldest else None,
                {consumers[i]: int(consumers[i + 1]) for i in range(0, len(consumers), 2)})
        return out

    async def lease_holders(self, group: str, names: list[str]) -> dict[str, str | None]:
        if not names:
            return {}
        # Through the group commit: the holders of several groups asked at once share a round trip.
        keys = [f"{PREFIX}{{{group}}}:lease:{name}" for name in names]  # (one slot: the group's tag)
        owners = await self._call(keys[0], "MGET", *keys)
        return dict(zip(names, owners, strict=True))

    async def live_members(self, names: list[str]) -> dict[str, list[str]]:
        if not names:
            return {}
        # Scored by expiry in the server's time (the MEMBERS script): read with the clock of
        # the server holding each membership.
        rows = await asyncio.gather(*(self._script(lua.LIVE, [f"{PREFIX}{{{name}}}:members"], []) for name in names))
        return {name: sorted(live) for name, live in zip(names, rows, strict=True)}
