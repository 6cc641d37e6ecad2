"""Group commit for the Redis store: the calls made in one turn of the event loop go out
together on the pipelined connection (runtime/redis_wire.py), and calls of one shared script
become one call.

A lone caller pays one round trip; a hundred concurrent publishes or acks share a few, and
a round trip never waits for the one before it. Each caller still waits for its own reply,
so a publish that returned is on the server. A reply that is an error reaches its own
caller only, as a StoreError. Callers are joined only when their keys share a hash slot
(`slot`: on a single server, one slot for all), as a Redis Cluster requires of a script.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from typing import Any

from redis.exceptions import NoScriptError

from .redis_wire import Wire
from .store import StoreError


class Script:
    """A Lua script that concurrent callers share: their keys and arguments are concatenated
    into one call (after `header`, the arguments every call starts with) and its reply, a
    list with one element per caller, split back."""

    def __init__(self, source: str, header: tuple[Any, ...] = ()) -> None:
        self.source = source
        self.header = header
        self.sha = hashlib.sha1(source.encode()).hexdigest()


_Caller = tuple[list[str], list[Any], asyncio.Future[Any]]  # (keys, args, its future)


class Batch:
    """One event loop's group commit on one wire. `describe` turns redis-py's exceptions
    into StoreErrors."""

    LIMIT = 512  # callers per script call

    def __init__(self, wire: Wire, describe: Callable[[BaseException], StoreError]) -> None:
        self.wire = wire
        self.describe = describe
        self.shared: dict[tuple[Script, int], list[_Caller]] = {}
        self.waiting: tuple[int, int, asyncio.Future[Any]] | None = None  # (replicas, timeout ms, their answer)
        wire.before_flush = self._flush  # the shared calls go into the wire's next write

    def call(self, *command: Any) -> asyncio.Future[Any]:
        """The reply of one command (awaitable)."""
        future: asyncio.Future[Any] = self.wire.loop.create_future()
        self.wire.send(command, lambda reply: self._settle(future, reply))
        return future

    def script(self, script: Script, keys: list[str], args: list[Any], slot: int = 0) -> asyncio.Future[Any]:
        """This caller's part of the reply of a shared script (awaitable); `keys` all lie in
        hash slot `slot`."""
        future: asyncio.Future[Any] = self.wire.loop.create_future()
        self.shared.setdefault((script, slot), []).append((keys, args, future))
        self.wire.soon()
        return future

    def run(self, script: Script, keys: list[str], args: list[Any]) -> asyncio.Future[Any]:
        """The reply of one call of a script of its own (not shared), sent at once."""
        future: asyncio.Future[Any] = self.wire.loop.create_future()
        self._send(script, [(keys, [*args], future)], loads=0, header=False)
        return future

    def replicated(self, replicas: int, timeout_ms: int) -> asyncio.Future[Any]:
        """How many replicas hold what this connection wrote, the shared scripts queued in
        this turn of the loop included (WAIT, sent after them and shared by this turn's
        callers; not sent again on a new connection, where it would count nothing)."""
        if self.waiting is not None:
            return self.waiting[2]
        future: asyncio.Future[Any] = self.wire.loop.create_future()
        self.waiting = (replicas, timeout_ms, future)
        self.wire.soon()  # (on an idle connection, at once)
        return future

    def _flush(self) -> None:
        shared, self.shared = self.shared, {}
        for (script, _slot), callers in shared.items():
            for start in range(0, len(callers), self.LIMIT):
                self._send(script, callers[start:start + self.LIMIT], loads=0)
        if self.waiting is not None:
            replicas, timeout_ms, future = self.waiting
            self.waiting = None
            self.wire.send(("WAIT", replicas, timeout_ms), lambda reply: self._settle(future, reply),
                           idempotent=False, extra=timeout_ms / 1000)

    def _send(self, script: Script, callers: list[_Caller], loads: int, header: bool = True) -> None:
        """One call of `script` for `callers`; without `header`, for one caller whose reply is
        all its own (not a list split between callers)."""
        keys = [key for k, _a, _f in callers for key in k]
        args = [*(script.header if header else ()), *(arg for _k, a, _f in callers for arg in a)]
        # Sent again after NOSCRIPT, with its source: the server restarted, flushed its
        # scripts, or is a replica just promoted (scripts are not replicated); EVAL also
        # loads it there for the next EVALSHA, whichever server a redirection leads to.
        command = ("EVALSHA", script.sha) if not loads else ("EVAL", script.source)

        def settle(reply: Any) -> None:
            if isinstance(reply, NoScriptError) and loads < 3:
                self._send(script, callers, loads + 1, header)
                return
            if not header:
                self._settle(callers[0][2], reply)
                return
            for number, (_k, _a, future) in enumerate(callers):
                self._settle(future, reply if isinstance(reply, BaseException) else reply[number])

        self.wire.send((*command, len(keys), *keys, *args), settle)

    def _settle(self, future: asyncio.Future[Any], reply: Any) -> None:
        if future.done():
            return  # its caller was cancelled; the command ran all the same
        if isinstance(reply, BaseException):
            future.set_exception(self.describe(reply))
        else:
            future.set_result(reply)
