"""The event-store contract: what delivery needs from storage, whatever the engine.

Two implementations keep this contract: `MemoryStore` (runtime/memory_store.py, the
embedded default) and the Redis Streams store (later). The contract is written to map onto
Redis Streams one to one, so that the same delivery code and the same contract test suite
(`tests/store_contract.py`) run on both.

Concepts
--------
- **Stream**: an append-only log of entries. `append` gives each entry an `EntryId`,
  strictly increasing within the stream (the *offset*). Entries are dicts of JSON values.
- **Consumer group**: a named cursor over one stream, shared by consumers. `read` hands
  each new entry to exactly one consumer of the group and records it as *pending* for that
  consumer, with a delivery count of 1. `ack` removes entries from the pending list.
  Entries are never removed by being read: only trimming removes them.
- **Pending entries**: read but not yet acknowledged. `pending` lists them with their
  consumer, delivery count and idle time; `claim` transfers entries idle for at least a
  threshold to another consumer (a crashed worker's work is taken over), adding one to
  their delivery count.
- **Delayed schedule**: `schedule` parks an entry until a due time, beside its stream;
  `release_due` moves every entry whose time has come into its stream as a new entry,
  atomically (an entry is never both scheduled and appended, nor neither); `next_due` tells
  when the soonest is due, so that nothing needs to poll.
- **Dead letters** are streams too, by convention named by the caller.
- **Replay**: `range` reads a stream from an offset, whatever the groups have done.
- **Retention**: `trim` drops the oldest entries beyond a length or age, but never an entry
  some group has not acknowledged (or not yet read).
- **Bounds and backpressure**: a store may bound the entries a stream holds unacknowledged;
  `append` to a full stream waits until there is room (up to `timeout`), then raises
  `StoreFull`. Nothing accepted is ever dropped.
- **Event size**: `max_event_bytes` (1 MiB by default, an option of every store) is the
  largest event a publish stores; the engine refuses a larger one before anything is stored
  (runtime/event_data.py). Entries already stored are read back whatever their size.
- **Idempotency keys**: `remember(key, ttl)` is true the first time a key is seen within
  its time to live, false afterwards (Redis: SET NX PX); `append_all(once=key)` remembers a
  key with what it appended (Redis: beside each stream, for a cluster's sake).

Time is the store's clock in milliseconds (`now_ms`), so tests can drive a fake clock.

Errors
------
Everything a store cannot do is a `StoreError` whose message names the cause (never a
password). `retryable` says whether trying again later can succeed: a server that cannot be
reached, is loading, is read-only or out of memory (`StoreUnavailable`, `StoreFull`), a
consumer group lost with the server's data (`NoGroup`: create it again). Delivery retries
those; the others (a key of the wrong type, say) are reported.
"""

from __future__ import annotations

import abc
import json
from typing import Any, NamedTuple

import attrs
import orjson


class Packed(bytes):
    """An entry its maker encoded itself, JSON text in UTF-8, stored as it is (the engine's
    compact delivery entries, runtime/entry.py); anything else is encoded by the store."""


# What is appended: a dict of JSON values (a list, too), or `Packed` text. What is read back
# is the JSON value (a `Packed` entry's, decoded).
Entry = dict[str, Any] | list[Any] | Packed


def encode_entry(entry: Entry) -> str | bytes:
    """An entry as the stores keep it, JSON text (as Redis keeps it: a caller mutating its
    dict later changes nothing stored); anything but a dict (or a list) of JSON values that
    is valid Unicode (no lone surrogates), or `Packed` text, is a StoreError."""
    if type(entry) is Packed:
        return bytes(entry)  # (plain bytes: what C decoders take)
    if not isinstance(entry, dict | list):
        raise StoreError(f"an entry is a dict, not {type(entry).__name__}")
    try:
        text = json.dumps(entry, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise StoreError(f"an entry must be JSON: {exc}") from None
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise StoreError(f"an entry must be valid Unicode text: {exc.object[exc.start:exc.end]!r} at "
                             f"position {exc.start} is a lone surrogate (a file name decoded with "
                             "surrogateescape?)") from None
    return text


decode_entry = orjson.loads  # JSON text (str or bytes) back into its values


class EntryId(NamedTuple):
    """An offset in a stream: (milliseconds, sequence), ordered; printed as Redis does.

    A named tuple: delivery compares and hashes ids all the time, and tuples do it in C."""

    ms: int
    seq: int

    def __str__(self) -> str:
        return f"{self.ms}-{self.seq}"

    @classmethod
    def parse(cls, text: str) -> EntryId:
        ms, _, seq = text.partition("-")
        try:
            return cls(int(ms), int(seq or 0))
        except ValueError:
            raise ValueError(f"not a stream entry id: {text!r} (expected MS-SEQ, such as 1700000000000-0)") from None


MIN_ID = EntryId(0, 0)


class Record(NamedTuple):
    """An entry read from a stream, with how many times it has been delivered. (A named
    tuple: one is made for every delivery read.)"""

    id: EntryId
    entry: Any  # what was appended: a dict, or the JSON array of a `Packed` entry
    deliveries: int = 0


@attrs.frozen
class Pending:
    id: EntryId
    consumer: str
    deliveries: int
    idle_ms: int


@attrs.frozen
class StreamStats:
    """What a group has to do on one stream, read at one instant (`stream_stats`)."""

    length: int  # entries the stream holds
    scheduled: int  # retries waiting in its delayed schedule
    group: bool  # whether the group exists on the stream
    unread: int  # entries the group has not read yet (every entry, when it has no group)
    pending: int  # entries read and not acknowledged
    oldest: EntryId | None  # the oldest entry the group has still to finish (pending or unread)
    consumers: dict[str, int] = attrs.Factory(dict)  # per consumer with pending entries, how many


class StoreError(Exception):
    """A store operation that cannot be done; the message names the stream or group."""

    #: Whether the same operation may succeed later, with nothing changed on this side.
    retryable = False


class StoreUnavailable(StoreError):
    """The store cannot be reached or cannot serve right now (connection lost, timed out,
    loading its data, read-only, busy): the operation may succeed later."""

    retryable = True


class StoreFull(StoreError):
    """No room: a bounded stream stayed full for longer than the append was willing to wait,
    or the store is out of memory. Nothing was stored; room may come later."""

    retryable = True


class NoGroup(StoreError):
    """A stream has no such consumer group (the store lost it, or it was never made)."""

    retryable = True

    def __init__(self, stream: str, group: str) -> None:
        super().__init__(f"no consumer group `{group}` on stream `{stream}`: create it with ensure_group")
        self.stream = stream
        self.group = group


DEFAULT_MAX_EVENT_BYTES = 1_048_576  # 1 MiB: about Kafka's default (Amazon EventBridge takes 256 KiB)


def max_event_bytes_option(value: Any) -> int:
    """A store's `max_event_bytes` (given to its constructor, or as the text of a store URL's
    option), checked: a whole number of bytes, at least 1 (None: the default)."""
    if value is None:
        return DEFAULT_MAX_EVENT_BYTES
    if type(value) is not int and not (isinstance(value, str) and value.isascii() and value.isdigit()):
        raise ValueError(f"max_event_bytes must be a whole number of bytes, not {str(value)[:40]!r}")
    number = int(value)
    if number < 1:
        raise ValueError(f"max_event_bytes must be at least 1, not {number}")
    return number


class EventStore(abc.ABC):
    """The contract. Every method is a coroutine; all of them are safe to call concurrently."""

    #: The largest event a publish stores, in bytes of its data as JSON with its attributes
    #: (a larger one is refused, EventTooLarge, before anything is stored): a store option.
    max_event_bytes = DEFAULT_MAX_EVENT_BYTES

    @abc.abstractmethod
    def now_ms(self) -> int:
        """The store's clock."""

    @abc.abstractmethod
    async def append(self, stream: str, entry: Entry, *, timeout: float | None = None) -> EntryId:
        """Append an entry; wait up to `timeout` seconds (None: forever) while the stream is full."""

    @abc.abstractmethod
    async def append_all(self, entries: list[tuple[str, Entry]], *, once: str | None = None, ttl_ms: int = 0,
                         timeout: float | None = None) -> list[EntryId] | None:
        """Append every (stream, entry) together, or none of them: one publish, its ids in
        the order of `entries`. Waits up to `timeout` while any of the streams is full, then
        raises StoreFull, having appended nothing.

        With `once` (an idempotency key), what is appended is remembered with the key for at
        least `ttl_ms`: a stream that took the key within that time takes nothing of a later
        call with it, and a call that all its streams had already is a duplicate (None, and
        nothing appended). With no entries, the key itself is remembered (as `remember`).
        Where "together" cannot hold (the streams of a Redis Cluster lie on several servers),
        a call that raised may have appended to some streams: called again with the same key
        it completes, every stream holding its entries once."""

    @abc.abstractmethod
    async def remembered(self, key: str) -> bool:
        """Whether an idempotency key is remembered now by `remember` (or by an `append_all`
        with no entries); what `append_all` remembers with its entries is not asked here."""

    @abc.abstractmethod
    async def ensure_group(self, stream: str, group: str, *, start: EntryId = MIN_ID) -> bool:
        """Create the group if it does not exist, reading entries after `start`; creates the
        stream too. True when the group was made now, False when it was there."""

    @abc.abstractmethod
    async def read(self, stream: str, group: str, consumer: str, *, count: int = 1,
                   block: float | None = None) -> list[Record]:
        """Up to `count` entries never delivered to the group, now pending for `consumer`.

        With `block`, wait up to that many seconds for at least one; without, return at once.
        Raises NoGroup when the group does not exist.
        """

    @abc.abstractmethod
    async def read_many(self, streams: list[str], group: str, consumer: str, *, count: int = 1,
                        block: float | None = None) -> dict[str, list[Record]]:
        """`read` over several streams at once: up to `count` new entries of each, by stream
        (streams with none are left out). With `block`, wait up to that many seconds for at
        least one entry in any of them. Raises NoGroup naming a stream without the group
        (the others may then be read again: nothing was taken)."""

    @abc.abstractmethod
    async def ack(self, stream: str, group: str, ids: list[EntryId]) -> int:
        """Acknowledge pending entries; returns how many were pending (others are ignored, and
        on a stream or group that does not exist, all are: 0, as Redis's XACK)."""

    @abc.abstractmethod
    async def pending(self, stream: str, group: str, *, consumer: str | None = None) -> list[Pending]:
        """The group's pending entries (only `consumer`'s, if given), oldest first."""

    @abc.abstractmethod
    async def backlog(self, stream: str, group: str) -> int:
        """Entries the group has still to finish: pending, plus not yet read (0 for no such group)."""

    @abc.abstractmethod
    async def quiet(self, streams: list[str], group: str) -> bool:
        """True when no stream has an entry the group has still to finish (pending or unread;
        in a stream without the group, every entry counts) and none has a retry scheduled.
        Each stream is read with its schedule in one atomic step: a retry moving from the
        schedule into its stream is never missed (a retry goes back to its own stream)."""

    @abc.abstractmethod
    async def claim(self, stream: str, group: str, consumer: str, *, min_idle_ms: int,
                    count: int = 10, ids: list[EntryId] | None = None) -> list[Record]:
        """Take over up to `count` pending entries idle at least `min_idle_ms`, oldest first
        (with `ids`: those of them that are pending, however idle); each one's delivery count
        grows by one and its idle time starts again."""

    @abc.abstractmethod
    async def range(self, stream: str, *, start: EntryId = MIN_ID, count: int | None = None) -> list[Record]:
        """Entries from `start` on (inclusive), oldest first: replay, whatever groups did."""

    @abc.abstractmethod
    async def delete(self, stream: str, ids: list[EntryId]) -> int:
        """Remove entries (a dead letter that was re-driven, say); returns how many existed.
        Pending references to them are dropped too (Redis: XDEL, then XACK)."""

    @abc.abstractmethod
    async def length(self, stream: str) -> int:
        """How many entries the stream holds."""

    @abc.abstractmethod
    async def trim(self, stream: str, *, max_len: int | None = None, max_age_ms: int | None = None,
                   group: str | None = None) -> int:
        """Drop the oldest entries beyond `max_len` or older than `max_age_ms`, except any that a
        group has not acknowledged or not yet read; returns how many were dropped. With `group`,
        a stream that lacks that group (lost with the store's data) is left as it is."""

    @abc.abstractmethod
    async def schedule(self, stream: str, entry: Entry, due_ms: int) -> None:
        """Park `entry` until `due_ms`, when `release_due` appends it to `stream`."""

    @abc.abstractmethod
    async def release_due(self, *, now_ms: int | None = None, streams: list[str] | None = None) -> int:
        """Append every scheduled entry that is due (in due order) to its stream (of `streams`
        only, if given); returns how many."""

    @abc.abstractmethod
    async def next_due(self, streams: list[str]) -> dict[str, int]:
        """Per stream of `streams` with entries scheduled, when the soonest is due."""

    @abc.abstractmethod
    async def scheduled(self, stream: str | None = None) -> list[tuple[int, str, Any]]:
        """The entries still scheduled (due time, stream, entry), soonest first."""

    @abc.abstractmethod
    async def remember(self, key: str, ttl_ms: int) -> bool:
        """True the first time `key` is seen within `ttl_ms`, False while it is remembered."""

    @abc.abstractmethod
    async def lease(self, name: str, owner: str, ttl_ms: int) -> bool:
        """Hold the lease `name` for `owner` for `ttl_ms`: True when it was free, expired or
        already `owner`'s (renewed), False while another owner holds it (Redis: SET NX PX,
        renewed by a script that checks the owner)."""

    @abc.abstractmethod
    async def lease_many(self, group: str, names: list[str], owner: str, ttl_ms: int) -> list[bool]:
        """`lease` of several names of one `group` in one step (Redis: one script; the leases
        of a group share a hash slot, apart from `lease`'s)."""

    @abc.abstractmethod
    async def release(self, name: str, owner: str, *, group: str | None = None) -> None:
        """Give the lease up (of `group`, if it was taken with `lease_many`), if `owner` holds it."""

    @abc.abstractmethod
    async def members(self, name: str, owner: str, ttl_ms: int) -> list[str]:
        """Heartbeat in the membership `name`: `owner` counts as live for `ttl_ms` from now
        (0: it leaves at once). Returns the live owners, sorted (Redis: a sorted set scored
        by expiry, trimmed and read in one script)."""

    # ---- reading what delivery is doing, for operators (nothing is written) ----------

    @abc.abstractmethod
    async def stream_stats(self, streams: list[str], group: str) -> dict[str, StreamStats]:
        """Per stream, what `group` has to do there (`StreamStats`), every stream in one step
        (Redis: one read-only script per stream, pipelined in one round trip). A stream that
        does not exist has nothing; a stream without the group has every entry unread."""

    @abc.abstractmethod
    async def lease_holders(self, group: str, names: list[str]) -> dict[str, str | None]:
        """Per lease of `group` (as `lease_many` takes them), its owner now, None when free or
        expired (Redis: one MGET)."""

    @abc.abstractmethod
    async def live_members(self, names: list[str]) -> dict[str, list[str]]:
        """Per membership (as `members` keeps them), its live owners, sorted, without beating
        in it (Redis: each membership read with its server's clock, at once)."""

    #: Whether other processes share this store (their workers deliver what this one publishes).
    shared = False
    #: Whether `append_all` is all or nothing across streams (not on a Redis Cluster, whose
    #: streams lie on several servers: there, per hash slot).
    atomic_publish = True

    async def close(self) -> None:  # noqa: B027 - optional for stores that hold nothing
        """Release connections; the store is not used afterwards."""
