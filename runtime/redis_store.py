"""The event-store contract on Redis Streams (redis-py's asyncio client).

Each operation is the Redis command the contract was written after: streams are Redis
streams, groups are consumer groups, pending entries and delivery counts are Redis's own
(XPENDING, XAUTOCLAIM), entries are JSON text in a field `e`. Each stream's delayed schedule
is a sorted set beside it, scored by due time; a Lua script moves due entries into the
stream, so an entry is never both scheduled and appended. The key layout and the scripts
are in runtime/redis_scripts.py; every key of a stream shares its hash tag. The clock is
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

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import redis_scripts as lua
from .redis_batch import Batch, Script
from .redis_errors import Describer, redact
from .redis_wire import Wire
from .store import (
    MIN_ID,
    Entry,
    EntryId,
    EventStore,
    Pending,
    Record,
    StoreError,
    StoreFull,
    StreamStats,
    decode_entry,
    encode_entry,
)

PREFIX = "interlock:"


def _key(stream: str) -> str:
    return f"{PREFIX}{{{stream}}}"


def _retries(stream: str) -> str:
    return f"{PREFIX}{{{stream}}}:retries"


def _stream_of(key: str) -> str:
    return key[len(PREFIX) + 1:key.index("}")] if key.startswith(PREFIX + "{") else key


def _id(text: str) -> EntryId:
    return EntryId.parse(text)


class _Connection:
    """One event loop's connections to a store: for the hot path, a pipelined connection
    whose commands are sent again when it drops (they are idempotent) and one for XREADGROUP
    whose commands are not (a resent read would take deliveries whose first reply was lost;
    delivery looks for those itself), both runtime/redis_wire.py; for the rest, a redis-py
    pool whose commands are retried with backoff when a connection drops."""

    def __init__(self, store: RedisStore) -> None:
        # A connection that cannot be made in time is retried as a lost one would be, but for
        # rediss://: a TLS handshake that hangs is a server that does not speak TLS there.
        errors: list[type[Exception]] = [RedisConnectionError] if store.url.startswith("rediss://") else [
            RedisConnectionError, RedisTimeoutError]
        pool = aioredis.BlockingConnectionPool.from_url(
            store.url, max_connections=64, socket_timeout=store.command_timeout, decode_responses=True,
            socket_connect_timeout=store.connect_timeout, timeout=None,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3), retry_on_error=errors)
        self.client = aioredis.Redis(connection_pool=pool)
        self.wire = Wire(store.url, shown=store.shown_url, connect_timeout=store.connect_timeout,
                         command_timeout=store.command_timeout, retries=3)
        self.reader = Wire(store.url, shown=store.shown_url, connect_timeout=store.connect_timeout,
                           command_timeout=store.command_timeout, retries=0)
        self.batch = Batch(self.wire, store.describe)
        self.scripts = {source: self.client.register_script(source)
                        for source in (lua.RELEASE, lua.LEASE, lua.LEASE_MANY, lua.QUIET, lua.RELEASE_LEASE, lua.STATS)}

    async def close(self) -> None:
        await self.wire.close()
        await self.reader.close()
        await self.client.aclose()


class RedisStore(EventStore):
    """The contract of `runtime/store.py` on a Redis server: `RedisStore("redis://127.0.0.1:6379/0")`."""

    shared = True

    def __init__(self, url: str, *, max_unacked: int | None = None, poll: float = 0.01,
                 connect_timeout: float = 2.0, command_timeout: float = 10.0) -> None:
        if max_unacked is not None and max_unacked < 1:
            raise ValueError(f"max_unacked must be at least 1, not {max_unacked}")
        self.url = url
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

    @property
    def client(self) -> aioredis.Redis:
        return self._connection().client

    @property
    def _batch(self) -> Batch:
        return self._connection().batch

    async def _do(self, awaitable: Any, *, group: str = "?", streams: list[str] | None = None) -> Any:
        """Await one redis-py call; its failure as a StoreError (a NOGROUP names its stream)."""
        try:
            return await awaitable
        except StoreError:
            raise
        except Exception as exc:
            raise self.describe(exc, group=group, stream_of_key={_key(s): s for s in streams or ()}) from None

    async def _script(self, source: str, keys: list[str], args: list[Any]) -> Any:
        return await self._do(self._connection().scripts[source](keys=keys, args=args))

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    async def close(self) -> None:
        connection = self._connections.pop(asyncio.get_running_loop(), None)
        if connection is not None:
            await connection.close()

    # ---- appending ---------------------------------------------------------------

    async def _groups(self, stream: str) -> list[dict[str, Any]]:
        try:
            return list(await self.client.xinfo_groups(_key(stream)))
        except RedisError as exc:
            if "no such key" in str(exc).lower():
                return []
            raise self.describe(exc) from None

    async def append(self, stream: str, entry: Entry, *, timeout: float | None = None) -> EntryId:
        if self.max_unacked is None:
            return _id(await self._batch.call("XADD", _key(stream), "*", "e", encode_entry(entry)))
        ids = await self.append_all([(stream, entry)], timeout=timeout)  # the bound checked in the script
        assert ids is not None  # no idempotency key: never a duplicate
        return ids[0]

    async def append_all(self, entries: list[tuple[str, Entry]], *, once: str | None = None, ttl_ms: int = 0,
                         timeout: float | None = None) -> list[EntryId] | None:
        encoded = [encode_entry(entry) for _, entry in entries]
        keys = [f"{PREFIX}once:{{{once or ''}}}", *(_key(stream) for stream, _ in entries)]
        args = ["1" if once is not None else "0", max(int(ttl_ms), 1), os.urandom(8).hex(), len(entries), *encoded]
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            reply = await self._batch.script(self._append_script, keys, args)
            if reply is None:  # the script's false: a duplicate
                return None
            if reply and reply[0] == "wrongtype":
                what = "an idempotency key" if reply[1] == keys[0] else f"stream `{_stream_of(reply[1])}`"
                raise StoreError(f"cannot publish: the key {reply[1]} of {what} holds a {reply[2]} (nothing was "
                                 "stored)")
            if not reply or reply[0] != "full":
                return [_id(i) for i in reply]
            if deadline is not None and time.monotonic() >= deadline:
                raise StoreFull(f"stream `{_stream_of(reply[1])}` holds {self.max_unacked} unacknowledged entries, "
                                f"its bound; it stayed full for {timeout} s")
            await asyncio.sleep(self.poll)

    async def remembered(self, key: str) -> bool:
        return bool(await self._do(self.client.exists(f"{PREFIX}once:{{{key}}}")))

    # ---- groups ------------------------------------------------------------------

    async def ensure_group(self, stream: str, group: str, *, start: EntryId = MIN_ID) -> bool:
        try:
            await self.client.xgroup_create(_key(stream), group, str(start), mkstream=True)
            return True
        except RedisError as exc:
            if "BUSYGROUP" not in str(exc):
                raise self.describe(exc) from None
            return False

    @staticmethod
    def _records(rows: list[Any], deliveries: int) -> list[Record]:
        """Stream rows as redis-py parses them, (id, {field: value}), into records; an entry
        that is not JSON (another writer's) is a record whose entry is None."""
        out = []
        for entry_id, fields in rows:
            if not fields:  # an entry deleted while pending
                continue
            if not isinstance(fields, dict):
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
        keys = [_key(s) for s in streams]
        command: tuple[Any, ...] = ("XREADGROUP", "GROUP", group, consumer, "COUNT", count,
                                    *(("BLOCK", wait) if wait is not None else ()), "STREAMS", *keys,
                                    *(">" for _ in keys))
        connection = self._connection()
        future = connection.reader.call(command, idempotent=False, extra=(wait or 0) / 1000)
        try:
            reply = await self._do(future, group=group, streams=streams)
        except asyncio.CancelledError:
            # The read would go on waiting on the server, and what it then took would be
            # pending for a reader that is gone: its connection goes with it.
            connection.reader.abort()
            raise
        out = {}
        for key, rows in reply or ():  # (RESP2: [[key, [[id, [field, value, ...]], ...]], ...]; nil: nothing)
            records = self._records(rows, 1)
            if records:
                out[_stream_of(key)] = records
        return out

    async def ack(self, stream: str, group: str, ids: list[EntryId]) -> int:
        if not ids:
            return 0
        if len(ids) > 1000:  # more than a script's arguments can unpack at once
            return int(await self._do(self.client.xack(_key(stream), group, *map(str, ids))))
        return int(await self._batch.script(self._ack_script, [_key(stream)], [group, len(ids), *map(str, ids)]))

    async def pending(self, stream: str, group: str, *, consumer: str | None = None) -> list[Pending]:
        rows = await self._do(self.client.xpending_range(_key(stream), group, "-", "+", 1_000_000,
                                                         consumername=consumer), group=group, streams=[stream])
        return [Pending(_id(r["message_id"]), r["consumer"], int(r["times_delivered"]), int(r["time_since_delivered"]))
                for r in rows]

    async def backlog(self, stream: str, group: str) -> int:
        for info in await self._groups(stream):
            if info["name"] != group:
                continue
            lag = info.get("lag")
            if lag is None:  # Redis cannot tell after deletions: count what is after the group's cursor
                lag = len(await self._do(self.client.xrange(_key(stream), f"({info['last-delivered-id']}", "+")))
            return int(info["pending"]) + int(lag)
        return 0

    async def quiet(self, streams: list[str], group: str) -> bool:
        # One script per stream (a stream and its schedule share a hash slot), in one round trip.
        replies = await asyncio.gather(*(self._script(lua.QUIET, [_key(s), _retries(s)], [group]) for s in streams))
        return all(int(reply) == 1 for reply in replies)

    async def claim(self, stream: str, group: str, consumer: str, *, min_idle_ms: int,
                    count: int = 10, ids: list[EntryId] | None = None) -> list[Record]:
        taken: list[Any] = []
        cursor = "0-0"
        if ids is not None:
            for start in range(0, len(ids), 1000):
                rows = await self._do(self.client.xclaim(_key(stream), group, consumer, 0,
                                                         [str(i) for i in ids[start:start + 1000]]),
                                      group=group, streams=[stream])
                taken.extend(row for row in rows if row and row[1])
            count = 0
        while len(taken) < count:
            reply = await self._do(self.client.xautoclaim(_key(stream), group, consumer, min_idle_ms, cursor,
                                                          count=count - len(taken)), group=group, streams=[stream])
            cursor, rows = reply[0], reply[1]
            taken.extend(row for row in rows if row and row[1])
            if cursor == "0-0":
                break
        if not taken:
            return []
        # The delivery counts, in one read of the claimed range of this consumer's pending.
        ids = sorted((_id(entry_id) for entry_id, _ in taken))
        rows = await self._do(self.client.xpending_range(_key(stream), group, str(ids[0]), str(ids[-1]), len(ids),
                                                         consumername=consumer), group=group, streams=[stream])
        counts = {row["message_id"]: int(row["times_delivered"]) for row in rows}
        records = []
        for entry_id, fields in taken:
            records.extend(self._records([[entry_id, fields]], counts.get(entry_id, 1)))
        return records

    # ---- reading, retention --------------------------------------------------------

    async def range(self, stream: str, *, start: EntryId = MIN_ID, count: int | None = None) -> list[Record]:
        return self._records(await self._do(self.client.xrange(_key(stream), str(start), "+", count=count)), 0)

    async def delete(self, stream: str, ids: list[EntryId]) -> int:
        if not ids:
            return 0
        gone = int(await self._do(self.client.xdel(_key(stream), *map(str, ids))))
        for group in await self._groups(stream):
            await self._do(self.client.xack(_key(stream), group["name"], *map(str, ids)))
        return gone

    async def length(self, stream: str) -> int:
        return int(await self._do(self.client.xlen(_key(stream))))

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
            first_kept = await self._do(self.client.xrange(key, "-", "+", count=drop + 1))
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
            oldest = await self._do(self.client.xpending_range(key, info["name"], "-", "+", 1))
            if oldest:
                cut = min(cut, _id(oldest[0]["message_id"]))
        before = await self._do(self.client.xrange(key, "-", f"({cut}", count=1)) if cut > MIN_ID else []
        if not before:
            return 0
        return int(await self._do(self.client.xtrim(key, minid=str(cut), approximate=False)))

    # ---- the delayed schedule --------------------------------------------------------

    async def schedule(self, stream: str, entry: Entry, due_ms: int) -> None:
        # A random token makes each call a member of its own (the same entry scheduled twice is
        # parked twice); a round trip the client sends again carries the same member.
        encoded = encode_entry(entry)
        member = os.urandom(16).hex().encode() + (encoded if isinstance(encoded, bytes) else encoded.encode())
        await self._batch.call("ZADD", _retries(stream), due_ms, member)

    async def _scheduled_streams(self) -> list[str]:
        found = []
        async for key in self.client.scan_iter(match=f"{PREFIX}{{*}}:retries", count=1000):
            found.append(_stream_of(key))
        return found

    async def release_due(self, *, now_ms: int | None = None, streams: list[str] | None = None) -> int:
        now = self.now_ms() if now_ms is None else now_ms
        if streams is None:
            streams = await self._do(self._scheduled_streams())
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
        pipe = self.client.pipeline(transaction=False)
        for stream in streams:
            pipe.zrange(_retries(stream), 0, 0, withscores=True)
        replies = await self._do(pipe.execute())
        return {stream: int(float(reply[0][1])) for stream, reply in zip(streams, replies, strict=True) if reply}

    async def scheduled(self, stream: str | None = None) -> list[tuple[int, str, Any]]:
        streams = [stream] if stream is not None else await self._do(self._scheduled_streams())
        out = []
        for name in streams:
            for member, score in await self._do(self.client.zrange(_retries(name), 0, -1, withscores=True)):
                out.append((int(float(score)), name, decode_entry(member[32:])))
        return sorted(out, key=lambda item: item[0])

    # ---- idempotency -------------------------------------------------------------------

    async def remember(self, key: str, ttl_ms: int) -> bool:
        return bool(await self._do(self.client.set(f"{PREFIX}once:{{{key}}}", "1", nx=True,
                                                   px=max(int(ttl_ms), 1))))

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
        live = await self._batch.script(self._members_script, [f"{PREFIX}{{{name}}}:members"], [int(ttl_ms), owner])
        return sorted(live)

    # ---- reading what delivery is doing ------------------------------------------------

    async def stream_stats(self, streams: list[str], group: str) -> dict[str, StreamStats]:
        if not streams:
            return {}
        # One script per stream (a stream and its schedule share a hash slot), pipelined.
        pipe = self.client.pipeline(transaction=False)
        script = self._connection().scripts[lua.STATS]
        for stream in streams:
            await script(keys=[_key(stream), _retries(stream)], args=[group], client=pipe)
        replies = await self._do(pipe.execute(), group=group, streams=streams)
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
        owners = await self._batch.call("MGET", *(f"{PREFIX}{{{group}}}:lease:{name}" for name in names))
        return dict(zip(names, owners, strict=True))

    async def live_members(self, names: list[str]) -> dict[str, list[str]]:
        if not names:
            return {}
        # Scored by expiry in the server's time (the MEMBERS script): read with the server's clock.
        pipe = self.client.pipeline(transaction=False)
        pipe.time()
        for name in names:
            pipe.zrange(f"{PREFIX}{{{name}}}:members", 0, -1, withscores=True)
        (seconds, micros), *rows = await self._do(pipe.execute())
        now = int(seconds) * 1000 + int(micros) // 1000
        return {name: sorted(who for who, until in members if float(until) > now)
                for name, members in zip(names, rows, strict=True)}
