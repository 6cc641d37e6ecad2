"""A pipelined connection to Redis for the hot path: publishes, reads and acknowledgements.

redis-py makes the connection (TLS, AUTH, SELECT and the rest of its handshake, from the
store's URL); then this module takes its transport over: commands are packed by hiredis and
written as they come, many in one write, without waiting for earlier replies (pipelining),
and replies are parsed by hiredis as they arrive and handed to each command's `settle`
callback, in order, with no task per command or per round trip. Everything else the store
does (administration, recovery, operators' reads) goes through redis-py's own client.

Failures: a reply that is an error reaches its own command's `settle` as an exception
(redis-py's classes, so that `redis_errors.Describer` names it). A connection that is lost,
refused or silent for longer than a command's timeout fails every command waiting on it;
commands marked `idempotent` are sent again on a new connection, up to `retries` times with
backoff (a resent publish finds its own nonce: runtime/redis_scripts.py), the others fail
with the connection's error (a resent XREADGROUP would take entries whose first reply was
lost; delivery looks for those itself).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis import exceptions as rx

log = logging.getLogger(__name__)

Settle = Callable[[Any], None]  # takes the reply, or an exception

# Error replies by their first word, as redis-py classifies them.
_ERRORS: dict[str, type[rx.RedisError]] = {
    "NOSCRIPT": rx.NoScriptError,
    "LOADING": rx.BusyLoadingError,
    "READONLY": rx.ReadOnlyError,
    "OOM": rx.OutOfMemoryError,
    "NOPERM": rx.NoPermissionError,
    "WRONGPASS": rx.AuthenticationError,
    "NOAUTH": rx.AuthenticationError,
}


def error_of(reply: rx.ResponseError) -> rx.RedisError:
    """An error reply as the redis-py exception its first word makes it."""
    text = str(reply)
    cls = _ERRORS.get(text.split(" ", 1)[0])
    return cls(text) if cls is not None else reply


# Replies a cluster gives while slots move or masters change (runtime/redis_nodes.py): the
# command was not carried out, and can be sent where the slot now is.
REDIRECTIONS = ("MOVED", "ASK", "TRYAGAIN", "UNBLOCKED")


class Command:
    """A command on its way: its arguments, who takes its reply, how often it was tried."""

    __slots__ = ("args", "deadline", "extra", "idempotent", "moves", "settle", "tries", "waited")

    def __init__(self, args: tuple[Any, ...], settle: Settle, idempotent: bool, extra: float) -> None:
        self.args = args
        self.settle = settle
        self.idempotent = idempotent
        self.tries = 0
        self.moves = 0  # redirections followed since the last TRYAGAIN (a cluster's MOVED and ASK)
        self.waited = 0  # TRYAGAIN replies met (a slot's migration under way)
        self.deadline = 0.0
        self.extra = extra  # seconds the server may take on purpose (a blocking read's BLOCK)


class _Protocol(asyncio.Protocol):
    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        # (text that is not UTF-8, which only another writer can have stored, is read with
        # replacement characters rather than stopping the connection)
        self.parser = hiredis.Reader(replyError=rx.ResponseError, encoding="utf-8", errors="replace")

    def data_received(self, data: bytes) -> None:
        self.parser.feed(data)
        reply = self.parser.gets()
        while reply is not False:
            self.wire.replied(self, reply)
            reply = self.parser.gets()

    def connection_lost(self, exc: Exception | None) -> None:
        self.wire.lost(self, exc)


class Wire:
    """One pipelined connection of one event loop, made again when lost (see the module)."""

    def __init__(self, url: str, *, shown: str, connect_timeout: float, command_timeout: float, retries: int,
                 identify: bool = False) -> None:
        self.url = shown  # (in messages: the URL without its password)
        self.identify = identify  # ask the server for this connection's id (`client_id`) as it connects
        self.client_id: int | None = None
        self.command_timeout = command_timeout
        self.retries = retries
        # (only to make connections as the store's URL says: this module holds one at a time)
        # RESP2: replies of one shape whatever redis-py's default (RESP3 maps from redis-py 8 on)
        self.pool = aioredis.ConnectionPool.from_url(url, socket_connect_timeout=connect_timeout,
                                                     socket_timeout=command_timeout, protocol=2)
        self.connection: Any = None  # held: redis-py closes what it drops
        self.loop = asyncio.get_running_loop()
        self.queue: list[Command] = []
        self.inflight: collections.deque[Command] = collections.deque()
        self.transport: Any = None  # asyncio's transport of the connection
        self.writer: Any = None  # the stream writer redis-py made it with (held: see _connect)
        self.protocol: _Protocol | None = None
        self.connecting: asyncio.Task[None] | None = None
        self.flushing = False
        self.timer: asyncio.TimerHandle | None = None
        self.timed_out = False
        self.closed = False
        self.before_flush: Callable[[], None] | None = None  # queues what waited to be combined (Batch)
        # A cluster's redirection (REDIRECTIONS, the reply's words) of a command: true when
        # it was taken over (sent where it belongs, or answered) rather than failed with it.
        self.redirect: Callable[[Command, list[str]], bool] | None = None
        self.trouble: Callable[[], None] | None = None  # told when a connection is lost or refused

    def send(self, args: tuple[Any, ...], settle: Settle, *, idempotent: bool = True, extra: float = 0.0) -> None:
        """Queue a command; it goes out with the others queued in this turn of the loop."""
        if self.closed:
            settle(rx.ConnectionError(f"the connection to {self.url} is closed"))
            return
        self.queue.append(Command(args, settle, idempotent, extra))
        self.soon()

    def call(self, args: tuple[Any, ...], *, idempotent: bool = True, extra: float = 0.0) -> asyncio.Future[Any]:
        """`send`, its reply (or the exception) into a future, unless its caller gave up."""
        future: asyncio.Future[Any] = self.loop.create_future()

        def settle(reply: Any) -> None:
            if not future.done():
                (future.set_exception if isinstance(reply, BaseException) else future.set_result)(reply)

        self.send(args, settle, idempotent=idempotent, extra=extra)
        return future

    def soon(self) -> None:
        """Flush: at once when the connection is idle (nothing in flight: a lone caller does
        not wait a turn of the loop), else later in this turn of the loop, so that what is
        queued until then goes in one write."""
        if self.flushing:
            return
        self.flushing = True
        if not self.inflight and self.transport is not None:
            self._flush()
        else:
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        try:
            if self.before_flush is not None:
                self.before_flush()
            self._write()
        finally:
            self.flushing = False

    def _write(self) -> None:
        if not self.queue:
            return
        transport = self.transport
        if transport is None:
            if self.connecting is None:
                self.connecting = self.loop.create_task(self._connect())
            return
        batch, self.queue = self.queue, []
        now = self.loop.time()
        try:
            data = b"".join([hiredis.pack_command(command.args) for command in batch])
        except Exception:  # an argument hiredis cannot pack: that command alone fails
            data = self._pack_each(batch)
            batch = [command for command in batch if command.deadline >= 0]
        for command in batch:
            command.deadline = now + self.command_timeout + command.extra
        self.inflight.extend(batch)
        transport.write(data)
        if self.timer is None and self.inflight:
            self.timer = self.loop.call_at(self.inflight[0].deadline, self._check)

    @staticmethod
    def _pack_each(batch: list[Command]) -> bytes:
        parts = []
        for command in batch:
            try:
                parts.append(hiredis.pack_command(command.args))
            except Exception as exc:
                command.deadline = -1.0
                command.settle(rx.DataError(f"cannot send {command.args[0]}: {exc}"))
        return b"".join(parts)

    def replied(self, protocol: _Protocol, reply: Any) -> None:
        if protocol is not self.protocol or not self.inflight:
            return
        command = self.inflight.popleft()
        if isinstance(reply, rx.ResponseError):
            words = str(reply).split(" ")
            if words[0] in REDIRECTIONS and self.redirect is not None and self.redirect(command, words):
                return
            reply = error_of(reply)
        command.settle(reply)

    def resend(self, command: Command) -> None:
        """Send a command another connection took (a cluster's redirection), keeping its
        callback and its tries."""
        if self.closed:
            command.settle(rx.ConnectionError(f"the connection to {self.url} is closed"))
            return
        self.queue.append(command)
        self.soon()

    def _check(self) -> None:
        """A command whose reply is late past its timeout: the connection is given up."""
        self.timer = None
        if not self.inflight or self.transport is None:
            return
        now = self.loop.time()
        late = self.inflight[0].deadline
        if now >= late:
            self.timed_out = True
            self.transport.abort()
            return
        self.timer = self.loop.call_at(late, self._check)

    def lost(self, protocol: _Protocol, exc: Exception | None) -> None:
        if protocol is not self.protocol:
            return
        self.transport = self.protocol = self.writer = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        silent = self.timed_out
        if silent:
            error: Exception = rx.TimeoutError(f"no reply from {self.url} within {self.command_timeout} s")
        else:
            error = rx.ConnectionError(f"connection to {self.url} lost" + (f": {exc}" if exc else ""))
        self.timed_out = False
        self.client_id = None
        waiting, self.inflight = list(self.inflight), collections.deque()
        if self.trouble is not None:
            self.trouble()
        self._retry(waiting, error, resend=not silent)

    def abort(self) -> None:
        """Drop the connection now (what is in flight fails or is sent again, as when it is lost)."""
        if self.transport is not None:
            self.transport.abort()

    def _retry(self, commands: list[Command], error: Exception, resend: bool = True) -> None:
        """Commands that did not get through: idempotent ones are sent again (within their
        retries) after a lost or refused connection, the others fail with `error`; after a
        silent one (`resend` False: no reply within the command timeout, or no connection
        within the connect timeout) every one fails, so that nothing waits much longer than
        its timeout on a server that does not answer."""
        again = []
        for command in commands:
            command.tries += 1
            if resend and command.idempotent and command.tries <= self.retries and not self.closed:
                again.append(command)
            else:
                command.settle(error)
        if again:
            self.queue[:0] = again
            if self.connecting is None:
                self.connecting = self.loop.create_task(self._connect(backoff=True))

    async def _connect(self, backoff: bool = False) -> None:
        """Connect (redis-py's handshake), take the transport over, and send what is queued."""
        failures = 1 if backoff else 0
        try:
            while self.queue and not self.closed:
                if failures:
                    await asyncio.sleep(min(0.05 * 2 ** (failures - 1), 0.5))
                try:
                    connection = self.pool.connection_class(**self.pool.connection_kwargs)
                except Exception as exc:  # (options the URL gave that redis-py does not take)
                    queued, self.queue = self.queue, []
                    for command in queued:
                        command.settle(rx.DataError(f"cannot connect to {self.url}: {exc}"))
                    break
                try:
                    await connection.connect()  # type: ignore[no-untyped-call]
                    # redis-py keeps its stream writer private; its transport is asyncio's. The
                    # connection lets go of both (redis-py would close them when the object goes,
                    # or wait on a stream that no longer reads); the writer is kept here, as
                    # asyncio closes a writer's transport when the writer goes.
                    writer: Any = connection._writer
                    transport: Any = writer.transport
                    connection._reader = connection._writer = None
                except Exception as exc:
                    await connection.disconnect()
                    failures += 1
                    if self.trouble is not None:
                        self.trouble()
                    queued, self.queue = self.queue, []
                    self._retry(queued, exc, resend=not isinstance(exc, rx.TimeoutError | TimeoutError))
                    continue
                protocol = _Protocol(self)
                transport.set_protocol(protocol)
                self.transport, self.protocol, self.writer = transport, protocol, writer
                if self.identify:  # first on the new connection
                    self.queue.insert(0, Command(("CLIENT", "ID"), self._identified, True, 0.0))
                if not transport.is_reading():
                    transport.resume_reading()
                break
        finally:
            self.connecting = None
        if self.transport is not None and self.queue:
            self.soon()

    def _identified(self, reply: Any) -> None:
        self.client_id = reply if isinstance(reply, int) else None

    async def close(self) -> None:
        """Fail what waits and close the connection."""
        self.closed = True
        if self.connecting is not None:
            self.connecting.cancel()
        queued, self.queue = self.queue, []
        inflight, self.inflight = list(self.inflight), collections.deque()
        error = rx.ConnectionError(f"the connection to {self.url} is closed")
        for command in [*inflight, *queued]:
            command.settle(error)
        if self.transport is not None:
            self.transport.close()
        self.transport = self.protocol = self.writer = None
