"""Group commit for the Redis store: the calls made in one turn of the event loop go out
together on the pipelined connection (runtime/redis_wire.py), and calls of one shared script
become one call.

A lone caller pays one round trip; a hundred concurrent publishes or acks share a few, and
a round trip never waits for the one before it. Each caller still waits for its own reply,
so a publish that returned is on the server. A reply that is an error reaches its own
caller only, as a StoreError.
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
        self.shared: dict[Script, list[_Caller]] = {}
        wire.before_flush = self._flush  # the shared calls go into the wire's next write

    def call(self, *command: Any) -> asyncio.Future[Any]:
        """The reply of one command (awaitable)."""
        future: asyncio.Future[Any] = self.wire.loop.create_future()
        self.wire.send(command, lambda reply: self._settle(future, reply))
        return future

    def script(self, script: Script, keys: list[str], args: list[Any]) -> asyncio.Future[Any]:
        """This caller's part of the reply of a shared script (awaitable)."""
        future: asyncio.Future[Any] = self.wire.loop.create_future()
        self.shared.setdefault(script, []).append((keys, args, future))
        self.wire.soon()
        return future

    def _flush(self) -> None:
        shared, self.shared = self.shared, {}
        for script, callers in shared.items():
            for start in range(0, len(callers), self.LIMIT):
                self._send(script, callers[start:start + self.LIMIT], loads=0)

    def _send(self, script: Script, callers: list[_Caller], loads: int) -> None:
        keys = [key for k, _a, _f in callers for key in k]
        args = [*script.header, *(arg for _k, a, _f in callers for arg in a)]
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)

        def settle(reply: Any) -> None:
            if isinstance(reply, NoScriptError) and loads < 3:  # the server restarted, or flushed its scripts
                self.wire.send(("SCRIPT", "LOAD", script.source), lambda _loaded: None)
                self._send(script, callers, loads + 1)  # (after the load, on the same connection)
                return
            for number, (_k, _a, future) in enumerate(callers):
                self._settle(future, reply if isinstance(reply, BaseException) else reply[number])

        self.wire.send(command, settle)

    def _settle(self, future: asyncio.Future[Any], reply: Any) -> None:
        if future.done():
            return  # its caller was cancelled; the command ran all the same
        if isinstance(reply, BaseException):
            future.set_exception(self.describe(reply))
        else:
            future.set_result(reply)
