"""Where the Redis store's keys live and the connections that reach them: one server, or the
masters of a Redis Cluster.

A store URL `redis://` or `rediss://` names one server; `redis+cluster://` (or
`rediss+cluster://`) names a cluster by one or more of its nodes,
`redis+cluster://[user:password@]host:port[,host:port...][?options]`, the options as for
one server (database 0 only: a cluster has no other).

Every key has a hash slot (on one server: slot 0 for all). Each event loop holds, per
server it talks to, one pipelined connection with its group commit (runtime/redis_wire.py,
runtime/redis_batch.py), and per slot it blocks on, one connection for blocking reads. On
a cluster, which master serves a slot comes from redis-py's cluster client (CLUSTER
SLOTS), read before the first command (`ready`; if it cannot be read within the connect
timeout, commands go to the first node listed). Redirections are followed where the
command is: MOVED (the slot's owner changed: remembered, and the map read again), ASK (a
slot half-way through a migration: the command goes to the importing node after ASKING,
once), TRYAGAIN (a multi-key command during that migration: sent again every 50 ms until
it ends, up to the command timeout), UNBLOCKED (a blocking read the server ended: a read
that found nothing). A connection to a master that is lost or refused has the map read
again too, so that after a failover commands reach the promoted replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from redis.crc import key_slot

from .redis_batch import Batch
from .redis_wire import Command, Wire
from .store import StoreError

log = logging.getLogger(__name__)

SLOTS = 16384
MOVES = 8  # redirections a command may follow
TRY_AGAIN_EVERY = 0.05  # seconds between two tries of a command a migrating slot refused
ASKED_READ = 0.1  # seconds before a read of a slot half-way through a migration is tried again
REFRESH_EVERY = 0.2  # seconds between readings of the slot map, at most


@dataclass(frozen=True)
class ClusterURL:
    """A `redis+cluster://` URL taken apart: the seed nodes, and what every node's own URL
    carries (scheme, credentials, options)."""

    scheme: str  # redis or rediss
    userinfo: str  # "user:password@" as written, or ""
    seeds: tuple[tuple[str, int], ...]
    query: str

    def node_url(self, host: str, port: int) -> str:
        shown_host = f"[{host}]" if ":" in host else host
        return f"{self.scheme}://{self.userinfo}{shown_host}:{port}/0" + (f"?{self.query}" if self.query else "")


def parse_cluster_url(url: str) -> ClusterURL | None:
    """The cluster a `redis+cluster://` URL names; None for another scheme. A ValueError
    names what is wrong with the URL."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("redis+cluster", "rediss+cluster"):
        return None
    end = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    netloc, tail = rest[:end], rest[end:]
    path, _, query = tail.partition("?")
    if path not in ("", "/", "/0"):
        raise ValueError(f"a Redis Cluster has database 0 only, not {path.lstrip('/')!r}")
    userinfo, at, hosts = netloc.rpartition("@")
    seeds = []
    for item in hosts.split(","):
        host, colon, port = item.rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"a Redis Cluster URL lists nodes as host:port, not {item!r}")
        seeds.append((unquote(host.strip("[]")), int(port)))
    return ClusterURL(scheme.split("+")[0], f"{userinfo}{at}", tuple(seeds), query)


def address_of(host: str, port: int) -> str:
    return f"{host}:{port}"


class Nodes:
    """One event loop's connections to a store's server or cluster (see the module).
    `url` is the store's; `cluster` its parsed form when it names a cluster, whose redis-py
    `client` (a RedisCluster) reads the slot map."""

    def __init__(self, url: str, shown: str, *, connect_timeout: float, command_timeout: float,
                 cluster: ClusterURL | None, client: Any, describe: Any) -> None:
        self.url = url
        self.shown = shown
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.cluster = cluster
        self.client = client
        self.describe = describe
        self.loop = asyncio.get_running_loop()
        self.batches: dict[str, Batch] = {}  # per server address (one server: ""), each on its wire
        self.readers: dict[int, tuple[str, Wire]] = {}  # per slot: its server's address, the connection
        self.owner: list[str | None] = [None] * SLOTS if cluster is not None else []
        self.asked: dict[int, str] = {}  # per slot, where an ASK last sent a command
        self.default = address_of(*cluster.seeds[0]) if cluster is not None else ""
        self.refreshing: asyncio.Task[None] | None = None
        self.refreshed_at = -REFRESH_EVERY
        self.again = False  # the map is stale again since the reading under way began
        self.mapped = cluster is None  # whether the slot map was read (one server: nothing to read)
        self.fatal: StoreError | None = None  # why the map can never be read (not a cluster)
        self.closed = False
        if cluster is not None:
            self.stale()

    # ---- where keys live ---------------------------------------------------------------

    def slot(self, key: str) -> int:
        """The hash slot of a key (its `{tag}`'s); on a single server, 0 for all."""
        return key_slot(key.encode()) if self.cluster is not None else 0

    def address(self, slot: int) -> str:
        return (self.owner[slot] or self.default) if self.cluster is not None else ""

    def servers(self) -> list[str]:
        """The addresses of the servers holding slots (one server: [""])."""
        if self.cluster is None:
            return [""]
        return sorted({owner for owner in self.owner if owner is not None} or {self.default})

    # ---- connections ---------------------------------------------------------------------

    def _node_url(self, address: str) -> str:
        if self.cluster is None:
            return self.url
        host, _, port = address.rpartition(":")
        return self.cluster.node_url(host, int(port))

    def _wire(self, address: str, *, retries: int, identify: bool = False) -> Wire:
        wire = Wire(self._node_url(address), shown=self.shown if self.cluster is None else f"{self.shown} ({address})",
                    connect_timeout=self.connect_timeout, command_timeout=self.command_timeout, retries=retries,
                    identify=identify)
        if self.cluster is not None:
            wire.trouble = self.stale
        return wire

    def batch(self, slot: int) -> Batch:
        """The group commit of the server serving `slot`."""
        return self.batch_at(self.address(slot))

    def batch_at(self, address: str) -> Batch:
        batch = self.batches.get(address)
        if batch is None:
            wire = self._wire(address, retries=3)
            wire.redirect = lambda command, words: self._redirect(command, words, None)
            batch = self.batches[address] = Batch(wire, self.describe)
        return batch

    def reader(self, slot: int) -> Wire:
        """The connection for blocking reads of `slot` (not sent again when lost: a read whose
        reply was lost may have taken entries)."""
        address = self.address(slot)
        held = self.readers.get(slot)
        if held is not None and held[0] == address:
            return held[1]
        if held is not None:  # the slot moved: its reads go to its new server
            self.loop.create_task(held[1].close())
        wire = self._wire(address, retries=0, identify=True)
        wire.redirect = lambda command, words: self._redirect(command, words, slot)
        self.readers[slot] = (address, wire)
        return wire

    def reading(self) -> list[Wire]:
        return [wire for _, wire in self.readers.values()]

    # ---- redirections ------------------------------------------------------------------

    def _redirect(self, command: Command, words: list[str], reading: int | None) -> bool:
        """Take a command a cluster redirected (see the module); false lets its reply fail it."""
        kind = words[0]
        if self.cluster is None or self.closed:
            return False
        if kind == "UNBLOCKED":
            # A blocking read ended by the server: its stream's slot moved, or its master
            # became a replica. It took nothing: a read that found nothing, the map read again.
            if reading is None:
                return False
            self.stale()
            command.settle(None)
            return True
        if kind == "TRYAGAIN":
            # A multi-key command on a slot half-way through a migration (its keys split, or
            # some not made yet): sent again until the migration ends, up to the command timeout.
            command.waited += 1
            command.moves = 0  # (each try goes by the owner again: ASK, then TRYAGAIN)
            if command.waited * TRY_AGAIN_EVERY > self.command_timeout:
                return False
            self.loop.call_later(TRY_AGAIN_EVERY, self._send_to_owner, command, reading)
            return True
        command.moves += 1
        if command.moves > MOVES or len(words) < 3:
            return False
        slot, address = int(words[1]), words[2]
        if kind == "MOVED":
            self.owner[slot] = address
            self.stale()
            self._send_to_owner(command, slot if reading is not None else None, slot)
            return True
        # ASK: this command alone, on the importing server, right after ASKING.
        if reading is not None:
            # (a blocking read there would hold up that server's connection: tried again
            # shortly, as a read that found nothing, until the slot has moved)
            self.loop.call_later(ASKED_READ, command.settle, None)
            return True
        self.asked[slot] = address
        wire = self.batch_at(address).wire
        wire.resend(Command(("ASKING",), lambda _reply: None, True, 0.0))
        wire.resend(command)
        return True

    def _send_to_owner(self, command: Command, reading: int | None, slot: int | None = None) -> None:
        if self.closed:
            command.settle(StoreError(f"the connection to {self.shown} is closed"))
            return
        if reading is not None:
            self.reader(reading).resend(command)
            return
        if slot is None:
            slot = self._slot_of_command(command)
        self.batch(slot).wire.resend(command)

    def _slot_of_command(self, command: Command) -> int:
        """The slot of a command's first key (EVAL/EVALSHA: after the key count)."""
        args = command.args
        name = str(args[0]).upper()
        if name in ("EVAL", "EVALSHA"):
            return self.slot(str(args[3])) if int(args[2]) > 0 else 0
        if name == "XREADGROUP":
            return self.slot(str(args[list(map(str, args)).index("STREAMS") + 1]))
        return self.slot(str(args[1])) if len(args) > 1 else 0

    # ---- the slot map --------------------------------------------------------------------

    def stale(self) -> None:
        """The slot map may be out of date: read it again soon (at most every REFRESH_EVERY s)."""
        if self.cluster is None or self.closed:
            return
        if self.refreshing is not None:
            self.again = True
            return
        self.refreshing = self.loop.create_task(self._refresh())

    async def _refresh(self) -> None:
        try:
            while True:
                self.again = False
                wait = self.refreshed_at + REFRESH_EVERY - self.loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                self.refreshed_at = self.loop.time()
                try:
                    await self.client.initialize()  # (the first time: reads the map; then nothing)
                    await self.client.nodes_manager.initialize()
                except Exception as exc:  # a cluster in the middle of a failover: read again later
                    if "cluster mode is not enabled" in str(exc).lower():
                        self.fatal = StoreError(f"Redis at {self.shown} is not a Redis Cluster (cluster mode is not "
                                                "enabled there): use redis://HOST:PORT/DB for a single server")
                        log.error("%s", self.fatal)
                        return
                    log.info("cannot read the slot map of %s yet: %s", self.shown, exc)
                    self.again = True
                else:
                    cache = self.client.nodes_manager.slots_cache
                    for slot in range(SLOTS):
                        nodes = cache.get(slot)
                        self.owner[slot] = nodes[0].name if nodes else None
                    self.mapped = True
                if not self.again or self.closed:
                    return
        finally:
            self.refreshing = None

    async def ready(self) -> None:
        """Wait for the first reading of the slot map, up to the connect timeout (then
        commands go to the first node the URL lists, and fail as it does); raises what
        makes reading it impossible."""
        if self.fatal is not None:
            raise self.fatal
        if self.mapped or self.refreshing is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.connect_timeout):
                while not self.mapped and self.refreshing is not None:
                    await asyncio.shield(self.refreshing)
        if self.fatal is not None:
            raise self.fatal

    async def close(self) -> None:
        self.closed = True
        if self.refreshing is not None:
            self.refreshing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.refreshing
        for wire in [*(batch.wire for batch in self.batches.values()), *self.reading()]:
            await wire.close()

