"""The event-store contract on Redis Streams (redis-py's asyncio client).

Each operation is the Redis command the contract was written after: streams are Redis
streams (`interlock:s:NAME`), groups are consumer groups, pending entries and delivery
counts are Redis's own (XPENDING, XAUTOCLAIM), entries are JSON text in a field `e`. The
delayed schedule is one sorted set (`interlock:schedule`) scored by due time; a Lua script
moves due entries into their streams, so an entry is never both scheduled and appended.
Idempotency keys are `SET NX PX`. The clock is this machine's (XADD ids use the server's:
on one machine they agree; across machines, keep clocks in sync).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
import uuid
import weakref
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .store import MIN_ID, Entry, EntryId, EventStore, Pending, Record, StoreError, StoreFull, encode_entry

PREFIX = "interlock:"
SCHEDULE = PREFIX + "schedule"

# Due entries of the schedule into their streams, atomically, at most 100 a call.
_RELEASE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 100)
for _, member in ipairs(due) do
  local item = cjson.decode(member)
  redis.call('XADD', ARGV[2] .. item['stream'], '*', 'e', item['entry'])
  redis.call('ZREM', KEYS[1], member)
end
return #due
"""

# Take a free lease, or renew one's own; 1 when held, 0 when another owner holds it.
_LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""

# Heartbeats in memberships (sorted sets scored by expiry), of concurrent callers in one
# call: each owner recorded, the expired dropped, the live listed. Time is the server's, so
# that instances whose clocks disagree still agree on who is live. KEYS: a membership per
# call; ARGV per call: the owner's time to live (ms), the owner.
_MEMBERS = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local out = {}
for k = 1, #KEYS do
  local a = 2 * (k - 1)
  redis.call('ZADD', KEYS[k], now + tonumber(ARGV[a + 1]), ARGV[a + 2])
  redis.call('ZREMRANGEBYSCORE', KEYS[k], '-inf', now)
  out[k] = redis.call('ZRANGE', KEYS[k], 0, -1)
end
return out
"""

_RELEASE_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


# What a group (or, without a name, the busiest group) has still to finish on a stream:
# pending plus not yet read. Shared by the scripts below.
_UNFINISHED = """
local function unfinished(key, name)
  local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', key)
  if not ok then return 0 end
  local most = 0
  for _, group in ipairs(groups) do
    local info = {}
    for j = 1, #group, 2 do info[group[j]] = group[j + 1] end
    if name == nil or info['name'] == name then
      local lag = info['lag']
      if not lag then
        lag = #redis.call('XRANGE', key, '(' .. info['last-delivered-id'], '+')
      end
      most = math.max(most, info['pending'] + lag)
    end
  end
  return most
end
"""

# Publishes, each with every entry appended and its idempotency key set in one step, or
# nothing. Concurrent publishes share one call (see `_Batch`). ARGV[1]: the bound (0: none);
# then per publish: use the key (1/0), its ttl, the publish's nonce, its number of entries
# N, and N encoded entries. KEYS, per publish: its idempotency key, then its N streams.
# The key holds the nonce and the ids: when the client sends a round trip again after a
# lost connection, a publish that had landed finds its own nonce and gets its ids back
# instead of being taken for a duplicate. Returns, per publish, its ids, false for a
# duplicate, or {"full", stream} when a bounded stream has no room.
_APPEND = _UNFINISHED + """
local bound = tonumber(ARGV[1])
local out = {}
local k, a = 1, 2
while a <= #ARGV do
  local n = tonumber(ARGV[a + 3])
  local result = nil
  if ARGV[a] == '1' then
    local seen = redis.call('GET', KEYS[k])
    if seen then
      local nonce, ids = string.match(seen, '^(%S+) ?(.*)$')
      if nonce == ARGV[a + 2] then
        result = {}
        for id in string.gmatch(ids, '%S+') do result[#result + 1] = id end
      else
        result = false
      end
    end
  end
  if result == nil and bound > 0 then
    for i = 1, n do
      if unfinished(KEYS[k + i], nil) >= bound then
        result = {'full', KEYS[k + i]}
        break
      end
    end
  end
  if result == nil then
    result = {}
    for i = 1, n do result[i] = redis.call('XADD', KEYS[k + i], '*', 'e', ARGV[a + 3 + i]) end
    if ARGV[a] == '1' then
      redis.call('SET', KEYS[k], ARGV[a + 2] .. ' ' .. table.concat(result, ' '), 'PX', ARGV[a + 1])
    end
  end
  out[#out + 1] = result
  k = k + 1 + n
  a = a + 4 + n
end
return out
"""

# Acknowledgements of concurrent callers, in one call. KEYS: a stream per call; ARGV per
# call: the group, the number of ids N, the N ids. Returns per call how many were pending
# (0 when the group does not exist).
_ACK = """
local out = {}
local a = 1
for k = 1, #KEYS do
  local n = tonumber(ARGV[a + 1])
  local ok, acked = pcall(redis.call, 'XACK', KEYS[k], ARGV[a], unpack(ARGV, a + 2, a + 1 + n))
  out[k] = ok and acked or 0
  a = a + 2 + n
end
return out
"""


# Whether a group has nothing left to do on some streams, in one atomic read: no entry
# pending or unread, and no retry scheduled for them. KEYS: the schedule, then the streams;
# ARGV: the group, then the stream names as the schedule records them.
_QUIET = _UNFINISHED + """
for i = 2, #KEYS do
  if unfinished(KEYS[i], ARGV[1]) > 0 then return 0 end
end
local wanted = {}
for i = 2, #ARGV do wanted[ARGV[i]] = true end
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if wanted[cjson.decode(member)['stream']] then return 0 end
end
return 1
"""


def _key(stream: str) -> str:
    return f"{PREFIX}s:{stream}"


def _id(text: str) -> EntryId:
    return EntryId.parse(text)


class _Script:
    """A Lua script that concurrent callers share: their keys and arguments are concatenated
    into one call (after `header`, the arguments every call starts with) and its reply, a
    list with one element per caller, split back."""

    def __init__(self, source: str, header: tuple[Any, ...] = ()) -> None:
        self.source = source
        self.header = header
        self.sha = hashlib.sha1(source.encode()).hexdigest()


_Item = tuple[Any, tuple[Any, ...], asyncio.Future[Any]]  # (script or None, command or (keys, args), caller)


class _Batch:
    """Group commit: what callers ask while a round trip is in flight goes, pipelined, in the
    next one; calls of the same shared script become one call. A lone caller pays one round
    trip, as before; a hundred concurrent publishes or acks pay a few. Each caller still
    waits for its own reply, so a publish that returned is on the server."""

    LIMIT = 512  # callers per round trip

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self.queue: list[_Item] = []
        self.task: asyncio.Task[None] | None = None

    async def call(self, *command: Any) -> Any:
        return await self._submit(None, command)

    async def script(self, script: _Script, keys: list[str], args: list[Any]) -> Any:
        return await self._submit(script, (keys, args))

    async def _submit(self, script: _Script | None, payload: tuple[Any, ...]) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self.task is None or self.task.done() or self.task.get_loop() is not loop:
            # Callers left behind by a loop that was closed are gone with it.
            self.queue = [item for item in self.queue if item[2].get_loop() is loop]
            self.task = loop.create_task(self._flush())
        self.queue.append((script, payload, future))
        return await future

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let the callers that are ready to ask, ask: they join this round trip
        while self.queue:
            batch, self.queue = self.queue[:self.LIMIT], self.queue[self.LIMIT:]
            # One command per plain call, one per script whatever its callers.
            commands: list[tuple[Any, ...]] = []
            shared: dict[_Script, list[_Item]] = {}
            for item in batch:
                if item[0] is None:
                    commands.append(item[1])
                else:
                    shared.setdefault(item[0], []).append(item)
            for script, items in shared.items():
                keys = [key for _, (k, _a), _f in items for key in k]
                args = [*script.header, *(arg for _, (_k, a), _f in items for arg in a)]
                commands.append(("EVALSHA", script.sha, len(keys), *keys, *args))
            try:
                replies = await self._execute(commands, {script.sha: script.source for script in shared})
            except Exception as exc:  # the whole round trip failed: every caller hears of it
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            except BaseException:  # cancelled with its loop: so are its callers
                for _, _, future in batch:
                    future.cancel()
                raise
            plain = iter(replies)
            for script, _, future in batch:
                if script is None:
                    _settle(future, next(plain))
            for items, reply in zip(shared.values(), replies[len(replies) - len(shared):], strict=True):
                for number, (_, _, future) in enumerate(items):
                    _settle(future, reply if isinstance(reply, Exception) else reply[number])
            await asyncio.sleep(0)  # the callers just answered may ask again at once: in the next trip

    async def _execute(self, commands: list[tuple[Any, ...]], sources: dict[str, str]) -> list[Any]:
        client = self.store.client
        pipe = client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        replies = list(await self.store._do(pipe.execute(raise_on_error=False)))
        for number, reply in enumerate(replies):
            if isinstance(reply, NoScriptError):  # the server restarted, or its scripts were flushed
                try:  # this command's callers alone hear of a failure here: the others' commands ran
                    await self.store._do(client.script_load(sources[commands[number][1]]))
                    replies[number] = await self.store._do(client.execute_command(*commands[number]))  # type: ignore[no-untyped-call]
                except (ResponseError, StoreError) as exc:
                    replies[number] = exc
        return replies


def _settle(future: asyncio.Future[Any], reply: Any) -> None:
    if future.done():
        return  # its caller was cancelled; the command ran all the same
    if isinstance(reply, Exception):
        future.set_exception(reply)
    else:
        future.set_result(reply)


class _Connection:
    """One event loop's clients of a store: a pool whose commands are retried with backoff
    when a connection drops, and one for XREADGROUP that is not retried (a resent read would
    take deliveries whose first reply was lost; delivery looks for those itself)."""

    def __init__(self, store: RedisStore) -> None:
        # Bounded pools that make callers wait for a connection instead of failing.
        retry = Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=6)
        pool = aioredis.BlockingConnectionPool.from_url(
            store.url, decode_responses=True, max_connections=64, timeout=None, retry=retry,
            retry_on_error=[RedisConnectionError, RedisTimeoutError])
        self.client = aioredis.Redis(connection_pool=pool)
        reads = aioredis.BlockingConnectionPool.from_url(
            store.url, decode_responses=True, max_connections=64, timeout=None, retry=Retry(NoBackoff(), 0))
        self.reader = aioredis.Redis(connection_pool=reads)
        self.batch = _Batch(store)
        self.release = self.client.register_script(_RELEASE)
        self.lease = self.client.register_script(_LEASE)
        self.quiet = self.client.register_script(_QUIET)
        self.release_lease = self.client.register_script(_RELEASE_LEASE)


class RedisStore(EventStore):
    """The contract of `runtime/store.py` on a Redis server: `RedisStore("redis://127.0.0.1:6379/0")`."""

    shared = True

    def __init__(self, url: str, *, max_unacked: int | None = None, poll: float = 0.01) -> None:
        if max_unacked is not None and max_unacked < 1:
            raise ValueError(f"max_unacked must be at least 1, not {max_unacked}")
        self.url = url
        self.max_unacked = max_unacked
        self.poll = poll
        # Clients are bound to the event loop they were made in: one set per loop (a router
        # used from `publish_sync` and from async code meets two).
        self._connections: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Connection] = (
            weakref.WeakKeyDictionary())
        self._append_script = _Script(_APPEND, header=(max_unacked or 0,))
        self._ack_script = _Script(_ACK)
        self._members_script = _Script(_MEMBERS)

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
    def _batch(self) -> _Batch:
        return self._connection().batch

    async def _do(self, awaitable: Any) -> Any:
        """Await one redis-py call, a lost connection reported as a StoreError naming the server."""
        try:
            return await awaitable
        except (RedisConnectionError, OSError) as exc:
            raise StoreError(f"cannot reach Redis at {self.url}: {exc}") from None

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    async def close(self) -> None:
        connection = self._connections.pop(asyncio.get_running_loop(), None)
        if connection is not None:
            await connection.client.aclose()
            await connection.reader.aclose()

    # ---- appending ---------------------------------------------------------------

    async def _groups(self, stream: str) -> list[dict[str, Any]]:
        try:
            return list(await self._do(self.client.xinfo_groups(_key(stream))))
        except ResponseError:
            return []  # no such stream

    async def append(self, stream: str, entry: Entry, *, timeout: float | None = None) -> EntryId:
        if self.max_unacked is None:
            return _id(await self._batch.call("XADD", _key(stream), "*", "e", encode_entry(entry)))
        ids = await self.append_all([(stream, entry)], timeout=timeout)  # the bound checked in the script
        assert ids is not None  # no idempotency key: never a duplicate
        return ids[0]

    async def append_all(self, entries: list[tuple[str, Entry]], *, once: str | None = None, ttl_ms: int = 0,
                         timeout: float | None = None) -> list[EntryId] | None:
        encoded = [encode_entry(entry) for _, entry in entries]
        keys = [f"{PREFIX}k:{once or ''}", *(_key(stream) for stream, _ in entries)]
        args = ["1" if once is not None else "0", max(int(ttl_ms), 1), os.urandom(8).hex(), len(entries), *encoded]
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            reply = await self._batch.script(self._append_script, keys, args)
            if reply is None:  # the script's false: a duplicate
                return None
            if not reply or reply[0] != "full":
                return [_id(i) for i in reply]
            if deadline is not None and time.monotonic() >= deadline:
                stream = reply[1][len(PREFIX) + 2:]
                raise StoreFull(f"stream `{stream}` holds {self.max_unacked} unacknowledged entries, its bound; "
                                f"it stayed full for {timeout} s")
            await asyncio.sleep(self.poll)

    # ---- groups ------------------------------------------------------------------

    async def ensure_group(self, stream: str, group: str, *, start: EntryId = MIN_ID) -> None:
        try:
            await self._do(self.client.xgroup_create(_key(stream), group, str(start), mkstream=True))
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise StoreError(f"cannot create group `{group}` on stream `{stream}`: {exc}") from None

    @staticmethod
    def _records(rows: list[Any], deliveries: int) -> list[Record]:
        """Stream rows as redis-py parses them, (id, {field: value}), into records."""
        out = []
        for entry_id, fields in rows:
            if not fields:  # an entry deleted while pending
                continue
            if not isinstance(fields, dict):
                fields = dict(zip(fields[::2], fields[1::2], strict=True))
            out.append(Record(_id(entry_id), json.loads(fields["e"]), deliveries))
        return out

    async def read(self, stream: str, group: str, consumer: str, *, count: int = 1,
                   block: float | None = None) -> list[Record]:
        wait = max(int(block * 1000), 1) if block is not None and block > 0 else None
        try:
            reader = self._connection().reader
            reply = await self._do(reader.xreadgroup(group, consumer, {_key(stream): ">"}, count=count, block=wait))
        except ResponseError as exc:
            if "NOGROUP" in str(exc):
                raise StoreError(f"no consumer group `{group}` on stream `{stream}`: create it with ensure_group") \
                    from None
            raise
        if not reply:
            return []
        rows = reply[0][1] if isinstance(reply, list) else next(iter(reply.values()))[0]
        return self._records(rows, 1)

    async def ack(self, stream: str, group: str, ids: list[EntryId]) -> int:
        if not ids:
            return 0
        try:
            if len(ids) > 1000:  # more than a script's arguments can unpack at once
                return int(await self._do(self.client.xack(_key(stream), group, *map(str, ids))))
            return int(await self._batch.script(self._ack_script, [_key(stream)], [group, len(ids), *map(str, ids)]))
        except ResponseError:
            return 0

    async def _pending_rows(self, stream: str, group: str, start: str = "-", end: str = "+",
                            count: int = 1_000_000) -> list[Any]:
        try:
            return list(await self._do(self.client.xpending_range(_key(stream), group, start, end, count)))
        except ResponseError as exc:
            raise StoreError(f"no consumer group `{group}` on stream `{stream}`: {exc}") from None

    async def pending(self, stream: str, group: str) -> list[Pending]:
        rows = await self._pending_rows(stream, group)
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
        keys = [SCHEDULE, *(_key(stream) for stream in streams)]
        return bool(await self._do(self._connection().quiet(keys=keys, args=[group, *streams])))

    async def claim(self, stream: str, group: str, consumer: str, *, min_idle_ms: int,
                    count: int = 10) -> list[Record]:
        taken: list[Any] = []
        cursor = "0-0"
        while len(taken) < count:
            try:
                reply = await self._do(self.client.xautoclaim(_key(stream), group, consumer, min_idle_ms, cursor,
                                                              count=count - len(taken)))
            except ResponseError as exc:
                raise StoreError(f"no consumer group `{group}` on stream `{stream}`: {exc}") from None
            cursor, rows = reply[0], reply[1]
            taken.extend(row for row in rows if row and row[1])
            if cursor == "0-0":
                break
        if not taken:
            return []
        # The delivery counts, in one read of the claimed range of this consumer's pending.
        ids = sorted((_id(entry_id) for entry_id, _ in taken))
        try:
            rows = await self._do(self.client.xpending_range(_key(stream), group, str(ids[0]), str(ids[-1]),
                                                             len(ids), consumername=consumer))
        except ResponseError as exc:
            raise StoreError(f"no consumer group `{group}` on stream `{stream}`: {exc}") from None
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

    async def trim(self, stream: str, *, max_len: int | None = None, max_age_ms: int | None = None) -> int:
        key = _key(stream)
        total = await self.length(stream)
        if total == 0 or (max_len is None and max_age_ms is None):
            return 0
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
        for group in await self._groups(stream):
            last = _id(group["last-delivered-id"])
            cut = min(cut, EntryId(last.ms, last.seq + 1))
            oldest = await self._do(self.client.xpending_range(key, group["name"], "-", "+", 1))
            if oldest:
                cut = min(cut, _id(oldest[0]["message_id"]))
        before = await self._do(self.client.xrange(key, "-", f"({cut}", count=1)) if cut > MIN_ID else []
        if not before:
            return 0
        return int(await self._do(self.client.xtrim(key, minid=str(cut), approximate=False)))

    # ---- the delayed schedule --------------------------------------------------------

    async def schedule(self, stream: str, entry: Entry, due_ms: int) -> None:
        member = json.dumps({"stream": stream, "entry": encode_entry(entry), "token": uuid.uuid4().hex})
        await self._batch.call("ZADD", SCHEDULE, due_ms, member)

    async def release_due(self, *, now_ms: int | None = None) -> int:
        now = self.now_ms() if now_ms is None else now_ms
        released = 0
        while True:
            moved = int(await self._do(self._connection().release(keys=[SCHEDULE], args=[now, f"{PREFIX}s:"])))
            released += moved
            if moved < 100:
                return released

    async def scheduled(self, stream: str | None = None) -> list[tuple[int, str, Entry]]:
        out = []
        for member, score in await self._do(self.client.zrange(SCHEDULE, 0, -1, withscores=True)):
            item = json.loads(member)
            if stream is None or item["stream"] == stream:
                out.append((int(float(score)), item["stream"], json.loads(item["entry"])))
        return out

    # ---- idempotency -------------------------------------------------------------------

    async def remember(self, key: str, ttl_ms: int) -> bool:
        return bool(await self._do(self.client.set(f"{PREFIX}k:{key}", "1", nx=True, px=max(int(ttl_ms), 1))))

    # ---- leases ------------------------------------------------------------------------

    async def lease(self, name: str, owner: str, ttl_ms: int) -> bool:
        lease = self._connection().lease
        return bool(await self._do(lease(keys=[f"{PREFIX}l:{name}"], args=[owner, max(int(ttl_ms), 1)])))

    async def release(self, name: str, owner: str) -> None:
        await self._do(self._connection().release_lease(keys=[f"{PREFIX}l:{name}"], args=[owner]))

    async def members(self, name: str, owner: str, ttl_ms: int) -> list[str]:
        live = await self._batch.script(self._members_script, [f"{PREFIX}m:{name}"], [int(ttl_ms), owner])
        return sorted(live)
